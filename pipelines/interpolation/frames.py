"""Streaming RIFE interpolation of a clip: which output times to make, and making them pair by pair.

Output times are in source-frame units (frame k of the input sits at time k). A time on a whole number is that
input frame, copied exactly; any other time t between frames i and i+1 is made by the network from that pair at
t - i (RIFE 4.7+ takes any t in (0, 1)). Times are exact fractions, so 24 -> 60 fps lands on every second source
frame without rounding drift.

Memory stays flat on long clips: the input stays where it is (CPU), each forward pass moves only the frames its
batch needs to the device, and every result goes straight into one preallocated CPU output.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import torch

from .rife import SCALE_FACTORS

MAX_MULTIPLIER = 16
MAX_FPS_RATIO = 16


@dataclass
class InterpolationResult:
    frames: torch.Tensor                 # [T_out, H, W, 3] float32 on CPU
    times: list[Fraction]
    interpolated: int                    # frames made by the network
    cut_pairs: list[tuple[int, int]] = field(default_factory=list)  # pairs treated as scene cuts


def _fraction(x, what: str) -> Fraction:
    if isinstance(x, bool) or not isinstance(x, (int, float, Fraction)):
        raise TypeError(f"{what} must be a number, got {x!r}")
    if isinstance(x, float) and not math.isfinite(x):
        raise ValueError(f"{what} must be a finite number, got {x!r}")
    return Fraction(str(x)) if isinstance(x, float) else Fraction(x)


def plan_times(n_frames: int, *, multiplier: int | None = None, source_fps: float | None = None,
               target_fps: float | None = None, frame_count: int | None = None,
               times: Sequence[float] | None = None, loop: bool = False) -> list[Fraction]:
    """Output times for exactly one of: a multiplier, a target fps (with the source fps), a frame count, times.

    multiplier m: every input frame then m-1 in-betweens per pair ((N-1)*m+1 frames; N*m with loop).
    target_fps: times k * source_fps / target_fps up to the last frame (up to, not including, N with loop).
    frame_count: evenly spaced from the first to the last frame (first and last kept; with loop up to N excluded).
    loop: the last frame is followed by the first (the pair last -> first is interpolated too).
    """
    if n_frames < 2:
        raise ValueError(f"interpolation needs at least two frames, got {n_frames}")
    given = [x is not None for x in (multiplier, target_fps, frame_count, times)]
    if sum(given) != 1:
        raise ValueError("give exactly one of multiplier, target_fps (with source_fps), frame_count, times")
    end = Fraction(n_frames if loop else n_frames - 1)
    if multiplier is not None:
        if isinstance(multiplier, bool) or not isinstance(multiplier, int):
            raise ValueError(f"multiplier must be a whole number, got {multiplier!r}")
        if not 2 <= multiplier <= MAX_MULTIPLIER:
            raise ValueError(f"multiplier must be between 2 and {MAX_MULTIPLIER}, got {multiplier}")
        count = int(end * multiplier) + (0 if loop else 1)
        return [Fraction(k, multiplier) for k in range(count)]
    if target_fps is not None:
        src = _fraction(source_fps, "source fps") if source_fps is not None else None
        dst = _fraction(target_fps, "target fps")
        if src is None or src <= 0:
            raise ValueError(f"a target fps needs the source fps (a positive number), got {source_fps!r}")
        if dst <= 0:
            raise ValueError(f"target fps must be positive, got {target_fps!r}")
        if dst <= src:
            raise ValueError(f"target fps {target_fps} must be higher than the source fps {source_fps} "
                             f"(interpolation adds frames; drop frames to lower the rate)")
        if dst > src * MAX_FPS_RATIO:
            raise ValueError(f"target fps {target_fps} is more than {MAX_FPS_RATIO}x the source fps {source_fps}")
        step = src / dst
        out, k = [], 0
        while k * step < end or (not loop and k * step == end):
            out.append(k * step)
            k += 1
        return out
    if frame_count is not None:
        if isinstance(frame_count, bool) or not isinstance(frame_count, int):
            raise ValueError(f"frame count must be a whole number, got {frame_count!r}")
        most = int(end) * MAX_MULTIPLIER + (0 if loop else 1)
        if not n_frames < frame_count <= most:
            raise ValueError(f"frame count must be more than the {n_frames} input frames and at most {most}, "
                             f"got {frame_count}")
        div = frame_count if loop else frame_count - 1
        return [end * k / div for k in range(frame_count)]
    out = [_fraction(t, "a time") for t in times]
    if not out:
        raise ValueError("no output times given")
    bad = [float(t) for t in out if t < 0 or t > end or (loop and t == end)]
    if bad:
        span = f"[0, {n_frames})" if loop else f"[0, {n_frames - 1}]"
        raise ValueError(f"times must lie in {span} (source-frame units), got {bad[:4]}")
    return out


def frame_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference of two [H, W, C] frames in [0, 1] (the scene-cut measure)."""
    return float((a.float() - b.float()).abs().mean())


def _check_frames(frames) -> torch.Tensor:
    if isinstance(frames, (list, tuple)):
        if len(frames) < 2:
            raise ValueError(f"interpolation needs at least two frames, got {len(frames)}")
        sizes = sorted({tuple(f.shape) for f in frames})
        if len(sizes) > 1:
            raise ValueError(f"all frames must have the same size, got {len(sizes)} sizes: {sizes[:4]}")
        frames = torch.stack(list(frames))
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] < 3:
        shape = list(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"expected frames [T, H, W, 3], got {shape}")
    if frames.shape[0] < 2:
        raise ValueError(f"interpolation needs at least two frames, got {frames.shape[0]}")
    return frames[..., :3]


def output_bytes(n_out: int, height: int, width: int) -> int:
    return n_out * height * width * 3 * 4


@torch.inference_mode()
def interpolate_frames(model, frames, times: Sequence[Fraction], *, scale_factor: float = 1.0,
                       ensemble: bool = False, batch_size: int = 4, scene_cut: float = 0.0, loop: bool = False,
                       progress: Callable[[int, int, torch.Tensor], None] | None = None,
                       interrupt: Callable[[], None] | None = None) -> InterpolationResult:
    """Frames [T, H, W, 3] in [0, 1] -> the frames at `times` (see plan_times), float32 on CPU.

    batch_size: in-between frames per forward pass. scene_cut > 0: a pair whose mean absolute difference exceeds it
    is a cut, and its in-betweens repeat the earlier frame. loop: times past the last frame use the pair
    last -> first. progress(done, total, batch) runs after each pass; interrupt() before each (it raises to stop).
    """
    frames = _check_frames(frames)
    n, h, w, _ = frames.shape
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    if scale_factor not in SCALE_FACTORS:
        raise ValueError(f"scale factor must be one of {SCALE_FACTORS}, got {scale_factor!r}")
    end = n if loop else n - 1
    jobs, copies = [], []
    cuts: dict[tuple[int, int], bool] = {}
    for idx, t in enumerate(times):
        t = Fraction(t)
        if t < 0 or t > end or (loop and t == end):
            raise ValueError(f"time {float(t)} is outside the clip (0 to {end})")
        i = math.floor(t)
        frac = t - i
        if frac == 0:
            copies.append((idx, i % n))
            continue
        pair = (i, (i + 1) % n)
        if pair not in cuts:
            cuts[pair] = scene_cut > 0 and frame_difference(frames[pair[0]], frames[pair[1]]) > scene_cut
        if cuts[pair]:
            copies.append((idx, i))  # a cut: hold the earlier frame, never blend two shots
        else:
            jobs.append((idx, pair[0], pair[1], float(frac)))
    out = torch.empty(len(times), h, w, 3, dtype=torch.float32)
    for idx, i in copies:
        out[idx] = frames[i].float().cpu()
    scales = model.scale_list(scale_factor)
    total = len(jobs)
    for start in range(0, total, batch_size):
        if interrupt is not None:
            interrupt()
        batch = jobs[start:start + batch_size]
        needed = sorted({j[1] for j in batch} | {j[2] for j in batch})
        row = {f: r for r, f in enumerate(needed)}
        x, feat = model.prepare(frames[needed].permute(0, 3, 1, 2), scale_factor)
        a = torch.tensor([row[j[1]] for j in batch], device=x.device)
        b = torch.tensor([row[j[2]] for j in batch], device=x.device)
        t = torch.tensor([j[3] for j in batch], dtype=x.dtype, device=x.device)
        res = model.flow_forward(x[a], x[b], feat[a], feat[b], t, scales, ensemble)
        res = res[:, :, :h, :w].clamp(0, 1).float().permute(0, 2, 3, 1).cpu()
        del x, feat
        for k, j in enumerate(batch):
            out[j[0]] = res[k]
        if progress is not None:
            progress(min(start + batch_size, total), total, res)
    cut_pairs = sorted(p for p, c in cuts.items() if c)
    return InterpolationResult(out, [Fraction(t) for t in times], total, cut_pairs)
