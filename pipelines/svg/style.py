"""Computed style: the properties the loader uses, resolved per element from the CSS cascade (css.py) with
inheritance, invalid declarations skipped (the next one in the cascade applies), lengths in user units."""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .css import cascade
from .geometry import DEFAULT_FONT_SIZE, IDENTITY, Matrix, parse_length, parse_transform
from .paint import Paint, parse_colour, parse_opacity, parse_paint
from .report import Report

INHERITED = {"fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-opacity", "stroke-dasharray",
             "stroke-dashoffset", "stroke-linecap", "stroke-linejoin", "stroke-miterlimit", "visibility", "color", "font-size",
             "marker-start", "marker-mid", "marker-end", "paint-order"}
NOT_INHERITED = {"opacity", "display", "clip-path", "mask", "filter", "overflow", "mix-blend-mode", "isolation",
                 "transform", "vector-effect"}
PROPERTIES = INHERITED | NOT_INHERITED | {"marker", "background-color"}

@dataclass
class Style:
    """Computed values of the properties the loader uses (inherited ones are copied to children)."""
    fill: Paint = field(default_factory=lambda: Paint("color", rgb=(0.0, 0.0, 0.0)))
    stroke: Paint = field(default_factory=lambda: Paint("none"))
    color: Tuple[Tuple[float, float, float], float] = ((0.0, 0.0, 0.0), 1.0)
    fill_opacity: float = 1.0
    stroke_opacity: float = 1.0
    stroke_width: float = 1.0
    fill_rule: str = "nonzero"
    dasharray: Optional[List[float]] = None
    dashoffset: float = 0.0
    linecap: str = "butt"  # the initial values; warned about only when a document sets them (see shape())
    linejoin: str = "miter"
    miterlimit: float = 4.0
    cap_join_declared: bool = False
    visible: bool = True
    font_size: float = DEFAULT_FONT_SIZE
    markers: Tuple[Optional[str], Optional[str], Optional[str]] = (None, None, None)  # start, mid, end ids
    paint_order_normal: bool = True
    # not inherited
    opacity: float = 1.0
    display: bool = True
    clip_path: Optional[str] = None  # id of the referenced <clipPath> ('' if not a local reference)
    mask: bool = False
    filter: bool = False
    overflow_visible: bool = False
    blend: bool = False
    transform: Optional[Matrix] = None
    non_scaling: bool = False

    def child(self) -> "Style":
        s = Style(**{k: getattr(self, k) for k in _INHERITED_FIELDS})
        return s


_INHERITED_FIELDS = ("fill", "stroke", "color", "fill_opacity", "stroke_opacity", "stroke_width", "fill_rule",
                     "dasharray", "dashoffset", "linecap", "linejoin", "miterlimit", "cap_join_declared", "visible", "font_size",
                     "markers", "paint_order_normal")


class StyleResolver:
    def __init__(self, css: Dict, report: Report):
        self.css = css  # element -> matched style sheet declarations (css.match_css)
        self.report = report
        self.current: Optional[ET.Element] = None

    def style_of(self, elem: ET.Element, parent: Style, viewport: Tuple[float, float]) -> Style:
        """The computed style of elem, a child of an element with style `parent`, in a viewport (for %)."""
        self.current = elem
        s = parent.child()
        declared = cascade(elem, self.css.get(elem, ()), PROPERTIES)
        if "marker" in declared and elem.get("marker") is not None:
            declared["marker"] = declared["marker"][:-1]  # 'marker' is a CSS shorthand only, not an attribute
            if not declared["marker"]:
                del declared["marker"]
        if "marker" in declared:  # the shorthand sets the three, below any of them declared on the element
            for key in ("marker-start", "marker-mid", "marker-end"):
                declared.setdefault(key, declared["marker"])
        for prop, values in declared.items():
            for value in values:
                if value.lower() == "inherit":
                    if prop in NOT_INHERITED:
                        self._inherit(s, parent, prop)
                    break  # inherited properties already hold the parent's value
                if self._set(s, prop, value, parent, viewport):
                    break
        return s

    def _inherit(self, s: Style, parent: Style, prop: str) -> None:
        name = {"opacity": "opacity", "display": "display", "overflow": "overflow_visible"}.get(prop)
        if name:
            setattr(s, name, getattr(parent, name))

    @staticmethod
    def length(value: str, viewport: Tuple[float, float], axis: str, font_size: float) -> Optional[float]:
        """A length in user units; % of the viewport's width ("x"), height ("y") or normalised diagonal."""
        w, h = viewport
        ref = w if axis == "x" else h if axis == "y" else math.sqrt((w * w + h * h) / 2)
        return parse_length(value, ref, font_size)

    def _set(self, s: Style, prop: str, value: str, parent: Style, viewport: Tuple[float, float]) -> bool:
        """Sets one property from a declared value; False if the value is invalid."""
        low = value.strip().lower()
        if prop in ("fill", "stroke"):
            paint = parse_paint(value)
            if paint is None:
                return False
            setattr(s, prop, paint)
        elif prop == "color":
            c = parse_colour(value)
            if c is None:
                return low == "currentcolor"  # color: currentColor = inherited value
            s.color = c
        elif prop in ("fill-opacity", "stroke-opacity", "opacity"):
            v = parse_opacity(value)
            if v is None:
                return False
            setattr(s, {"fill-opacity": "fill_opacity", "stroke-opacity": "stroke_opacity"}.get(prop, prop), v)
        elif prop == "stroke-width":
            v = self.length(value, viewport, "diag", s.font_size)
            if v is None or v < 0:
                return False
            s.stroke_width = v
        elif prop == "fill-rule":
            if low not in ("nonzero", "evenodd"):
                return False
            s.fill_rule = low
        elif prop == "stroke-dasharray":
            if low == "none":
                s.dasharray = None
                return True
            parts = value.replace(",", " ").split()
            lengths = [self.length(p, viewport, "diag", s.font_size) for p in parts]
            if not parts or any(v is None for v in lengths):
                return False
            s.dasharray = lengths
        elif prop == "stroke-dashoffset":
            v = self.length(value, viewport, "diag", s.font_size)
            if v is None:
                return False
            s.dashoffset = v
        elif prop == "stroke-linecap":
            if low not in ("butt", "round", "square"):
                return False
            s.linecap = low
            s.cap_join_declared = True
        elif prop == "stroke-linejoin":
            if low not in ("miter", "round", "bevel", "miter-clip", "arcs"):
                return False
            s.linejoin = low
            s.cap_join_declared = True
        elif prop == "stroke-miterlimit":
            try:
                v = float(value.strip())
            except ValueError:
                return False
            if not (1.0 <= v < float("inf")):  # below 1 (or not a number) is invalid: the inherited value stays
                return False
            s.miterlimit = v
        elif prop == "visibility":
            if low not in ("visible", "hidden", "collapse"):
                return False
            s.visible = low == "visible"
        elif prop == "font-size":
            keywords = {"xx-small": 9, "x-small": 10, "small": 13, "medium": 16, "large": 18, "x-large": 24,
                        "xx-large": 32}
            if low in keywords:
                s.font_size = float(keywords[low])
            elif low in ("larger", "smaller"):
                s.font_size = parent.font_size * (1.2 if low == "larger" else 1 / 1.2)
            else:
                v = parse_length(value, parent.font_size, parent.font_size)
                if v is None or v < 0:
                    return False
                s.font_size = v
        elif prop in ("marker-start", "marker-mid", "marker-end"):
            ref = value.strip()
            if low == "none":
                ident = None
            elif low.startswith("url(") and ref.endswith(")"):
                ident = ref[4:-1].strip().strip("'\"").strip()
                ident = ident[1:] if ident.startswith("#") else ""
            else:
                return False
            k = ("marker-start", "marker-mid", "marker-end").index(prop)
            s.markers = s.markers[:k] + (ident,) + s.markers[k + 1:]
        elif prop == "paint-order":
            s.paint_order_normal = low in ("normal", "fill", "fill stroke", "fill stroke markers", "fill markers")
        elif prop == "display":
            s.display = low != "none"
        elif prop == "clip-path":
            ref = value.strip()
            if low == "none":
                s.clip_path = None
            elif low.startswith("url(") and ref.endswith(")"):
                ident = ref[4:-1].strip().strip("'\"").strip()
                s.clip_path = ident[1:] if ident.startswith("#") else ""
            else:
                return False
        elif prop == "mask":
            s.mask = low != "none"
        elif prop == "filter":
            s.filter = low != "none"
        elif prop == "overflow":
            if low not in ("visible", "auto", "hidden", "scroll", "clip"):
                return False
            s.overflow_visible = low in ("visible", "auto")
        elif prop == "mix-blend-mode":
            s.blend = low != "normal"
        elif prop == "transform":
            if low == "none":
                s.transform = IDENTITY
                return True
            try:
                s.transform = parse_transform(value)
            except ValueError:
                self.report.add("invalid transform", self.current)
                return False
        elif prop == "vector-effect":
            s.non_scaling = low == "non-scaling-stroke"
        return True
