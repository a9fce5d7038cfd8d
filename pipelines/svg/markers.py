"""Markers (marker-start / marker-mid / marker-end): the <marker> definitions and the vertices they are drawn at.

A marker's content is drawn by the walk (build.py) at each vertex of a path, line, polyline or polygon, in the
coordinate system SVG 1.1 (11.6.2) defines: translate(vertex) rotate(orient) scale(stroke width, for
markerUnits="strokeWidth") translate(-refX/refY mapped by the viewBox) viewBox-transform, clipped to
markerWidth x markerHeight unless overflow is visible. Its style inherits from the marker's ancestors, not from
the path.
"""
from __future__ import annotations

import copy
import math
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Tuple

from .geometry import Point2, Subpath
from .limits import MAX_SEGMENTS
from .xmlutil import SVG_NS, split_tag

_COMMANDS = "LlHhVvCcSsQqTtAaZzMm"


def collect_markers(root: ET.Element) -> Dict[str, Optional[ET.Element]]:
    """<marker id> -> a copy of the element with its content, read before the clean-up empties <marker>
    elements; None for a marker whose content is too large (more path commands and points than MAX_SEGMENTS:
    the walk draws every marker once per vertex and its drawn segments are budgeted too)."""
    out: Dict[str, Optional[ET.Element]] = {}
    for elem in root.iter():
        ns, name = split_tag(elem.tag)
        if ns not in ("", SVG_NS) or name != "marker" or not elem.get("id") or elem.get("id") in out:
            continue
        cost = 0
        for sub in elem.iter():
            cost += 4 + sum(sub.get("d", "").count(c) for c in _COMMANDS) + sub.get("points", "").count(",") \
                + len(sub.get("points", "").split())
        out[elem.get("id")] = copy.deepcopy(elem) if cost <= MAX_SEGMENTS else None
    return out


def _direction(a: Point2, b: Point2) -> Optional[Tuple[float, float]]:
    dx, dy = b[0] - a[0], b[1] - a[1]
    n = math.hypot(dx, dy)
    return (dx / n, dy / n) if n > 1e-12 else None


def start_dir(c) -> Optional[Tuple[float, float]]:
    return _direction(c[0], c[1]) or _direction(c[0], c[2]) or _direction(c[0], c[3])


def end_dir(c) -> Optional[Tuple[float, float]]:
    return _direction(c[2], c[3]) or _direction(c[1], c[3]) or _direction(c[0], c[3])


def _angle(d_in, d_out) -> float:
    """Degrees of the direction bisecting the incoming and outgoing directions (either may be missing)."""
    if d_in and d_out:
        x, y = d_in[0] + d_out[0], d_in[1] + d_out[1]
        if math.hypot(x, y) < 1e-12:
            x, y = d_in  # a full turn back: the incoming direction
        return math.degrees(math.atan2(y, x))
    d = d_in or d_out
    return math.degrees(math.atan2(d[1], d[0])) if d else 0.0


def vertices(subpaths: List[Subpath]) -> List[Tuple[Point2, float]]:
    """Every vertex of the path in order, with its auto orientation in degrees: each subpath's start, then the
    end of each command (a closed subpath ends back at its start)."""
    out: List[Tuple[Point2, float]] = []
    for sp in subpaths:
        segs = sp.segments
        ends = sp.vertex_ends if sp.vertex_ends is not None else list(range(len(segs)))
        first_in = end_dir(segs[-1]) if sp.closed else None
        out.append((segs[0][0], _angle(first_in, start_dir(segs[0]))))
        for k in ends:
            if k + 1 < len(segs):
                out.append((segs[k][3], _angle(end_dir(segs[k]), start_dir(segs[k + 1]))))
            else:
                last_out = start_dir(segs[0]) if sp.closed else None
                out.append((segs[k][3], _angle(end_dir(segs[k]), last_out)))
    return out
