"""DepthEstimator: frames in, relative inverse depth per frame out, at the frames' size.

Each model keeps its official preprocessing (midas.preprocess / depth_anything.preprocess) and its official way
back to the input size (postprocess). Frames go through in chunks so memory stays bounded on long clips.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from . import depth_anything, midas
from .types import DepthVideo

DA_INPUT_SIZE = 518  # Depth-Anything-V2's official default (lower bound of the shorter side, multiple of 14)


class DepthEstimator(torch.nn.Module):
    """A depth network plus the recipe of its family. `kind` e.g. "midas_dpt_hybrid", "depth_anything_v2_vitl"."""

    def __init__(self, net: torch.nn.Module, kind: str):
        super().__init__()
        self.net = net
        self.kind = kind

    @property
    def family(self):
        return midas if self.kind == midas.KIND else depth_anything

    @property
    def dtype(self) -> torch.dtype:
        return next(self.net.parameters()).dtype

    def working_size(self, height: int, width: int, input_size: int = DA_INPUT_SIZE) -> tuple[int, int]:
        """The network's input size for frames of this size."""
        probe = torch.zeros(1, height, width, 3)
        if self.family is midas:
            return tuple(midas.preprocess(probe).shape[-2:])
        return tuple(depth_anything.preprocess(probe, input_size=input_size).shape[-2:])

    @torch.no_grad()
    def predict_net(self, frames: torch.Tensor, input_size: int = DA_INPUT_SIZE) -> torch.Tensor:
        """frames [N, H, W, 3] in [0, 1] -> depth [N, h, w] float32 at the network's resolution."""
        device = next(self.net.parameters()).device
        frames = frames.to(device=device, dtype=torch.float32)
        if self.family is midas:
            x = midas.preprocess(frames)
        else:
            x = depth_anything.preprocess(frames, input_size=input_size)
        return self.family.predict(self.net, x.to(self.dtype)).float()

    @torch.no_grad()
    def forward(self, frames: torch.Tensor, input_size: int = DA_INPUT_SIZE) -> torch.Tensor:
        """frames [N, H, W, 3] in [0, 1] -> depth [N, H, W] float32 (relative inverse depth)."""
        d = self.predict_net(frames, input_size)
        return self.family.postprocess(d, tuple(frames.shape[1:3])).float()

    def estimate(self, frames: torch.Tensor, batch_size: int = 4, input_size: int = DA_INPUT_SIZE,
                 step: Callable[[int, torch.Tensor], None] | None = None) -> DepthVideo:
        """Depth for every frame, `batch_size` frames at a time; `step(done, chunk_depth)` after each chunk (progress,
        previews, interruption: raise from it to stop)."""
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be [N, H, W, 3] (a ComfyUI IMAGE), got {list(frames.shape)}")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        out, net = [], []
        size = tuple(frames.shape[1:3])
        for start in range(0, frames.shape[0], batch_size):
            raw = self.predict_net(frames[start:start + batch_size], input_size=input_size)
            d = self.family.postprocess(raw, size).float().cpu()
            out.append(d)
            net.append(raw.cpu())
            if step is not None:
                step(start + d.shape[0], d)
        return DepthVideo(torch.cat(out), self.kind, torch.cat(net))
