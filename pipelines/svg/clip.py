"""Viewport clipping (overflow: hidden) of cubic subpaths against a rectangle, exactly.

Fills: each cubic is split where it crosses a side's line; pieces outside that side are flattened onto the
line (their control points' coordinate clamped). The flattened pieces are moved continuously within the
outside half-plane, so the winding number of every point inside the rectangle is unchanged (under both fill
rules) and every point outside gets winding 0: the fill equals the fill clipped to the rectangle.
Strokes: the pieces outside are removed; the inside runs become open subpaths (a stroke's half width may still
stick out of the rectangle by up to half a width).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

from .dashes import split
from .geometry import Cubic, Matrix, Subpath, apply, invert, multiply, parse_length, parse_transform
from .limits import MAX_ABS_COORD
from .xmlutil import SVG_NS, split_tag

Rect = Tuple[float, float, float, float]  # x0, y0, x1, y1


def _coord(c: Cubic, axis: int, t: float) -> float:
    u = 1.0 - t
    return u * u * u * c[0][axis] + 3 * u * u * t * c[1][axis] + 3 * u * t * t * c[2][axis] + t * t * t * c[3][axis]


def _crossings(c: Cubic, axis: int, value: float) -> List[float]:
    """Parameters in (0, 1) where the cubic's coordinate `axis` equals `value` (closed-form roots of the cubic
    polynomial, polished by Newton steps)."""
    p0, p1, p2, p3 = (p[axis] - value for p in c)
    if min(p0, p1, p2, p3) >= 0 or max(p0, p1, p2, p3) <= 0:
        return []
    a = -p0 + 3 * p1 - 3 * p2 + p3
    b = 3 * p0 - 6 * p1 + 3 * p2
    cc = -3 * p0 + 3 * p1
    d = p0
    scale = max(abs(a), abs(b), abs(cc), abs(d))
    roots: List[float] = []
    if abs(a) <= 1e-12 * scale:
        if abs(b) <= 1e-12 * scale:
            if cc != 0:
                roots = [-d / cc]
        else:
            disc = cc * cc - 4 * b * d
            if disc >= 0:
                sq = math.sqrt(disc)
                roots = [(-cc + sq) / (2 * b), (-cc - sq) / (2 * b)]
    else:
        # depressed cubic t = u - b/3a: u^3 + p u + q = 0
        bn, cn, dn = b / a, cc / a, d / a
        p = cn - bn * bn / 3
        q = 2 * bn ** 3 / 27 - bn * cn / 3 + dn
        disc = (q / 2) ** 2 + (p / 3) ** 3
        shift = -bn / 3
        if disc > 0:
            sq = math.sqrt(disc)
            u = math.copysign(abs(-q / 2 + sq) ** (1 / 3), -q / 2 + sq)
            v = math.copysign(abs(-q / 2 - sq) ** (1 / 3), -q / 2 - sq)
            roots = [u + v + shift]
        else:
            r = math.sqrt(max(0.0, -p / 3))
            arg = (-q / 2) / (r ** 3) if r > 0 else 0.0
            phi = math.acos(max(-1.0, min(1.0, arg)))
            roots = [2 * r * math.cos((phi + 2 * math.pi * k) / 3) + shift for k in range(3)]
    out = []
    for t in roots:
        if not -1e-6 < t < 1 + 1e-6:
            continue
        for _ in range(3):  # Newton polish
            f = ((a * t + b) * t + cc) * t + d
            df = (3 * a * t + 2 * b) * t + cc
            if df == 0:
                break
            t -= f / df
        if 0 < t < 1:
            out.append(t)
    return sorted(out)


def _split_at(c: Cubic, ts: Sequence[float]) -> List[Cubic]:
    bounds = [0.0] + sorted(t for t in ts if 1e-9 < t < 1 - 1e-9) + [1.0]
    return [split(c, a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def _bbox(subpaths: Sequence[Subpath]) -> Rect:
    xs = [p[0] for sp in subpaths for c in sp.segments for p in c]
    ys = [p[1] for sp in subpaths for c in sp.segments for p in c]
    return min(xs), min(ys), max(xs), max(ys)


def map_subpaths(subpaths: Sequence[Subpath], m: Matrix) -> List[Subpath]:
    if m == (1.0, 0.0, 0.0, 1.0, 0.0, 0.0):
        return list(subpaths)
    return [Subpath([tuple(apply(m, p) for p in c) for c in sp.segments], sp.closed) for sp in subpaths]


def relation(subpaths: Sequence[Subpath], rect: Rect) -> str:
    """'inside', 'outside' (control points' bounding box disjoint from the rectangle) or 'crossing'."""
    if not subpaths:
        return "outside"
    x0, y0, x1, y1 = _bbox(subpaths)
    eps = 1e-9 * (1.0 + max(abs(v) for v in rect))  # points clamped onto a side by an earlier clip count inside
    if x0 >= rect[0] - eps and y0 >= rect[1] - eps and x1 <= rect[2] + eps and y1 <= rect[3] + eps:
        return "inside"
    if x1 <= rect[0] or y1 <= rect[1] or x0 >= rect[2] or y0 >= rect[3]:
        return "outside"
    return "crossing"


def clip_fill(subpaths: Sequence[Subpath], rect: Rect, to_rect: Matrix, from_rect: Matrix) -> List[Subpath]:
    """Fill geometry clipped to `rect`, given in the coordinates that `to_rect` maps into."""
    local = map_subpaths(subpaths, to_rect)
    for axis, value, keep_above in ((0, rect[0], True), (0, rect[2], False), (1, rect[1], True),
                                    (1, rect[3], False)):
        coords = [p[axis] for sp in local for c in sp.segments for p in c]
        if not coords or (min(coords) >= value if keep_above else max(coords) <= value):
            continue  # nothing beyond this side
        out = []
        for sp in local:
            segs = []
            for c in sp.segments:
                lo, hi = min(p[axis] for p in c), max(p[axis] for p in c)
                if (lo >= value) if keep_above else (hi <= value):
                    segs.append(c)  # wholly on the inside of this side
                    continue
                if (hi <= value) if keep_above else (lo >= value):
                    pieces = [c]  # wholly outside: flattened onto the side below
                else:
                    pieces = _split_at(c, _crossings(c, axis, value))
                for piece in pieces:
                    mid = _coord(piece, axis, 0.5)
                    if (mid < value) if keep_above else (mid > value):
                        piece = tuple((value, p[1]) if axis == 0 else (p[0], value) for p in piece)
                    segs.append(piece)
            out.append(Subpath(segs, sp.closed))
        local = out
    kept = []
    for sp in local:
        # pieces flattened onto a corner collapse to a point: dropped (they add no area)
        segs = [c for c in sp.segments if not (c[0] == c[1] == c[2] == c[3])]
        if segs and relation([sp], rect) != "outside":
            kept.append(Subpath(_rejoin(segs), sp.closed))
    return map_subpaths(kept, from_rect)


def _rejoin(segs: List[Cubic]) -> List[Cubic]:
    """Consecutive segments share end points again after point-like pieces were dropped (they were points, so
    the gap is zero: the next start is set to the previous end exactly)."""
    out = [segs[0]]
    for c in segs[1:]:
        if c[0] != out[-1][3]:
            c = (out[-1][3],) + tuple(c[1:])
        out.append(c)
    return out


def clip_stroke(subpaths: Sequence[Subpath], rect: Rect, to_rect: Matrix, from_rect: Matrix) -> List[Subpath]:
    """The parts of the subpaths inside `rect`, as open subpaths."""
    out = []
    for sp in map_subpaths(subpaths, to_rect):
        run: List[Cubic] = []
        pieces: List[List[Cubic]] = []
        for c in sp.segments:
            xs, ys = [p[0] for p in c], [p[1] for p in c]
            if min(xs) >= rect[0] and max(xs) <= rect[2] and min(ys) >= rect[1] and max(ys) <= rect[3]:
                run.append(c)  # wholly inside
                continue
            if max(xs) < rect[0] or min(xs) > rect[2] or max(ys) < rect[1] or min(ys) > rect[3]:
                if run:  # wholly outside (a piece along a side counts as inside)
                    pieces.append(run)
                    run = []
                continue
            ts = [t for axis, value in ((0, rect[0]), (0, rect[2]), (1, rect[1]), (1, rect[3]))
                  for t in _crossings(c, axis, value)]
            for piece in _split_at(c, ts):
                x, y = _coord(piece, 0, 0.5), _coord(piece, 1, 0.5)
                if rect[0] <= x <= rect[2] and rect[1] <= y <= rect[3]:
                    run.append(piece)
                elif run:
                    pieces.append(run)
                    run = []
        if run:
            pieces.append(run)
        if sp.closed and len(pieces) > 1:
            first, last = pieces[0], pieces[-1]
            if sp.segments and first[0][0] == sp.segments[0][0] and last[-1][3] == sp.segments[-1][3]:
                pieces = [last + first] + pieces[1:-1]  # the run through the start point is one piece
        if len(pieces) == 1 and sum(len(p) for p in pieces) == len(sp.segments) and sp.closed:
            out.append(Subpath(pieces[0], True))  # nothing cut
        else:
            out.extend(Subpath(p, False) for p in pieces)
    return map_subpaths(out, from_rect)


def collect_clip_rects(root) -> Dict[str, Optional[Tuple[Rect, Matrix]]]:
    """<clipPath id> -> (rectangle, matrix from the rectangle's coordinates to the clipPath's user space) when the
    clip path is one plain <rect> (rx = ry = 0) in userSpaceOnUse units -- what editors (Figma, Illustrator)
    export around whole drawings -- else None (reported as unsupported). Read before the clean-up strips the
    content of <clipPath> elements; every number is checked here."""
    out: Dict[str, Optional[Tuple[Rect, Matrix]]] = {}
    for elem in root.iter():
        ns, name = split_tag(elem.tag)
        if ns not in ("", SVG_NS) or name != "clipPath" or not elem.get("id") or elem.get("id") in out:
            continue
        kids = [k for k in elem if isinstance(k.tag, str) and split_tag(k.tag)[1] not in ("title", "desc", "metadata")]
        found = None
        if (len(kids) == 1 and split_tag(kids[0].tag) in (("", "rect"), (SVG_NS, "rect"))
                and elem.get("clipPathUnits", "userSpaceOnUse").strip() == "userSpaceOnUse"):
            rect = kids[0]
            values = [parse_length(rect.get(k, "0"), float("nan")) for k in ("x", "y", "width", "height", "rx", "ry")]
            try:
                m = multiply(parse_transform(elem.get("transform", "")), parse_transform(rect.get("transform", "")))
            except ValueError:
                m = None
            if m is not None and all(v is not None and math.isfinite(v) and abs(v) <= MAX_ABS_COORD for v in values) \
                    and all(math.isfinite(v) and abs(v) <= MAX_ABS_COORD for v in m) \
                    and values[2] > 0 and values[3] > 0 and values[4] == 0 and values[5] == 0 \
                    and invert(m) is not None:
                x, y, w, h = values[:4]
                found = ((x, y, x + w, y + h), m)
        out[elem.get("id")] = found
    return out
