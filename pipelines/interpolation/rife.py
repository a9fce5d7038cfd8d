"""RIFE IFNet (Practical-RIFE 4.7 to 4.26) in plain PyTorch: no compiled dependency, one class for every layout.

Layouts (`ARCHES`) differ only in sizes and three switches: the frame encoder (4.7-4.9: two layers; 4.17+: a
four-layer head), whether each block hands 8 feature channels to the next (4.22+), and the number of blocks
(4 up to 4.22, 5 from 4.25). Parameter names are those of the released checkpoints (ComfyUI-Frame-Interpolation's
rife47/49/417/426.pth; Practical-RIFE's flownet.pkl after removing `module.`), in the same order.

Conventions (ComfyUI-Frame-Interpolation's `IFNet.forward`, cross-checked with vs-rife; golden fixture rife47):
inputs clamped to [0, 1], padded with zeros on the right/bottom to a multiple of 64 (128 for 4.25-lite), output
cropped back; scale_list = base scales / scale_factor; bilinear resizes with align_corners=False; warping is
grid_sample(bilinear, border, align_corners=True) of a [-1, 1] grid plus flow / ((W-1)/2, (H-1)/2).

Ensemble (`ensemble=True`, twice the block compute; the encoder runs once): 4.7-4.18 run every block a second
time on the swapped pair at 1 - t and average flows and masks block by block (Practical-RIFE / vs-rife's
ensemble; ComfyUI-Frame-Interpolation never reaches it, see the golden README quirk 11). 4.22+ have no such
branch upstream; there the whole pass is repeated on the swapped pair at 1 - t and the two images averaged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class RifeArch:
    """One parameter layout; `versions` are the releases that share it (their weights differ, the code not)."""

    name: str
    versions: tuple[str, ...]
    head: str                    # "conv2": encode.0/encode.1 (4.7-4.9); "head": encode.cnn0..cnn3 (4.17+)
    head_width: int
    feat: int                    # encoder channels per frame
    widths: tuple[int, ...]      # channels of each IFBlock
    carry: bool                  # blocks pass 8 feature channels on (4.22+)
    scales: tuple[float, ...]    # base scale_list (divided by scale_factor)
    pad: int                     # frames are padded to a multiple of this
    block_ensemble: bool         # upstream per-block ensemble exists (4.7-4.18)


ARCHES: tuple[RifeArch, ...] = (
    RifeArch("4.7", ("4.7", "4.8", "4.9"), "conv2", 16, 4, (192, 128, 96, 64), False, (8, 4, 2, 1), 64, True),
    RifeArch("4.17", ("4.17", "4.18"), "head", 32, 8, (192, 128, 96, 64), False, (8, 4, 2, 1), 64, True),
    RifeArch("4.22", ("4.22",), "head", 32, 8, (256, 192, 96, 48), True, (8, 4, 2, 1), 64, False),
    RifeArch("4.22-lite", ("4.22-lite",), "head", 16, 4, (192, 128, 64, 32), True, (8, 4, 2, 1), 64, False),
    RifeArch("4.25", ("4.25", "4.26"), "head", 16, 4, (192, 128, 96, 64, 32), True, (16, 8, 4, 2, 1), 64, False),
    RifeArch("4.25-lite", ("4.25-lite",), "head", 16, 4, (192, 128, 96, 64, 24), True, (32, 16, 8, 4, 1), 128,
             False),
    RifeArch("4.25-heavy", ("4.25-heavy",), "head", 16, 4, (384, 256, 192, 128, 64), True, (16, 8, 4, 2, 1), 64,
             False),
    RifeArch("4.26-heavy", ("4.26-heavy",), "head", 16, 16, (192, 128, 96, 64, 32), True, (16, 8, 4, 2, 1), 64,
             False),
)
ARCH_BY_NAME = {a.name: a for a in ARCHES}
SCALE_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)


def _conv_act(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), nn.LeakyReLU(0.2, True))


class ResConv(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, c, 1, 1))
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x) * self.beta + x)


class IFBlock(nn.Module):
    """Flow residual, mask logit (and 8 feature channels when `out == 13`) at 1/scale of the frame size."""

    def __init__(self, cin: int, c: int, out: int):
        super().__init__()
        self.conv0 = nn.Sequential(_conv_act(cin, c // 2), _conv_act(c // 2, c))
        self.convblock = nn.Sequential(*[ResConv(c) for _ in range(8)])
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * out, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None, scale: float):
        x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
            x = torch.cat((x, flow), 1)
        tmp = self.lastconv(self.convblock(self.conv0(x)))
        tmp = F.interpolate(tmp, scale_factor=scale, mode="bilinear", align_corners=False)
        return tmp[:, :4] * scale, tmp[:, 4:5], tmp[:, 5:]


class Head(nn.Module):
    """4.17+ frame encoder (input already clamped)."""

    def __init__(self, width: int, out: int):
        super().__init__()
        self.cnn0 = nn.Conv2d(3, width, 3, 2, 1)
        self.cnn1 = nn.Conv2d(width, width, 3, 1, 1)
        self.cnn2 = nn.Conv2d(width, width, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(width, out, 4, 2, 1)
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.cnn0(x))
        x = self.relu(self.cnn1(x))
        x = self.relu(self.cnn2(x))
        return self.cnn3(x)


def _swap(flow: torch.Tensor) -> torch.Tensor:
    return torch.cat((flow[:, 2:4], flow[:, :2]), 1)


def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp by a pixel flow. Done in float32 whatever the model dtype: in bf16 the sampling grid of a
    1024-px frame would only resolve ~4 px."""
    n, _, h, w = flow.shape
    flow = flow.float()
    gx = torch.linspace(-1.0, 1.0, w, device=flow.device).view(1, 1, 1, w).expand(n, 1, h, w)
    gy = torch.linspace(-1.0, 1.0, h, device=flow.device).view(1, 1, h, 1).expand(n, 1, h, w)
    grid = torch.cat((gx + flow[:, 0:1] / ((w - 1.0) / 2.0), gy + flow[:, 1:2] / ((h - 1.0) / 2.0)), 1)
    out = F.grid_sample(img.float(), grid.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border",
                        align_corners=True)
    return out.to(img.dtype)


class IFNet(nn.Module):
    """RIFE flow network of one layout. `encode_frames` then `flow_forward`, or `forward` on padded frames."""

    def __init__(self, arch: RifeArch | str):
        super().__init__()
        arch = ARCH_BY_NAME[arch] if isinstance(arch, str) else arch
        self.arch = arch
        out = 13 if arch.carry else 6
        for i, c in enumerate(arch.widths):
            cin = 7 + 2 * arch.feat if i == 0 else 8 + 4 + 2 * arch.feat + (8 if arch.carry else 0)
            self.add_module(f"block{i}", IFBlock(cin, c, out))
        if arch.head == "conv2":
            self.encode = nn.Sequential(nn.Conv2d(3, arch.head_width, 3, 2, 1),
                                        nn.ConvTranspose2d(arch.head_width, arch.feat, 4, 2, 1))
        else:
            self.encode = Head(arch.head_width, arch.feat)

    @property
    def blocks(self) -> list[IFBlock]:
        return [getattr(self, f"block{i}") for i in range(len(self.arch.widths))]

    def scale_list(self, scale_factor: float = 1.0) -> list[float]:
        return [s / scale_factor for s in self.arch.scales]

    def pad_multiple(self, scale_factor: float = 1.0) -> int:
        """Padding that keeps every block's resized input a whole multiple of 4 pixels."""
        need = 4 * max(self.arch.scales) / scale_factor
        m = self.arch.pad
        while m < need:
            m *= 2
        return m

    def flow_forward(self, img0, img1, f0, f1, timestep, scale_list, ensemble: bool = False) -> torch.Tensor:
        """Padded, clamped frames [B,3,H,W] and their encoder features -> the frame at `timestep` ([B] or float)."""
        b, _, h, w = img0.shape
        t = torch.as_tensor(timestep, dtype=img0.dtype, device=img0.device).reshape(-1, 1, 1, 1)
        t = t.expand(b, 1, h, w)
        if ensemble and not self.arch.block_ensemble:
            return (self._run(img0, img1, f0, f1, t, scale_list, False)
                    + self._run(img1, img0, f1, f0, 1 - t, scale_list, False)) / 2
        return self._run(img0, img1, f0, f1, t, scale_list, ensemble)

    def _run(self, img0, img1, f0, f1, t, scale_list, ensemble: bool) -> torch.Tensor:
        flow = mask = feat = None
        wimg0, wimg1 = img0, img1
        for i, block in enumerate(self.blocks):
            scale = scale_list[i]
            if flow is None:
                flow, mask, feat = block(torch.cat((img0, img1, f0, f1, t), 1), None, scale)
                if ensemble:
                    rf, rm, _ = block(torch.cat((img1, img0, f1, f0, 1 - t), 1), None, scale)
                    flow = (flow + _swap(rf)) / 2
                    mask = (mask - rm) / 2
            else:
                wf0, wf1 = warp(f0, flow[:, :2]), warp(f1, flow[:, 2:4])
                extra = (feat,) if self.arch.carry else ()
                fd, m0, feat = block(torch.cat((wimg0, wimg1, wf0, wf1, t, mask) + extra, 1), flow, scale)
                if ensemble:
                    rf, rm, _ = block(torch.cat((wimg1, wimg0, wf1, wf0, 1 - t, -mask), 1), _swap(flow), scale)
                    fd = (fd + _swap(rf)) / 2
                    mask = (m0 - rm) / 2
                else:
                    mask = m0
                flow = flow + fd
            wimg0, wimg1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        mask = torch.sigmoid(mask)
        return wimg0 * mask + wimg1 * (1 - mask)

    def prepare(self, frames: torch.Tensor, scale_factor: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames [N,3,H,W] -> (clamped, zero-padded frames, their encoder features), in the model's dtype."""
        p = next(self.parameters())
        x = frames.to(device=p.device, dtype=p.dtype).clamp(0.0, 1.0)
        m = self.pad_multiple(scale_factor)
        h, w = x.shape[-2:]
        x = F.pad(x, (0, math.ceil(w / m) * m - w, 0, math.ceil(h / m) * m - h))
        return x, self.encode(x)

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, timestep=0.5, scale_factor: float = 1.0,
                ensemble: bool = False) -> torch.Tensor:
        """Frames [B,3,H,W] in [0, 1] -> the frames at `timestep` (float or [B]), unclamped, cropped to H x W."""
        if scale_factor not in SCALE_FACTORS:
            raise ValueError(f"RIFE scale_factor must be one of {SCALE_FACTORS}, got {scale_factor!r}")
        h, w = img0.shape[-2:]
        x0, f0 = self.prepare(img0, scale_factor)
        x1, f1 = self.prepare(img1, scale_factor)
        out = self.flow_forward(x0, x1, f0, f1, timestep, self.scale_list(scale_factor), ensemble)
        return out[:, :, :h, :w]
