"""Frame interpolation nodes (design-card last stage): load a RIFE checkpoint, make more frames of an IMAGE clip."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import folder_paths
import torch
from comfy_api.latest import io

from .common import (
    check_inputs,
    display_path,
    ensure_inputs,
    frame_strip,
    model_files,
    other_pack_folder,
    require_memory,
)
from .prior_loading import DTYPES, torch_dtype

CATEGORY = "VideoPriors/interpolation"
FOLDER_KEY = "frame_interpolation"
# ComfyUI-Frame-Interpolation keeps its downloads here: read them in place instead of copying.
OTHER_PACK_FOLDERS = (("custom_nodes", "ComfyUI-Frame-Interpolation", "ckpts", "rife"),)
EXTENSIONS = (".pth", ".pkl", ".pt", ".ckpt", ".safetensors", ".bin")
SCALE_FACTORS = ["1.0", "0.5", "0.25", "2.0", "4.0"]
FrameInterpolator = io.Custom("VP_FRAME_INTERPOLATOR")
log = logging.getLogger("VideoPriors")


def _other_pack_roots() -> list[str]:
    return [other_pack_folder(*parts) for parts in OTHER_PACK_FOLDERS]


def register_folders() -> None:
    folder_paths.add_model_folder_path(FOLDER_KEY, os.path.join(folder_paths.models_dir, FOLDER_KEY),
                                       is_default=True)
    for path in _other_pack_roots():
        folder_paths.add_model_folder_path(FOLDER_KEY, path)


def _candidates() -> dict[str, str]:
    """{name shown in the list: path} for model files anywhere under the frame-interpolation folders."""
    return model_files(FOLDER_KEY, EXTENSIONS)


def list_interpolators() -> list[str]:
    return sorted(_candidates())


def resolve_interpolator(name: str) -> str:
    from ..pipelines.interpolation.rife_checkpoint import WHERE_TO_GET

    path = _candidates().get(name)
    if path is None:
        raise FileNotFoundError(f"VP_LoadFrameInterpolator: {name!r} is not in models/{FOLDER_KEY}/ (nor in "
                                f"ComfyUI-Frame-Interpolation's ckpts/rife). " + WHERE_TO_GET)
    return path


@dataclass
class FrameInterpolatorHandle:
    """VP_FRAME_INTERPOLATOR: a RIFE IFNet under ComfyUI's model management."""

    model: torch.nn.Module
    patcher: object
    name: str
    version: str
    description: str

    def load(self) -> None:
        mm.load_models_gpu([self.patcher])


class LoadFrameInterpolator(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_LoadFrameInterpolator",
            display_name="Load Frame Interpolator (RIFE)",
            category=CATEGORY,
            description="Loads a RIFE frame-interpolation checkpoint (4.7 / 4.8 / 4.9, 4.17 / 4.18, 4.22 (+lite), "
                        "4.25 / 4.26 (+lite, heavy)) from models/frame_interpolation/ or ComfyUI-Frame-Interpolation's "
                        "ckpts/rife folder. Plain PyTorch (nothing to compile). The version is detected from the "
                        "file's keys and shapes (the file name only tells releases with identical layouts apart); "
                        "Practical-RIFE's 'module.'-prefixed files load too. Loading is strict: a file that does not "
                        "match a RIFE layout exactly is refused.",
            inputs=[
                io.Combo.Input("model_name", options=list_interpolators(),
                               tooltip="A RIFE file (e.g. rife49.pth) in models/frame_interpolation."),
                io.Combo.Input("weight_dtype", options=DTYPES, default="auto",
                               tooltip="auto = fp16 where the device runs it well, fp32 on CPU. Warping is always "
                                       "done in fp32."),
            ],
            outputs=[FrameInterpolator.Output(display_name="interpolator"),
                     io.String.Output(display_name="info", tooltip="The version picked and how.")],
        )

    @classmethod
    def validate_inputs(cls, model_name, weight_dtype, input_types=None):
        return check_inputs(cls, {"model_name": model_name, "weight_dtype": weight_dtype}, input_types)

    @classmethod
    def execute(cls, model_name, weight_dtype):
        from ..pipelines.interpolation.rife_checkpoint import (
            RifeCheckpointError,
            load_rife,
        )

        path = resolve_interpolator(model_name)
        load_device = mm.get_torch_device()
        dtype = torch_dtype(weight_dtype, load_device)
        try:
            model, ck = load_rife(path, dtype=dtype)
        except RifeCheckpointError as e:
            raise ValueError(f"VP_LoadFrameInterpolator: {display_path(str(e))}") from None
        info = f"{model_name}: RIFE {ck.version} ({ck.how}); {str(dtype).replace('torch.', '')}"
        log.info("VideoPriors: %s", info)
        patcher = comfy.model_patcher.ModelPatcher(model, load_device=load_device,
                                                   offload_device=mm.unet_offload_device())
        return io.NodeOutput(FrameInterpolatorHandle(model, patcher, model_name, ck.version, info), info)


class InterpolateFrames(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_InterpolateFrames",
            display_name="Interpolate Frames (RIFE)",
            category=CATEGORY,
            description="More frames between the frames of a clip. multiplier m: m-1 in-betweens per pair, the input "
                        "frames kept exactly ((N-1)*m+1 frames, N*m with loop); or target_fps > 0: frames at the "
                        "times k*source_fps/target_fps (e.g. 24 -> 60 fps), each made from its two neighbours at "
                        "the fractional time. Frames go through the network in batches and stream back to the CPU, "
                        "so memory stays flat on long clips. Also outputs the new frame rate.",
            inputs=[
                FrameInterpolator.Input("interpolator"),
                io.Image.Input("images", tooltip="The clip's frames (at least two, all the same size)."),
                io.Int.Input("multiplier", default=2, min=2, max=16,
                             tooltip="Output frames per input frame (used when target_fps is 0)."),
                io.Float.Input("source_fps", default=8.0, min=0.01, max=1000.0, step=0.01,
                               tooltip="Frame rate of the input clip (for target_fps and the fps output)."),
                io.Float.Input("target_fps", default=0.0, min=0.0, max=1000.0, step=0.01,
                               tooltip="0 = use the multiplier. Otherwise the output frame rate: higher than "
                                       "source_fps, at most 16x it."),
                io.Combo.Input("scale_factor", options=SCALE_FACTORS, default="1.0",
                               tooltip="Flow resolution: 0.5 for 4K-ish frames, 0.25 for 8K (faster, coarser "
                                       "motion); 2.0 / 4.0 for small frames with fine motion."),
                io.Boolean.Input("ensemble", default=False,
                                 tooltip="Also run the pair reversed in time and average (smoother where the flow "
                                         "is uncertain); costs twice the compute."),
                io.Float.Input("scene_cut_threshold", default=0.0, min=0.0, max=1.0, step=0.01,
                               tooltip="0 = off. A pair whose mean absolute difference (0..1) exceeds it is a scene "
                                       "cut: its in-betweens repeat the earlier frame instead of blending two "
                                       "shots. About 0.15 suits most footage."),
                io.Boolean.Input("loop", default=False,
                                 tooltip="The clip loops: also interpolate from the last frame back to the first."),
                io.Int.Input("batch_size", default=1, min=1, max=64,
                             tooltip="In-between frames per forward pass. On CPU 1 is fastest (measured); on a GPU "
                                     "larger batches can raise throughput at the cost of memory."),
            ],
            outputs=[io.Image.Output(display_name="IMAGE"),
                     io.Float.Output(display_name="fps", tooltip="The output frame rate.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, multiplier, source_fps, target_fps, scale_factor, scene_cut_threshold, batch_size,
                        input_types=None):
        result = check_inputs(cls, {"multiplier": multiplier, "source_fps": source_fps, "target_fps": target_fps,
                                    "scale_factor": scale_factor, "scene_cut_threshold": scene_cut_threshold,
                                    "batch_size": batch_size}, input_types)
        if result is not True:
            return result
        if isinstance(target_fps, (int, float)) and isinstance(source_fps, (int, float)) and target_fps > 0:
            return _fps_problem(source_fps, target_fps) or True
        return True

    @classmethod
    def execute(cls, interpolator, images, multiplier, source_fps, target_fps, scale_factor, ensemble,
                scene_cut_threshold, loop, batch_size):
        from ..pipelines.interpolation.frames import (
            interpolate_frames,
            output_bytes,
            plan_times,
        )

        node = "VP_InterpolateFrames"
        ensure_inputs(cls, multiplier=multiplier, source_fps=source_fps, target_fps=target_fps,
                      scale_factor=scale_factor, scene_cut_threshold=scene_cut_threshold, batch_size=batch_size)
        if target_fps > 0 and (problem := _fps_problem(source_fps, target_fps)):
            raise ValueError(f"{node}: {problem}")
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] < 2:
            got = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"{node}: needs at least two frames [N, H, W, C] of one size, got {got}")
        try:
            if target_fps > 0:
                times = plan_times(images.shape[0], source_fps=source_fps, target_fps=target_fps, loop=loop)
                fps = float(target_fps)
            else:
                times = plan_times(images.shape[0], multiplier=multiplier, loop=loop)
                fps = float(source_fps) * multiplier
        except ValueError as e:
            raise ValueError(f"{node}: {e}") from None
        _, h, w, _ = images.shape
        require_memory(node, output_bytes(len(times), h, w), f"{len(times)} output frames of {w}x{h}",
                       "use fewer frames, a lower multiplier / target_fps, or smaller frames")
        interpolator.load()
        pbar = comfy.utils.ProgressBar(1, node_id=cls.hidden.unique_id if cls.hidden else None)

        def progress(done, total, batch):
            pbar.update_absolute(done, total, ("JPEG", frame_strip(batch), 512))

        result = interpolate_frames(interpolator.model, images, times, scale_factor=float(scale_factor),
                                    ensemble=ensemble, batch_size=batch_size, scene_cut=scene_cut_threshold,
                                    loop=loop, progress=progress,
                                    interrupt=mm.throw_exception_if_processing_interrupted)
        if result.cut_pairs:
            log.info("VideoPriors: %s held %d scene cut(s) (pairs %s)", node, len(result.cut_pairs),
                     result.cut_pairs[:8])
        return io.NodeOutput(result.frames.to(mm.intermediate_device()), fps)


def _fps_problem(source_fps: float, target_fps: float) -> str | None:
    if target_fps <= source_fps:
        return (f"target_fps {target_fps} must be higher than source_fps {source_fps} (0 = use the multiplier; "
                f"interpolation only adds frames)")
    if target_fps > 16 * source_fps:
        return f"target_fps {target_fps} is more than 16x source_fps {source_fps}; raise source_fps or lower it"
    return None


INTERPOLATION_NODES = [LoadFrameInterpolator, InterpolateFrames]
