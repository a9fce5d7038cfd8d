"""Generative in-betweening over a sequence of keyframes: per-segment settings and how segments are joined.

K keyframes make K - 1 segments; segment i is one DynamiCrafter interpolation clip of F_i frames from keyframe i
(its first frame) to keyframe i + 1 (its last frame). Consecutive segments share their boundary keyframe, kept
once: the joined clip is segment 0, then every later segment without its first frame, so it has
sum(F_i) - (K - 2) frames and keyframe j sits at frame sum(F_i - 1 for i < j). The boundary frame kept is the
earlier segment's last frame (the clip that ends on the keyframe).
"""
from __future__ import annotations

import math

import torch


def parse_values(text, name: str, kind: type, minimum: float, maximum: float | None = None) -> list:
    """'16' or '16, 12, 24' (an int or float per segment) -> the list of values; a ValueError names `name`."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{name}: give one value for every segment, or a comma-separated list of one per segment "
                         f"(got {text!r})")
    values = []
    for part in text.split(","):
        part = part.strip()
        try:
            value = kind(part)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise ValueError(f"{name}: {part!r} is not {what} (in {text!r})") from None
        if kind is float and not math.isfinite(value):
            raise ValueError(f"{name}: {part!r} is not a finite number")
        if value < minimum:
            raise ValueError(f"{name}: {part} must be at least {minimum} (in {text!r})")
        if maximum is not None and value > maximum:
            raise ValueError(f"{name}: {part} must be at most {maximum} (in {text!r})")
        values.append(value)
    return values


def per_segment(values: list, segments: int, name: str) -> list:
    """One value for every segment, or exactly one per segment."""
    if len(values) == 1:
        return values * segments
    if len(values) != segments:
        raise ValueError(f"{name}: {len(values)} values for {segments} segment(s) ({segments + 1} keyframes); give "
                         f"one value for all, or exactly {segments}")
    return list(values)


def per_segment_lines(text: str, segments: int, name: str) -> list[str] | None:
    """Non-empty lines: none -> None, one -> the same for every segment, else exactly one per segment."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return None
    return per_segment(lines, segments, name)


def keyframe_positions(frames: list[int]) -> list[int]:
    """Frame index of every keyframe in the joined clip (segment frame counts -> K positions)."""
    positions = [0]
    for f in frames:
        positions.append(positions[-1] + f - 1)
    return positions


def joined_length(frames: list[int]) -> int:
    return keyframe_positions(frames)[-1] + 1


def join_segments(segments: list[torch.Tensor]) -> torch.Tensor:
    """Segment clips (frames in dim 0) -> one clip, every shared keyframe once (the earlier segment's frame)."""
    return torch.cat([segments[0], *(s[1:] for s in segments[1:])])
