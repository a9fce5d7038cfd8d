"""Make-Your-Video: depth condition, frame selection and the long-video window plan (pure torch).

depth_condition  the official `get_batch_depth` on a depth clip we already have: bicubic resize to the latent size
                 (align_corners=False, no antialias), then min/max to [-1, 1] per frame (official default), over
                 the whole clip (official `temporal_norm=True`) or after the temporally stable alignment
                 (pipelines.depth.normalize "stable").
plan_frames      the official data loader's frame choice (inference_videorerendering.load_data_prompts): stride -1
                 = total // frames, a stride too long for the clip falls back to that, plus a stride from a target
                 fps; a clip with fewer frames than asked for is an error instead of repeated frames.
window_plan      videos longer than one pass (Make-Your-Video's causal mask is built for 64 frames): windows of at
                 most `window` frames, each later one starting with `overlap` frames of the previous result.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..depth.normalize import MODES, normalize_depth

logger = logging.getLogger(__name__)

EPS = 1e-7              # the official get_batch_depth's denominator guard
MAX_FRAMES = 64         # the official causal mask is a 64 x 64 buffer: one pass takes at most 64 frames
TRAINED_FRAMES = 16     # the causal window (and the clip length the model was trained on)
OFFICIAL_STRIDE = 2     # scripts/run.sh --frame_stride 2
OFFICIAL_SAVE_FPS = 8   # the fps the official script writes its results at


def depth_condition(depth: torch.Tensor, latent_hw: tuple[int, int], mode: str = "per_frame") -> torch.Tensor:
    """depth [T, H, W] (raw relative inverse depth) -> the model's depth condition [T, 1, h, w] in [-1, 1].

    Resized first, normalised after, as the official code does (the extremes are those of the resized map).
    """
    if mode not in MODES:
        raise ValueError(f"unknown depth normalisation {mode!r}; expected one of {', '.join(MODES)}")
    if depth.ndim != 3:
        raise ValueError(f"depth must be [T, H, W], got {list(depth.shape)}")
    h, w = int(latent_hw[0]), int(latent_hw[1])
    small = F.interpolate(depth.float()[:, None], size=(h, w), mode="bicubic", align_corners=False)[:, 0]
    # normalize_depth's (d - lo) / (hi - lo + eps), doubled and shifted, is the official 2(d-lo)/(hi-lo+eps) - 1.
    return (normalize_depth(small, mode, eps=EPS) * 2.0 - 1.0)[:, None]


@dataclass(frozen=True)
class FramePlan:
    """Which frames of a source video to use."""

    indices: list[int]
    stride: int
    note: str = ""          # why the stride differs from the one asked for ("" when it does not)

    def fps(self, source_fps: float | None) -> float | None:
        return None if not source_fps else float(source_fps) / self.stride


def plan_frames(total: int, frames: int, stride: int = -1, source_fps: float | None = None,
                target_fps: float | None = None) -> FramePlan:
    """The official loader's rule for `frames` frames out of `total`, every `stride`-th frame from frame 0.

    stride -1: total // frames (the whole clip, evenly). A target fps (with the source fps) sets the stride to
    round(source_fps / target_fps) instead. When stride * (frames - 1) does not fit in the clip the official loader
    falls back to total // frames; so does this (the reason is in `note`). frames 0: every frame at the stride.
    """
    total, frames, stride = int(total), int(frames), int(stride)
    if total < 1:
        raise ValueError("the video has no frames")
    if frames < 0:
        raise ValueError(f"frames must be >= 0 (0 = all), got {frames}")
    if target_fps:
        if target_fps < 0 or not source_fps or source_fps <= 0:
            raise ValueError(f"a target fps ({target_fps}) needs the source video's fps (got {source_fps}); "
                             "connect GetVideoComponents' fps or set frame_stride instead")
        stride = max(1, round(float(source_fps) / float(target_fps)))
    elif stride == 0 or stride < -1:
        raise ValueError(f"frame_stride must be -1 (auto) or >= 1, got {stride}")
    if frames == 0:
        step = 1 if stride == -1 else stride
        return FramePlan(list(range(0, total, step)), step)
    if frames > total:
        raise ValueError(f"the video has {total} frame(s); {frames} frames were asked for (at least {frames} "
                         "source frames are needed; lower 'frames' or use a longer video)")
    auto = total // frames
    note = ""
    if stride == -1:
        stride = auto
    elif stride * (frames - 1) >= total:
        note = (f"frame stride {stride} needs {stride * (frames - 1) + 1} frames but the video has {total}: "
                f"stride {auto} (= {total} // {frames}) is used instead, as the official loader does")
        stride = auto
    return FramePlan([stride * i for i in range(frames)], stride, note)


def select_frames(total: int, frames: int, stride: int = -1, source_fps: float | None = None,
                  target_fps: float | None = None) -> list[int]:
    """plan_frames' indices; a fallback stride is logged as a warning (as the official loader prints one)."""
    plan = plan_frames(total, frames, stride, source_fps, target_fps)
    if plan.note:
        logger.warning("Make-Your-Video frame selection: %s", plan.note)
    return plan.indices


@dataclass(frozen=True)
class Window:
    """Frames start..stop-1 sampled together; the first `context` of them are kept from the previous result."""

    start: int
    stop: int
    context: int

    @property
    def frames(self) -> int:
        return self.stop - self.start


def window_plan(frames: int, window: int = MAX_FRAMES, overlap: int = TRAINED_FRAMES) -> list[Window]:
    """Windows covering `frames` frames: one when frames <= window; otherwise each later window starts `overlap`
    frames before the previous one ends and keeps those frames fixed (they condition the new ones)."""
    if frames < 1:
        raise ValueError(f"no frames to sample ({frames})")
    if window < 2:
        raise ValueError(f"window must be at least 2 frames, got {window}")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be between 0 and window - 1 = {window - 1}, got {overlap}")
    plan = [Window(0, min(window, frames), 0)]
    while plan[-1].stop < frames:
        start = plan[-1].stop - overlap
        plan.append(Window(start, min(start + window, frames), overlap))
    return plan


def window_rows(window: Window, frames: int, videos: int) -> list[int]:
    """Latent rows (frames in the batch, sample-major) of `window` for each of `videos` videos of `frames` frames."""
    return [v * frames + t for v in range(videos) for t in range(window.start, window.stop)]
