"""stroke-dasharray / stroke-dashoffset: subpaths cut into dash pieces (open subpaths), measured by arc length."""
from __future__ import annotations

import bisect
import math
from typing import List, Optional, Sequence, Tuple

from .geometry import Cubic, Point2, Subpath

MAX_DASHES = 20_000  # dash pieces per document; more are drawn as a solid stroke (with a warning)
_SAMPLES = 24  # arc-length table per cubic


def _point(c: Cubic, t: float) -> Point2:
    u = 1.0 - t
    a, b, cc, d = u * u * u, 3 * u * u * t, 3 * u * t * t, t * t * t
    return (a * c[0][0] + b * c[1][0] + cc * c[2][0] + d * c[3][0],
            a * c[0][1] + b * c[1][1] + cc * c[2][1] + d * c[3][1])


def split(c: Cubic, t0: float, t1: float) -> Cubic:
    """The part of cubic c between parameters t0 < t1 (de Casteljau twice)."""
    def left(c, t):  # part [0, t]
        p0, p1, p2, p3 = c
        l1 = (p0[0] + (p1[0] - p0[0]) * t, p0[1] + (p1[1] - p0[1]) * t)
        m = (p1[0] + (p2[0] - p1[0]) * t, p1[1] + (p2[1] - p1[1]) * t)
        r2 = (p2[0] + (p3[0] - p2[0]) * t, p2[1] + (p3[1] - p2[1]) * t)
        l2 = (l1[0] + (m[0] - l1[0]) * t, l1[1] + (m[1] - l1[1]) * t)
        r1 = (m[0] + (r2[0] - m[0]) * t, m[1] + (r2[1] - m[1]) * t)
        q = (l2[0] + (r1[0] - l2[0]) * t, l2[1] + (r1[1] - l2[1]) * t)
        return (p0, l1, l2, q), (q, r1, r2, p3)

    if t1 < 1.0:
        c = left(c, t1)[0]
        t0 = t0 / t1 if t1 > 0 else 0.0
    if t0 > 0.0:
        c = left(c, t0)[1]
    return c


def _table(c: Cubic) -> Tuple[List[float], List[float]]:
    ts, lengths, prev, acc = [0.0], [0.0], c[0], 0.0
    for i in range(1, _SAMPLES + 1):
        t = i / _SAMPLES
        p = _point(c, t)
        acc += math.hypot(p[0] - prev[0], p[1] - prev[1])
        ts.append(t)
        lengths.append(acc)
        prev = p
    return ts, lengths


def _t_at(ts: List[float], lengths: List[float], s: float) -> float:
    if s <= 0:
        return 0.0
    total = lengths[-1]
    if s >= total:
        return 1.0
    lo, hi = 0, len(lengths) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if lengths[mid] < s:
            lo = mid
        else:
            hi = mid
    span = lengths[hi] - lengths[lo]
    f = (s - lengths[lo]) / span if span > 0 else 0.0
    return ts[lo] + f * (ts[hi] - ts[lo])


def dash_pattern(values: Sequence[float]) -> Optional[List[float]]:
    """The effective pattern, or None for a solid stroke (none, negative values, zero sum: SVG/resvg)."""
    if not values or any(v < 0 for v in values) or sum(values) <= 0:
        return None
    return list(values) * (2 if len(values) % 2 else 1)


def count_dashes(subpaths: Sequence[Subpath], pattern: List[float]) -> int:
    """Upper bound of the number of dash pieces (cheap: control polygon lengths)."""
    total = 0.0
    for sp in subpaths:
        for c in sp.segments:
            total += sum(math.hypot(b[0] - a[0], b[1] - a[1]) for a, b in zip(c, c[1:]))
    count = total / sum(pattern) * len(pattern) / 2 + len(subpaths)
    return int(count) if count <= MAX_DASHES else MAX_DASHES + 1  # also inf/nan: a denormal pattern sum


def dash(subpaths: Sequence[Subpath], pattern: List[float], offset: float, cap: str = "round",
         width: float = 0.0) -> List[Subpath]:
    """Dash pieces of every subpath (dashing restarts at each subpath, as in SVG).

    Each dash is one open subpath; the rasterizer draws its caps. On a closed subpath, a dash running through
    the start point is one dash (the last and the first joined). cap="butt": zero-length dashes draw nothing;
    cap="round"/"square": a zero-length dash becomes a tiny piece along the path (a dot or a square turned with
    the path). `width` (the stroke's) sizes that piece.
    """
    period = sum(pattern)
    out: List[Subpath] = []
    for sp in subpaths:
        tables = [_table(c) for c in sp.segments]
        starts, acc = [], 0.0
        for ts, lengths in tables:
            starts.append(acc)
            acc += lengths[-1]
        total = acc
        # dash intervals [a, b] along the subpath
        phase = offset % period
        index, pos = 0, -phase
        intervals = []
        while pos < total:
            end = pos + pattern[index]
            if index % 2 == 0 and end >= 0:
                intervals.append((max(pos, 0.0), min(end, total)))
            pos, index = end, (index + 1) % len(pattern)
        first = 0  # intervals increase: segments that end before the current one are never visited again
        own: List[Tuple[float, float, Subpath]] = []  # this subpath's dashes (start, end, piece)
        for a, b in intervals:
            if cap == "butt" and b - a <= 0:
                continue
            a2, b2 = a, b
            if b2 - a2 <= 1e-6 * (1 + width):
                mid = (a + b) / 2
                eps = max(1e-3 * width, 1e-6)
                a2, b2 = max(0.0, mid - eps), min(total, mid + eps)
                # inside one segment (the one starting at mid, at a corner): a dot has caps and no join
                k = max(0, bisect.bisect_right(starts, mid) - 1)
                lo_k, hi_k = max(a2, starts[k]), min(b2, starts[k] + tables[k][1][-1])
                if hi_k > lo_k:
                    a2, b2 = lo_k, hi_k
            piece = []
            while first < len(starts) - 1 and starts[first + 1] <= a2:
                first += 1
            for k in range(first, len(starts)):
                c, (ts, lengths), s0 = sp.segments[k], tables[k], starts[k]
                if s0 > b2:
                    break
                length = lengths[-1]
                lo, hi = max(a2, s0), min(b2, s0 + length)
                if hi < lo or (hi == lo and length > 0):
                    continue
                piece.append(split(c, _t_at(ts, lengths, lo - s0), _t_at(ts, lengths, hi - s0)))
            if piece:
                own.append((a2, b2, Subpath(piece, False)))
        if sp.closed and own and own[0][0] <= 0 and own[-1][1] >= total:
            # a closed subpath's dash through its start point is one dash (joined there, as browsers draw it)
            if len(own) == 1:
                own[0] = (0.0, total, Subpath(own[0][2].segments, True))
            else:
                own = [(own[-1][0], total, Subpath(own[-1][2].segments + own[0][2].segments, False))] + own[1:-1]
        out += [piece for _, _, piece in own]
    return out
