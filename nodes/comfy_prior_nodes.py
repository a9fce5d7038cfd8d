"""A video prior made of ComfyUI's own MODEL and VAE (Wan 2.1, LTX-Video, the LVDM family...): Backend B."""
from __future__ import annotations

from comfy_api.latest import io

from .prior_loading import ManagedPrior

VideoPrior = io.Custom("VP_VIDEO_PRIOR")


class VideoPriorFromModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_VideoPriorFromModel",
            display_name="Video Prior from Model (ComfyUI)",
            category="VideoPriors/priors",
            description="Uses a video diffusion model loaded by ComfyUI's loaders (e.g. Wan 2.1 T2V 1.3B with "
                        "UNETLoader + VAELoader) as the prior for score distillation. Its text comes as "
                        "CONDITIONING: connect CLIPTextEncode outputs to VP_SDSGuidance's positive and negative. "
                        "Works with eps-, v- and flow-prediction models through the model's own sampling settings. "
                        "Video VAEs that compress time need 1 + 4n frames for Wan (5, 9, ..., 25), "
                        "1 + 8n for LTX-Video. Also takes the MODEL + VAE of VP_LoadLVDMCheckpoint (VideoCrafter2, "
                        "DynamiCrafter; frames in the batch, any count): DynamiCrafter's conditioning goes through "
                        "VP_DynamiCrafterConditioning, and VP_SampleVideo samples it with the official DDIM.",
            inputs=[
                io.Model.Input("model", tooltip="A diffusion model (MODEL), e.g. from UNETLoader."),
                io.Vae.Input("vae", tooltip="The VAE that belongs to the model (e.g. wan_2.1_vae for Wan 2.1)."),
            ],
            outputs=[VideoPrior.Output(display_name="prior")],
        )

    @classmethod
    def execute(cls, model, vae):
        from ..pipelines.priors.comfy_prior import ComfyVideoPrior

        try:
            prior = ComfyVideoPrior(model, vae)
        except ValueError as e:
            raise ValueError(f"VP_VideoPriorFromModel: {e}") from None
        return io.NodeOutput(ManagedPrior(prior, prior.patchers, label=prior.name))


COMFY_PRIOR_NODES = [VideoPriorFromModel]
