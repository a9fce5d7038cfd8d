"""Depth estimator nodes (design-card stage): load MiDaS DPT-Hybrid / Depth-Anything-V2, estimate per-frame depth."""
from __future__ import annotations

import os
from dataclasses import dataclass

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import folder_paths
import torch
from comfy_api.latest import io

from ..pipelines.depth.normalize import MODES, normalize_depth
from .common import check_inputs, display_path, ensure_inputs, frame_strip, model_files, other_pack_folder
from .prior_loading import DTYPES, torch_dtype

CATEGORY = "VideoPriors/depth"
FOLDER_KEY = "depth"
# Folders other packs keep the same files in (so users do not copy gigabytes twice): kijai's ComfyUI-DepthAnythingV2
# (models/depthanything), and comfyui_controlnet_aux's annotator downloads (only depth files are listed from there).
OTHER_MODEL_FOLDERS = ("depthanything", "midas")
AUX_FOLDERS = (("custom_nodes", "comfyui_controlnet_aux", "ckpts"),)
DEPTH_NAME_HINTS = ("dpt_hybrid", "depth_anything", "depth-anything", "midas")
EXTENSIONS = (".pt", ".pth", ".safetensors", ".bin", ".ckpt")
DepthModel = io.Custom("VP_DEPTH_MODEL")
Depth = io.Custom("VP_DEPTH")


def _aux_roots() -> list[str]:
    return [other_pack_folder(*parts) for parts in AUX_FOLDERS]


def register_folders() -> None:
    base = folder_paths.models_dir
    folder_paths.add_model_folder_path(FOLDER_KEY, os.path.join(base, FOLDER_KEY), is_default=True)
    for name in OTHER_MODEL_FOLDERS:
        folder_paths.add_model_folder_path(FOLDER_KEY, os.path.join(base, name))
    for path in _aux_roots():
        folder_paths.add_model_folder_path(FOLDER_KEY, path)


def _is_model_folder(path: str) -> bool:
    cfg = os.path.join(path, "config.json")
    if not os.path.isfile(cfg):
        return False
    try:
        with open(cfg, encoding="utf-8") as f:
            text = f.read(200_000)
    except OSError:
        return False
    return '"depth_anything"' in text or '"dpt"' in text


def _candidates() -> dict[str, str]:
    """{name shown in the list: path}; files anywhere under the depth folders, transformers folders by name."""
    aux = {os.path.normcase(os.path.abspath(p)) for p in _aux_roots()}

    def accept(root: str, name: str) -> bool:  # another pack's folder: depth files only
        return (os.path.normcase(os.path.abspath(root)) not in aux
                or any(h in name.lower() for h in DEPTH_NAME_HINTS))

    return model_files(FOLDER_KEY, EXTENSIONS, accept=accept, is_model_folder=_is_model_folder)


def list_depth_models() -> list[str]:
    return sorted(_candidates())


def resolve_depth_model(name: str) -> str:
    from ..pipelines.depth.checkpoint import WHERE_TO_GET

    path = _candidates().get(name)
    if path is None:
        raise FileNotFoundError(f"VP_LoadDepthModel: {name!r} is not in models/{FOLDER_KEY}/ (nor in "
                                f"models/depthanything/ or comfyui_controlnet_aux's ckpts). " + WHERE_TO_GET)
    return path


@dataclass
class DepthModelHandle:
    """VP_DEPTH_MODEL: a DepthEstimator under ComfyUI's model management."""

    estimator: torch.nn.Module
    patcher: object
    name: str

    def load(self) -> None:
        mm.load_models_gpu([self.patcher])


def _grey(depth01: torch.Tensor) -> torch.Tensor:
    return depth01.unsqueeze(-1).expand(*depth01.shape, 3).contiguous()


class LoadDepthModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_LoadDepthModel",
            display_name="Load Depth Model (MiDaS / Depth-Anything-V2)",
            category=CATEGORY,
            description="Loads a monocular depth estimator from models/depth/ (also models/depthanything/ and "
                        "comfyui_controlnet_aux's downloads): MiDaS v3 DPT-Hybrid (dpt_hybrid-midas-501f0c75.pt, "
                        "what Make-Your-Video uses) or Depth-Anything-V2 Small/Base/Large (original .pth or a "
                        "transformers folder). The model is detected from the file's keys.",
            inputs=[
                io.Combo.Input("model_name", options=list_depth_models(),
                               tooltip="A file (or transformers folder, shown with a trailing /) in models/depth."),
                io.Combo.Input("weight_dtype", options=DTYPES, default="auto",
                               tooltip="auto = fp16 where the device runs it well, fp32 on CPU."),
            ],
            outputs=[DepthModel.Output(display_name="depth_model")],
        )

    @classmethod
    def validate_inputs(cls, model_name, weight_dtype, input_types=None):
        return check_inputs(cls, {"model_name": model_name, "weight_dtype": weight_dtype}, input_types)

    @classmethod
    def execute(cls, model_name, weight_dtype):
        from ..pipelines.depth.checkpoint import (
            DepthCheckpointError,
            build_network,
            read_depth_checkpoint,
        )
        from ..pipelines.depth.estimate import DepthEstimator

        path = resolve_depth_model(model_name)
        load_device = mm.get_torch_device()
        dtype = torch_dtype(weight_dtype, load_device)
        try:
            ck = read_depth_checkpoint(path)
            estimator = DepthEstimator(build_network(ck, dtype=dtype), ck.kind)
        except DepthCheckpointError as e:
            raise ValueError(f"VP_LoadDepthModel: {display_path(str(e))}") from None
        del ck
        patcher = comfy.model_patcher.ModelPatcher(estimator, load_device=load_device,
                                                   offload_device=mm.unet_offload_device())
        return io.NodeOutput(DepthModelHandle(estimator, patcher, model_name))


class EstimateDepth(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_EstimateDepth",
            display_name="Estimate Depth (video)",
            category=CATEGORY,
            description="Per-frame relative inverse depth (near = large) at the frames' size, with each model's "
                        "official preprocessing (MiDaS: 384x384, aspect not kept, as Make-Your-Video; "
                        "Depth-Anything-V2: aspect kept, shorter side >= input_size, multiple of 14). 'depth' keeps "
                        "the raw values (full precision) for the conditioning nodes; 'preview' is normalised: "
                        "per_frame = each frame's min/max (flickers when near or far things move), clip = one "
                        "min/max for the clip, stable = frames aligned to their neighbours by a least-squares scale "
                        "and shift, then one min/max.",
            inputs=[
                DepthModel.Input("depth_model"),
                io.Image.Input("images", tooltip="Video frames (e.g. core LoadVideo -> GetVideoComponents)."),
                io.Combo.Input("normalization", options=list(MODES), default="stable",
                               tooltip="For the preview only; the depth output stays raw."),
                io.Int.Input("batch_size", default=4, min=1, max=256,
                             tooltip="Frames per forward pass (memory vs speed)."),
                io.Int.Input("input_size", default=518, min=14, max=4088, step=14,
                             tooltip="Depth-Anything-V2 only: lower bound of the shorter side (official 518). "
                                     "MiDaS always works at 384x384."),
            ],
            outputs=[Depth.Output(display_name="depth"), io.Image.Output(display_name="preview")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, normalization, input_types=None):
        return check_inputs(cls, {"normalization": normalization}, input_types)

    @classmethod
    def execute(cls, depth_model, images, normalization, batch_size, input_size):
        ensure_inputs(cls, batch_size=batch_size, input_size=input_size)
        if input_size % 14:
            raise ValueError(f"VP_EstimateDepth: input_size must be a multiple of 14 (the ViT patch), got "
                             f"{input_size}")
        if images.ndim != 4 or images.shape[0] < 1:
            raise ValueError(f"VP_EstimateDepth: expected IMAGE frames [N, H, W, C], got {list(images.shape)}")
        depth_model.load()
        frames = images[..., :3]
        pbar = comfy.utils.ProgressBar(frames.shape[0], node_id=cls.hidden.unique_id if cls.hidden else None)

        def step(done, chunk):
            mm.throw_exception_if_processing_interrupted()
            pbar.update_absolute(done, frames.shape[0],
                                 ("JPEG", frame_strip(_grey(normalize_depth(chunk, "per_frame"))), 512))

        video = depth_model.estimator.estimate(frames, batch_size=batch_size, input_size=input_size, step=step)
        preview = _grey(normalize_depth(video.depth, normalization))
        return io.NodeOutput(video, preview.to(mm.intermediate_device()))


class DepthPreview(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_DepthPreview",
            display_name="Depth to Image (normalised)",
            category=CATEGORY,
            description="Turns a depth clip into grey IMAGE frames (white = near) with a chosen normalisation: "
                        "per_frame (each frame's min/max, what Make-Your-Video and most depth nodes do: flickers when "
                        "near or far things move), clip (one min/max for the clip), stable (frames aligned to their "
                        "neighbours by a least-squares scale and shift, then one min/max).",
            inputs=[Depth.Input("depth"),
                    io.Combo.Input("normalization", options=list(MODES), default="stable")],
            outputs=[io.Image.Output(display_name="IMAGE")],
        )

    @classmethod
    def validate_inputs(cls, normalization, input_types=None):
        return check_inputs(cls, {"normalization": normalization}, input_types)

    @classmethod
    def execute(cls, depth, normalization):
        return io.NodeOutput(_grey(normalize_depth(depth.depth, normalization)).to(mm.intermediate_device()))


DEPTH_NODES = [LoadDepthModel, EstimateDepth, DepthPreview]
