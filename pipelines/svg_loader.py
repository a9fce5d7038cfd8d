"""Compatibility shim: the SVG loader lives in the pipelines/svg/ package."""
import svgelements as se  # noqa: F401  (tests patch svgelements through this name)

from .svg import (  # noqa: F401
                  MAX_ABS_COORD,
                  MAX_BYTES,
                  MAX_CANVAS,
                  MAX_CSS_RULES,
                  MAX_DEPTH,
                  MAX_ELEMENTS,
                  MAX_PARSE_WORK,
                  MAX_SEGMENTS,
                  SVGLoadError,
                  SVGLoadResult,
                  load_svg_sketch,
)
