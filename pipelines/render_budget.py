"""Rendering within a memory budget: the working memory of a render is estimated before anything
is allocated, and a render that would exceed the budget is split into tiles that each fit.

Why: the rasterizer's memory grows with the number of (line piece, pixel) pairs of its strokes,
the area of its fills and the number of layers stacked on one pixel. A drawing of 50,000 lines
rendered in one call asked for 5.5-9.5 GB; an animation of 256 frames at 2048 x 2048 for much more.

Tiles, split in this order until the estimate fits (`render_bounded`):
1. frames (frames are independent);
2. paths, in drawing order, never splitting a fill group: each group of paths is rendered on a
   transparent background and composited with "over" in premultiplied alpha (associative, so the
   result equals the single call up to rounding; with quality > 1 this happens at the sampling
   resolution, strip by strip, before averaging, as the rasterizer does);
3. rows of the output (coverage of a pixel only depends on the geometry, so a horizontal strip of
   the image is the image of the shifted drawing).
The estimate (`estimate_tile_bytes`) is computed per frame and path from the geometry, without
flattening: pieces per cubic as the rasterizer chooses them (length / MAX_PIECE_LENGTH and the
flattening bound), the bounding box of each piece grown by the stroke's reach, the bounding box
area of each fill (and of each stroke drawn as an outline, i.e. with SVG caps or joins that are not
round: the band along its path plus what it encloses), and a bound on the layers stacked on one pixel (bounding boxes counted on a
coarse grid). Bytes per unit were measured with LiveTensorMemory and rounded up;
tests/test_render_budget.py checks that the estimate bounds the measured peak.

Pure PyTorch, no ComfyUI import.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from . import raster
from .sketch import PathStyle

# Bytes of working memory per unit, measured on CPU float32 with LiveTensorMemory
# (strokes ~55 B per estimated pair, fills up to ~110 B per estimated span pixel) and rounded up.
BYTES_PER_STROKE_PAIR = 64
BYTES_PER_FILL_PIXEL = 128
BYTES_PER_LAYER_PIXEL = 12  # the compositing table: depth x touched pixels (alpha + weight + index)
BYTES_PER_OUTPUT_VALUE = 4
DEFAULT_BUDGET = 512 * 1024 ** 2  # working memory of one tile; the output itself is counted apart
GRID = 64  # cells per side of the coarse grid that bounds the layers stacked on one pixel


def gib(nbytes: float) -> str:
    """Bytes for a message, in decimal units (GB = 10^9 bytes)."""
    return f"{nbytes / 1e9:.1f} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.0f} MB"


def output_bytes(frames: int, width: int, height: int, channels: int = 3) -> int:
    """Bytes of a float32 [frames, height, width, channels] result (ComfyUI IMAGE)."""
    return int(frames) * int(width) * int(height) * int(channels) * BYTES_PER_OUTPUT_VALUE


@dataclass
class _Costs:
    stroke: torch.Tensor  # [K, P] candidate (piece, pixel) pairs of each path's stroke
    fill: torch.Tensor  # [K, P] bounding-box pixels of each path's fill
    box: torch.Tensor  # [K, P, 4] x0, y0, x1, y1 in output pixels (supersampled), reach included
    layers: torch.Tensor  # [P] layers of each path (0, 1 or 2)
    # Boxes that bound where each layer can touch (for the layers stacked on one pixel): the boxes of
    # short pieces of every stroke, the whole box of every fill.
    cover_box: torch.Tensor  # [B, 4]
    cover_frame: torch.Tensor  # [B]
    cover_path: torch.Tensor  # [B]
    cell: float  # grid cell size in output pixels


def _path_costs(pts: torch.Tensor, style: PathStyle, scale: float, cell: float) -> _Costs:
    """Per frame and path: stroke pairs, fill pixels and bounding box; pts [K, N, 2] already scaled."""
    K, P = pts.shape[0], style.num_paths
    width = style.stroke_width.detach().reshape(-1).float() * scale
    stroked = width > 0
    filled = style.fill_opacity.detach().reshape(-1).float() > 0
    reach = width * 0.5 + 1.5  # half width plus the anti-aliasing reach of the rasterizer
    seg = style.segment_index()
    seg_path = style.segment_path()
    ctrl = pts[:, seg]  # [K, C, 4, 2]
    polygon = (ctrl[:, :, 1:] - ctrl[:, :, :-1]).norm(dim=-1).sum(-1)  # [K, C] (the outlines' band length below)
    n = raster.pieces_per_cubic(ctrl)  # [K, C], as many pieces as the rasterizer's flattening makes
    r = reach[seg_path].unsqueeze(0)
    span = ctrl.amax(2) - ctrl.amin(2)  # [K, C, 2] the cubic's box; its n pieces share it
    pairs = n * (span[..., 0] / n + 2 * r + 1) * (span[..., 1] / n + 2 * r + 1)  # piece boxes grown by the reach
    stroke = torch.zeros(K, P).index_add_(1, seg_path, pairs) * stroked
    # Per path bounding box over its points (control points bound the curve).
    counts = torch.tensor(style.points_per_path(), dtype=torch.long)
    owner = torch.repeat_interleave(torch.arange(P), counts)
    lo = torch.full((K, P, 2), math.inf).scatter_reduce(1, owner.view(1, -1, 1).expand(K, -1, 2), pts,
                                                        reduce="amin", include_self=True)
    hi = torch.full((K, P, 2), -math.inf).scatter_reduce(1, owner.view(1, -1, 1).expand(K, -1, 2), pts,
                                                         reduce="amax", include_self=True)
    grow = reach.view(1, P, 1)
    box = torch.cat([lo - grow, hi + grow], -1)
    bw, bh = (box[..., 2] - box[..., 0]).clamp_min(0) + 2, (box[..., 3] - box[..., 1]).clamp_min(0) + 2
    # Pixels the fill's row spans materialise: about the enclosed area (shoelace area of the control
    # polygon) plus a border, but at least a quarter of the box (spans bridge concave parts), except
    # for a single straight-ish segment (a <line>), which encloses nothing; never more than the box.
    x, y = pts[..., 0], pts[..., 1]
    cross = x * torch.roll(y, -1, 1) - torch.roll(x, -1, 1) * y  # per point; the path's own closing term below
    first = torch.tensor(style.path_offsets(), dtype=torch.long)
    last = first + counts - 1
    closing = pts[:, last, 0] * pts[:, first, 1] - pts[:, first, 0] * pts[:, last, 1]
    own = torch.ones(pts.shape[1], dtype=torch.bool)
    own[last] = False  # the roll's term at a path's last point pairs it with the next path's first
    shoelace = (torch.zeros(K, P).index_add_(1, owner, cross * own) + closing).abs() * 0.5
    single = torch.tensor([n_seg == 1 and not c for n_seg, c in zip(style.num_segments, style.closed)],
                          dtype=torch.bool).view(1, -1)
    floor = torch.where(single, torch.zeros_like(bw), 0.25 * bw * bh)
    encloses = filled.view(1, -1) & ~(single & (shoelace < 1))  # [K, P]; a straight <line> encloses nothing
    fill = torch.minimum(torch.maximum(shoelace, floor) + 2 * (bw + bh), bw * bh) * encloses
    # A stroke drawn as an outline (SVG caps and joins) is filled by the fill code: its rows' spans cover the
    # band along the path (length x (width + margin)) and what the path encloses, at most its box.
    outlined = torch.tensor(raster.outlined_paths(style), dtype=torch.bool) & stroked
    length = torch.zeros(K, P).index_add_(1, seg_path, polygon)
    band = shoelace + length * (2 * reach.view(1, -1) + 2) + 2 * (bw + bh)
    fill = fill + torch.minimum(torch.maximum(band, floor), bw * bh) * outlined.view(1, -1)
    layers = stroked.long() + filled.long()
    # Stroke cover boxes: each cubic cut into pieces about one grid cell long (at most 64), each piece's
    # chord box grown by the reach (the curve stays within its flattening tolerance of the chords).
    C = seg.shape[0]
    m = (span.amax(-1) / cell).ceil().clamp(1, 64).long().reshape(-1)  # [K*C]
    m = m * stroked[seg_path].repeat(K).long()
    owner_c, j = raster._ragged_range(m)
    j = j.float()
    mm = m[owner_c].float()
    g = ctrl.reshape(K * C, 4, 2)[owner_c]
    a = (raster._bernstein(j / mm).unsqueeze(-1) * g).sum(1)
    b = (raster._bernstein((j + 1) / mm).unsqueeze(-1) * g).sum(1)
    rr = reach[seg_path].repeat(K)[owner_c].unsqueeze(-1) + raster.FLATTEN_TOLERANCE
    sbox = torch.cat([torch.minimum(a, b) - rr, torch.maximum(a, b) + rr], -1)
    sframe = torch.div(owner_c, C, rounding_mode="floor")
    spath = seg_path.repeat(K)[owner_c]
    fk, fp = torch.nonzero(encloses, as_tuple=True)
    return _Costs(stroke, fill, box, layers, torch.cat([sbox, box[fk, fp]]), torch.cat([sframe, fk]),
                  torch.cat([spath, fp]), float(cell))


def _clip_fraction(box: torch.Tensor, y0: int, y1: int, x1: int) -> torch.Tensor:
    """Fraction of each box's height inside rows [y0, y1) and inside the image (0 outside)."""
    top, bottom = box[..., 1], box[..., 3]
    inside_x = (box[..., 2] >= 0) & (box[..., 0] <= x1)
    h = (bottom - top).clamp_min(1.0)
    part = (torch.minimum(bottom, torch.tensor(float(y1))) - torch.maximum(top, torch.tensor(float(y0)))).clamp_min(0)
    return (part / h).clamp(0, 1) * inside_x


def _max_stack(costs: _Costs, frames: slice, paths: slice, y0: int, y1: int, W: int) -> int:
    """Upper bound of the layers on one pixel of the tile: cover boxes counted on a coarse grid."""
    f, p = costs.cover_frame, costs.cover_path
    box = costs.cover_box
    sel = (f >= frames.start) & (f < frames.stop) & (p >= paths.start) & (p < paths.stop)
    sel &= (box[:, 2] >= 0) & (box[:, 0] <= W) & (box[:, 3] >= y0) & (box[:, 1] <= y1)
    idx = torch.nonzero(sel).squeeze(1)
    if idx.numel() == 0:
        return 0
    box, f = box[idx], f[idx] - frames.start
    k = frames.stop - frames.start
    gw = int(math.ceil(W / costs.cell)) + 1
    gh = int(math.ceil((y1 - y0) / costs.cell)) + 1
    gx0 = (box[:, 0] / costs.cell).floor().clamp(0, gw - 1).long()
    gx1 = (box[:, 2] / costs.cell).floor().clamp(0, gw - 1).long()
    gy0 = ((box[:, 1] - y0) / costs.cell).floor().clamp(0, gh - 1).long()
    gy1 = ((box[:, 3] - y0) / costs.cell).floor().clamp(0, gh - 1).long()
    diff = torch.zeros(k, gh + 1, gw + 1, dtype=torch.int32)
    flat = diff.view(-1)
    stride = (gh + 1) * (gw + 1)
    one = torch.ones_like(gx0, dtype=torch.int32)
    for gy, gx, sign in ((gy0, gx0, 1), (gy0, gx1 + 1, -1), (gy1 + 1, gx0, -1), (gy1 + 1, gx1 + 1, 1)):
        flat.index_add_(0, f * stride + gy * (gw + 1) + gx, one * sign)
    return int(diff.cumsum(1).cumsum(2).max())


def estimate_tile_bytes(costs: _Costs, frames: slice, paths: slice, y0: int, y1: int, W: int) -> int:
    """Working bytes of rasterizing frames x paths into rows [y0, y1) of width W (supersampled pixels)."""
    box = costs.box[frames, paths]
    frac = _clip_fraction(box, y0, y1, W)
    stroke = float((costs.stroke[frames, paths] * frac).sum())
    fill = float((costs.fill[frames, paths] * frac).sum())
    k = box.shape[0]
    pixels = k * (y1 - y0) * W
    touched = min(pixels, stroke + fill)
    depth = _max_stack(costs, frames, paths, y0, y1, W)
    return int(stroke * BYTES_PER_STROKE_PAIR + fill * BYTES_PER_FILL_PIXEL + depth * touched * BYTES_PER_LAYER_PIXEL
               + pixels * 4 * BYTES_PER_OUTPUT_VALUE)


def estimate_render_bytes(points: torch.Tensor, style: PathStyle, canvas_size: tuple[int, int],
                          out_size: tuple[int, int], frames: int = 1, quality: int = 1) -> int:
    """Working bytes of one `raster.rasterize` call on `frames` frames like `points` ([N, 2]), untiled."""
    (cw, ch), (ow, oh) = canvas_size, out_size
    sx, sy = ow * quality / cw, oh * quality / ch
    style_out = replace(style, stroke_width=style.stroke_width.detach() * math.sqrt(sx * sy))
    pts = points.detach().float().reshape(1, -1, 2) * torch.tensor([sx, sy])
    costs = _path_costs(pts, style_out, 1.0, max(4.0, max(ow, oh) * quality / GRID))
    one = estimate_tile_bytes(costs, slice(0, 1), slice(0, style.num_paths), 0, oh * quality, ow * quality)
    return one * int(frames)


def render_bounded(points: torch.Tensor, style: PathStyle, canvas_size: tuple[int, int],
                   out_size: tuple[int, int] | None = None, background=(1.0, 1.0, 1.0), quality: int = 1,
                   backend: str = "torch", budget: int = DEFAULT_BUDGET,
                   check_interrupt: Callable | None = None, progress: Callable | None = None,
                   out: torch.Tensor | None = None) -> torch.Tensor:
    """`raster.rasterize` without gradients, with the working memory of each call under `budget` bytes.

    points [K, N, 2] (or [N, 2]); returns [K, H, W, 3] float32 over `background` (an RGB triple),
    written into `out` when given. progress(done_frames, total_frames) after each finished frame chunk.
    """
    pts = points.detach().float()
    if pts.dim() == 2:
        pts = pts.unsqueeze(0)
    (cw, ch) = int(canvas_size[0]), int(canvas_size[1])
    (ow, oh) = (cw, ch) if out_size is None else (int(out_size[0]), int(out_size[1]))
    if background is None:
        raise ValueError("render_bounded composites over an opaque background")
    bg = tuple(float(c) for c in background)
    K = pts.shape[0]
    if out is None:
        out = torch.empty(K, oh, ow, 3)
    if backend != "torch":  # another backend bounds its own memory
        for k in range(K):
            if check_interrupt:
                check_interrupt()
            out[k:k + 1] = raster.rasterize(pts[k:k + 1], style, (cw, ch), (ow, oh), bg, quality, backend).float()
        return out
    sx, sy = ow / cw, oh / ch
    scaled = pts * torch.tensor([sx, sy])
    wscale = math.sqrt(sx * sy)
    style_out = replace(style, stroke_width=style.stroke_width.detach() * wscale)
    s = int(quality)
    cell = max(4.0, max(ow, oh) * s / GRID)
    units = style.group_bounds()  # paths of one fill group are rendered together
    costs = None
    bg_t = torch.tensor(bg)

    def leaf(f0, f1, u0, u1, y0, y1, opaque, base):
        f0, f1 = f0 + base, f1 + base
        p0, p1 = units[u0], units[u1]
        sub = style_out if (p0, p1) == (0, style.num_paths) else style_out.select(list(range(p0, p1)))
        offs = style.path_offsets() + [int(pts.shape[1])]
        q = scaled[f0:f1, offs[p0]:offs[p1]] - torch.tensor([0.0, float(y0)])
        return raster.rasterize(q, sub, (ow, y1 - y0), (ow, y1 - y0), bg if opaque else None, s, "torch").float()

    def premult(rgba):
        a = rgba[..., 3:]
        return torch.cat([rgba[..., :3] * a, a], -1)

    def render(f0, f1, u0, u1, y0, y1, opaque, base):
        """RGB over bg when opaque, else premultiplied RGBA, of frames f0:f1, units u0:u1, rows y0:y1."""
        if check_interrupt:
            check_interrupt()
        if u1 == u0:
            return bg_t.expand(f1 - f0, y1 - y0, ow, 3).clone() if opaque else torch.zeros(f1 - f0, y1 - y0, ow, 4)
        est = estimate_tile_bytes(costs, slice(f0, f1), slice(units[u0], units[u1]), y0 * s, y1 * s, ow * s)
        if est <= budget:
            img = leaf(f0, f1, u0, u1, y0, y1, opaque, base)
            return img if opaque else premult(img)
        if f1 - f0 > 1:
            m = (f0 + f1) // 2
            return torch.cat([render(f0, m, u0, u1, y0, y1, opaque, base), render(m, f1, u0, u1, y0, y1, opaque, base)], 0)
        if u1 - u0 > 1 and s > 1:
            # Supersampled: split the paths at the sampling resolution (quality 1) and average the
            # composited strips, as the rasterizer itself averages (exact; the strips bound the memory).
            p0, p1 = units[u0], units[u1]
            sub = style_out.select(list(range(p0, p1)))
            offs = style.path_offsets() + [int(pts.shape[1])]
            rows = max(1, min(y1 - y0, budget // max(1, 64 * (f1 - f0) * ow * s * s)))
            parts = []
            for a in range(y0, y1, rows):
                b = min(y1, a + rows)
                q = scaled[f0 + base:f1 + base, offs[p0]:offs[p1]] - torch.tensor([0.0, float(a)])
                hi = render_bounded(q, sub, (ow, b - a), (ow * s, (b - a) * s), bg, 1, "torch", budget, check_interrupt)
                parts.append(torch.nn.functional.avg_pool2d(hi.permute(0, 3, 1, 2), s).permute(0, 2, 3, 1))
            return torch.cat(parts, 1)
        if u1 - u0 > 1:
            m = (u0 + u1) // 2
            back = render(f0, f1, u0, m, y0, y1, False, base)
            front = render(f0, f1, m, u1, y0, y1, False, base)
            acc = front + back * (1 - front[..., 3:])
            if opaque:
                return (acc[..., :3] + bg_t * (1 - acc[..., 3:])).clamp(0, 1)
            return acc
        if y1 - y0 > 1:
            m = (y0 + y1) // 2
            return torch.cat([render(f0, f1, u0, u1, y0, m, opaque, base), render(f0, f1, u0, u1, m, y1, opaque, base)], 1)
        # One row of one frame of one fill group: nothing left to split.
        img = leaf(f0, f1, u0, u1, y0, y1, opaque, base)
        return img if opaque else premult(img)

    # Frame chunks of bounded size first, so progress and interruption move along.
    step = max(1, min(K, (4 << 20) // max(1, oh * ow)))
    for f0 in range(0, K, step):
        f1 = min(K, f0 + step)
        costs = _path_costs(scaled[f0:f1] * s, style_out, float(s), cell)
        out[f0:f1] = render(0, f1 - f0, 0, len(units) - 1, 0, oh, True, f0)
        if progress:
            progress(f1, K)
    return out


__all__ = ["render_bounded", "estimate_render_bytes", "estimate_tile_bytes", "output_bytes", "DEFAULT_BUDGET", "gib"]
