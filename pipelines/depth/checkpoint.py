"""Reading depth-model files and folders safely and telling which model they hold.

Files: the original MiDaS `dpt_hybrid-midas-501f0c75.pt` and Depth-Anything-V2 `depth_anything_v2_vit{s,b,l}.pth`
(or .safetensors copies, e.g. ComfyUI-DepthAnythingV2's), read by pipelines/lvdm/checkpoint.read_checkpoint:
safetensors, or torch.load(weights_only=True). Folders: transformers format (config.json + model.safetensors or
pytorch_model.bin). The model is detected from key names and shapes, never from the file name (except to refuse
Depth-Anything metric files, whose keys equal the relative ones). Every error names the folder and the file.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

import torch

from ..lvdm.checkpoint import CheckpointError, read_checkpoint
from . import depth_anything, midas

WHERE_TO_GET = (
    "Depth models go into ComfyUI/models/depth/: MiDaS v3 DPT-Hybrid 'dpt_hybrid-midas-501f0c75.pt' (the one "
    "Make-Your-Video uses; github.com/isl-org/MiDaS releases v3, or huggingface.co/lllyasviel/Annotators), "
    "Depth-Anything-V2 'depth_anything_v2_vits.pth' / '_vitb.pth' / '_vitl.pth' (huggingface.co/depth-anything/"
    "Depth-Anything-V2-Small / -Base / -Large), or a transformers folder (Intel/dpt-hybrid-midas, "
    "depth-anything/Depth-Anything-V2-Small-hf ...) with its config.json and model.safetensors.")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class DepthCheckpointError(ValueError):
    """A depth-model file or folder that cannot be used; the message names it and says what was expected."""


@dataclass
class DepthCheckpoint:
    kind: str                 # "midas_dpt_hybrid" | "depth_anything_v2_vits" | ..._vitb | ..._vitl
    layout: str               # "original" | "transformers"
    tensors: dict
    path: str
    config: dict | None = None  # a transformers folder's config.json


def _where(path: str) -> str:
    path = os.fspath(path)
    return f"{os.path.basename(os.path.dirname(path.rstrip(os.sep))) or '.'}/{os.path.basename(path.rstrip(os.sep))}"


def _read_folder(path: str) -> tuple[dict, dict]:
    cfg_path = os.path.join(path, "config.json")
    if not os.path.isfile(cfg_path):
        raise DepthCheckpointError(f"{_where(path)} is a folder without config.json: not a transformers depth model. "
                                   + WHERE_TO_GET)
    with open(cfg_path, encoding="utf-8") as f:
        try:
            config = json.load(f)  # the stdlib parser builds plain data only
        except ValueError as e:
            raise DepthCheckpointError(f"{_where(cfg_path)} is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise DepthCheckpointError(f"{_where(cfg_path)} is not a JSON object")
    for name in WEIGHT_FILES:
        weights = os.path.join(path, name)
        if os.path.isfile(weights):
            return read_checkpoint(weights).tensors, config
    raise DepthCheckpointError(f"{_where(path)} has no {' or '.join(WEIGHT_FILES)} (sharded or other formats are not "
                               f"read); " + WHERE_TO_GET)


def identify(tensors: dict, where: str) -> tuple[str, str]:
    """(kind, layout) from key names and shapes; a clear error for anything else."""
    keys = list(tensors)
    if midas.matches_original(keys):
        return midas.KIND, "original"
    if midas.matches_transformers(keys):
        return midas.KIND, "transformers"
    for layout, test in (("original", depth_anything.matches_original),
                         ("transformers", depth_anything.matches_transformers)):
        if test(keys):
            try:
                size = depth_anything.encoder_of(tensors)
            except ValueError:  # not a released width: a reduced / custom model (see generic_overrides)
                size = f"{depth_anything._embed_dim(tensors)}d"
            return f"{depth_anything.KIND_PREFIX}_{size}", layout
    if any(k.startswith(("model.diffusion_model.", "diffusion_model.")) for k in keys):
        raise DepthCheckpointError(
            f"{where} is a video diffusion model (LVDM UNet), not a depth estimator: load it with "
            f"VP_LoadLVDMCheckpoint from models/checkpoints. " + WHERE_TO_GET)
    sample = ", ".join(keys[:3]) or "no tensors"
    raise DepthCheckpointError(f"{where} is not a depth model this pack reads (keys start {sample}). Expected MiDaS "
                               f"DPT-Hybrid or Depth-Anything-V2. " + WHERE_TO_GET)


def read_depth_checkpoint(path) -> DepthCheckpoint:
    """Read a depth-model file or transformers folder and say what it is."""
    path = os.fspath(path)
    where = _where(path)
    base = os.path.basename(path.rstrip(os.sep)).lower()
    if "metric" in base:
        raise DepthCheckpointError(
            f"{where} looks like a Depth-Anything-V2 *metric* model (file name): its keys equal the relative "
            f"model's but its head outputs metres, not the relative inverse depth this pack uses. Use "
            f"depth_anything_v2_vit{{s,b,l}}.pth (relative).")
    config = None
    try:
        if os.path.isdir(path):
            tensors, config = _read_folder(path)
        elif os.path.isfile(path):
            tensors = read_checkpoint(path).tensors
        else:
            raise DepthCheckpointError(f"{where} does not exist. " + WHERE_TO_GET)
    except CheckpointError as e:
        raise DepthCheckpointError(f"{where}: {e}") from None
    kind, layout = identify(tensors, where)
    return DepthCheckpoint(kind, layout, tensors, path, config)


def _layers(keys, pattern: str) -> int:
    found = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def generic_overrides(ck: DepthCheckpoint) -> dict:
    """Head count and tapped blocks for sizes no release has (reduced test models, custom trainings): neither is
    in any shape. Released sizes return {} (their official values apply). Rule: 64-wide heads where the width
    allows (one head otherwise); MiDaS taps blocks min(L-2, round(2L/3)) and L-1 (= the official 8, 11 at L = 12);
    Depth-Anything taps the last block of each quarter (= the official 2, 5, 8, 11 at L = 12)."""
    keys = list(ck.tensors)
    if ck.kind == midas.KIND:
        n = _layers(keys, r"(?:pretrained\.model\.blocks|dpt\.encoder\.layer)\.(\d+)\.")
        if n in midas.OFFICIAL_HOOKS:
            return {}
        return {"vit_hooks": (min(n - 2, round(2 * n / 3)), n - 1)}
    if not ck.kind.endswith("d"):
        return {}
    dim = depth_anything._embed_dim(ck.tensors)
    n = _layers(keys, r"(?:pretrained\.blocks|backbone\.encoder\.layer)\.(\d+)\.")
    taps = sorted({max(0, round(n * q / 4) - 1) for q in (1, 2, 3, 4)})
    if len(taps) != 4:
        raise DepthCheckpointError(f"{_where(ck.path)}: a Depth-Anything model with {n} blocks is too shallow")
    return {"num_heads": dim // 64 if dim % 64 == 0 else 1, "out_indices": taps}


def build_network(ck: DepthCheckpoint, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """The transformers network of a checkpoint, in eval mode; shape errors name the file."""
    try:
        if ck.kind == midas.KIND:
            extra = midas.hf_config_overrides(ck.config) if ck.config else generic_overrides(ck)
            return midas.build(ck.tensors, dtype=dtype, **extra)
        extra = depth_anything.hf_config_overrides(ck.config) if ck.config else generic_overrides(ck)
        return depth_anything.build(ck.tensors, dtype=dtype, **extra)
    except (ValueError, KeyError, TypeError) as e:
        raise DepthCheckpointError(f"{_where(ck.path)}: {e}") from None
