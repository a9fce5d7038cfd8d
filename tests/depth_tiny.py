"""Tiny depth models and a source video for node / workflow tests.

The depth files are the golden fixtures' weights (../shared/golden/depth: the official MiDaS DPT-Hybrid and
Depth-Anything-V2 classes at reduced sizes, real key names), saved under the real file names in the original
layouts (a plain state dict for MiDaS `.pt`, the same for Depth-Anything `.pth`), so they go through the loader
exactly as the published files do. The source video is a small MP4 written with PyAV: a static gradient background
and a disc that moves across it and grows (a static camera with one moving object).
"""
from __future__ import annotations

import os

import torch

MIDAS_FILE = "dpt_hybrid-midas-501f0c75.pt"
DA_FILE = "depth_anything_v2_vits.pth"
SOURCE_VIDEO = "vp_source_video.mp4"  # the name the depth / Make-Your-Video workflows' LoadVideo asks for
FIXTURES = {MIDAS_FILE: "midas_dpt_hybrid", DA_FILE: "depth_anything_v2_vits"}


def fixture_state_dict(fixture: str) -> dict:
    from safetensors.torch import load_file
    from shared_data import golden

    return {k: v.float() for k, v in load_file(golden("depth", fixture, "weights.safetensors")).items()}


def install_depth_models(base_dir: str) -> dict:
    """models/depth/<real file name> for both fixtures; returns {file name: path}."""
    out = {}
    folder = os.path.join(base_dir, "models", "depth")
    os.makedirs(folder, exist_ok=True)
    for name, fixture in FIXTURES.items():
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            torch.save(fixture_state_dict(fixture), path)
        out[name] = path
    return out


def source_frames(frames: int = 64, height: int = 64, width: int = 96) -> torch.Tensor:
    """[T, H, W, 3] in [0, 1]: a vertical gradient (the floor) and a disc crossing and coming closer."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    out = []
    for t in range(frames):
        p = t / max(1, frames - 1)
        img = torch.stack([0.2 + 0.5 * yy, 0.3 + 0.3 * yy, 0.6 - 0.3 * yy], dim=-1)
        disc = ((xx - (0.1 + 0.8 * p)) * width / height) ** 2 + (yy - 0.5) ** 2 <= (0.12 + 0.1 * p) ** 2
        img[disc] = torch.tensor([0.9, 0.3, 0.2])
        out.append(img)
    return torch.stack(out).clamp(0, 1)


def write_video(path: str, frames: torch.Tensor, fps: int = 8) -> str:
    import av
    import numpy as np

    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = (frames.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = data.shape[2], data.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10"}
        for frame in data:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def install_source_video(base_dir: str) -> str:
    path = os.path.join(base_dir, "input", SOURCE_VIDEO)
    if not os.path.isfile(path):
        write_video(path, source_frames())
    return path
