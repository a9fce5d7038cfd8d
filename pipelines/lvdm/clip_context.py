"""DynamiCrafter's image context: CLIP image tokens of the start frame, re-sampled to 16 tokens per frame.

Official path (lvdm/modules/encoders/condition.py FrozenOpenCLIPImageEmbedderV2 + image_guided_synthesis): the
start frame, already resized and centre-cropped to the video size and scaled to [-1, 1], is resized straight to
224x224 (bicubic, align_corners=True, kornia's antialias: a Gaussian blur before down-sampling), mapped to [0, 1]
and normalised with the CLIP mean/std; the OpenCLIP ViT-H-14 tower's last block output (all 257 tokens, no ln_post)
goes through the Resampler. The unconditional branch encodes a mid-grey frame (zeros in [-1, 1]).

ComfyUI's own `clip_preprocess` differs: it scales the shorter side to 224 and centre-crops (crop="center") or
stretches (crop="none"), uses torch's antialias (area-weighted, no Gaussian), and rounds pixels to 8 bits. Both are
offered; "official" is the default because it is what the checkpoints were trained with.
"""
from __future__ import annotations

import torch

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PREPROCESS_MODES = ("official", "core center crop", "core stretch")


def official_clip_pixels(images: torch.Tensor, size: int = 224) -> torch.Tensor:
    """[B, 3, H, W] frames in [-1, 1] -> CLIP pixel values [B, 3, size, size], as the official embedder."""
    import kornia  # the official code's own resize (its antialias is a Gaussian pre-blur, not torch's)

    x = kornia.geometry.resize(images.float(), (size, size), interpolation="bicubic", align_corners=True,
                               antialias=True)
    x = (x + 1.0) / 2.0
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def grey_like(images: torch.Tensor) -> torch.Tensor:
    """The unconditional image: mid-grey, i.e. zeros in the model's [-1, 1] pixel space (not black)."""
    return torch.zeros_like(images)


def fit_frames(images: torch.Tensor, height: int, width: int, mode: str = "center crop") -> torch.Tensor:
    """[B, 3, H, W] in [0, 1] -> [B, 3, height, width]. "center crop": scale to cover, then crop the middle (the official
    Resize(shorter side) + CenterCrop, without its zero padding when the image is narrower than the video);
    "stretch": straight resize; "pad": scale to fit inside and pad with mid-grey."""
    b, c, h, w = images.shape
    if (h, w) == (height, width):
        return images
    if mode == "stretch":
        return torch.nn.functional.interpolate(images, size=(height, width), mode="bicubic", antialias=True,
                                               align_corners=False)
    if mode == "center crop":
        scale = max(height / h, width / w)
    elif mode == "pad":
        scale = min(height / h, width / w)
    else:
        raise ValueError(f"unknown fit mode '{mode}': center crop, stretch or pad")
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = torch.nn.functional.interpolate(images, size=(nh, nw), mode="bicubic", antialias=True,
                                              align_corners=False)
    if mode == "center crop":
        top, left = (nh - height) // 2, (nw - width) // 2
        return resized[:, :, top:top + height, left:left + width]
    out = torch.full((b, c, height, width), 0.5, dtype=images.dtype, device=images.device)
    top, left = (height - nh) // 2, (width - nw) // 2
    out[:, :, top:top + nh, left:left + nw] = resized
    return out
