"""A tiny analytic VideoPrior for tests: it believes the clean clip is a fixed target.

Latents are the frames pooled 8x and mapped to [-1, 1] ([1, 3, K, h, w]); the denoiser
returns the epsilon that is exact if x0 were the target, so SDS pulls the latents to the
target: grad = w(t) * sqrt(abar)/sqrt(1-abar) * (x0 - target).
"""
import torch
import torch.nn.functional as F

from pipelines.priors.base import PromptEmbeds, VideoPrior


class TargetPrior(VideoPrior):
    name = "target"

    def __init__(self, target_frames: torch.Tensor, pool: int = 8):
        self.pool = pool
        self.num_frames = target_frames.shape[0]
        self.height, self.width = target_frames.shape[-2:]
        self.target = self.encode_frames(target_frames).detach()
        betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2
        self._abar = torch.cumprod(1 - betas, 0)
        self.calls = 0

    def encode_prompt(self, prompt, negative_prompt=""):
        return PromptEmbeds(cond=prompt, uncond=negative_prompt, prompt=prompt, negative_prompt=negative_prompt)

    def encode_frames(self, frames):
        x = F.avg_pool2d(frames, self.pool) * 2 - 1  # [K, 3, h, w]
        return x.permute(1, 0, 2, 3).unsqueeze(0)

    def decode_latents(self, latents):
        x = (latents[0].permute(1, 0, 2, 3) + 1) / 2
        return F.interpolate(x, scale_factor=self.pool, mode="nearest").clamp(0, 1)

    def alphas_cumprod(self):
        return self._abar

    def predict_noise(self, noisy, t, embeds, guidance_scale):
        self.calls += 1
        abar = self._abar[int(t)]
        eps_cond = (noisy - abar.sqrt() * self.target) / (1 - abar).sqrt()
        eps_uncond = torch.zeros_like(noisy)
        return eps_uncond + guidance_scale * (eps_cond - eps_uncond)
