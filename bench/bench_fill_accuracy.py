"""Accuracy of the rasterizer's fills (pipelines/raster.py) against exact area coverage.

Scenes: a rectangle 150 x 40 rotated to several slopes (edges from 10 px rise over 240 px to
nearly vertical) on 200 x 200, and on 64 x 64 the fill rules: a self-intersecting star
(non-zero / even-odd), a fill group of two subpaths with a hole (opposite winding under
non-zero, same winding under even-odd), a path wound twice, two overlapping subpaths. Reference:
tests/exact_coverage.py (exact polygon area per pixel in float64). Figures: mean and max of
|rendered - exact| over the partly covered pixels, max over all pixels, relative ink error.

Usage: python bench/bench_fill_accuracy.py [--out bench/results/fill_accuracy.json]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from exact_coverage import exact_fill_coverage

from pipelines.raster import rasterize
from pipelines.sketch import PathStyle


def polygon_points(vertices):
    v = torch.tensor(vertices, dtype=torch.float32)
    nxt = torch.roll(v, -1, 0)
    return torch.stack([v, v + (nxt - v) / 3, v + 2 * (nxt - v) / 3], 1).reshape(-1, 2)


def rotated_rect(cx, cy, w, h, degrees):
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return [(cx + c * x - s * y, cy + s * x + c * y) for x, y in [(-w / 2, -h / 2), (w / 2, -h / 2),
                                                                  (w / 2, h / 2), (-w / 2, h / 2)]]


def measure(polygons, rule, size):
    n = len(polygons)
    style = PathStyle(num_segments=[len(p) for p in polygons], closed=[True] * n,
                      stroke_width=torch.zeros(n), stroke_color=torch.zeros(n, 3), stroke_opacity=torch.ones(n),
                      fill_color=torch.zeros(n, 3), fill_opacity=torch.ones(n),
                      fill_rule=[rule] * n, fill_group=[0] * n)
    pts = torch.cat([polygon_points(p) for p in polygons])
    with torch.no_grad():
        got = (1 - rasterize(pts, style, size)[0, ..., 0]).double().numpy()
    ref = exact_fill_coverage(polygons, rule, *size)
    err = np.abs(got - ref)
    partial = (ref > 1e-9) & (ref < 1 - 1e-9)
    return {"partial_pixels": int(partial.sum()),
            "mean_error_partial": float(err[partial].mean()) if partial.any() else 0.0,
            "max_error_partial": float(err[partial].max()) if partial.any() else 0.0,
            "max_error": float(err.max()),
            "ink_relative_error": float(got.sum() / ref.sum() - 1) if ref.sum() > 0 else float(got.sum())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "fill_accuracy.json"))
    args = ap.parse_args()
    cases = {}
    for rise, run in [(10, 240), (1, 4), (1, 1), (4, 1), (40, 1)]:
        degrees = math.degrees(math.atan2(rise, run))
        cases[f"slope {rise}/{run}"] = measure([rotated_rect(100.37, 99.71, 150.0, 40.0, degrees)], "nonzero",
                                               (200, 200))
    star = [(32.3 + 28 * math.cos(math.radians(-90 + 144 * i)), 31.8 + 28 * math.sin(math.radians(-90 + 144 * i)))
            for i in range(5)]
    outer, inner = rotated_rect(32.2, 31.7, 48.0, 44.0, 7.0), rotated_rect(32.6, 31.3, 20.0, 22.0, 7.0)
    square = rotated_rect(32.2, 31.7, 40.0, 36.0, 11.0)
    a, b = rotated_rect(26.2, 30.7, 30.0, 26.0, 20.0), rotated_rect(38.6, 34.3, 30.0, 26.0, -15.0)
    for name, polygons, rule in [
        ("star, nonzero", [star], "nonzero"), ("star, evenodd", [star], "evenodd"),
        ("group with hole, nonzero (opposite winding)", [outer, inner[::-1]], "nonzero"),
        ("group with hole, evenodd", [outer, inner], "evenodd"),
        ("wound twice, nonzero", [square + square], "nonzero"),
        ("overlapping subpaths, nonzero", [a, b], "nonzero"), ("overlapping subpaths, evenodd", [a, b], "evenodd"),
    ]:
        cases[name] = measure(polygons, rule, (64, 64))
    for name, r in cases.items():
        print(f"{name:46s} partial px {r['partial_pixels']:4d}: mean {r['mean_error_partial']:.1e}, "
              f"max {r['max_error_partial']:.1e} (all pixels {r['max_error']:.1e}), ink {r['ink_relative_error']:+.1e}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"benchmark": "fill_accuracy", "reference": "tests/exact_coverage.py (exact area, float64)",
                   "dtype": "float32", "cases": cases}, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
