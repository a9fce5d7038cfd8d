"""The depth clip passed between nodes (ComfyUI type VP_DEPTH)."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DepthVideo:
    """Relative inverse depth ("disparity-like": larger = nearer), one map per frame, float32 on CPU.

    depth   [T, H, W] raw network output resized to the frames' size; no normalisation applied
    model   which estimator made it, e.g. "midas_dpt_hybrid", "depth_anything_v2_vits"
    """
    depth: torch.Tensor
    model: str

    def __post_init__(self):
        if self.depth.ndim != 3:
            raise ValueError(f"DepthVideo.depth must be [T, H, W], got {list(self.depth.shape)}")

    @property
    def frames(self) -> int:
        return int(self.depth.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.depth.shape[1]), int(self.depth.shape[2])
