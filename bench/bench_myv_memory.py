"""Memory one Make-Your-Video UNet forward needs at the real size, 16 and 64 frames, without the real weights.

The real-size UNet (config.VARIANTS["makeyourvideo_256"]) is built on the meta device (no memory), and one forward
runs under a dispatch mode that counts every op output's storage while it is alive (as LiveTensorMemory does for
real tensors): the peak of live activation bytes of the forward. Each attention is one SDPA op (flash /
memory-efficient kernels on a GPU), so the attention matrices of the spatial layers are not counted, as on a GPU
with those kernels; the temporal relative-position attention is explicit (frames x frames) and is counted.
Self-check first: at the tiny config, the same count on real CPU tensors and on meta tensors must agree.
Add the weights (parameters x dtype size) for the UNet's share of a sampling step; batch 2 = cond and uncond in one
call (core CFG batching). Windows beyond 64 frames do not raise the peak (one window at a time).
Nothing is asserted; figures are printed and written to bench/results/myv_memory.json.

Usage: python bench/bench_myv_memory.py [--out bench/results/myv_memory.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from torch.utils._pytree import tree_leaves

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pipelines.lvdm.config import VARIANTS, tiny_config  # noqa: E402
from pipelines.lvdm.unet import UNetModel  # noqa: E402
from pipelines.priors.diffusers_prior import LiveTensorMemory  # noqa: E402

GIB = 2 ** 30


class AnyDeviceMemory(LiveTensorMemory):
    """LiveTensorMemory that also counts meta tensors (their storages report the bytes they would take)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._track(t.untyped_storage())
        return out


def forward_peak(model, batch, frames, hw, dtype, device) -> int:
    shape = (batch, 5, frames, *hw)  # Make-Your-Video: 4 latent channels + 1 depth channel
    make = (lambda *s: torch.randn(*s, dtype=dtype)) if device == "cpu" else \
        (lambda *s: torch.empty(*s, dtype=dtype, device="meta"))
    x, ctx = make(*shape), make(batch, 77, model_context_dim(model))
    t = torch.full((batch,), 500.0, device=device)
    with torch.inference_mode(), AnyDeviceMemory() as mem:
        out = model(x, t, context=ctx)
        del out
    return mem.peak


def model_context_dim(model) -> int:
    return next(m.in_features for n, m in model.named_modules() if n.endswith("attn2.to_k"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "myv_memory.json"))
    args = parser.parse_args()
    torch.manual_seed(0)

    tiny = tiny_config("makeyourvideo_256", context_dim=64)
    check = {dev: forward_peak(UNetModel(tiny, device=torch.device(dev)).eval(), 2, 24, (16, 16), torch.float32,
                               dev) for dev in ("cpu", "meta")}
    print(f"self-check (tiny UNet, 24 frames, 16x16 latent): CPU {check['cpu']} B, meta {check['meta']} B")

    cfg = VARIANTS["makeyourvideo_256"].unet
    results = {"self_check_bytes": check, "cases": []}
    for dtype in (torch.float16, torch.float32):
        model = UNetModel(cfg, dtype=dtype, device=torch.device("meta")).eval()
        params = sum(p.numel() for p in model.parameters())
        weights = params * torch.finfo(dtype).bits // 8
        for frames in (16, 64):
            for batch in (1, 2):
                peak = forward_peak(model, batch, frames, (32, 32), dtype, "meta")
                case = {"dtype": str(dtype).replace("torch.", ""), "frames": frames, "batch": batch,
                        "latent": [32, 32], "parameters": params, "weight_gib": round(weights / GIB, 3),
                        "activation_peak_gib": round(peak / GIB, 3),
                        "unet_total_gib": round((weights + peak) / GIB, 3)}
                results["cases"].append(case)
                print(f"{case['dtype']:8s} {frames:3d} frames, batch {batch} (256x256): activations "
                      f"{case['activation_peak_gib']:.2f} GiB + weights {case['weight_gib']:.2f} GiB = "
                      f"{case['unet_total_gib']:.2f} GiB")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
