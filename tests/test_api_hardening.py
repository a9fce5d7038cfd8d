"""What an API client can send, through a real server's /prompt (issue 10, section 5).

Every VP_ node's widget values are checked against the node's own schema (finite numbers, ranges,
combo options, null), file and folder names come only from ComfyUI's listings, errors never show
server paths, broken weights and outputs are refused, and requests that would not fit in memory are
refused with the figure and the input to turn before anything big is allocated.
"""
from __future__ import annotations

import json
import os
import shutil

import pytest
import requests

from comfy_env import STALL_TIMEOUT
from comfy_runtime import REPO, WIDGET_TYPES, _input_specs, _is_widget

pytestmark = pytest.mark.server

SMALL_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">'
             '<path d="M20 20 C40 10 60 30 80 20" stroke="black" stroke-width="3" fill="none"/>'
             '<circle cx="50" cy="60" r="20" stroke="black" fill="none"/></svg>')


@pytest.fixture(scope="module", autouse=True)
def _forget_this_modules_prompts(comfy_server):
    """Leave the shared server's history as we found it: a prompt that reached execution with a NaN
    widget (core PrimitiveFloat accepts one) is stored in the history, and ComfyUI writes it back as
    JSON's non-standard NaN token, which the frontend (tests/test_frontend.py) cannot parse."""
    before = set(comfy_server.get("/history").json())
    yield
    added = [pid for pid in comfy_server.get("/history").json() if pid not in before]
    if added:
        requests.post(comfy_server.url + "/history", json={"delete": added}, timeout=30).raise_for_status()


@pytest.fixture(scope="module")
def info(comfy_server) -> dict:
    """/object_info once for the module (a few MB; no test here changes the node schemas it reads)."""
    return comfy_server.object_info()


def _spec(info: dict, node: str) -> dict:
    return dict(_input_specs(info[node]))


def _widget_defaults(info: dict, node: str) -> dict:
    values = {}
    for name, spec in _spec(info, node).items():
        kind, opts = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
        if isinstance(kind, list):
            values[name] = opts.get("default", kind[0])
        elif kind == "COMBO":
            values[name] = opts.get("default", (opts.get("options") or [None])[0])
        elif kind in WIDGET_TYPES:
            values[name] = opts.get("default", {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[kind])
    return values


def full_prompt(info: dict) -> dict:
    """Every VP_ node with widgets, each reaching an output, on its schema's defaults (tiny where it runs)."""
    links = {
        "1": ("VP_LoadSVGSketch", {"svg_text": SMALL_SVG, "canvas_size": 64}),
        "2": ("VP_ProceduralMotion", {"sketch": ["1", 0], "frames": 2}),
        "3": ("VP_RasterizeSketch", {"sketch": ["2", 0]}),
        "4": ("PreviewImage", {"images": ["3", 0]}),
        "5": ("VP_SaveAnimatedSVG", {"animation": ["2", 0], "filename_prefix": "vp_api/anim"}),
        "6": ("VP_SketchToSVG", {"sketch": ["2", 0]}),
        "7": ("SaveSVGNode", {"svg": ["6", 0], "filename_prefix": "vp_api/frames"}),
        "8": ("VP_LoadVideoPrior", {"prior": "embedded"}),
        "9": ("VP_SketchMotionModel", {"frames": 8, "hidden": 8}),
        "10": ("VP_SDSGuidance", {"prior": ["8", 0]}),
        "11": ("VP_AnimateSketch", {"sketch": ["1", 0], "motion_model": ["9", 0], "guidance": ["10", 0],
                                    "iterations": 1, "render_size": 64, "preview_every": 0}),
        "12": ("PreviewImage", {"images": ["11", 1]}),
        "13": ("VP_SampleVideo", {"prior": ["8", 0], "steps": 1, "preview": False}),
        "14": ("PreviewImage", {"images": ["13", 0]}),
        "15": ("VP_InterpolateSketch", {"animation": ["2", 0]}),
        "16": ("VP_SaveAnimatedSVG", {"animation": ["15", 0], "filename_prefix": "vp_api/smooth"}),
        # The LVDM nodes on their defaults (tiny official-layout checkpoints: conftest.install_lvdm_test_models),
        # each reaching a core PreviewAny output; no sampling (core KSampler is what samples them).
        "20": ("VP_LoadLVDMCheckpoint", {"ckpt_name": "dynamicrafter_512.ckpt"}),
        "21": ("CLIPTextEncode", {"clip": ["20", 1], "text": "a cat"}),
        "22": ("EmptyImage", {"width": 64, "height": 64, "batch_size": 1, "color": 0x808080}),
        "23": ("VP_CLIPContextEncoder", {"clip_vision": ["20", 3], "resampler": ["20", 4], "image": ["22", 0]}),
        "24": ("VP_DynamiCrafterConditioning", {"positive": ["21", 0], "negative": ["21", 0],
                                                "image_context": ["23", 0], "vae": ["20", 2],
                                                "start_image": ["22", 0]}),
        "25": ("PreviewAny", {"source": ["24", 2]}),
        "26": ("VP_VideoCrafterConditioning", {"positive": ["21", 0], "negative": ["21", 0]}),
        "27": ("PreviewAny", {"source": ["26", 2]}),
        "28": ("VP_LVDMScheduler", {"model": ["20", 0]}),
        "29": ("PreviewAny", {"source": ["28", 0]}),
        "30": ("VP_LVDMOfficialDDIM", {}),
        "31": ("PreviewAny", {"source": ["30", 0]}),
        "32": ("VP_LVDMRescaleCFG", {"model": ["20", 0]}),
        "33": ("PreviewAny", {"source": ["32", 0]}),
        # Keyframe in-betweening: the same tiny file as the interpolation variant, two keyframes, one step.
        "34": ("VP_LoadLVDMCheckpoint", {"ckpt_name": "dynamicrafter_512.ckpt", "variant": "dynamicrafter_512_interp"}),
        "35": ("EmptyImage", {"width": 64, "height": 64, "batch_size": 2, "color": 0x808080}),
        "36": ("VP_LVDMScheduler", {"model": ["34", 0], "steps": 1}),
        "37": ("VP_DynamiCrafterKeyframes", {"model": ["34", 0], "positive": ["21", 0], "negative": ["21", 0],
                                             "clip_vision": ["34", 3], "resampler": ["34", 4], "vae": ["34", 2],
                                             "keyframes": ["35", 0], "sampler": ["30", 0], "sigmas": ["36", 0],
                                             "frames": "2", "width": 64, "height": 64}),
        "38": ("PreviewAny", {"source": ["37", 0]}),
        # Make-Your-Video (tiny makeyourvideo_256.ckpt): frames -> conditioning (a grey IMAGE as depth) -> windows.
        "40": ("VP_LoadLVDMCheckpoint", {"ckpt_name": "makeyourvideo_256.ckpt"}),
        "41": ("CLIPTextEncode", {"clip": ["40", 1], "text": "a car"}),
        "42": ("EmptyImage", {"width": 64, "height": 64, "batch_size": 16, "color": 0x808080}),
        "43": ("VP_SelectFrames", {"images": ["42", 0]}),
        "44": ("VP_MakeYourVideoConditioning", {"positive": ["41", 0], "negative": ["41", 0], "depth": ["43", 0]}),
        "45": ("VP_SampleVideoWindows", {"model": ["40", 0], "positive": ["44", 0], "negative": ["44", 1],
                                         "latent": ["44", 2], "steps": 1}),
        "46": ("PreviewAny", {"source": ["45", 0]}),
        # Depth (tiny fixture weights under the real file names, tests/depth_tiny.py): estimate -> previews.
        "50": ("VP_LoadDepthModel", {}),
        "51": ("EmptyImage", {"width": 56, "height": 42, "batch_size": 2, "color": 0x806040}),
        "52": ("VP_EstimateDepth", {"depth_model": ["50", 0], "images": ["51", 0], "input_size": 70}),
        "53": ("VP_DepthPreview", {"depth": ["52", 0]}),
        "54": ("PreviewImage", {"images": ["53", 0]}),
        "55": ("PreviewImage", {"images": ["52", 1]}),
        # RIFE (the golden 4.7 weights as models/frame_interpolation/rife47.pth): 2 frames -> 3, fps -> PreviewAny.
        "60": ("VP_LoadFrameInterpolator", {}),
        "61": ("EmptyImage", {"width": 48, "height": 40, "batch_size": 2, "color": 0x406080}),
        "62": ("VP_InterpolateFrames", {"interpolator": ["60", 0], "images": ["61", 0]}),
        "63": ("PreviewImage", {"images": ["62", 0]}),
        "64": ("PreviewAny", {"source": ["62", 1]}),
        "65": ("PreviewAny", {"source": ["60", 1]}),
    }
    prompt = {}
    for node_id, (cls, given) in links.items():
        inputs = _widget_defaults(info, cls) if cls.startswith("VP_") else {}
        inputs.update(given)
        prompt[node_id] = {"class_type": cls, "inputs": inputs}
    return prompt


def _node_of(prompt: dict, cls: str) -> str:
    return next(k for k, v in prompt.items() if v["class_type"] == cls)


def _vp_nodes(info: dict) -> list[str]:
    return sorted(n for n in info if n.startswith("VP_"))


OUTPUT_NODES = {"PreviewImage", "SaveSVGNode", "VP_SaveAnimatedSVG", "PreviewAny"}


def _ancestors(prompt: dict, node_id: str) -> set:
    seen, todo = set(), [node_id]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        todo += [v[0] for v in prompt[n]["inputs"].values() if isinstance(v, list) and len(v) == 2]
    return seen


def _only(prompt: dict, node_id: str) -> dict:
    """The outputs that depend on node_id and their ancestors (ComfyUI queues the other outputs of a
    partly invalid prompt, answering 200 with node_errors)."""
    keep = set()
    for out in (k for k, v in prompt.items() if v["class_type"] in OUTPUT_NODES):
        up = _ancestors(prompt, out)
        if node_id in up:
            keep |= up
    return {k: v for k, v in prompt.items() if k in keep}


def _refused(server, prompt: dict, node_id: str) -> str:
    """Queue the part of the prompt that depends on node_id; assert it is refused at validation, naming
    node_id; return the response text."""
    # Posted as text so that a float NaN goes out as JSON's NaN token (requests refuses to write it).
    body = json.dumps({"prompt": _only(prompt, node_id), "client_id": server.client_id})
    r = requests.post(server.url + "/prompt", data=body, headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400, (node_id, r.status_code, r.text[:500])
    body = r.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation", body
    assert node_id in body["node_errors"], (node_id, body["node_errors"])
    return r.text


def _no_server_paths(server, text: str):
    for secret in (os.path.abspath(server.base_dir), os.path.realpath(server.base_dir), REPO, "looked in /"):
        assert secret not in text, f"{secret!r} leaked in {text[:800]}"


def _execution_error(entry: dict) -> dict:
    errors = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert entry["status"]["status_str"] == "error" and errors, entry["status"]
    return errors[0]


# --- the graph every case below starts from ---------------------------------------------------

def test_full_graph_of_every_node_validates_and_runs(comfy_server, info):
    """Positive control: every VP_ node with widgets is in the graph, and on its defaults it runs."""
    prompt = full_prompt(info)
    covered = {v["class_type"] for v in prompt.values()}
    with_widgets = {n for n in _vp_nodes(info) if any(
        _is_widget(s) for s in _spec(info, n).values())}
    assert with_widgets <= covered, with_widgets - covered
    entry = comfy_server.run(prompt, stall_timeout=STALL_TIMEOUT)
    assert entry["status"]["status_str"] == "success", entry["status"]


# --- numbers: finite and within the node's own ranges -----------------------------------------

def _numeric_inputs(info: dict, kinds=("FLOAT",)):
    for node in _vp_nodes(info):
        for name, spec in _spec(info, node).items():
            if spec[0] in kinds:
                yield node, name, spec[1] if len(spec) > 1 else {}


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", float("nan")])
def test_every_float_input_refuses_non_finite_values(comfy_server, value, info):
    base = full_prompt(info)
    cases = list(_numeric_inputs(info))
    assert len(cases) >= 15, cases
    for node, name, _opts in cases:
        prompt = json.loads(json.dumps(base))
        node_id = _node_of(prompt, node)
        prompt[node_id]["inputs"][name] = value
        text = _refused(comfy_server, prompt, node_id)
        assert name in text


def test_every_number_outside_its_declared_range_is_refused(comfy_server, info):
    base = full_prompt(info)
    checked = 0
    for node, name, opts in _numeric_inputs(info, ("INT", "FLOAT")):
        for bound, delta in (("min", -1), ("max", 1)):
            if opts.get(bound) is None:
                continue
            prompt = json.loads(json.dumps(base))
            node_id = _node_of(prompt, node)
            prompt[node_id]["inputs"][name] = opts[bound] + delta
            _refused(comfy_server, prompt, node_id)
            checked += 1
    assert checked >= 40


@pytest.mark.parametrize("t_min,t_max", [(-500, -1), (50, 5000), (0, 0), (900, 100)])
def test_sds_timestep_range_is_checked_although_the_node_validates_it(comfy_server, t_min, t_max, info):
    prompt = full_prompt(info)
    node_id = _node_of(prompt, "VP_SDSGuidance")
    prompt[node_id]["inputs"].update(t_min=t_min, t_max=t_max)
    _refused(comfy_server, prompt, node_id)


def test_procedural_motion_nan_fps_never_reaches_the_svg(comfy_server, info):
    """The issue's reproducer: "fps": "nan" wrote dur="nans" into the SVG."""
    prompt = full_prompt(info)
    node_id = _node_of(prompt, "VP_ProceduralMotion")
    prompt[node_id]["inputs"]["fps"] = "nan"
    assert "fps" in _refused(comfy_server, prompt, node_id)


def test_nan_through_a_link_fails_the_node_at_run_time(comfy_server, info):
    """A core Float node accepts NaN; the value reaches the pack through a link and is refused there."""
    prompt = full_prompt(info)
    keep = {"1", "2", "5"}
    prompt = {k: v for k, v in prompt.items() if k in keep}
    prompt["90"] = {"class_type": "PrimitiveFloat", "inputs": {"value": "nan"}}
    prompt["2"]["inputs"]["fps"] = ["90", 0]
    error = _execution_error(comfy_server.run(prompt, stall_timeout=STALL_TIMEOUT))
    assert error["node_type"] == "VP_ProceduralMotion"
    assert "fps" in error["exception_message"] and "finite" in error["exception_message"]
    out = os.path.join(comfy_server.base_dir, "output", "vp_api")
    for name in os.listdir(out) if os.path.isdir(out) else []:
        assert "nans" not in open(os.path.join(out, name), encoding="utf-8").read()


def test_out_of_range_int_through_a_link_fails_the_node_at_run_time(comfy_server, info):
    """ComfyUI checks min/max only of literal values: VP_AnimateSketch's render_size (min 32) from a core Int node."""
    prompt = {k: v for k, v in full_prompt(info).items() if k in {"1", "8", "9", "10", "11", "12"}}
    prompt["91"] = {"class_type": "PrimitiveInt", "inputs": {"value": 5}}
    prompt["11"]["inputs"]["render_size"] = ["91", 0]
    error = _execution_error(comfy_server.run(prompt, stall_timeout=STALL_TIMEOUT))
    assert error["node_type"] == "VP_AnimateSketch"
    assert "render_size" in error["exception_message"] and "32" in error["exception_message"], error


# --- combos and null ---------------------------------------------------------------------------

def test_null_values_are_refused_at_validation(comfy_server, info):
    base = full_prompt(info)
    checked = 0
    for node in _vp_nodes(info):
        if node not in {v["class_type"] for v in base.values()}:
            continue
        for name, spec in _spec(info, node).items():
            if not (isinstance(spec[0], list) or spec[0] in ("INT", "FLOAT", "COMBO")):
                continue
            if node == "VP_LoadSVGSketch" and name == "svg":
                continue  # not used while svg_text is given: checked below with svg_text empty
            prompt = json.loads(json.dumps(base))
            node_id = _node_of(prompt, node)
            prompt[node_id]["inputs"][name] = None
            _refused(comfy_server, prompt, node_id)
            checked += 1
    assert checked >= 25


@pytest.mark.parametrize("node,name,value", [
    ("VP_ProceduralMotion", "preset", "moonwalk"),
    ("VP_RasterizeSketch", "backend", "cuda-magic"),
    ("VP_SaveAnimatedSVG", "interpolation", 3),
    ("VP_LoadVideoPrior", "dtype", "fp8"),
])
def test_combo_values_outside_their_options_are_refused(comfy_server, node, name, value, info):
    prompt = full_prompt(info)
    node_id = _node_of(prompt, node)
    prompt[node_id]["inputs"][name] = value
    _refused(comfy_server, prompt, node_id)


def test_linked_inputs_keep_their_type_check(comfy_server, info):
    """Nodes that tell links from nulls (input_types) check the linked types themselves."""
    prompt = full_prompt(info)
    raster = _node_of(prompt, "VP_RasterizeSketch")
    prompt[raster]["inputs"]["sketch"] = [_node_of(prompt, "VP_LoadVideoPrior"), 0]
    _refused(comfy_server, prompt, raster)


# --- file and folder names ---------------------------------------------------------------------

def _upload(server, subfolder: str, name: str, data: bytes):
    r = requests.post(server.url + "/upload/image", files={"image": (name, data)},
                      data={"subfolder": subfolder, "type": "input", "overwrite": "true"}, timeout=30)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("name", ["../../input/uploaded_prior", "/etc", "/", "..", ".", "embedded/..",
                                  "text-to-video-ms-1.7b/../text-to-video-ms-1.7b", "../video_priors/embedded"])
def test_prior_names_outside_the_listing_are_refused_without_paths(comfy_server, name, info):
    # A folder a client uploaded through /upload/image that looks like a prior.
    _upload(comfy_server, "uploaded_prior", "model_index.json", b'{"_class_name": "TextToVideoSDPipeline"}')
    _upload(comfy_server, "uploaded_prior/unet", "config.json", b'{"_class_name": "UNet3DConditionModel"}')
    prompt = full_prompt(info)
    node_id = _node_of(prompt, "VP_LoadVideoPrior")
    prompt[node_id]["inputs"]["prior"] = name
    _no_server_paths(comfy_server, _refused(comfy_server, prompt, node_id))


@pytest.mark.parametrize("name", ["/etc/passwd", "../comfyui.log", "../../etc/passwd", "examples/../../../etc/passwd",
                                  "examples/../../../../../etc/hostname", None])
def test_svg_names_outside_the_listing_are_refused_without_paths(comfy_server, name, info):
    prompt = full_prompt(info)
    node_id = _node_of(prompt, "VP_LoadSVGSketch")
    prompt[node_id]["inputs"].update(svg=name, svg_text="")
    _no_server_paths(comfy_server, _refused(comfy_server, prompt, node_id))


@pytest.mark.parametrize("prefix", ["../escape", "/tmp/escape", "a/../../b", "C:/x", ""])
def test_save_prefix_must_stay_in_the_output_folder(comfy_server, prefix, info):
    prompt = full_prompt(info)
    node_id = _node_of(prompt, "VP_SaveAnimatedSVG")
    prompt[node_id]["inputs"]["filename_prefix"] = prefix
    _no_server_paths(comfy_server, _refused(comfy_server, prompt, node_id))


# --- broken priors ------------------------------------------------------------------------------

def _prior_copy(server, name: str) -> str:
    root = os.path.join(server.base_dir, "models", "video_priors")
    src = os.path.join(root, "text-to-video-ms-1.7b")
    dst = os.path.join(root, name)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    return dst


def _sample_prompt(prior: str, **sample) -> dict:
    return {"1": {"class_type": "VP_LoadVideoPrior", "inputs": {"prior": prior, "dtype": "fp32"}},
            "2": {"class_type": "VP_SampleVideo", "inputs": {
                "prior": ["1", 0], "prompt": "a cat", "negative_prompt": "", "steps": 2, "eta": 0.0,
                "guidance": 5.0, "seed": 0, "frames": 0, "width": 0, "height": 0, "preview": False, **sample}},
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}


def test_prior_with_nan_weights_is_refused_at_load_naming_the_file(comfy_server):
    import torch
    from safetensors.torch import load_file, save_file

    folder = _prior_copy(comfy_server, "nan-prior")
    weights = os.path.join(folder, "unet", "diffusion_pytorch_model.safetensors")
    tensors = load_file(weights)
    key = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel() > 1)
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = float("nan")
    save_file(tensors, weights)
    try:
        error = _execution_error(comfy_server.run(_sample_prompt("nan-prior"), stall_timeout=STALL_TIMEOUT))
        msg = error["exception_message"]
        assert error["node_type"] == "VP_LoadVideoPrior"
        assert "NaN" in msg and "video_priors/nan-prior/unet/diffusion_pytorch_model.safetensors" in msg, msg
        _no_server_paths(comfy_server, msg)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert torch.isnan(tensors[key]).any()


@pytest.mark.parametrize("edit,words", [
    (("model_index.json", "videopriors_clip", {"num_frames": 100000, "height": 100000, "width": 100000}),
     ("model_index.json", "num_frames")),
    (("unet/config.json", "block_out_channels", [50000, 50000]), ("unet/config.json", "parameters")),
    (("scheduler/scheduler_config.json", "num_train_timesteps", 10 ** 9), ("scheduler", "num_train_timesteps")),
    (("text_encoder/config.json", "max_position_embeddings", 10 ** 8), ("text_encoder", "max_position_embeddings")),
])
def test_prior_config_sizes_are_validated_before_allocating(comfy_server, edit, words):
    folder = _prior_copy(comfy_server, "huge-prior")
    rel, key, value = edit
    path = os.path.join(folder, rel)
    cfg = json.load(open(path))
    cfg[key] = value
    json.dump(cfg, open(path, "w"))
    try:
        error = _execution_error(comfy_server.run(_sample_prompt("huge-prior"), stall_timeout=STALL_TIMEOUT))
        assert error["node_type"] == "VP_LoadVideoPrior"
        for word in words:
            assert word in error["exception_message"], error["exception_message"]
        _no_server_paths(comfy_server, error["exception_message"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert comfy_server.get("/system_stats").ok


# --- memory: refused with the figure and the knob before allocating -----------------------------

def test_rasterize_beyond_memory_is_refused_with_figure_and_knob(comfy_server, info):
    prompt = full_prompt(info)
    prompt = {k: v for k, v in prompt.items() if k in {"1", "2", "3", "4"}}
    prompt["2"]["inputs"]["frames"] = 1024
    prompt["3"]["inputs"].update(width=8192, height=8192)
    error = _execution_error(comfy_server.run(prompt, stall_timeout=STALL_TIMEOUT))
    msg = error["exception_message"]
    assert error["node_type"] == "VP_RasterizeSketch"
    assert "GB" in msg and "width/height" in msg and "frames" in msg, msg
    entry = comfy_server.run(full_prompt_small(info), stall_timeout=STALL_TIMEOUT)
    assert entry["status"]["status_str"] == "success"


def full_prompt_small(info: dict) -> dict:
    prompt = full_prompt(info)
    return {k: v for k, v in prompt.items() if k in {"1", "2", "3", "4"}}


def test_sample_video_beyond_memory_is_refused_with_figure_and_knob(comfy_server):
    error = _execution_error(comfy_server.run(_sample_prompt("embedded", frames=512, width=4096, height=4096),
                                              stall_timeout=STALL_TIMEOUT))
    msg = error["exception_message"]
    assert error["node_type"] == "VP_SampleVideo"
    assert "GB" in msg and "frames" in msg and "width" in msg, msg


def test_many_lines_preview_loads_or_fails_cleanly_and_the_server_keeps_serving(comfy_server, info):
    lines = "".join(f'<line x1="{i % 97}" y1="{(i * 7) % 89}" x2="{(i * 13) % 100}" y2="{(i * 31) % 100}" '
                    'stroke="black"/>' for i in range(5000))
    prompt = full_prompt_small(info)
    prompt["1"]["inputs"].update(svg_text=f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">{lines}</svg>',
                                 canvas_size=256)
    prompt["2"]["inputs"]["frames"] = 1
    entry = comfy_server.run(prompt, stall_timeout=STALL_TIMEOUT)
    if entry["status"]["status_str"] != "success":
        assert _execution_error(entry)["node_type"] == "VP_LoadSVGSketch"
    assert comfy_server.get("/system_stats").ok


def test_animate_sketch_beyond_memory_is_refused_before_optimising(comfy_server, info):
    lines = "".join(f'<line x1="{i % 97}" y1="{(i * 7) % 89}" x2="{(i * 13) % 100}" y2="{(i * 31) % 100}" '
                    'stroke="black"/>' for i in range(2000))
    prompt = full_prompt(info)
    node_id = _node_of(prompt, "VP_AnimateSketch")
    prompt = _only(prompt, node_id)
    prompt["1"]["inputs"]["svg_text"] = f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">{lines}</svg>'
    prompt[_node_of(prompt, "VP_SketchMotionModel")]["inputs"]["frames"] = 128
    prompt[node_id]["inputs"].update(render_size=2048, iterations=100000)
    error = _execution_error(comfy_server.run(prompt, stall_timeout=STALL_TIMEOUT))
    msg = error["exception_message"]
    assert error["node_type"] == "VP_AnimateSketch"
    assert "GB" in msg and "render_size" in msg, msg
