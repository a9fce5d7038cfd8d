"""Benchmark of the vector in-betweens (pipelines/interpolation/sketch_inbetween.py) and of the animated SVG sizes.

1. Time: 100 open strokes of 4 cubic segments (1,300 control points), 8 keyframes (fixed seed) -> 1,000 output
   frames (looping), per mode; median of N runs after a warm-up, torch on 2 threads.
2. SVG: the demo's sketch (examples/bird.svg, 256 canvas) on 8 'wiggle' keyframes at 8 fps: the file size of
   the 8 keyframes (discrete, linear, eased 'spline') and of 24 baked Catmull-Rom frames (linear), and how far
   what a browser shows (SMIL's rules: linear between values, or the keySplines timing) strays from the
   Catmull-Rom motion, at 960 times of the 1 s loop (max and mean over points, px).

Usage: python bench/bench_sketch_inbetween.py [--runs 5] [--out bench/results/sketch_inbetween.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pipelines.interpolation.sketch_inbetween import MODES, chord_easing, evaluate, interpolate_sketch  # noqa: E402
from pipelines.motion import procedural_motion  # noqa: E402
from pipelines.sketch import SketchAnimation, make_style  # noqa: E402
from pipelines.svg import load_svg_sketch  # noqa: E402
from pipelines.svg_export import animated_svg  # noqa: E402

THREADS = 2
STROKES, SEGMENTS, KEYFRAMES, FRAMES, SEED = 100, 4, 8, 1000, 0


def strokes_animation() -> SketchAnimation:
    g = torch.Generator().manual_seed(SEED)
    n = STROKES * (3 * SEGMENTS + 1)
    base = torch.rand(1, n, 2, generator=g) * 256
    moves = torch.cumsum(torch.randn(KEYFRAMES, n, 2, generator=g) * 3, dim=0)
    return SketchAnimation(base + moves, make_style([SEGMENTS] * STROKES, [False] * STROKES), 256, 256, 8.0)


def time_modes(runs: int) -> dict:
    anim = strokes_animation()
    out = {}
    for mode in MODES:
        interpolate_sketch(anim, mode, target_frames=FRAMES)  # warm-up
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            res = interpolate_sketch(anim, mode, target_frames=FRAMES)
            times.append(time.perf_counter() - t0)
        assert res.num_frames == FRAMES
        out[mode] = {"median_ms": 1000 * statistics.median(times), "min_ms": 1000 * min(times)}
        print(f"{mode:14s} {STROKES} strokes x {FRAMES} frames: {out[mode]['median_ms']:.1f} ms (median of {runs})")
    return out


def _eased(points: torch.Tensor, style, times: torch.Tensor) -> torch.Tensor:
    """What a browser shows for the 'spline' SVG: per element (here: per path, no fill groups), every number on
    the chord between two keyframes with the keySplines timing s(u) = the Hermite from 0 to 1 with slopes a, b."""
    k = points.shape[0]
    t = torch.remainder(times, k)
    seg = torch.floor(t).long()
    u = (t - seg)[:, None, None]
    out = torch.empty(len(times), points.shape[1], 2, dtype=torch.float64)
    for off, n in zip(style.path_offsets(), style.points_per_path()):
        p = points[:, off:off + n].double()
        ab = chord_easing(p).double()
        a, b = ab[seg, 0][:, None, None], ab[seg, 1][:, None, None]
        s = a * (u ** 3 - 2 * u ** 2 + u) + (-2 * u ** 3 + 3 * u ** 2) + b * (u ** 3 - u ** 2)
        out[:, off:off + n] = p[seg] + s * (p[(seg + 1) % k] - p[seg])
    return out


def svg_sizes() -> dict:
    with open(os.path.join(ROOT, "pipelines", "assets", "sketches", "bird.svg"), "rb") as f:
        sketch = load_svg_sketch(f.read(), canvas_size=256, force_black=True).sketch
    keys = procedural_motion(sketch, "wiggle", frames=KEYFRAMES, fps=8.0, amplitude=1.0)
    baked = interpolate_sketch(keys, "catmull_rom", multiplier=3)
    files = {"keyframes_8_discrete": animated_svg(keys), "keyframes_8_linear": animated_svg(keys, interpolation="linear"),
             "keyframes_8_spline_eased": animated_svg(keys, interpolation="spline"),
             "baked_24_catmull_rom_linear": animated_svg(baked, interpolation="linear")}
    times = torch.arange(960, dtype=torch.float64) * KEYFRAMES / 960
    truth = evaluate(keys.points.double(), times, "catmull_rom", True)
    shown = {"keyframes_8_linear": evaluate(keys.points.double(), times, "linear", True),
             "keyframes_8_spline_eased": _eased(keys.points, keys.style, times),
             "baked_24_catmull_rom_linear": evaluate(baked.points.double(), times * 3, "linear", True)}
    out = {"sketch": "examples/bird.svg", "paths": sketch.num_paths, "points": sketch.num_points,
           "motion": "wiggle, 8 keyframes at 8 fps", "files": {}}
    for name, doc in files.items():
        entry = {"bytes": len(doc.encode("utf-8"))}
        if name in shown:
            err = (shown[name] - truth).norm(dim=-1)
            entry.update(max_px_from_catmull_rom=float(err.max()), mean_px_from_catmull_rom=float(err.mean()))
        out["files"][name] = entry
        extra = (f", off the Catmull-Rom motion: max {entry['max_px_from_catmull_rom']:.3f} px, mean "
                 f"{entry['mean_px_from_catmull_rom']:.4f} px") if name in shown else ""
        print(f"{name:28s} {entry['bytes']:7d} bytes{extra}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "sketch_inbetween.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(THREADS)
    result = {"torch": torch.__version__, "machine": platform.machine(), "threads": THREADS,
              "case": f"{STROKES} open strokes x {SEGMENTS} cubic segments ({STROKES * (3 * SEGMENTS + 1)} points), "
                      f"{KEYFRAMES} keyframes -> {FRAMES} frames, looping",
              "interpolation_ms": time_modes(args.runs), "svg": svg_sizes()}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
