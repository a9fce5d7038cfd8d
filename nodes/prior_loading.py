"""Finding, loading and memory-managing video priors inside ComfyUI.

The pure-PyTorch priors live in pipelines/priors; this module puts them under ComfyUI's
model management: weights sit on the offload device until a node needs them, then
`load_models_gpu` moves them (and may evict other models) like any core model.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import torch

import comfy.model_management as mm
import comfy.model_patcher
import folder_paths

FOLDER_KEY = "video_priors"
SEARCH_KEYS = (FOLDER_KEY, "diffusers")
DTYPES = ["auto", "fp32", "fp16", "bf16"]
WHERE_TO_GET = ("Put a diffusers-format text-to-video folder (e.g. ali-vilab/text-to-video-ms-1.7b or "
                "cerspense/zeroscope_v2_576w from Hugging Face: model_index.json, unet/, vae/, text_encoder/, "
                "tokenizer/, scheduler/) into ComfyUI/models/video_priors/<name>/.")


def register_folders() -> None:
    folder_paths.add_model_folder_path(FOLDER_KEY, os.path.join(folder_paths.models_dir, FOLDER_KEY), is_default=True)


def _is_t2v_folder(path: str) -> bool:
    index = os.path.join(path, "model_index.json")
    unet_cfg = os.path.join(path, "unet", "config.json")
    try:
        if os.path.isfile(unet_cfg):
            with open(unet_cfg, encoding="utf-8") as f:
                return json.load(f).get("_class_name") == "UNet3DConditionModel"
        if os.path.isfile(index):
            with open(index, encoding="utf-8") as f:
                return "TextToVideo" in str(json.load(f).get("_class_name", ""))
    except (OSError, ValueError):
        return False
    return False


def _search_roots() -> list[str]:
    roots = []
    for key in SEARCH_KEYS:
        try:
            roots += folder_paths.get_folder_paths(key)
        except KeyError:
            continue
    return roots


EMBEDDED = "embedded"  # the pack's own prior (pipelines/assets/embedded_prior): no file from the user


def embedded_folder() -> str:
    from ..pipelines.embedded.prior import EMBEDDED_PRIOR_DIR

    return EMBEDDED_PRIOR_DIR


def _prior_folders() -> dict[str, str]:
    """Name -> folder of every text-to-video folder under models/video_priors and models/diffusers, in
    listing order; the first root that has a text-to-video folder of a name wins (a user folder named
    "embedded" is shadowed by the pack's own prior)."""
    found: dict[str, str] = {}
    for root in _search_roots():
        if not os.path.isdir(root):
            continue
        for entry in sorted(os.listdir(root)):
            path = os.path.join(root, entry)
            if entry != EMBEDDED and entry not in found and os.path.isdir(path) and _is_t2v_folder(path):
                found[entry] = path
    return found


def list_prior_folders() -> list[str]:
    """"embedded" first (ships with the pack), then the names of text-to-video folders (_prior_folders)."""
    return [EMBEDDED, *_prior_folders()]


def _safe_folder_name(name) -> bool:
    """One plain path component: no separator, no '..', not absolute (names come from API clients)."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and not os.path.isabs(name) and "\x00" not in name)


def resolve_prior_folder(name: str) -> str:
    """The folder of a prior that `list_prior_folders` lists (or the embedded prior); nothing else loads.

    Errors name folders relative to ComfyUI's models folder, never absolute server paths."""
    if name == EMBEDDED:
        return embedded_folder()
    path = _prior_folders().get(name) if _safe_folder_name(name) else None  # the folder that was listed
    if path is None:
        where = " or ".join(f"models/{k}" for k in SEARCH_KEYS)
        raise FileNotFoundError(f"video prior {name!r} is not one of the text-to-video folders in {where} "
                                f"(names of folders there, or 'embedded'). " + WHERE_TO_GET)
    return path


def torch_dtype(name: str, device) -> torch.dtype:
    if name == "fp32":
        return torch.float32
    if name == "fp16":
        return torch.float16
    if name == "bf16":
        return torch.bfloat16
    # auto: half precision where the device runs it well, fp32 on CPU
    if mm.should_use_fp16(device):
        return torch.float16
    if mm.should_use_bf16(device):
        return torch.bfloat16
    return torch.float32


@dataclass
class ManagedPrior:
    """VP_VIDEO_PRIOR: a VideoPrior plus the ModelPatchers ComfyUI manages its modules with."""

    prior: object
    patchers: list = field(default_factory=list)
    label: str = ""

    def load(self) -> None:
        """Bring every module to the compute device (ComfyUI may offload other models for it)."""
        if self.patchers:
            mm.load_models_gpu(self.patchers)
            device = self.patchers[0].load_device
            if hasattr(self.prior, "device"):
                self.prior.device = device


class _Holder(torch.nn.Module):
    """ModelPatcher writes bookkeeping attributes (device, lowvram flags...) onto the module it
    manages; diffusers models expose `device` as a read-only property, so each is held in a plain
    Module. Moving the holder moves the very module the prior uses."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.inner = module


def manage(prior, modules: dict, label: str) -> ManagedPrior:
    load_device = mm.get_torch_device()
    offload = mm.unet_offload_device()
    patchers = [comfy.model_patcher.ModelPatcher(_Holder(m), load_device=load_device, offload_device=offload)
                for m in modules.values() if m is not None]
    return ManagedPrior(prior, patchers, label)
