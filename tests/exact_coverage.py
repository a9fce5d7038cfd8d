"""Exact area coverage of filled polygons, as a reference for the rasterizer's fills
(tests/test_raster.py, bench/bench_fill_accuracy.py). Written independently of
pipelines/raster.py: float64 numpy, strips between every event y.

Hand-written: shapely is not a dependency here, and this needs only a few lines.
"""
import itertools
import math

import numpy as np


def exact_fill_coverage(polygons, rule, width, height):
    """Reference coverage [height, width] of the union of closed polygons (lists of (x, y)) under
    "nonzero" or "evenodd", independent of the rasterizer: each pixel row is cut into strips at
    every vertex y, every crossing of two edges and every crossing of an edge with an integer x;
    inside a strip the edges neither cross nor change column, so the covered length of each pixel
    column is linear in y and its value at the strip's mid-height times the strip's height is exact.
    """
    edges = []
    for poly in polygons:
        v = np.asarray(poly, dtype=np.float64)
        edges += [(v[i], v[(i + 1) % len(v)]) for i in range(len(v))]
    edges = [(p, q) for p, q in edges if p[1] != q[1]]  # horizontal edges bound no area
    events = [y for p, q in edges for y in (p[1], q[1])]
    for p, q in edges:  # crossings of integer x
        lo, hi = sorted((p[0], q[0]))
        for k in range(math.ceil(lo), math.floor(hi) + 1):
            if q[0] != p[0]:
                events.append(p[1] + (k - p[0]) / (q[0] - p[0]) * (q[1] - p[1]))
    for i, (p, q) in enumerate(edges):  # edge-edge crossings
        for r, s in edges[i + 1:]:
            d = (q[0] - p[0]) * (s[1] - r[1]) - (q[1] - p[1]) * (s[0] - r[0])
            if d == 0:
                continue
            t = ((r[0] - p[0]) * (s[1] - r[1]) - (r[1] - p[1]) * (s[0] - r[0])) / d
            u = ((r[0] - p[0]) * (q[1] - p[1]) - (r[1] - p[1]) * (q[0] - p[0])) / d
            if 0 <= t <= 1 and 0 <= u <= 1:
                events.append(p[1] + t * (q[1] - p[1]))
    events = np.unique(np.clip(np.concatenate([np.asarray(events), np.arange(height + 1.0)]), 0, height))
    cov = np.zeros((height, width))
    cols = np.arange(width, dtype=np.float64)
    for y0, y1 in itertools.pairwise(events):
        ym = 0.5 * (y0 + y1)
        xs, dirs = [], []
        for p, q in edges:
            if min(p[1], q[1]) < ym < max(p[1], q[1]):
                xs.append(p[0] + (ym - p[1]) / (q[1] - p[1]) * (q[0] - p[0]))
                dirs.append(1 if q[1] > p[1] else -1)
        if not xs:
            continue
        order = np.argsort(xs)
        xs, winding = np.asarray(xs)[order], np.cumsum(np.asarray(dirs)[order])
        inside = winding != 0 if rule == "nonzero" else winding % 2 == 1
        left, right = xs[:-1][inside[:-1]], xs[1:][inside[:-1]]
        overlap = np.clip(np.minimum(right[:, None], cols + 1) - np.maximum(left[:, None], cols), 0, None)
        cov[math.floor(ym)] += (y1 - y0) * overlap.sum(0)
    return cov
