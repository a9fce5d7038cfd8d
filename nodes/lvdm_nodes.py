"""The LVDM family (VideoCrafter1/2, DynamiCrafter, Make-Your-Video) as native ComfyUI models: loader, CLIP context
encoder, DynamiCrafter conditioning. Sampling is core KSampler / SamplerCustomAdvanced (plus the official DDIM as a
SAMPLER, nodes/lvdm_sampling_nodes.py)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import comfy.model_management as mm
import comfy.model_patcher
import folder_paths
import node_helpers
import torch
from comfy_api.latest import io

from ..pipelines.lvdm.checkpoint import DTYPES as WEIGHT_DTYPES
from ..pipelines.lvdm.clip_context import (
    PREPROCESS_MODES,
    fit_frames,
    grey_like,
    official_clip_pixels,
)
from ..pipelines.lvdm.config import VARIANTS, UnknownCheckpointError
from .common import check_inputs, display_path, ensure_inputs
from .prior_loading import DTYPES

CATEGORY = "VideoPriors/lvdm"
FOLDERS = ("checkpoints", "diffusion_models")
FIT_MODES = ["center crop", "stretch", "pad"]
Resampler = io.Custom("VP_LVDM_RESAMPLER")
ImageContext = io.Custom("VP_IMAGE_CONTEXT")
SIZE_MULTIPLE = 64  # the UNet halves the 1/8 latent three times: frames must be multiples of 64 pixels


def where_to_get() -> str:
    lines = [f"{v.title}: {v.url}" for v in VARIANTS.values() if v.url]
    return ("Put an official LVDM model.ckpt (or a .safetensors made from it with scripts/convert_lvdm_checkpoint.py) "
            "into ComfyUI/models/checkpoints/ (or models/diffusion_models/). Files: " + "; ".join(lines))


def list_checkpoints() -> list[str]:
    names = []
    for folder in FOLDERS:
        try:
            names += [n for n in folder_paths.get_filename_list(folder) if n not in names]
        except KeyError:
            continue
    return names


def resolve_checkpoint(name: str) -> str:
    for folder in FOLDERS:
        try:
            path = folder_paths.get_full_path(folder, name)
        except KeyError:
            path = None
        if path and os.path.isfile(path):
            return path
    raise FileNotFoundError(f"VP_LoadLVDMCheckpoint: {name!r} is not in models/checkpoints or "
                            f"models/diffusion_models. " + where_to_get())


@dataclass
class ResamplerHandle:
    """VP_LVDM_RESAMPLER: DynamiCrafter's image_proj_model under ComfyUI's model management."""

    module: torch.nn.Module
    patcher: object
    variant: str

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        mm.load_models_gpu([self.patcher])
        device = self.patcher.load_device
        dtype = next(self.module.parameters()).dtype
        return self.module(tokens.to(device=device, dtype=dtype)).float()


class LoadLVDMCheckpoint(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_LoadLVDMCheckpoint",
            display_name="Load LVDM Checkpoint (VideoCrafter / DynamiCrafter)",
            category=CATEGORY,
            description="Loads an official VideoCrafter1/2, DynamiCrafter (256/512/1024/interpolation) or "
                        "Make-Your-Video model.ckpt, unconverted, as core MODEL, CLIP (OpenCLIP ViT-H text, SD 2.x "
                        "layout), VAE (SD KL-f8) and, for DynamiCrafter, CLIP_VISION and the image resampler. The "
                        "variant is detected from the file's keys; DynamiCrafter 512, 1024 and 512-interpolation "
                        "share one layout: pick yours in 'variant' (auto = 512, or 1024 when the file's own "
                        "schedule says so). Outputs absent from the file are empty: use CLIPLoader (an SD 2.x text "
                        "encoder) or CLIPVisionLoader (clip_vision_h.safetensors) instead.",
            inputs=[
                io.Combo.Input("ckpt_name", options=list_checkpoints(),
                               tooltip="A file in models/checkpoints or models/diffusion_models."),
                io.Combo.Input("variant", options=["auto", *VARIANTS], default="auto",
                               tooltip="auto = detected from the keys. Only variants with the file's key layout "
                                       "are accepted."),
                io.Combo.Input("weight_dtype", options=DTYPES, default="auto",
                               tooltip="UNet weight precision; auto = ComfyUI's choice for the device."),
            ],
            outputs=[io.Model.Output(display_name="MODEL"), io.Clip.Output(display_name="CLIP"),
                     io.Vae.Output(display_name="VAE"), io.ClipVision.Output(display_name="CLIP_VISION"),
                     Resampler.Output(display_name="resampler")],
        )

    @classmethod
    def validate_inputs(cls, ckpt_name, variant, weight_dtype, input_types=None):
        # Combos only (check_inputs: one of the options listed now, no null); INTs keep ComfyUI's own checks.
        return check_inputs(cls, {"ckpt_name": ckpt_name, "variant": variant, "weight_dtype": weight_dtype},
                            input_types)

    @classmethod
    def execute(cls, ckpt_name, variant, weight_dtype):
        from ..pipelines.lvdm.checkpoint import CheckpointError
        from ..pipelines.lvdm.comfy_model import LVDMError, load_lvdm_checkpoint

        path = resolve_checkpoint(ckpt_name)
        try:
            model, clip, vae, clip_vision, resampler, chosen = load_lvdm_checkpoint(
                path, variant=variant, dtype=WEIGHT_DTYPES.get(weight_dtype),  # auto -> None: ComfyUI's choice
                embedding_directory=folder_paths.get_folder_paths("embeddings"))
        except (UnknownCheckpointError, CheckpointError, LVDMError, ValueError) as e:
            raise ValueError(f"VP_LoadLVDMCheckpoint: {display_path(str(e))}") from None
        handle = None
        if resampler is not None:
            patcher = comfy.model_patcher.ModelPatcher(resampler, load_device=mm.get_torch_device(),
                                                       offload_device=mm.unet_offload_device())
            handle = ResamplerHandle(resampler, patcher, chosen.name)
        return io.NodeOutput(model, clip, vae, clip_vision, handle)


def _empty_latent(batch_size: int, frames: int, width: int, height: int) -> dict:
    """The LATENT of `batch_size` videos of `frames` frames: SD latents with the frames in the batch dimension."""
    return {"samples": torch.zeros([batch_size * frames, 4, height // 8, width // 8], device=mm.intermediate_device())}


def _to_bchw(image: torch.Tensor) -> torch.Tensor:
    return image[..., :3].movedim(-1, 1).float()


def _check_size(node: str, width: int, height: int) -> None:
    if width % SIZE_MULTIPLE or height % SIZE_MULTIPLE:
        raise ValueError(f"{node}: width and height must be multiples of {SIZE_MULTIPLE} (the LVDM UNet halves the "
                         f"1/8 latent three times); got {width}x{height}, e.g. use "
                         f"{max(SIZE_MULTIPLE, round(width / SIZE_MULTIPLE) * SIZE_MULTIPLE)}x"
                         f"{max(SIZE_MULTIPLE, round(height / SIZE_MULTIPLE) * SIZE_MULTIPLE)}")


def image_context_tokens(node: str, clip_vision, resampler, images: torch.Tensor, preprocess: str, width: int,
                         height: int, fit: str) -> torch.Tensor:
    """DynamiCrafter image tokens of every image of an IMAGE batch, then of the mid-grey frame the unconditional
    branch uses (as the official code): [N + 1, 16, C]. Images are fitted to width x height first (0 = as they are),
    as the conditioning fits its start frame."""
    if resampler is None:
        raise ValueError(f"{node}: no resampler: the checkpoint has no image_proj_model (only DynamiCrafter files "
                         "have one)")
    if clip_vision is None:
        raise ValueError(f"{node}: no CLIP_VISION: this checkpoint carries no image tower; load "
                         "clip_vision_h.safetensors with CLIPVisionLoader (models/clip_vision)")
    frames = _to_bchw(images)
    if width and height:
        frames = fit_frames(frames, height, width, fit)
    signed = frames * 2 - 1  # the model's [-1, 1] pixel space
    both = torch.cat([signed, grey_like(signed[:1])])
    if preprocess == "official":
        mm.load_model_gpu(clip_vision.patcher)
        pixels = official_clip_pixels(both).to(clip_vision.load_device)
        hidden = clip_vision.model(pixel_values=pixels, intermediate_output=-2)[0]
    else:
        out = clip_vision.encode_image(((both + 1) / 2).movedim(1, -1), crop=preprocess == "core center crop")
        hidden = out["last_hidden_state"]
    return resampler(hidden.float()).to(mm.intermediate_device())


def image_context(tokens: torch.Tensor, index: int, preprocess: str) -> dict:
    """VP_IMAGE_CONTEXT of image `index` of `image_context_tokens` (the grey frame's tokens are the last row)."""
    return {"cond": tokens[index:index + 1], "uncond": tokens[-1:], "preprocess": preprocess}


def encode_frames(vae, images: torch.Tensor, width: int, height: int, fit: str) -> torch.Tensor:
    """IMAGE frames fitted to width x height -> their raw VAE latents [N, 4, h/8, w/8] (one encode call)."""
    fitted = fit_frames(_to_bchw(images), height, width, fit).movedim(1, -1)
    return vae.encode(fitted[..., :3])


def dynamicrafter_conditions(positive, negative, context: dict, concat: torch.Tensor, frames: int,
                             frame_stride: int) -> tuple:
    """The DynamiCrafter conditions on the text conditionings: image tokens (grey-image tokens on the negative),
    the concat latent (1 row, or `frames` rows for interpolation) and fs, on both.
    Returns (positive, negative, image_only)."""
    common = {"concat_latent_image": concat, "lvdm_fs": int(frame_stride), "num_video_frames": int(frames)}
    image_only = node_helpers.conditioning_set_values(negative, dict(common, lvdm_image_tokens=context["cond"]))
    positive = node_helpers.conditioning_set_values(positive, dict(common, lvdm_image_tokens=context["cond"]))
    negative = node_helpers.conditioning_set_values(negative, dict(common, lvdm_image_tokens=context["uncond"]))
    return positive, negative, image_only


class CLIPContextEncoder(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_CLIPContextEncoder",
            display_name="CLIP Context Encoder (DynamiCrafter)",
            category=CATEGORY,
            description="The image context of DynamiCrafter: the start frame through the OpenCLIP ViT-H image tower "
                        "(core CLIP_VISION: from the checkpoint or clip_vision_h.safetensors) and the model's "
                        "query-transformer resampler -> 16 image tokens per frame. Also encodes the mid-grey frame "
                        "the unconditional branch uses (as the official code). 'official' preprocessing resizes "
                        "straight to 224x224 (bicubic, kornia antialias) as DynamiCrafter was trained; 'core' uses "
                        "ComfyUI's clip_preprocess (centre crop or stretch, 8-bit rounding).",
            inputs=[
                io.ClipVision.Input("clip_vision"),
                Resampler.Input("resampler"),
                io.Image.Input("image", tooltip="The start frame (the first image of the batch is used)."),
                io.Combo.Input("preprocess", options=list(PREPROCESS_MODES), default="official"),
                io.Int.Input("width", default=512, min=0, max=4096, step=8,
                             tooltip="The video width: the image is fitted to width x height first, as the "
                                     "conditioning node fits the start frame (0 = use the image as it is)."),
                io.Int.Input("height", default=320, min=0, max=4096, step=8),
                io.Combo.Input("fit", options=FIT_MODES, default="center crop"),
            ],
            outputs=[ImageContext.Output(display_name="image_context")],
        )

    @classmethod
    def validate_inputs(cls, preprocess, fit, input_types=None):
        return check_inputs(cls, {"preprocess": preprocess, "fit": fit}, input_types)

    @classmethod
    def execute(cls, clip_vision, resampler, image, preprocess, width, height, fit):
        ensure_inputs(cls, width=width, height=height)
        tokens = image_context_tokens("VP_CLIPContextEncoder", clip_vision, resampler, image[:1], preprocess,
                                      width, height, fit)
        return io.NodeOutput(image_context(tokens, 0, preprocess))


class DynamiCrafterConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_DynamiCrafterConditioning",
            display_name="DynamiCrafter Conditioning",
            category=CATEGORY,
            description="Image-to-video (and, with an end image, interpolation / looping) conditioning for "
                        "DynamiCrafter, like core SVD_img2vid_Conditioning: adds the image tokens (grey-image "
                        "tokens on the negative, as the official code), the VAE latent of the start frame "
                        "(repeated to every frame; or start and end frames with zeros between) and the frame "
                        "stride to both conditionings, and gives an empty latent of frames x 4 x h/8 x w/8 "
                        "(frames in the batch dimension) for KSampler.",
            inputs=[
                io.Conditioning.Input("positive"),
                io.Conditioning.Input("negative"),
                ImageContext.Input("image_context"),
                io.Vae.Input("vae"),
                io.Image.Input("start_image"),
                io.Int.Input("width", default=512, min=64, max=4096, step=64),
                io.Int.Input("height", default=320, min=64, max=4096, step=64),
                io.Int.Input("frames", default=16, min=1, max=256,
                             tooltip="16 is what every DynamiCrafter model was trained on (16 image tokens per "
                                     "frame); other counts give every frame all the image tokens, as the "
                                     "official code does."),
                io.Int.Input("frame_stride", default=24, min=1, max=1000,
                             tooltip="The fs condition. Official inference: 256 -> 3, 512 -> 24, 1024 -> 10, "
                                     "512 interpolation -> 5 (smaller = larger motion)."),
                io.Combo.Input("fit", options=FIT_MODES, default="center crop",
                               tooltip="How the images are brought to width x height."),
                io.Int.Input("batch_size", default=1, min=1, max=64),
                io.Image.Input("end_image", optional=True,
                               tooltip="Interpolation / looping models: the last frame."),
            ],
            outputs=[io.Conditioning.Output(display_name="positive"),
                     io.Conditioning.Output(display_name="negative"),
                     io.Latent.Output(display_name="latent"),
                     io.Conditioning.Output(display_name="image_only",
                                            tooltip="The negative text with the start image's tokens: DualCFGGuider's "
                                                    "cond2 for DynamiCrafter's text/image guidance (official "
                                                    "multiple_cond_cfg: cfg_conds = text scale, cfg_cond2_negative "
                                                    "= image scale).")],
        )

    @classmethod
    def validate_inputs(cls, fit, input_types=None):
        return check_inputs(cls, {"fit": fit}, input_types)

    @classmethod
    def execute(cls, positive, negative, image_context, vae, start_image, width, height, frames, frame_stride, fit,
                batch_size, end_image=None):
        ensure_inputs(cls, width=width, height=height, frames=frames, frame_stride=frame_stride,
                      batch_size=batch_size)
        _check_size("VP_DynamiCrafterConditioning", width, height)
        if start_image is None or start_image.shape[0] == 0:
            raise ValueError("VP_DynamiCrafterConditioning: a start image is required")
        if not isinstance(image_context, dict) or "cond" not in image_context:
            raise ValueError("VP_DynamiCrafterConditioning: image_context must come from VP_CLIPContextEncoder")
        first = encode_frames(vae, start_image[:1], width, height, fit)
        if end_image is not None:
            from ..pipelines.lvdm.comfy_model import interp_concat_latent

            if frames < 2:
                raise ValueError("VP_DynamiCrafterConditioning: interpolation needs at least 2 frames")
            concat = interp_concat_latent(first, encode_frames(vae, end_image[-1:], width, height, fit), frames)
        else:
            concat = first
        positive, negative, image_only = dynamicrafter_conditions(positive, negative, image_context, concat, frames,
                                                                  frame_stride)
        return io.NodeOutput(positive, negative, _empty_latent(batch_size, frames, width, height), image_only)


class VideoCrafterConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_VideoCrafterConditioning",
            display_name="VideoCrafter Text-to-Video Conditioning",
            category=CATEGORY,
            description="Text-to-video conditioning for VideoCrafter1/2: sets the clip length and VideoCrafter2's fps "
                        "condition on both conditionings and gives an empty latent of frames x 4 x h/8 x w/8 "
                        "(frames in the batch dimension) for KSampler. (A core EmptyLatentImage with batch_size = "
                        "frames works too: then the whole batch is one clip at the official fps 28.)",
            inputs=[
                io.Conditioning.Input("positive"),
                io.Conditioning.Input("negative"),
                io.Int.Input("width", default=512, min=64, max=4096, step=64),
                io.Int.Input("height", default=320, min=64, max=4096, step=64),
                io.Int.Input("frames", default=16, min=1, max=256,
                             tooltip="VideoCrafter was trained on 16 frames."),
                io.Int.Input("fps", default=28, min=1, max=1000,
                             tooltip="VideoCrafter2's fps condition (official script: 28); VideoCrafter1 ignores it."),
                io.Int.Input("batch_size", default=1, min=1, max=64),
            ],
            outputs=[io.Conditioning.Output(display_name="positive"),
                     io.Conditioning.Output(display_name="negative"),
                     io.Latent.Output(display_name="latent")],
        )

    @classmethod
    def execute(cls, positive, negative, width, height, frames, fps, batch_size):
        ensure_inputs(cls, width=width, height=height, frames=frames, fps=fps, batch_size=batch_size)
        _check_size("VP_VideoCrafterConditioning", width, height)
        values = {"lvdm_fs": int(fps), "num_video_frames": int(frames)}
        positive = node_helpers.conditioning_set_values(positive, values)
        negative = node_helpers.conditioning_set_values(negative, values)
        return io.NodeOutput(positive, negative, _empty_latent(batch_size, frames, width, height))


LVDM_NODES = [LoadLVDMCheckpoint, CLIPContextEncoder, DynamiCrafterConditioning, VideoCrafterConditioning]
