"""Diffusers-format text-to-video priors: ModelScope text-to-video-ms-1.7b, ZeroScope v2.

A folder such as `ComfyUI/models/video_priors/text-to-video-ms-1.7b/` holds the diffusers layout

    model_index.json
    unet/          config.json + diffusion_pytorch_model.safetensors   (UNet3DConditionModel)
    vae/           config.json + diffusion_pytorch_model.safetensors   (AutoencoderKL)
    text_encoder/  config.json + model.safetensors                     (CLIPTextModel)
    tokenizer/     vocab.json + merges.txt (+ tokenizer_config.json)   (CLIPTokenizer)
    scheduler/     scheduler_config.json                               (DDPM schedule)

Each component is loaded directly with its class (no `TextToVideoSDPipeline`, deprecated) and
from local files only: nothing is ever downloaded.

Two extensions serve the pack's embedded prior (pipelines/embedded) with the same code:
- pixel space: when model_index.json declares `"vae": [null, null]` there is no vae/ folder and
  latents are the frames themselves, frames * 2 - 1 as [1, 3, K, H, W] (the UNet takes RGB), or,
  with "videopriors_pixel": {"gray": true, "patch": p}, their grey level with each p x p block
  of pixels moved into channels ([1, p*p, K, H/p, W/p], `pixels_to_latents`): an exact,
  invertible "autoencoder" that costs nothing and lets the UNet work at 1/p of the resolution;
- a non-CLIP tokenizer: when tokenizer/tokenizer_config.json names another `tokenizer_class` and
  tokenizer/tokenizer.json exists, it is loaded as a PreTrainedTokenizerFast (e.g. word level);
  words it does not know are dropped with one warning per prompt (`tokenize_prompts`).
model_index.json may also give the training clip shape, "videopriors_clip": {num_frames, height, width},
and for pixel-space models "videopriors_pixel": {"ink_gain": g}: frames larger than the clip are
area-downsampled to it (a 256 sketch seen at 32) and their ink (1 - value) darkened as
1 - (1 - ink)**g (value**g), so strokes that are thin at the model's size stay visible (the training data
went through the same map, `ink_gain`). "videopriors_timestep_cond": "pooled_text" says the UNet
(`time_cond_proj_dim`) also takes the text encoder's pooled output as `timestep_cond`, a global
conditioning added to the timestep embedding of every block besides the cross-attention.

Weights and pickles. `.safetensors` files are preferred (then the `fp16` variant) and are
validated (header and size) before loading. A `.bin` file is only used when no safetensors
file exists; diffusers 0.42 loads it with `torch.load(weights_only=True)` unconditionally
(`diffusers.models.model_loading_utils.load_state_dict`) and transformers 5 with
`weights_only=True` by default, which we also pass explicitly, so no arbitrary pickle code
runs.

Precision. `dtype` ("fp32", "fp16", "bf16" or a torch.dtype) applies to the UNet and the text
encoder. The VAE stays fp32 unless `vae_dtype` is given: it is small (84 M parameters for
ModelScope), it lies on the differentiable path of score distillation (the SDS gradient flows
back through the encoder to the rasterizer, where fp16 under/overflows), and SD-family VAEs
are known to produce NaN/inf in fp16.

Latents follow the LiveSketch reference (yael-vinker/live_sketch, losses.py,
SDSLossBase.prepare_latents): frames in [-1, 1] -> `vae.encode(x).latent_dist.sample()` ->
x scaling_factor -> [1, C, K, h, w]. We sample by default too (`latent_sampling="sample"`);
the noise is drawn once for all frames before chunking, so chunked and all-at-once encoding
agree given a generator, and `latent_sampling="mean"` gives the deterministic posterior mean.
"""
from __future__ import annotations

import gc
import json
import logging
import os
import pickle
import weakref
from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.checkpoint import checkpoint

from .base import PromptEmbeds, VideoPrior

log = logging.getLogger("VideoPriors")

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
          "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}

WHERE_TO_GET = ("download the diffusers folder of ali-vilab/text-to-video-ms-1.7b (or cerspense/zeroscope_v2_576w) "
                "from Hugging Face and put it in ComfyUI/models/video_priors/<name>/")

# Clip shape. Frames: 24, as the LiveSketch reference runs ModelScope (animate_svg.py: 24 frames,
# 256x256). Size: the UNet's native size (unet sample_size x VAE factor: 32 x 8 = 256 for
# ModelScope), except for models fine-tuned at another size than their config says, recognised
# by folder name: (substring, frames, height, width).
KNOWN_CLIP_SHAPES = (
    ("zeroscope_v2_xl", 24, 576, 1024),
    ("zeroscope", 24, 320, 576),
)
DEFAULT_NUM_FRAMES = 24

# Weight files tried in order per component: (file name, use_safetensors, variant).
_DIFFUSERS_WEIGHTS = (
    ("diffusion_pytorch_model.safetensors", True, None),
    ("diffusion_pytorch_model.safetensors.index.json", True, None),
    ("diffusion_pytorch_model.fp16.safetensors", True, "fp16"),
    ("diffusion_pytorch_model.bin", False, None),
    ("diffusion_pytorch_model.fp16.bin", False, "fp16"),
)
_TRANSFORMERS_WEIGHTS = (
    ("model.safetensors", True, None),
    ("model.safetensors.index.json", True, None),
    ("model.fp16.safetensors", True, "fp16"),
    ("pytorch_model.bin", False, None),
    ("pytorch_model.bin.index.json", False, None),
    ("pytorch_model.fp16.bin", False, "fp16"),
)


class PriorLoadError(Exception):
    """A prior folder cannot be loaded (wrong, incomplete or corrupted checkpoint)."""


class PriorFilesMissingError(PriorLoadError, FileNotFoundError):
    """The folder, a component subfolder or a weights file does not exist."""


class TextEncoderFreedError(RuntimeError):
    """encode_prompt needs the text encoder after free_text_encoder() and reloading is off."""


def resolve_dtype(dtype: Union[str, torch.dtype, None]) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of fp32, fp16, bf16 or a torch.dtype") from None


@dataclass
class _WeightsFile:
    path: str
    use_safetensors: bool
    variant: Optional[str]


def _missing(what: str, folder: str, expected: str) -> PriorFilesMissingError:
    return PriorFilesMissingError(f"{what}: looked in {folder}, expected {expected}. To get it, {WHERE_TO_GET}.")


def _read_json(path: str, component: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise _missing(f"missing {component} config", os.path.dirname(path), os.path.basename(path)) from None
    except (OSError, ValueError) as e:
        raise PriorLoadError(f"{component} config {path} is not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise PriorLoadError(f"{component} config {path} is not a JSON object")
    return data


_COMPONENT_FILES = {
    "unet": ("config.json", "diffusion_pytorch_model.safetensors"),
    "vae": ("config.json", "diffusion_pytorch_model.safetensors"),
    "text_encoder": ("config.json", "model.safetensors"),
    "tokenizer": ("vocab.json", "merges.txt", "tokenizer_config.json"),
    "scheduler": ("scheduler_config.json",),
}


def _component_dir(root: str, component: str) -> str:
    d = os.path.join(root, component)
    if not os.path.isdir(d):
        files = ", ".join(f"{component}/{f}" for f in _COMPONENT_FILES[component])
        raise _missing(f"missing the '{component}' component (subfolder {component}/)", root, files)
    return d


def _find_weights(comp_dir: str, component: str, candidates) -> _WeightsFile:
    for name, use_safetensors, variant in candidates:
        path = os.path.join(comp_dir, name)
        if os.path.isfile(path):
            if use_safetensors and name.endswith(".safetensors"):
                _check_safetensors(path, component)
            return _WeightsFile(path, use_safetensors, variant)
    names = ", ".join(f"{component}/{c[0]}" for c in candidates[:1] + candidates[2:3] + candidates[3:4])
    raise _missing(f"missing the '{component}' weights", comp_dir, f"{names} (one of them)")


def _check_safetensors(path: str, component: str) -> None:
    """Open the header: safetensors rejects a truncated or corrupted file here, before any load."""
    from safetensors import safe_open

    try:
        with safe_open(path, "pt") as f:
            if not list(f.keys()):
                raise PriorLoadError(f"{component} weights {path} hold no tensors")
    except PriorLoadError:
        raise
    except Exception as e:  # SafetensorError, OSError
        raise PriorLoadError(f"{component} weights {path} are corrupted or truncated ({e}); "
                             f"download the file again. To get it, {WHERE_TO_GET}.") from e


def _check_loading_info(component: str, path: str, info: Optional[dict]) -> None:
    if not info:
        return
    problems = []
    for key in ("missing_keys", "mismatched_keys"):
        items = list(info.get(key) or [])
        if items:
            problems.append(f"{len(items)} {key.replace('_', ' ')} (e.g. {', '.join(str(i) for i in items[:3])})")
    if problems:
        raise PriorLoadError(f"{component} weights in {path} do not match its config: {'; '.join(problems)}. "
                             "The file is from a different model.")


def _check_finite(module: torch.nn.Module, component: str, path: str) -> None:
    """NaN or infinite weights make a prior sample black frames while reporting success: refuse them at load."""
    for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        if tensor.is_floating_point() and tensor.device.type != "meta" and not bool(torch.isfinite(tensor).all()):
            raise PriorLoadError(f"{component} weights {path} hold NaN or infinite values (tensor {name}); "
                                 f"the file is corrupted: download it again. To get it, {WHERE_TO_GET}.")


# Bounds on the sizes a prior's config files may declare (all far above real text-to-video models:
# ModelScope declares 1000 timesteps, 77 positions, 4 levels of at most 1280 channels). A config is
# read from the user's disk and is checked before any module is built, since modules are allocated
# from the config before the weights are read.
CONFIG_LIMITS = {
    "clip": {"num_frames": 512, "height": 4096, "width": 4096},  # the sampling node's own maxima
    "scheduler": {"num_train_timesteps": 100_000},
    "text_encoder": {"max_position_embeddings": 4096, "num_hidden_layers": 256, "num_attention_heads": 256},
    "unet": {"sample_size": 1024, "layers_per_block": 64, "attention_head_dim": 1024, "num_attention_heads": 1024},
    "vae": {"sample_size": 8192, "layers_per_block": 64},
}
# Buffers a module allocates from its config but that are not in the weight file (position ids...).
MAX_BUFFER_ELEMENTS = 1 << 26


def _check_config_sizes(cfg: dict, component: str, where: str) -> None:
    """Every size in `cfg` that CONFIG_LIMITS bounds: a positive integer within its bound."""
    for key, bound in CONFIG_LIMITS.get(component, {}).items():
        values = cfg.get(key)
        if values is None:
            continue
        for v in (values if isinstance(values, (list, tuple)) else [values]):
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= bound:
                raise PriorLoadError(f"{where} declares {key} = {values!r}: expected whole numbers from 1 to {bound}")
    for key in ("block_out_channels", "down_block_types", "up_block_types"):
        if isinstance(cfg.get(key), (list, tuple)) and len(cfg[key]) > 8:
            raise PriorLoadError(f"{where} declares {len(cfg[key])} {key}: expected at most 8")


def _weights_elements(weights: "_WeightsFile") -> int:
    """Tensor elements stored in a weights file: exact from a safetensors header, bounded from a .bin size."""
    from safetensors import safe_open

    def stored(path: str) -> int:
        if not path.endswith(".safetensors"):
            return os.path.getsize(path) // 2  # a .bin pickle: at least 2 bytes per element
        total = 0
        with safe_open(path, "pt") as f:
            for key in f.keys():
                n = 1
                for d in f.get_slice(key).get_shape():
                    n *= int(d)
                total += n
        return total

    if weights.path.endswith(".index.json"):  # sharded: the files its weight map names, next to it
        index = _read_json(weights.path, "weights index")
        shards = sorted(set((index.get("weight_map") or {}).values()))
        folder = os.path.dirname(weights.path)
        paths = [os.path.join(folder, os.path.basename(str(name))) for name in shards]
        return sum(stored(p) for p in paths if os.path.isfile(p))
    return stored(weights.path)


def _check_declared_size(build, component: str, config_path: str, weights: "_WeightsFile") -> None:
    """Build the module on the meta device (no memory) and compare what its config declares with the file.

    A config that declares far more parameters than its weight file holds would make the loader allocate
    them before noticing the mismatch (a 40 GB request for a config edited to 50,000 channels)."""
    try:
        with torch.device("meta"):
            module = build()
    except Exception as e:
        raise PriorLoadError(f"{config_path} does not describe a buildable {component}: {_describe_load_error(e)}") from e
    params = sum(p.numel() for p in module.parameters())
    buffers = sum(b.numel() for b in module.buffers())
    stored = _weights_elements(weights)
    if params > stored * 1.01 + 1024:
        raise PriorLoadError(f"{config_path} declares {params / 1e6:.1f} M parameters but {weights.path} holds "
                             f"{stored / 1e6:.1f} M values: the config does not belong to these weights")
    if buffers > MAX_BUFFER_ELEMENTS:
        raise PriorLoadError(f"{config_path} declares buffers of {buffers / 1e6:.0f} M elements "
                             f"(at most {MAX_BUFFER_ELEMENTS / 1e6:.0f} M)")


def _describe_load_error(e: BaseException) -> str:
    """One readable line for a library loading error, naming a refused pickle explicitly."""
    chain, cur = [], e
    while cur is not None and cur not in chain:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    if any(isinstance(c, pickle.UnpicklingError) or "Weights only load failed" in str(c) for c in chain):
        return ("the .bin pickle holds Python objects other than tensors and was refused: .bin files are only "
                "read with torch.load(weights_only=True), never with arbitrary unpickling; use the .safetensors file")
    text = "; caused by ".join(f"{type(c).__name__}: {str(c).strip()}" for c in chain[:2])
    return text if len(text) <= 800 else text[:800] + " ..."


def _module_device_dtype(module: torch.nn.Module):
    p = next(module.parameters())
    return p.device, p.dtype


def ink_gain(frames: torch.Tensor, gain: float) -> torch.Tensor:
    """Darken line drawings: ink = 1 - value becomes 1 - (1 - ink)**gain, i.e. value**gain.

    Like drawing each stroke `gain` times with its coverage as opacity: thin or faint strokes
    get darker, solid ink stays solid, white stays white; smooth and differentiable.
    """
    if gain == 1:
        return frames
    return frames.clamp(1e-6, 1).pow(gain)


def pixel_channels(gray: bool = False, patch: int = 1) -> int:
    """Latent channels of a pixel-space model: grey (1) or RGB (3) times patch x patch."""
    return (1 if gray else 3) * int(patch) ** 2


def _pixel_layout(gray: bool, patch: int) -> str:
    return f"{'grey' if gray else 'RGB'}, patch {int(patch)}"


def pixels_to_latents(frames: torch.Tensor, gain: float = 1.0, gray: bool = False, patch: int = 1) -> torch.Tensor:
    """Pixel-space "encoder": [K, 3, H, W] in 0..1 -> [1, C, K, H/patch, W/patch] in -1..1, differentiable.

    value**gain (`ink_gain`), then the grey level (mean of R, G, B) when `gray` (C = patch**2)
    or RGB (C = 3 * patch**2), each patch x patch block moved into channels (pixel_unshuffle)."""
    x = ink_gain(frames, gain)
    if gray:
        x = x.mean(1, keepdim=True)
    x = x * 2 - 1
    if patch > 1:
        x = torch.nn.functional.pixel_unshuffle(x, patch)
    return x.permute(1, 0, 2, 3).unsqueeze(0)


def latents_to_pixels(latents: torch.Tensor, gray: bool = False, patch: int = 1) -> torch.Tensor:
    """Inverse of `pixels_to_latents` but for the ink gain: [C, K, h, w] -> [K, 3, h*patch, w*patch] in 0..1."""
    x = latents.permute(1, 0, 2, 3).float()
    if patch > 1:
        x = torch.nn.functional.pixel_shuffle(x, patch)
    if gray:
        x = x.expand(-1, 3, -1, -1)
    return ((x + 1) / 2).clamp(0, 1)


def load_tokenizer(tok_dir: str):
    """CLIPTokenizer (vocab.json + merges.txt), or any fast tokenizer (tokenizer.json) when
    tokenizer_config.json names another class (e.g. the word-level tokenizer of the embedded prior)."""
    from transformers import CLIPTokenizer, PreTrainedTokenizerFast

    cfg_path = os.path.join(tok_dir, "tokenizer_config.json")
    cfg = _read_json(cfg_path, "tokenizer") if os.path.isfile(cfg_path) else {}
    if cfg.get("tokenizer_class", "CLIPTokenizer") != "CLIPTokenizer" and os.path.isfile(
            os.path.join(tok_dir, "tokenizer.json")):
        return PreTrainedTokenizerFast.from_pretrained(tok_dir, local_files_only=True)
    return CLIPTokenizer.from_pretrained(tok_dir, local_files_only=True)


def tokenize_prompts(tokenizer, texts, max_length: int) -> torch.Tensor:
    """Token ids [len(texts), max_length] (padded, truncated) as the text encoder expects them.

    A word-level tokenizer (one with an unknown token, unlike byte-level CLIP BPE) drops words
    outside its vocabulary instead of feeding <unk> to the encoder, and logs one warning per
    text naming them: the model never saw <unk>, and the rest of the prompt keeps its meaning.
    """
    from transformers import CLIPTokenizer

    unk_id = getattr(tokenizer, "unk_token_id", None)
    if isinstance(tokenizer, CLIPTokenizer) or unk_id is None:
        return tokenizer(list(texts), padding="max_length", max_length=max_length, truncation=True,
                         return_tensors="pt").input_ids
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rows = []
    for text in texts:
        enc = tokenizer(text, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        unknown = [text[a:b] for i, (a, b) in zip(ids, offsets) if i == unk_id]
        if unknown:
            log.warning("prompt %r: %d word(s) outside the vocabulary of the model's tokenizer ignored: %s",
                        text, len(unknown), ", ".join(repr(w) for w in unknown))
        ids = [i for i in ids if i != unk_id][:max_length]
        if len(ids) == max_length and getattr(tokenizer, "eos_token_id", None) is not None:
            ids[-1] = tokenizer.eos_token_id  # keep the end token when truncating
        rows.append(ids + [pad_id] * (max_length - len(ids)))
    return torch.tensor(rows, dtype=torch.long)


class DiffusersVideoPrior(VideoPrior):
    """ModelScope / ZeroScope (UNet3DConditionModel + SD VAE + CLIP text) as a `VideoPrior`.

    Attributes the caller may change: `num_frames`, `height`, `width` (clip shape),
    `encode_chunk` / `decode_chunk` (frames per VAE call), `latent_sampling` ("sample" as in
    the LiveSketch reference, or "mean"), `reload_text_encoder` (what encode_prompt does with
    a new prompt after free_text_encoder(): reload from disk (default) or raise).
    The torch modules `unet`, `vae`, `text_encoder` are public so they can be wrapped
    (e.g. by ComfyUI's ModelPatcher); they are frozen (requires_grad False, eval mode).
    """

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler, *, folder: Optional[str] = None,
                 name: str = "diffusers", dtype: torch.dtype = torch.float32, vae_dtype: torch.dtype = torch.float32,
                 device: Union[str, torch.device] = "cpu", num_frames: Optional[int] = None,
                 height: Optional[int] = None, width: Optional[int] = None, encode_chunk: int = 4,
                 decode_chunk: int = 4, latent_sampling: str = "sample", reload_text_encoder: bool = True,
                 ink_gain: float = 1.0, timestep_cond: Optional[str] = None, pixel_gray: bool = False,
                 pixel_patch: int = 1):
        self.unet, self.vae, self.text_encoder = unet, vae, text_encoder
        self.tokenizer, self.scheduler = tokenizer, scheduler
        for m in (unet, vae, text_encoder):
            if m is not None:
                m.requires_grad_(False).eval()
        self.folder, self.name = folder, name
        self.prediction_type = scheduler.config.prediction_type
        if self.prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise PriorLoadError(f"scheduler prediction_type {self.prediction_type!r} is not supported")
        self.num_train_timesteps = int(scheduler.config.num_train_timesteps)
        self._alphas_cumprod = scheduler.alphas_cumprod.detach().to(torch.float32).cpu().clone()
        self.pixel_gray, self.pixel_patch = bool(pixel_gray), int(pixel_patch)
        if vae is not None and (self.pixel_gray or self.pixel_patch != 1):
            raise ValueError("pixel_gray / pixel_patch apply to pixel-space models only")
        if vae is None:  # pixel-space model: latents = frames * 2 - 1 (see encode_frames)
            want = pixel_channels(self.pixel_gray, self.pixel_patch)
            if int(unet.config.in_channels) != want or int(unet.config.out_channels) != want:
                raise PriorLoadError(f"pixel-space UNet takes {unet.config.in_channels} channels, expected {want} "
                                     f"({_pixel_layout(self.pixel_gray, self.pixel_patch)})")
            self.vae_scale_factor, self.latent_channels = self.pixel_patch, want
            self.scaling_factor, self.shift_factor = 1.0, 0.0
        else:
            self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
            self.latent_channels = int(vae.config.latent_channels)
            self.scaling_factor = float(vae.config.scaling_factor)
            self.shift_factor = float(getattr(vae.config, "shift_factor", None) or 0.0)

        frames, h, w = DEFAULT_NUM_FRAMES, None, None
        for key, kf, kh, kw in KNOWN_CLIP_SHAPES:
            if key in name.lower():
                frames, h, w = kf, kh, kw
                break
        native = int(unet.config.sample_size or 32) * self.vae_scale_factor
        self.num_frames = int(num_frames or frames)
        self.height = int(height or h or native)
        self.width = int(width or w or native)

        self.encode_chunk, self.decode_chunk = int(encode_chunk), int(decode_chunk)
        if latent_sampling not in ("sample", "mean"):
            raise ValueError("latent_sampling must be 'sample' or 'mean'")
        self.latent_sampling = latent_sampling
        self.reload_text_encoder = reload_text_encoder
        if vae is not None and ink_gain != 1:
            raise ValueError("ink_gain applies to pixel-space models only")
        self.ink_gain = float(ink_gain)
        if timestep_cond not in (None, "pooled_text"):
            raise PriorLoadError(f"unknown timestep_cond {timestep_cond!r} (known: 'pooled_text')")
        if timestep_cond and getattr(unet.config, "time_cond_proj_dim", None) != text_encoder.config.hidden_size:
            raise PriorLoadError("timestep_cond 'pooled_text' needs a UNet with time_cond_proj_dim equal to the text "
                                 f"encoder's hidden size ({text_encoder.config.hidden_size})")
        self.timestep_cond = timestep_cond
        self._embeds_cache: dict = {}
        self._te_source = None  # (folder, weights) to reload the text encoder from; set by from_folder
        # A tokenizer_config.json without model_max_length reports 1e30: cap by the encoder's positions.
        self.max_text_length = min(int(tokenizer.model_max_length),
                                   int(getattr(text_encoder.config, "max_position_embeddings", 77)))
        self.dtype, self.vae_dtype = dtype, vae_dtype
        self.device = torch.device(device)
        self.to(self.device)

    # --- loading -----------------------------------------------------------------------------
    @classmethod
    def from_folder(cls, path: str, dtype: Union[str, torch.dtype] = "fp32", device: Union[str, torch.device] = "cpu",
                    *, vae_dtype: Union[str, torch.dtype, None] = None, **kwargs) -> "DiffusersVideoPrior":
        """Load a diffusers text-to-video folder from local files (never downloads).

        Raises PriorFilesMissingError (a PriorLoadError and FileNotFoundError) when the folder,
        a component or a weights file is missing, PriorLoadError when a file is corrupted or
        belongs to another kind of model. kwargs go to the constructor (num_frames, ...).
        """
        path = os.path.abspath(os.path.expanduser(str(path)))
        if not os.path.isdir(path):
            raise _missing("text-to-video prior folder not found", path,
                           "a diffusers folder with unet/, vae/, text_encoder/, tokenizer/, scheduler/")
        dtype = resolve_dtype(dtype)
        vae_dtype = resolve_dtype(vae_dtype) if vae_dtype is not None else torch.float32

        # Check every component's files before loading anything (fail fast, with one clear error).
        # A folder whose model_index.json declares "vae": [null, null] is a pixel-space model (no vae/).
        index_path = os.path.join(path, "model_index.json")
        model_index = _read_json(index_path, "model_index") if os.path.isfile(index_path) else {}
        pixel_space = "vae" in model_index and not any(model_index.get("vae") or [])
        clip = model_index.get("videopriors_clip") or {}
        if not isinstance(clip, dict):
            raise PriorLoadError(f"{index_path}: videopriors_clip must be an object {{num_frames, height, width}}")
        _check_config_sizes(clip, "clip", f"{index_path} (videopriors_clip)")
        for key, value in clip.items():  # clip shape the model was trained on
            if key in ("num_frames", "height", "width"):
                kwargs.setdefault(key, int(value))
        pixel_opts = (model_index.get("videopriors_pixel") or {}) if pixel_space else {}
        if "ink_gain" in pixel_opts:
            kwargs.setdefault("ink_gain", float(pixel_opts["ink_gain"]))
        if "gray" in pixel_opts:
            kwargs.setdefault("pixel_gray", bool(pixel_opts["gray"]))
        if "patch" in pixel_opts:
            kwargs.setdefault("pixel_patch", int(pixel_opts["patch"]))
        if model_index.get("videopriors_timestep_cond"):
            kwargs.setdefault("timestep_cond", model_index["videopriors_timestep_cond"])
        unet_dir = _component_dir(path, "unet")
        vae_dir = None if pixel_space else _component_dir(path, "vae")
        te_dir, tok_dir, sched_dir = (_component_dir(path, c) for c in ("text_encoder", "tokenizer", "scheduler"))
        unet_cfg = _read_json(os.path.join(unet_dir, "config.json"), "unet")
        vae_cfg = None if pixel_space else _read_json(os.path.join(vae_dir, "config.json"), "vae")
        te_cfg = _read_json(os.path.join(te_dir, "config.json"), "text_encoder")
        sched_cfg = _read_json(os.path.join(sched_dir, "scheduler_config.json"), "scheduler")
        for component, cfg, name in (("unet", unet_cfg, "unet/config.json"), ("vae", vae_cfg, "vae/config.json"),
                                     ("text_encoder", te_cfg, "text_encoder/config.json"),
                                     ("scheduler", sched_cfg, "scheduler/scheduler_config.json")):
            if cfg is not None:
                _check_config_sizes(cfg, component, os.path.join(path, name))
        cls._check_configs(path, unet_cfg, vae_cfg, te_cfg, pixel_opts)
        if not (os.path.isfile(os.path.join(tok_dir, "tokenizer.json")) or
                all(os.path.isfile(os.path.join(tok_dir, f)) for f in ("vocab.json", "merges.txt"))):
            raise _missing("missing the 'tokenizer' files", tok_dir, "tokenizer/vocab.json and tokenizer/merges.txt")
        unet_w = _find_weights(unet_dir, "unet", _DIFFUSERS_WEIGHTS)
        vae_w = None if pixel_space else _find_weights(vae_dir, "vae", _DIFFUSERS_WEIGHTS)
        te_w = _find_weights(te_dir, "text_encoder", _TRANSFORMERS_WEIGHTS)

        from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        _check_declared_size(lambda: UNet3DConditionModel.from_config(unet_cfg), "unet",
                             os.path.join(unet_dir, "config.json"), unet_w)
        if vae_cfg is not None:
            _check_declared_size(lambda: AutoencoderKL.from_config(vae_cfg), "vae", os.path.join(vae_dir, "config.json"),
                                 vae_w)
        _check_declared_size(lambda: CLIPTextModel(CLIPTextConfig.from_pretrained(te_dir, local_files_only=True)),
                             "text_encoder", os.path.join(te_dir, "config.json"), te_w)

        unet = cls._load_diffusers(UNet3DConditionModel, "unet", unet_dir, unet_w, dtype)
        vae = None if pixel_space else cls._load_diffusers(AutoencoderKL, "vae", vae_dir, vae_w, vae_dtype)
        text_encoder = cls._load_text_encoder(te_dir, te_w, dtype)
        try:
            tokenizer = load_tokenizer(tok_dir)
            # DDIMScheduler only for its schedule (betas -> alphas_cumprod) and prediction_type; any
            # scheduler class named in the config (DPMSolver..., DDPM...) shares those fields.
            scheduler = DDIMScheduler.from_pretrained(path, subfolder="scheduler", local_files_only=True)
        except Exception as e:
            raise PriorLoadError(f"could not load the tokenizer/scheduler of {path}: {_describe_load_error(e)}") from e

        prior = cls(unet, vae, text_encoder, tokenizer, scheduler, folder=path, name=os.path.basename(path),
                    dtype=dtype, vae_dtype=vae_dtype, device=device, **kwargs)
        prior._te_source = (te_dir, te_w)
        limits = CONFIG_LIMITS["clip"]
        if prior.num_frames > limits["num_frames"] or max(prior.height, prior.width) > limits["height"]:
            raise PriorLoadError(f"{path}: its clip of {prior.num_frames} frames of {prior.width}x{prior.height} "
                                 f"(unet/config.json sample_size x the VAE factor, or model_index.json "
                                 f"videopriors_clip) is above {limits['num_frames']} frames of "
                                 f"{limits['width']}x{limits['height']}")
        return prior

    @staticmethod
    def _check_configs(path: str, unet_cfg: dict, vae_cfg: dict, te_cfg: dict, pixel_opts: Optional[dict] = None) -> None:
        unet_cls = unet_cfg.get("_class_name")
        if unet_cls != "UNet3DConditionModel":
            raise PriorLoadError(
                f"{os.path.join(path, 'unet', 'config.json')} describes a {unet_cls or 'unknown model'}: not a "
                "text-to-video UNet (expected UNet3DConditionModel, as in ModelScope text-to-video-ms-1.7b or "
                f"ZeroScope). An image model (Stable Diffusion) folder cannot be used as a video prior. To get one, "
                f"{WHERE_TO_GET}.")
        if vae_cfg is None:  # pixel space: the UNet sees RGB (or grey) frames, patch x patch blocks as channels
            gray, patch = bool((pixel_opts or {}).get("gray")), int((pixel_opts or {}).get("patch", 1))
            want = pixel_channels(gray, patch)
            if unet_cfg.get("in_channels") != want or unet_cfg.get("out_channels") != want:
                raise PriorLoadError(f"{path} has no VAE (pixel-space model) but its UNet takes "
                                     f"{unet_cfg.get('in_channels')} channels, expected {want} "
                                     f"({_pixel_layout(gray, patch)})")
        elif vae_cfg.get("_class_name") not in ("AutoencoderKL", None):
            raise PriorLoadError(f"vae/config.json describes a {vae_cfg.get('_class_name')}, expected AutoencoderKL")
        if te_cfg.get("model_type") not in ("clip_text_model", "clip", None):
            raise PriorLoadError(f"text_encoder/config.json is a {te_cfg.get('model_type')} model, expected a CLIP "
                                 "text model (CLIPTextModel)")
        te_hidden = te_cfg.get("hidden_size", (te_cfg.get("text_config") or {}).get("hidden_size"))
        if te_hidden is not None and unet_cfg.get("cross_attention_dim") not in (None, te_hidden):
            raise PriorLoadError(f"components of {path} do not belong together: the UNet attends to "
                                 f"{unet_cfg.get('cross_attention_dim')}-d text features, the text encoder gives {te_hidden}")
        if vae_cfg is not None and vae_cfg.get("latent_channels", 4) != unet_cfg.get("in_channels", 4):
            raise PriorLoadError(f"components of {path} do not belong together: the VAE has "
                                 f"{vae_cfg.get('latent_channels')} latent channels, the UNet takes {unet_cfg.get('in_channels')}")

    @staticmethod
    def _load_diffusers(model_cls, component: str, comp_dir: str, weights: _WeightsFile, dtype: torch.dtype):
        try:
            # .bin files: diffusers always uses torch.load(weights_only=True) (see module docstring).
            model, info = model_cls.from_pretrained(
                comp_dir, torch_dtype=dtype, use_safetensors=weights.use_safetensors, variant=weights.variant,
                local_files_only=True, output_loading_info=True)
        except Exception as e:
            raise PriorLoadError(f"could not load {component} from {weights.path}: {_describe_load_error(e)}") from e
        _check_loading_info(component, weights.path, info)
        _check_finite(model, component, weights.path)
        return model

    @staticmethod
    def _load_text_encoder(te_dir: str, weights: _WeightsFile, dtype: torch.dtype):
        from transformers import CLIPTextModel

        try:
            model, info = CLIPTextModel.from_pretrained(
                te_dir, dtype=dtype, use_safetensors=weights.use_safetensors, variant=weights.variant,
                weights_only=True, local_files_only=True, output_loading_info=True)
        except Exception as e:
            raise PriorLoadError(f"could not load text_encoder from {weights.path}: {_describe_load_error(e)}") from e
        _check_loading_info("text_encoder", weights.path, info)
        _check_finite(model, "text_encoder", weights.path)
        return model

    def to(self, device=None, dtype: Optional[torch.dtype] = None) -> "DiffusersVideoPrior":
        """Move the models; `dtype` (if given) applies to the UNet and the text encoder, not the VAE."""
        if device is not None:
            self.device = torch.device(device)
        if dtype is not None:
            self.dtype = resolve_dtype(dtype)
        for module, want in ((self.unet, self.dtype), (self.vae, self.vae_dtype), (self.text_encoder, self.dtype)):
            if module is None:
                continue
            module.to(self.device)
            if _module_device_dtype(module)[1] != want:  # diffusers' .to(dtype) warns even when nothing changes
                module.to(dtype=want)
        self._embeds_cache = {k: PromptEmbeds(v.cond.to(self.device), v.uncond.to(self.device), v.prompt,
                                              v.negative_prompt, {n: e.to(self.device) for n, e in v.extra.items()})
                              for k, v in self._embeds_cache.items()}
        return self

    # --- text --------------------------------------------------------------------------------
    def encode_prompt(self, prompt: str, negative_prompt: str = "") -> PromptEmbeds:
        """CLIP last_hidden_state of prompt and negative (max_length padding), cached per pair."""
        key = (prompt, negative_prompt)
        if key in self._embeds_cache:
            return self._embeds_cache[key]
        reloaded = False
        if self.text_encoder is None:
            if not self.reload_text_encoder or self._te_source is None:
                raise TextEncoderFreedError(
                    f"the text encoder was freed (free_text_encoder()) and prompt {prompt!r} / negative "
                    f"{negative_prompt!r} was not encoded before; encode all prompts first or set reload_text_encoder")
            self.text_encoder = self._load_text_encoder(*self._te_source, self.dtype).to(self.device)
            self.text_encoder.requires_grad_(False).eval()
            reloaded = True
        try:
            ids = tokenize_prompts(self.tokenizer, [prompt, negative_prompt], self.max_text_length)
            device, _ = _module_device_dtype(self.text_encoder)
            with torch.no_grad():
                out = self.text_encoder(ids.to(device))
            hidden = out.last_hidden_state
        finally:
            if reloaded:  # the caller asked for the encoder to be gone: free it again
                self.free_text_encoder()
        extra = {}
        if self.timestep_cond == "pooled_text":
            extra = {"cond_pooled": out.pooler_output[0:1], "uncond_pooled": out.pooler_output[1:2]}
        embeds = PromptEmbeds(cond=hidden[0:1], uncond=hidden[1:2], prompt=prompt, negative_prompt=negative_prompt,
                              extra=extra)
        self._embeds_cache[key] = embeds
        return embeds

    def free_text_encoder(self) -> None:
        """Drop the text encoder (cached embeddings stay usable)."""
        self.text_encoder = None
        gc.collect()

    # --- frames <-> latents ------------------------------------------------------------------
    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple:
        f = self.vae_scale_factor
        return (1, self.latent_channels, num_frames, height // f, width // f)

    def encode_frames(self, frames: torch.Tensor, generator: Optional[torch.Generator] = None,
                      chunk: Optional[int] = None, use_checkpoint: bool = True) -> torch.Tensor:
        """[K, 3, H, W] in 0..1 -> [1, C, K, H/f, W/f] float32 latents, differentiable.

        Frames go through the VAE `chunk` (default `encode_chunk`) at a time, each chunk under
        gradient checkpointing (only the chunk's input is kept for backward; its activations are
        recomputed), so peak memory does not grow with K.
        """
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames must be [K, 3, H, W], got {tuple(frames.shape)}")
        k, _, h, w = frames.shape
        f = self.vae_scale_factor
        if h % f or w % f:
            raise ValueError(f"frame size {h}x{w} must be a multiple of {f}")
        if self.vae is None:  # pixel space
            device, _ = _module_device_dtype(self.unet)
            x = frames.to(device).float()
            if (h, w) != (self.height, self.width) and h >= self.height and w >= self.width:
                x = torch.nn.functional.interpolate(x, size=(self.height, self.width), mode="area")
            return pixels_to_latents(x, self.ink_gain, self.pixel_gray, self.pixel_patch)
        device, vdtype = _module_device_dtype(self.vae)
        x = (frames.to(device) * 2 - 1).to(vdtype)
        noise = None
        if self.latent_sampling == "sample":
            # Drawn once for all frames (CPU generator for reproducibility across devices), so the
            # result does not depend on the chunk size.
            noise = torch.randn((k, self.latent_channels, h // f, w // f), generator=generator).to(device, vdtype)
        step = max(1, int(chunk or self.encode_chunk))
        use_ckpt = use_checkpoint and torch.is_grad_enabled() and x.requires_grad
        outs = []
        for i in range(0, k, step):
            args = (x[i:i + step], None if noise is None else noise[i:i + step])
            outs.append(checkpoint(self._encode_chunk, *args, use_reentrant=False) if use_ckpt
                        else self._encode_chunk(*args))
        z = torch.cat(outs).float()
        z = (z - self.shift_factor) * self.scaling_factor
        return z.permute(1, 0, 2, 3).unsqueeze(0)

    def _encode_chunk(self, x: torch.Tensor, noise: Optional[torch.Tensor]) -> torch.Tensor:
        dist = self.vae.encode(x).latent_dist
        return dist.mean if noise is None else dist.mean + dist.std * noise

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """[1, C, K, h, w] (or [C, K, h, w]) -> [K, 3, H, W] float32 in 0..1, `decode_chunk` frames per call."""
        if latents.dim() == 5:
            if latents.shape[0] != 1:
                raise ValueError("decode_latents takes one clip ([1, C, K, h, w])")
            latents = latents[0]
        if self.vae is None:  # pixel space
            return latents_to_pixels(latents, self.pixel_gray, self.pixel_patch)
        device, vdtype = _module_device_dtype(self.vae)
        z = latents.permute(1, 0, 2, 3).to(device, torch.float32) / self.scaling_factor + self.shift_factor
        step = max(1, int(self.decode_chunk))
        frames = [self.vae.decode(z[i:i + step].to(vdtype)).sample.float() for i in range(0, z.shape[0], step)]
        return ((torch.cat(frames) + 1) / 2).clamp(0, 1)

    # --- schedule and denoiser ---------------------------------------------------------------
    def alphas_cumprod(self) -> torch.Tensor:
        return self._alphas_cumprod

    def predict_noise(self, noisy: torch.Tensor, t: int, embeds: PromptEmbeds, guidance_scale: float) -> torch.Tensor:
        """CFG epsilon e_u + g (e_c - e_u) from one batched UNet call on [uncond; cond].

        With guidance_scale == 1 only the conditional branch runs. v- and x0-prediction outputs
        are converted to epsilon (in float32) with abar_t of the schedule.
        """
        device, udtype = _module_device_dtype(self.unet)
        b = noisy.shape[0]
        x = noisy.to(device, udtype)
        cond = embeds.cond.to(device, udtype).expand(b, -1, -1)
        pooled = None
        if guidance_scale == 1:
            x_in, text = x, cond
            if self.timestep_cond:
                pooled = embeds.extra["cond_pooled"].to(device, udtype).expand(b, -1)
        else:
            x_in, text = torch.cat([x, x]), torch.cat([embeds.uncond.to(device, udtype).expand(b, -1, -1), cond])
            if self.timestep_cond:
                pooled = torch.cat([embeds.extra["uncond_pooled"].to(device, udtype).expand(b, -1),
                                    embeds.extra["cond_pooled"].to(device, udtype).expand(b, -1)])
        timesteps = torch.full((x_in.shape[0],), int(t), device=device, dtype=torch.long)
        with torch.no_grad():
            out = self.unet(x_in, timesteps, encoder_hidden_states=text, timestep_cond=pooled).sample.float()
        if guidance_scale != 1:
            out_u, out_c = out.chunk(2)
            out = out_u + guidance_scale * (out_c - out_u)
        return self.output_to_epsilon(out, noisy.to(device, torch.float32), t).to(noisy.device, noisy.dtype)

    def output_to_epsilon(self, out: torch.Tensor, x_t: torch.Tensor, t: int) -> torch.Tensor:
        """Model output in the scheduler's parameterisation -> epsilon (linear, so CFG commutes)."""
        if self.prediction_type == "epsilon":
            return out
        abar = self._alphas_cumprod[int(t)].to(out.device)
        if self.prediction_type == "v_prediction":  # v = sqrt(abar) eps - sqrt(1 - abar) x0
            return abar.sqrt() * out + (1 - abar).sqrt() * x_t
        return (x_t - abar.sqrt() * out) / (1 - abar).sqrt()  # "sample": out is x0


# --- memory measurement (for the benchmark) --------------------------------------------------
class LiveTensorMemory(TorchDispatchMode):
    """Peak bytes of tensor storages created inside the context and still alive (device-agnostic).

    torch.cuda.max_memory_allocated does not exist on CPU and RSS includes allocator caching,
    so every op output's storage is counted once while a weak reference to it lives.
    Parameters and tensors created before entering are not counted.
    """

    def __init__(self):
        super().__init__()
        self.current = self.peak = 0
        self._live: dict = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                self._track(t.untyped_storage())
        return out

    def _track(self, st) -> None:
        key = st._cdata
        if key in self._live:
            return
        nbytes = st.nbytes()
        self._live[key] = (weakref.ref(st, lambda _r, k=key, n=nbytes: self._release(k, n)), nbytes)
        self.current += nbytes
        self.peak = max(self.peak, self.current)

    def _release(self, key, nbytes) -> None:
        if self._live.pop(key, None) is not None:
            self.current -= nbytes


def encode_memory_report(prior: DiffusersVideoPrior, frames: torch.Tensor, chunk: Optional[int] = None) -> dict:
    """Peak live tensor bytes of encode_frames + backward: chunked+checkpointed vs all frames at once.

    Returns {"chunked_bytes", "full_bytes", "ratio", "frames", "chunk"}. Both runs use the
    posterior mean so they do the same work.
    """
    chunk = int(chunk or prior.encode_chunk)
    k = frames.shape[0]
    sampling, prior.latent_sampling = prior.latent_sampling, "mean"
    try:
        def peak(step: int, ckpt: bool) -> int:
            x = frames.detach().clone().requires_grad_(True)
            gc.collect()
            with LiveTensorMemory() as mem:
                z = prior.encode_frames(x, chunk=step, use_checkpoint=ckpt)
                z.backward(torch.ones_like(z))
                del z
            return mem.peak

        chunked, full = peak(chunk, True), peak(k, False)
    finally:
        prior.latent_sampling = sampling
    return {"chunked_bytes": chunked, "full_bytes": full, "ratio": chunked / max(full, 1), "frames": k, "chunk": chunk}


__all__ = ["DiffusersVideoPrior", "PriorLoadError", "load_tokenizer", "pixel_channels", "pixels_to_latents", "latents_to_pixels", "tokenize_prompts", "PriorFilesMissingError", "TextEncoderFreedError",
           "encode_memory_report", "LiveTensorMemory", "resolve_dtype", "WHERE_TO_GET"]
