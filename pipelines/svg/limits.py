"""The SVG loader's error type, its limits against hostile input, and the number checks that enforce them."""
from __future__ import annotations

import math
import re

# Limits against hostile input. Each bounds the work of one load so that every load finishes or is refused within
# 2 s on 2 shared cores (measured by bench/bench_svg_limits.py: worst accepted document per limit); real sketches
# and icons stay far below them (an icon has tens of elements and hundreds of segments).
MAX_BYTES = 10 * 1024 * 1024  # document size
MAX_ELEMENTS = 5_000  # XML elements, also after expanding <use>
MAX_DEPTH = 200  # element nesting, also through <use>; svgelements recurses per level
MAX_SEGMENTS = 20_000  # path segments (a moveto counts one, an arc ARC_SEGMENT_COST) in the document, after <use>
ARC_SEGMENT_COST = 4  # an elliptical arc costs svgelements about four line segments (parameterisation, up to 4 cubics)
MAX_CSS_RULES = 10_000  # selectors in all <style> elements
MAX_PARSE_WORK = 2_000_000  # attribute characters the walk parses (<use> instances again), see parse._check_expansion
MAX_TRANSFORM_FUNCTIONS = 1_000  # functions in one transform list
MAX_GRADIENT_STOP_USES = 50_000  # gradient stops summed over every fill/stroke painted with a gradient
MAX_ABS_COORD = 1e7  # any coordinate / number beyond this is treated as hostile
MIN_ARC_RADIUS = 1e-9  # a non-zero arc radius below this underflows svgelements' arithmetic: refused
MAX_CANVAS = 16384
FIT_MARGIN = 0.05  # fit=True leaves this fraction of the canvas free on each side
FORCED_STROKE_WIDTH = 1.5  # force_black: stroke width for paths that had no stroke
PATTERN_FALLBACK_RGB = (0.5, 0.5, 0.5)  # flat colour for pattern paints

_FLOAT = r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_FLOAT_RE = re.compile(_FLOAT)
_NONFINITE_WORD_RE = re.compile(r"(?i)(?<![a-z])[-+]?(?:nan|inf(?:inity)?)(?![a-z])")
_NONFINITE_IN_D_RE = re.compile(r"(?i)nan|inf")  # path data has no words, so any 'nan'/'inf' is a number
_POINTS_BAD_CHAR_RE = re.compile(r"[^0-9eE.+\-,\s]")


class SVGLoadError(ValueError):
    """The SVG was rejected; the message names the problem."""



def _check_numbers(text: str, where: str) -> None:
    if _NONFINITE_WORD_RE.search(text):
        raise SVGLoadError(f"non-finite number (NaN/inf) in {where}")
    for match in _FLOAT_RE.finditer(text):
        _check_value(float(match.group()), where)


def _check_value(value: float, where: str) -> None:
    if not math.isfinite(value):
        raise SVGLoadError(f"non-finite number (NaN/inf, or too large for a float) in {where}")
    if abs(value) > MAX_ABS_COORD:
        raise SVGLoadError(f"absurd coordinate {value:g} in {where} (limit |x| <= {MAX_ABS_COORD:g})")


def _too_many_segments(after_use: bool = False) -> SVGLoadError:
    how = " after expanding <use> references" if after_use else ""
    return SVGLoadError(f"SVG has too many path segments{how}: more than the limit of {MAX_SEGMENTS}")
