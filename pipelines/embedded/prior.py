"""The shipped embedded prior: `load_embedded_prior()` -> DiffusersVideoPrior (8 x 32 x 32, pixel space).

The folder `pipelines/assets/embedded_prior/` is written by `scripts/train_embedded_prior.py`
(see `pipelines.embedded.model` for the layout) and loaded by the same
`DiffusersVideoPrior.from_folder` as ModelScope. Before that, the weight files are checked here
so that a missing, truncated or corrupted file gives an error naming it and saying how to get
it back (the generic loader's advice, "download ModelScope", does not apply to this model).
"""
from __future__ import annotations

import os
from typing import Optional, Union

import torch

from ..priors.diffusers_prior import DiffusersVideoPrior, PriorFilesMissingError, PriorLoadError
from .model import WEIGHT_FILES

EMBEDDED_PRIOR_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets",
                                  "embedded_prior")
NAME = "embedded"


def _how_to_restore(folder: str) -> str:
    return (f"restore the folder from the VideoPriors repository (git checkout -- {folder}) or retrain it with "
            f"scripts/train_embedded_prior.py --out {folder}")


def check_embedded_files(folder: str) -> None:
    """Raise PriorFilesMissingError / PriorLoadError naming the first missing or damaged weights file."""
    from safetensors import safe_open

    if not os.path.isdir(folder):
        raise PriorFilesMissingError(f"embedded prior folder not found: {folder}; {_how_to_restore(folder)}")
    for rel in ("model_index.json",) + tuple(WEIGHT_FILES.values()):
        path = os.path.join(folder, rel)
        if not os.path.isfile(path):
            raise PriorFilesMissingError(f"embedded prior file missing: {path}; {_how_to_restore(folder)}")
        if not rel.endswith(".safetensors"):
            continue
        try:
            with safe_open(path, "pt") as f:
                keys = list(f.keys())
                if not keys:
                    raise ValueError("no tensors")
                for k in keys:  # reads every tensor: a file cut or overwritten inside the data fails here
                    t = f.get_tensor(k)
                    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                        raise ValueError(f"tensor {k} holds NaN/inf")
        except Exception as e:  # SafetensorError, OSError, ValueError
            raise PriorLoadError(f"embedded prior weights {path} are corrupted or truncated ({e}); "
                                 f"{_how_to_restore(folder)}") from e


def load_embedded_prior(folder: Optional[str] = None, device: Union[str, torch.device] = "cpu",
                        dtype: Union[str, torch.dtype] = "fp32", **kwargs) -> DiffusersVideoPrior:
    """The pack's default prior (trained here on procedural line-drawing clips, ~4 M parameters).

    kwargs go to DiffusersVideoPrior (num_frames, ...); the clip shape defaults to the training
    shape stored in model_index.json (8 frames of 32 x 32).
    """
    folder = os.path.abspath(folder or EMBEDDED_PRIOR_DIR)
    check_embedded_files(folder)
    prior = DiffusersVideoPrior.from_folder(folder, dtype=dtype, device=device, **kwargs)
    prior.name = NAME
    return prior


@torch.no_grad()
def sample_clips(prior, prompts, steps: int = 30, guidance: float = 6.0, seed: int = 0, batch: int = 16,
                 negative_prompt: str = ""):
    """DDIM (eta 0, `pipelines.sampling.sample_video` on the prior's schedule) clips for `prompts`:
    a list of [K, 3, H, W] tensors in 0..1, `batch` prompts per UNet call (x2 for guidance).
    Batch n (counting from 0) uses seed + n, so the first `batch` clips do not depend on later prompts."""
    from ..sampling import sample_video, stack_embeds

    out = []
    for n, i in enumerate(range(0, len(prompts), batch)):
        chunk = list(prompts[i:i + batch])
        embeds = stack_embeds([prior.encode_prompt(p, negative_prompt) for p in chunk])
        frames = sample_video(prior, embeds, steps=steps, eta=0.0, guidance=guidance, seed=seed + n,
                              batch=len(chunk))
        out += list(frames.view(len(chunk), -1, *frames.shape[1:]).unbind(0))
    return out


__all__ = ["load_embedded_prior", "check_embedded_files", "sample_clips", "EMBEDDED_PRIOR_DIR"]
