"""Attribute values checked before svgelements reads them, so that a bad value is refused with an error that names
the element and the attribute instead of failing somewhere inside svgelements: every number finite and bounded,
transform lists well-formed (argument counts, bounded length), numbers in paints and opacities included, in
attributes, in style="" declarations and in the style sheet's declarations for each element."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Dict, Optional

from .css import parse_declarations
from .limits import _FLOAT_RE, _NONFINITE_WORD_RE, MAX_TRANSFORM_FUNCTIONS, SVGLoadError, _check_numbers, _check_value
from .xmlutil import describe

# Attributes (or style properties) whose numbers svgelements converts; 'd' and 'points' have their own checks.
_NUMERIC = frozenset(("x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry", "width", "height", "viewBox",
                      "stroke-width", "opacity", "fill-opacity", "stroke-opacity", "stop-opacity", "stroke-miterlimit",
                      "stroke-dashoffset", "stroke-dasharray", "font-size", "offset"))
_PAINT = frozenset(("fill", "stroke", "color", "stop-color"))
_TRANSFORMS = frozenset(("transform", "gradientTransform", "patternTransform"))
_CHECKED = _NUMERIC | _PAINT | _TRANSFORMS
_FUNCTION_RE = re.compile(r"([A-Za-z]+)[ \t\r\n\f]*\(([^()]*)\)")  # linear: no nesting, no backtracking
# Argument counts of the transform functions (SVG's and CSS's; names compared case-insensitively).
_ARGUMENTS = {"matrix": (6,), "translate": (1, 2), "translatex": (1,), "translatey": (1,), "scale": (1, 2),
              "scalex": (1,), "scaley": (1,), "rotate": (1, 3), "skew": (1, 2), "skewx": (1,), "skewy": (1,)}
_NOT_NUMBERS_IN_PAINT = re.compile(r"url\([^)]*\)|#[0-9A-Za-z_-]*")  # references and hex colours hold no numbers


def check_transform(text: str, where: str) -> None:
    """Every function call in a transform list has its number of arguments, each finite and bounded, and the list
    is not absurdly long. Anything else that does not parse is left to the builder (SVG 2: ignored, warned)."""
    if _NONFINITE_WORD_RE.search(text):
        raise SVGLoadError(f"non-finite number (NaN/inf) in {where}")
    count = 0
    for name, params in _FUNCTION_RE.findall(text):
        name = name.lower()
        if name not in _ARGUMENTS:
            continue
        count += 1
        if count > MAX_TRANSFORM_FUNCTIONS:
            raise SVGLoadError(f"too many transform functions in {where}: more than the limit of "
                               f"{MAX_TRANSFORM_FUNCTIONS}")
        values = _FLOAT_RE.findall(params)
        if len(values) not in _ARGUMENTS[name]:
            wanted = " or ".join(map(str, _ARGUMENTS[name]))
            raise SVGLoadError(f"malformed transform in {where}: {name}() takes {wanted} numbers, got {len(values)}")
        for value in values:
            _check_value(float(value), where)


def _check(key: str, value: str, where: str) -> None:
    if key in _TRANSFORMS:
        check_transform(value, where)
    elif key in _NUMERIC:
        _check_numbers(value, where)
    elif key in _PAINT:
        _check_numbers(_NOT_NUMBERS_IN_PAINT.sub(" ", value), where)


def check_values(root: ET.Element, sheet: Optional[Dict] = None) -> None:
    """Checks every element's numeric, paint and transform attributes, its style="" declarations and the style
    sheet's declarations that match it (`sheet`: element -> [(specificity, (property, value, important))])."""
    sheet = sheet or {}
    for elem in root.iter():
        attrib = elem.attrib
        for key in _CHECKED.intersection(attrib):
            _check(key, attrib[key], f"{describe(elem)} attribute {key}")
        style = attrib.get("style")
        if style:
            for key, value, _important in parse_declarations(style):  # as the cascade reads them
                if key in _CHECKED:
                    _check(key, value, f"{describe(elem)} style property {key}")
        for _specificity, (key, value, _important) in sheet.get(elem, ()):
            if key in _CHECKED:
                _check(key, value, f"the style sheet's {key} for {describe(elem)}")
