"""SVG document -> vector Sketch (cubic Bezier paths), hardened against hostile input.

Pipeline of `load_svg_sketch` (load.py):

1. Raw checks (parse.py): input type, size limit, "starts like XML", text encoding.
2. defusedxml parse (parse.py): entity declarations and external references are refused; element count, nesting
   depth and the root tag are checked inside the parser callbacks, so parsing stops at the first violation.
3. Tree clean-up (parse.py, validate.py): unsupported elements lose their content (and are counted), numbers,
   paints and transforms are checked, a malformed path-data tail is cut off with a warning, the cost of <use>
   expansion is bounded; style sheets are parsed and matched (css.py), paint servers collected (paint.py).
4. The renderer walk (build.py) resolves what a browser does for the supported subset: computed styles from the
   cascade with inheritance (style.py), transforms, lengths and units, nested viewports and <symbol> with
   viewBox/preserveAspectRatio and overflow clipping (clip.py), <use>, <switch> and conditional attributes,
   display/visibility, paints and opacities, dashes (dashes.py). Geometry (geometry.py) is built as cubics
   directly. Each shape becomes one fill group under its fill-rule (paths.RawPath); every feature it cannot draw
   gives one warning with the number of elements it affected (report.py).
5. The paths are mapped onto the canvas (canvas.py).

svgelements vs our own walk: svgelements' document model was replaced by our own (build.py, geometry.py)
because it cannot express what section 1 of issue 10 needs (no <symbol> viewBox, <switch> conditions,
!important, viewport clipping, dashes or fill rules), costs a Python object and a re-parse of every inherited
attribute per element (17 s for a 100k-segment path before; ~0.3 s for our parser on 20k segments), and its
regexes needed guards against catastrophic backtracking; our walk reads only the checked tree. svgelements is
kept only as the path-data lexer of the clean-up's validation (parse.py).

Everything the caller can get wrong raises SVGLoadError (a ValueError) with a message naming the problem.
"""
from .limits import (
                     MAX_ABS_COORD,
                     MAX_BYTES,
                     MAX_CANVAS,
                     MAX_CSS_RULES,
                     MAX_DEPTH,
                     MAX_ELEMENTS,
                     MAX_PARSE_WORK,
                     MAX_SEGMENTS,
                     SVGLoadError,
)
from .load import SVGLoadResult, load_svg_sketch

__all__ = ["load_svg_sketch", "SVGLoadError", "SVGLoadResult", "MAX_BYTES", "MAX_ELEMENTS", "MAX_DEPTH",
           "MAX_SEGMENTS", "MAX_CSS_RULES", "MAX_PARSE_WORK", "MAX_ABS_COORD", "MAX_CANVAS"]
