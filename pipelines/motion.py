"""Global sketch transforms and a weights-free procedural animation source.

The global transform follows LiveSketch's global branch: per frame
T = Translate . Rotate . Shear . Scale, applied about the sketch's centroid, so a
point p becomes  R @ Sh @ S @ (p - c) + c + t.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .sketch import Sketch, SketchAnimation

PRESETS = ("sway", "bounce", "spin", "pulse", "wiggle")


@dataclass
class GlobalParams:
    """Per-frame global transform parameters, each with a leading frame dimension K."""

    translate: torch.Tensor  # [K, 2] pixels
    rotate: torch.Tensor  # [K] radians, positive = clockwise on screen (y points down)
    shear: torch.Tensor  # [K, 2] (shear_x, shear_y)
    scale: torch.Tensor  # [K, 2] (scale_x, scale_y)

    @staticmethod
    def identity(frames: int, dtype=torch.float32, device=None) -> "GlobalParams":
        z2 = torch.zeros(frames, 2, dtype=dtype, device=device)
        return GlobalParams(z2.clone(), torch.zeros(frames, dtype=dtype, device=device), z2.clone(),
                            torch.ones(frames, 2, dtype=dtype, device=device))


def transform_matrices(params: GlobalParams) -> torch.Tensor:
    """[K, 2, 2] linear parts R @ Sh @ S (differentiable)."""
    cos, sin = torch.cos(params.rotate), torch.sin(params.rotate)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    one = torch.ones_like(params.rotate)
    shear = torch.stack([torch.stack([one, params.shear[:, 0]], -1), torch.stack([params.shear[:, 1], one], -1)], -2)
    scale = torch.diag_embed(params.scale)
    return rot @ shear @ scale


def apply_global(points: torch.Tensor, params: GlobalParams, center: torch.Tensor | None = None) -> torch.Tensor:
    """points [N, 2] (or [K, N, 2]) -> [K, N, 2] with T_k applied about `center` (default: the centroid)."""
    if center is None:
        center = points.reshape(-1, 2).mean(0)
    rel = points - center
    lin = transform_matrices(params)  # [K, 2, 2]
    if rel.ndim == 2:
        rel = rel.unsqueeze(0).expand(lin.shape[0], -1, -1)
    return rel @ lin.transpose(-1, -2) + center + params.translate[:, None, :]


def _smooth_noise(gen: torch.Generator, frames: int, channels: int, knots: int) -> torch.Tensor:
    """Periodic smooth noise in [-1, 1]: random values on `knots` loop points, cosine-interpolated."""
    values = torch.rand(knots, channels, generator=gen) * 2 - 1
    pos = torch.arange(frames, dtype=torch.float32) * knots / frames
    i0 = pos.floor().long() % knots
    i1 = (i0 + 1) % knots
    w = (1 - torch.cos((pos - pos.floor()) * math.pi)) / 2
    return values[i0] * (1 - w[:, None]) + values[i1] * w[:, None]


def preset_params(preset: str, frames: int, canvas: tuple[int, int], amplitude: float = 1.0,
                  cycles: int = 1, seed: int = 0) -> GlobalParams:
    """Global parameters of a looping preset over `frames` frames.

    amplitude 1.0 is each preset's natural size (sway +-10 deg, bounce 10 % of the
    canvas height, spin one full turn per cycle, pulse +-10 % scale, wiggle a few
    pixels and degrees); cycles is the number of periods in the clip, so it loops.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown motion preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if frames < 1:
        raise ValueError("frames must be >= 1")
    p = GlobalParams.identity(frames)
    phase = torch.arange(frames, dtype=torch.float32) / frames * 2 * math.pi * cycles
    width, height = canvas
    if preset == "sway":
        p.rotate = amplitude * math.radians(10.0) * torch.sin(phase)
        p.shear[:, 0] = 0.05 * amplitude * torch.sin(phase)
    elif preset == "bounce":
        hop = torch.abs(torch.sin(phase / 2))  # one hop per cycle, touching the ground at frame 0
        p.translate[:, 1] = -0.10 * amplitude * height * hop
        squash = 0.06 * amplitude * (1 - hop) ** 4  # squash on landing
        p.scale[:, 0] = 1 + squash
        p.scale[:, 1] = 1 - squash
    elif preset == "spin":
        p.rotate = amplitude * phase
    elif preset == "pulse":
        p.scale = (1 + 0.10 * amplitude * torch.sin(phase))[:, None].expand(-1, 2).clone()
    elif preset == "wiggle":
        gen = torch.Generator().manual_seed(int(seed))
        n = _smooth_noise(gen, frames, 6, knots=max(2, 4 * cycles))
        p.translate = n[:, 0:2] * 0.02 * amplitude * torch.tensor([float(width), float(height)])
        p.rotate = n[:, 2] * math.radians(4.0) * amplitude
        p.shear = n[:, 3:5] * 0.04 * amplitude
        p.scale = (1 + n[:, 5:6] * 0.04 * amplitude).expand(-1, 2).clone()
    return p


def procedural_motion(sketch: Sketch, preset: str, frames: int = 24, fps: float = 8.0, amplitude: float = 1.0,
                      cycles: int = 1, seed: int = 0) -> SketchAnimation:
    params = preset_params(preset, frames, (sketch.width, sketch.height), amplitude, cycles, seed)
    pts = apply_global(sketch.points.float(), params)
    return SketchAnimation(pts, sketch.style, sketch.width, sketch.height, float(fps))
