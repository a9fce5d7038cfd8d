"""Depth estimation speed and memory at each model's working size on CPU, and the flicker of each normalisation.

Models (random weights at the real sizes, keys and shapes from ../shared/checkpoint-manifests, built through the
pack's loader code path `pipelines.depth.checkpoint`): MiDaS DPT-Hybrid (384x384, Make-Your-Video's recipe) and
Depth-Anything-V2 vits / vitb / vitl (official input_size 518 on 512x512 frames -> 518x518). Each case runs in its
own process (clean peak RSS): seconds per frame at batch 1 and batch 4 after one warm-up, float32 and bfloat16
(a case longer than --timeout is recorded as such: on CPUs without AVX512-BF16/AMX torch's bf16 convolution has
no fast kernel). Flicker: pipelines.depth.normalize on its synthetic static-camera clip (3 seeds), mean absolute
frame-to-frame change and drift of the static background per mode. Nothing is asserted; figures are printed and
written to bench/results/depth.json.

Usage: python bench/bench_depth.py [--models midas_dpt_hybrid,vits,vitb,vitl] [--dtypes float32,bfloat16]
       [--batches 1,4] [--timeout 900] [--out bench/results/depth.json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from bench.isolated import run_isolated  # noqa: E402

MANIFESTS = {"midas_dpt_hybrid": "midas_dpt_hybrid", "vits": "depth_anything_v2_vits",
             "vitb": "depth_anything_v2_vitb", "vitl": "depth_anything_v2_vitl"}
FRAME_SIZE = (512, 512)


def _random_state_dict(manifest_name: str):
    import torch
    from shared_data import manifest

    gen = torch.Generator().manual_seed(0)
    sd = {}
    with open(manifest(manifest_name), encoding="utf-8") as f:
        for line in f:
            key, _, shape = line.strip().partition(" ")
            if not key:
                continue
            shape = json.loads(shape)
            t = torch.randn(shape, generator=gen) * 0.02
            if key.endswith(("norm.weight", "norm1.weight", "norm2.weight", ".gamma", "ls1.gamma", "ls2.gamma")):
                t = t + 1.0
            sd[key] = t
    return sd


def run_case(model: str, dtype_name: str, batches: list[int]) -> dict:
    import torch

    from pipelines.depth.checkpoint import DepthCheckpoint, build_network, identify
    from pipelines.depth.estimate import DepthEstimator

    dtype = getattr(torch, dtype_name)
    sd = _random_state_dict(MANIFESTS[model])
    kind, layout = identify(sd, MANIFESTS[model])
    t0 = time.perf_counter()
    est = DepthEstimator(build_network(DepthCheckpoint(kind, layout, sd, MANIFESTS[model]), dtype=dtype), kind)
    build_s = time.perf_counter() - t0
    del sd
    frames = torch.rand(max(batches), *FRAME_SIZE, 3, generator=torch.Generator().manual_seed(1))
    out = {"model": kind, "dtype": dtype_name, "frame_size": list(FRAME_SIZE),
           "working_size": list(est.working_size(*FRAME_SIZE)), "build_s": round(build_s, 2),
           "params": sum(p.numel() for p in est.parameters())}
    est(frames[:1])  # warm-up
    for b in batches:
        t0 = time.perf_counter()
        est(frames[:b])
        out[f"s_per_frame_batch{b}"] = round((time.perf_counter() - t0) / b, 3)
    out["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return out


def flicker_figures() -> dict:
    from pipelines.depth.normalize import (
        MODES,
        drift,
        flicker,
        normalize_depth,
        synthetic_clip,
    )

    res = {m: {"flicker": [], "drift": []} for m in MODES}
    for seed in range(3):
        est, _, static = synthetic_clip(seed=seed)
        for m in MODES:
            d = normalize_depth(est, m)
            res[m]["flicker"].append(flicker(d, static))
            res[m]["drift"].append(drift(d, static))
    return {m: {k: round(sum(v) / len(v), 4) for k, v in r.items()} for m, r in res.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="midas_dpt_hybrid,vits,vitb,vitl")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "depth.json"))
    ap.add_argument("--case", help=argparse.SUPPRESS)
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    if args.case:
        model, dtype = args.case.split(":")
        print(json.dumps(run_case(model, dtype, batches)))
        return
    results = {"threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or os.cpu_count(), "cases": [],
               "flicker_synthetic_clip": flicker_figures()}
    print("flicker (synthetic static-camera clip):", json.dumps(results["flicker_synthetic_clip"]))
    for model in args.models.split(","):
        for dtype in args.dtypes.split(","):
            case = run_isolated(__file__, ["--case", f"{model}:{dtype}", "--batches", args.batches],
                                {"model": model, "dtype": dtype}, args.timeout, ROOT)
            results["cases"].append(case)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
