"""Write the example workflows (UI format, as the ComfyUI frontend saves them) into workflows/.

The node schemas come from a real ComfyUI's /object_info, so widget order and
defaults are the runtime's own. Run with `make workflows` after changing a node.
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from comfy_runtime import (REPO, ComfyServer, _extra_widget_slots, _input_specs, _is_widget,  # noqa: E402
                           has_upload_widget)

sys.path.insert(0, REPO)
from pipelines.livesketch import ANCHORING as LIVESKETCH_ANCHORING  # noqa: E402

WORKFLOW_DIR = os.path.join(REPO, "workflows")


class Graph:
    def __init__(self, object_info: dict):
        self.info = object_info
        self.nodes: list[dict] = []
        self.links: list[list] = []

    def node(self, ntype: str, col: int, row: int, title: str | None = None, **values) -> dict:
        info = self.info[ntype]
        node = {"id": len(self.nodes) + 1, "type": ntype, "pos": [40 + 360 * col, 60 + 300 * row],
                "size": [320, 260], "flags": {}, "order": len(self.nodes), "mode": 0,
                "inputs": [], "outputs": [], "properties": {"Node name for S&R": ntype}, "widgets_values": []}
        if title:
            node["title"] = title
        for name, spec in _input_specs(info):
            if isinstance(values.get(name), tuple):  # a link: (source node, output slot)
                src, slot = values[name]
                self._link(src, slot, node, name, spec)
                if _is_widget(spec):
                    node["widgets_values"].extend([None] * (1 + _extra_widget_slots(name, spec)))
                continue
            if _is_widget(spec):
                opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                default = opts.get("default")
                if default is None and isinstance(spec[0], list):
                    default = spec[0][0] if spec[0] else ""
                if default is None and spec[0] == "COMBO":
                    default = (opts.get("options") or [""])[0]
                node["widgets_values"].append(values.get(name, default))
                if _extra_widget_slots(name, spec):
                    node["widgets_values"].append("fixed")  # the seed's control_after_generate widget
            elif name in values:
                raise ValueError(f"{ntype}.{name} is a socket input: pass (node, slot)")
        if has_upload_widget(info):
            node["widgets_values"].append("image")  # the frontend serialises its upload button last
        for slot, (otype, oname) in enumerate(zip(info["output"], info["output_name"])):
            node["outputs"].append({"name": oname, "type": otype, "links": [], "slot_index": slot})
        self.nodes.append(node)
        return node

    def _link(self, src: dict, slot: int, dst: dict, name: str, spec: list):
        link_id = len(self.links) + 1
        ltype = src["outputs"][slot]["type"]
        self.links.append([link_id, src["id"], slot, dst["id"], len(dst["inputs"]), ltype])
        src["outputs"][slot]["links"].append(link_id)
        entry = {"name": name, "type": spec[0] if isinstance(spec[0], str) else "COMBO", "link": link_id}
        if _is_widget(spec):
            entry["widget"] = {"name": name}
        dst["inputs"].append(entry)

    def to_json(self) -> dict:
        return {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
                "links": self.links, "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}},
                "version": 0.4}


def sketch_motion(info: dict) -> dict:
    g = Graph(info)
    load = g.node("VP_LoadSVGSketch", 0, 0, svg="examples/cat.svg", canvas_size=256)
    motion = g.node("VP_ProceduralMotion", 1, 0, sketch=(load, 0), preset="sway", frames=16, fps=8.0)
    frames = g.node("VP_RasterizeSketch", 2, 0, sketch=(motion, 0), width=256, height=256)
    g.node("VP_SaveAnimatedSVG", 1, 1, animation=(motion, 0), filename_prefix="VideoPriors/sketch_motion")
    g.node("SaveAnimatedWEBP", 3, 0, images=(frames, 0), filename_prefix="VideoPriors/sketch_motion", fps=8.0)
    g.node("SaveAnimatedPNG", 3, 1, images=(frames, 0), filename_prefix="VideoPriors/sketch_motion", fps=8.0)
    video = g.node("CreateVideo", 2, 1, images=(frames, 0), fps=8.0)
    g.node("SaveVideo", 3, 2, video=(video, 0), filename_prefix="VideoPriors/sketch_motion", format="mp4", codec="h264")
    svgs = g.node("VP_SketchToSVG", 1, 2, sketch=(motion, 0))
    g.node("SaveSVGNode", 2, 2, svg=(svgs, 0), filename_prefix="VideoPriors/sketch_motion_frames")
    g.node("PreviewImage", 0, 2, images=(load, 1))
    return g.to_json()


MODELSCOPE_FOLDER = "text-to-video-ms-1.7b"
# Anchoring (not in the paper, on in every LiveSketch workflow here): frame 0 is the user's drawing and the motion
# is relative to it; the shape-preservation and smoothness weights were chosen on the embedded prior
# (scripts/eval_embedded_prior.py --anchoring). Set anchor_first_frame off and both weights to 0 for the
# paper's exact formulation.
ANCHORING = {"anchor_first_frame": LIVESKETCH_ANCHORING["anchor"], "shape_preservation": LIVESKETCH_ANCHORING["shape_weight"],
             "smoothness": LIVESKETCH_ANCHORING["smooth_weight"]}
# The reference keeps the SVG's own coordinates (its inputs are already 256 x 256 drawings, made so by its
# preprocess_sketch.py); the bundled cat is drawn on a 256 canvas, so the templates do not refit it.
REFERENCE_LOAD = {"canvas_size": 256, "fit_to_canvas": False, "force_black": True}


# Vector in-betweens after LiveSketch (VP_InterpolateSketch): the optimised keyframes x 3 (8 -> 24 frames looping,
# fps x 3) on a Catmull-Rom spline through them; no optimisation cost, keyframes kept exactly.
SMOOTH = {"mode": "catmull_rom", "multiplier": 3, "loop": True}


def _smooth_sketch_outputs(g: Graph, anim: dict, col: int, prefix: str, size: int = 0) -> None:
    """Keyframes -> in-betweens -> animated SVG, and frames rasterized from the vectors (canvas size when
    size = 0) -> WEBP / MP4 at the in-betweens' fps."""
    smooth = g.node("VP_InterpolateSketch", col, 0, animation=(anim, 0), **SMOOTH)
    # linear SMIL between the in-betweens: exact at each of them (see pipelines/svg_export.smil_timing)
    g.node("VP_SaveAnimatedSVG", col + 1, 0, animation=(smooth, 0), filename_prefix=prefix, interpolation="linear")
    frames = g.node("VP_RasterizeSketch", col, 1, sketch=(smooth, 0), width=size, height=size)
    g.node("SaveAnimatedWEBP", col + 1, 1, images=(frames, 0), filename_prefix=prefix, fps=(smooth, 1))
    video = g.node("CreateVideo", col, 2, images=(frames, 0), fps=(smooth, 1))
    g.node("SaveVideo", col + 1, 2, video=(video, 0), filename_prefix=prefix, format="mp4", codec="h264")


def livesketch_modelscope(info: dict) -> dict:
    g = Graph(info)
    load = g.node("VP_LoadSVGSketch", 0, 0, svg="examples/cat.svg", **REFERENCE_LOAD)
    model = g.node("VP_SketchMotionModel", 0, 2, frames=24, **ANCHORING)
    prior = g.node("VP_LoadVideoPrior", 1, 0, prior=MODELSCOPE_FOLDER, dtype="auto")
    guidance = g.node("VP_SDSGuidance", 1, 1, prior=(prior, 0), prompt="The cat is wagging its tail and turning its head")
    anim = g.node("VP_AnimateSketch", 2, 0, sketch=(load, 0), motion_model=(model, 0), guidance=(guidance, 0),
                  iterations=1001, seed=1000, fps=8.0)
    _smooth_sketch_outputs(g, anim, 3, "VideoPriors/livesketch")
    return g.to_json()


def livesketch_wan(info: dict) -> dict:
    """LiveSketch with Wan 2.1 T2V 1.3B from ComfyUI's core loaders as the prior (25 = 1 + 4*6 frames)."""
    g = Graph(info)
    text = "The cat is wagging its tail and turning its head"
    load = g.node("VP_LoadSVGSketch", 0, 0, svg="examples/cat.svg", **REFERENCE_LOAD)
    model = g.node("VP_SketchMotionModel", 0, 2, frames=25, **ANCHORING)
    unet = g.node("UNETLoader", 1, 0, unet_name="wan2.1_t2v_1.3B_fp16.safetensors", weight_dtype="default")
    vae = g.node("VAELoader", 1, 1, vae_name="wan_2.1_vae.safetensors")
    clip = g.node("CLIPLoader", 1, 2, clip_name="umt5_xxl_fp8_e4m3fn_scaled.safetensors", type="wan")
    pos = g.node("CLIPTextEncode", 2, 1, title="Prompt", clip=(clip, 0), text=text)
    neg = g.node("CLIPTextEncode", 2, 2, title="Negative prompt", clip=(clip, 0), text="")
    prior = g.node("VP_VideoPriorFromModel", 2, 0, model=(unet, 0), vae=(vae, 0))
    guidance = g.node("VP_SDSGuidance", 3, 0, prior=(prior, 0), prompt=text, positive=(pos, 0), negative=(neg, 0))
    anim = g.node("VP_AnimateSketch", 4, 0, sketch=(load, 0), motion_model=(model, 0), guidance=(guidance, 0),
                  iterations=1001, seed=1000, fps=8.0)
    _smooth_sketch_outputs(g, anim, 5, "VideoPriors/livesketch_wan")
    return g.to_json()



def livesketch_videocrafter2(info: dict) -> dict:
    """LiveSketch with VideoCrafter2 (official model.ckpt, VP_LoadLVDMCheckpoint) as the prior: 16 frames (its
    training length) rendered at 256x256; the graph of livesketch_wan with the LVDM loader."""
    g = Graph(info)
    text = "The cat is wagging its tail and turning its head"
    prefix = "VideoPriors/livesketch_videocrafter2"
    load = g.node("VP_LoadSVGSketch", 0, 0, svg="examples/cat.svg", **REFERENCE_LOAD)
    model = g.node("VP_SketchMotionModel", 0, 2, frames=16, **ANCHORING)
    ckpt = g.node("VP_LoadLVDMCheckpoint", 1, 0, ckpt_name="videocrafter2_512.ckpt", variant="auto",
                  weight_dtype="auto")
    pos = g.node("CLIPTextEncode", 1, 1, title="Prompt", clip=(ckpt, 1), text=text)
    neg = g.node("CLIPTextEncode", 1, 2, title="Negative prompt", clip=(ckpt, 1), text="")
    prior = g.node("VP_VideoPriorFromModel", 2, 0, model=(ckpt, 0), vae=(ckpt, 2))
    guidance = g.node("VP_SDSGuidance", 3, 0, prior=(prior, 0), prompt=text, positive=(pos, 0), negative=(neg, 0))
    anim = g.node("VP_AnimateSketch", 4, 0, sketch=(load, 0), motion_model=(model, 0), guidance=(guidance, 0),
                  iterations=1001, seed=1000, fps=8.0, render_size=256)
    _smooth_sketch_outputs(g, anim, 5, prefix)
    return g.to_json()

# `make demo`: LiveSketch with the pack's embedded prior (8 frames of 32x32, CPU), tuned to run in a few minutes
# on 2 cores. The settings the demo may be re-tuned with live here.
EMBEDDED_SKETCH = "examples/bird.svg"
EMBEDDED_PROMPT = "a bird flies to the left"  # a caption form the embedded prior was trained on
# The embedded prior's evaluation settings (scripts/eval_embedded_prior.py, DistillSettings): 8 frames (the
# prior's clip), learning rates local 1e-3 / global 5e-3 (the reference's 5e-3 / 1e-4 are for 1000
# iterations), guidance 30, 200 fused iterations rendered at 64 px, t in [50, 950) (the evaluation's; the reference's
# 949 is the node's default), anchoring on.
EMBEDDED_MOTION = {"frames": 8, "local_lr": 1e-3, "global_lr": 5e-3, **ANCHORING}
EMBEDDED_SDS = {"guidance_local": 30.0, "guidance_global": 30.0, "t_min": 50, "t_max": 950}
EMBEDDED_ANIMATE = {"iterations": 200, "fused": True, "render_size": 64, "seed": 1000, "fps": 8.0}
EMBEDDED_OUTPUT_SIZE = 256  # WEBP / MP4 frames are rasterized from the vector animation at this size


def _embedded_livesketch(g: Graph) -> dict:
    """The demo's LiveSketch on the embedded prior, up to VP_AnimateSketch (its node)."""
    load = g.node("VP_LoadSVGSketch", 0, 0, svg=EMBEDDED_SKETCH, canvas_size=256, force_black=True)
    model = g.node("VP_SketchMotionModel", 0, 2, **EMBEDDED_MOTION)
    prior = g.node("VP_LoadVideoPrior", 1, 0, prior="embedded", dtype="auto")
    guidance = g.node("VP_SDSGuidance", 1, 1, prior=(prior, 0), prompt=EMBEDDED_PROMPT, **EMBEDDED_SDS)
    anim = g.node("VP_AnimateSketch", 2, 0, sketch=(load, 0), motion_model=(model, 0), guidance=(guidance, 0),
                  **EMBEDDED_ANIMATE)
    return anim


def livesketch_embedded(info: dict) -> dict:
    """LiveSketch with the embedded prior: no download, CPU; the graph of livesketch_modelscope."""
    g = Graph(info)
    prefix = "VideoPriors/livesketch_embedded"
    anim = _embedded_livesketch(g)
    _smooth_sketch_outputs(g, anim, 3, prefix, EMBEDDED_OUTPUT_SIZE)
    return g.to_json()


# livesketch_smooth: the demo's LiveSketch, then 60 fps in-betweens on the C2 spline (8 keyframes at 8 fps -> 60
# frames per 1 s loop); its SVG keeps only the 8 keyframes with eased SMIL timing (keySplines), the small file.
SMOOTH_60 = {"mode": "natural_cubic", "target_fps": 60.0, "loop": True}


def livesketch_smooth(info: dict) -> dict:
    """LiveSketch (embedded prior) -> vector in-betweens at 60 fps -> WEBP / MP4; SVG of the keyframes, eased."""
    g = Graph(info)
    prefix = "VideoPriors/livesketch_smooth"
    anim = _embedded_livesketch(g)
    smooth = g.node("VP_InterpolateSketch", 3, 0, animation=(anim, 0), **SMOOTH_60)
    g.node("VP_SaveAnimatedSVG", 4, 0, title="Keyframes, eased (small SVG)", animation=(anim, 0),
           filename_prefix=prefix, interpolation="spline")
    frames = g.node("VP_RasterizeSketch", 3, 1, sketch=(smooth, 0), width=EMBEDDED_OUTPUT_SIZE,
                    height=EMBEDDED_OUTPUT_SIZE)
    g.node("SaveAnimatedWEBP", 4, 1, images=(frames, 0), filename_prefix=prefix, fps=(smooth, 1))
    video = g.node("CreateVideo", 3, 2, images=(frames, 0), fps=(smooth, 1))
    g.node("SaveVideo", 4, 2, video=(video, 0), filename_prefix=prefix, format="mp4", codec="h264")
    return g.to_json()


def sample_video_embedded(info: dict) -> dict:
    """Text-to-video sampling (VP_SampleVideo, DDIM) from the embedded prior: 8 frames of 32x32, CPU."""
    g = Graph(info)
    prior = g.node("VP_LoadVideoPrior", 0, 0, prior="embedded", dtype="auto")
    # eta 1 (fresh noise every step): the small embedded prior's samples keep a grey, speckled background at eta 0
    frames = g.node("VP_SampleVideo", 1, 0, prior=(prior, 0), prompt="a bird flies to the left", steps=50,
                    eta=1.0, guidance=6.0, seed=0)
    g.node("SaveAnimatedWEBP", 2, 0, images=(frames, 0), filename_prefix="VideoPriors/sample_video", fps=8.0)
    return g.to_json()


# The LVDM family (VideoCrafter2, DynamiCrafter): official checkpoints under these names in models/checkpoints
# (README: where to get them). Official inference settings: VideoCrafter2 DDIM 50 steps, eta 1, CFG 12, fps 28;
# DynamiCrafter 512 DDIM 50 steps (uniform_trailing), eta 1, CFG 7.5, guidance rescale 0.7, frame stride 24 (5 for
# the interpolation model).
VC2_CKPT = "videocrafter2_512.ckpt"
DC512_CKPT = "dynamicrafter_512.ckpt"
DC512_INTERP_CKPT = "dynamicrafter_512_interp.ckpt"
LVDM_IMAGE = "example.png"  # ComfyUI's own input/example.png


def _video_outputs(g: Graph, images: tuple, col: int, prefix: str, fps: float = 8.0) -> None:
    g.node("SaveAnimatedWEBP", col, 0, images=images, filename_prefix=prefix, fps=fps)
    video = g.node("CreateVideo", col, 1, images=images, fps=fps)
    g.node("SaveVideo", col + 1, 1, video=(video, 0), filename_prefix=prefix, format="mp4", codec="h264")


def t2v_videocrafter2(info: dict) -> dict:
    """VideoCrafter2 text-to-video with core KSampler: 16 frames of 512x320 (frames in the batch dimension)."""
    g = Graph(info)
    load = g.node("VP_LoadLVDMCheckpoint", 0, 0, ckpt_name=VC2_CKPT, variant="auto", weight_dtype="auto")
    pos = g.node("CLIPTextEncode", 1, 0, title="Prompt", clip=(load, 1),
                 text="a red panda eating bamboo in a forest, high quality, detailed")
    neg = g.node("CLIPTextEncode", 1, 1, title="Negative prompt", clip=(load, 1), text="")
    cond = g.node("VP_VideoCrafterConditioning", 2, 0, positive=(pos, 0), negative=(neg, 0), width=512, height=320,
                  frames=16, fps=28)
    sample = g.node("KSampler", 3, 0, model=(load, 0), positive=(cond, 0), negative=(cond, 1),
                    latent_image=(cond, 2), seed=123, steps=50, cfg=12.0, sampler_name="ddim",
                    scheduler="ddim_uniform")
    frames = g.node("VAEDecode", 4, 0, samples=(sample, 0), vae=(load, 2))
    _video_outputs(g, (frames, 0), 5, "VideoPriors/t2v_videocrafter2")
    return g.to_json()


def _dynamicrafter_conditioning(g: Graph, ckpt: str, variant: str, prompt: str, frame_stride: int,
                                end_image: bool = False) -> tuple:
    load = g.node("VP_LoadLVDMCheckpoint", 0, 0, ckpt_name=ckpt, variant=variant, weight_dtype="auto")
    start = g.node("LoadImage", 0, 1, title="Start frame", image=LVDM_IMAGE)
    pos = g.node("CLIPTextEncode", 1, 0, title="Prompt", clip=(load, 1), text=prompt)
    neg = g.node("CLIPTextEncode", 1, 1, title="Negative prompt", clip=(load, 1), text="")
    ctx = g.node("VP_CLIPContextEncoder", 1, 2, clip_vision=(load, 3), resampler=(load, 4), image=(start, 0),
                 preprocess="official", width=512, height=320, fit="center crop")
    extra = {}
    if end_image:
        extra["end_image"] = (g.node("LoadImage", 0, 2, title="End frame", image=LVDM_IMAGE), 0)
    cond = g.node("VP_DynamiCrafterConditioning", 2, 0, positive=(pos, 0), negative=(neg, 0), image_context=(ctx, 0),
                  vae=(load, 2), start_image=(start, 0), width=512, height=320, frames=16,
                  frame_stride=frame_stride, fit="center crop", batch_size=1, **extra)
    model = g.node("VP_LVDMRescaleCFG", 2, 1, model=(load, 0), multiplier=0.7, frames=0)
    return load, cond, model


def _official_sampling(g: Graph, cond: dict, model: dict, col: int) -> dict:
    guider = g.node("CFGGuider", col, 0, model=(model, 0), positive=(cond, 0), negative=(cond, 1), cfg=7.5)
    sampler = g.node("VP_LVDMOfficialDDIM", col, 1, eta=1.0, latent_scale="auto")
    sigmas = g.node("VP_LVDMScheduler", col, 2, model=(model, 0), steps=50, spacing="auto", final="zero")
    noise = g.node("RandomNoise", col, 3, noise_seed=123)
    return g.node("SamplerCustomAdvanced", col + 1, 0, noise=(noise, 0), guider=(guider, 0), sampler=(sampler, 0),
                  sigmas=(sigmas, 0), latent_image=(cond, 2))


I2V_PROMPT = "the scene comes alive, gentle natural motion"


def i2v_dynamicrafter(info: dict) -> dict:
    """DynamiCrafter 512 image-to-video with core KSampler (v-prediction, zero terminal SNR, rescale 0.7)."""
    g = Graph(info)
    load, cond, model = _dynamicrafter_conditioning(g, DC512_CKPT, "auto", I2V_PROMPT, 24)
    sample = g.node("KSampler", 3, 0, model=(model, 0), positive=(cond, 0), negative=(cond, 1),
                    latent_image=(cond, 2), seed=123, steps=50, cfg=7.5, sampler_name="euler_ancestral",
                    scheduler="simple")
    frames = g.node("VAEDecode", 4, 0, samples=(sample, 0), vae=(load, 2))
    _video_outputs(g, (frames, 0), 5, "VideoPriors/i2v_dynamicrafter")
    return g.to_json()


def i2v_dynamicrafter_official(info: dict) -> dict:
    """DynamiCrafter 512 with the official DDIM (SamplerCustomAdvanced): the paper's settings."""
    g = Graph(info)
    load, cond, model = _dynamicrafter_conditioning(g, DC512_CKPT, "auto", I2V_PROMPT, 24)
    sample = _official_sampling(g, cond, model, 3)
    frames = g.node("VAEDecode", 5, 0, samples=(sample, 0), vae=(load, 2))
    _video_outputs(g, (frames, 0), 6, "VideoPriors/i2v_dynamicrafter_official")
    return g.to_json()


def interp_dynamicrafter(info: dict) -> dict:
    """DynamiCrafter 512 interpolation between two keyframes (official DDIM, frame stride 5)."""
    g = Graph(info)
    load, cond, model = _dynamicrafter_conditioning(g, DC512_INTERP_CKPT, "dynamicrafter_512_interp",
                                                    "a smooth transition between the two frames", 5,
                                                    end_image=True)
    sample = _official_sampling(g, cond, model, 3)
    frames = g.node("VAEDecode", 5, 0, samples=(sample, 0), vae=(load, 2))
    _video_outputs(g, (frames, 0), 6, "VideoPriors/interp_dynamicrafter")
    return g.to_json()


def keyframes_dynamicrafter(info: dict) -> dict:
    """Generative in-betweening over three keyframes (ComfyUI's example.png, mirrored, and again): two DynamiCrafter
    512 interpolation segments of 16 frames joined into 31, with the official settings (frame stride 5, CFG 7.5,
    guidance rescale 0.7, official DDIM 50 steps, eta 1)."""
    g = Graph(info)
    load = g.node("VP_LoadLVDMCheckpoint", 0, 0, ckpt_name=DC512_INTERP_CKPT, variant="dynamicrafter_512_interp",
                  weight_dtype="auto")
    first = g.node("LoadImage", 0, 1, title="Keyframe", image=LVDM_IMAGE)
    mirrored = g.node("ImageFlip", 0, 2, title="Keyframe (mirrored)", image=(first, 0),
                      flip_method="y-axis: horizontally")
    pair = g.node("ImageBatch", 1, 2, image1=(first, 0), image2=(mirrored, 0))
    keys = g.node("ImageBatch", 1, 3, title="Keyframes", image1=(pair, 0), image2=(first, 0))
    pos = g.node("CLIPTextEncode", 1, 0, title="Prompt", clip=(load, 1),
                 text="a smooth transition between the frames")
    neg = g.node("CLIPTextEncode", 1, 1, title="Negative prompt", clip=(load, 1), text="")
    model = g.node("VP_LVDMRescaleCFG", 2, 0, model=(load, 0), multiplier=0.7, frames=0)
    sampler = g.node("VP_LVDMOfficialDDIM", 2, 1, eta=1.0, latent_scale="auto")
    sigmas = g.node("VP_LVDMScheduler", 2, 2, model=(model, 0), steps=50, spacing="auto", final="zero")
    sample = g.node("VP_DynamiCrafterKeyframes", 3, 0, model=(model, 0), positive=(pos, 0), negative=(neg, 0),
                    clip_vision=(load, 3), resampler=(load, 4), vae=(load, 2), keyframes=(keys, 0),
                    sampler=(sampler, 0), sigmas=(sigmas, 0), seed=123, frames="16", cfg="7.5", frame_stride="5",
                    width=512, height=320, fit="center crop", preprocess="official", clip=(load, 1), prompts="")
    frames = g.node("VAEDecode", 4, 0, samples=(sample, 0), vae=(load, 2))
    _video_outputs(g, (frames, 0), 5, "VideoPriors/keyframes_dynamicrafter")
    return g.to_json()


SOURCE_VIDEO = "vp_source_video.mp4"  # put your clip into ComfyUI/input and pick it in LoadVideo
DA_FILE = "depth_anything_v2_vits.pth"
MIDAS_FILE = "dpt_hybrid-midas-501f0c75.pt"


def _source_frames(g: Graph) -> dict:
    video = g.node("LoadVideo", 0, 0, title="Source video", file=SOURCE_VIDEO)
    return g.node("GetVideoComponents", 0, 1, video=(video, 0))


def depth_from_video(info: dict) -> dict:
    """Video -> per-frame depth (Depth-Anything-V2) -> previews with each normalisation, side by side."""
    g = Graph(info)
    parts = _source_frames(g)
    model = g.node("VP_LoadDepthModel", 1, 0, model_name=DA_FILE, weight_dtype="auto")
    depth = g.node("VP_EstimateDepth", 1, 1, depth_model=(model, 0), images=(parts, 0), normalization="stable",
                   batch_size=4, input_size=518)
    for row, mode in enumerate(("per_frame", "clip", "stable")):
        preview = g.node("VP_DepthPreview", 2, row, title=f"Depth ({mode})", depth=(depth, 0), normalization=mode)
        g.node("SaveAnimatedWEBP", 3, row, images=(preview, 0), filename_prefix=f"VideoPriors/depth_{mode}",
               fps=(parts, 2))
    return g.to_json()


RIFE_FILE = "rife47.pth"  # RIFE 4.7 under the name ComfyUI-Frame-Interpolation gives it


def interpolate_video(info: dict) -> dict:
    """Video -> RIFE in-betweens up to 60 fps (every source frame kept) -> MP4 (with the source's audio) and WEBP at
    the new fps."""
    g = Graph(info)
    parts = _source_frames(g)
    model = g.node("VP_LoadFrameInterpolator", 1, 0, model_name=RIFE_FILE, weight_dtype="auto")
    more = g.node("VP_InterpolateFrames", 1, 1, interpolator=(model, 0), images=(parts, 0), multiplier=2,
                  source_fps=(parts, 2), target_fps=60.0, scale_factor="1.0", ensemble=False,
                  scene_cut_threshold=0.0, loop=False, batch_size=1)
    video = g.node("CreateVideo", 2, 1, images=(more, 0), fps=(more, 1), audio=(parts, 1))
    g.node("SaveVideo", 3, 1, video=(video, 0), filename_prefix="VideoPriors/interpolate_video", format="mp4",
           codec="h264")
    g.node("SaveAnimatedWEBP", 2, 0, images=(more, 0), filename_prefix="VideoPriors/interpolate_video",
           fps=(more, 1))
    return g.to_json()


MYV_CKPT = "makeyourvideo_256.ckpt"
MYV_PROMPT = "a tiger walking through a snowy forest, high quality"


def _make_your_video(g: Graph, frames: int, frame_stride: int, normalization: str) -> tuple:
    """Source video -> chosen frames -> MiDaS depth -> Make-Your-Video conditioning (official settings)."""
    parts = _source_frames(g)
    chosen = g.node("VP_SelectFrames", 0, 2, images=(parts, 0), frames=frames, frame_stride=frame_stride,
                    target_fps=0.0, source_fps=(parts, 2))
    depth_model = g.node("VP_LoadDepthModel", 1, 0, model_name=MIDAS_FILE, weight_dtype="auto")
    depth = g.node("VP_EstimateDepth", 1, 1, depth_model=(depth_model, 0), images=(chosen, 0),
                   normalization=normalization, batch_size=4, input_size=518)
    load = g.node("VP_LoadLVDMCheckpoint", 1, 2, ckpt_name=MYV_CKPT, variant="auto", weight_dtype="auto")
    pos = g.node("CLIPTextEncode", 2, 0, title="Prompt", clip=(load, 1), text=MYV_PROMPT)
    neg = g.node("CLIPTextEncode", 2, 1, title="Negative prompt", clip=(load, 1), text="")
    cond = g.node("VP_MakeYourVideoConditioning", 2, 2, positive=(pos, 0), negative=(neg, 0), depth=(depth, 0),
                  width=256, height=256, normalization=normalization, batch_size=1)
    g.node("SaveAnimatedWEBP", 3, 3, title="Depth condition", images=(cond, 3),
           filename_prefix="VideoPriors/make_your_video_depth", fps=8.0)
    return load, cond


def _official_ddim(g: Graph, model: tuple, cond: dict, col: int) -> tuple:
    sampler = g.node("VP_LVDMOfficialDDIM", col, 1, eta=1.0, latent_scale="auto")
    sigmas = g.node("VP_LVDMScheduler", col, 2, model=model, steps=50, spacing="auto", final="zero")
    return sampler, sigmas


def make_your_video(info: dict) -> dict:
    """Make-Your-Video as the official run.sh: 16 frames at stride 2, 256x256, MiDaS depth per-frame normalised,
    CFG 7.5, DDIM 50 steps, eta 1 (SamplerCustomAdvanced with the official DDIM)."""
    g = Graph(info)
    load, cond = _make_your_video(g, 16, 2, "per_frame")
    guider = g.node("CFGGuider", 3, 0, model=(load, 0), positive=(cond, 0), negative=(cond, 1), cfg=7.5)
    sampler, sigmas = _official_ddim(g, (load, 0), cond, 3)
    noise = g.node("RandomNoise", 3, 4, noise_seed=123)
    sample = g.node("SamplerCustomAdvanced", 4, 0, noise=(noise, 0), guider=(guider, 0), sampler=(sampler, 0),
                    sigmas=(sigmas, 0), latent_image=(cond, 2))
    frames = g.node("VAEDecode", 5, 0, samples=(sample, 0), vae=(load, 2))
    _video_outputs(g, (frames, 0), 6, "VideoPriors/make_your_video")
    return g.to_json()


def make_your_video_long(info: dict) -> dict:
    """64 frames in one pass (the causal temporal window), depth normalised once for the whole clip ('stable');
    VP_SampleVideoWindows continues window by window (64 frames, 16 overlapping) when more frames are chosen."""
    g = Graph(info)
    load, cond = _make_your_video(g, 64, -1, "stable")
    sampler, sigmas = _official_ddim(g, (load, 0), cond, 3)
    sample = g.node("VP_SampleVideoWindows", 4, 0, model=(load, 0), positive=(cond, 0), negative=(cond, 1),
                    latent=(cond, 2), seed=123, steps=50, cfg=7.5, sampler_name="ddim", scheduler="ddim_uniform",
                    window=64, overlap=16, denoise=1.0, sampler=(sampler, 0), sigmas=(sigmas, 0))
    frames = g.node("VAEDecode", 5, 0, samples=(sample, 0), vae=(load, 2))
    _video_outputs(g, (frames, 0), 6, "VideoPriors/make_your_video_long")
    return g.to_json()


WORKFLOWS = {"sketch_motion.json": sketch_motion, "livesketch_modelscope.json": livesketch_modelscope,
             "livesketch_wan.json": livesketch_wan, "livesketch_videocrafter2.json": livesketch_videocrafter2,
             "livesketch_embedded.json": livesketch_embedded, "livesketch_smooth.json": livesketch_smooth,
             "sample_video_embedded.json": sample_video_embedded, "t2v_videocrafter2.json": t2v_videocrafter2,
             "i2v_dynamicrafter.json": i2v_dynamicrafter, "i2v_dynamicrafter_official.json": i2v_dynamicrafter_official,
             "interp_dynamicrafter.json": interp_dynamicrafter,
             "keyframes_dynamicrafter.json": keyframes_dynamicrafter, "depth_from_video.json": depth_from_video,
             "make_your_video.json": make_your_video, "make_your_video_long.json": make_your_video_long,
             "interpolate_video.json": interpolate_video}


def main():
    server = ComfyServer()
    try:
        server.start()
        info = server.object_info()
    finally:
        server.cleanup()
    os.makedirs(WORKFLOW_DIR, exist_ok=True)
    for name, build in WORKFLOWS.items():
        path = os.path.join(WORKFLOW_DIR, name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(build(info), f, indent=2)
            f.write("\n")
        print("wrote", path)


if __name__ == "__main__":
    main()
