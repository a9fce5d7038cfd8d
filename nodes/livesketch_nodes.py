"""LiveSketch nodes: a video prior, the control-point model, SDS guidance, and the optimisation."""
from __future__ import annotations

import logging

import torch
from comfy_api.latest import io

import comfy.model_management as mm
import comfy.utils

from ..pipelines.livesketch import AnimateConfig, MotionModelConfig, SDSConfig, animate_sketch
from ..pipelines.sketch import PathStyle, Sketch as SketchData
from .common import Sketch, SketchAnimation, check_inputs, display_path, ensure_inputs, frame_strip, require_memory
from .prior_loading import DTYPES, EMBEDDED, list_prior_folders, manage, resolve_prior_folder, torch_dtype

log = logging.getLogger("VideoPriors")
VideoPrior = io.Custom("VP_VIDEO_PRIOR")
MotionModel = io.Custom("VP_SKETCH_MOTION_MODEL")
SDSGuidance = io.Custom("VP_SDS_GUIDANCE")
CATEGORY = "VideoPriors/livesketch"


class LoadVideoPrior(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_LoadVideoPrior",
            display_name="Load Video Prior (diffusers)",
            category="VideoPriors/priors",
            description="Loads a text-to-video prior for score distillation and sampling: 'embedded' is the pack's "
                        "own small CPU model of moving line drawings (8 frames of 32x32, no download); other entries "
                        "are diffusers-format folders (ModelScope text-to-video-ms-1.7b, ZeroScope) from "
                        "ComfyUI/models/video_priors (or models/diffusers).",
            inputs=[
                io.Combo.Input("prior", options=list_prior_folders(),
                               tooltip="'embedded' (built in, CPU) or a folder under models/video_priors or "
                                       "models/diffusers."),
                io.Combo.Input("dtype", options=DTYPES, default="auto",
                               tooltip="auto: fp16/bf16 where the device supports it, fp32 on CPU."),
            ],
            outputs=[VideoPrior.Output(display_name="prior")],
        )

    @classmethod
    def validate_inputs(cls, prior, dtype, input_types=None):
        # `prior` must be a name list_prior_folders() gives now (no path, no '..'): resolve_prior_folder says
        # where such folders go; check_inputs does the rest (null, dtype, link types).
        if isinstance(prior, str):
            try:
                resolve_prior_folder(prior)
            except FileNotFoundError as e:
                return display_path(str(e))
        return check_inputs(cls, {"prior": prior, "dtype": dtype}, input_types)

    @classmethod
    def execute(cls, prior, dtype):
        from ..pipelines.embedded.prior import load_embedded_prior
        from ..pipelines.priors.diffusers_prior import DiffusersVideoPrior, PriorLoadError

        ensure_inputs(cls, prior=prior, dtype=dtype)
        try:
            path = resolve_prior_folder(prior)
        except FileNotFoundError as e:
            raise ValueError(f"VP_LoadVideoPrior: {display_path(str(e))}") from None
        offload = mm.unet_offload_device()
        load = load_embedded_prior if prior == EMBEDDED else DiffusersVideoPrior.from_folder
        # Weights made under ComfyUI's inference mode could not take part in SDS's backward pass.
        with torch.inference_mode(False):
            try:
                model = load(path, dtype=torch_dtype(dtype, mm.get_torch_device()), device=offload)
            except PriorLoadError as e:
                raise ValueError(f"VP_LoadVideoPrior: {display_path(str(e))}") from None
        return io.NodeOutput(manage(model, {"unet": model.unet, "vae": model.vae}, label=prior))


class SketchMotionModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_SketchMotionModel",
            display_name="Sketch Motion Model (LiveSketch)",
            category=CATEGORY,
            description="The LiveSketch control-point network: per-point local offsets plus a per-frame global "
                        "transform (translate . rotate . shear . scale). Defaults are the paper's.",
            inputs=[
                io.Int.Input("frames", default=24, min=2, max=128),
                io.Int.Input("hidden", default=128, min=8, max=1024),
                io.Float.Input("dropout", default=0.1, min=0.0, max=0.9, step=0.01),
                io.Float.Input("lambda_translation", default=1.0, min=0.0, max=10.0, step=0.01),
                io.Float.Input("lambda_rotation", default=0.01, min=0.0, max=10.0, step=0.001),
                io.Float.Input("lambda_shear", default=0.1, min=0.0, max=10.0, step=0.01),
                io.Float.Input("lambda_scale", default=0.05, min=0.0, max=10.0, step=0.01),
                io.Float.Input("local_lr", default=5e-3, min=0.0, max=1.0, step=1e-4),
                io.Float.Input("global_lr", default=1e-4, min=0.0, max=1.0, step=1e-5),
                io.Boolean.Input("local_motion", default=True),
                io.Boolean.Input("global_motion", default=True),
                io.Boolean.Input("anchor_first_frame", default=False,
                                 tooltip="Frame 0 is your drawing exactly and the other frames move relative to it "
                                         "(local offsets minus frame 0's, global transforms composed with the "
                                         "inverse of frame 0's). Off: the paper's formulation, where frame 0 "
                                         "drifts like every other frame."),
                io.Float.Input("shape_preservation", default=0.0, min=0.0, max=1e6, step=1.0,
                               tooltip="Weight of a term that keeps every frame the drawing's shape: it acts on "
                                       "frames whose shape differs from the drawing (after the best move, turn "
                                       "and uniform scale) by more than 10 % of its size. 0 = off (the paper)."),
                io.Float.Input("smoothness", default=0.0, min=0.0, max=1e6, step=1.0,
                               tooltip="Weight of a term against frame-to-frame jumps (the squared acceleration "
                                       "of the points, relative to the drawing's size). 0 = off (the paper)."),
            ],
            outputs=[MotionModel.Output(display_name="motion_model")],
        )

    @classmethod
    def validate_inputs(cls, dropout, lambda_translation, lambda_rotation, lambda_shear, lambda_scale, local_lr,
                        global_lr, shape_preservation=None, smoothness=None):
        # Every FLOAT is named (finite, within its range: check_inputs); INTs keep ComfyUI's own range check.
        return check_inputs(cls, dict(dropout=dropout, lambda_translation=lambda_translation,
                                      lambda_rotation=lambda_rotation, lambda_shear=lambda_shear,
                                      lambda_scale=lambda_scale, local_lr=local_lr, global_lr=global_lr,
                                      shape_preservation=shape_preservation, smoothness=smoothness))

    @classmethod
    def execute(cls, frames, hidden, dropout, lambda_translation, lambda_rotation, lambda_shear, lambda_scale,
                local_lr, global_lr, local_motion, global_motion, anchor_first_frame=False, shape_preservation=0.0,
                smoothness=0.0):
        ensure_inputs(cls, frames=frames, hidden=hidden, dropout=dropout, lambda_translation=lambda_translation,
                      lambda_rotation=lambda_rotation, lambda_shear=lambda_shear, lambda_scale=lambda_scale,
                      local_lr=local_lr, global_lr=global_lr, shape_preservation=shape_preservation,
                      smoothness=smoothness)
        if not (local_motion or global_motion):
            raise ValueError("VP_SketchMotionModel: enable local_motion, global_motion or both")
        return io.NodeOutput(MotionModelConfig(
            num_frames=frames, hidden=hidden, dropout=dropout, lambda_t=lambda_translation, lambda_r=lambda_rotation,
            lambda_sh=lambda_shear, lambda_s=lambda_scale, use_local=local_motion, use_global=global_motion,
            local_lr=local_lr, global_lr=global_lr, anchor=anchor_first_frame, shape_weight=shape_preservation,
            smooth_weight=smoothness))


class SDSGuidanceNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_SDSGuidance",
            display_name="SDS Guidance",
            category=CATEGORY,
            description="Score distillation settings: a prior, a prompt (encoded once), guidance scales of the "
                        "local and global passes, the timestep range and the augmentations.",
            inputs=[
                VideoPrior.Input("prior"),
                io.String.Input("prompt", multiline=True, default="a cat sways its tail"),
                io.String.Input("negative_prompt", multiline=True, default=""),
                io.Float.Input("guidance_local", default=30.0, min=0.0, max=200.0, step=0.5),
                io.Float.Input("guidance_global", default=40.0, min=0.0, max=200.0, step=0.5),
                io.Int.Input("t_min", default=50, min=0, max=999),
                io.Int.Input("t_max", default=949, min=1, max=1000,
                             tooltip="exclusive; 949 as the reference code (t in 50..948)"),
                io.Boolean.Input("augment", default=True,
                                 tooltip="Random perspective then random square crop, the same for all frames."),
                io.Float.Input("perspective_distortion", default=0.5, min=0.0, max=1.0, step=0.05),
                io.Float.Input("crop_min_scale", default=0.4, min=0.05, max=1.0, step=0.05),
                io.Conditioning.Input("positive", optional=True,
                                      tooltip="For priors built from ComfyUI models: the encoded prompt."),
                io.Conditioning.Input("negative", optional=True),
            ],
            outputs=[SDSGuidance.Output(display_name="guidance")],
        )

    @classmethod
    def validate_inputs(cls, t_min, t_max, guidance_local, guidance_global, perspective_distortion, crop_min_scale):
        # Naming t_min/t_max turns ComfyUI's min/max check off for them: check_inputs checks the schema's ranges.
        values = dict(t_min=t_min, t_max=t_max, guidance_local=guidance_local, guidance_global=guidance_global,
                      perspective_distortion=perspective_distortion, crop_min_scale=crop_min_scale)
        result = check_inputs(cls, values)
        if result is True and t_min is not None and t_max is not None and t_min >= t_max:
            return f"t_min ({t_min}) must be below t_max ({t_max})"
        return result

    @classmethod
    def execute(cls, prior, prompt, negative_prompt, guidance_local, guidance_global, t_min, t_max, augment,
                perspective_distortion, crop_min_scale, positive=None, negative=None):
        ensure_inputs(cls, guidance_local=guidance_local, guidance_global=guidance_global, t_min=t_min, t_max=t_max,
                      perspective_distortion=perspective_distortion, crop_min_scale=crop_min_scale)
        if t_min >= t_max:
            raise ValueError(f"VP_SDSGuidance: t_min ({t_min}) must be below t_max ({t_max})")
        steps = int(prior.prior.alphas_cumprod().shape[0])
        if t_max > steps:
            raise ValueError(f"VP_SDSGuidance: t_max ({t_max}) is above the {steps} timesteps of "
                             f"{getattr(prior.prior, 'name', 'the prior')}'s noise schedule; lower t_max to {steps} or less")
        cfg = SDSConfig(prompt=prompt, negative_prompt=negative_prompt, guidance_local=guidance_local,
                        guidance_global=guidance_global, t_min=t_min, t_max=t_max, augment=augment,
                        perspective_distortion=perspective_distortion, crop_scale=(crop_min_scale, 1.0))
        if hasattr(prior.prior, "embeds_from_conditioning"):  # a prior built from ComfyUI models: text is CONDITIONING
            try:
                embeds = prior.prior.embeds_from_conditioning(positive, negative, prompt, negative_prompt)
            except ValueError as e:
                raise ValueError(f"VP_SDSGuidance: {e}") from None
            return io.NodeOutput({"prior": prior, "config": cfg, "embeds": embeds})
        if positive is not None or negative is not None:
            log.warning("VP_SDSGuidance: %s encodes the prompt text itself; the positive/negative conditioning "
                        "inputs are ignored", getattr(prior.prior, "name", "this prior"))
        with torch.inference_mode(False):
            embeds = prior.prior.encode_prompt(prompt, negative_prompt)
        # The text encoder is not needed while distilling: free it (a later new prompt reloads it from disk).
        if hasattr(prior.prior, "free_text_encoder"):
            prior.prior.free_text_encoder()
        return io.NodeOutput({"prior": prior, "config": cfg, "embeds": embeds})


def _trainable_copy(sketch: SketchData) -> SketchData:
    """Fresh (non-inference) tensors: ComfyUI made the sketch under inference mode."""
    s = sketch.style
    # Every field, tensors cloned and lists copied (so fields added to PathStyle are carried too).
    style = PathStyle(**{k: v.clone() if torch.is_tensor(v) else list(v) if isinstance(v, list) else v
                         for k, v in vars(s).items()})
    return SketchData(sketch.points.clone(), style, sketch.width, sketch.height)


def _check_animation_memory(prior, embeds, sketch, frames: int, render_size: int, device) -> None:
    """Refuse an optimisation that cannot fit before it starts: the prior's pass on the rendered clip
    (measured on the prior, see estimate_sampling_bytes), the differentiable render of every frame
    (its saved tensors about double the forward's working memory) and the frames with their gradients."""
    from ..pipelines.render_budget import estimate_render_bytes, output_bytes
    from ..pipelines.sampling import estimate_sampling_bytes

    render = 2 * estimate_render_bytes(sketch.points, sketch.style, (sketch.width, sketch.height),
                                       (render_size, render_size), frames)
    require_memory("VP_AnimateSketch", render, f"rendering {frames} frames of {sketch.num_paths} paths at "
                   f"render_size {render_size} with gradients", "lower render_size, the motion model's frames or "
                   "the sketch's paths (VP_LoadSVGSketch max_paths)", device)

    pixel_space = getattr(prior, "vae", True) is None  # frames are resized to the prior's own size
    h, w = (prior.height, prior.width) if pixel_space else (render_size, render_size)
    try:
        need = estimate_sampling_bytes(prior, embeds, frames, h, w)  # its probe runs under no_grad
    except Exception as e:  # a prior whose probe fails still runs; only the early refusal is lost
        log.warning("VP_AnimateSketch: could not estimate the memory of the prior's pass (%s)", e)
        return
    need += render + 12 * output_bytes(frames, render_size, render_size)  # frames, augmentations, their gradients
    require_memory("VP_AnimateSketch", need, f"{frames} frames at render_size {render_size}",
                   "lower render_size or the motion model's frames", device)


class AnimateSketch(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_AnimateSketch",
            display_name="Animate Sketch (LiveSketch SDS)",
            category=CATEGORY,
            description="Optimises the motion model so the rendered clip matches the prompt under the prior "
                        "(score distillation). Two passes per iteration (local, then global) as in the paper, "
                        "or one fused pass that steps both.",
            inputs=[
                Sketch.Input("sketch"),
                MotionModel.Input("motion_model"),
                SDSGuidance.Input("guidance"),
                io.Int.Input("iterations", default=1001, min=0, max=100000,
                             tooltip="1001: the reference code's loop (range(num_iter + 1), num_iter 1000)"),
                io.Int.Input("seed", default=1000, min=0, max=0xFFFFFFFF, control_after_generate=True),
                io.Boolean.Input("fused", default=False, tooltip="One SDS pass per iteration stepping both optimisers."),
                io.Float.Input("fps", default=8.0, min=0.1, max=120.0, step=0.1),
                io.Int.Input("render_size", default=256, min=32, max=2048, step=8,
                             tooltip="Frame size the prior sees (the prior's native size is best)."),
                io.Int.Input("preview_every", default=10, min=0, max=10000, tooltip="0 = no previews."),
            ],
            outputs=[SketchAnimation.Output(display_name="animation"), io.Image.Output(display_name="frames")],
            hidden=[io.Hidden.unique_id],  # the progress bar's node id (in-process executors do not fill it in)
        )

    @classmethod
    def validate_inputs(cls, fps):
        return check_inputs(cls, {"fps": fps})

    @classmethod
    def execute(cls, sketch, motion_model, guidance, iterations, seed, fused, fps, render_size, preview_every):
        # every number again at run time: a value from a link skipped ComfyUI's range check at validation
        ensure_inputs(cls, iterations=iterations, seed=seed, fps=fps, render_size=render_size,
                      preview_every=preview_every)
        if sketch.num_paths == 0:
            raise ValueError("VP_AnimateSketch: the sketch has no paths")
        managed = guidance["prior"]
        managed.load()
        pbar = comfy.utils.ProgressBar(max(1, iterations), node_id=cls.hidden.unique_id if cls.hidden else None)

        def progress(step, total, preview):
            pbar.update_absolute(step, total, ("JPEG", frame_strip(preview), 512) if preview is not None else None)

        cfg = AnimateConfig(iterations=iterations, seed=seed, fused=fused, render_size=render_size, fps=fps)
        device = getattr(managed.prior, "device", torch.device("cpu"))
        _check_animation_memory(managed.prior, guidance["embeds"], sketch, motion_model.num_frames, render_size, device)
        with torch.inference_mode(False), torch.enable_grad():
            result = animate_sketch(_trainable_copy(sketch), managed.prior, guidance["embeds"], motion_model,
                                    guidance["config"], cfg, callback=progress, preview_every=preview_every,
                                    check_interrupt=mm.throw_exception_if_processing_interrupted, device=device)
        if not (bool(torch.isfinite(result.animation.points).all()) and bool(torch.isfinite(result.frames).all())):
            raise ValueError("VP_AnimateSketch: the optimisation produced NaN or infinite points (the prior's "
                             "predictions or the learning rates are broken); lower local_lr/global_lr or the guidance")
        t = result.times
        log.info("VP_AnimateSketch: %d iterations, %d prior passes; seconds: model %.2f, rasterize %.2f, encode %.2f, "
                 "prior %.2f, backward %.2f", t.iterations, t.passes, t.model, t.rasterize, t.encode, t.prior,
                 t.backward)
        return io.NodeOutput(result.animation, result.frames.float().cpu())


LIVESKETCH_NODES = [LoadVideoPrior, SketchMotionModel, SDSGuidanceNode, AnimateSketch]
