"""Paint: colours, paints (none / colour / currentColor / url(#server) with fallback), opacities, and the
paint servers of a document (gradients are resolved and drawn by gradient.py; a pattern or other server is
drawn as flat grey)."""
from __future__ import annotations

import colorsys
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from PIL import ImageColor

from .xmlutil import SVG_NS
from .xmlutil import split_tag as _split_tag

RGB = Tuple[float, float, float]
_PAINT_SERVERS = {"linearGradient", "radialGradient", "pattern", "meshgradient", "hatch"}
_HEX_RE = re.compile(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")
_FUNC_RE = re.compile(r"(rgba?|hsla?)\(([^()]*)\)", re.IGNORECASE)
_NUM_PCT_RE = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?%?")


def parse_colour(text: str) -> Optional[Tuple[RGB, float]]:
    """A CSS colour -> ((r, g, b) in 0..1, alpha), or None if invalid. Named colours come from Pillow's CSS
    table; #rgb[a], #rrggbb[aa], rgb[a]() and hsl[a]() (comma or space separated) are parsed here."""
    text = text.strip()
    low = text.lower()
    if low == "transparent":
        return (0.0, 0.0, 0.0), 0.0
    m = _HEX_RE.fullmatch(text)
    if m:
        h = m.group(1)
        if len(h) in (3, 4):
            h = "".join(c * 2 for c in h)
        vals = [int(h[i:i + 2], 16) / 255.0 for i in range(0, len(h), 2)]
        return (vals[0], vals[1], vals[2]), (vals[3] if len(vals) == 4 else 1.0)
    m = _FUNC_RE.fullmatch(text)
    if m:
        args = _NUM_PCT_RE.findall(m.group(2).replace("/", " "))
        rest = _NUM_PCT_RE.sub("", m.group(2)).replace(",", " ").replace("/", " ").strip()
        if rest or len(args) not in (3, 4):
            return None
        # CSS Color 3, as resvg: the three channels all numbers or all percentages, alpha a plain number
        if m.group(1).lower().startswith("rgb") and (len({a.endswith("%") for a in args[:3]}) > 1 or (
                len(args) == 4 and args[3].endswith("%"))):
            return None

        def unit(a, scale):
            v = float(a[:-1]) / 100.0 if a.endswith("%") else float(a) / scale
            return min(1.0, max(0.0, v)) if math.isfinite(v) else None

        alpha = unit(args[3], 1.0) if len(args) == 4 else 1.0
        if m.group(1).lower().startswith("rgb"):
            rgb = [unit(a, 255.0) for a in args[:3]]
        else:
            hue = float(args[0].rstrip("%")) % 360.0 / 360.0
            sat, light = unit(args[1], 100.0), unit(args[2], 100.0)
            if sat is None or light is None:
                return None
            rgb = list(colorsys.hls_to_rgb(hue, light, sat))
        if alpha is None or any(v is None for v in rgb):
            return None
        return (rgb[0], rgb[1], rgb[2]), alpha
    named = ImageColor.colormap.get(low)
    if isinstance(named, str) and low.isalpha():
        return parse_colour(named)
    return None


@dataclass
class PaintServer:
    kind: str  # element name: linearGradient, radialGradient, pattern, ...
    elem: ET.Element  # the server element (gradients are resolved from it, gradient.py)
    stops: Tuple[ET.Element, ...] = ()  # its <stop> children, taken before the clean-up empties the element


def collect_paint_servers(root: ET.Element) -> Dict[str, PaintServer]:
    """Paint server id -> the server (the first element with an id wins); gradient.py resolves gradients from
    them, every other kind is drawn as flat grey (PATTERN_FALLBACK_RGB)."""
    out: Dict[str, PaintServer] = {}
    for elem in root.iter():
        ns, name = _split_tag(elem.tag)
        if ns in ("", SVG_NS) and name in _PAINT_SERVERS and elem.get("id") and elem.get("id") not in out:
            out[elem.get("id")] = PaintServer(
                name, elem, tuple(s for s in elem if isinstance(s.tag, str) and _split_tag(s.tag)[1] == "stop"))
    return out


def unit_interval(value, default: float = 1.0) -> float:
    """An opacity: number or percentage, clamped to [0, 1]; invalid -> default."""
    if value is None:
        return default
    text = str(value).strip()
    try:
        number = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        return default
    if not math.isfinite(number):
        return default
    return min(1.0, max(0.0, number))


def parse_opacity(text: str) -> Optional[float]:
    """A valid opacity value clamped to [0, 1], else None."""
    v = unit_interval(text, default=float("nan"))
    return None if math.isnan(v) else v


@dataclass
class Paint:
    kind: str  # "none" | "color" | "server" | "currentColor"
    rgb: Optional[RGB] = None
    alpha: float = 1.0
    server: Optional[str] = None  # paint server id
    fallback: Optional["Paint"] = None  # for a missing server


def parse_paint(text: str) -> Optional[Paint]:
    """A fill/stroke value, or None if invalid (the cascade then takes the next declaration)."""
    text = text.strip()
    low = text.lower()
    if low == "none":
        return Paint("none")
    if low == "currentcolor":
        return Paint("currentColor")
    if low in ("context-fill", "context-stroke"):
        return Paint("none")  # only meaningful inside markers, which are not drawn
    if low.startswith("url("):
        ref, close, rest = text.partition(")")
        if not close:
            return None
        ident = ref[4:].strip().strip("'\"").strip()
        ident = ident[1:] if ident.startswith("#") else ""
        rest = rest.strip()
        fallback = parse_paint(rest) if rest else None
        if rest and fallback is None:
            return None
        return Paint("server", server=ident, fallback=fallback)
    colour = parse_colour(text)  # '#abc icc-color(...)' is invalid, as in resvg and CSS
    if colour is None:
        return None
    return Paint("color", rgb=colour[0], alpha=colour[1])
