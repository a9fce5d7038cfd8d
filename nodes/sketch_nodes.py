"""Sketch nodes: load an SVG, animate it procedurally, rasterize it, write it back as SVG."""
from __future__ import annotations

import os
from io import BytesIO

import torch
from comfy_api.latest import io, ui

import comfy.model_management
import comfy.utils
import folder_paths

from ..pipelines.interpolation.sketch_inbetween import MAX_FPS, MAX_FRAMES, MAX_MULTIPLIER
from ..pipelines.interpolation.sketch_inbetween import MODES as INBETWEEN_MODES
from ..pipelines.interpolation.sketch_inbetween import InterpolationError, interpolate_sketch, output_timing
from ..pipelines.motion import PRESETS, procedural_motion
from ..pipelines.raster import diffvg_available
from ..pipelines.render_budget import output_bytes, render_bounded
from ..pipelines.sketch import Sketch as SketchData
from ..pipelines.sketch import SketchAnimation as AnimationData
from ..pipelines.svg import MAX_BYTES as MAX_SVG_BYTES
from ..pipelines.svg import SVGLoadError, load_svg_sketch
from ..pipelines.svg_export import INTERPOLATIONS, animated_svg, animation_frames_svg, parse_color
from .common import (Sketch, SketchAnimation, check_color, check_filename_prefix, check_inputs, display_path,
                     ensure_inputs, file_digest, first_error, list_svg_files, require_memory, resolve_svg_path)

CATEGORY = "VideoPriors/sketch"
# Working memory of one rasterizer call (pipelines/render_budget.py tiles bigger renders); with the output
# itself this keeps a preview or a render of moderate size under about 1 GB.
RENDER_BUDGET = 512 * 1024 ** 2


def _as_animation(item) -> AnimationData:
    if isinstance(item, AnimationData):
        return item
    if isinstance(item, SketchData):
        return item.as_animation(1)
    raise ValueError(f"expected a VP_SKETCH or VP_SKETCH_ANIMATION, got {type(item).__name__}")


def _background(text: str):
    try:
        return parse_color(text)
    except ValueError as e:
        raise ValueError(f"background: {e}") from None


def render_frames(anim: AnimationData, width: int, height: int, background, quality: int = 1,
                  backend: str = "torch", node_id=None, node_type: str = "VP_RasterizeSketch",
                  knob: str = "lower width/height or the number of frames") -> torch.Tensor:
    """[K, H, W, 3] frames, with progress and interruption; the result's memory is checked before it is
    allocated and the render's working memory stays under RENDER_BUDGET (render_bounded tiles it)."""
    k = anim.num_frames
    require_memory(node_type, output_bytes(k, width, height), f"{k} frames of {width}x{height} (float32 RGB)", knob)
    if not bool(torch.isfinite(anim.points).all()):
        raise ValueError(f"{node_type}: the sketch's points hold NaN or infinite values")
    out = torch.empty(k, height, width, 3)
    pbar = comfy.utils.ProgressBar(k, node_id=node_id) if k > 1 else None
    render_bounded(anim.points, anim.style, (anim.width, anim.height), (width, height),
                   background=background if background is not None else (1.0, 1.0, 1.0), quality=quality,
                   backend=backend, budget=RENDER_BUDGET,
                   check_interrupt=comfy.model_management.throw_exception_if_processing_interrupted,
                   progress=(lambda done, total: pbar.update_absolute(done, total)) if pbar else None, out=out)
    return out.clamp_(0, 1)


def svg_text_bytes(anim: AnimationData) -> int:
    """Memory of writing every frame's coordinates as SVG text: about 16 characters per point and frame,
    held a few times over while the document is joined and encoded."""
    return int(anim.num_frames) * int(anim.points.shape[1]) * 16 * 4


class LoadSVGSketch(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_LoadSVGSketch",
            display_name="Load SVG Sketch",
            category=CATEGORY,
            description="Loads an SVG file (or SVG text) as a vector sketch of cubic Bezier paths.",
            inputs=[
                io.Combo.Input("svg", options=list_svg_files(),
                               tooltip="An SVG in ComfyUI's input folder (the 'upload SVG' button puts one there), "
                                       "or a sketch bundled with the pack (examples/...)."),
                io.Int.Input("canvas_size", default=256, min=16, max=4096, step=8,
                             tooltip="Width and height of the sketch canvas in pixels."),
                io.Boolean.Input("fit_to_canvas", default=True,
                                 tooltip="Scale and centre the drawing to fill the canvas (with a small margin)."),
                io.Float.Input("stroke_width", default=0.0, min=0.0, max=64.0, step=0.1,
                               tooltip="Override every stroke's width (canvas pixels); 0 keeps the file's widths."),
                io.Boolean.Input("force_black", default=False,
                                 tooltip="LiveSketch convention: black strokes, no fills."),
                io.Int.Input("max_paths", default=0, min=0, max=100000,
                             tooltip="Keep only the first N paths (0 = all)."),
                io.String.Input("svg_text", default="", multiline=True, optional=True,
                                tooltip="SVG source text; when not empty it is used instead of the file."),
            ],
            outputs=[Sketch.Output(display_name="sketch"), io.Image.Output(display_name="preview")],
        )

    @classmethod
    def _source(cls, svg, svg_text):
        if svg_text and svg_text.strip():
            return svg_text
        with open(resolve_svg_path(svg), "rb") as f:
            # One byte past the loader's size limit is enough for it to refuse the file.
            return f.read(MAX_SVG_BYTES + 1)

    @classmethod
    def validate_inputs(cls, svg, stroke_width, input_types=None, svg_text=""):
        # Named arguments only (check_inputs checks what they name; ComfyUI keeps its range check on the INTs).
        values = {"stroke_width": stroke_width}
        if not (svg_text and svg_text.strip()):
            values["svg"] = svg  # must be a name list_svg_files() gives now: no path, no '..'
        result = check_inputs(cls, values, input_types)
        if result is not True or "svg" not in values or svg is None:
            return result
        try:
            resolve_svg_path(svg)
        except FileNotFoundError as e:
            return display_path(str(e))
        return True

    @classmethod
    def fingerprint_inputs(cls, svg, svg_text="", **_ignored):
        if svg_text and svg_text.strip():
            return svg_text
        try:
            return file_digest(resolve_svg_path(svg))
        except FileNotFoundError:
            return svg

    @classmethod
    def execute(cls, svg, canvas_size, fit_to_canvas, stroke_width, force_black, max_paths, svg_text=""):
        ensure_inputs(cls, canvas_size=canvas_size, stroke_width=stroke_width, max_paths=max_paths)
        try:
            source = cls._source(svg, svg_text)
        except FileNotFoundError as e:
            raise ValueError(f"VP_LoadSVGSketch: {display_path(str(e))}") from None
        try:
            result = load_svg_sketch(source, canvas_size=canvas_size, fit=fit_to_canvas, stroke_width=stroke_width,
                                     force_black=force_black, max_paths=max_paths)
        except SVGLoadError as e:
            raise ValueError(f"VP_LoadSVGSketch: {display_path(str(e))}") from None
        # The loader has logged its warnings once already.
        sketch = result.sketch
        preview = render_frames(sketch.as_animation(1), sketch.width, sketch.height, (1.0, 1.0, 1.0),
                                node_type="VP_LoadSVGSketch", knob="lower canvas_size")
        return io.NodeOutput(sketch, preview)


class RasterizeSketch(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_RasterizeSketch",
            display_name="Rasterize Sketch",
            category=CATEGORY,
            description="Renders a sketch or every frame of a sketch animation to IMAGE frames (anti-aliased, "
                        "at any resolution: vector paths are re-rendered, not upscaled).",
            inputs=[
                io.MultiType.Input("sketch", types=[Sketch, SketchAnimation],
                                   tooltip="A VP_SKETCH or a VP_SKETCH_ANIMATION."),
                io.Int.Input("width", default=0, min=0, max=8192, step=8, tooltip="Output width (0 = canvas width)."),
                io.Int.Input("height", default=0, min=0, max=8192, step=8, tooltip="Output height (0 = canvas height)."),
                io.String.Input("background", default="#ffffff", tooltip="Background colour, #rrggbb."),
                io.Int.Input("quality", default=1, min=1, max=4,
                             tooltip="1 = analytic anti-aliasing; 2-4 = also supersample NxN."),
                io.Combo.Input("backend", options=["torch"] + (["diffvg"] if diffvg_available() else []), default="torch",
                               tooltip="torch: pure PyTorch (CPU and GPU); diffvg only if pydiffvg is installed."),
            ],
            outputs=[io.Image.Output(display_name="frames")],
        )

    @classmethod
    def validate_inputs(cls, background, backend, input_types=None):
        return first_error(check_color("background", background), check_inputs(cls, {"backend": backend}, input_types))

    @classmethod
    def execute(cls, sketch, width, height, background, quality, backend):
        ensure_inputs(cls, width=width, height=height, quality=quality, backend=backend)
        anim = _as_animation(sketch)
        bg = _background(background)
        if bg is None:
            raise ValueError("background: IMAGE frames are opaque; give a colour such as #ffffff")
        scale_w = width or (anim.width if not height else round(anim.width * height / anim.height))
        scale_h = height or (anim.height if not width else round(anim.height * width / anim.width))
        frames = render_frames(anim, scale_w, scale_h, bg, quality, backend, node_id=cls.hidden.unique_id if cls.hidden else None,
                               knob="lower width/height here, or the animation's frames (e.g. VP_ProceduralMotion frames)")
        return io.NodeOutput(frames)


class ProceduralMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_ProceduralMotion",
            display_name="Procedural Sketch Motion",
            category=CATEGORY,
            description="Animates a sketch without any model: per-frame global transforms "
                        "(translate . rotate . shear . scale about the centroid) from a looping preset.",
            inputs=[
                Sketch.Input("sketch"),
                io.Combo.Input("preset", options=list(PRESETS), default="sway"),
                io.Int.Input("frames", default=24, min=1, max=1024),
                io.Float.Input("fps", default=8.0, min=0.1, max=120.0, step=0.1),
                io.Float.Input("amplitude", default=1.0, min=0.0, max=10.0, step=0.05,
                               tooltip="1.0 = the preset's natural size."),
                io.Int.Input("cycles", default=1, min=1, max=64, tooltip="Periods per clip (the clip loops)."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Noise seed of the wiggle preset."),
            ],
            outputs=[SketchAnimation.Output(display_name="animation")],
        )

    @classmethod
    def validate_inputs(cls, preset, fps, amplitude, input_types=None):
        return check_inputs(cls, {"preset": preset, "fps": fps, "amplitude": amplitude}, input_types)

    @classmethod
    def execute(cls, sketch, preset, frames, fps, amplitude, cycles, seed):
        ensure_inputs(cls, preset=preset, frames=frames, fps=fps, amplitude=amplitude, cycles=cycles)
        require_memory("VP_ProceduralMotion", frames * sketch.num_points * 2 * 4 * 2,
                       f"{frames} frames of {sketch.num_points} points", "lower frames")
        return io.NodeOutput(procedural_motion(sketch, preset, frames, fps, amplitude, cycles, seed % (2 ** 63)))


class SketchToSVG(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_SketchToSVG",
            display_name="Sketch to SVG",
            category=CATEGORY,
            description="One SVG document per frame, as core SVG (save it with the core Save SVG node).",
            inputs=[
                io.MultiType.Input("sketch", types=[SketchAnimation, Sketch]),
                io.String.Input("background", default="#ffffff", tooltip="Background colour, #rrggbb, or none."),
            ],
            outputs=[io.SVG.Output(display_name="svg")],
        )

    @classmethod
    def validate_inputs(cls, background):
        return check_color("background", background)

    @classmethod
    def execute(cls, sketch, background):
        from comfy_extras.nodes_images import SVG  # core SVG container (not importable from comfy_api yet)

        anim = _as_animation(sketch)
        require_memory("VP_SketchToSVG", svg_text_bytes(anim), f"{anim.num_frames} SVG documents of "
                       f"{anim.points.shape[1]} points", "lower the animation's frames or the sketch's paths")
        docs = animation_frames_svg(anim, _background(background))
        return io.NodeOutput(SVG([BytesIO(d.encode("utf-8")) for d in docs]))


class SaveAnimatedSVG(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_SaveAnimatedSVG",
            display_name="Save Animated SVG",
            category=CATEGORY,
            description="Writes one looping animated SVG (SMIL <animate> on each path) to the output folder; "
                        "it plays in any browser.",
            inputs=[
                SketchAnimation.Input("animation"),
                io.String.Input("filename_prefix", default="VideoPriors/sketch"),
                io.String.Input("background", default="#ffffff", tooltip="Background colour, #rrggbb, or none."),
                io.Combo.Input("interpolation", options=list(INTERPOLATIONS), default="discrete",
                               tooltip="How the browser plays the frames. discrete: frame by frame at the fps. "
                                       "linear: morphs linearly between frames (exact for VP_InterpolateSketch "
                                       "frames at each frame). spline: the same with eased timing per segment "
                                       "following a Catmull-Rom motion through the frames (smooth, smallest "
                                       "file for few keyframes; exact at the frames only)."),
            ],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, background, interpolation, filename_prefix, input_types=None):
        return first_error(check_color("background", background),
                           check_filename_prefix("filename_prefix", filename_prefix),
                           check_inputs(cls, {"interpolation": interpolation}, input_types))

    @classmethod
    def execute(cls, animation, filename_prefix, background, interpolation):
        ensure_inputs(cls, interpolation=interpolation)
        prefix_ok = check_filename_prefix("filename_prefix", filename_prefix)
        if prefix_ok is not True:
            raise ValueError(f"VP_SaveAnimatedSVG: {prefix_ok}")
        require_memory("VP_SaveAnimatedSVG", svg_text_bytes(animation), f"an animated SVG of {animation.num_frames} "
                       f"frames of {animation.points.shape[1]} points", "lower the animation's frames or the sketch's paths")
        doc = animated_svg(animation, _background(background), interpolation)
        out_dir = folder_paths.get_output_directory()
        full_dir, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, out_dir, animation.width, animation.height)
        name = f"{filename}_{counter:05}_.svg"
        with open(os.path.join(full_dir, name), "w", encoding="utf-8") as f:
            f.write(doc)
        return io.NodeOutput(ui=ui.SavedImages([ui.SavedResult(name, subfolder, io.FolderType.output)], is_animated=True))


class InterpolateSketch(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VP_InterpolateSketch",
            display_name="Interpolate Sketch (vector in-betweens)",
            category=CATEGORY,
            description="More frames for an animated sketch, computed on the control points (never on pixels): "
                        "keyframes are kept exactly, the in-betweens follow a line or a smooth spline through "
                        "them. Cheap (no model, no rendering); the result goes to any sketch node.",
            inputs=[
                SketchAnimation.Input("animation"),
                io.Combo.Input("mode", options=list(INBETWEEN_MODES), default="catmull_rom",
                               tooltip="linear: straight moves between keyframes. catmull_rom: smooth (C1), "
                                       "velocity at each keyframe from its neighbours. natural_cubic: smoothest "
                                       "(C2) spline through every keyframe; may overshoot a little more."),
                io.Int.Input("multiplier", default=3, min=2, max=MAX_MULTIPLIER,
                             tooltip="Frames per keyframe interval (3: 8 keyframes -> 24 frames looping, "
                                     "fps x 3). Used when target_frames and target_fps are 0."),
                io.Int.Input("target_frames", default=0, min=0, max=MAX_FRAMES,
                             tooltip="Total output frames, more than the keyframes (0 = use the multiplier)."),
                io.Float.Input("target_fps", default=0.0, min=0.0, max=MAX_FPS, step=0.5,
                               tooltip="Output fps, above the animation's (0 = use the multiplier). The clip "
                                       "keeps its duration: the fps is rounded to a whole number of frames."),
                io.Boolean.Input("loop", default=True,
                                 tooltip="The animation loops: the last keyframe moves smoothly back to the "
                                         "first (the output covers that closing interval too)."),
            ],
            outputs=[SketchAnimation.Output(display_name="animation"), io.Float.Output(display_name="fps")],
        )

    @classmethod
    def validate_inputs(cls, mode, multiplier, target_frames, target_fps, input_types=None):
        if target_frames and target_fps:  # both literal non-zero (a link is None here)
            return "give target_frames or target_fps, not both (0 = unused)"
        return check_inputs(cls, {"mode": mode, "multiplier": multiplier, "target_frames": target_frames,
                                  "target_fps": target_fps}, input_types)

    @classmethod
    def execute(cls, animation, mode, multiplier, target_frames, target_fps, loop):
        ensure_inputs(cls, mode=mode, multiplier=multiplier, target_frames=target_frames, target_fps=target_fps)
        try:
            frames, _steps, _fps = output_timing(animation.num_frames, float(animation.fps), bool(loop), multiplier,
                                                 target_frames, target_fps)
            require_memory("VP_InterpolateSketch", frames * int(animation.points.shape[1]) * 2 * 4 * 2,
                           f"{frames} frames of {animation.points.shape[1]} points",
                           "lower the multiplier, target_frames or target_fps")
            result = interpolate_sketch(animation, mode, multiplier, target_frames, target_fps, bool(loop))
        except InterpolationError as e:
            raise ValueError(f"VP_InterpolateSketch: {e}") from None
        return io.NodeOutput(result, float(result.fps))


SKETCH_NODES = [LoadSVGSketch, RasterizeSketch, ProceduralMotion, SketchToSVG, SaveAnimatedSVG, InterpolateSketch]
