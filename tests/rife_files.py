"""RIFE test files: the golden 4.7 weights (../shared/golden/rife47, full size) in the layouts users have, and
state dicts of every manifest's shapes (random or shape-only).

The golden weights are stored as fp16 values; they are written here as fp32 (what the released .pth files hold).
"""
from __future__ import annotations

import json
import os

import torch

TEST_FILE = "rife47.pth"   # the name ComfyUI-Frame-Interpolation gives the 4.7 release
# manifest -> (layout our detection must report, release for that manifest's usual file name, that file name)
MANIFESTS = {
    "rife_v4_7": ("4.7", "4.7", "rife47.pth"),
    "rife_v4_9": ("4.7", "4.9", "rife49.pth"),
    "rife_comfyfi_arch47": ("4.7", "4.9", "flownet_v4.9.pkl"),
    "rife_v4_17": ("4.17", "4.17", "rife417.pth"),
    "rife_comfyfi_arch417": ("4.17", "4.18", "flownet_v4.18.pkl"),
    "rife_v4_22": ("4.22", "4.22", "rife422.pkl"),
    "rife_v4_22_lite": ("4.22-lite", "4.22-lite", "rife4.22.lite.pkl"),
    "rife_v4_25": ("4.25", "4.25", "rife425.pth"),
    "rife_v4_26": ("4.25", "4.26", "rife426.pth"),
    "rife_comfyfi_arch426": ("4.25", "4.26", "rife_v4_26.safetensors"),
    "rife_v4_25_lite": ("4.25-lite", "4.25-lite", "rife425_lite.pth"),
    "rife_v4_25_heavy": ("4.25-heavy", "4.25-heavy", "rife425_heavy.pth"),
    "rife_v4_26_heavy": ("4.26-heavy", "4.26-heavy", "rife426_heavy.pth"),
}


def golden_state_dict() -> dict:
    from safetensors.torch import load_file
    from shared_data import golden

    return {k: v.float() for k, v in load_file(golden("rife47", "weights.safetensors")).items()}


def golden_io() -> dict:
    from safetensors.torch import load_file
    from shared_data import golden

    return load_file(golden("rife47", "io.safetensors"))


def manifest_shapes(name: str) -> list[tuple[str, tuple[int, ...]]]:
    from shared_data import manifest

    out = []
    with open(manifest(name), encoding="utf-8") as f:
        for line in f:
            key, _, shape = line.strip().partition(" ")
            if key:
                out.append((key, tuple(json.loads(shape))))
    return out


def manifest_state_dict(name: str, device: str = "meta", seed: int = 0) -> dict:
    """Tensors of the manifest's shapes: shape-only on "meta", else random (ResConv beta 1, small convs)."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in manifest_shapes(name):
        if device == "meta":
            sd[key] = torch.empty(shape, device="meta")
        elif key.endswith(".beta"):
            sd[key] = torch.ones(shape)
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod())) if len(shape) > 1 else 1
            sd[key] = torch.randn(shape, generator=gen) * (0.5 / fan_in ** 0.5 if len(shape) > 1 else 0.02)
    return sd


def install_rife_model(base_dir: str, name: str = TEST_FILE) -> str:
    """models/frame_interpolation/<name>: the golden 4.7 weights as a plain fp32 state dict (.pth)."""
    path = os.path.join(base_dir, "models", "frame_interpolation", name)
    if not os.path.isfile(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.save(golden_state_dict(), path)
    return path


def moving_clip(frames: int = 4, height: int = 48, width: int = 64, seed: int = 0) -> torch.Tensor:
    """[T, H, W, 3] in [0, 1]: a smooth random texture sliding right by 2 px per frame."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, 10, 14, generator=gen)
    big = torch.nn.functional.interpolate(base, size=(height, width + 2 * frames), mode="bilinear",
                                          align_corners=False)[0]
    return torch.stack([big[:, :, 2 * (frames - t): 2 * (frames - t) + width] for t in range(frames)]).permute(
        0, 2, 3, 1).contiguous()
