"""Tiny random-initialised text-to-video folders in the diffusers layout, for tests and benchmarks.

`build_tiny_t2v_folder` writes a folder shaped exactly like ModelScope `text-to-video-ms-1.7b`
(unet/ vae/ text_encoder/ tokenizer/ scheduler/ + model_index.json) with the same classes
(UNet3DConditionModel, AutoencoderKL, CLIPTextModel, CLIPTokenizer, DDIMScheduler) but a few
hundred thousand parameters, so that `DiffusersVideoPrior.from_folder` is exercised through
its real loading code. Nothing is downloaded.

`MODELSCOPE_17B_UNET_CONFIG` is the UNet configuration of text-to-video-ms-1.7b; built on the
meta device it reproduces the published unet/diffusion_pytorch_model.safetensors key for key
(checked against ../shared/checkpoint-manifests/ms17b_unet_diffusers.txt by the tests).
"""
from __future__ import annotations

import json
import math
import os
from typing import Optional

import torch

#: unet/config.json of ali-vilab/text-to-video-ms-1.7b (ModelScope T2V, diffusers format).
#: Note `attention_head_dim` is really the number of heads in diffusers' UNet3D (a historic
#: naming bug, see UNet3DConditionModel.__init__).
MODELSCOPE_17B_UNET_CONFIG = {
    "_class_name": "UNet3DConditionModel",
    "act_fn": "silu",
    "attention_head_dim": 64,
    "block_out_channels": [320, 640, 1280, 1280],
    "cross_attention_dim": 1024,
    "down_block_types": ["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"],
    "downsample_padding": 1,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 32,
    "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"],
}

#: scheduler/scheduler_config.json of text-to-video-ms-1.7b (the SD 1.x / 2.x DDPM schedule).
MODELSCOPE_SCHEDULER_CONFIG = {
    "_class_name": "DDIMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "steps_offset": 1,
}

# A few BPE merges so the tiny tokenizer is a real BPE (words -> subwords), not just bytes.
_TINY_MERGES = [
    ("t", "h"), ("th", "e</w>"), ("a", "n"), ("an", "d</w>"), ("i", "n"), ("in", "g</w>"),
    ("e", "r"), ("o", "n</w>"), ("r", "e"), ("a", "t</w>"), ("c", "a"), ("ca", "t</w>"),
    ("o", "r"), ("e", "s</w>"), ("d", "o"), ("do", "g</w>"),
]
_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"


def _write_json(path: str, obj: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)


def write_tiny_clip_tokenizer(folder: str, model_max_length: int = 77) -> int:
    """Write a byte-level CLIP BPE tokenizer (vocab.json, merges.txt, configs); returns the vocab size.

    The vocabulary holds every byte symbol with and without the end-of-word marker, so any
    text (any language, emoji) tokenizes; merges are a handful of common English pairs.
    """
    from tokenizers.pre_tokenizers import ByteLevel

    os.makedirs(folder, exist_ok=True)
    alphabet = sorted(ByteLevel.alphabet())  # the 256 printable stand-ins of bytes (GPT-2 / CLIP mapping)
    tokens = alphabet + [c + "</w>" for c in alphabet] + [a + b for a, b in _TINY_MERGES] + [_BOS, _EOS]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    _write_json(os.path.join(folder, "vocab.json"), vocab)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in _TINY_MERGES))
    special = {"bos_token": _BOS, "eos_token": _EOS, "unk_token": _EOS, "pad_token": _EOS}
    _write_json(os.path.join(folder, "special_tokens_map.json"), special)
    _write_json(os.path.join(folder, "tokenizer_config.json"),
                {"tokenizer_class": "CLIPTokenizer", "model_max_length": model_max_length, **special})
    return len(vocab)


def build_tiny_t2v_folder(path: str, seed: int = 0, *, prediction_type: str = "epsilon",
                          unet_channels: tuple = (32, 64), vae_channels: tuple = (8, 16, 16),
                          text_hidden: int = 32, sample_size: int = 8, image_unet: bool = False) -> str:
    """Build a tiny random text-to-video model folder at `path` (created) and return `path`.

    Layout and classes are those of text-to-video-ms-1.7b. The VAE has len(vae_channels) blocks,
    i.e. a spatial factor of 2 ** (len - 1) (x4 by default: 32x32 frames -> 8x8 latents);
    `sample_size` is the UNet's native latent size. `image_unet=True` writes an image
    UNet2DConditionModel into unet/ instead (a wrong checkpoint, for error tests).
    """
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    os.makedirs(path, exist_ok=True)
    torch.manual_seed(seed)
    groups = 8

    if image_unet:
        unet = UNet2DConditionModel(
            sample_size=sample_size, in_channels=4, out_channels=4, block_out_channels=unet_channels,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            layers_per_block=1, cross_attention_dim=text_hidden, attention_head_dim=8, norm_num_groups=groups)
    else:
        unet = UNet3DConditionModel(
            sample_size=sample_size, in_channels=4, out_channels=4, block_out_channels=unet_channels,
            down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
            layers_per_block=1, cross_attention_dim=text_hidden, attention_head_dim=8, norm_num_groups=groups)
    unet.save_pretrained(os.path.join(path, "unet"), safe_serialization=True)

    n = len(vae_channels)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=vae_channels,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        layers_per_block=1, norm_num_groups=groups, sample_size=sample_size * 2 ** (n - 1), scaling_factor=0.18215)
    vae.save_pretrained(os.path.join(path, "vae"), safe_serialization=True)

    vocab_size = write_tiny_clip_tokenizer(os.path.join(path, "tokenizer"))
    text_config = CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=text_hidden, intermediate_size=2 * text_hidden, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=77, hidden_act="gelu", projection_dim=text_hidden,
        bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1)
    CLIPTextModel(text_config).save_pretrained(os.path.join(path, "text_encoder"), safe_serialization=True)

    scheduler = DDIMScheduler.from_config({**MODELSCOPE_SCHEDULER_CONFIG, "prediction_type": prediction_type})
    scheduler.save_pretrained(os.path.join(path, "scheduler"))

    _write_json(os.path.join(path, "model_index.json"), {
        "_class_name": "TextToVideoSDPipeline",
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel" if image_unet else "UNet3DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    })
    return path


def count_parameters(folder: str) -> Optional[dict]:
    """Parameter count per component of a diffusers folder, read from the safetensors headers."""
    from safetensors import safe_open

    counts = {}
    for comp, fname in (("unet", "diffusion_pytorch_model.safetensors"), ("vae", "diffusion_pytorch_model.safetensors"),
                        ("text_encoder", "model.safetensors")):
        file = os.path.join(folder, comp, fname)
        if not os.path.isfile(file):
            return None
        with safe_open(file, "pt") as f:
            counts[comp] = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    return counts
