"""The interface every text-to-video prior implements, and score distillation on it.

Every backend works in its own latent space and its own parameterisation, but speaks
noise-prediction (epsilon) to the outside: `add_noise` makes x_t from clean latents and
noise at an integer timestep t in [0, num_train_timesteps), `predict_noise` returns the
classifier-free-guided epsilon estimate. Eps-, v- and flow-prediction models convert
their raw output to epsilon inside the backend, so SDS and samplers are written once.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Optional

import torch


@dataclass
class PromptEmbeds:
    """Encoded prompt and negative prompt (backend-specific tensors or dicts)."""

    cond: Any
    uncond: Any
    prompt: str = ""
    negative_prompt: str = ""
    extra: dict = field(default_factory=dict)


class VideoPrior(ABC):
    """A text-to-video diffusion model seen as a prior over short clips.

    Frames go in and out as [K, 3, H, W] float tensors in 0..1 (K frames of one clip).
    Latents are whatever the backend uses (e.g. [1, C, K', h, w]).
    """

    name: str = "prior"
    num_train_timesteps: int = 1000
    #: frames the model wants per clip (its training length) and the frame size.
    num_frames: int = 16
    height: int = 256
    width: int = 256
    #: a video VAE that compresses time needs 1 + time_compression * k frames (Wan: 4).
    time_compression: int = 1

    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32

    # --- text --------------------------------------------------------------------------------
    @abstractmethod
    def encode_prompt(self, prompt: str, negative_prompt: str = "") -> PromptEmbeds:
        """Encode a prompt and its negative (empty string = the unconditional branch)."""

    # --- frames <-> latents --------------------------------------------------------------
    @abstractmethod
    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """[K, 3, H, W] in 0..1 -> latents, differentiable with respect to the frames."""

    @abstractmethod
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """latents -> [K, 3, H, W] in 0..1 (for previews and sampling; no gradient needed)."""

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple:
        """Shape of one clip's latents (e.g. (1, C, K, h, w)), where a sampler starts from noise.

        The default encodes a black clip once; backends that know their VAE override it.
        """
        with torch.no_grad():
            return tuple(self.encode_frames(torch.zeros(num_frames, 3, height, width, device=self.device)).shape)

    # --- noise schedule and denoiser ---------------------------------------------------------
    @abstractmethod
    def alphas_cumprod(self) -> torch.Tensor:
        """[num_train_timesteps] cumulative signal rate abar_t of the forward process (float32, CPU).

        A flow-matching backend reports the abar_t of an equivalent variance-preserving
        process so that SDS weights stay comparable.
        """

    def add_noise(self, latents: torch.Tensor, noise: torch.Tensor, t: int) -> torch.Tensor:
        """x_t for clean latents and noise at timestep t (variance preserving by default)."""
        abar = self.alphas_cumprod()[int(t)].to(latents.device, latents.dtype)
        return abar.sqrt() * latents + (1 - abar).sqrt() * noise

    @abstractmethod
    def predict_noise(self, noisy: torch.Tensor, t: int, embeds: PromptEmbeds, guidance_scale: float) -> torch.Tensor:
        """Classifier-free-guided epsilon: e_u + g * (e_c - e_u), same shape as `noisy`."""

    def sds_weight(self, t: int) -> float:
        """w(t) = 1 - abar_t, the weighting of DreamFusion / LiveSketch."""
        return float(1.0 - self.alphas_cumprod()[int(t)])

    def frame_count_ok(self, k: int) -> bool:
        return k >= 1 and (k - 1) % self.time_compression == 0

    def to(self, device=None, dtype: Optional[torch.dtype] = None) -> "VideoPrior":
        """Move the models (backends override); returns self."""
        return self


def sds_gradient(prior: VideoPrior, latents: torch.Tensor, embeds: PromptEmbeds, guidance_scale: float, t: int,
                 noise: torch.Tensor) -> torch.Tensor:
    """The score-distillation gradient on the latents: w(t) * (eps_hat(x_t, t, y) - eps).

    No gradient flows through the denoiser; the caller injects this gradient on the latents
    (e.g. `latents.backward(gradient=grad)`) so that it reaches the VAE encoder, the
    rasterizer and the motion model.
    """
    with torch.no_grad():
        noisy = prior.add_noise(latents.detach(), noise, t)
        eps_hat = prior.predict_noise(noisy, t, embeds, guidance_scale)
        grad = prior.sds_weight(t) * (eps_hat.float() - noise.float())
    return torch.nan_to_num(grad).to(latents.dtype)
