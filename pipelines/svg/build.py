"""Building the Sketch: svgelements' resolved document -> styled cubic paths -> canvas coordinates."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

import svgelements as se
import torch

from ..sketch import PathStyle, Sketch
from .geometry import Point2, _subpaths
from .limits import FIT_MARGIN, FORCED_STROKE_WIDTH, MAX_ABS_COORD, SVGLoadError
from .paint import _PaintResolver, _unit_interval

@dataclass
class _RawPath:
    points: List[Point2]  # document (viewport px) coordinates, sketch layout
    closed: bool
    stroke_rgb: Optional[Tuple[float, float, float]]  # None = no stroke
    stroke_opacity: float
    stroke_width: float  # document px, 0 = no stroke
    fill_rgb: Optional[Tuple[float, float, float]]  # None = no fill
    fill_opacity: float



def _iter_shapes(doc) -> Iterator[Tuple[se.Shape, float]]:
    """Shapes in document order with the product of their ancestors' and own `opacity`.

    svgelements copies inherited values down the tree but `opacity` is not inherited in SVG, it composes;
    so multiply each node's own attribute along the chain.
    """
    stack = [(doc, 1.0)]
    while stack:
        node, opacity = stack.pop()
        own = getattr(node, "values", {}).get(se.SVG_STRUCT_ATTRIB, {}) or {}
        opacity *= _unit_interval(own.get("opacity"))
        if isinstance(node, se.Shape):
            yield node, opacity
        elif isinstance(node, list):  # SVG, Group, Use
            stack.extend((child, opacity) for child in reversed(node))


def _collect_paths(doc, paint: _PaintResolver) -> List[_RawPath]:
    out: List[_RawPath] = []
    for shape, opacity in _iter_shapes(doc):
        values = shape.values
        if str(values.get("visibility", "visible")).strip().lower() in ("hidden", "collapse"):
            continue
        stroke_rgb, stroke_alpha = paint(values, "stroke")
        fill_rgb, fill_alpha = paint(values, "fill")
        width = shape.implicit_stroke_width  # local width x sqrt|det| of the total transform (non-scaling-stroke aware)
        width = 1.0 if width is None else float(width)
        if not math.isfinite(width):
            raise SVGLoadError(f"non-finite stroke width on {shape.values.get('tag', 'shape')}")
        if width > MAX_ABS_COORD:
            raise SVGLoadError(f"absurd stroke width {width:g} (limit {MAX_ABS_COORD:g})")
        if stroke_rgb is None or width <= 0:
            stroke_rgb, width = None, 0.0
        stroke_opacity = stroke_alpha * _unit_interval(values.get("stroke-opacity")) * opacity if stroke_rgb else 0.0
        fill_opacity = fill_alpha * _unit_interval(values.get("fill-opacity")) * opacity if fill_rgb else 0.0
        m = shape.transform
        a, b, c, d, e, f = (float(v) for v in (m.a, m.b, m.c, m.d, m.e, m.f))
        for pts, closed in _subpaths(shape.segments(transformed=False)):
            doc_pts = [(a * x + c * y + e, b * x + d * y + f) for x, y in pts]
            for x, y in doc_pts:
                if not (math.isfinite(x) and math.isfinite(y)):
                    raise SVGLoadError("non-finite coordinate after applying transforms")
                if abs(x) > MAX_ABS_COORD or abs(y) > MAX_ABS_COORD:
                    raise SVGLoadError(f"absurd coordinate ({x:g}, {y:g}) after applying transforms "
                                       f"(limit |x| <= {MAX_ABS_COORD:g})")
            out.append(_RawPath(doc_pts, closed, stroke_rgb, stroke_opacity, width, fill_rgb, fill_opacity))
    return out



def _to_canvas(raw: List[_RawPath], doc, canvas: int, fit: bool, override: float, force_black: bool) -> Sketch:
    # Output widths: either document widths (scale with the canvas mapping) or fixed canvas pixels.
    doc_widths, fixed_widths = [], []
    for p in raw:
        stroked = p.stroke_rgb is not None
        if override > 0 and (stroked or force_black):
            doc_widths.append(0.0)
            fixed_widths.append(override)
        elif stroked:
            doc_widths.append(p.stroke_width)
            fixed_widths.append(0.0)
        else:
            doc_widths.append(0.0)
            fixed_widths.append(FORCED_STROKE_WIDTH if force_black else 0.0)

    pts = torch.tensor([xy for p in raw for xy in p.points], dtype=torch.float64)
    if fit:
        pad = torch.tensor([w / 2 for p, w in zip(raw, doc_widths) for _ in p.points], dtype=torch.float64)
        lo = (pts - pad[:, None]).min(dim=0).values
        hi = (pts + pad[:, None]).max(dim=0).values
        extent = hi - lo
        avail = canvas * (1 - 2 * FIT_MARGIN)
        if avail - max(fixed_widths) > 0.25 * avail:
            avail -= max(fixed_widths)  # fixed-width strokes stick out by half a width on each side
        positive = extent[extent > 0]
        scale = float(avail / positive.max()) if len(positive) else 1.0
        out = (pts - (lo + hi) / 2) * scale + canvas / 2
    else:
        width, height = float(doc.width), float(doc.height)
        if not (width > 0 and height > 0 and math.isfinite(width) and math.isfinite(height)):
            raise SVGLoadError(f"empty SVG: the viewport is {width:g}x{height:g}, nothing is rendered")
        scale = canvas / max(width, height)  # a non-square viewport is shown whole, centred
        offset = torch.tensor([(canvas - width * scale) / 2, (canvas - height * scale) / 2], dtype=torch.float64)
        out = pts * scale + offset
        if not torch.isfinite(out).all() or out.abs().max() > MAX_ABS_COORD:
            raise SVGLoadError("absurd coordinates after mapping the viewport onto the canvas")

    n = len(raw)
    black = (0.0, 0.0, 0.0)
    style = PathStyle(
        num_segments=[len(p.points) // 3 for p in raw],
        closed=[p.closed for p in raw],
        stroke_width=torch.tensor([d * scale + f for d, f in zip(doc_widths, fixed_widths)], dtype=torch.float32),
        stroke_color=torch.tensor([black if force_black or p.stroke_rgb is None else p.stroke_rgb for p in raw],
                                  dtype=torch.float32).reshape(n, 3),
        stroke_opacity=torch.tensor([1.0 if force_black else p.stroke_opacity for p in raw], dtype=torch.float32),
        fill_color=torch.tensor([p.fill_rgb or black for p in raw], dtype=torch.float32).reshape(n, 3),
        fill_opacity=torch.tensor([0.0 if force_black else p.fill_opacity for p in raw], dtype=torch.float32),
    )
    return Sketch(points=out.to(torch.float32), style=style, width=canvas, height=canvas)
