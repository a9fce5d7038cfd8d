"""Text-to-video sampling from a VP_VIDEO_PRIOR (DDIM): VP_SampleVideo."""
from __future__ import annotations

import comfy.model_management as mm
import comfy.utils
import numpy as np
import torch
from comfy_api.latest import io
from PIL import Image

from ..pipelines.lvdm.unet import rows_to_video, video_to_rows
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
                        "and diffusers folders (ModelScope, ZeroScope). With an LVDM prior (VideoCrafter / "
                        "DynamiCrafter from VP_LoadLVDMCheckpoint through VP_VideoPriorFromModel) it runs the "
                        "official DDIM of the model (its timestep spacing, eta, CFG, guidance rescale, latent scale) "
                        "on the text and image of the positive / negative CONDITIONING. Outputs the frames of one "
                        "clip.",
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
                io.Conditioning.Input("positive", optional=True,
                                      tooltip="LVDM priors: the prompt (CLIPTextEncode with the checkpoint's CLIP; "
                                              "DynamiCrafter: through VP_DynamiCrafterConditioning). The prompt "
                                              "strings are not used then."),
                io.Conditioning.Input("negative", optional=True, tooltip="LVDM priors: the negative prompt."),
                io.Float.Input("image_guidance", default=0.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               optional=True,
                               tooltip="DynamiCrafter: the official multi-condition guidance (image scale; "
                                       "'guidance' is then the text scale), one more model call per step. "
                                       "0 = off (plain CFG)."),
                io.Float.Input("guidance_rescale", default=-1.0, min=-1.0, max=1.0, step=0.01, optional=True,
                               tooltip="LVDM priors: the official guidance rescale (std per video). -1 = the "
                                       "model's official value (DynamiCrafter 512/1024: 0.7, others 0)."),
            ],
            outputs=[io.Image.Output(display_name="frames")],
            hidden=[io.Hidden.unique_id],  # the progress bar's node id
        )

    @classmethod
    def validate_inputs(cls, eta, guidance, image_guidance=None, guidance_rescale=None):
        return check_inputs(cls, {"eta": eta, "guidance": guidance, "image_guidance": image_guidance,
                                  "guidance_rescale": guidance_rescale})

    @classmethod
    def execute(cls, prior, prompt, negative_prompt, steps, eta, guidance, seed, frames, width, height, preview,
                positive=None, negative=None, image_guidance=0.0, guidance_rescale=-1.0):
        ensure_inputs(cls, steps=steps, eta=eta, guidance=guidance, frames=frames, width=width, height=height,
                      image_guidance=image_guidance, guidance_rescale=guidance_rescale)
        model = prior.prior
        if getattr(model, "lvdm_variant", None) is not None:
            return cls._execute_lvdm(prior, steps, eta, guidance, seed, frames, width, height, preview, positive,
                                     negative, image_guidance, guidance_rescale)
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

    @classmethod
    def _execute_lvdm(cls, prior, steps, eta, guidance, seed, frames, width, height, preview, positive, negative,
                      image_guidance, guidance_rescale):
        model = prior.prior
        try:
            plan = plan_lvdm_sampling(model, positive, negative, steps=steps, eta=eta, guidance=guidance, seed=seed,
                                      frames=frames, width=width, height=height, image_guidance=image_guidance,
                                      guidance_rescale=guidance_rescale)
        except ValueError as e:
            raise ValueError(f"VP_SampleVideo: {e}") from None
        t, h, w = plan["frames"], plan["height"], plan["width"]
        n_preview = max(0, min(PREVIEW_FRAMES, t, PREVIEW_BYTES // max(1, 3 * 4 * h * w * 4)))
        total = len(plan["schedule"])
        pbar = comfy.utils.ProgressBar(total, node_id=cls.hidden.unique_id if cls.hidden else None)

        def progress(step, x, pred_x0):
            image = None
            if preview and n_preview:
                idx = np.linspace(0, t - 1, n_preview).round().astype(int).tolist()
                rows = video_to_rows(pred_x0[:1])[idx]
                image = ("JPEG", preview_strip(model.decode_latents(rows)), 512)
            pbar.update_absolute(step + 1, total, image)

        with torch.inference_mode():
            latents = sample_lvdm(model, plan, callback=progress,
                                  interrupt=mm.throw_exception_if_processing_interrupted)
            if not bool(torch.isfinite(latents).all()):
                raise ValueError("VP_SampleVideo: the model's prediction became NaN or infinite (its weights or the "
                                 "sampling settings are broken)")
            video = model.decode_latents(video_to_rows(latents))
        return io.NodeOutput(video.permute(0, 2, 3, 1).contiguous().float().cpu())


# ---- LVDM priors: the official DDIM on the raw UNet ----------------------------------------------------------------
def _first_value(conditioning, key):
    if isinstance(conditioning, list) and conditioning and isinstance(conditioning[0], (list, tuple)):
        return conditioning[0][1].get(key)
    return None


def plan_lvdm_sampling(prior, positive, negative, *, steps: int, eta: float, guidance: float, seed: int,
                       frames: int = 0, width: int = 0, height: int = 0, image_guidance: float = 0.0,
                       guidance_rescale: float = -1.0) -> dict:
    """Everything one official DDIM run of an LVDM prior needs (raises ValueError for unusable inputs).

    Clip size: `frames` (0: the conditioning's num_video_frames, else the variant's 16); width / height (0: the
    conditioning's image latent x 8, else the variant's official resolution). Schedule: the variant's exact
    training schedule (alphas_cumprod[999] = 0 for zero-SNR) and timestep spacing, `steps` official DDIM steps,
    `eta`. CFG `guidance` with the negative (1 = conditional only); `image_guidance` > 0: DynamiCrafter's
    multi-condition CFG (the image-only branch = the negative's text with the positive's image tokens);
    `guidance_rescale` < 0: the variant's official value.
    """
    from ..pipelines.lvdm.comfy_model import unet_conds
    from ..pipelines.lvdm.schedule import DDIMSchedule, TrainingSchedule, check_official_steps
    from .lvdm_nodes import SIZE_MULTIPLE

    variant = prior.lvdm_variant
    base = prior.model.model
    if positive is None:
        raise ValueError(f"{prior.name} ({variant.title}) takes its prompt as CONDITIONING: connect CLIPTextEncode "
                         "(the checkpoint's CLIP) to 'positive'"
                         + (" through VP_DynamiCrafterConditioning" if variant.needs_image else ""))
    use_cfg = float(guidance) != 1.0
    if use_cfg and negative is None:
        raise ValueError(f"guidance {guidance} needs the 'negative' CONDITIONING (an empty CLIPTextEncode works); "
                         "or set guidance to 1")
    if image_guidance > 0 and not base.unet_config.image_cross_attention:
        raise ValueError(f"image_guidance is DynamiCrafter's image/text guidance; {variant.title} has no image "
                         "condition: set it to 0")
    if hasattr(prior, "check_conditioning"):
        prior.check_conditioning(positive, negative if negative is not None else positive)

    t = int(frames or _first_value(positive, "num_video_frames") or variant.frames)
    concat = _first_value(positive, "concat_latent_image")
    if width and height:
        h, w = int(height), int(width)
    elif concat is not None:
        h, w = int(height or concat.shape[-2] * 8), int(width or concat.shape[-1] * 8)
    else:
        h, w = int(height or variant.resolution[0]), int(width or variant.resolution[1])
    if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
        raise ValueError(f"{variant.title}: width and height must be multiples of {SIZE_MULTIPLE}, got {w}x{h}")

    prior.load()
    device = prior.model.load_device
    noise_rows = torch.zeros((t, base.unet_config.out_channels, h // 8, w // 8), device=device)
    frames_value = {"num_video_frames": t}
    cond = unet_conds(base, positive, noise_rows, device, "positive", **frames_value)
    uncond = unet_conds(base, negative, noise_rows, device, "negative", **frames_value) if use_cfg else None
    image_only = None
    if use_cfg and image_guidance > 0:
        tokens = _first_value(positive, "lvdm_image_tokens")
        if tokens is None:
            raise ValueError("image_guidance needs the image tokens on the positive CONDITIONING "
                             "(VP_DynamiCrafterConditioning)")
        image_only = unet_conds(base, negative, noise_rows, device, "negative", lvdm_image_tokens=tokens,
                                **frames_value)
    rescale = variant.guidance_rescale if guidance_rescale < 0 else float(guidance_rescale)
    train = TrainingSchedule.for_variant(variant)
    check_official_steps(int(steps), variant.timestep_spacing, train.num_timesteps, variant.title)
    schedule = DDIMSchedule.make(train, int(steps), variant.timestep_spacing, eta=float(eta))
    return {"frames": t, "height": h, "width": w, "cond": cond, "uncond": uncond, "image_only": image_only,
            "cfg": float(guidance), "cfg_img": float(image_guidance) if image_only is not None else None,
            "guidance_rescale": rescale, "schedule": schedule, "seed": int(seed), "device": device,
            "shape": (1, base.unet_config.out_channels, t, h // 8, w // 8)}


def sample_lvdm(prior, plan: dict, callback=None, interrupt=None) -> torch.Tensor:
    """The official DDIM (pipelines.lvdm.ddim.ddim_sample) on the raw LVDM UNet -> the final latent
    [1, C, T, h, w] in the official (VP) scale. x_T and the per-step eta noise come from one CPU generator seeded
    with the plan's seed (x_T first, as the official code draws them)."""
    from ..pipelines.lvdm.ddim import ddim_sample

    patcher = prior.model
    base = patcher.model
    frames = plan["frames"]

    def model_fn(x, t, conds):
        out = base.unet_output(video_to_rows(x), t, **conds)
        return rows_to_video(out, frames).to(x.dtype)

    generator = torch.Generator().manual_seed(plan["seed"] & 0xFFFFFFFFFFFFFFFF)
    x_T = torch.randn(plan["shape"], generator=generator, dtype=torch.float32).to(plan["device"])
    patcher.pre_run()  # as a sampler does around its steps (sets model.current_patcher)
    try:
        return ddim_sample(model_fn, x_T, plan["schedule"], plan["cond"], uncond=plan["uncond"],
                           cfg_scale=plan["cfg"], guidance_rescale=plan["guidance_rescale"],
                           cond_img_only=plan["image_only"], cfg_img=plan["cfg_img"], generator=generator,
                           callback=callback, interrupt=interrupt)
    finally:
        patcher.cleanup()


SAMPLING_NODES = [SampleVideo]
