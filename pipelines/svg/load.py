"""The public entry point: load_svg_sketch and its result type."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Union

from ..sketch import Sketch
from .build import ANIMATIONS, build_paths
from .canvas import root_viewport, to_canvas
from .clip import collect_clip_rects
from .limits import MAX_CANVAS, SVGLoadError
from .markers import collect_markers
from .parse import _check_source, _Cleaner, _parse_xml

log = logging.getLogger("VideoPriors")


@dataclass
class SVGLoadResult:
    sketch: Sketch
    warnings: List[str]
    skipped: Dict[str, int]  # unsupported element tag -> number of elements dropped



def load_svg_sketch(source: Union[bytes, str], canvas_size: Optional[int] = 256, fit: bool = True,
                    stroke_width: float = 0.0, force_black: bool = False, max_paths: int = 0) -> SVGLoadResult:
    """Parse an SVG document (bytes or the SVG text) into a Sketch of cubic Bezier paths.

    canvas_size: output canvas is canvas_size x canvas_size pixels. canvas_size=None: the canvas is the
        document's own viewport, ceil(width) x ceil(height) pixels (non-square allowed), user units = pixels;
        width/height missing or in % resolve against the viewBox size (100 x 100 without one), as resvg does.
        This is the mode to compare with other renderers (use fit=False with it).
    fit: True fits the content (control points plus half stroke width) into the canvas with a 5 % margin,
        centred, keeping aspect ratio (the document's viewport does not matter: content outside it is
        included). False maps the document viewport onto the canvas: the viewBox is mapped into the viewport by
        preserveAspectRatio; width/height missing or in % resolve against the canvas; a viewport that is not
        square is scaled uniformly and centred, and content outside the viewport is clipped (fills exactly,
        strokes cut where they leave it) so that it is not drawn in the margins. A square viewport fills the
        canvas: content outside it lies off-canvas and is kept.
    stroke_width: > 0 overrides the width (canvas px) of every stroked path; 0 keeps the document's widths.
    force_black: LiveSketch convention, black opaque strokes and no fills; unstroked paths get a stroke
        (stroke_width if > 0, else 1.5).
    max_paths: > 0 keeps only the first max_paths paths in document order (with a warning).

    Each shape is one fill group (Sketch's PathStyle.fill_group) of its subpaths, under its fill-rule.
    Every feature that is not drawn (text, images, filters, masks, clip paths, animation, ...) gives one warning
    naming it and the number of elements it affected. Linear and radial gradients are drawn (PathStyle.fill_paint /
    stroke_paint); patterns are drawn as one flat colour.
    """
    if canvas_size is not None and (isinstance(canvas_size, bool) or not isinstance(canvas_size, int)
                                    or not 1 <= canvas_size <= MAX_CANVAS):
        raise SVGLoadError(f"canvas_size must be an integer in [1, {MAX_CANVAS}] or None, got {canvas_size!r}")
    if not (isinstance(stroke_width, (int, float)) and math.isfinite(stroke_width)
            and 0 <= stroke_width <= MAX_CANVAS):
        raise SVGLoadError(f"stroke_width must be a number in [0, {MAX_CANVAS}], got {stroke_width!r}")
    if isinstance(max_paths, bool) or not isinstance(max_paths, int) or max_paths < 0:
        raise SVGLoadError(f"max_paths must be a non-negative integer, got {max_paths!r}")

    root = _parse_xml(_check_source(source))
    cleaner = _Cleaner(root)
    try:
        clip_rects = collect_clip_rects(root)  # before the clean-up empties <clipPath> and <marker>
        markers = collect_markers(root)
        cleaner.run()
    except SVGLoadError:
        raise
    except Exception as exc:  # a bug of ours must still surface as the loader's error
        raise SVGLoadError(f"internal error while checking the document: {type(exc).__name__}: {exc}") from exc
    warnings = list(cleaner.warnings)

    reference = None if canvas_size is None else (float(canvas_size), float(canvas_size))
    try:
        vw, vh = root_viewport(root, reference)
        # The outermost viewport is clipped only where the canvas would show what lies outside it: a viewport
        # that is not square, letterboxed on the square canvas. Otherwise the canvas edge is the viewport edge and
        # geometry outside it is kept whole, off-canvas (as LiveSketch's reference keeps it: an animation may
        # bring it in). fit=True frames the content itself, whatever the viewport, so nothing is cut either.
        clip_root = not fit and canvas_size is not None and abs(vw - vh) > 1e-9 * max(vw, vh)
        viewport = (vw, vh)
        raw, report = build_paths(root, cleaner.css, cleaner.paint_servers, cleaner.ids, viewport,
                                  clip_root=clip_root, clip_rects=clip_rects, markers=markers)
    except SVGLoadError:
        raise
    except Exception as exc:  # a bug of ours must still surface as the loader's error
        raise SVGLoadError(f"internal error while building the sketch: {type(exc).__name__}: {exc}") from exc
    animations = sum(cleaner.skipped.get(name, 0) for name in ANIMATIONS)  # also those inside shapes
    if animations:
        report.counts["animation"] = animations
    warnings[:0] = report.warnings()

    if not raw:
        reason = "empty SVG: no paths"
        if report.counts:
            reason += " (only unsupported content: " + ", ".join(sorted(report.counts)) + ")"
        elif cleaner.skipped:
            reason += " (only unsupported elements: " + ", ".join(sorted(cleaner.skipped)) + ")"
        elif cleaner.malformed:
            reason += f" (malformed path data: {cleaner.malformed[0]})"
        raise SVGLoadError(reason)
    if max_paths and len(raw) > max_paths:
        warnings.append(f"max_paths={max_paths}: dropped {len(raw) - max_paths} of {len(raw)} paths")
        raw = raw[:max_paths]

    try:
        sketch = to_canvas(raw, viewport, canvas_size, fit, float(stroke_width), force_black)
    except SVGLoadError:
        raise
    except Exception as exc:  # as above
        raise SVGLoadError(f"internal error while mapping onto the canvas: {type(exc).__name__}: {exc}") from exc
    for message in warnings:
        log.warning("SVG loader: %s", message)
    return SVGLoadResult(sketch=sketch, warnings=warnings, skipped=dict(cleaner.skipped))
