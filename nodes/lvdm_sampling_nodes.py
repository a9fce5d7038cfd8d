"""The official LVDM DDIM for core SamplerCustomAdvanced: a SAMPLER and the official DDIM timesteps as SIGMAS."""
from __future__ import annotations

import torch
from comfy_api.latest import io

import comfy.samplers

from ..pipelines.lvdm.config import VARIANTS
from ..pipelines.lvdm.ddim import sample_ddim_sigmas
from ..pipelines.lvdm.schedule import DDIMSchedule, TrainingSchedule, ddim_sigma_grid, denoised_scale_fn
from .common import check_inputs, ensure_inputs

CATEGORY = "VideoPriors/lvdm"
SPACINGS = ["auto", "uniform", "uniform_trailing"]


def lvdm_variant(model_or_base):
    """The config.Variant of an LVDM MODEL (ModelPatcher) or BaseModel, or None for any other model."""
    base = getattr(model_or_base, "model", model_or_base)
    variant = getattr(base, "variant", None)
    return variant if getattr(variant, "name", None) in VARIANTS else None


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
    def validate_inputs(cls, steps):
        return check_inputs(cls, {"steps": steps})

    @classmethod
    def execute(cls, model, steps, spacing, final):
        ensure_inputs(cls, steps=steps)
        variant = lvdm_variant(model)
        if variant is None:
            raise ValueError("VP_LVDMScheduler: the model is not an LVDM model (load it with VP_LoadLVDMCheckpoint)")
        train = TrainingSchedule.for_variant(variant)
        schedule = DDIMSchedule.make(train, steps, variant.timestep_spacing if spacing == "auto" else spacing)
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
                        "DynamiCrafter's text/image guidance) and guidance rescale from core RescaleCFG (0.7 for "
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
    def validate_inputs(cls, eta):
        return check_inputs(cls, {"eta": eta})

    @classmethod
    def execute(cls, eta, latent_scale):
        ensure_inputs(cls, eta=eta)
        sampler = comfy.samplers.KSAMPLER(_official_ddim_function(latent_scale), extra_options={"eta": float(eta)})
        return io.NodeOutput(sampler)


LVDM_SAMPLING_NODES = [LVDMScheduler, LVDMOfficialDDIM]
