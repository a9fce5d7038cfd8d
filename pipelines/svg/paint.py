"""Paint: colours, opacities and paint servers (gradients and patterns drawn as one flat colour)."""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Dict, Optional, Tuple

import svgelements as se

from .limits import PATTERN_FALLBACK_RGB
from .xmlutil import SVG_NS, XLINK_HREF, split_tag as _split_tag

_GRADIENTS = {"linearGradient", "radialGradient"}
_PAINT_SERVERS = _GRADIENTS | {"pattern", "meshgradient", "hatch"}


def collect_paint_servers(root: ET.Element) -> Dict[str, Optional[Tuple[float, float, float]]]:
    """Gradient id -> mean stop colour (flat fallback, since the sketch has one colour per path)."""
    by_id = {}
    for elem in root.iter():
        ns, name = _split_tag(elem.tag)
        if ns in ("", SVG_NS) and name in _PAINT_SERVERS and elem.get("id"):
            by_id[elem.get("id")] = (name, elem)
    colour_of: Dict[str, Optional[Tuple[float, float, float]]] = {}
    for ident in by_id:
        chain, result = {}, None  # dict: ordered and O(1) membership
        while ident not in colour_of and ident in by_id and ident not in chain:
            chain[ident] = True
            name, elem = by_id[ident]
            stops = [s for s in elem if _split_tag(s.tag)[1] == "stop"]
            if name not in _GRADIENTS or stops:
                colours = [c for c in map(_stop_colour, stops) if c is not None]
                if colours:
                    result = tuple(sum(c[i] for c in colours) / len(colours) for i in range(3))
                break
            ref = (elem.get("href") or elem.get(XLINK_HREF) or "").strip()  # no stops: use the href'd ones
            ident = ref[1:] if ref.startswith("#") else ""
        else:
            result = colour_of.get(ident)  # already resolved (or missing / circular: None)
        for link in chain:  # memoised, so long href chains are walked once
            colour_of[link] = result
    return colour_of


def _stop_colour(stop: ET.Element) -> Optional[Tuple[float, float, float]]:
    value = stop.get("stop-color")
    for decl in stop.get("style", "").split(";"):
        key, _, val = decl.partition(":")
        if key.strip() == "stop-color":
            value = val
    colour = se.Color(value.strip() if value else "black")
    if colour.value is None:
        return None
    return colour.red / 255.0, colour.green / 255.0, colour.blue / 255.0


def _unit_interval(value, default: float = 1.0) -> float:
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


class _PaintResolver:
    def __init__(self, paint_servers):
        self.paint_servers = paint_servers
        self.fallbacks = 0
        self.colours: Dict[str, Tuple[Optional[Tuple[float, float, float]], float]] = {}  # parse each colour once

    def __call__(self, values: dict, key: str) -> Tuple[Optional[Tuple[float, float, float]], float]:
        """(rgb or None for no paint, colour alpha). Read from the raw value: svgelements turns url(#...) into black."""
        text = str(values.get(key, "black" if key == "fill" else "none")).strip()
        if text.lower().startswith("url("):
            ref, _, fallback = text.partition(")")
            ident = ref[4:].strip().strip("'\"")
            ident = ident[1:] if ident.startswith("#") else ident
            if ident in self.paint_servers:
                self.fallbacks += 1
                return self.paint_servers[ident] or PATTERN_FALLBACK_RGB, 1.0
            text = fallback.strip() or "none"  # SVG: a missing paint server without fallback colour means none
        if text.lower() == "currentcolor":
            text = str(values.get("color", "black"))
        if text not in self.colours:
            colour = se.Color(text)
            self.colours[text] = ((None, 0.0) if colour.value is None else
                                  ((colour.red / 255.0, colour.green / 255.0, colour.blue / 255.0),
                                   colour.alpha / 255.0))
        return self.colours[text]
