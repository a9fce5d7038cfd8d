"""RIFE interpolation speed and memory on CPU: seconds per interpolated frame and peak RSS.

Model: RIFE 4.7 (5.3 M parameters, the layout of rife47/rife49.pth) with the golden fixture's full-size weights
(../shared/golden/rife47), loaded through the pack's reader (pipelines.interpolation.rife_checkpoint); 4.26 with
random weights of its manifest's shapes as a second layout (512 only by default). Frames: a smooth random texture
sliding 2 px per frame (tests/rife_files.moving_clip), square sizes 256, 512, 1024. Each case runs in its own process
(clean peak RSS) through the streaming driver (pipelines.interpolation.frames): one warm-up pass, then a 2x multiplier
over 5 frames (4 in-betweens) at each batch size, and the ensemble at batch 2; fp32 and bf16. Wall seconds and CPU
seconds (user + system, steadier than wall time on a shared machine) per in-between. Memory on a long clip: peak RSS
of 5 and 41 frames at 256x256 (2x), beside the size of input + output. A case longer than --timeout is recorded as
such (on CPUs without AVX512-BF16/AMX torch's bf16 convolution has no fast kernel). Nothing is asserted; figures are
printed and written to bench/results/rife.json.

Usage: python bench/bench_rife.py [--sizes 256,512,1024] [--dtypes float32,bfloat16] [--batches 1,4]
       [--models 4.7] [--second-layout 4.26@512] [--timeout 900] [--out bench/results/rife.json]
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
FRAMES = 5


def _model(name: str, dtype):
    import torch

    from pipelines.interpolation.rife_checkpoint import (
        build_model,
        load_rife,
        read_rife_checkpoint,
    )

    if name == "4.7":
        from shared_data import golden

        return load_rife(golden("rife47", "weights.safetensors"), dtype=dtype)[0]
    import tempfile

    import rife_files

    sd = rife_files.manifest_state_dict("rife_v4_26", device="cpu")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "rife426.pth")
        torch.save(sd, path)
        ck = read_rife_checkpoint(path)
        return build_model(ck, dtype)


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_case(model_name: str, size: int, dtype_name: str, batches: list[int]) -> dict:
    import rife_files
    import torch

    from pipelines.interpolation.frames import interpolate_frames, plan_times

    dtype = getattr(torch, dtype_name)
    model = _model(model_name, dtype)
    clip = rife_files.moving_clip(frames=FRAMES, height=size, width=size)
    times = plan_times(FRAMES, multiplier=2)
    out = {"model": model_name, "size": size, "dtype": dtype_name, "in_betweens": FRAMES - 1}
    interpolate_frames(model, clip[:2], [0.5])  # warm-up
    for label, kw, ts in [(f"batch{b}", {"batch_size": b}, times) for b in batches] + [
            ("ensemble_batch2", {"batch_size": 2, "ensemble": True}, [0.5, 1.5])]:
        t0, c0 = time.perf_counter(), _cpu_seconds()
        res = interpolate_frames(model, clip, ts, **kw)
        out[f"s_per_frame_{label}"] = round((time.perf_counter() - t0) / res.interpolated, 3)
        out[f"cpu_s_per_frame_{label}"] = round((_cpu_seconds() - c0) / res.interpolated, 3)
    out["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
    return out


def run_long(size: int, frames: int) -> dict:
    """Peak RSS of a longer clip (2x) next to a short one: with streaming, only the output grows."""
    import rife_files
    import torch

    from pipelines.interpolation.frames import (
        interpolate_frames,
        output_bytes,
        plan_times,
    )

    model = _model("4.7", torch.float32)
    clip = rife_files.moving_clip(frames=frames, height=size, width=size)
    times = plan_times(frames, multiplier=2)
    t0 = time.perf_counter()
    interpolate_frames(model, clip, times, batch_size=4)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"model": "4.7", "size": size, "dtype": "float32", "clip_frames": frames, "output_frames": len(times),
            "wall_s": round(time.perf_counter() - t0, 1), "peak_rss_gb": round(peak, 3),
            "input_plus_output_gb": round((output_bytes(len(times), size, size)
                                           + output_bytes(frames, size, size)) / 2**30, 3)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="256,512,1024")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--models", default="4.7")
    ap.add_argument("--second-layout", default="4.26@512", help="model@size cases added (empty: none)")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "rife.json"))
    ap.add_argument("--long", default="256:5,256:41", help="size:frames clips for the memory figure (empty: none)")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--long-case", help=argparse.SUPPRESS)
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    if args.case:
        model, size, dtype = args.case.split(":")
        print(json.dumps(run_case(model, int(size), dtype, batches)))
        return
    if args.long_case:
        size, frames = args.long_case.split(":")
        print(json.dumps(run_long(int(size), int(frames))))
        return
    results = {"threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or os.cpu_count(),
               "load_average_at_start": os.getloadavg(), "cases": []}
    plan = [(m, int(s)) for m in args.models.split(",") for s in args.sizes.split(",")]
    plan += [(m, int(s)) for m, s in (c.split("@") for c in args.second_layout.split(",") if c)]
    for model, size in plan:
        for dtype in args.dtypes.split(","):
            case = run_isolated(__file__, ["--case", f"{model}:{size}:{dtype}", "--batches", args.batches],
                                {"model": model, "size": size, "dtype": dtype}, args.timeout, ROOT)
            results["cases"].append(case)
    results["long_clips"] = []
    for spec in (c for c in args.long.split(",") if c):
        case = run_isolated(__file__, ["--long-case", spec], {"case": spec}, args.timeout, ROOT)
        results["long_clips"].append(case)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
