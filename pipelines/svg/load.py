"""The public entry point: load_svg_sketch and its result type."""
from __future__ import annotations

import io
import logging
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Dict, List, Union

import svgelements as se

from ..sketch import Sketch
from .build import _collect_paths, _to_canvas
from .limits import MAX_CANVAS, SVGLoadError
from .paint import _PaintResolver
from .parse import _Cleaner, _check_source, _parse_xml

log = logging.getLogger("VideoPriors")


@dataclass
class SVGLoadResult:
    sketch: Sketch
    warnings: List[str]
    skipped: Dict[str, int]  # unsupported element tag -> number of elements dropped



def load_svg_sketch(source: Union[bytes, str], canvas_size: int = 256, fit: bool = True, stroke_width: float = 0.0,
                    force_black: bool = False, max_paths: int = 0) -> SVGLoadResult:
    """Parse an SVG document (bytes or the SVG text) into a Sketch of cubic Bezier paths.

    canvas_size: output canvas is canvas_size x canvas_size pixels.
    fit: True fits the content (control points plus half stroke width) into the canvas with a 5 % margin,
        centred, keeping aspect ratio. False maps the document viewport onto the canvas: the viewBox is mapped
        into the viewport by preserveAspectRatio; width/height missing or in % resolve against the canvas; a
        viewport that is not square is scaled uniformly and centred.
    stroke_width: > 0 overrides the width (canvas px) of every stroked path; 0 keeps the document's widths.
    force_black: LiveSketch convention, black opaque strokes and no fills; unstroked paths get a stroke
        (stroke_width if > 0, else 1.5).
    max_paths: > 0 keeps only the first max_paths paths in document order (with a warning).
    """
    if isinstance(canvas_size, bool) or not isinstance(canvas_size, int) or not 1 <= canvas_size <= MAX_CANVAS:
        raise SVGLoadError(f"canvas_size must be an integer in [1, {MAX_CANVAS}], got {canvas_size!r}")
    if not (isinstance(stroke_width, (int, float)) and math.isfinite(stroke_width)
            and 0 <= stroke_width <= MAX_CANVAS):
        raise SVGLoadError(f"stroke_width must be a number in [0, {MAX_CANVAS}], got {stroke_width!r}")
    if isinstance(max_paths, bool) or not isinstance(max_paths, int) or max_paths < 0:
        raise SVGLoadError(f"max_paths must be a non-negative integer, got {max_paths!r}")

    root = _parse_xml(_check_source(source))
    cleaner = _Cleaner(root)
    cleaner.run()
    warnings = list(cleaner.warnings)

    paint = _PaintResolver(cleaner.paint_servers)
    try:
        doc = se.SVG.parse(io.BytesIO(ET.tostring(root, encoding="utf-8")), reify=False, ppi=se.DEFAULT_PPI,
                           width=canvas_size, height=canvas_size, color="black")
        raw = _collect_paths(doc, paint) if isinstance(doc, se.SVG) else []
    except SVGLoadError:
        raise
    except Exception as exc:  # svgelements has many unchecked paths (IndexError, ZeroDivisionError, ...)
        raise SVGLoadError(f"svgelements failed on this SVG: {type(exc).__name__}: {exc}") from exc

    if cleaner.skipped:
        names = ", ".join(f"{name}\u00d7{count}" for name, count in sorted(cleaner.skipped.items()))
        note = " (gradient/pattern paints drawn as a flat colour)" if paint.fallbacks else ""
        warnings.insert(0, f"skipped unsupported SVG elements: {names}{note}")

    if not raw:
        reason = "empty SVG: no paths"
        if cleaner.skipped:
            reason += " (only unsupported elements: " + ", ".join(sorted(cleaner.skipped)) + ")"
        elif cleaner.malformed:
            reason += f" (malformed path data: {cleaner.malformed[0]})"
        raise SVGLoadError(reason)
    if max_paths and len(raw) > max_paths:
        warnings.append(f"max_paths={max_paths}: dropped {len(raw) - max_paths} of {len(raw)} paths")
        raw = raw[:max_paths]

    sketch = _to_canvas(raw, doc, canvas_size, fit, float(stroke_width), force_black)
    for message in warnings:
        log.warning("SVG loader: %s", message)
    return SVGLoadResult(sketch=sketch, warnings=warnings, skipped=dict(cleaner.skipped))
