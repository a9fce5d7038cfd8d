"""Tiny LVDM checkpoints in the official layout, for the node, workflow and server tests.

A tiny file holds every component a published `model.ckpt` holds, under the official key names, in the Lightning
`{"state_dict": ...}` wrapper, and goes through the real loader (VP_LoadLVDMCheckpoint -> checkpoint.py ->
comfy_model.py -> core CLIP / VAE / CLIP_VISION):
* UNet `model.diffusion_model.*`: our UNetModel at the golden-fixture sizes (tiny_config) with context 64;
* VAE `first_stage_model.*`: the real SD KL-f8 VAE shapes (core builds it from a fixed config), random, fp16;
* text `cond_stage_model.model.*` and image tower `embedder.model.visual.*`: the OpenCLIP ViT-H-14 key layout
  (manifest openclip_vit_h_14_full.txt) with the widths shrunk (1024/1280 -> 64) and the depths kept (24 / 32
  blocks, what ComfyUI's detection reads);
* resampler `image_proj_model.*`: our Resampler with 64-wide heads (as every published file) and 16 queries.

THE ONE SUBSTITUTION (as tests/test_comfy_prior.py does for UMT5): ComfyUI builds the SD 2.x text model and the
ViT-H image tower from fixed JSON files it ships (text_encoders/sd2_clip_config.json, clip_vision_config_h.json).
`TINY_SOURCE` replaces those two config paths by tiny ones (same model classes, same key conversion): in-process by
`apply_substitution`, in a server subprocess by a test-only custom node (`install_custom_node`).
"""
from __future__ import annotations

import json
import math
import os

import torch

WIDTH = 64
TEXT_CONFIG = {"architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0,
               "eos_token_id": 49407, "hidden_act": "gelu", "hidden_size": WIDTH, "initializer_factor": 1.0,
               "initializer_range": 0.02, "intermediate_size": 4 * WIDTH, "layer_norm_eps": 1e-05,
               "max_position_embeddings": 77, "model_type": "clip_text_model", "num_attention_heads": 1,
               "num_hidden_layers": 24, "pad_token_id": 1, "projection_dim": WIDTH, "torch_dtype": "float32",
               "vocab_size": 49408}
VISION_CONFIG = {"attention_dropout": 0.0, "dropout": 0.0, "hidden_act": "gelu", "hidden_size": WIDTH,
                 "image_size": 224, "initializer_factor": 1.0, "initializer_range": 0.02,
                 "intermediate_size": 4 * WIDTH, "layer_norm_eps": 1e-05, "model_type": "clip_vision_model",
                 "num_attention_heads": 1, "num_channels": 3, "num_hidden_layers": 32, "patch_size": 14,
                 "projection_dim": WIDTH, "torch_dtype": "float32"}
SHRINK = {1024: WIDTH, 3072: 3 * WIDTH, 4096: 4 * WIDTH, 1280: WIDTH, 3840: 3 * WIDTH, 5120: 4 * WIDTH}
RESAMPLER = dict(dim=32, depth=2, dim_head=64, heads=1, num_queries=16, embedding_dim=WIDTH, output_dim=WIDTH,
                 ff_mult=4, video_length=16)
FILES = {"videocrafter2_512": "videocrafter2_512.ckpt", "dynamicrafter_512": "dynamicrafter_512.ckpt",
         "dynamicrafter_256": "dynamicrafter_256.ckpt", "makeyourvideo_256": "makeyourvideo_256.ckpt"}

TINY_SOURCE = '''
import os

import comfy.clip_vision
import comfy.text_encoders.sd2_clip
from comfy import sd1_clip


class TinySD2ClipHModel(sd1_clip.SDClipModel):
    """comfy.text_encoders.sd2_clip.SD2ClipHModel with a tiny config file (everything else identical)."""

    def __init__(self, arch="ViT-H-14", device="cpu", max_length=77, freeze=True, layer="penultimate",
                 layer_idx=None, dtype=None, model_options={}):
        if layer == "penultimate":
            layer = "hidden"
            layer_idx = -2
        super().__init__(device=device, freeze=freeze, layer=layer, layer_idx=layer_idx,
                         textmodel_json_config=TEXT_CONFIG_PATH, dtype=dtype,
                         special_tokens={"start": 49406, "end": 49407, "pad": 0}, return_projected_pooled=True,
                         model_options=model_options)


_core_clip_vision_init = comfy.clip_vision.ClipVisionModel.__init__


def _tiny_clip_vision_init(self, json_config):
    if os.path.basename(json_config) == "clip_vision_config_h.json":
        json_config = VISION_CONFIG_PATH
    _core_clip_vision_init(self, json_config)


def apply():
    comfy.text_encoders.sd2_clip.SD2ClipHModel = TinySD2ClipHModel
    comfy.clip_vision.ClipVisionModel.__init__ = _tiny_clip_vision_init


def undo():
    comfy.text_encoders.sd2_clip.SD2ClipHModel = ORIGINAL_TEXT
    comfy.clip_vision.ClipVisionModel.__init__ = _core_clip_vision_init


ORIGINAL_TEXT = comfy.text_encoders.sd2_clip.SD2ClipHModel
'''


def write_configs(base_dir: str) -> tuple[str, str]:
    text, vision = os.path.join(base_dir, "tiny_sd2_text.json"), os.path.join(base_dir, "tiny_clip_vision_h.json")
    for path, cfg in ((text, TEXT_CONFIG), (vision, VISION_CONFIG)):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(cfg, f)
    return text, vision


def substitution(base_dir: str) -> dict:
    """Execute TINY_SOURCE (ComfyUI must be importable); returns its namespace with apply()/undo()."""
    text, vision = write_configs(base_dir)
    namespace = {"TEXT_CONFIG_PATH": text, "VISION_CONFIG_PATH": vision}
    exec(compile(TINY_SOURCE, "<tiny lvdm encoders>", "exec"), namespace)
    return namespace


def install_custom_node(base_dir: str) -> None:
    """For a server subprocess: a test-only custom node that applies the substitution at startup."""
    text, vision = write_configs(base_dir)
    folder = os.path.join(base_dir, "custom_nodes", "vp_test_tiny_lvdm_encoders")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "__init__.py"), "w", encoding="utf-8") as f:
        f.write('"""Test only (VideoPriors tests/lvdm_tiny.py): tiny SD2 text / ViT-H image tower configs."""\n'
                f"TEXT_CONFIG_PATH = {text!r}\nVISION_CONFIG_PATH = {vision!r}\n{TINY_SOURCE}\napply()\n"
                "NODE_CLASS_MAPPINGS = {}\n")


def _manifest(name: str) -> dict:
    from shared_data import manifest

    from pipelines.lvdm.config import shapes_from_manifest

    with open(manifest(name), encoding="utf-8") as f:
        return shapes_from_manifest(f)


def _random(key: str, shape: tuple, gen: torch.Generator) -> torch.Tensor:
    last = key.rsplit(".", 1)[-1]
    if key.endswith("logit_scale"):
        return torch.tensor(math.log(100.0))
    if len(shape) >= 2 and "embedding" not in key:
        return torch.randn(shape, generator=gen) / math.sqrt(max(1, math.prod(shape[1:])))
    if last == "weight" and ("ln" in key or "norm" in key):
        return 1.0 + 0.1 * torch.randn(shape, generator=gen)
    return 0.05 * torch.randn(shape, generator=gen)


def clip_tensors(gen: torch.Generator, visual: bool) -> dict:
    """OpenCLIP ViT-H-14 text tower (and image tower) with shrunk widths, official names without prefix."""
    out = {}
    for key, shape in _manifest("openclip_vit_h_14_full").items():
        if key.startswith("visual.") != visual:
            continue
        shape = tuple(SHRINK.get(d, d) for d in shape)
        out[key] = _random(key, shape, gen)
    return out


def vae_tensors(gen: torch.Generator) -> dict:
    """The SD KL-f8 VAE at its real size (core builds it from a fixed config), random, fp16."""
    out = {}
    for key, shape in _manifest("dc512").items():
        if key.startswith("first_stage_model."):
            t = _random(key, shape, gen)
            if key.endswith(("conv_out.weight", "conv_in.weight")) or len(shape) == 4:
                t = t * 0.5
            out[key] = t.half()
    return out


def build_checkpoint(path: str, variant: str, seed: int = 0) -> str:
    """A tiny `model.ckpt` of `variant` (Lightning {"state_dict": ...} layout) at `path`."""
    from pipelines.lvdm.config import VARIANTS, tiny_config
    from pipelines.lvdm.resampler import Resampler
    from pipelines.lvdm.unet import UNetModel

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    v = VARIANTS[variant]
    unet = UNetModel(tiny_config(variant, context_dim=WIDTH))
    sd = {}
    for k, t in unet.state_dict().items():
        if k.endswith(".alpha"):
            t = torch.tensor(0.3)
        sd["model.diffusion_model." + k] = t.detach().clone()
    sd.update(vae_tensors(gen))
    sd.update({"cond_stage_model.model." + k: t for k, t in clip_tensors(gen, visual=False).items()})
    if v.has_resampler:
        sd.update({"embedder.model." + k: t for k, t in clip_tensors(gen, visual=True).items()})
        rs = Resampler(**RESAMPLER)
        sd.update({"image_proj_model." + k: t.detach().clone() for k, t in rs.state_dict().items()})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save({"state_dict": sd, "epoch": 0, "global_step": 0}, path)
    return path


def install_checkpoints(base_dir: str, variants=("videocrafter2_512", "dynamicrafter_512")) -> dict:
    """Tiny checkpoints under models/checkpoints with the names the workflows use."""
    paths = {}
    for variant in variants:
        path = os.path.join(base_dir, "models", "checkpoints", FILES[variant])
        if not os.path.isfile(path):
            build_checkpoint(path, variant, seed=len(paths))
        paths[variant] = path
    return paths


def dynamicrafter_conditioning_nodes(size: int, frames: int, ckpt: str = "dynamicrafter_512.ckpt",
                                     variant: str = "auto") -> dict:
    """API-prompt nodes "1".."6": loader, prompt / empty negative, a flat start image, CLIP context, DynamiCrafter
    conditioning (outputs: 6.0 positive, 6.1 negative, 6.2 latent, 6.3 image_only)."""
    return {
        "1": {"class_type": "VP_LoadLVDMCheckpoint", "inputs": {"ckpt_name": ckpt, "variant": variant,
                                                                 "weight_dtype": "fp32"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a cat turns its head"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "4": {"class_type": "EmptyImage", "inputs": {"width": 96, "height": 80, "batch_size": 1, "color": 0x8040C0}},
        "5": {"class_type": "VP_CLIPContextEncoder", "inputs": {
            "clip_vision": ["1", 3], "resampler": ["1", 4], "image": ["4", 0], "preprocess": "official",
            "width": size, "height": size, "fit": "center crop"}},
        "6": {"class_type": "VP_DynamiCrafterConditioning", "inputs": {
            "positive": ["2", 0], "negative": ["3", 0], "image_context": ["5", 0], "vae": ["1", 2],
            "start_image": ["4", 0], "width": size, "height": size, "frames": frames, "frame_stride": 24,
            "fit": "center crop", "batch_size": 1}},
    }


def files_by_kind(outputs: dict) -> dict:
    """{extension: item} of the output files a finished prompt reported (history "outputs")."""
    kinds = {}
    for items in outputs.values():
        for item in [i for v in items.values() if isinstance(v, list) for i in v if isinstance(i, dict)]:
            if "filename" in item and item.get("type") == "output":
                kinds[os.path.splitext(item["filename"])[1]] = item
    return kinds
