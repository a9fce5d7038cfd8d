"""Text-to-video sampling from a VP_VIDEO_PRIOR (DDIM): VP_SampleVideo."""
from __future__ import annotations

import comfy.model_management as mm
import comfy.utils
import numpy as np
import torch
from comfy_api.latest import io
from PIL import Image

from ..pipelines.sampling import SamplingError, check_clip_options, estimate_sampling_bytes, sample_video
from .common import check_inputs, ensure_inputs, require_memory

VideoPrior = io.Custom("VP_VIDEO_PRIOR")
CATEGORY = "VideoPriors/sampling"
PREVIEW_FRAMES = 6
PREVIEW_MIN_HEIGHT = 128  # tiny clips (the embedded prior's 32x32) are enlarged, pixel for pixel
PREVIEW_BYTES = 256 * 1024 ** 2  # decoded preview frames (with the strip's copies) stay under this


def preview_strip(frames: torch.Tensor) -> Image.Image:
    """[n, 3, H, W] in 0..1 -> one row of frames as a PIL image (nearest upscaling of tiny frames)."""
    row = torch.cat(list(frames.float().clamp(0, 1).cpu()), dim=2)  # [3, H, W*n]
    img = Image.fromarray((row.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    h = row.shape[1]
    if h < PREVIEW_MIN_HEIGHT:
        scale = -(-PREVIEW_MIN_HEIGHT // h)
        img = img.resize((img.width * scale, h * scale), Image.NEAREST)
    return img


def preview_frames(prior, x0: torch.Tensor, count: int = PREVIEW_FRAMES) -> torch.Tensor:
    """Decode a few frames of the first clip of the current clean estimate [B, C, K, h, w]."""
    clip = x0[:1]
    if getattr(prior, "time_compression", 1) == 1 and clip.dim() == 5 and clip.shape[2] > count:
        idx = np.linspace(0, clip.shape[2] - 1, count).round().astype(int).tolist()
        clip = clip[:, :, idx]
    return prior.decode_latents(clip)


class SampleVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_SampleVideo",
            display_name="Sample Video (text-to-video DDIM)",
            category=CATEGORY,
            description="Text-to-video sampling from a video prior with DDIM (diffusers' DDIMScheduler on the "
                        "prior's own noise schedule) and classifier-free guidance. Works with the embedded prior "
                        "and diffusers folders (ModelScope, ZeroScope). Outputs the frames of one clip.",
            inputs=[
                VideoPrior.Input("prior"),
                io.String.Input("prompt", multiline=True, default="a bird flies to the left"),
                io.String.Input("negative_prompt", multiline=True, default=""),
                io.Int.Input("steps", default=30, min=1, max=1000, tooltip="DDIM steps."),
                io.Float.Input("eta", default=0.0, min=0.0, max=1.0, step=0.01,
                               tooltip="0 = deterministic DDIM; 1 = as much fresh noise per step as DDPM (use 1 with the "
                                       "embedded prior: at 0 its clips keep a grey, speckled background)."),
                io.Float.Input("guidance", default=7.5, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance scale (1 = prompt only, no negative branch). "
                                       "The embedded prior works best around 5-8, ModelScope around 9."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Seed of the initial noise (drawn on the CPU: the same clip on any device)."),
                io.Int.Input("frames", default=0, min=0, max=512,
                             tooltip="Frames of the clip; 0 = the prior's own frame count (embedded: 8)."),
                io.Int.Input("width", default=0, min=0, max=4096, step=8,
                             tooltip="0 = the prior's own size (embedded: 32, ModelScope: 256). Must be a "
                                     "multiple of the prior's VAE factor (ModelScope: 8; embedded: 2)."),
                io.Int.Input("height", default=0, min=0, max=4096, step=8,
                             tooltip="0 = the prior's own size."),
                io.Boolean.Input("preview", default=True,
                                 tooltip="Show the current estimate of the clip (a strip of frames) while sampling."),
            ],
            outputs=[io.Image.Output(display_name="frames")],
            hidden=[io.Hidden.unique_id],  # the progress bar's node id
        )

    @classmethod
    def validate_inputs(cls, eta, guidance):
        return check_inputs(cls, {"eta": eta, "guidance": guidance})

    @classmethod
    def execute(cls, prior, prompt, negative_prompt, steps, eta, guidance, seed, frames, width, height, preview):
        ensure_inputs(cls, steps=steps, eta=eta, guidance=guidance, frames=frames, width=width, height=height)
        model = prior.prior
        if hasattr(model, "embeds_from_conditioning"):
            raise ValueError(f"VP_SampleVideo: {getattr(model, 'name', 'this prior')} is a ComfyUI model whose text "
                             "comes as CONDITIONING: sample it with core KSampler (e.g. EmptyHunyuanLatentVideo + "
                             "KSampler for Wan); VP_SampleVideo takes priors from VP_LoadVideoPrior")
        try:
            num_frames, h, w = check_clip_options(model, frames, height, width)
        except SamplingError as e:
            raise ValueError(f"VP_SampleVideo: {e}") from None
        prior.load()
        with torch.inference_mode(False):  # a freed text encoder is reloaded as normal (non-inference) weights
            embeds = model.encode_prompt(prompt, negative_prompt)
        device = getattr(model, "device", None)
        with torch.inference_mode():
            need = estimate_sampling_bytes(model, embeds, num_frames, h, w)
        require_memory("VP_SampleVideo", need, f"sampling {num_frames} frames of {w}x{h} with "
                       f"{getattr(model, 'name', 'this prior')}", "lower frames, width or height", device)
        # The preview decodes up to PREVIEW_FRAMES frames at full size every step: fewer when they are big.
        n_preview = max(0, min(PREVIEW_FRAMES, PREVIEW_BYTES // max(1, 3 * 4 * h * w * 4)))

        pbar = comfy.utils.ProgressBar(steps, node_id=cls.hidden.unique_id if cls.hidden else None)

        def progress(step, total, x0):
            image = None
            if preview and x0 is not None and n_preview:
                image = ("JPEG", preview_strip(preview_frames(model, x0, n_preview)), 512)
            pbar.update_absolute(step, total, image)

        with torch.inference_mode():
            try:
                video = sample_video(model, embeds, steps=steps, eta=eta, guidance=guidance, seed=seed,
                                     num_frames=num_frames, height=h, width=w, callback=progress,
                                     check_interrupt=mm.throw_exception_if_processing_interrupted)
            except SamplingError as e:
                raise ValueError(f"VP_SampleVideo: {e}") from None
        if not bool(torch.isfinite(video).all()):
            raise ValueError("VP_SampleVideo: the decoded frames hold NaN or infinite values (the prior's VAE or "
                             "weights are broken)")
        return io.NodeOutput(video.permute(0, 2, 3, 1).contiguous().float().cpu())


SAMPLING_NODES = [SampleVideo]
