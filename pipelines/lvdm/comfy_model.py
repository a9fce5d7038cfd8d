"""The LVDM UNet (VideoCrafter1/2, DynamiCrafter 256/512/1024/interp, Make-Your-Video) as a native ComfyUI model.

The one module of pipelines/lvdm that imports ComfyUI. It does for the LVDM family what core does for SVD and Wan:
one `supported_models_base.BASE` config per published variant (`CONFIGS`, names from config.VARIANTS), a
`model_base.BaseModel` subclass (`LVDMModel`) that wraps our UNetModel built with ComfyUI's `operations` (weight
casting, manual cast, low-VRAM offload, LoRA patches through ModelPatcher), and `load_lvdm_checkpoint`, the
counterpart of `comfy.sd.load_checkpoint_guess_config` for the official `model.ckpt` files.

Latent layout. A LATENT is the SD 1.x KL-f8 latent of every frame with the FRAMES IN THE BATCH DIMENSION:
[B*T, 4, h, w], sample-major (the T frames of one video are consecutive rows). Core VAEEncode / VAEDecode, latent
previews and every sampler therefore work unchanged. `LVDMModel._apply_model` folds the rows into [B, C, T, h, w]
with the frame count carried by the `num_video_frames` condition (a CONDConstant, as for SVD), calls the UNet once
and unfolds the result. ComfyUI batches cond and uncond along dim 0 (B*T rows per branch, one after the other),
which keeps every video's frames consecutive, so CFG batching needs nothing special.

Conditions (`extra_conds`; keys a node puts into the CONDITIONING dicts with node_helpers.conditioning_set_values,
on the positive AND the negative, as WanImageToVideo does):
  cross_attn              text tokens from CLIPTextEncode -> `c_crossattn` (CONDCrossAttn). DynamiCrafter keeps
                          exactly the first 77 tokens (its UNet splits text/image at token 77).
  lvdm_image_tokens       DynamiCrafter only: the resampler output [1 or B, K, 1024] (K = 16 * frames, frame-major)
                          -> CONDRegular. Combined inside the model into the official context
                          cat(text[77], image tokens). Missing -> zero tokens, which make the image
                          cross-attention output exactly 0 (= the official UNet given text only).
  concat_latent_image     DynamiCrafter only: raw VAE latent(s), frames in batch: 1 row (the first frame; repeated
                          to every frame) or T rows (interpolation/looping: first and last frame with zeros between,
                          see `interp_concat_latent`). Scaled with the latent format (x0.18215) like core does.
  lvdm_depth              Make-Your-Video only: per-frame depth [T, 1, h, w] at the latent size (else an error), in [-1, 1] (the
                          official per-frame min-max), not scaled.
                          concat_latent_image / lvdm_depth become `c_concat` (CONDFrames, a CONDNoiseShape, B*T rows).
  lvdm_fs                 frame stride (DynamiCrafter) / fps (VideoCrafter2): int, or one per video -> CONDRegular.
                          Missing -> the variant's official inference value (config.VARIANTS[..].default_fs).
  num_video_frames        frames per video, int (default: all latent rows, i.e. a batch of one video).
A missing c_concat input (DynamiCrafter image, Make-Your-Video depth) is an error, not silently zeros.

Uncond. The official DynamiCrafter uncond is text "" plus resampler(CLIP(zero image)) with the same c_concat; give
the negative CONDITIONING its own `lvdm_image_tokens` and the same concat latent. Conds with the same keys and
shapes are batched into one UNet call (CONDCrossAttn pads different text lengths by repetition, which leaves
attention unchanged, and DynamiCrafter only reads the first 77 tokens anyway); conds with different keys (e.g. a
negative without image tokens) run as separate calls, which is also correct.

Context windows (core ContextWindowsManual, dim=0 = frames, for a batch of ONE video). In ComfyUI 0.3.75 the handler
slices the latent rows and sets `num_video_frames` to the window length, but it does not slice model_conds along
dim 0. Text, image tokens and fs are per video and need no slicing. The per-frame `c_concat` is carried by
`CONDFrames`, which keeps all frames when a window asks for fewer rows; `_apply_model` then picks the window's
frames from `transformer_options["context_window"].index_list`. Image tokens stay the full-video set: with a
16-frame window they are given per frame in window order (the official 16-frame layout), otherwise every frame sees
all of them (the official behaviour for other lengths). CORE LIMITATION: 0.3.75's IndexListContextHandler.set_step
compares the per-row sigma vector with `sample_sigmas` elementwise (isclose), which raises unless the latent has
exactly steps + 1 rows; so with frames in the batch dim=0 windows only run in that case (SVD has the same problem).

Guidance rescale (DynamiCrafter 512/1024, 0.7): `video_rescale_cfg(multiplier, frames)` is a post-CFG function with
the official per-video std; core RescaleCFG takes the std per latent row, i.e. per frame here.

Sampling. `model_sampling` is core ModelSamplingDiscrete on the official linear schedule (0.00085-0.012, 1000 steps):
EPS for VideoCrafter, DynamiCrafter 256 and Make-Your-Video; V_PREDICTION + zsnr for DynamiCrafter 512/1024/interp,
where ComfyUI keeps alphas_cumprod[999] at 4.9e-8 (official: 0), so a run from the terminal step differs from the
official one by ~3e-3 on the golden DDIM trajectory (6.8e-5 against the official DDIM on the capped schedule;
tests/test_lvdm_comfy_model.py). `LVDMModel.variant` is the config.Variant (official sampler settings).
`LVDMModel.unet_output` is the raw UNet output (eps or v) at an integer timestep without model_sampling: the
official DDIM on the exact (uncapped) schedule runs on it (VP_SampleVideo with an LVDM prior).

Not supported: ControlNet / T2I adapters (`control`), transformer_options attention patches and replacements
(the UNet is ours, not comfy.ldm), and diffusion-model wrappers; these inputs are ignored.
"""
from __future__ import annotations

import logging
import os
from typing import ClassVar

import comfy.clip_vision
import comfy.conds
import comfy.latent_formats
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.sampler_helpers
import comfy.samplers
import comfy.sd
import comfy.supported_models
import comfy.supported_models_base
import comfy.text_encoders.sd2_clip
import comfy.utils
import torch

from . import checkpoint as lvdm_checkpoint
from .config import VARIANTS, UNetConfig, Variant, unet_keys
from .resampler import Resampler
from .unet import UNetModel, rows_to_video, video_to_rows

TEXT_TOKENS = 77
VAE_PREFIX = lvdm_checkpoint.PREFIXES["vae"]
TEXT_ENCODER_PREFIX = lvdm_checkpoint.PREFIXES["text_encoder"]
CLIP_VISION_PREFIX = lvdm_checkpoint.PREFIXES["clip_vision"] + "visual."
# The linear schedule every LVDM checkpoint was trained with (official yaml: linear_start/linear_end, 1000 steps).
logger = logging.getLogger(__name__)
SAMPLING = {"beta_schedule": "linear", "linear_start": 0.00085, "linear_end": 0.012, "timesteps": 1000}


class LVDMError(ValueError):
    """A condition or checkpoint the LVDM model cannot use."""


def _build_unet(lvdm_unet: UNetConfig, operations=None, dtype=None, device=None, **_ignored) -> UNetModel:
    """BaseModel builds `unet_model(**unet_config, device=, operations=)`; unet_config holds our UNetConfig."""
    return UNetModel(lvdm_unet, operations=operations, dtype=dtype, device=device)


class LVDMConfig(comfy.supported_models_base.BASE):
    """Shared part of the per-variant configs. unet_config = {"lvdm_unet": UNetConfig, "lvdm_variant": name}.

    No `num_res_blocks` key on purpose: comfy.lora reads SD-style configs with that key (unet_to_diffusers) and
    would misread ours; without it LoRA keys map by parameter name (`lora_unet_<name>` / `diffusion_model.<name>`).
    """

    variant: Variant = None
    unet_config: ClassVar[dict] = {}
    unet_extra_config: ClassVar[dict] = {}
    latent_format = comfy.latent_formats.SD15
    vae_key_prefix: ClassVar[list] = [VAE_PREFIX]
    text_encoder_key_prefix: ClassVar[list] = ["cond_stage_model."]
    clip_vision_prefix = None
    supported_inference_dtypes: ClassVar[list] = [torch.float16, torch.bfloat16, torch.float32]
    memory_usage_factor = 2.0

    def __init__(self, unet: UNetConfig | None = None):
        super().__init__({"lvdm_unet": unet or self.variant.unet, "lvdm_variant": self.variant.name})

    @classmethod
    def matches(cls, unet_config, state_dict=None):
        return unet_config.get("lvdm_variant") == cls.variant.name

    def model_type(self, state_dict=None, prefix=""):
        if self.variant.parameterization == "v":
            return comfy.model_base.ModelType.V_PREDICTION
        return comfy.model_base.ModelType.EPS

    def inpaint_model(self):
        return False

    def get_model(self, state_dict=None, prefix="", device=None):
        return LVDMModel(self, model_type=self.model_type(state_dict, prefix), device=device)

    def process_unet_state_dict(self, state_dict):
        # DynamiCrafter 256 files that say framestride_embed where the code has fps_embedding.
        return unet_keys(state_dict, prefix="")

    # Text encoder: the OpenCLIP ViT-H text tower under cond_stage_model.model., exactly SD 2.x's layout.
    def clip_target(self, state_dict=None):
        return comfy.supported_models_base.ClipTarget(comfy.text_encoders.sd2_clip.SD2Tokenizer,
                                                      comfy.text_encoders.sd2_clip.SD2ClipModel)

    def process_clip_state_dict(self, state_dict):
        return comfy.supported_models.SD20.process_clip_state_dict(self, state_dict)

    def process_clip_state_dict_for_saving(self, state_dict):
        return comfy.supported_models.SD20.process_clip_state_dict_for_saving(self, state_dict)


def _make_config(variant: Variant) -> type:
    settings = dict(SAMPLING, zsnr=bool(variant.zero_terminal_snr))
    attrs = {"variant": variant, "sampling_settings": settings, "__module__": __name__,
             "__doc__": f"{variant.title}: {variant.parameterization}-prediction"
                        f"{', zero terminal SNR' if variant.zero_terminal_snr else ''}."}
    if variant.has_resampler:
        attrs["clip_vision_prefix"] = CLIP_VISION_PREFIX
    return type("LVDM_" + variant.name, (LVDMConfig,), attrs)


CONFIGS: dict[str, type] = {name: _make_config(v) for name, v in VARIANTS.items()}


class CONDFrames(comfy.conds.CONDNoiseShape):
    """A per-frame tensor (frames in batch). Keeps every frame when fewer rows are asked for (a context window);
    LVDMModel then selects the window's frames itself."""

    def process_cond(self, batch_size, area, **kwargs):
        data = self.cond
        if area is not None:
            dims = len(area) // 2
            for i in range(dims):
                data = data.narrow(i + 2, area[i + dims], area[i])
        if data.shape[0] > batch_size:
            return self._copy_with(data)
        return self._copy_with(comfy.utils.repeat_to_batch_size(data, batch_size))


def _frames(kwargs, rows: int) -> int:
    frames = int(kwargs.get("num_video_frames", rows) or rows)
    if frames < 1 or rows % frames:
        raise LVDMError(f"the latent has {rows} rows, not a whole number of {frames}-frame videos "
                        f"(num_video_frames); LVDM latents hold the frames in the batch dimension")
    return frames


def _fit_rows(tensor: torch.Tensor, noise: torch.Tensor, frames: int, name: str) -> torch.Tensor:
    """Per-frame tensor -> one row per latent row: 1 row (every frame), T rows (one video) or B*T rows."""
    rows = noise.shape[0]
    if tensor.ndim == 5:  # [B, C, T, h, w] given by mistake or by a video-style node: frames to the batch
        tensor = tensor.transpose(1, 2).reshape(-1, tensor.shape[1], *tensor.shape[3:])
    if tensor.shape[-2:] != noise.shape[-2:]:
        tensor = comfy.utils.common_upscale(tensor, noise.shape[-1], noise.shape[-2], "bilinear", "center")
    if tensor.shape[0] not in (1, frames, rows):
        raise LVDMError(f"{name} has {tensor.shape[0]} frames; the video has {frames} (give 1, {frames} or {rows})")
    return comfy.utils.repeat_to_batch_size(tensor, rows)


def _rows_per_video(tensor: torch.Tensor, rows: int, frames: int) -> torch.Tensor:
    """A per-video tensor with one row per video (B > 1) -> one row per latent row (each video's row repeated over
    its frames). ComfyUI's process_cond would tile it instead (v0, v1, v0, v1, ...), mixing the videos."""
    videos = rows // frames
    if videos > 1 and tensor.shape[0] == videos:
        return tensor.repeat_interleave(frames, dim=0)
    return tensor


class LVDMModel(comfy.model_base.BaseModel):
    """BaseModel over our UNetModel; frames in the batch dimension outside, [B, C, T, h, w] inside."""

    def __init__(self, model_config: LVDMConfig, model_type=comfy.model_base.ModelType.EPS, device=None):
        super().__init__(model_config, model_type, device=device, unet_model=_build_unet)
        self.variant: Variant = model_config.variant
        self.unet_config: UNetConfig = model_config.unet_config["lvdm_unet"]

    # ---- conditions -------------------------------------------------------------------------------------------
    def concat_cond(self, **kwargs):
        cfg = self.unet_config
        extra = cfg.in_channels - cfg.out_channels
        if extra == 0:
            return None
        noise = kwargs["noise"]
        frames = _frames(kwargs, noise.shape[0])
        device = kwargs.get("device", noise.device)
        if self.variant.family == "makeyourvideo":
            depth = kwargs.get("lvdm_depth")
            if depth is None:
                raise LVDMError(f"{self.variant.title} needs a depth condition (`lvdm_depth`, [T, 1, h, w] in "
                                "[-1, 1]) on every conditioning, positive and negative")
            if depth.shape[-2:] != noise.shape[-2:]:
                # Resizing a normalised depth map would silently change its extremes: refuse instead.
                raise LVDMError(f"{self.variant.title}: the depth condition is {depth.shape[-1]}x{depth.shape[-2]} "
                                f"(latent), the latent {noise.shape[-1]}x{noise.shape[-2]}; make the depth at the "
                                "latent's size (VP_MakeYourVideoConditioning with the same width and height)")
            out = _fit_rows(depth.to(device=device, dtype=noise.dtype), noise, frames, "lvdm_depth")
        else:
            image = kwargs.get("concat_latent_image")
            if image is None:
                raise LVDMError(f"{self.variant.title} needs the image latent (`concat_latent_image`) on every "
                                "conditioning, positive and negative")
            image = self.process_latent_in(image.to(device=device, dtype=noise.dtype))
            out = _fit_rows(image, noise, frames, "concat_latent_image")
        if out.shape[1] != extra:
            raise LVDMError(f"{self.variant.title} concatenates {extra} channel(s) to the latent; got {out.shape[1]}")
        return out

    def extra_conds(self, **kwargs):
        cfg = self.unet_config
        noise = kwargs["noise"]
        frames = _frames(kwargs, noise.shape[0])
        # Checked here, before the first step: the UNet halves the latent once per level after the first.
        factor = 2 ** (len(cfg.channel_mult) - 1)
        if noise.shape[-1] % factor or noise.shape[-2] % factor:
            raise LVDMError(f"{self.variant.title} needs latents whose sides are multiples of {factor} (frames of a "
                            f"multiple of {8 * factor} pixels); got {noise.shape[-1] * 8}x{noise.shape[-2] * 8} "
                            f"pixels ({noise.shape[-1]}x{noise.shape[-2]} latent)")
        out = {"num_video_frames": comfy.conds.CONDConstant(frames)}
        if kwargs.get("lvdm_depth") is not None and self.variant.family != "makeyourvideo":
            raise LVDMError(f"a depth condition (Make-Your-Video conditioning) was given to {self.variant.title}, "
                            "which takes none; load a Make-Your-Video checkpoint")

        concat = self.concat_cond(**kwargs)
        if concat is not None:
            out["c_concat"] = CONDFrames(concat)

        cross_attn = kwargs.get("cross_attn")
        if cross_attn is not None:
            if cfg.image_cross_attention:
                if cross_attn.shape[1] < TEXT_TOKENS:
                    raise LVDMError(f"{self.variant.title} needs {TEXT_TOKENS} text tokens, got "
                                    f"{cross_attn.shape[1]}")
                cross_attn = cross_attn[:, :TEXT_TOKENS]
            out["c_crossattn"] = comfy.conds.CONDCrossAttn(_rows_per_video(cross_attn, noise.shape[0], frames))

        tokens = kwargs.get("lvdm_image_tokens")
        if tokens is not None and cfg.image_cross_attention:
            if tokens.ndim != 3 or tokens.shape[-1] != cfg.context_dim:
                raise LVDMError(f"lvdm_image_tokens must be [batch, tokens, {cfg.context_dim}], got "
                                f"{list(tokens.shape)}")
            out["lvdm_image_tokens"] = comfy.conds.CONDRegular(_rows_per_video(tokens, noise.shape[0], frames))

        if cfg.fs_condition:
            fs = kwargs.get("lvdm_fs", self.variant.default_fs)
            if fs is None:
                fs = cfg.default_fs
            fs = torch.as_tensor(fs).to(torch.long).reshape(-1)
            out["lvdm_fs"] = comfy.conds.CONDRegular(_rows_per_video(fs, noise.shape[0], frames))
        return out

    # ---- forward ----------------------------------------------------------------------------------------------
    def _apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None, **kwargs):
        sigma = t
        rows = x.shape[0]
        frames = _frames(kwargs, rows)
        xc = self.model_sampling.calculate_input(sigma, x)
        timestep = self.model_sampling.timestep(t).float().reshape(rows // frames, frames)[:, 0]
        out = self._unet_rows(xc, timestep, c_concat, c_crossattn, transformer_options, **kwargs)
        return self.model_sampling.calculate_denoised(sigma, out.float(), x)

    def unet_output(self, x, timestep, c_concat=None, c_crossattn=None, transformer_options=None, **kwargs):
        """The raw UNet output (eps or v, as the variant predicts) at integer DDPM timestep(s), no model_sampling.

        x: the official (variance-preserving) latent x_t with the frames in the batch dimension [B*T, C, h, w];
        timestep: an int or one per video; conditions: the processed model conds of `extra_conds`
        (`cond.process_cond(batch_size=B*T).cond`: c_concat, c_crossattn, lvdm_image_tokens, lvdm_fs,
        num_video_frames). Returns float32 [B*T, out_channels, h, w]. For samplers on the official discrete
        schedule (the zero-SNR terminal step included), e.g. pipelines.lvdm.ddim.ddim_sample.
        """
        rows = x.shape[0]
        frames = _frames(kwargs, rows)
        videos = rows // frames
        timestep = torch.as_tensor(timestep, device=x.device).float().reshape(-1)
        if timestep.shape[0] == 1:
            timestep = timestep.expand(videos)
        elif timestep.shape[0] == rows:
            timestep = timestep.reshape(videos, frames)[:, 0]
        elif timestep.shape[0] != videos:
            raise LVDMError(f"{timestep.shape[0]} timesteps for {videos} video(s)")
        return self._unet_rows(x, timestep, c_concat, c_crossattn, transformer_options, **kwargs).float()

    def _unet_rows(self, xc, timestep, c_concat=None, c_crossattn=None, transformer_options=None, **kwargs):
        """The UNet on the model input xc [B*T, C, h, w] at one timestep per video: fold, call, unfold."""
        transformer_options = transformer_options or {}
        rows = xc.shape[0]
        frames = _frames(kwargs, rows)
        videos = rows // frames
        if c_concat is not None:
            c_concat = self._window_rows(c_concat, rows, transformer_options)
            xc = torch.cat([xc, comfy.model_management.cast_to_device(c_concat, xc.device, xc.dtype)], dim=1)

        dtype = self.manual_cast_dtype if self.manual_cast_dtype is not None else self.get_dtype()
        xc = xc.to(dtype)
        device = xc.device

        if c_crossattn is None:
            raise LVDMError(f"{self.variant.title} needs a text conditioning (CLIPTextEncode)")
        context = comfy.model_management.cast_to_device(self._per_video(c_crossattn, videos, frames), device, dtype)
        cfg = self.unet_config
        if cfg.image_cross_attention:
            context = context[:, :TEXT_TOKENS]
            tokens = kwargs.get("lvdm_image_tokens")
            if tokens is None:
                tokens = context.new_zeros(videos, cfg.image_tokens_per_frame * frames, context.shape[-1])
            else:
                tokens = comfy.model_management.cast_to_device(self._per_video(tokens, videos, frames), device, dtype)
            context = torch.cat([context, tokens], dim=1)

        fs = kwargs.get("lvdm_fs")
        if fs is not None:
            fs = self._per_video(fs, videos, frames).reshape(videos).to(device=device, dtype=torch.long)

        out = self.diffusion_model(rows_to_video(xc, frames), timestep.to(device), context=context, fs=fs)
        return video_to_rows(out)

    @staticmethod
    def _per_video(tensor: torch.Tensor, videos: int, frames: int) -> torch.Tensor:
        """Row-per-frame condition -> one row per video (the first frame's row of each video)."""
        if tensor.shape[0] == videos * frames:
            return tensor[::frames]
        if tensor.shape[0] == videos:
            return tensor
        return comfy.utils.repeat_to_batch_size(tensor[:1], videos)

    @staticmethod
    def _window_rows(c_concat: torch.Tensor, rows: int, transformer_options: dict) -> torch.Tensor:
        """c_concat carries all frames of every branch when a context window runs on fewer rows: pick them."""
        if c_concat.shape[0] == rows:
            return c_concat
        branches = max(1, len(transformer_options.get("cond_or_uncond", [])))
        per_branch, full = rows // branches, c_concat.shape[0] // branches
        grouped = c_concat.reshape(branches, full, *c_concat.shape[1:])
        window = transformer_options.get("context_window")
        if window is not None and len(window.index_list) == per_branch:
            index = torch.as_tensor(window.index_list, device=c_concat.device, dtype=torch.long)
            grouped = grouped[:, index]
        else:
            grouped = grouped[:, :per_branch]
        return grouped.reshape(rows, *c_concat.shape[1:])


# ---- helpers for the nodes ----------------------------------------------------------------------------------------
def lvdm_variant(model_or_base) -> Variant | None:
    """The config.Variant of an LVDM MODEL (ModelPatcher) or BaseModel, None for any other model. Duck-typed: the
    pack may be imported under two module names (ComfyUI's custom_nodes package and `pipelines` in tests)."""
    base = getattr(model_or_base, "model", model_or_base)
    variant = getattr(base, "variant", None)
    return variant if getattr(variant, "name", None) in VARIANTS else None


def unet_conds(model: LVDMModel, conditioning, noise: torch.Tensor, device=None, prompt_type: str = "positive",
               **values) -> dict:
    """A CONDITIONING -> the processed conditions `LVDMModel.unet_output` takes for the latent rows `noise`.

    Built as core samplers build them (sampler_helpers.convert_cond, samplers.encode_model_conds ->
    LVDMModel.extra_conds, then each cond's process_cond for the batch), from the FIRST entry of the conditioning;
    `values` override / add keys of that entry (e.g. num_video_frames, lvdm_image_tokens). Area, mask, strength,
    hooks and ControlNets of the entry are not applied.
    """
    if not isinstance(conditioning, list) or not conditioning:
        raise LVDMError("not a ComfyUI CONDITIONING (a list of [tensor, dict])")
    if len(conditioning) > 1:
        logger.warning("LVDM: a CONDITIONING with %d entries: only the first is used", len(conditioning))
    entry = comfy.sampler_helpers.convert_cond(conditioning[:1])[0]
    entry.update(values)
    device = noise.device if device is None else device
    entry = comfy.samplers.encode_model_conds(model.extra_conds, [entry], noise, device, prompt_type)[0]
    rows = noise.shape[0]
    return {k: c.process_cond(batch_size=rows, area=None, device=device).cond
            for k, c in entry["model_conds"].items()}


def interp_concat_latent(first: torch.Tensor, last: torch.Tensor, frames: int) -> torch.Tensor:
    """DynamiCrafter interpolation / looping `concat_latent_image`: raw latents [1, 4, h, w] of the first and last
    frame -> [frames, 4, h, w], first at row 0, last at row frames-1, zeros between (the official img_cat_cond)."""
    out = torch.zeros((frames,) + tuple(first.shape[1:]), dtype=first.dtype, device=first.device)
    out[0] = first[0]
    out[-1] = last[0]
    return out


def video_rescale_cfg(multiplier: float, frames: int | None = None):
    """The official LVDM guidance rescale (DynamiCrafter 512/1024: 0.7) with the std per VIDEO, as a
    `sampler_post_cfg_function` (ModelPatcher.set_model_sampler_post_cfg_function).

    Core RescaleCFG does the same v-space arithmetic but takes the std over (C, H, W) of each latent row, i.e. per
    frame here; the official `rescale_noise_cfg` takes it over (C, T, H, W) of each video. It is also a
    sampler_cfg_function, whose `x - denoised` convention loses float32 precision at the zero-SNR sigma (~4.5e3:
    ~1e-3 absolute in the first denoised estimate); a post-CFG function works on the denoised estimates directly.
    `frames`: frames per video (None: every row of a call is one video, exact for a batch of one video).
    """
    def rescale_cfg(args):
        denoised = args["denoised"]             # the CFG result (core: uncond + scale * (cond - uncond))
        if multiplier == 0 or args.get("cond_scale", 0.0) == 1.0:
            return denoised
        x_orig = args["input"]
        sigma = args["sigma"].reshape((-1,) + (1,) * (x_orig.ndim - 1))
        x = x_orig / (sigma ** 2 + 1.0)         # the model's input latent (VP scale)
        to_v = (sigma ** 2 + 1.0) ** 0.5 / sigma  # V_PREDICTION: denoised = x - v * sigma / sqrt(sigma^2 + 1)
        v_cfg = (x - denoised) * to_v
        v_c = (x - args["cond_denoised"]) * to_v
        rows = x_orig.shape[0]
        per_video = frames or rows
        if rows % per_video:
            raise LVDMError(f"{rows} latent rows are not whole {per_video}-frame videos")

        def video_std(v):
            return v.reshape(rows // per_video, -1).std(dim=1).repeat_interleave(per_video).reshape(sigma.shape)

        v_final = multiplier * v_cfg * (video_std(v_c) / video_std(v_cfg)) + (1.0 - multiplier) * v_cfg
        return x - v_final / to_v

    return rescale_cfg


# ---- checkpoint loading -------------------------------------------------------------------------------------------
def _read_checkpoint(source, variant: str) -> lvdm_checkpoint.LVDMCheckpoint:
    """A file (checkpoint.py: safe, memory-mapped reading, wrappers, split by prefix) or a flat state dict with
    the official key names."""
    if isinstance(source, (str, os.PathLike)):
        return lvdm_checkpoint.load_lvdm_checkpoint(source, variant=variant)
    tensors = {k: v for k, v in source.items() if torch.is_tensor(v)}
    raw = lvdm_checkpoint.RawCheckpoint(path="<state dict>", tensors=tensors, format="state_dict", layout="plain",
                                        metadata={}, non_tensor=[k for k in source if k not in tensors])
    return lvdm_checkpoint.identify(raw, variant=variant)


def _load_resampler(rs: dict | None):
    """DynamiCrafter's image_proj_model (keys without prefix) as a float32 module in eval mode, or None."""
    if not rs:
        return None
    dim = rs["latents"].shape[-1]
    inner = rs["layers.0.0.to_q.weight"].shape[0]
    depth = 1 + max(int(k.split(".")[1]) for k in rs if k.startswith("layers."))
    # The head count is not in the shapes; every published DynamiCrafter uses 64-wide heads (12 x 64).
    dim_head = 64 if inner % 64 == 0 else inner
    num_queries = 16  # the UNet reads 16 tokens per frame
    model = Resampler(dim=dim, depth=depth, dim_head=dim_head, heads=inner // dim_head, num_queries=num_queries,
                      embedding_dim=rs["proj_in.weight"].shape[1], output_dim=rs["proj_out.weight"].shape[0],
                      ff_mult=rs["layers.0.1.1.weight"].shape[0] / dim,
                      video_length=rs["latents"].shape[1] // num_queries)
    model.load_state_dict(rs, strict=True)
    return model.float().eval()


def load_lvdm_checkpoint(source, variant: str = "auto", dtype=None, output_clip: bool = True,
                         output_vae: bool = True, output_clipvision: bool = True, embedding_directory=None,
                         te_model_options: dict | None = None):
    """An official LVDM `model.ckpt` / converted .safetensors (path), or a flat state dict with the official key
    names -> ComfyUI objects, as comfy.sd.load_checkpoint_guess_config does for core models.

    Returns (MODEL ModelPatcher, CLIP or None, VAE or None, CLIP_VISION or None, resampler nn.Module or None,
    Variant). `variant`: "auto" (detected from the keys) or a name of config.VARIANTS among those sharing the
    file's key layout (DynamiCrafter 512 / 1024 / 512_interp). `dtype`: UNet weight dtype (None: ComfyUI's
    choice for the device; computation follows ComfyUI's manual-cast rules). Encoders absent from the file -> None.
    Raises checkpoint.CheckpointError (a ValueError) for files that are not LVDM checkpoints.
    """
    ck = _read_checkpoint(source, variant)
    chosen = ck.variant
    model_config = CONFIGS[chosen.name](ck.unet_config)

    parameters = comfy.utils.calculate_parameters(ck.unet)
    weight_dtype = comfy.utils.weight_dtype(ck.unet)
    load_device = comfy.model_management.get_torch_device()
    supported = list(model_config.supported_inference_dtypes)
    unet_dtype = dtype or comfy.model_management.unet_dtype(model_params=parameters, supported_dtypes=supported,
                                                            weight_dtype=weight_dtype)
    manual_cast_dtype = comfy.model_management.unet_manual_cast(unet_dtype, load_device, supported)
    model_config.set_inference_dtype(unet_dtype, manual_cast_dtype)

    cast_name = {v: k for k, v in lvdm_checkpoint.DTYPES.items() if v is not None}.get(unet_dtype)
    if isinstance(source, (str, os.PathLike)) and cast_name and weight_dtype not in (None, unet_dtype):
        # Another dtype than the file's: read it again casting tensor by tensor (each source tensor freed once
        # cast), rather than casting from the memory map, whose pages would stay resident beside the copies.
        ck = lvdm_checkpoint.load_lvdm_checkpoint(source, variant=variant, dtype=cast_name)
    initial_device = comfy.model_management.unet_inital_load_device(parameters, unet_dtype)
    # Lean loading: the UNet is built without memory (meta) and takes the file's tensors as its parameters
    # (assign): no second copy of the weights. Same dtype -> the memory-mapped tensors themselves (pages read on
    # first use); another dtype -> each tensor cast once, its source released as we go.
    model = model_config.get_model(device=torch.device("meta"))
    unet_sd = {}
    for key in list(ck.unet):
        t = ck.unet.pop(key)
        if t.is_floating_point() and t.dtype != unet_dtype:
            t = t.to(unet_dtype)
        unet_sd[key] = t
    ck.unet = None
    missing, unexpected = model.diffusion_model.load_state_dict(unet_sd, strict=False, assign=True)
    del unet_sd
    if missing or unexpected:
        raise LVDMError(f"{chosen.title}: UNet keys do not match (missing {sorted(missing)[:5]}, "
                        f"unexpected {sorted(unexpected)[:5]})")
    if initial_device != torch.device("cpu"):
        model.diffusion_model.to(initial_device)

    clip_vision = None
    if output_clipvision and ck.clip_vision and model_config.clip_vision_prefix is not None:
        # embedder.model.* minus the prefix: the open_clip layout core's clip_vision.load() reads ("visual.*");
        # the text-side leftovers of the official embedder are dropped.
        visual = {k: v for k, v in ck.clip_vision.items() if k.startswith("visual.")}
        clip_vision = comfy.clip_vision.load_clipvision_from_sd(visual, "visual.", convert_keys=True)
        if clip_vision is None:
            logger.warning("LVDM: embedder.model.visual.* is not an OpenCLIP ViT-H image tower; no CLIP_VISION")

    resampler = _load_resampler(ck.resampler) if chosen.has_resampler else None

    vae = comfy.sd.VAE(sd=ck.vae) if output_vae and ck.vae else None

    clip = None
    if output_clip and ck.text_encoder:
        clip_sd = model_config.process_clip_state_dict({TEXT_ENCODER_PREFIX + k: v for k, v in ck.text_encoder.items()})
        clip = comfy.sd.CLIP(model_config.clip_target(), embedding_directory=embedding_directory,
                             tokenizer_data=clip_sd, parameters=comfy.utils.calculate_parameters(clip_sd),
                             model_options=te_model_options or {})
        missing, _unexpected = clip.load_sd(clip_sd, full_model=True)
        missing = [k for k in missing if ".logit_scale" not in k and "text_projection" not in k]
        if missing:
            logger.warning("LVDM text encoder missing keys: %s", missing[:10])

    patcher = comfy.model_patcher.ModelPatcher(model, load_device=load_device,
                                               offload_device=comfy.model_management.unet_offload_device())
    if initial_device != torch.device("cpu"):
        comfy.model_management.load_models_gpu([patcher], force_full_load=True)
    return patcher, clip, vae, clip_vision, resampler, chosen
