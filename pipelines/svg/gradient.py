"""Gradient paint servers: linearGradient / radialGradient resolved for one element (href inheritance of
stops and attributes, gradientUnits, gradientTransform, spreadMethod, SVG's defaults) into a sketch
`Gradient` in document coordinates; the canvas mapping is applied later (canvas.to_canvas)."""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Tuple

from ..sketch import Gradient
from .css import cascade
from .geometry import IDENTITY, Matrix, multiply, parse_transform
from .limits import _FLOAT_RE
from .paint import RGB, parse_colour, parse_opacity, unit_interval
from .xmlutil import XLINK_HREF

_LINEAR = ("x1", "y1", "x2", "y2")
_RADIAL = ("cx", "cy", "r", "fx", "fy", "fr")
_COMMON = ("gradientUnits", "gradientTransform", "spreadMethod")
_DEFAULTS = {"x1": "0%", "y1": "0%", "x2": "100%", "y2": "0%", "cx": "50%", "cy": "50%", "r": "50%", "fr": "0%"}
MAX_HREF_CHAIN = 64


class GradientSpec:
    """A gradient element with what it inherits through href: kind, attributes (raw strings), stops."""

    def __init__(self, kind: str, attrs: Dict[str, str], stops: List[Tuple[float, RGB, float]]):
        self.kind, self.attrs, self.stops = kind, attrs, stops


def resolve_spec(ident: str, servers: Dict, css: Dict) -> Optional[GradientSpec]:
    """The gradient `ident` after href inheritance; None if it is not a gradient."""
    server = servers.get(ident)
    if server is None or server.kind not in ("linearGradient", "radialGradient"):
        return None
    kind = server.kind
    own = _LINEAR if kind == "linearGradient" else _RADIAL
    attrs: Dict[str, str] = {}
    stops: Optional[List[ET.Element]] = None
    seen = set()
    current = server
    while current is not None and id(current) not in seen and len(seen) < MAX_HREF_CHAIN:
        seen.add(id(current))
        elem = current.elem
        if current.kind in ("linearGradient", "radialGradient"):
            names = _COMMON + (own if current.kind == kind else ())
            for name in names:
                if name not in attrs and elem.get(name) is not None:
                    attrs[name] = elem.get(name)
            if stops is None and current.stops:
                stops = list(current.stops)
        ref = (elem.get("href") or elem.get(XLINK_HREF) or "").strip()
        current = servers.get(ref[1:]) if ref.startswith("#") else None
    return GradientSpec(kind, attrs, [_stop(s, css) for s in stops or []])


def _stop(stop: ET.Element, css: Dict) -> Tuple[float, RGB, float]:
    values = cascade(stop, css.get(stop, ()), {"stop-color", "stop-opacity"})
    colour = None
    for text in values.get("stop-color", []):
        colour = parse_colour(text)
        if colour is not None:
            break
    if colour is None:
        colour = ((0.0, 0.0, 0.0), 1.0)
    opacity = 1.0
    for text in values.get("stop-opacity", []):
        if (v := parse_opacity(text)) is not None:
            opacity = v
            break
    return _offset(stop.get("offset")), colour[0], colour[1] * opacity


def _offset(text: Optional[str]) -> float:
    """A stop offset: number or percentage clamped to [0, 1]; invalid -> 0."""
    return unit_interval(text, default=0.0) if text is not None else 0.0


def _coordinate(text: Optional[str], obb: bool, percent_of: float) -> Optional[float]:
    from .geometry import parse_length
    if text is None:
        return None
    text = text.strip()
    if obb:
        if text.endswith("%"):
            m = _FLOAT_RE.fullmatch(text[:-1])
            return float(text[:-1]) / 100.0 if m else None
        m = _FLOAT_RE.fullmatch(text)
        return float(text) if m else None
    return parse_length(text, percent_of)


def build_gradient(spec: GradientSpec, bbox: Optional[Tuple[float, float, float, float]], ctm: Matrix,
                   viewport: Tuple[float, float]):
    """-> ("gradient", Gradient in document coordinates) | ("flat", (rgb, opacity)) | ("none", None) |
    ("fallback", None) (no stops, or objectBoundingBox on an element whose bbox has no width or no height: the
    paint's fallback colour if it has one, else nothing, as resvg)."""
    stops = spec.stops
    if not stops:
        return "fallback", None
    offsets, last = [], 0.0
    for offset, _, _ in stops:  # each offset at least the previous one (SVG)
        last = max(last, offset)
        offsets.append(last)
    if len(stops) == 1:
        return "flat", (stops[0][1], stops[0][2])
    attrs = spec.attrs
    obb = attrs.get("gradientUnits", "objectBoundingBox").strip() != "userSpaceOnUse"
    if obb and (bbox is None or bbox[2] <= 0 or bbox[3] <= 0):
        return "fallback", None
    vw, vh = viewport
    diag = math.sqrt((vw * vw + vh * vh) / 2.0)
    axis = {"x1": vw, "x2": vw, "cx": vw, "fx": vw, "y1": vh, "y2": vh, "cy": vh, "fy": vh, "r": diag, "fr": diag}

    def value(name: str) -> float:
        v = _coordinate(attrs.get(name), obb, axis[name])
        if v is None or not math.isfinite(v):
            v = _coordinate(_DEFAULTS[name], obb, axis[name])
        return float(v)

    try:
        transform = parse_transform(attrs["gradientTransform"]) if "gradientTransform" in attrs else IDENTITY
    except ValueError:
        transform = IDENTITY
    matrix = multiply(ctm, transform)
    if obb:
        matrix = multiply(ctm, multiply((bbox[2], 0.0, 0.0, bbox[3], bbox[0], bbox[1]), transform))
    spread = attrs.get("spreadMethod", "pad").strip()
    spread = spread if spread in ("pad", "reflect", "repeat") else "pad"
    colors = tuple(s[1] for s in stops)
    opacities = tuple(s[2] for s in stops)
    last_stop = ("flat", (stops[-1][1], stops[-1][2]))
    mean = ("flat", (tuple(sum(c[i] for c in colors) / len(colors) for i in range(3)),
                     sum(opacities) / len(opacities)))
    if not all(math.isfinite(v) and abs(v) < 1e12 for v in matrix) or matrix[0] * matrix[3] - matrix[1] * matrix[2] == 0:
        return mean  # absurd or singular transforms: the mean colour rather than non-finite canvas coordinates
    if spec.kind == "linearGradient":
        x1, y1, x2, y2 = (value(n) for n in _LINEAR)
        if not all(abs(v) < 1e12 for v in (x1, y1, x2, y2)):
            return mean
        if x1 == x2 and y1 == y2:
            return last_stop  # SVG: the area is painted with the last stop's colour
        return "gradient", Gradient("linear", tuple(offsets), colors, opacities, spread, matrix, x1=x1, y1=y1, x2=x2,
                                    y2=y2)
    cx, cy, r = value("cx"), value("cy"), value("r")
    fx, fy = _coordinate(attrs.get("fx"), obb, vw), _coordinate(attrs.get("fy"), obb, vh)
    fx = cx if fx is None or not math.isfinite(fx) else fx  # fx, fy default to cx, cy
    fy = cy if fy is None or not math.isfinite(fy) else fy
    fr = value("fr")
    if not all(abs(v) < 1e12 for v in (cx, cy, r, fx, fy, fr)):
        return mean
    if r <= 0:
        return ("none", None) if r < 0 else last_stop
    if fr < 0 or fr >= r:
        fr = 0.0 if fr < 0 else fr
        if fr >= r:
            return last_stop
    dist = math.hypot(fx - cx, fy - cy)
    limit = r * 0.999  # the focal point is moved inside the end circle (SVG 1.1, as resvg)
    if dist > limit:
        fx, fy = cx + (fx - cx) * limit / dist, cy + (fy - cy) * limit / dist
    return "gradient", Gradient("radial", tuple(offsets), colors, opacities, spread, matrix, cx=cx, cy=cy, r=r, fx=fx,
                                fy=fy, fr=fr)


def shape_bbox(subpaths) -> Optional[Tuple[float, float, float, float]]:
    """Exact bounding box (x, y, w, h) of cubic subpaths (the curve's extrema, not its control points)."""
    xs, ys = [], []
    for sp in subpaths:
        for p0, p1, p2, p3 in sp.segments:
            for axis, out in ((0, xs), (1, ys)):
                a, b, c, d = p0[axis], p1[axis], p2[axis], p3[axis]
                out.extend((a, d))
                # derivative / 3: (b - a)(1-t)^2 + 2 (c - b)(1-t) t + (d - c) t^2 -> q t^2 + l t + k
                k, l_, q = b - a, 2 * (c - 2 * b + a), d - 3 * c + 3 * b - a
                roots = []
                if abs(q) > 1e-12:
                    disc = l_ * l_ - 4 * q * k
                    if disc >= 0:
                        s = math.sqrt(disc)
                        roots = [(-l_ + s) / (2 * q), (-l_ - s) / (2 * q)]
                elif abs(l_) > 1e-12:
                    roots = [-k / l_]
                for t in roots:
                    if 0 < t < 1:
                        u = 1 - t
                        out.append(u * u * u * a + 3 * u * u * t * b + 3 * u * t * t * c + t * t * t * d)
    if not xs:
        return None
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)
