"""The official LVDM DDIM sampler (VideoCrafter / DynamiCrafter `DDIMSampler.sample`), pure PyTorch.

Two entry points:

`ddim_sample(model_fn, x_T, schedule, cond, ...)` reproduces `DDIMSampler.sample` of DynamiCrafter (ddim.py and
ddim_multiplecond.py) and VideoCrafter (ddim.py) on the official discrete timesteps:

* `model_fn(x, t, cond) -> raw model output` (eps or v, per `schedule.train.parameterization`), x [B,C,T,H,W],
  t int64 [B] (the DDPM timestep), `cond` an opaque object the caller supplies per branch (e.g. a dict with the
  context, the concat latent and fs). The sampler makes one call per branch, as the official code does.
* Classifier-free guidance: `uncond` and `cfg_scale` (no guidance when `uncond is None` or `cfg_scale == 1`);
  `guidance_rescale` (> 0: `rescale_noise_cfg` against the conditional output, unbiased std over all non-batch
  dims). Multi-condition CFG (DynamiCrafter ddim_multiplecond): pass `cond_img_only` (image condition, empty text)
  and `cfg_img` (default `cfg_scale`): out = u + cfg_img (u_img - u) + cfg_scale (c - u_img); three calls.
* v-parameterization: eps and pred_x0 from v use the full-schedule buffers at t (sqrt(alphas_cumprod)[t] ...).
* Latent scale (schedule.train.scale_kind): "dynamicrafter" multiplies pred_x0 by scale_prev / scale (the last
  step's ratio is 1); "videocrafter" divides pred_x0 by scale and updates with sqrt(a_prev) * scale_prev * pred_x0
  (scale_prev of the last step is scale_arr[0] = 1).
* eta lives in the schedule (`DDIMSchedule.make(train, steps, spacing, eta)`), as the official `sample` passes it to
  `make_schedule`. Noise: `noise_fn(step, x) -> tensor shaped like x` (step 0 = the first, noisiest step), default
  `torch.randn(x.shape, generator=generator)`; drawn at every step even when eta = 0, like the official
  `noise_like`, so a seeded generator gives the official random stream (x_T first, then one draw per step).
* `callback(step, x, pred_x0)` after every step (x = the new latent, pred_x0 as the official step returns it);
  `interrupt()` before every step: it may raise (e.g. ComfyUI's interrupt exception), and a truthy return raises
  `SamplingInterrupted`.
* Returns the final latent (x after the last step). Arithmetic in x's dtype with float32 per-step coefficients
  as the official code holds them.

Deliberate difference: `sqrt(1 - a_prev - sigma_t^2)` is clamped at 0 (the official float32 expression is
-6e-8 at the first zero-SNR step for some step counts, e.g. DynamiCrafter 512 with 25 trailing steps, eta 1,
and the official sample becomes NaN).

Not reproduced (unused by the official inference scripts): mask/x0 blending, quantize_denoised, score_corrector,
temperature, noise_dropout, the `timesteps` subset argument and `ddim_use_original_steps`.

`sample_ddim_sigmas(denoise_fn, x, sigmas, ...)` is the same DDIM update (with eta) in the k-diffusion convention
ComfyUI's samplers use, for a model wrapper that returns the denoised x0 (see its docstring).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .schedule import DDIMSchedule


class SamplingInterrupted(Exception):
    """The interrupt hook asked the sampler to stop."""


def rescale_noise_cfg(guided: torch.Tensor, cond_out: torch.Tensor, guidance_rescale: float) -> torch.Tensor:
    """Lin et al. 2023 sec. 3.4: match the guided output's std to the conditional one's, mixed by guidance_rescale.

    std is torch's unbiased std over every non-batch dimension (as the official `rescale_noise_cfg`).
    """
    dims = list(range(1, cond_out.ndim))
    std_cond = cond_out.std(dim=dims, keepdim=True)
    std_guided = guided.std(dim=dims, keepdim=True)
    rescaled = guided * (std_cond / std_guided)
    return guidance_rescale * rescaled + (1.0 - guidance_rescale) * guided


def guided_output(model_fn: Callable, x: torch.Tensor, t: torch.Tensor, cond: Any, uncond: Any = None,
                  cfg_scale: float = 1.0, guidance_rescale: float = 0.0, cond_img_only: Any = None,
                  cfg_img: float | None = None) -> torch.Tensor:
    """The official CFG combination of the raw model outputs (plain or multi-condition), then the optional rescale."""
    if uncond is None or cfg_scale == 1.0:
        return model_fn(x, t, cond)
    out_c = model_fn(x, t, cond)
    out_u = model_fn(x, t, uncond)
    if cond_img_only is None:
        out = out_u + cfg_scale * (out_c - out_u)
    else:
        out_ui = model_fn(x, t, cond_img_only)
        s_img = cfg_scale if cfg_img is None else cfg_img
        out = out_u + s_img * (out_ui - out_u) + cfg_scale * (out_c - out_ui)
    if guidance_rescale > 0.0:
        out = rescale_noise_cfg(out, out_c, guidance_rescale)
    return out


def _scalar(v, like: torch.Tensor) -> torch.Tensor:
    # the official step holds each coefficient as a float32 tensor (torch.full with the default dtype)
    return torch.as_tensor(float(v), dtype=torch.float32, device=like.device).to(like.dtype)


def ddim_step(x: torch.Tensor, model_out: torch.Tensor, schedule: DDIMSchedule, index: int,
              noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One official `p_sample_ddim` update at ascending index `index` -> (x_prev, pred_x0)."""
    train = schedule.train
    t = int(schedule.timesteps[index])
    a_t = _scalar(schedule.alphas[index], x)
    a_prev = _scalar(schedule.alphas_prev[index], x)
    sigma_t = _scalar(schedule.sigmas[index], x)
    sqrt_one_minus_at = _scalar(schedule.sqrt_one_minus_alphas[index], x)

    if train.parameterization == "v":
        sqrt_ac = train.sqrt_alphas_cumprod[t].to(device=x.device, dtype=x.dtype)
        sqrt_1m = train.sqrt_one_minus_alphas_cumprod[t].to(device=x.device, dtype=x.dtype)
        e_t = sqrt_ac * model_out + sqrt_1m * x
        pred_x0 = sqrt_ac * x - sqrt_1m * model_out
    else:
        e_t = model_out
        pred_x0 = (x - sqrt_one_minus_at * e_t) / a_t.sqrt()

    x0_coef = a_prev.sqrt()
    if train.scale_kind == "dynamicrafter":
        pred_x0 = pred_x0 * (_scalar(schedule.scale_prev[index], x) / _scalar(schedule.scale[index], x))
    elif train.scale_kind == "videocrafter":
        pred_x0 = pred_x0 / _scalar(schedule.scale[index], x)
        x0_coef = x0_coef * _scalar(schedule.scale_prev[index], x)

    # At the first step of a zero-terminal-SNR schedule with eta = 1, sigma_t^2 == 1 - a_prev exactly in theory;
    # in float32 the difference is -6e-8 for some step counts (e.g. 25 or 37 uniform_trailing steps), where the
    # official sqrt returns NaN and the whole sample is lost. Clamping at 0 changes nothing elsewhere.
    dir_xt = (1.0 - a_prev - sigma_t ** 2).clamp(min=0).sqrt() * e_t
    x_prev = x0_coef * pred_x0 + dir_xt
    if noise is not None:
        x_prev = x_prev + sigma_t * noise
    return x_prev, pred_x0


def ddim_sample(model_fn: Callable, x_T: torch.Tensor | None, schedule: DDIMSchedule, cond: Any,
                uncond: Any = None, cfg_scale: float = 1.0, guidance_rescale: float = 0.0,
                cond_img_only: Any = None, cfg_img: float | None = None,
                noise_fn: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
                generator: torch.Generator | None = None, shape: tuple | None = None,
                callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
                interrupt: Callable[[], Any] | None = None) -> torch.Tensor:
    """Run the official DDIM loop from x_T (or randn(shape, generator) when x_T is None); see the module docstring."""
    if x_T is None:
        if shape is None:
            raise ValueError("give x_T or shape")
        x_T = torch.randn(shape, generator=generator)
    if noise_fn is None:
        def noise_fn(step, x):
            return torch.randn(x.shape, generator=generator, dtype=x.dtype,
                               device=generator.device if generator is not None else x.device).to(x.device)
    x = x_T
    n = len(schedule)
    for step in range(n):
        if interrupt is not None and interrupt():
            raise SamplingInterrupted(f"DDIM interrupted before step {step + 1}/{n}")
        index = n - 1 - step
        t = torch.full((x.shape[0],), int(schedule.timesteps[index]), dtype=torch.long, device=x.device)
        out = guided_output(model_fn, x, t, cond, uncond, cfg_scale, guidance_rescale, cond_img_only, cfg_img)
        noise = noise_fn(step, x)
        x, pred_x0 = ddim_step(x, out.to(x.dtype), schedule, index, noise)
        if callback is not None:
            callback(step, x, pred_x0)
    return x


def sample_ddim_sigmas(denoise_fn: Callable, x: torch.Tensor, sigmas: torch.Tensor, extra_args: dict | None = None,
                       callback: Callable[[dict], None] | None = None, disable: bool | None = None,
                       eta: float = 1.0, s_noise: float = 1.0, noise_sampler: Callable | None = None,
                       denoised_scale: Callable | None = None) -> torch.Tensor:
    """DDIM with eta on a k-diffusion sigma grid (ComfyUI's SAMPLER convention), no ComfyUI import.

    Convention (ComfyUI / k-diffusion for eps and v models): x = x0 + sigma * eps with sigma = sqrt((1 - a) / a),
    i.e. the DDPM latent divided by sqrt(alphas_cumprod); `denoise_fn(x, sigma * ones(B), **extra_args)` returns
    the denoised x0. The DDPM DDIM update
        x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev - s^2) eps + s z,  s = eta sqrt((1-a_prev)/(1-a) (1 - a/a_prev))
    divided by sqrt(a_prev) is x_prev = x0 + sigma_down eps + sigma_up z with
        sigma_up = eta sigma_next sqrt(sigma^2 - sigma_next^2) / sigma,  sigma_down = sqrt(sigma_next^2 - sigma_up^2)
    (sigma_up is capped at sigma_next for eta > 1, where the DDPM form has no real solution). A last sigma of 0
    returns x0. `noise_sampler(sigma, sigma_next)` gives z (default: torch.randn seeded with extra_args['seed'],
    like ComfyUI's default noise sampler). `denoised_scale(sigma, sigma_next)` (optional) multiplies x0 after eps is
    taken from the unscaled x0: the LVDM latent-scale correction (DynamiCrafter scale[t_prev] / scale[t],
    VideoCrafter scale_prev / scale). `callback` gets ComfyUI's dict {'x', 'i', 'sigma', 'sigma_hat', 'denoised'}
    before each update; `disable` is accepted for the signature (no progress bar here: ComfyUI drives its own
    through the callback).
    """
    extra_args = {} if extra_args is None else extra_args
    if noise_sampler is None:
        seed = extra_args.get("seed", None)
        gen = None
        if seed is not None:
            gen = torch.Generator(device=x.device)
            gen.manual_seed(seed)

        def noise_sampler(sigma, sigma_next):
            return torch.randn(x.size(), dtype=x.dtype, layout=x.layout, device=x.device, generator=gen)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoise_fn(x, sigma * s_in, **extra_args)
        eps = (x - denoised) / sigma
        if denoised_scale is not None:
            denoised = denoised * denoised_scale(sigma, sigma_next)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})
        if float(sigma_next) == 0.0:
            x = denoised
            continue
        s, sn = float(sigma), float(sigma_next)
        sigma_up = 0.0
        if eta > 0.0:
            sigma_up = min(sn, eta * sn * max(s * s - sn * sn, 0.0) ** 0.5 / s)
        sigma_down = max(sn * sn - sigma_up * sigma_up, 0.0) ** 0.5
        x = denoised + sigma_down * eps
        if sigma_up > 0.0:
            x = x + noise_sampler(sigma, sigma_next) * (s_noise * sigma_up)
    return x
