"""Make-Your-Video (depth-guided text-to-video): frame selection, conditioning, long videos window by window.

The model is an LVDM MODEL from VP_LoadLVDMCheckpoint; sampling is core KSampler / SamplerCustomAdvanced (with
VP_LVDMOfficialDDIM for the official sampler) for up to 64 frames, VP_SampleVideoWindows beyond."""
from __future__ import annotations

import comfy.model_management as mm
import comfy.sample
import comfy.sampler_helpers
import comfy.samplers
import comfy.utils
import node_helpers
import torch
from comfy_api.latest import io

from ..pipelines.depth.normalize import MODES
from ..pipelines.lvdm import makeyourvideo as myv
from .common import check_inputs, ensure_inputs
from .depth_nodes import Depth
from .lvdm_sampling_nodes import PassProgress
from .lvdm_nodes import SIZE_MULTIPLE, _check_size, _empty_latent

CATEGORY = "VideoPriors/lvdm"
GREY_TOLERANCE = 2.0 / 255  # channels of a greyscale IMAGE may differ by 8-bit rounding of other packs' conversions
# Per-frame conditions a window has to cut (their other shapes, one row or one per video, apply to every frame).
PER_FRAME_KEYS = ("lvdm_depth", "concat_latent_image")


def _depth_input():
    """VP_DEPTH, or an IMAGE depth map from another pack (io.MultiType where this ComfyUI has it)."""
    tooltip = ("VP_EstimateDepth's depth (raw, full precision), or a greyscale depth IMAGE from another pack "
               "(near = bright); one map per frame.")
    multi = getattr(io, "MultiType", None)
    if multi is None:
        return Depth.Input("depth", tooltip=tooltip)
    return multi.Input("depth", types=[Depth, io.Image], tooltip=tooltip)


def depth_frames(node: str, depth) -> torch.Tensor:
    """A VP_DEPTH (DepthVideo) or a greyscale IMAGE [T, H, W, C] -> depth [T, H, W] float32.

    A DepthVideo gives its network-resolution maps where it has them: the official get_batch_depth resizes the
    MiDaS output (384x384) straight to the latent size, not via the frames' size."""
    if hasattr(depth, "depth") and torch.is_tensor(depth.depth):
        d = depth.depth if getattr(depth, "net_depth", None) is None else depth.net_depth
        if d.ndim != 3:
            raise ValueError(f"{node}: expected a depth clip [frames, height, width], got {list(d.shape)}")
        return d.float()
    if torch.is_tensor(depth):
        if depth.ndim != 4:
            raise ValueError(f"{node}: expected depth maps (VP_DEPTH, or an IMAGE batch [frames, H, W, C]); got a "
                             f"tensor of shape {list(depth.shape)}")
        channels = depth[..., :3].float()
        if channels.shape[-1] == 3:
            spread = (channels.amax(dim=-1) - channels.amin(dim=-1)).max().item()
            if spread > GREY_TOLERANCE:
                raise ValueError(f"{node}: expected a depth map (VP_EstimateDepth's depth, or a greyscale depth "
                                 f"IMAGE: three equal channels); got an RGB image (channels differ by up to "
                                 f"{spread:.3f}). Estimate the depth of the frames first (VP_EstimateDepth).")
        return channels[..., 0]
    raise ValueError(f"{node}: expected VP_DEPTH or a depth IMAGE, got {type(depth).__name__}")


class SelectFrames(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_SelectFrames",
            display_name="Select Frames (stride / fps)",
            category=CATEGORY,
            description="Picks the frames of a source video (core LoadVideo -> GetVideoComponents, or any IMAGE "
                        "batch) as Make-Your-Video's loader does: every frame_stride-th frame from the first; "
                        "frame_stride -1 = spread the frames over the whole video (total // frames); a stride too "
                        "long for the video falls back to that. With target_fps (and the source fps) the stride is "
                        "round(source_fps / target_fps). Outputs the frames, their fps and the stride used.",
            inputs=[
                io.Image.Input("images"),
                io.Int.Input("frames", default=myv.TRAINED_FRAMES, min=0, max=4096,
                             tooltip="How many frames (16 = what Make-Your-Video was trained on, up to 64 in "
                                     "one pass; more with VP_SampleVideoWindows). 0 = every frame at the stride."),
                io.Int.Input("frame_stride", default=-1, min=-1, max=1000,
                             tooltip="-1 = total // frames (the official default); the official script uses 2."),
                io.Float.Input("target_fps", default=0.0, min=0.0, max=240.0, step=0.5,
                               tooltip="0 = off. Otherwise the stride is round(source_fps / target_fps) "
                                       "(frame_stride is ignored)."),
                io.Float.Input("source_fps", default=0.0, min=0.0, max=240.0, step=0.01, optional=True,
                               tooltip="The video's fps (GetVideoComponents' fps output); 0 = unknown."),
            ],
            outputs=[io.Image.Output(display_name="images"),
                     io.Float.Output(display_name="fps",
                                     tooltip="source_fps / stride; the official output fps 8 when the source "
                                             "fps is unknown."),
                     io.Int.Output(display_name="frame_stride")],
        )

    @classmethod
    def validate_inputs(cls, frames=None, frame_stride=None, target_fps=None, source_fps=None, input_types=None):
        checked = check_inputs(cls, {"frames": frames, "frame_stride": frame_stride, "target_fps": target_fps,
                                     "source_fps": source_fps}, input_types)
        if checked is not True:
            return checked
        if frame_stride == 0:
            return "frame_stride: 0 is not a stride; use -1 (auto) or 1 and more"
        return True

    @classmethod
    def execute(cls, images, frames, frame_stride, target_fps, source_fps=0.0):
        ensure_inputs(cls, frames=frames, frame_stride=frame_stride, target_fps=target_fps, source_fps=source_fps)
        if not torch.is_tensor(images) or images.ndim != 4 or images.shape[0] < 1:
            raise ValueError("VP_SelectFrames: expected IMAGE frames [N, H, W, C]")
        try:
            plan = myv.plan_frames(images.shape[0], frames, frame_stride, source_fps or None, target_fps or None)
        except ValueError as e:
            raise ValueError(f"VP_SelectFrames: {e}") from None
        if plan.note:
            myv.logger.warning("VP_SelectFrames: %s", plan.note)
        fps = plan.fps(source_fps) or float(myv.OFFICIAL_SAVE_FPS)
        return io.NodeOutput(images[plan.indices], fps, plan.stride)


class MakeYourVideoConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_MakeYourVideoConditioning",
            display_name="Make-Your-Video Conditioning (depth)",
            category=CATEGORY,
            description="Depth-guided text-to-video conditioning for Make-Your-Video: the depth clip resized to "
                        "the latent size (bicubic; stretched to width x height, as the official loader stretches "
                        "the video) and normalised to [-1, 1] as the official get_batch_depth, put on BOTH "
                        "conditionings (the official negative keeps the depth), and an empty latent with one frame "
                        "per depth map (frames in the batch dimension) for KSampler. Official settings: 256x256, "
                        "16 frames (frame stride 2), cfg 7.5, DDIM 50 steps, eta 1.0. Up to 64 frames in one pass "
                        "(the causal temporal mask); VP_SampleVideoWindows for more.",
            inputs=[
                io.Conditioning.Input("positive"),
                io.Conditioning.Input("negative"),
                _depth_input(),
                io.Int.Input("width", default=256, min=SIZE_MULTIPLE, max=4096, step=SIZE_MULTIPLE,
                             tooltip="Official: 256 (the model was trained at 256x256)."),
                io.Int.Input("height", default=256, min=SIZE_MULTIPLE, max=4096, step=SIZE_MULTIPLE),
                io.Combo.Input("normalization", options=list(MODES), default="per_frame",
                               tooltip="per_frame = the official (each frame's min/max: flickers when near or far "
                                       "things move); clip = one min/max for the clip (official temporal_norm); "
                                       "stable = frames aligned to their neighbours, then one min/max."),
                io.Int.Input("batch_size", default=1, min=1, max=64, tooltip="Videos sampled together."),
            ],
            outputs=[io.Conditioning.Output(display_name="positive"),
                     io.Conditioning.Output(display_name="negative"),
                     io.Latent.Output(display_name="latent"),
                     io.Image.Output(display_name="depth_preview",
                                     tooltip="The condition as the model gets it, at width x height (official "
                                             "--save_cond), 0..1.")],
        )

    @classmethod
    def validate_inputs(cls, normalization=None, input_types=None):
        return check_inputs(cls, {"normalization": normalization}, input_types)

    @classmethod
    def execute(cls, positive, negative, depth, width, height, normalization, batch_size):
        node = "VP_MakeYourVideoConditioning"
        ensure_inputs(cls, width=width, height=height, normalization=normalization, batch_size=batch_size)
        _check_size(node, width, height)
        d = depth_frames(node, depth)
        frames = d.shape[0]
        if frames < 2:
            raise ValueError(f"{node}: Make-Your-Video makes a clip: the depth has {frames} frame; give at least 2 "
                             f"depth maps ({myv.TRAINED_FRAMES} is what the model was trained on), e.g. "
                             "VP_SelectFrames -> VP_EstimateDepth on the source video")
        if not torch.isfinite(d).all():
            raise ValueError(f"{node}: the depth has NaN or infinite values")
        if frames > myv.MAX_FRAMES:
            myv.logger.warning("%s: %d frames: more than the %d the official causal mask is built for; sample "
                               "them with VP_SampleVideoWindows (KSampler would run them in one pass)", node,
                               frames, myv.MAX_FRAMES)
        cond = myv.depth_condition(d, (height // 8, width // 8), normalization)
        values = {"lvdm_depth": cond, "num_video_frames": int(frames)}
        positive = node_helpers.conditioning_set_values(positive, values)
        negative = node_helpers.conditioning_set_values(negative, values)
        preview = myv.depth_condition(d, (height, width), normalization)[:, 0]
        preview = ((preview + 1) / 2).unsqueeze(-1).expand(-1, -1, -1, 3).contiguous()
        return io.NodeOutput(positive, negative, _empty_latent(batch_size, frames, width, height),
                             preview.to(mm.intermediate_device()))


def _frames_of(conditioning, rows: int) -> int:
    for _tensor, values in conditioning:
        if "num_video_frames" in values:
            return int(values["num_video_frames"])
    return rows


def slice_conditioning(conditioning, window: myv.Window, frames: int, videos: int):
    """The conditioning of one window: per-frame conditions cut to the window's frames, the clip length set."""
    out = []
    for tensor, values in conditioning:
        values = values.copy()
        for key in PER_FRAME_KEYS:
            cond = values.get(key)
            if not torch.is_tensor(cond) or (cond.shape[0] == 1 and frames > 1):
                continue  # one map for every frame
            if cond.shape[0] == frames:
                values[key] = cond[window.start:window.stop]
            elif cond.shape[0] == frames * videos:
                values[key] = cond[myv.window_rows(window, frames, videos)]
            else:
                raise ValueError(f"VP_SampleVideoWindows: {key} has {cond.shape[0]} frames; the video has {frames}")
        values["num_video_frames"] = window.frames
        out.append([tensor, values])
    return out


class SampleVideoWindows(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_SampleVideoWindows",
            display_name="Sample Long Video (windows)",
            category=CATEGORY,
            description="KSampler for LVDM videos longer than one pass (Make-Your-Video: 64 frames, the size of its "
                        "causal temporal mask). The clip is sampled window by window; each later window starts with "
                        "the last 'overlap' frames of the result so far, kept fixed (core's inpainting noise mask, "
                        "per frame) so the new frames continue them. Per-frame conditions (the depth) are cut to "
                        "each window; normalise the depth once for the whole clip (the conditioning node does). "
                        "The noise of every frame is drawn once for the whole clip from the seed. A clip that fits "
                        "one window is exactly core KSampler (with sampler + sigmas, e.g. VP_LVDMOfficialDDIM + "
                        "VP_LVDMScheduler: exactly core SamplerCustom).",
            inputs=[
                io.Model.Input("model"),
                io.Conditioning.Input("positive"),
                io.Conditioning.Input("negative"),
                io.Latent.Input("latent", tooltip="All frames (e.g. VP_MakeYourVideoConditioning's latent)."),
                io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff, control_after_generate=True),
                io.Int.Input("steps", default=50, min=1, max=10000, tooltip="Official: DDIM 50."),
                io.Float.Input("cfg", default=7.5, min=0.0, max=100.0, step=0.1, round=0.01),
                io.Combo.Input("sampler_name", options=list(comfy.samplers.KSampler.SAMPLERS), default="ddim"),
                io.Combo.Input("scheduler", options=list(comfy.samplers.KSampler.SCHEDULERS),
                               default="ddim_uniform"),
                io.Int.Input("window", default=myv.MAX_FRAMES, min=2, max=myv.MAX_FRAMES,
                             tooltip="Frames per pass; at most 64 (Make-Your-Video's causal mask is built for 64)."),
                io.Int.Input("overlap", default=myv.TRAINED_FRAMES, min=0, max=myv.MAX_FRAMES - 1,
                             tooltip="Frames of the previous window each new window starts with (fixed). 16 = "
                                     "the causal attention window: the first new frame sees 15 known ones."),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01),
                io.Sampler.Input("sampler", optional=True,
                                 tooltip="With sigmas: this SAMPLER (e.g. VP_LVDMOfficialDDIM, the official "
                                         "sampler) instead of sampler_name / scheduler / steps / denoise."),
                io.Sigmas.Input("sigmas", optional=True, tooltip="With sampler: e.g. VP_LVDMScheduler."),
            ],
            outputs=[io.Latent.Output(display_name="latent")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, sampler_name=None, scheduler=None, window=None, overlap=None, cfg=None, denoise=None,
                        input_types=None):
        checked = check_inputs(cls, {"sampler_name": sampler_name, "scheduler": scheduler, "window": window,
                                     "overlap": overlap, "cfg": cfg, "denoise": denoise}, input_types)
        if checked is not True:
            return checked
        if isinstance(window, int) and isinstance(overlap, int) and overlap >= window:
            return f"overlap ({overlap}) must be smaller than window ({window})"
        return True

    @classmethod
    def execute(cls, model, positive, negative, latent, seed, steps, cfg, sampler_name, scheduler, window, overlap,
                denoise, sampler=None, sigmas=None):
        from ..pipelines.lvdm.comfy_model import lvdm_variant

        node = "VP_SampleVideoWindows"
        ensure_inputs(cls, seed=seed, steps=steps, cfg=cfg, sampler_name=sampler_name, scheduler=scheduler,
                      window=window, overlap=overlap, denoise=denoise)
        if (sampler is None) != (sigmas is None):
            raise ValueError(f"{node}: connect both sampler and sigmas (or neither: then sampler_name, scheduler, "
                             "steps and denoise are used)")
        if sigmas is not None:
            steps = len(sigmas) - 1
            if steps < 1:
                raise ValueError(f"{node}: sigmas must hold at least 2 values, got {len(sigmas)}")
        if lvdm_variant(model) is None:
            raise ValueError(f"{node}: expected an LVDM MODEL (VP_LoadLVDMCheckpoint), got "
                             f"{type(getattr(model, 'model', model)).__name__}")
        latent_image = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
        rows = latent_image.shape[0]
        frames = _frames_of(positive, rows)
        if frames != _frames_of(negative, rows):
            raise ValueError(f"{node}: positive ({frames} frames) and negative ({_frames_of(negative, rows)}) "
                             "describe clips of different lengths")
        if frames < 1 or rows % frames:
            raise ValueError(f"{node}: the latent has {rows} frames, not a whole number of {frames}-frame clips "
                             "(the conditioning's clip length)")
        videos = rows // frames
        try:
            plan = myv.window_plan(frames, window, overlap)
        except ValueError as e:
            raise ValueError(f"{node}: {e}") from None

        noise = comfy.sample.prepare_noise(latent_image, seed, latent.get("batch_index"))
        user_mask = latent.get("noise_mask")
        if user_mask is not None:
            user_mask = comfy.sampler_helpers.prepare_mask(user_mask, latent_image.shape, torch.device("cpu"))
        result = latent_image.clone()
        progress = PassProgress(model, steps, len(plan), cls.hidden.unique_id if cls.hidden else None)

        for i, win in enumerate(plan):
            mm.throw_exception_if_processing_interrupted()
            idx = myv.window_rows(win, frames, videos)
            mask = None
            if win.context or user_mask is not None:
                mask = torch.ones((len(idx), 1) + tuple(latent_image.shape[2:]))
                if win.context:
                    # rows are video-major: the first `context` frames of each video's window are known
                    mask.view(videos, win.frames, *mask.shape[1:])[:, :win.context] = 0.0
                if user_mask is not None:
                    mask = mask * user_mask[idx]

            callback = progress.callback(i)
            pos_w = slice_conditioning(positive, win, frames, videos)
            neg_w = slice_conditioning(negative, win, frames, videos)
            quiet = not comfy.utils.PROGRESS_BAR_ENABLED
            if sampler is not None:
                samples = comfy.sample.sample_custom(model, noise[idx], cfg, sampler, sigmas, pos_w, neg_w,
                                                     result[idx], noise_mask=mask, callback=callback,
                                                     disable_pbar=quiet, seed=seed)
            else:
                samples = comfy.sample.sample(model, noise[idx], steps, cfg, sampler_name, scheduler, pos_w, neg_w,
                                              result[idx], denoise=denoise, noise_mask=mask, callback=callback,
                                              disable_pbar=quiet, seed=seed)
            # Only the new frames are taken: the known ones stay bit-identical to the previous window's output.
            new = [r for j, r in enumerate(idx) if j % win.frames >= win.context]
            keep = [j for j in range(len(idx)) if j % win.frames >= win.context]
            result[new] = samples[keep].to(result.dtype)
        out = latent.copy()  # as core KSampler: the input's other keys (noise_mask, batch_index) pass through
        out["samples"] = result.to(mm.intermediate_device())
        return io.NodeOutput(out)


MYV_NODES = [SelectFrames, MakeYourVideoConditioning, SampleVideoWindows]
