"""The outermost viewport's size, and the mapping of document coordinates onto the canvas (fit or viewport)."""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import replace
from typing import List, Optional, Tuple

import torch

from ..sketch import PathStyle, Sketch
from .geometry import parse_length, parse_viewbox
from .limits import FIT_MARGIN, FORCED_STROKE_WIDTH, MAX_ABS_COORD, MAX_CANVAS, SVGLoadError
from .paths import RawPath


def root_viewport(root: ET.Element, reference: Optional[Tuple[float, float]]) -> Tuple[float, float]:
    """(width, height) of the outermost viewport. Missing or % width/height resolve against `reference` (the
    canvas) if given, else against the viewBox size (or 100 x 100 without one), as resvg does."""
    viewbox = parse_viewbox(root.get("viewBox"))
    sizes = []
    for key, i in (("width", 2), ("height", 3)):
        text = root.get(key)
        value = None
        if text is not None and not text.strip().endswith("%") and text.strip() != "auto":
            value = parse_length(text, 0.0)
        if value is None:
            pct = 100.0
            if text is not None and text.strip().endswith("%"):
                pct = parse_length(text, 100.0) or 100.0
            if reference is not None:
                base = reference[i - 2]
            else:
                base = viewbox[i] if viewbox else 100.0
            value = base * pct / 100.0
        sizes.append(value)
    return sizes[0], sizes[1]



def to_canvas(raw: List[RawPath], viewport: Tuple[float, float], canvas: Optional[int], fit: bool, override: float,
              force_black: bool) -> Sketch:
    """Maps document coordinates onto the canvas. canvas=None: the canvas is the document's own viewport
    (ceil(width) x ceil(height), user units = pixels)."""
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

    pts = torch.tensor([xy for p in raw for xy in p.points], dtype=torch.float64).reshape(-1, 2)
    width, height = viewport
    if canvas is None:
        out_w, out_h = max(1, math.ceil(width - 1e-6)), max(1, math.ceil(height - 1e-6))
        if max(out_w, out_h) > MAX_CANVAS:
            raise SVGLoadError(f"the <svg> viewport is {out_w}x{out_h} pixels (attributes width/height), larger "
                               f"than the canvas limit of {MAX_CANVAS}: pass a canvas_size to scale it")
    else:
        out_w = out_h = canvas
    if fit:
        pad = torch.tensor([w / 2 for p, w in zip(raw, doc_widths) for _ in p.points], dtype=torch.float64)
        lo = (pts - pad[:, None]).min(dim=0).values
        hi = (pts + pad[:, None]).max(dim=0).values
        extent = hi - lo
        avail_x, avail_y = out_w * (1 - 2 * FIT_MARGIN), out_h * (1 - 2 * FIT_MARGIN)
        fixed = max(fixed_widths)
        if min(avail_x, avail_y) - fixed > 0.25 * min(avail_x, avail_y):
            avail_x, avail_y = avail_x - fixed, avail_y - fixed  # fixed-width strokes stick out by half a width
        # extents below 1e-9 (a point, or denormal differences) count as none: they would scale to infinity
        scales = [a / float(e) for a, e in zip((avail_x, avail_y), extent.tolist()) if e > 1e-9]
        scale = min(scales) if scales else 1.0
        out = (pts - (lo + hi) / 2) * scale + torch.tensor([out_w / 2, out_h / 2], dtype=torch.float64)
    else:
        scale = min(out_w / width, out_h / height) if canvas is not None else 1.0
        offset = torch.tensor([(out_w - width * scale) / 2, (out_h - height * scale) / 2], dtype=torch.float64)
        if canvas is None:
            offset = torch.zeros(2, dtype=torch.float64)
        out = pts * scale + offset
        if not torch.isfinite(out).all() or (len(out) and out.abs().max() > MAX_ABS_COORD):
            raise SVGLoadError("absurd coordinates after mapping the viewport onto the canvas")

    n = len(raw)
    black = (0.0, 0.0, 0.0)
    if fit:
        centre = ((lo + hi) / 2).tolist()
        to_out = (scale, 0.0, 0.0, scale, out_w / 2 - centre[0] * scale, out_h / 2 - centre[1] * scale)
    else:
        off = offset.tolist()
        to_out = (scale, 0.0, 0.0, scale, off[0], off[1])
    style = PathStyle(
        num_segments=[len(p.points) // 3 for p in raw],
        closed=[p.closed for p in raw],
        stroke_width=torch.tensor([d * scale + f for d, f in zip(doc_widths, fixed_widths)], dtype=torch.float32),
        stroke_color=torch.tensor([black if force_black or p.stroke_rgb is None else p.stroke_rgb for p in raw],
                                  dtype=torch.float32).reshape(n, 3),
        stroke_opacity=torch.tensor([1.0 if force_black else p.stroke_opacity for p in raw], dtype=torch.float32),
        fill_color=torch.tensor([p.fill_rgb or black for p in raw], dtype=torch.float32).reshape(n, 3),
        fill_opacity=torch.tensor([0.0 if force_black else p.fill_opacity for p in raw], dtype=torch.float32),
        fill_rule=[p.rule for p in raw],
        fill_group=[p.group for p in raw],
    )
    # The document's caps and joins (force_black, LiveSketch's normalisation, keeps round ones, as diffvg draws);
    # all round is left as the default (None).
    if not force_black and any(p.stroke_rgb is not None and (p.linecap != "round" or p.linejoin != "round")
                               for p in raw):
        style = replace(style, stroke_linecap=[p.linecap for p in raw], stroke_linejoin=[p.linejoin for p in raw],
                        stroke_miterlimit=[float(p.miterlimit) for p in raw])
    # Gradients (document coordinates -> canvas); force_black draws flat black strokes and no fills.
    if not force_black and any(p.fill_paint is not None for p in raw):
        style = replace(style, fill_paint=[None if p.fill_paint is None else p.fill_paint.transformed(to_out)
                                           for p in raw])
    if not force_black and any(p.stroke_paint is not None for p in raw):
        style = replace(style, stroke_paint=[None if p.stroke_paint is None else p.stroke_paint.transformed(to_out)
                                             for p in raw])
    return Sketch(points=out.to(torch.float32), style=style, width=out_w, height=out_h)
