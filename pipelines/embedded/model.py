"""Architecture and folder layout of the embedded text-to-video prior.

The embedded prior is built from the same library classes as ModelScope text-to-video-ms-1.7b, so
`DiffusersVideoPrior.from_folder` loads it with the code that loads the real models:

    model_index.json   "vae": [null, null] -> pixel-space model; "videopriors_clip": clip shape;
                       "videopriors_pixel": {ink_gain, gray, patch}: how frames become latents
    unet/              UNet3DConditionModel (diffusers), 4 -> 4 channels at 16 x 16 on 8-frame clips
    text_encoder/      CLIPTextModel (transformers), 2 layers, 64-d, 16 positions; its last hidden
                       states feed the cross-attention and its pooled output the UNet's
                       `timestep_cond` (time_cond_proj_dim 64), a global FiLM-like conditioning in
                       every block: cross-attention alone at low resolution was not learned within
                       the CPU budget (a first 1000-step run ignored the caption)
    tokenizer/         word-level `tokenizers` model (tokenizer.json), PreTrainedTokenizerFast
    scheduler/         DDIMScheduler config: 1000 steps, cosine ("squaredcos_cap_v2"), epsilon

Pixel space, not a learned VAE: the clips are 32 x 32 black line drawings on white, 1-2 px strokes.
A learned autoencoder at that size would have to reproduce sub-pixel strokes (SD-style VAEs blur
thin lines), would cost a second training stage in the 60-minute CPU budget, and would sit on the
SDS gradient path. Instead frames are taken in grey and each 2 x 2 block of pixels becomes 4
channels (`pixels_to_latents`: pixel unshuffle, exact and invertible), so the UNet works at
16 x 16 (4x cheaper per clip than at 32 x 32: 4x more clips seen in the same training time) and the
SDS gradient reaches the rasterizer directly. A 256 px sketch with 2-3 px strokes is 0.25-0.4 px
wide at 32 px, so frames are area-downsampled and darkened as value ** INK_GAIN, in training and
when a prior encodes frames. Attention is only at 4 x 4 (last down block, middle, first up block).
"""
from __future__ import annotations

import json
import os
from typing import Optional

import torch

from ..priors.diffusers_prior import pixel_channels
from .data import Vocab, build_vocab

FRAMES, SIZE, MAX_TOKENS = 8, 32, 16

# Frames are seen in grey with each 2 x 2 block of pixels as 4 channels (model_index "videopriors_pixel":
# gray, patch 2): lossless for black-on-white drawings, and the UNet runs at 16 x 16, 4x cheaper per clip.
PIXEL = dict(ink_gain=3.0, gray=True, patch=2)
LATENT_CHANNELS, LATENT_SIZE = pixel_channels(PIXEL["gray"], PIXEL["patch"]), SIZE // PIXEL["patch"]

UNET_CONFIG = dict(
    sample_size=LATENT_SIZE, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS, block_out_channels=(32, 64, 96),
    down_block_types=("DownBlock3D", "DownBlock3D", "CrossAttnDownBlock3D"),
    up_block_types=("CrossAttnUpBlock3D", "UpBlock3D", "UpBlock3D"),
    layers_per_block=1, cross_attention_dim=64, attention_head_dim=4, norm_num_groups=16,
    time_cond_proj_dim=64,  # the pooled caption, added to the timestep embedding (see module docstring)
)
INK_GAIN = PIXEL["ink_gain"]  # frames are seen as value ** INK_GAIN (DiffusersVideoPrior: ink_gain), in training and in SDS
STROKE_PX = (0.19, 0.75)  # training stroke widths at 32 px = 1.5 .. 6 px on a 256 canvas

TEXT_CONFIG = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                   max_position_embeddings=MAX_TOKENS, hidden_act="gelu", projection_dim=64)

SCHEDULER_CONFIG = {
    "_class_name": "DDIMScheduler",
    "beta_schedule": "squaredcos_cap_v2",
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "clip_sample": True,
    "clip_sample_range": 1.0,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": True,
    "steps_offset": 0,
}

WEIGHT_FILES = {"unet": "unet/diffusion_pytorch_model.safetensors", "text_encoder": "text_encoder/model.safetensors"}


def write_word_tokenizer(folder: str, vocab: Vocab, max_length: int = MAX_TOKENS) -> None:
    """A `tokenizers` WordLevel tokenizer equal to `data.tokenize` + `vocab` (lowercase, punctuation
    deleted, whitespace split, <bos> ... <eos>), saved for PreTrainedTokenizerFast."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab.itos)}, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Replace(Regex(r"[^\w\s]|_"), "")])
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", vocab.BOS), ("<eos>", vocab.EOS)])
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"))
    special = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<bos>", "eos_token": "<eos>"}
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_length, **special}, f, indent=2)
    with open(os.path.join(folder, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump(special, f, indent=2)


def build_models(vocab: Optional[Vocab] = None, seed: int = 0):
    """Fresh (UNet3DConditionModel, CLIPTextModel) with the embedded prior's configuration."""
    from diffusers import UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    vocab = vocab or build_vocab()
    torch.manual_seed(seed)
    unet = UNet3DConditionModel(**UNET_CONFIG)
    text_config = CLIPTextConfig(vocab_size=len(vocab), bos_token_id=vocab.BOS, eos_token_id=vocab.EOS,
                                 pad_token_id=vocab.PAD, **TEXT_CONFIG)
    return unet, CLIPTextModel(text_config)


def save_folder(path: str, unet, text_encoder, vocab: Vocab, extra_json: Optional[dict] = None) -> str:
    """Write the diffusers-layout folder (weights as safetensors) + `extra_json` {file name: object}."""
    from diffusers import DDIMScheduler

    os.makedirs(path, exist_ok=True)
    unet.save_pretrained(os.path.join(path, "unet"), safe_serialization=True)
    text_encoder.save_pretrained(os.path.join(path, "text_encoder"), safe_serialization=True)
    write_word_tokenizer(os.path.join(path, "tokenizer"), vocab)
    DDIMScheduler.from_config(SCHEDULER_CONFIG).save_pretrained(os.path.join(path, "scheduler"))
    index = {
        "_class_name": "TextToVideoSDPipeline",
        "_videopriors": "embedded pixel-space prior of moving line drawings (pipelines/embedded)",
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
        "unet": ["diffusers", "UNet3DConditionModel"],
        "vae": [None, None],
        "videopriors_clip": {"num_frames": FRAMES, "height": SIZE, "width": SIZE},
        "videopriors_pixel": dict(PIXEL),
        "videopriors_timestep_cond": "pooled_text",
    }
    for name, obj in {"model_index.json": index, **(extra_json or {})}.items():
        with open(os.path.join(path, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2)
    return path
