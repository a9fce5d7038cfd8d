"""Benchmark of the pure-PyTorch rasterizer (pipelines/raster.py).

Main case: 24 frames x 16 open strokes (one cubic each, width 2, random in a 256 canvas, fixed
seed) rendered at 256x256; forward (no autograd) and forward + backward (loss = image mean);
median of N runs after a warm-up, torch on 2 threads. Target: forward + backward <= 2.0 s.
Extra cases (same strokes): 1024x1024 output, quality=2 supersampling, and a scene of 16 filled
and stroked closed paths per frame; "outlines": the strokes with butt caps and the blobs' strokes
with miter joins (SVG caps and joins, drawn as exact outlines). Each case runs in its own process
(clean peak RSS).

Usage: python bench/bench_raster.py [--runs 5] [--cases strokes,...] [--out bench/results/raster.json]
Prints the figures and writes them as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pipelines.raster import rasterize  # noqa: E402  (after the sys.path line)
from pipelines.sketch import PathStyle, make_style  # noqa: E402

THREADS = 2
TARGET_FWD_BWD_S = 2.0
FRAMES, PATHS, CANVAS, WIDTH, SEED = 24, 16, 256, 2.0, 0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def stroke_scene():
    g = torch.Generator().manual_seed(SEED)
    points = torch.rand(FRAMES, 4 * PATHS, 2, generator=g) * CANVAS
    return points, make_style([1] * PATHS, [False] * PATHS, stroke_width=WIDTH)


def fill_scene():
    """16 closed 4-cubic blobs per frame, filled (60 %) and stroked."""
    g = torch.Generator().manual_seed(SEED + 1)
    centre = torch.rand(FRAMES, PATHS, 1, 2, generator=g) * (CANVAS - 80) + 40
    angle = torch.linspace(0, 2 * torch.pi, 13)[:12].view(1, 1, 12)
    radius = 15 + 25 * torch.rand(FRAMES, PATHS, 12, generator=g)
    ring = torch.stack([torch.cos(angle), torch.sin(angle)], -1) * radius.unsqueeze(-1)
    points = (centre + ring).reshape(FRAMES, PATHS * 12, 2)
    style = make_style([4] * PATHS, [True] * PATHS, stroke_width=WIDTH, fill_color=(0.2, 0.4, 0.8), fill_opacity=0.6)
    return points, style


def time_runs(fn, runs: int):
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def bench_case(name, points, style, runs, out_size=None, quality=1):
    def forward():
        with torch.no_grad():
            rasterize(points, style, (CANVAS, CANVAS), out_size=out_size, quality=quality)

    def forward_backward():
        p = points.clone().requires_grad_(True)
        rasterize(p, style, (CANVAS, CANVAS), out_size=out_size, quality=quality).mean().backward()

    base = peak_rss_mb()
    fwd = time_runs(forward, runs)
    rss_fwd = peak_rss_mb()
    fwd_bwd = time_runs(forward_backward, runs)
    rss_bwd = peak_rss_mb()
    frames = points.shape[0]
    res = out_size or (CANVAS, CANVAS)
    result = {
        "case": name,
        "frames": frames,
        "paths": style.num_paths,
        "out_size": list(res),
        "quality": quality,
        "forward_s_median": statistics.median(fwd),
        "forward_s_min": min(fwd),
        "forward_s_runs": fwd,
        "forward_images_per_s": frames / statistics.median(fwd),
        "forward_backward_s_median": statistics.median(fwd_bwd),
        "forward_backward_s_min": min(fwd_bwd),
        "forward_backward_s_runs": fwd_bwd,
        "forward_backward_images_per_s": frames / statistics.median(fwd_bwd),
        "peak_rss_growth_forward_mb": rss_fwd - base,
        "peak_rss_growth_forward_backward_mb": rss_bwd - base,
    }
    print(f"{name:18s} {res[0]}x{res[1]} q{quality}: "
          f"forward {result['forward_s_median']:.3f} s ({result['forward_images_per_s']:.0f} img/s), "
          f"forward+backward {result['forward_backward_s_median']:.3f} s "
          f"({result['forward_backward_images_per_s']:.0f} img/s), peak RSS growth "
          f"{result['peak_rss_growth_forward_mb']:.0f} / {result['peak_rss_growth_forward_backward_mb']:.0f} MB")
    return result


CASES = {
    # name: (scene, out_size, quality)
    "strokes": ("strokes", None, 1),
    "strokes_1024": ("strokes", (1024, 1024), 1),
    "strokes_quality2": ("strokes", None, 2),
    "fills": ("fills", None, 1),
    "outlines": ("outlines", None, 1),
}
MAIN_CASE = "strokes"


def run_case(name: str, runs: int) -> dict:
    scene, out_size, quality = CASES[name]
    if scene == "strokes":
        points, style = stroke_scene()
    elif scene == "fills":
        points, style = fill_scene()
    else:  # outlines
        (sp, ss), (fp, fs) = stroke_scene(), fill_scene()
        fs = replace(fs, fill_opacity=torch.zeros(PATHS))
        n = ss.num_paths + fs.num_paths
        points = torch.cat([sp, fp], 1)
        style = PathStyle(ss.num_segments + fs.num_segments, ss.closed + fs.closed,
                          *(torch.cat([getattr(ss, f), getattr(fs, f)]) for f in
                            ("stroke_width", "stroke_color", "stroke_opacity", "fill_color", "fill_opacity")),
                          stroke_linecap=["butt"] * n, stroke_linejoin=["miter"] * n)
    return bench_case(name, points, style, runs, out_size=out_size, quality=quality)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "raster.json"))
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # run one case in this process, print JSON
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    if args.child:
        print("RESULT " + json.dumps(run_case(args.child, args.runs)))
        return

    # Each case runs in its own process so that its peak RSS is its own.
    load_before = os.getloadavg()
    cases = []
    for name in [c for c in args.cases.split(",") if c]:
        if name not in CASES:
            raise SystemExit(f"unknown case {name!r}; known: {', '.join(CASES)}")
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", name, "--runs", str(args.runs)],
                              check=True, capture_output=True, text=True)
        lines = proc.stdout.splitlines()
        print("\n".join(line for line in lines if not line.startswith("RESULT ")))
        cases.append(json.loads(next(line for line in lines if line.startswith("RESULT "))[len("RESULT "):]))

    report = {
        "benchmark": "raster",
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": THREADS,
        "runs": args.runs,
        "timing": "median of runs after one warm-up; forward under torch.no_grad(); "
                  "forward+backward = render with grad to the points + image.mean().backward()",
        "scene": {"frames": FRAMES, "paths": PATHS, "canvas": CANVAS, "stroke_width": WIDTH, "seed": SEED},
        "target_forward_backward_s": TARGET_FWD_BWD_S,
        "cases": cases,
        # Other processes on the machine skew timings; the 1-minute load average shows how much.
        "load_average_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }
    main_case = next((c for c in cases if c["case"] == MAIN_CASE), None)
    if main_case is not None:
        ok = main_case["forward_backward_s_median"] <= TARGET_FWD_BWD_S
        report["target_met"] = ok
        print(f"target: forward+backward <= {TARGET_FWD_BWD_S} s for {FRAMES} frames at {CANVAS}x{CANVAS} -> "
              f"{'met' if ok else 'MISSED'} ({main_case['forward_backward_s_median']:.3f} s)")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
