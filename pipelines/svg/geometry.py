"""Geometry: svgelements path segments as cubic Bezier pieces, split into subpaths in the sketch point layout."""
from __future__ import annotations

import math
from typing import Iterator, List, Optional, Tuple

import svgelements as se

from .limits import SVGLoadError

Point2 = Tuple[float, float]


def _xy(point) -> Point2:
    return float(point[0]), float(point[1])


def _cubics(seg) -> List[Tuple[Point2, Point2, Point2]]:
    """One svgelements segment as cubic pieces (c1, c2, end); the start is the previous end."""
    p0 = _xy(seg.start)
    if isinstance(seg, se.CubicBezier):
        return [(_xy(seg.control1), _xy(seg.control2), _xy(seg.end))]
    if isinstance(seg, se.QuadraticBezier):
        # exact degree elevation (svgelements has no quad->cubic conversion)
        q, p1 = _xy(seg.control), _xy(seg.end)
        return [((p0[0] + 2 / 3 * (q[0] - p0[0]), p0[1] + 2 / 3 * (q[1] - p0[1])),
                 (p1[0] + 2 / 3 * (q[0] - p1[0]), p1[1] + 2 / 3 * (q[1] - p1[1])), p1)]
    if isinstance(seg, se.Arc):
        p1 = _xy(seg.end)
        if p0 == p1:
            return []  # SVG: an arc whose endpoints coincide is omitted
        if seg.sweep == 0 or seg.rx == 0 or seg.ry == 0:
            return _line(p0, p1)  # SVG: zero radius means a straight line (svgelements would yield nothing)
        return _arc_cubics(seg, p0, p1)
    if isinstance(seg, se.Linear):  # Line and Close
        return _line(p0, _xy(seg.end))
    raise SVGLoadError(f"unexpected path segment type {type(seg).__name__}")


def _arc_cubics(arc, p0: Point2, p1: Point2) -> List[Tuple[Point2, Point2, Point2]]:
    """Elliptical arc as cubics of at most 90 degrees each.

    Hand-written instead of svgelements' Arc.as_cubic_curves: that uses Maisonobe's control length, whose
    quarter-circle cubics are 0.2 % off the radius; 4/3*tan(delta/4) keeps them within 0.03 %.
    """
    pieces = max(1, math.ceil(abs(arc.sweep) / (math.pi / 2) - 1e-9))
    delta = arc.sweep / pieces
    k = 4.0 / 3.0 * math.tan(delta / 4.0)
    cx, cy = _xy(arc.center)
    rx, ry = arc.rx, arc.ry
    rotation = arc.get_rotation()
    cos_r, sin_r = math.cos(rotation), math.sin(rotation)
    # start parameter on the unrotated ellipse (svgelements' get_start_t gives the same, ~20x slower)
    vx, vy = p0[0] - cx, p0[1] - cy
    t0 = math.atan2((-vx * sin_r + vy * cos_r) / ry, (vx * cos_r + vy * sin_r) / rx)

    def point(t):
        ex, ey = rx * math.cos(t), ry * math.sin(t)
        return cx + ex * cos_r - ey * sin_r, cy + ex * sin_r + ey * cos_r

    def tangent(t):  # d point / dt
        dx, dy = -rx * math.sin(t), ry * math.cos(t)
        return dx * cos_r - dy * sin_r, dx * sin_r + dy * cos_r

    out = []
    start = p0
    for i in range(pieces):
        ta, tb = t0 + i * delta, t0 + (i + 1) * delta
        end = p1 if i == pieces - 1 else point(tb)
        (dax, day), (dbx, dby) = tangent(ta), tangent(tb)
        out.append(((start[0] + k * dax, start[1] + k * day), (end[0] - k * dbx, end[1] - k * dby), end))
        start = end
    return out


def _line(p0: Point2, p1: Point2) -> List[Tuple[Point2, Point2, Point2]]:
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    return [((p0[0] + dx / 3, p0[1] + dy / 3), (p0[0] + 2 * dx / 3, p0[1] + 2 * dy / 3), p1)]


def _same(a: Point2, b: Point2) -> bool:
    tol = 1e-9 * (1.0 + max(abs(a[0]), abs(a[1]), abs(b[0]), abs(b[1])))
    return abs(a[0] - b[0]) <= tol and abs(a[1] - b[1]) <= tol


def _subpaths(segments) -> Iterator[Tuple[List[Point2], bool]]:
    """Split segments into subpaths in the sketch point layout: (points, closed)."""
    pts: List[Point2] = []
    pen: Optional[Point2] = None
    for seg in segments:
        if isinstance(seg, se.Move):
            if len(pts) >= 4:
                yield pts, False
            pts, pen = [], _xy(seg.end)
            continue
        start = _xy(seg.start) if seg.start is not None else pen
        if start is None:
            continue  # svgelements leaves start unset only for data without a moveto, which the cleaner cuts off
        if isinstance(seg, se.Close):
            if not pts:
                pen = _xy(seg.end)
                continue  # 'M x y Z' draws nothing
            if not _same(pts[-1], _xy(seg.end)):
                pts += _line(pts[-1], _xy(seg.end))[0]
            yield pts[:-1], True  # the last segment wraps to the first point
            pts, pen = [], _xy(seg.end)  # after Z a new subpath starts at the same point
            continue
        if pts and not _same(pts[-1], start):
            if len(pts) >= 4:  # segments that do not join start a new path
                yield pts, False
            pts = []
        if not pts:
            pts = [start]
        for c1, c2, end in _cubics(seg):
            pts += [c1, c2, end]
        pen = pts[-1]
    if len(pts) >= 4:
        yield pts, False
