"""In-betweens for animated sketches, computed on the control points (never on pixels).

Time is measured in keyframe units: keyframe j is at t = j. A looping animation of K keyframes spans
t in [0, K) and its last segment (K-1 -> 0) closes the loop; a non-looping one spans [0, K-1].

Every mode is linear in the keyframes: the points at time t are sum_j w_j(t) P_j, so the whole result is
one small [frames, K] weight matrix times the [K, N*2] keyframe points (one matmul, any number of strokes).
- linear: piecewise linear (what SMIL's calcMode="linear" does between values: the SVG is exact).
- catmull_rom: uniform Catmull-Rom, the cubic Hermite spline whose velocity at keyframe j is the central
  difference (P_{j+1} - P_{j-1}) / 2; C1 in time; reproduces constant-velocity motion exactly. Uniform, not
  centripetal: the keyframes are equally spaced in *time*, and each coordinate is a function of time.
  Centripetal knots (|dP|^0.5) are a device for geometric curves; here they would give every control
  point its own knot spacing, so after mapping segments back to the keyframe times the velocity would
  jump at every keyframe (only G1) and points of one stroke would keep different timings (the stroke
  would deform in ways the keyframes never show).
- natural_cubic: the C2 interpolating cubic spline; natural ends (zero second derivative at the first and
  last keyframe) when not looping, periodic when looping.
Ends of a non-looping Catmull-Rom use the one-sided difference (P_1 - P_0, P_{K-1} - P_{K-2}).
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch

from ..sketch import SketchAnimation

MODES = ("linear", "catmull_rom", "natural_cubic")
MAX_MULTIPLIER = 64
MAX_FRAMES = 8192  # output frames; 1,000 frames of 100 strokes is about 10 MB of points
MAX_FPS = 960.0


class InterpolationError(ValueError):
    """Bad interpolation settings (the message says which and what to do)."""


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise InterpolationError(f"mode must be one of {MODES}, got {mode!r}")


def output_timing(num_keyframes: int, fps: float, loop: bool, multiplier: int = 0, target_frames: int = 0,
                  target_fps: float = 0.0) -> tuple[int, int, float]:
    """(frames, steps, fps) of the interpolated animation.

    Output frame i is at time t_i = i * span / steps (span = K when looping, K - 1 otherwise), so the
    output covers the keyframes' timeline exactly; `frames` is steps (looping) or steps + 1 (the last
    keyframe included). One of target_frames, target_fps, multiplier decides `steps` (first non-zero):
    - multiplier m: steps = span * m, fps * m;
    - target_frames n: steps = n (looping) or n - 1;
    - target_fps f: the nearest whole number of steps to span * f / fps; the resulting fps (returned) is f
      exactly when the keyframes' timeline holds a whole number of frames at f, else the closest fps that
      does (the timeline is kept: keyframes stay at their times).
    """
    k = int(num_keyframes)
    if k < 2:
        raise InterpolationError(f"an animation needs at least two keyframes to interpolate, got {k}")
    if not (math.isfinite(fps) and fps > 0):
        raise InterpolationError(f"the animation's fps must be a positive number, got {fps}")
    span = k if loop else k - 1
    tail = 0 if loop else 1
    if target_frames and target_fps:
        raise InterpolationError("give target_frames or target_fps, not both (0 = unused)")
    if target_frames:
        n = int(target_frames)
        if n <= k:
            raise InterpolationError(f"target_frames {n} must be more than the animation's {k} keyframes")
        if n > MAX_FRAMES:
            raise InterpolationError(f"target_frames {n} is more than the limit of {MAX_FRAMES} frames")
        steps = n - tail
    elif target_fps:
        f = float(target_fps)
        if not math.isfinite(f) or f <= fps:
            raise InterpolationError(f"target_fps must be above the animation's {fps:g} fps, got {target_fps}")
        if f > MAX_FPS:
            raise InterpolationError(f"target_fps {f:g} is above the limit of {MAX_FPS:g} fps")
        steps = max(span + 1, round(span * f / fps))
        if steps + tail > MAX_FRAMES:
            raise InterpolationError(f"target_fps {f:g} makes {steps + tail} frames of {k} keyframes, more than "
                                     f"the limit of {MAX_FRAMES}; lower target_fps")
    else:
        m = int(multiplier)
        if m < 2:
            raise InterpolationError(f"multiplier must be at least 2 (1 would change nothing), got {m}")
        if m > MAX_MULTIPLIER:
            raise InterpolationError(f"multiplier {m} is above the limit of {MAX_MULTIPLIER}")
        steps = span * m
        if steps + tail > MAX_FRAMES:
            raise InterpolationError(f"multiplier {m} makes {steps + tail} frames of {k} keyframes, more than the "
                                     f"limit of {MAX_FRAMES}; lower the multiplier")
    return steps + tail, steps, fps * steps / span


def _derivative_operator(k: int, mode: str, loop: bool) -> torch.Tensor:
    """[K, K] float64 G with G @ P = the spline's per-keyframe term: Catmull-Rom tangents, or the cubic
    spline's second derivatives (zero for linear)."""
    g = torch.zeros(k, k, dtype=torch.float64)
    if mode == "linear":
        return g
    if mode == "catmull_rom":
        for j in range(k):
            if loop:
                g[j, (j + 1) % k] += 0.5
                g[j, (j - 1) % k] -= 0.5
            else:
                hi, lo = min(j + 1, k - 1), max(j - 1, 0)
                g[j, hi] += 1.0 / (hi - lo)
                g[j, lo] -= 1.0 / (hi - lo)
        return g
    # Cubic spline with unit knot spacing: M_{j-1} + 4 M_j + M_{j+1} = 6 (P_{j-1} - 2 P_j + P_{j+1}).
    a = torch.zeros(k, k, dtype=torch.float64)
    d = torch.zeros(k, k, dtype=torch.float64)
    for j in range(k):
        if not loop and j in (0, k - 1):
            a[j, j] = 1.0  # natural end: M_j = 0
            continue
        for off, wa, wd in ((-1, 1.0, 6.0), (0, 4.0, -12.0), (1, 1.0, 6.0)):
            a[j, (j + off) % k] += wa
            d[j, (j + off) % k] += wd
    return torch.linalg.solve(a, d)


def weights(seg: torch.Tensor, u: torch.Tensor, k: int, mode: str, loop: bool) -> torch.Tensor:
    """[T, K] float64 weights of the keyframes for times in segment `seg` (long) at fraction u in [0, 1]."""
    _check_mode(mode)
    u = u.to(torch.float64)
    nxt = (seg + 1) % k
    eye = torch.eye(k, dtype=torch.float64)
    g = _derivative_operator(k, mode, loop)
    if mode == "natural_cubic":
        v = 1.0 - u
        b0, b1, c0, c1 = v, u, (v ** 3 - v) / 6.0, (u ** 3 - u) / 6.0
    else:  # cubic Hermite basis; linear keeps 1 - u, u (h00, h01 alone would ease in and out)
        u2, u3 = u * u, u * u * u
        if mode == "linear":
            b0, b1 = 1.0 - u, u
        else:
            b0, b1 = 2 * u3 - 3 * u2 + 1, -2 * u3 + 3 * u2
        c0, c1 = u3 - 2 * u2 + u, u3 - u2
    return (b0[:, None] * eye[seg] + b1[:, None] * eye[nxt] + c0[:, None] * g[seg] + c1[:, None] * g[nxt])


def _split_times(times: torch.Tensor, k: int, loop: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Segment index and fraction of float times (keyframe units); looping times wrap modulo K."""
    t = times.to(torch.float64)
    if loop:
        t = torch.remainder(t, k)
        seg = torch.floor(t).long().clamp_(0, k - 1)
    else:
        if bool(((t < 0) | (t > k - 1)).any()):
            raise InterpolationError(f"times must lie in [0, {k - 1}] for a non-looping animation of {k} keyframes")
        seg = torch.floor(t).long().clamp_(0, k - 2)
    return seg, t - seg


def evaluate(points: torch.Tensor, times: torch.Tensor, mode: str = "catmull_rom", loop: bool = True) -> torch.Tensor:
    """Points [T, N, 2] at float `times` (keyframe units) from keyframes [K, N, 2]; integral times give the
    keyframes bit for bit."""
    k = int(points.shape[0])
    if k < 2:
        raise InterpolationError(f"an animation needs at least two keyframes to interpolate, got {k}")
    seg, u = _split_times(times, k, loop)
    out = _combine(points, weights(seg, u, k, mode, loop))
    exact = u == 0
    out[exact] = points[seg[exact]]
    if not loop:
        last = u == 1
        out[last] = points[seg[last] + 1]
    return out


def _combine(points: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    k, n, c = points.shape
    # float64 weights rounded once to the points' dtype; one matmul for every stroke and frame
    flat = points.reshape(k, n * c)
    return (w.to(device=points.device, dtype=points.dtype) @ flat).reshape(-1, n, c)


def interpolate_points(points: torch.Tensor, steps: int, frames: int, mode: str, loop: bool) -> torch.Tensor:
    """[frames, N, 2] at t_i = i * span / steps. The segment and fraction of each output frame come from
    integer arithmetic, so a frame that falls on a keyframe is that keyframe, copied bit for bit."""
    _check_mode(mode)
    k = int(points.shape[0])
    span = k if loop else k - 1
    num = torch.arange(frames, dtype=torch.long) * span  # t_i * steps
    seg = torch.div(num, steps, rounding_mode="floor")
    rem = num - seg * steps
    on_key = rem == 0
    seg = seg % k
    if not loop:  # the last keyframe: end of the last segment
        last = seg == k - 1
        seg = torch.where(last, torch.full_like(seg, k - 2), seg)
        rem = torch.where(last, torch.full_like(rem, steps), rem)
    u = rem.to(torch.float64) / steps
    out = _combine(points, weights(seg, u, k, mode, loop))
    key_rows = torch.nonzero(on_key).flatten()
    out[key_rows] = points[torch.div(num[key_rows], steps, rounding_mode="floor") % k]
    return out


def interpolate_sketch(anim: SketchAnimation, mode: str = "catmull_rom", multiplier: int = 3,
                       target_frames: int = 0, target_fps: float = 0.0, loop: bool = True) -> SketchAnimation:
    """More frames of the same paths (see output_timing for the frame count and fps)."""
    _check_mode(mode)
    frames, steps, fps = output_timing(anim.num_frames, float(anim.fps), loop, multiplier, target_frames, target_fps)
    if not bool(torch.isfinite(anim.points).all()):
        raise InterpolationError("the animation's points hold NaN or infinite values")
    points = interpolate_points(anim.points, steps, frames, mode, loop)
    return replace(anim, points=points, fps=fps)


def chord_easing(points: torch.Tensor, loop: bool = True) -> torch.Tensor:
    """[S, 2] (a, b) per segment of frames [K, N, 2]: the timing of SMIL keySplines that best follows the
    Catmull-Rom motion while every number moves on the straight line between two frames (all SMIL can do).

    A Catmull-Rom segment is P_i + h01 D + h10 m_i + h11 m_{i+1} (D = P_{i+1} - P_i). Projected on D, with
    one timing for all points, that is P_i + s(u) D where s is the 1D Hermite curve from 0 to 1 with end
    slopes a = <m_i, D> / |D|^2 and b = <m_{i+1}, D> / |D|^2 (sums over all points: a least-squares fit).
    keySplines "1/3 a/3 2/3 1-b/3" is exactly that s(u); SMIL wants control values in [0, 1], so a and b are
    clamped to [0, 3]. A segment without motion gets (1, 1), linear timing.
    """
    k = int(points.shape[0])
    p = points.to(torch.float64).reshape(k, -1)
    tangents = _derivative_operator(k, "catmull_rom", loop) @ p
    segs = k if loop else k - 1
    i = torch.arange(segs)
    j = (i + 1) % k
    d = p[j] - p[i]
    norm = (d * d).sum(dim=1)
    a = (tangents[i] * d).sum(dim=1) / norm.clamp_min(1e-300)
    b = (tangents[j] * d).sum(dim=1) / norm.clamp_min(1e-300)
    still = norm <= 1e-18
    a = torch.where(still, torch.ones_like(a), a).clamp(0.0, 3.0)
    b = torch.where(still, torch.ones_like(b), b).clamp(0.0, 3.0)
    return torch.stack([a, b], dim=1)
