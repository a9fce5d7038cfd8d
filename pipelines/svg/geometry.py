"""Geometry: path data, basic shapes, transforms, lengths and viewports, all as cubic Bezier subpaths.

A subpath is `Subpath(segments, closed)`: `segments` is a list of cubics (p0, c1, c2, p1) that join end to start;
a closed subpath's last segment ends at its first point (the closing line is an explicit segment when needed).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from ..sketch import Affine, affine_invert, affine_multiply
from .limits import _FLOAT

Point2 = Tuple[float, float]
Cubic = Tuple[Point2, Point2, Point2, Point2]
Matrix = Affine  # SVG matrix(a b c d e f): x' = a x + c y + e
IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)

_WSP = " \t\r\n\f"
_NUMBER = _FLOAT  # one number syntax for the whole loader (limits.py)
_NUM_RE = re.compile(r"[ \t\r\n\f]*,?[ \t\r\n\f]*(%s)" % _NUMBER)
_FLAG_RE = re.compile(r"[ \t\r\n\f]*,?[ \t\r\n\f]*([01])")
_CMD_RE = re.compile(r"[ \t\r\n\f]*([MmZzLlHhVvCcSsQqTtAa])")
_ARGS = {"M": 2, "L": 2, "H": 1, "V": 1, "C": 6, "S": 4, "Q": 4, "T": 2, "A": 7, "Z": 0}


@dataclass
class Subpath:
    segments: List[Cubic]
    closed: bool
    vertex_ends: Optional[List[int]] = None  # segments that end at a path-data vertex (markers); None = every one


# ------------------------------------------------------------------------------------------------ cubic helpers

def line_cubic(p0: Point2, p1: Point2) -> Cubic:
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    return p0, (p0[0] + dx / 3, p0[1] + dy / 3), (p0[0] + 2 * dx / 3, p0[1] + 2 * dy / 3), p1


def quad_cubic(p0: Point2, q: Point2, p1: Point2) -> Cubic:
    """Exact degree elevation."""
    return (p0, (p0[0] + 2 / 3 * (q[0] - p0[0]), p0[1] + 2 / 3 * (q[1] - p0[1])),
            (p1[0] + 2 / 3 * (q[0] - p1[0]), p1[1] + 2 / 3 * (q[1] - p1[1])), p1)


def same_point(a: Point2, b: Point2) -> bool:
    tol = 1e-9 * (1.0 + max(abs(a[0]), abs(a[1]), abs(b[0]), abs(b[1])))
    return abs(a[0] - b[0]) <= tol and abs(a[1] - b[1]) <= tol


def arc_cubics(p0: Point2, rx: float, ry: float, angle_deg: float, large: bool, sweep: bool,
               p1: Point2) -> List[Cubic]:
    """SVG elliptical arc (endpoint parameterisation, SVG 1.1 F.6.5/F.6.6) as cubics of at most 90 degrees.

    Control length 4/3*tan(delta/4): quarter circles stay within 0.03 % of the radius.
    """
    if same_point(p0, p1):
        return []  # an arc whose endpoints coincide is omitted
    rx, ry = abs(rx), abs(ry)
    if rx == 0 or ry == 0:
        return [line_cubic(p0, p1)]
    phi = math.radians(angle_deg % 360.0)
    cos_p, sin_p = math.cos(phi), math.sin(phi)
    dx2, dy2 = (p0[0] - p1[0]) / 2, (p0[1] - p1[1]) / 2
    x1p, y1p = cos_p * dx2 + sin_p * dy2, -sin_p * dx2 + cos_p * dy2
    lam = (x1p / rx) ** 2 + (y1p / ry) ** 2
    if lam > 1:  # radii too small: scaled up uniformly
        s = math.sqrt(lam)
        rx, ry = rx * s, ry * s
    num = rx * rx * ry * ry - rx * rx * y1p * y1p - ry * ry * x1p * x1p
    den = rx * rx * y1p * y1p + ry * ry * x1p * x1p
    coef = math.sqrt(max(0.0, num / den)) if den > 0 else 0.0
    if large == sweep:
        coef = -coef
    cxp, cyp = coef * rx * y1p / ry, -coef * ry * x1p / rx
    cx = cos_p * cxp - sin_p * cyp + (p0[0] + p1[0]) / 2
    cy = sin_p * cxp + cos_p * cyp + (p0[1] + p1[1]) / 2
    t0 = math.atan2((y1p - cyp) / ry, (x1p - cxp) / rx)
    t1 = math.atan2((-y1p - cyp) / ry, (-x1p - cxp) / rx)
    dt = t1 - t0
    if sweep and dt < 0:
        dt += 2 * math.pi
    elif not sweep and dt > 0:
        dt -= 2 * math.pi
    if dt == 0:
        return [line_cubic(p0, p1)]
    pieces = max(1, math.ceil(abs(dt) / (math.pi / 2) - 1e-9))
    delta = dt / pieces
    k = 4.0 / 3.0 * math.tan(delta / 4.0)

    def point(t):
        ex, ey = rx * math.cos(t), ry * math.sin(t)
        return cx + ex * cos_p - ey * sin_p, cy + ex * sin_p + ey * cos_p

    def tangent(t):
        ex, ey = -rx * math.sin(t), ry * math.cos(t)
        return ex * cos_p - ey * sin_p, ex * sin_p + ey * cos_p

    out, start = [], p0
    for i in range(pieces):
        ta, tb = t0 + i * delta, t0 + (i + 1) * delta
        end = p1 if i == pieces - 1 else point(tb)
        (dax, day), (dbx, dby) = tangent(ta), tangent(tb)
        out.append((start, (start[0] + k * dax, start[1] + k * day), (end[0] - k * dbx, end[1] - k * dby), end))
        start = end
    return out


# --------------------------------------------------------------------------------------------------- path data

def parse_path_data(d: str) -> Tuple[List[Subpath], Optional[int]]:
    """SVG path data -> subpaths. Returns (subpaths, error position or None); on an error everything before
    the offending command is kept (SVG's "render up to the error").

    Own scanner (one regex match per number) instead of svgelements' Path: it follows the SVG grammar
    (arc flags without separators, implicit lineto after moveto), builds cubics directly and does not
    allocate a segment object per command.
    """
    subpaths: List[Subpath] = []
    segs: List[Cubic] = []
    start = cur = (0.0, 0.0)
    last_ctrl: Optional[Point2] = None  # reflected by S (cubic) / T (quadratic)
    last_kind = ""
    pos = 0
    cmd: Optional[str] = None
    started = False

    ends: List[int] = []  # indices of the segments that end a command (an arc is split into several cubics)

    def flush(closed: bool):
        nonlocal segs, ends
        if segs:
            if closed and (not ends or ends[-1] != len(segs) - 1):
                ends.append(len(segs) - 1)  # the closing line
            subpaths.append(Subpath(segs, closed, ends))
        segs, ends = [], []

    while True:
        m = _CMD_RE.match(d, pos)
        if m:
            cmd, pos = m.group(1), m.end()
            fresh = True
        else:
            if d[pos:].strip(_WSP + ",") == "":
                break
            if cmd is None or cmd in "Zz":
                flush(False)
                return subpaths, pos
            fresh = False
        upper = cmd.upper()
        if not started and upper != "M":
            flush(False)
            return subpaths, pos
        if upper == "Z":
            if segs:
                if not same_point(cur, start):
                    segs.append(line_cubic(cur, start))
                flush(True)
            cur, last_ctrl, last_kind = start, None, "Z"
            continue
        args: List[float] = []
        count = _ARGS[upper]
        p = pos
        ok = True
        for i in range(count):
            rx = _FLAG_RE if upper == "A" and i in (3, 4) else _NUM_RE
            mm = rx.match(d, p)
            if not mm:
                ok = False
                break
            args.append(float(mm.group(1)))
            p = mm.end()
        if not ok:
            if fresh or d[pos:].strip(_WSP + ",") != "":
                flush(False)
                return subpaths, pos
            break
        pos = p
        rel = cmd.islower()
        ox, oy = cur if rel else (0.0, 0.0)
        if upper == "M":
            flush(False)
            start = cur = (args[0] + ox, args[1] + oy)
            started = True
            last_ctrl, last_kind = None, "M"
            cmd = "l" if rel else "L"  # following pairs are implicit linetos
            continue
        # (a drawing command right after Z starts a new subpath at the closed one's start: cur is that point)
        if upper == "L":
            end = (args[0] + ox, args[1] + oy)
            segs.append(line_cubic(cur, end))
            ctrl = None
        elif upper == "H":
            end = (args[0] + ox, cur[1])
            segs.append(line_cubic(cur, end))
            ctrl = None
        elif upper == "V":
            end = (cur[0], args[0] + (cur[1] if rel else 0.0))
            segs.append(line_cubic(cur, end))
            ctrl = None
        elif upper == "C":
            c1, c2, end = (args[0] + ox, args[1] + oy), (args[2] + ox, args[3] + oy), (args[4] + ox, args[5] + oy)
            segs.append((cur, c1, c2, end))
            ctrl = c2
        elif upper == "S":
            c1 = (2 * cur[0] - last_ctrl[0], 2 * cur[1] - last_ctrl[1]) if last_kind == "C" else cur
            c2, end = (args[0] + ox, args[1] + oy), (args[2] + ox, args[3] + oy)
            segs.append((cur, c1, c2, end))
            ctrl = c2
        elif upper == "Q":
            q, end = (args[0] + ox, args[1] + oy), (args[2] + ox, args[3] + oy)
            segs.append(quad_cubic(cur, q, end))
            ctrl = q
        elif upper == "T":
            q = (2 * cur[0] - last_ctrl[0], 2 * cur[1] - last_ctrl[1]) if last_kind == "Q" else cur
            end = (args[0] + ox, args[1] + oy)
            segs.append(quad_cubic(cur, q, end))
            ctrl = q
        else:  # A
            end = (args[5] + ox, args[6] + oy)
            segs.extend(arc_cubics(cur, args[0], args[1], args[2], bool(args[3]), bool(args[4]), end))
            ctrl = None
        if segs and (not ends or ends[-1] != len(segs) - 1):
            ends.append(len(segs) - 1)
        cur = end
        last_ctrl = ctrl
        last_kind = "C" if upper in "CS" else "Q" if upper in "QT" else upper
    flush(False)
    return subpaths, None


def parse_numbers(text: str) -> List[float]:
    """A list of numbers separated by whitespace and/or commas (points="", viewBox, dash arrays)."""
    out, pos = [], 0
    while True:
        m = _NUM_RE.match(text, pos)
        if not m:
            break
        out.append(float(m.group(1)))
        pos = m.end()
    if text[pos:].strip(_WSP + ","):
        raise ValueError(f"invalid number list at character {pos}")
    return out


# ------------------------------------------------------------------------------------------------------ shapes

def polyline(points: Sequence[float], closed: bool) -> List[Subpath]:
    pts = [(points[i], points[i + 1]) for i in range(0, len(points) - 1, 2)]
    if len(pts) < 2:
        return []
    segs = [line_cubic(a, b) for a, b in zip(pts, pts[1:])]
    if closed and not same_point(pts[-1], pts[0]):
        segs.append(line_cubic(pts[-1], pts[0]))
    return [Subpath(segs, closed)]


def ellipse(cx: float, cy: float, rx: float, ry: float) -> List[Subpath]:
    """Four quarter arcs, starting at (cx + rx, cy) in the positive angle direction (SVG 2)."""
    k = 4.0 / 3.0 * math.tan(math.pi / 8)
    pts = [(cx + rx, cy), (cx, cy + ry), (cx - rx, cy), (cx, cy - ry)]
    tangents = [(0, ry), (-rx, 0), (0, -ry), (rx, 0)]
    segs = []
    for i in range(4):
        a, b = pts[i], pts[(i + 1) % 4]
        ta, tb = tangents[i], tangents[(i + 1) % 4]
        segs.append((a, (a[0] + k * ta[0], a[1] + k * ta[1]), (b[0] - k * tb[0], b[1] - k * tb[1]), b))
    return [Subpath(segs, True)]


def rect(x: float, y: float, w: float, h: float, rx: float, ry: float) -> List[Subpath]:
    if rx <= 0 or ry <= 0:
        corners = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
        return [Subpath([line_cubic(corners[i], corners[(i + 1) % 4]) for i in range(4)], True)]
    k = 4.0 / 3.0 * math.tan(math.pi / 8)

    def corner(p, q, c):  # quarter ellipse from p to q whose tangents meet at corner c
        return p, (p[0] + k * (c[0] - p[0]), p[1] + k * (c[1] - p[1])), (q[0] + k * (c[0] - q[0]),
                                                                       q[1] + k * (c[1] - q[1])), q
    pts = [(x + rx, y), (x + w - rx, y), (x + w, y + ry), (x + w, y + h - ry), (x + w - rx, y + h), (x + rx, y + h),
           (x, y + h - ry), (x, y + ry)]
    cs = [(x + w, y), (x + w, y + h), (x, y + h), (x, y)]
    segs = []
    for i in range(4):
        a, b = pts[2 * i], pts[2 * i + 1]
        if not same_point(a, b):
            segs.append(line_cubic(a, b))
        segs.append(corner(b, pts[(2 * i + 2) % 8], cs[i]))
    return [Subpath(segs, True)]


# -------------------------------------------------------------------------------------------------- transforms

multiply = affine_multiply  # m . n (n applied first); the sketch's gradients and the rasterizer use the same
invert = affine_invert


def apply(m: Matrix, p: Point2) -> Point2:
    return m[0] * p[0] + m[2] * p[1] + m[4], m[1] * p[0] + m[3] * p[1] + m[5]


def translate(tx: float, ty: float) -> Matrix:
    return (1.0, 0.0, 0.0, 1.0, tx, ty)


_TRANSFORM_RE = re.compile(r"[ \t\r\n\f,]*(matrix|translate|scale|rotate|skewX|skewY)[ \t\r\n\f]*\(([^()]*)\)")
_TRANSFORM_ARGS = {"matrix": (6,), "translate": (1, 2), "scale": (1, 2), "rotate": (1, 3), "skewX": (1,),
                   "skewY": (1,)}


def parse_transform(text: str) -> Matrix:
    """SVG transform list -> matrix; raises ValueError on invalid syntax (the caller ignores the attribute)."""
    m, pos = IDENTITY, 0
    while True:
        match = _TRANSFORM_RE.match(text, pos)
        if not match:
            break
        name, args = match.group(1), parse_numbers(match.group(2))
        if len(args) not in _TRANSFORM_ARGS[name]:
            raise ValueError(f"{name}() takes {' or '.join(map(str, _TRANSFORM_ARGS[name]))} numbers, "
                             f"got {len(args)}")
        if name == "matrix":
            t = tuple(args)
        elif name == "translate":
            t = translate(args[0], args[1] if len(args) > 1 else 0.0)
        elif name == "scale":
            t = (args[0], 0.0, 0.0, args[1] if len(args) > 1 else args[0], 0.0, 0.0)
        elif name == "rotate":
            r = math.radians(args[0])
            t = (math.cos(r), math.sin(r), -math.sin(r), math.cos(r), 0.0, 0.0)
            if len(args) == 3:
                t = multiply(translate(args[1], args[2]), multiply(t, translate(-args[1], -args[2])))
        elif name == "skewX":
            t = (1.0, 0.0, math.tan(math.radians(args[0])), 1.0, 0.0, 0.0)
        else:
            t = (1.0, math.tan(math.radians(args[0])), 0.0, 1.0, 0.0, 0.0)
        m = multiply(m, t)
        pos = match.end()
    if text[pos:].strip(_WSP + ","):
        raise ValueError(f"invalid transform at character {pos}: {text[pos:pos + 20]!r}")
    return m


# ----------------------------------------------------------------------------------------------------- lengths

_LENGTH_RE = re.compile(r"[ \t\r\n\f]*(%s)(px|pt|pc|mm|cm|in|em|ex|%%)?[ \t\r\n\f]*" % _NUMBER,
                        re.IGNORECASE)
_ABSOLUTE_UNITS = {"": 1.0, "px": 1.0, "pt": 4.0 / 3.0, "pc": 16.0, "mm": 96.0 / 25.4, "cm": 96.0 / 2.54,
                   "in": 96.0}
DEFAULT_FONT_SIZE = 16.0  # CSS 'medium'


def parse_length(text: Optional[str], percent_of: float, font_size: float = DEFAULT_FONT_SIZE) -> Optional[float]:
    """A CSS/SVG length in user units: px/pt/pc/mm/cm/in (96 px per inch), em (font size), ex (half of it, as
    resvg and browsers without font metrics), % of `percent_of`. None if missing or invalid (the SVG 2 / CSS
    units rem, vw, vh, vmin, vmax, Q, ch... are invalid here, as in resvg). """
    if text is None:
        return None
    m = _LENGTH_RE.fullmatch(text)
    if not m:
        return None
    value, unit = float(m.group(1)), (m.group(2) or "").lower()
    if unit == "%":
        return value * percent_of / 100.0
    if unit == "em":
        return value * font_size
    if unit == "ex":
        return value * font_size / 2.0
    return value * _ABSOLUTE_UNITS[unit]


# --------------------------------------------------------------------------------------------------- viewports

_ALIGN_RE = re.compile(r"x(Min|Mid|Max)Y(Min|Mid|Max)")


def viewbox_transform(viewbox: Sequence[float], par: Optional[str], width: float, height: float) -> Matrix:
    """Maps the viewBox (x, y, w, h) onto the viewport (0, 0, width, height) by preserveAspectRatio."""
    vx, vy, vw, vh = viewbox
    words = (par or "").split()
    if words[:1] == ["defer"]:
        words = words[1:]
    align = words[0] if words else "xMidYMid"
    slice_ = len(words) > 1 and words[1] == "slice"
    sx, sy = width / vw, height / vh
    if align == "none":
        return (sx, 0.0, 0.0, sy, -vx * sx, -vy * sy)
    m = _ALIGN_RE.fullmatch(align)
    ax, ay = (m.group(1), m.group(2)) if m else ("Mid", "Mid")
    s = max(sx, sy) if slice_ else min(sx, sy)
    frac = {"Min": 0.0, "Mid": 0.5, "Max": 1.0}
    tx = -vx * s + (width - vw * s) * frac[ax]
    ty = -vy * s + (height - vh * s) * frac[ay]
    return (s, 0.0, 0.0, s, tx, ty)


def parse_viewbox(text: Optional[str]) -> Optional[List[float]]:
    """viewBox numbers, or None if missing or invalid (a negative or zero size disables rendering: the caller
    checks)."""
    if text is None:
        return None
    try:
        numbers = parse_numbers(text)
    except ValueError:
        return None
    return numbers if len(numbers) == 4 else None
