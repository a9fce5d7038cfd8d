"""One LVDM UNet forward at the real sizes, and our attention path against the official einsum formulation.

Cases (random weights, 16 frames, one timestep, CPU, each in its own process for a clean peak RSS):
- dynamicrafter_256: 8-channel input at 32x32 latents (256x256 video), context 77 text + 16x16 image tokens;
- videocrafter2_512: 4-channel input at 40x64 latents (320x512 video), 77 text tokens, fps 28;
each in float32 and bfloat16 -> seconds per forward (after one warm-up at 2 frames) and peak RSS.
Attention: the same DynamiCrafter 256 UNet with every attention layer swapped for the official formulation
(einsum -> softmax -> einsum, as lvdm/modules/attention.py CrossAttention.forward) on the same inputs: time and the
largest output difference, plus one spatial self-attention layer at 320x512 (2560 tokens, 16 frames, 5x64 heads).
A probe times one 3x3 convolution per dtype first: without AVX512-BF16 / AMX, torch's CPU bf16 convolution has
no fast kernel (here: 0.83 s in fp32, not finished in 300 s in bf16), and a forward case that exceeds --timeout is
recorded as such. Nothing is asserted; figures are printed and written to bench/results/lvdm_unet.json.

Usage: python bench/bench_lvdm_unet.py [--frames 16] [--cases dynamicrafter_256,videocrafter2_512]
       [--dtypes float32,bfloat16] [--out bench/results/lvdm_unet.json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SIZES = {"dynamicrafter_256": (32, 32), "videocrafter2_512": (40, 64)}


def _inputs(variant, cfg, frames, dtype, torch):
    h, w = SIZES[variant]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, cfg.in_channels, frames, h, w, generator=g).to(dtype)
    n_ctx = 77 + (frames * 16 if cfg.image_cross_attention else 0)
    ctx = torch.randn(1, n_ctx, cfg.context_dim, generator=g).to(dtype)
    fs = torch.tensor([VARIANT_FS[variant]])
    return x, ctx, fs


VARIANT_FS = {"dynamicrafter_256": 3, "videocrafter2_512": 28}


def einsum_attention_forward(self, x, context=None, mask=None):
    """The official CrossAttention.forward formulation (explicit similarity matrix), for comparison only."""
    import torch

    q = self.to_q(x)
    context, image_context = self.split_context(x, context)
    k, v = self.to_k(context), self.to_v(context)
    b, h = q.shape[0], self.heads

    def split(t):
        return t.reshape(b, t.shape[1], h, -1).permute(0, 2, 1, 3).reshape(b * h, t.shape[1], -1)

    def merge(t):
        return t.reshape(b, h, t.shape[1], -1).permute(0, 2, 1, 3).reshape(b, t.shape[1], -1)

    q, k, v = split(q), split(k), split(v)
    sim = torch.einsum("b i d, b j d -> b i j", q, k) * self.scale
    if self.relative_position:
        sim = sim + torch.einsum("b t d, t s d -> b t s", q, self.relative_position_k(q.shape[1], k.shape[1], q)) \
            * self.scale
    if mask is not None:
        sim = sim.masked_fill(~mask.bool(), -torch.finfo(sim.dtype).max)
    sim = sim.softmax(dim=-1)
    out = torch.einsum("b i j, b j d -> b i d", sim, v)
    if self.relative_position:
        out = out + torch.einsum("b t s, t s d -> b t d", sim, self.relative_position_v(q.shape[1], v.shape[1], q))
    out = merge(out)
    if image_context is not None:
        k_ip, v_ip = split(self.to_k_ip(image_context)), split(self.to_v_ip(image_context))
        sim_ip = (torch.einsum("b i d, b j d -> b i j", q, k_ip) * self.scale).softmax(dim=-1)
        out_ip = merge(torch.einsum("b i j, b j d -> b i d", sim_ip, v_ip))
        if self.learnable_gate:
            out_ip = out_ip * (torch.tanh(self.alpha) + 1)
        out = out + out_ip
    return self.to_out(out)


def run_case(variant: str, dtype_name: str, frames: int, attention: str) -> dict:
    import torch

    from pipelines.lvdm.attention import CrossAttention
    from pipelines.lvdm.config import VARIANTS
    from pipelines.lvdm.unet import UNetModel

    torch.manual_seed(0)
    dtype = getattr(torch, dtype_name)
    cfg = VARIANTS[variant].unet
    t0 = time.perf_counter()
    model = UNetModel(cfg, dtype=dtype).eval()
    build_s = time.perf_counter() - t0
    if attention == "einsum":
        CrossAttention.forward = einsum_attention_forward
    x, ctx, fs = _inputs(variant, cfg, frames, dtype, torch)
    with torch.no_grad():
        warm_ctx = ctx[:, :77 + (2 * 16 if cfg.image_cross_attention else 0)]
        model(x[:, :, :2], torch.tensor([500]), context=warm_ctx, fs=fs)
        t0 = time.perf_counter()
        out = model(x, torch.tensor([500]), context=ctx, fs=fs)
        seconds = time.perf_counter() - t0
    result = {"variant": variant, "dtype": dtype_name, "frames": frames, "latent_hw": list(SIZES[variant]),
              "attention": attention, "params": sum(p.numel() for p in model.parameters()),
              "build_s": round(build_s, 1), "forward_s": round(seconds, 2),
              "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, 2),
              "finite": bool(torch.isfinite(out).all())}
    if os.environ.get("VP_BENCH_SAVE_OUT"):
        torch.save(out.float(), os.environ["VP_BENCH_SAVE_OUT"])
    return result


def attention_layer(frames: int) -> dict:
    """One spatial self-attention at VideoCrafter2 512 (2560 tokens x 16 frames), SDPA vs einsum."""
    import torch

    from pipelines.lvdm.attention import CrossAttention

    torch.manual_seed(0)
    layer = CrossAttention(320, None, heads=5, dim_head=64).eval()
    x = torch.randn(frames, 40 * 64, 320)
    res = {}
    with torch.no_grad():
        for name, fn in (("sdpa", CrossAttention.forward), ("einsum", einsum_attention_forward)):
            fn(layer, x[:1])
            t0 = time.perf_counter()
            res[name] = fn(layer, x)
            res[name + "_s"] = round(time.perf_counter() - t0, 3)
    return {"tokens": 2560, "frames": frames, "heads": 5, "sdpa_s": res["sdpa_s"], "einsum_s": res["einsum_s"],
            "max_abs_diff": float((res["sdpa"] - res["einsum"]).abs().max())}


def conv_probe(dtype_name: str) -> dict:
    """One 3x3 convolution of a VideoCrafter2 512 ResBlock (16 frames, 320 channels, 40x64), one thread."""
    import torch

    torch.set_num_threads(1)
    dtype = getattr(torch, dtype_name)
    conv = torch.nn.Conv2d(320, 320, 3, padding=1).to(dtype)
    x = torch.randn(16, 320, 40, 64).to(dtype)
    with torch.no_grad():
        conv(x[:1])
        t0 = time.perf_counter()
        conv(x)
    return {"dtype": dtype_name, "conv3x3_s": round(time.perf_counter() - t0, 3)}


def child(args: list[str], timeout: float | None = None) -> dict:
    env = dict(os.environ)
    try:
        out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env,
                             cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {timeout:.0f} s", "args": args}
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:] or ["failed"], "args": args}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--cases", default="dynamicrafter_256,videocrafter2_512")
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "lvdm_unet.json"))
    p.add_argument("--timeout", type=float, default=1800,
                   help="seconds per forward case (bf16 has no fast CPU kernel without AVX512-BF16/AMX)")
    p.add_argument("--child", nargs="*")
    a = p.parse_args()
    if a.child is not None:
        kind = a.child[0]
        if kind == "layer":
            print(json.dumps(attention_layer(int(a.child[1]))))
        elif kind == "conv":
            print(json.dumps(conv_probe(a.child[1])))
        else:
            print(json.dumps(run_case(a.child[1], a.child[2], int(a.child[3]), a.child[4])))
        return

    import tempfile

    import torch

    results = {"forward": [], "attention": {}, "conv_probe": []}
    for dtype in a.dtypes.split(","):  # is there a fast kernel for this dtype on this CPU at all?
        r = child(["conv", dtype], timeout=300)
        print(json.dumps(r), flush=True)
        results["conv_probe"].append(r)
    slow = {r["args"][1] for r in results["conv_probe"] if "error" in r}
    for variant in a.cases.split(","):
        for dtype in a.dtypes.split(","):
            if dtype in slow:
                r = {"variant": variant, "dtype": dtype, "skipped": "no fast convolution kernel for this dtype on "
                     "this CPU (the probe's single 3x3 convolution did not finish in 300 s)"}
                print(json.dumps(r), flush=True)
                results["forward"].append(r)
                continue
            r = child(["case", variant, dtype, str(a.frames), "sdpa"], timeout=a.timeout)
            print(json.dumps(r), flush=True)
            results["forward"].append(r)
    # Whole-UNet comparison (DynamiCrafter 256, float32): our SDPA path against the official einsum formulation.
    tmp = tempfile.mkdtemp()
    outs = {}
    for attention in ("sdpa", "einsum"):
        os.environ["VP_BENCH_SAVE_OUT"] = os.path.join(tmp, attention + ".pt")
        r = child(["case", "dynamicrafter_256", "float32", str(a.frames), attention])
        os.environ.pop("VP_BENCH_SAVE_OUT")
        results["attention"][f"unet_{attention}"] = r
        if "error" not in r:
            outs[attention] = torch.load(os.path.join(tmp, attention + ".pt"), weights_only=True)
    if len(outs) == 2:
        diff = (outs["sdpa"] - outs["einsum"]).abs()
        results["attention"]["unet_max_abs_diff"] = float(diff.max())
        results["attention"]["unet_mean_abs_out"] = float(outs["einsum"].abs().mean())
    results["attention"]["layer"] = child(["layer", str(a.frames)])
    print(json.dumps(results["attention"], indent=1), flush=True)
    results["machine"] = {"cpus": os.cpu_count(), "torch": torch.__version__,
                          "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(results, f, indent=1)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
