"""Backend B: a video model loaded by ComfyUI's own loaders (MODEL + VAE + CONDITIONING) as a prior.

The only module of pipelines/ that imports ComfyUI. It talks to the model only through
ComfyUI's own abstractions, so it is meant for any diffusion model ComfyUI can sample (Wan
2.1/2.2, LTX-Video, HunyuanVideo; image models with the frames as a batch). Tested: Wan 2.1
T2V (flow) and the same model re-parameterised as eps and v by core ModelSamplingDiscrete,
tiny, through the real loaders (tests/test_comfy_prior.py); the LVDM family from
VP_LoadLVDMCheckpoint (VideoCrafter2: eps; DynamiCrafter 512: v with zero terminal SNR), tiny
official-layout checkpoints (tests/test_lvdm_prior.py); other families are untested.

* Frames in the batch dimension (image VAEs, the LVDM family, SVD): the K latent rows are one
  clip; every conditioning gets `num_video_frames = K`. DynamiCrafter needs its image on both
  conditionings (VP_DynamiCrafterConditioning: concat latent, image tokens, frame stride),
  checked by `embeds_from_conditioning`. At the zero-SNR terminal step ComfyUI caps
  alphas_cumprod at 4.9e-8 (official: 0); SDS never samples t = 999 with the default range.

* Denoiser. `comfy.samplers.sampling_function` on the ModelPatcher's BaseModel with the
  processed positive/negative conditioning, exactly as a KSampler step: cond and uncond go
  through the model in one batched call when memory allows (calc_cond_batch), model_options
  patches (model_function_wrapper, sampler_cfg_function...) apply, and the result is the
  CFG-combined denoised estimate x0_hat (`model_sampling.calculate_denoised`), whatever the
  parameterisation (EPS, V_PREDICTION, CONST flow matching, X0, EDM...). Hooks on the
  conditioning (comfy.hooks) and PREDICT_NOISE wrappers of a CFGGuider are not applied.

* Noise and timesteps. The model's `model_sampling` (the patched one when e.g. ModelSamplingSD3
  changed the shift) defines x_t = a(sigma) x0 + b(sigma) eps through `noise_scaling`:
  a = 1, b = sigma for EPS/V models (ComfyUI's variance-exploding form), a = 1 - sigma,
  b = sigma for flow models. The interface's integer t in [0, 1000) maps to the model's own
  ascending `sigmas` table (N entries) at index round((t + 1) N / 1000) - 1:
  discrete VP models (N = 1000) use sigma_t = sqrt((1 - abar_t) / abar_t), exactly their
  training timestep t; flow models get sigma(timestep (t + 1) / 1000) with their shift
  (Wan: shift 8, so t = 500 is sigma 0.89). The interface's epsilon is
  eps_hat = (x_t - a x0_hat) / b, and the equivalent variance-preserving signal rate
  reported by `alphas_cumprod()` is abar_t = a^2 / (a^2 + b^2): 1 / (1 + sigma^2) for VP
  models (their true abar_t), (1 - s)^2 / ((1 - s)^2 + s^2) for flow. So SDS's
  w(t) = 1 - abar_t = b^2 / (a^2 + b^2), and w(t) (eps_hat - eps) = w(t) a/b (x0 - x0_hat).
  CFG in x0 space equals CFG in epsilon space (eps_hat is affine in x0_hat with the same
  coefficients for both branches).

* Frames -> latents, with gradients. ComfyUI's `VAE.encode` moves results into a preallocated
  buffer and may fall back to tiling; we call `vae.first_stage_model.encode` directly on
  [-1, 1] frames ([1, 3, K, H, W] for video VAEs, [K, 3, H, W] for image VAEs) and apply the
  model's `latent_format.process_in`, as the samplers do. Video VAEs that compress time need
  K = 1 + time_compression * n frames (Wan 2.1: 4, LTX-Video: 8).
  ComfyUI loads weights under torch.inference_mode, and inference tensors "cannot be saved
  for backward"; the encoder is therefore run with `torch.func.functional_call` on normal
  tensors that alias the same storage (zero-copy, made per call and freed with the graph;
  a clone when aliasing is refused). The module itself is never modified, so ComfyUI can keep
  moving it between devices. The denoiser runs under no_grad and needs no such care.
  Memory: a causal video VAE carries a feature cache from one time chunk to the next, so the
  whole clip is one autograd graph and the encoder's activations for all K frames are alive
  until backward. Encoding time chunks separately would change the result (the cache links
  them); exact per-chunk checkpointing would have to thread that cache through the internals
  of each VAE's encoder, which is not done. See COMFY_VAE_MEMORY_NOTE.
"""
from __future__ import annotations

import copy

import torch
from torch.func import functional_call

import comfy.model_management
import comfy.model_patcher
import comfy.sampler_helpers
import comfy.samplers
from comfy.patcher_extension import merge_nested_dicts

from ..lvdm.comfy_model import lvdm_variant
from .base import PromptEmbeds, VideoPrior

COMFY_VAE_MEMORY_NOTE = (
    "Wan 2.1 VAE encoder (its real architecture, dim 96, 54 M parameters), encode + backward on CPU in fp32, peak "
    "live tensors: 5 frames 64x64 255 MB, 9 frames 64x64 420 MB, 5 frames 128x128 992 MB, i.e. about 10-12 KB per "
    "input pixel-frame: 17 frames at 256x256 need about 12 GB, 25 frames about 18 GB (half in bf16, the VAE's "
    "dtype on GPUs that support it). Lower the frame count or render_size when it does not fit.")


class ConditioningMissingError(ValueError):
    """The prior needs ComfyUI CONDITIONING (positive and negative) and got none."""


def _aliases(module: torch.nn.Module, dtype: torch.dtype | None) -> dict:
    """Parameters and buffers of `module` as normal (non-inference) tensors on the same storage."""
    out = {}
    with torch.inference_mode(False):
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if t.is_inference():
                try:
                    view = torch.empty(0, dtype=t.dtype, device=t.device)
                    view.set_(t.untyped_storage(), t.storage_offset(), t.size(), t.stride())
                except RuntimeError:
                    view = t.clone()
                t = view
            out[name] = t if dtype is None or not t.is_floating_point() else t.to(dtype)
    return out


class _Encoder(torch.nn.Module):
    """forward = first_stage_model.encode, so functional_call can substitute its weights."""

    def __init__(self, vae_model: torch.nn.Module):
        super().__init__()
        self.m = vae_model

    def forward(self, x):
        return self.m.encode(x)


def _normal_copy(obj):
    """A shallow copy of a latent format whose tensor attributes are normal tensors."""
    obj = copy.copy(obj)
    with torch.inference_mode(False):
        for key, value in vars(obj).items():
            if isinstance(value, torch.Tensor) and value.is_inference():
                setattr(obj, key, value.clone())
    return obj


class ComfyVideoPrior(VideoPrior):
    """A ComfyUI MODEL (ModelPatcher) + VAE as a `VideoPrior`; text comes as CONDITIONING."""

    def __init__(self, model, vae, name: str | None = None):
        if getattr(vae, "first_stage_model", None) is None:
            raise ValueError("the VAE is empty (the checkpoint had no VAE weights)")
        self.model, self.vae = model, vae
        config = getattr(model.model, "model_config", None)
        self.name = name or f"ComfyUI {type(config).__name__ if config is not None else type(model.model).__name__}"
        self.model_sampling = model.get_model_object("model_sampling")
        self.latent_format = _normal_copy(model.get_model_object("latent_format"))
        want, have = getattr(self.latent_format, "latent_channels", None), getattr(vae, "latent_channels", None)
        if want is not None and have is not None and want != have:
            raise ValueError(f"the VAE makes {have}-channel latents but the model takes {want} channels: "
                             "use the VAE that belongs to the model (e.g. wan_2.1_vae for Wan 2.1 T2V 1.3B/14B)")
        self.video = getattr(vae, "latent_dim", 2) == 3
        self.time_compression = int(vae.temporal_compression_decode() or 1) if self.video else 1
        self.spatial_compression = int(vae.spacial_compression_encode())
        self.num_frames = 1 + 4 * self.time_compression if self.video else 16
        self.height = self.width = 256
        # An LVDM model (VideoCrafter / DynamiCrafter from VP_LoadLVDMCheckpoint, pipelines/lvdm/comfy_model.py):
        # its official clip size, and its config.Variant for the official sampler (VP_SampleVideo).
        self.lvdm_variant = lvdm_variant(model)
        if self.lvdm_variant is not None:
            self.num_frames = int(self.lvdm_variant.frames)
            self.height, self.width = (int(v) for v in self.lvdm_variant.resolution)
        self.device = model.load_device
        self.encode_dtype: torch.dtype | None = None  # None: the VAE's own dtype
        self._cond_cache = None
        with torch.inference_mode(False), torch.no_grad():
            sigmas = self.model_sampling.sigmas.detach().float().cpu()
            n = sigmas.shape[0]
            idx = ((torch.arange(1, 1001) * n + 500) // 1000 - 1).clamp(0, n - 1)
            self._sigmas = sigmas[idx].clone()
            col = self._sigmas.view(-1, 1)
            self._a = self.model_sampling.noise_scaling(col, torch.zeros_like(col), torch.ones_like(col)).view(-1)
            self._b = self.model_sampling.noise_scaling(col, torch.ones_like(col), torch.zeros_like(col)).view(-1)
            self._abar = (self._a ** 2 / (self._a ** 2 + self._b ** 2)).float()

    # --- ComfyUI model management --------------------------------------------------------------
    @property
    def patchers(self) -> list:
        return [self.model, self.vae.patcher]

    def load(self) -> None:
        comfy.model_management.load_models_gpu(self.patchers)
        self.device = self.model.load_device

    def _ensure_loaded(self) -> None:
        """Load again if ComfyUI unloaded a patcher (e.g. another clone of the same model ran meanwhile)."""
        loaded = [m.model for m in comfy.model_management.current_loaded_models]
        if not all(any(p is q for q in loaded) for p in self.patchers):
            self.load()

    # --- text ----------------------------------------------------------------------------------
    def encode_prompt(self, prompt: str, negative_prompt: str = "") -> PromptEmbeds:
        raise ConditioningMissingError(
            f"{self.name} takes its text as ComfyUI CONDITIONING: encode the prompt with the model's text encoder "
            "(CLIPLoader + CLIPTextEncode) and pass positive and negative conditioning")

    def embeds_from_conditioning(self, positive, negative, prompt: str = "", negative_prompt: str = "") -> PromptEmbeds:
        for label, cond in (("positive", positive), ("negative", negative)):
            if cond is None:
                raise ConditioningMissingError(
                    f"{self.name} needs {label} CONDITIONING: connect a CLIPTextEncode (with the model's text "
                    "encoder) to it; for the negative an empty prompt or ConditioningZeroOut works")
            if not isinstance(cond, list) or not cond or not all(isinstance(c, (list, tuple)) and len(c) == 2
                                                                 for c in cond):
                raise ValueError(f"{label} is not ComfyUI CONDITIONING (a list of [tensor, dict])")
        self.check_conditioning(positive, negative)
        return PromptEmbeds(cond=positive, uncond=negative, prompt=prompt, negative_prompt=negative_prompt)

    def check_conditioning(self, positive, negative) -> None:
        """Image-conditioned LVDM models need their image on both conditionings (as VP_DynamiCrafterConditioning
        sets it); say so before any model call."""
        variant = self.lvdm_variant
        if variant is None or not variant.latent_concat_channels:
            return
        key = "lvdm_depth" if variant.family == "makeyourvideo" else "concat_latent_image"
        for label, cond in (("positive", positive), ("negative", negative)):
            if any(key not in c[1] for c in cond):
                node = ("VP_DynamiCrafterConditioning (start image, image context from VP_CLIPContextEncoder)"
                        if key == "concat_latent_image" else "a depth conditioning (lvdm_depth)")
                raise ConditioningMissingError(
                    f"{self.name} ({variant.title}) needs its image on the {label} CONDITIONING: pass both "
                    f"conditionings through {node}")

    # --- schedule ------------------------------------------------------------------------------
    def alphas_cumprod(self) -> torch.Tensor:
        return self._abar

    def sigma(self, t: int) -> float:
        return float(self._sigmas[int(t)])

    def add_noise(self, latents: torch.Tensor, noise: torch.Tensor, t: int) -> torch.Tensor:
        return float(self._a[int(t)]) * latents + float(self._b[int(t)]) * noise

    # --- frames <-> latents --------------------------------------------------------------------
    def frame_count_ok(self, k: int) -> bool:
        return k >= 1 and (not self.video or (k - 1) % self.time_compression == 0)

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """[K, 3, H, W] in 0..1 -> model-space latents (process_in applied), differentiable."""
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames must be [K, 3, H, W], got {tuple(frames.shape)}")
        k, _, h, w = frames.shape
        if not self.frame_count_ok(k):
            raise ValueError(f"{self.name}: its video VAE compresses time by {self.time_compression}, so a clip needs "
                             f"1 + {self.time_compression}*n frames (e.g. {1 + 4 * self.time_compression} or "
                             f"{1 + 6 * self.time_compression}); got {k}")
        f = self.spatial_compression
        if h % f or w % f:
            raise ValueError(f"{self.name}: frame size {h}x{w} must be a multiple of {f}")
        self._ensure_loaded()
        fsm = self.vae.first_stage_model
        dtype = self.encode_dtype or self.vae.vae_dtype
        x = self.vae.process_input(frames)
        if self.video:
            x = x.permute(1, 0, 2, 3).unsqueeze(0)  # [1, 3, K, H, W]
        x = x.to(self.vae.device, dtype)
        if torch.is_grad_enabled() and not torch.is_inference_mode_enabled():
            params = {f"m.{n}": p for n, p in _aliases(fsm, self.encode_dtype).items()}
            z = functional_call(_Encoder(fsm), params, (x,))
        else:
            z = fsm.encode(x)
        return self.latent_format.process_in(z.float())

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        images = self.vae.decode(self.latent_format.process_out(latents.float()))  # [..., H, W, 3]
        return images.reshape(-1, *images.shape[-3:]).permute(0, 3, 1, 2).float().clamp(0, 1)

    # --- denoiser ------------------------------------------------------------------------------
    def _conds(self, embeds: PromptEmbeds, x: torch.Tensor) -> tuple:
        key = (tuple(x.shape), str(x.device))
        if self._cond_cache is not None and self._cond_cache[0] is embeds and self._cond_cache[1] == key:
            return self._cond_cache[2:]
        if embeds.cond is None or embeds.uncond is None or isinstance(embeds.cond, str):
            raise ConditioningMissingError(f"{self.name} needs positive and negative CONDITIONING")
        conds = {"positive": comfy.sampler_helpers.convert_cond(embeds.cond),
                 "negative": comfy.sampler_helpers.convert_cond(embeds.uncond)}
        if not self.video:
            # Frames in the batch dimension: the latent rows are ONE clip, whatever frame count the conditioning
            # was made for (an LVDM conditioning node's `num_video_frames`; SVD reads it too).
            for branch in conds.values():
                for c in branch:
                    c["num_video_frames"] = int(x.shape[0])
        conds = comfy.samplers.process_conds(self.model.model, x, conds, x.device, latent_image=torch.zeros_like(x))
        # As CFGGuider: the patcher's wrappers and callbacks reach the model through transformer_options.
        options = comfy.model_patcher.create_model_options_clone(self.model.model_options)
        extra = options.setdefault("transformer_options", {})
        for name in ("wrappers", "callbacks"):
            merge_nested_dicts(extra.setdefault(name, {}), getattr(self.model, name, {}), copy_dict1=False)
        self._cond_cache = (embeds, key, conds, options)
        return conds, options

    def predict_noise(self, noisy: torch.Tensor, t: int, embeds: PromptEmbeds, guidance_scale: float) -> torch.Tensor:
        """CFG epsilon (x_t - a x0_hat) / b from one KSampler-style model evaluation at sigma_t."""
        self._ensure_loaded()
        device = self.model.load_device
        x = noisy.detach().to(device, torch.float32)
        conds, options = self._conds(embeds, x)
        sigma = torch.full((x.shape[0],), self.sigma(t), device=device, dtype=torch.float32)
        self.model.pre_run()  # as a sampler does around its steps (sets model.current_patcher)
        try:
            with torch.no_grad():
                x0 = comfy.samplers.sampling_function(self.model.model, x, sigma, conds["negative"],
                                                      conds["positive"], float(guidance_scale), model_options=options)
        finally:
            self.model.cleanup()
        eps = (x - float(self._a[int(t)]) * x0.float()) / float(self._b[int(t)])
        return eps.to(noisy.device, noisy.dtype)


__all__ = ["COMFY_VAE_MEMORY_NOTE", "ComfyVideoPrior", "ConditioningMissingError"]
