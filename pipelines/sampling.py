"""Text-to-video sampling from any VideoPrior: DDIM with diffusers' DDIMScheduler.

Pure PyTorch (no ComfyUI import). The prior is only used through its interface:
`predict_noise` (classifier-free-guided epsilon), `alphas_cumprod` (the schedule),
`latent_shape`, `frame_count_ok` and `decode_latents`.

* Schedule. A prior that carries a diffusers scheduler (DiffusersVideoPrior: ModelScope, ZeroScope,
  the embedded prior) gets a DDIMScheduler built from that scheduler's config, so timestep spacing,
  `clip_sample`, `set_alpha_to_one`... are the model's own. Any other prior gets a DDIMScheduler whose
  betas are recovered from `alphas_cumprod()` (beta_t = 1 - abar_t / abar_{t-1}), with "trailing"
  spacing (the first step is at the last training timestep, where the clip is pure noise). The
  prediction type is always epsilon: `predict_noise` returns epsilon whatever the model predicts.
* Noise. The initial latents and DDIM's eta noise come from one CPU torch.Generator seeded by `seed`,
  so a seed gives the same clip on any device (up to the device's arithmetic).
* Parameterisation. DDIM runs on variance-preserving latents x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps.
  A prior whose `add_noise` uses another scaling of the same process (ComfyUI's variance-exploding
  x0 + sigma eps, flow matching (1 - s) x0 + s eps) gets its input rescaled by
  c_t = b_t / sqrt(1 - abar_t), where b_t is the noise coefficient of its `add_noise`.
* Last step. With `set_alpha_to_one` (the generic scheduler, the embedded prior) the result is the last
  step's clean estimate; otherwise (ModelScope's config) it is DDIM's last sample at abar_0, as in
  diffusers' own pipelines.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .priors.base import PromptEmbeds, VideoPrior
from .render_budget import output_bytes


class SamplingError(ValueError):
    """Options the prior cannot sample with (frame count, frame size, batch of prompts)."""


def size_multiple(prior: VideoPrior) -> int:
    """Frame height and width must be multiples of this (the VAE's spatial downsampling; 1 in pixel space)."""
    for attr in ("vae_scale_factor", "spatial_compression"):
        value = getattr(prior, attr, None)
        if value:
            return int(value)
    return 1


def make_scheduler(prior: VideoPrior):
    """A diffusers DDIMScheduler on the prior's noise schedule, predicting epsilon."""
    from diffusers import DDIMScheduler

    config = getattr(getattr(prior, "scheduler", None), "config", None)
    if config is not None:
        return DDIMScheduler.from_config(config, prediction_type="epsilon")
    abar = prior.alphas_cumprod().detach().double().cpu()
    alphas = abar / torch.cat([abar.new_ones(1), abar[:-1]])
    # A zero-terminal-SNR schedule would give beta = 1 and abar = 0 at the last step (x0 = eps / 0).
    betas = (1 - alphas).clamp(1e-8, 0.9999)
    return DDIMScheduler(num_train_timesteps=int(abar.shape[0]), trained_betas=betas.float().tolist(),
                         prediction_type="epsilon", clip_sample=False, set_alpha_to_one=True, steps_offset=0,
                         timestep_spacing="trailing")


def _input_scale(prior: VideoPrior, t: int) -> float:
    """c_t = b_t / sqrt(1 - abar_t) (1 for the variance-preserving add_noise of the base class)."""
    if type(prior).add_noise is VideoPrior.add_noise:
        return 1.0
    b = float(prior.add_noise(torch.zeros(1), torch.ones(1), t))
    abar = float(prior.alphas_cumprod()[int(t)])
    return b / math.sqrt(max(1.0 - abar, 1e-12))


def stack_embeds(embeds: list[PromptEmbeds]) -> PromptEmbeds:
    """Several prompts' embeddings as one batch (cond, uncond and every tensor in `extra` concatenated)."""
    if not embeds:
        raise SamplingError("no prompts")
    if len(embeds) == 1:
        return embeds[0]
    for e in embeds:
        if not (isinstance(e.cond, torch.Tensor) and isinstance(e.uncond, torch.Tensor)):
            raise SamplingError("only tensor prompt embeddings can be batched")
    extra = {}
    for key, value in embeds[0].extra.items():
        if isinstance(value, torch.Tensor):
            extra[key] = torch.cat([e.extra[key] for e in embeds])
        else:
            extra[key] = value
    return PromptEmbeds(cond=torch.cat([e.cond for e in embeds]), uncond=torch.cat([e.uncond for e in embeds]),
                        prompt=embeds[0].prompt, negative_prompt=embeds[0].negative_prompt, extra=extra)


def _embeds_batch(embeds: PromptEmbeds) -> int:
    return int(embeds.cond.shape[0]) if isinstance(embeds.cond, torch.Tensor) and embeds.cond.dim() >= 2 else 1


def check_clip_options(prior: VideoPrior, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
    """Resolve 0 / None to the prior's own clip shape and check it; returns (frames, height, width)."""
    k = int(num_frames or prior.num_frames)
    h = int(height or prior.height)
    w = int(width or prior.width)
    name = getattr(prior, "name", "the prior")
    if not prior.frame_count_ok(k):
        tc = int(getattr(prior, "time_compression", 1))
        raise SamplingError(f"{name} cannot make {k} frames: its video VAE compresses time by {tc}, so a clip needs "
                            f"1 + {tc}*n frames (e.g. {1 + 4 * tc} or {1 + 6 * tc})" if tc > 1 else
                            f"{name} cannot make {k} frames")
    f = size_multiple(prior)
    if h < 1 or w < 1 or h % f or w % f:
        raise SamplingError(f"frame size {w}x{h} (width x height) must be a positive multiple of {f}, the "
                            f"downsampling factor of {name}'s VAE (its own size is {prior.width}x{prior.height})")
    return k, h, w


@torch.no_grad()
def sample_latents(prior: VideoPrior, embeds: PromptEmbeds, *, steps: int = 30, eta: float = 0.0,
                   guidance: float = 7.5, seed: int = 0, num_frames: int = 0, height: int = 0, width: int = 0,
                   callback: Callable | None = None, check_interrupt: Callable | None = None,
                   batch: int = 1) -> torch.Tensor:
    """DDIM latents [B, C, K', h, w] (float32, on the prior's device); see `sample_video`."""
    if steps < 1:
        raise SamplingError(f"steps must be at least 1, got {steps}")
    k, h, w = check_clip_options(prior, num_frames, height, width)
    n_prompts = _embeds_batch(embeds)
    if batch == 1 and n_prompts > 1:
        batch = n_prompts
    if n_prompts not in (1, batch):
        raise SamplingError(f"{n_prompts} prompts cannot make a batch of {batch} clips")

    scheduler = make_scheduler(prior)
    scheduler.set_timesteps(int(steps))
    timesteps = [int(t) for t in scheduler.timesteps]
    scales = {t: _input_scale(prior, t) for t in timesteps}

    shape = tuple(prior.latent_shape(k, h, w))
    shape = (int(batch),) + shape[1:]
    device = torch.device(getattr(prior, "device", "cpu") or "cpu")
    generator = torch.Generator().manual_seed(int(seed) & 0xFFFFFFFFFFFFFFFF)
    x = torch.randn(shape, generator=generator, dtype=torch.float32).to(device) * scheduler.init_noise_sigma

    total = len(timesteps)
    for i, t in enumerate(timesteps):
        if check_interrupt is not None:
            check_interrupt()
        model_in = x if scales[t] == 1.0 else x * scales[t]
        eps = prior.predict_noise(model_in, t, embeds, float(guidance)).to(device, torch.float32)
        # The eta noise comes from the CPU generator (diffusers moves it to the latents' device).
        out = scheduler.step(eps, t, x, eta=float(eta), generator=generator)
        x = out.prev_sample
        if not bool(torch.isfinite(x).all()):
            raise SamplingError(f"the prior's prediction became NaN or infinite at step {i + 1} of {total} (t={t}); "
                                "its weights or the sampling settings (guidance, eta) are broken")
        if callback is not None:
            callback(i + 1, total, out.pred_original_sample)
    if getattr(scheduler.config, "set_alpha_to_one", False):
        # The last step should land on abar = 1 (the clean estimate), but DDIMScheduler's previous timestep
        # t - N // steps is still >= 0 when steps does not divide N with "trailing" spacing.
        x = out.pred_original_sample
    return x


def _probe_frames(prior: VideoPrior, native: int) -> int:
    """A valid frame count near the prior's own (at most 8): temporal layers show in the probe."""
    for k in range(min(8, max(1, native)), 0, -1):
        if prior.frame_count_ok(k):
            return k
    return int(native)


@torch.no_grad()
def _memory_probe(prior: VideoPrior, embeds: PromptEmbeds) -> dict:
    """Peak tensor bytes of one guided noise prediction and one decode at two small clip sizes (cached).

    Measured, not modelled: whatever the architecture, its activations show in the two sizes."""
    cached = getattr(prior, "_vp_memory_probe", None)
    if cached is not None:
        return cached
    from .priors.diffusers_prior import LiveTensorMemory

    m = size_multiple(prior) * 8
    small = max(m, (min(prior.height, prior.width) // 4) // m * m)
    k = _probe_frames(prior, int(prior.num_frames))
    t = int(prior.alphas_cumprod().shape[0]) // 2
    result = {"frames": k, "pixels": [], "predict": [], "decode": []}
    for size in (small, 2 * small):
        x = torch.zeros(prior.latent_shape(k, size, size))
        with LiveTensorMemory() as mem:
            prior.predict_noise(x, t, embeds, 2.0)
        predict = mem.peak
        with LiveTensorMemory() as mem:
            prior.decode_latents(x[:1])
        result["pixels"].append(k * size * size)
        result["predict"].append(predict)
        result["decode"].append(mem.peak)
    try:
        prior._vp_memory_probe = result
    except AttributeError:
        pass
    return result


def estimate_sampling_bytes(prior: VideoPrior, embeds: PromptEmbeds, num_frames: int, height: int, width: int,
                            batch: int = 1) -> int:
    """Peak bytes of `sample_video` for this clip shape, extrapolated from `_memory_probe` (x 1.75).

    Peak = fixed part + slope x pixels (frames x height x width), the slope measured between the two
    probes; tests/test_api_hardening.py checks the estimate against measured peaks of two priors."""
    probe = _memory_probe(prior, embeds)

    def extrapolate(peaks, pixels):
        (p1, p2), (m1, m2) = probe["pixels"], peaks
        return m2 + max(0.0, (m2 - m1) / (p2 - p1)) * max(0.0, pixels - p2)

    k = int(num_frames)
    chunk = min(k, int(getattr(prior, "decode_chunk", k) or k))
    unet = extrapolate(probe["predict"], k * height * width) * batch
    decode = extrapolate(probe["decode"], chunk * height * width / probe["frames"])
    frames = 2 * batch * output_bytes(k, width, height)  # the decoded clip and its copy into an IMAGE
    return int(1.75 * (unet + decode) + frames)


@torch.no_grad()
def sample_video(prior: VideoPrior, embeds: PromptEmbeds, *, steps: int = 30, eta: float = 0.0,
                 guidance: float = 7.5, seed: int = 0, num_frames: int = 0, height: int = 0, width: int = 0,
                 callback: Callable | None = None, check_interrupt: Callable | None = None,
                 batch: int = 1) -> torch.Tensor:
    """Text-to-video DDIM sampling: frames [B*K, 3, H, W] float32 in 0..1 on the CPU (clip after clip).

    embeds: `prior.encode_prompt(prompt, negative)`, or `stack_embeds` of several prompts (one clip each).
    steps: DDIM steps; eta: 0 = deterministic DDIM, 1 = DDPM-like noise; guidance: classifier-free
    guidance scale (1 = conditional branch only); seed: the CPU generator's seed; num_frames, height,
    width: 0 = the prior's own clip shape; batch: clips to sample (= the number of prompts when
    embeds hold several).
    callback(step, total, x0_latents): after every step (step counts from 1), with the scheduler's
    current estimate of the clean latents (decode with `prior.decode_latents` for a preview).
    check_interrupt(): called before every step; raise from it to stop.
    """
    latents = sample_latents(prior, embeds, steps=steps, eta=eta, guidance=guidance, seed=seed,
                             num_frames=num_frames, height=height, width=width, callback=callback,
                             check_interrupt=check_interrupt, batch=batch)
    clips = [prior.decode_latents(latents[j:j + 1]).float().cpu() for j in range(latents.shape[0])]
    return torch.cat(clips)


__all__ = ["SamplingError", "check_clip_options", "estimate_sampling_bytes", "make_scheduler", "sample_latents", "sample_video",
           "size_multiple", "stack_embeds"]
