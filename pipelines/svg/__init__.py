"""SVG document -> vector Sketch (cubic Bezier paths), hardened against hostile input.

Pipeline of `load_svg_sketch`:

1. Raw checks (parse.py): input type, size limit, "starts like XML", text encoding.
2. defusedxml parse (parse.py): entity declarations and external references are refused; element count, nesting
   depth and the root tag are checked inside the parser callbacks, so parsing stops at the first violation.
3. Tree clean-up (parse.py, css.py, paint.py): unsupported elements are dropped (and counted), path data is
   checked with svgelements' own path lexer (a malformed tail is cut off with a warning; NaN/inf/absurd numbers
   reject the document), <style> rules are applied by a linear parser of ours, and the cost of what svgelements
   will do is bounded (<use> expansion, segments, inherited attributes). The cleaned tree is re-serialised, so
   svgelements never sees a DTD, a style sheet or anything else that was not checked.
4. svgelements resolves geometry, transforms, viewBox/preserveAspectRatio, presentation attributes,
   style="" and inheritance.
5. Every segment becomes a cubic (geometry.py), every subpath one sketch path; the result is mapped onto the
   canvas (build.py).

Everything the caller can get wrong raises SVGLoadError (a ValueError) with a message naming the problem.
Modules: limits.py (error type, limits), parse.py, css.py, paint.py, geometry.py, build.py, load.py.
"""
from .limits import (MAX_ABS_COORD, MAX_BYTES, MAX_CANVAS, MAX_CSS_RULES, MAX_DEPTH, MAX_ELEMENTS, MAX_PARSE_WORK,
                     MAX_SEGMENTS, SVGLoadError)
from .load import SVGLoadResult, load_svg_sketch

__all__ = ["load_svg_sketch", "SVGLoadError", "SVGLoadResult", "MAX_BYTES", "MAX_ELEMENTS", "MAX_DEPTH",
           "MAX_SEGMENTS", "MAX_CSS_RULES", "MAX_PARSE_WORK", "MAX_ABS_COORD", "MAX_CANVAS"]
