"""Exact SVG stroke outlines of polylines, as a reference for the rasterizer's caps and joins
(tests/test_stroke_caps.py). Written independently of pipelines/raster.py: numpy polygons from the
SVG stroke definition (one rectangle per segment, joins at the vertices, caps at the ends), whose
union is measured by `exact_coverage.exact_fill_coverage` under the non-zero rule.

Hand-written: shapely is not a dependency here, and this needs only a few lines.
"""
import math

import numpy as np


def _disc(centre, radius, steps):
    t = np.arange(steps) * 2 * math.pi / steps
    return np.stack([centre[0] + radius * np.cos(t), centre[1] + radius * np.sin(t)], 1)


def _oriented(poly):
    """Same orientation for every polygon (negative shoelace area), so overlaps never cancel."""
    p = np.asarray(poly, dtype=np.float64)
    q = np.roll(p, -1, 0)
    return p[::-1] if (p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1]).sum() > 0 else p


def stroke_outline(vertices, width, cap="butt", join="miter", miterlimit=4.0, closed=False, arc_steps=192):
    """Polygons whose union is the stroke of the polyline through `vertices`."""
    v = np.asarray(vertices, dtype=np.float64)
    h = width / 2
    ends = list(range(len(v) - 1)) + ([len(v) - 1] if closed else [])
    seg = [(v[i], v[(i + 1) % len(v)]) for i in ends]
    polys = []
    for p, q in seg:
        d = (q - p) / np.linalg.norm(q - p)
        n = np.array([-d[1], d[0]]) * h
        polys.append([p + n, q + n, q - n, p - n])
    joints = [(seg[i], seg[i + 1]) for i in range(len(seg) - 1)] + ([(seg[-1], seg[0])] if closed else [])
    for (p1, q1), (p2, q2) in joints:
        corner = q1
        d1 = (q1 - p1) / np.linalg.norm(q1 - p1)
        d2 = (q2 - p2) / np.linalg.norm(q2 - p2)
        turn = d1[0] * d2[1] - d1[1] * d2[0]
        if join == "round":
            polys.append(_disc(corner, h, arc_steps))
            continue
        if abs(turn) < 1e-12:
            continue
        out = -1.0 if turn > 0 else 1.0  # outer side of the turn, along the left normal
        o1 = corner + out * h * np.array([-d1[1], d1[0]])
        o2 = corner + out * h * np.array([-d2[1], d2[0]])
        theta = math.acos(max(-1.0, min(1.0, float(d1 @ d2))))
        if join == "miter" and 1 / math.cos(theta / 2) <= miterlimit:
            # Tip: where the two outer edges meet (o1 + s d1 = o2 - t d2).
            s, _ = np.linalg.solve(np.stack([d1, d2], 1), o2 - o1)
            polys.append([corner, o1, o1 + s * d1, o2])
        else:
            polys.append([corner, o1, o2])
    if not closed:
        for point, outward in ((v[0], seg[0][0] - seg[0][1]), (v[-1], seg[-1][1] - seg[-1][0])):
            o = outward / np.linalg.norm(outward)
            n = np.array([-o[1], o[0]]) * h
            if cap == "square":
                polys.append([point + n, point + n + o * h, point - n + o * h, point - n])
            elif cap == "round":
                polys.append(_disc(point, h, arc_steps))
    return [_oriented(p) for p in polys]
