"""Normalising a clip of relative depth to [0, 1], and measuring how much it flickers.

A monocular estimator predicts each frame's relative inverse depth only up to an unknown scale and shift, and that
affine ambiguity changes from frame to frame. Three ways to normalise:

per_frame  each frame's own min/max (Make-Your-Video's `get_batch_depth` default and most ComfyUI depth nodes). Cancels
           the per-frame scale/shift, but whenever the nearest or farthest thing in view changes (an object moves
           closer, enters, leaves) every other pixel's value changes with it: the static background flickers.
clip       one min/max over the whole clip (`temporal_norm=True` in the official code): stable extremes, but the
           estimator's per-frame scale/shift passes straight through.
stable     each frame aligned to its neighbours by a least-squares scale and shift (robust to moving objects: pixels
           that do not fit are dropped and the fit repeated), all fits solved together so errors do not pile up
           along the clip, then one min/max over the aligned clip.
"""
from __future__ import annotations

import torch

MODES = ("per_frame", "clip", "stable")
NEIGHBOURS = 6        # each frame is tied to this many previous frames (more ties average out a bad pairwise fit)
ROBUST_PASSES = 1     # refits after dropping pixels that do not follow the pair's affine map
OUTLIER_MAD = 2.5     # a pixel is an outlier beyond this many median absolute deviations of the pair's residual
FIT_PIXELS = 128 * 128  # the scale/shift are global per frame: fit them on a copy of at most this many pixels


def normalize_depth(depth: torch.Tensor, mode: str = "per_frame", eps: float = 1e-7) -> torch.Tensor:
    """depth [T, H, W] (any real values) -> [T, H, W] in [0, 1] (float32), by `mode` (see MODES)."""
    if mode not in MODES:
        raise ValueError(f"unknown depth normalisation {mode!r}; expected one of {', '.join(MODES)}")
    if depth.ndim != 3:
        raise ValueError(f"depth must be [T, H, W], got {list(depth.shape)}")
    d = depth.float()
    if mode == "per_frame":
        lo = d.amin(dim=(1, 2), keepdim=True)
        hi = d.amax(dim=(1, 2), keepdim=True)
    else:
        if mode == "stable":
            d = align_clip(d)
        lo, hi = d.amin(), d.amax()
    return (d - lo) / (hi - lo + eps)


def _pair_fit(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Per-pixel weights [N] for the pair (a -> c): 1 where a follows c by one affine map, 0 for outliers.

    The first map matches the pair's medians and interquartile ranges (a plain least-squares start is pulled by the
    moving object and can lock onto the wrong inliers); then least squares on the inliers, repeated."""
    qa = torch.quantile(a.float(), torch.tensor([0.25, 0.5, 0.75])).to(a.dtype)
    qc = torch.quantile(c.float(), torch.tensor([0.25, 0.5, 0.75])).to(c.dtype)
    s = (qc[2] - qc[0]) / (qa[2] - qa[0]).clamp_min(1e-12)
    off = qc[1] - s * qa[1]
    w = torch.ones_like(a)
    for _ in range(ROBUST_PASSES + 1):
        r = s * a + off - c
        med = r[w > 0].median()
        mad = (r[w > 0] - med).abs().median().clamp_min(1e-9)
        w = ((r - med).abs() <= OUTLIER_MAD * 1.4826 * mad).float()
        sw = w.sum().clamp_min(1.0)
        ma, mc = (w * a).sum() / sw, (w * c).sum() / sw
        s = (w * (a - ma) * (c - mc)).sum() / (w * (a - ma) ** 2).sum().clamp_min(1e-12)
        off = mc - s * ma
    return w


def align_clip(depth: torch.Tensor, neighbours: int = NEIGHBOURS) -> torch.Tensor:
    """Scale and shift every frame so it agrees with its neighbours; frame 0 keeps its values.

    Unknowns s_t, b_t (t >= 1; s_0 = 1, b_0 = 0). For each tie (t, u), u = t-1 .. t-neighbours, minimise
    sum_p w_p (s_t d_t[p] + b_t - s_u d_u[p] - b_u)^2 with w the pair's robust inlier weights; all ties together
    form one small linear least-squares problem in 2(T-1) unknowns (normal equations from per-pair sums).
    """
    t_count = depth.shape[0]
    if t_count < 2:
        return depth.clone()
    small = depth.float()
    area = depth.shape[1] * depth.shape[2]
    if area > FIT_PIXELS:
        f = (FIT_PIXELS / area) ** 0.5
        size = (max(1, round(depth.shape[1] * f)), max(1, round(depth.shape[2] * f)))
        small = torch.nn.functional.interpolate(small[:, None], size=size, mode="area")[:, 0]
    flat = small.reshape(t_count, -1).double()
    n = 2 * t_count
    ata = torch.zeros(n, n, dtype=torch.float64)
    for t in range(1, t_count):
        for u in range(max(0, t - neighbours), t):
            a, c = flat[t], flat[u]
            w = _pair_fit(a, c)
            # residual = [a, 1, -c, -1] . [s_t, b_t, s_u, b_u]; accumulate its weighted Gram matrix
            cols = torch.stack([a, torch.ones_like(a), -c, -torch.ones_like(c)])
            g = (cols * w) @ cols.T
            idx = [2 * t, 2 * t + 1, 2 * u, 2 * u + 1]
            for i in range(4):
                for j in range(4):
                    ata[idx[i], idx[j]] += g[i, j]
    # fix s_0 = 1, b_0 = 0: move frame 0's columns to the right-hand side
    free = list(range(2, n))
    rhs = -ata[free][:, 0]  # d/dx of x^T A x with x_0 = 1, x_1 = 0 -> A_free,free x_free = -A_free,0
    sol = torch.linalg.lstsq(ata[free][:, free], rhs.unsqueeze(1)).solution.squeeze(1)
    s = torch.cat([torch.ones(1, dtype=torch.float64), sol[0::2]])
    b = torch.cat([torch.zeros(1, dtype=torch.float64), sol[1::2]])
    full = depth.double()
    return (full * s[:, None, None] + b[:, None, None]).to(depth.dtype)


def flicker(depth01: torch.Tensor, static: torch.Tensor) -> float:
    """Mean absolute frame-to-frame change of normalised depth over the `static` pixels ([H, W] bool)."""
    if depth01.shape[0] < 2:
        raise ValueError("flicker needs at least two frames")
    diff = (depth01[1:] - depth01[:-1]).abs()
    mask = static.expand_as(diff)
    return float(diff[mask].mean())


def drift(depth01: torch.Tensor, static: torch.Tensor) -> float:
    """Mean absolute deviation of normalised depth from its own clip mean over the `static` pixels: slow wandering
    that a frame-to-frame measure misses."""
    dev = (depth01 - depth01.mean(dim=0, keepdim=True)).abs()
    return float(dev[static.expand_as(dev)].mean())


def synthetic_clip(frames: int = 24, height: int = 96, width: int = 128, seed: int = 0
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A static camera and one object moving across and towards it, as a monocular estimator would report it.

    Returns (estimate [T, H, W], truth [T, H, W], static [H, W] bool: pixels the object never covers).
    Truth: inverse depth of a receding floor/wall ramp (0.15 at the top .. 0.55 at the bottom) and a disc that
    enters from the left, crosses, and comes closer (inverse depth 0.6 -> 1.0). Estimate: truth under a per-frame
    scale (1 +- 0.15) and shift (+- 0.1), the affine ambiguity of relative depth, plus small pixel noise (0.005).
    """
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    background = 0.15 + 0.4 * yy
    truth = background.expand(frames, height, width).clone()
    covered = torch.zeros(height, width, dtype=torch.bool)
    for t in range(frames):
        p = t / max(1, frames - 1)
        cx, cy, r = -0.15 + 1.0 * p, 0.55, 0.12 + 0.12 * p
        disc = ((xx - cx) * width / height) ** 2 + (yy - cy) ** 2 <= r * r
        truth[t][disc] = 0.6 + 0.4 * p
        covered |= disc
    scale = 1.0 + 0.15 * torch.randn(frames, 1, 1, generator=gen)
    shift = 0.1 * torch.randn(frames, 1, 1, generator=gen)
    estimate = truth * scale + shift + 0.005 * torch.randn(frames, height, width, generator=gen)
    return estimate, truth, ~covered
