"""The depth clip passed between nodes (ComfyUI type VP_DEPTH)."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DepthVideo:
    """Relative inverse depth ("disparity-like": larger = nearer), one map per frame, float32 on CPU.

    depth      [T, H, W] raw network output resized to the frames' size; no normalisation applied
    model      which estimator made it, e.g. "midas_dpt_hybrid", "depth_anything_v2_vits"
    net_depth  [T, h, w] the same at the network's resolution (MiDaS 384x384), before any resize: Make-Your-Video
               resizes this straight to the latent size (get_batch_depth); None for depth from elsewhere
    """
    depth: torch.Tensor
    model: str
    net_depth: torch.Tensor | None = None

    def __post_init__(self):
        if self.depth.ndim != 3:
            raise ValueError(f"DepthVideo.depth must be [T, H, W], got {list(self.depth.shape)}")
        if self.net_depth is not None and (self.net_depth.ndim != 3 or self.net_depth.shape[0] != self.depth.shape[0]):
            raise ValueError(f"DepthVideo.net_depth must be [T, h, w] with T = {self.depth.shape[0]}, got "
                             f"{list(self.net_depth.shape)}")

    @property
    def frames(self) -> int:
        return int(self.depth.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.depth.shape[1]), int(self.depth.shape[2])
