"""The official LVDM DDIM for core SamplerCustomAdvanced: a SAMPLER and the official DDIM timesteps as SIGMAS."""
from __future__ import annotations

import comfy.model_management as mm
import comfy.samplers
import comfy.utils
import latent_preview
import torch
from comfy_api.latest import io

from ..pipelines.lvdm.comfy_model import lvdm_variant
from ..pipelines.lvdm.ddim import sample_ddim_sigmas
from ..pipelines.lvdm.schedule import (
    DDIMSchedule,
    TrainingSchedule,
    check_official_steps,
    ddim_sigma_grid,
    denoised_scale_fn,
)
from .common import check_inputs, ensure_inputs

CATEGORY = "VideoPriors/lvdm"
SPACINGS = ["auto", "uniform", "uniform_trailing"]


class LVDMScheduler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_LVDMScheduler",
            display_name="LVDM Official DDIM Schedule",
            category=CATEGORY,
            description="The official DDIM timesteps of VideoCrafter / DynamiCrafter as SIGMAS for "
                        "SamplerCustomAdvanced: 'uniform' (1, 21, ..., 981 for 50 steps; VideoCrafter, "
                        "DynamiCrafter 256) or 'uniform_trailing' (19, ..., 999; DynamiCrafter 512/1024). auto = the "
                        "official choice for the model. Note the official 'uniform' quirk: some step counts give "
                        "one step more (30 -> 31).",
            inputs=[
                io.Model.Input("model"),
                io.Int.Input("steps", default=50, min=1, max=1000),
                io.Combo.Input("spacing", options=SPACINGS, default="auto"),
                io.Combo.Input("final", options=["zero", "official"], default="zero",
                               tooltip="zero: the last step returns the clean estimate (ComfyUI's convention); "
                                       "official: it stops at timestep 0 as the official sampler (0.04 % apart)."),
            ],
            outputs=[io.Sigmas.Output(display_name="SIGMAS")],
        )

    @classmethod
    def validate_inputs(cls, spacing, final, input_types=None):
        return check_inputs(cls, {"spacing": spacing, "final": final}, input_types)

    @classmethod
    def execute(cls, model, steps, spacing, final):
        ensure_inputs(cls, steps=steps)
        variant = lvdm_variant(model)
        if variant is None:
            raise ValueError("VP_LVDMScheduler: the model is not an LVDM model (load it with VP_LoadLVDMCheckpoint)")
        train = TrainingSchedule.for_variant(variant)
        chosen = variant.timestep_spacing if spacing == "auto" else spacing
        try:
            check_official_steps(steps, chosen, train.num_timesteps, variant.title)
        except ValueError as e:
            raise ValueError(f"VP_LVDMScheduler: {e}") from None
        schedule = DDIMSchedule.make(train, steps, chosen)
        return io.NodeOutput(ddim_sigma_grid(schedule, final=final))


def _official_ddim_function(latent_scale: str):
    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, s_noise=1.0,
               noise_sampler=None):
        base = model.inner_model.inner_model
        variant = lvdm_variant(base)
        scale = None
        if latent_scale == "auto" and variant is not None:
            scale = denoised_scale_fn(TrainingSchedule.for_variant(variant))
        return sample_ddim_sigmas(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable,
                                  eta=eta, s_noise=s_noise, noise_sampler=noise_sampler, denoised_scale=scale)
    return sample


class PassProgress:
    """One ComfyUI progress bar over several sampling passes of `steps` steps each (VP_SampleVideoWindows' windows,
    VP_DynamiCrafterKeyframes' segments), with a latent preview and an interruption check at every step."""

    def __init__(self, model, steps: int, passes: int, node_id=None):
        self.steps, self.total = steps, steps * passes
        self.pbar = comfy.utils.ProgressBar(self.total, node_id=node_id)
        self.previewer = latent_preview.get_previewer(model.load_device, model.model.latent_format)

    def callback(self, index: int):
        """The sampler callback of pass `index` (0-based)."""
        done = index * self.steps

        def step(i, x0, x, total_steps):
            mm.throw_exception_if_processing_interrupted()
            preview = self.previewer.decode_latent_to_preview_image("JPEG", x0) if self.previewer else None
            self.pbar.update_absolute(done + i + 1, self.total, preview)
        return step


def starts_from_noise(latent_image, denoise_mask=None) -> bool:
    """True when every frame to be generated is empty: no latent, or zeros wherever the mask lets the sampler
    change it (frames the mask keeps are replaced by the known latent at every step anyway)."""
    if latent_image is None:
        return True
    region = latent_image if denoise_mask is None else latent_image * (denoise_mask > 0)
    return not bool(torch.any(region != 0))


class OfficialDDIMSampler(comfy.samplers.KSAMPLER):
    """KSAMPLER that starts from pure noise whenever the latent is empty, as the official DDIM does even when its
    first timestep is below the last training step ('uniform' spacing starts at 981 for 50 steps): core scales the
    noise by sigma instead of sqrt(1 + sigma^2) unless the first sigma is the model's largest. With a denoise mask
    (e.g. VP_SampleVideoWindows keeping the previous window's frames) only the frames to generate must be empty:
    the kept ones are replaced by the known latent at every step anyway."""

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        self._from_noise = starts_from_noise(latent_image, denoise_mask)
        return super().sample(model_wrap, sigmas, extra_args, callback, noise, latent_image, denoise_mask,
                              disable_pbar)

    def max_denoise(self, model_wrap, sigmas):
        return getattr(self, "_from_noise", False) or super().max_denoise(model_wrap, sigmas)


class LVDMOfficialDDIM(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_LVDMOfficialDDIM",
            display_name="LVDM Official DDIM Sampler",
            category=CATEGORY,
            description="The official VideoCrafter / DynamiCrafter DDIM as a SAMPLER for SamplerCustomAdvanced: "
                        "DDIM with eta (official inference uses 1.0) and the official latent-scale correction of "
                        "the clean estimate (DynamiCrafter 512/1024 dynamic rescale, VideoCrafter2 scale_arr). Pair "
                        "it with VP_LVDMScheduler; CFG comes from the guider (CFGGuider, DualCFGGuider for "
                        "DynamiCrafter's text/image guidance) and guidance rescale from VP_LVDMRescaleCFG (0.7 for "
                        "DynamiCrafter 512/1024). Works with other models as a plain DDIM.",
            inputs=[
                io.Float.Input("eta", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="0 = deterministic DDIM, 1 = the official default."),
                io.Combo.Input("latent_scale", options=["auto", "off"], default="auto",
                               tooltip="auto: the model's official scale_arr correction (none for models "
                                       "without one)."),
            ],
            outputs=[io.Sampler.Output(display_name="SAMPLER")],
        )

    @classmethod
    def validate_inputs(cls, eta, latent_scale, input_types=None):
        return check_inputs(cls, {"eta": eta, "latent_scale": latent_scale}, input_types)

    @classmethod
    def execute(cls, eta, latent_scale):
        ensure_inputs(cls, eta=eta)
        sampler = OfficialDDIMSampler(_official_ddim_function(latent_scale), extra_options={"eta": float(eta)})
        return io.NodeOutput(sampler)


class LVDMRescaleCFG(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_LVDMRescaleCFG",
            display_name="LVDM Guidance Rescale (per video)",
            category=CATEGORY,
            description="The official guidance rescale of DynamiCrafter 512/1024 (0.7; Lin et al. 2023): rescales the "
                        "guided v-prediction to the conditional one's standard deviation over the whole video. Core "
                        "RescaleCFG does the same per latent row, i.e. per frame when the frames are in the batch "
                        "dimension, which is not what the models were run with. For v-prediction models.",
            inputs=[
                io.Model.Input("model"),
                io.Float.Input("multiplier", default=0.7, min=0.0, max=1.0, step=0.01),
                io.Int.Input("frames", default=0, min=0, max=4096,
                             tooltip="Frames per video; 0 = every latent row of a sampling call is one video "
                                     "(right for batch size 1)."),
            ],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def validate_inputs(cls, multiplier, input_types=None):
        return check_inputs(cls, {"multiplier": multiplier}, input_types)

    @classmethod
    def execute(cls, model, multiplier, frames):
        from ..pipelines.lvdm.comfy_model import video_rescale_cfg

        ensure_inputs(cls, multiplier=multiplier, frames=frames)
        patched = model.clone()
        patched.set_model_sampler_post_cfg_function(video_rescale_cfg(float(multiplier), frames or None))
        return io.NodeOutput(patched)


LVDM_SAMPLING_NODES = [LVDMScheduler, LVDMOfficialDDIM, LVDMRescaleCFG]
