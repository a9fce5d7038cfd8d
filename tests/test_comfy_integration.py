"""The pack inside the real ComfyUI runtime: server subprocess (/object_info, /prompt, /history, /view)
and in-process execution.PromptExecutor."""
from __future__ import annotations

import glob
import io
import json
import os

import numpy as np
import pytest
from defusedxml import ElementTree as SafeET
from PIL import Image

from comfy_env import STALL_TIMEOUT
from comfy_runtime import REPO, load_workflow, output_files, workflow_to_prompt

WORKFLOWS = sorted(glob.glob(os.path.join(REPO, "workflows", "*.json")))
# livesketch_wan.json needs tiny Wan models with a substituted UMT5 config: tests/test_comfy_prior.py runs
# it, in-process and through its own server; the LVDM workflows need tiny LVDM checkpoints with substituted
# encoder configs: tests/test_lvdm_workflows.py (and tests/test_lvdm_prior.py) run them likewise. Every other
# workflow runs here.
ELSEWHERE = {"livesketch_wan.json", "t2v_videocrafter2.json", "i2v_dynamicrafter.json",
             "i2v_dynamicrafter_official.json", "interp_dynamicrafter.json", "keyframes_dynamicrafter.json",
             "livesketch_videocrafter2.json",
             "depth_from_video.json", "make_your_video.json", "make_your_video_long.json",  # test_depth_workflows
             "interpolate_video.json"}  # test_interpolation_workflows
RUN_HERE = [p for p in WORKFLOWS if os.path.basename(p) not in ELSEWHERE]
EXPECTED_NODES = {"VP_LoadSVGSketch", "VP_RasterizeSketch", "VP_ProceduralMotion", "VP_SketchToSVG",
                  "VP_SaveAnimatedSVG", "VP_LoadVideoPrior", "VP_SketchMotionModel", "VP_SDSGuidance",
                  "VP_AnimateSketch", "VP_VideoPriorFromModel", "VP_SampleVideo", "VP_LoadLVDMCheckpoint",
                  "VP_CLIPContextEncoder", "VP_DynamiCrafterConditioning", "VP_VideoCrafterConditioning",
                  "VP_LVDMScheduler", "VP_LVDMOfficialDDIM", "VP_LVDMRescaleCFG", "VP_SelectFrames",
                  "VP_MakeYourVideoConditioning", "VP_SampleVideoWindows", "VP_LoadDepthModel", "VP_EstimateDepth",
                  "VP_DepthPreview", "VP_DynamiCrafterKeyframes", "VP_LoadFrameInterpolator", "VP_InterpolateFrames",
                  "VP_InterpolateSketch"}
SVG_NS = "{http://www.w3.org/2000/svg}"
KNOWN_CORE_IMPORT_FAILURES = {"IMPORT FAILED: nodes_audio.py", "IMPORT FAILED: nodes_audio_encoder.py"}

SMALL_SVG = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">
<path d="M20 20 C40 10 60 30 80 20" stroke="black" stroke-width="3" fill="none"/>
<circle cx="50" cy="60" r="20" stroke="black" fill="none"/></svg>"""


def small_prompt(preset="sway", frames=6, extra_nodes=None, svg_text=SMALL_SVG):
    prompt = {
        "1": {"class_type": "VP_LoadSVGSketch", "inputs": {
            "svg": "examples/cat.svg", "canvas_size": 128, "fit_to_canvas": True, "stroke_width": 0.0,
            "force_black": False, "max_paths": 0, "svg_text": svg_text}},
        "2": {"class_type": "VP_ProceduralMotion", "inputs": {
            "sketch": ["1", 0], "preset": preset, "frames": frames, "fps": 8.0, "amplitude": 1.0, "cycles": 1,
            "seed": 0}},
        "3": {"class_type": "VP_RasterizeSketch", "inputs": {
            "sketch": ["2", 0], "width": 0, "height": 0, "background": "#ffffff", "quality": 1, "backend": "torch"}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    prompt.update(extra_nodes or {})
    return prompt


def check_image_file(data: bytes, frames: int, size: tuple[int, int], content: bool = True):
    img = Image.open(io.BytesIO(data))
    assert img.size == size
    assert getattr(img, "n_frames", 1) == frames
    arrays = []
    for k in range(getattr(img, "n_frames", 1)):
        img.seek(k)
        arrays.append(np.asarray(img.convert("RGB"), dtype=np.float32) / 255)
    stack = np.stack(arrays)
    if not content:  # sampled frames: their look depends on the model's weights, not on the pack
        assert np.isfinite(stack).all() and stack.std() > 0.01, "frames are one flat colour"
        return
    dark = (stack.mean(-1) < 0.5).mean()
    assert 0.002 < dark < 0.5, f"frames look blank or flooded (dark fraction {dark:.4f})"
    if frames > 1:
        assert np.abs(stack[1:] - stack[:1]).max() > 0.2, "frames do not move"


def check_video_file(data: bytes, frames: int, size: tuple[int, int]):
    import av

    with av.open(io.BytesIO(data)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == frames
    assert decoded[0].shape[1::-1] == size
    dark = (np.stack(decoded).mean(-1) < 128).mean()
    assert 0.002 < dark < 0.5


def check_svg_file(data: bytes, animated: bool):
    root = SafeET.fromstring(data)
    assert root.tag == f"{SVG_NS}svg"
    paths = root.findall(f".//{SVG_NS}path")
    assert len(paths) >= 5
    assert bool(root.findall(f".//{SVG_NS}animate")) == animated


# What each example workflow must produce when run: output kinds, frame count and frame size.
WORKFLOW_EXPECTATIONS = {
    "sketch_motion.json": {"kinds": {".svg", ".webp", ".png", ".mp4"}, "frames": 16, "size": (256, 256),
                           "frame_svgs": "sketch_motion_frames"},
    # LiveSketch workflows: keyframes x 3 (VP_InterpolateSketch, looping), WEBP/MP4 rasterized from the vectors
    # at the canvas size (4 test keyframes -> 12 frames)
    "livesketch_modelscope.json": {"kinds": {".svg", ".webp", ".mp4"}, "frames": 12, "size": (256, 256)},
    # `make demo`: the embedded prior keeps its 8 keyframes -> 24 frames, rasterized at 256 from the vectors
    "livesketch_embedded.json": {"kinds": {".svg", ".webp", ".mp4"}, "frames": 24, "size": (256, 256)},
    # 8 keyframes at 8 fps -> 60 fps in-betweens (a 1 s loop); the SVG holds the 8 keyframes, eased
    "livesketch_smooth.json": {"kinds": {".svg", ".webp", ".mp4"}, "frames": 60, "size": (256, 256)},
    # VP_SampleVideo on the embedded prior: its own clip shape; no SVG, and no look checks (model-dependent)
    "sample_video_embedded.json": {"kinds": {".webp"}, "frames": 8, "size": (32, 32), "content": False},
}


def shrink_for_tests(prompt: dict) -> dict:
    """Tiny settings for the LiveSketch nodes so a workflow runs in seconds with the tiny prior.

    A graph on the embedded prior keeps its frame count (the prior is trained on 8-frame clips and
    is small enough to run them in a test)."""
    embedded = any(n["class_type"] == "VP_LoadVideoPrior" and n["inputs"].get("prior") == "embedded"
                   for n in prompt.values())
    for node in prompt.values():
        if node["class_type"] == "VP_SketchMotionModel":
            node["inputs"].update(hidden=16, **({} if embedded else {"frames": 4}))
        if node["class_type"] == "VP_AnimateSketch":
            node["inputs"].update(iterations=2, render_size=64, preview_every=1)
        if node["class_type"] == "VP_SampleVideo":
            node["inputs"].update(steps=min(node["inputs"]["steps"], 8))
    return prompt


def check_workflow_outputs(entry: dict, fetch, workflow_name: str):
    expect = WORKFLOW_EXPECTATIONS[workflow_name]
    status = entry.get("status", {})
    assert status.get("status_str") == "success", status
    files = output_files(entry)
    assert files, "no outputs"
    kinds = {os.path.splitext(item["filename"])[1].lower() for _, _, item in files}
    assert expect["kinds"] <= kinds, kinds
    frame_svgs = [i for _, _, i in files if expect.get("frame_svgs") and i["filename"].startswith(expect["frame_svgs"])]
    for _node, _kind, item in files:
        data = fetch(item)
        ext = os.path.splitext(item["filename"])[1].lower()
        if ext == ".svg":
            check_svg_file(data, animated=item not in frame_svgs)
        elif ext in (".webp", ".png") and item.get("type") == "output":
            check_image_file(data, frames=expect["frames"], size=expect["size"], content=expect.get("content", True))
        elif ext == ".mp4":
            check_video_file(data, frames=expect["frames"], size=expect["size"])
    if expect.get("frame_svgs"):
        assert len(frame_svgs) == expect["frames"]
    animated = [i for _, _, i in files if i["filename"].endswith(".svg") and i not in frame_svgs]
    assert len(animated) == (1 if ".svg" in expect["kinds"] else 0)


# --- server subprocess -------------------------------------------------------------------------

@pytest.mark.server
def test_object_info_lists_every_node_and_no_import_failed(comfy_server):
    info = comfy_server.object_info()
    ours = {k: v for k, v in info.items() if k.startswith("VP_")}
    assert set(ours) == EXPECTED_NODES
    for name, node in ours.items():
        assert node["category"].startswith("VideoPriors/"), name
    log = comfy_server.log()
    failed = [line.strip() for line in log.splitlines() if "IMPORT FAILED" in line]
    assert not [f for f in failed if "videopriors" in f], log[-3000:]
    # The only core modules allowed to fail are the audio ones: torchaudio has no release for the
    # pinned torch 2.14.1 (its newest, 2.11, needs torch 2.11). Anything else failing is a real problem.
    assert set(failed) <= KNOWN_CORE_IMPORT_FAILURES, failed
    import_list = log[log.index("Import times for custom nodes"):]
    # The shared server also holds the test-only LVDM encoder-config node (conftest.install_lvdm_test_models).
    listed = [line for line in import_list.splitlines()[1:4] if "custom_nodes/" in line]
    assert any("custom_nodes/videopriors" in line and "IMPORT FAILED" not in line for line in listed), listed


@pytest.mark.server
def test_workflows_are_served_as_templates(comfy_server):
    r = comfy_server.get("/workflow_templates")
    assert r.ok
    names = r.json().get("videopriors", [])
    assert sorted(names) == sorted(os.path.splitext(os.path.basename(p))[0] for p in WORKFLOWS)


@pytest.mark.server
@pytest.mark.parametrize("path", RUN_HERE, ids=[os.path.basename(p) for p in RUN_HERE])
def test_workflow_runs_through_prompt_api(comfy_server, path):
    prompt = shrink_for_tests(workflow_to_prompt(load_workflow(path), comfy_server.object_info()))
    entry = comfy_server.run(prompt, stall_timeout=STALL_TIMEOUT)
    check_workflow_outputs(entry, comfy_server.fetch, os.path.basename(path))


@pytest.mark.server
@pytest.mark.parametrize("node,field,value", [
    ("2", "preset", "moonwalk"),  # not one of the enum's options
    ("2", "frames", 100000),  # above max
    ("3", "quality", 0),  # below min
    ("1", "canvas_size", 5),  # below min on a node that has its own validate_inputs
    ("3", "background", "#zzzzzz"),  # not a colour
    ("3", "backend", "cuda-magic"),
])
def test_validation_errors_come_back_as_comfyui_errors(comfy_server, node, field, value):
    prompt = small_prompt()
    prompt[node]["inputs"][field] = value
    r = comfy_server.queue(prompt)
    assert r.status_code == 400
    body = r.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert node in body["node_errors"]
    assert comfy_server.get("/system_stats").ok


@pytest.mark.server
def test_hostile_svg_fails_the_node_and_server_keeps_serving(comfy_server):
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol%d;" % (i - 1)) * 10}">' for i in range(1, 9))
    bomb = (f'<?xml version="1.0"?><!DOCTYPE svg [{entities}]>'
            '<svg xmlns="http://www.w3.org/2000/svg"><text>&lol8;</text></svg>')
    entry = comfy_server.run(small_prompt(svg_text=bomb), stall_timeout=STALL_TIMEOUT)
    assert entry["status"]["status_str"] == "error"
    errors = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert errors and errors[0]["node_type"] == "VP_LoadSVGSketch"
    assert "VP_LoadSVGSketch" in errors[0]["exception_message"]
    # the next prompt still runs
    ok = comfy_server.run(small_prompt(frames=2), stall_timeout=STALL_TIMEOUT)
    assert ok["status"]["status_str"] == "success"


# --- in-process PromptExecutor -----------------------------------------------------------------

def test_inprocess_small_graph(comfy_inproc):
    executor = comfy_inproc.run(small_prompt(preset="bounce", frames=5))
    assert executor.success, executor.status_messages
    images = executor.history_result["outputs"]["4"]["images"]
    assert len(images) == 5
    path = os.path.join(comfy_inproc.base_dir, "temp", images[0]["subfolder"], images[0]["filename"])
    check_image_file(open(path, "rb").read(), frames=1, size=(128, 128))


def test_inprocess_workflows(comfy_inproc):
    info = comfy_inproc.object_info()
    for path in RUN_HERE:
        executor = comfy_inproc.run(shrink_for_tests(workflow_to_prompt(load_workflow(path), info)))
        assert executor.success, executor.status_messages
        entry = {"status": {"status_str": "success"}, "outputs": executor.history_result["outputs"]}

        def fetch(item):
            with open(os.path.join(comfy_inproc.base_dir, item["type"], item["subfolder"], item["filename"]), "rb") as f:
                return f.read()

        check_workflow_outputs(entry, fetch, os.path.basename(path))


def test_inprocess_validation_error(comfy_inproc):
    prompt = small_prompt()
    prompt["2"]["inputs"]["preset"] = "moonwalk"
    valid, error, _outputs, node_errors = comfy_inproc.validate(prompt)
    assert not valid
    assert error["type"] == "prompt_outputs_failed_validation"
    assert "2" in node_errors


def test_inprocess_rasterize_at_higher_resolution_and_svg_nodes(comfy_inproc):
    prompt = small_prompt(frames=3)
    prompt["3"]["inputs"].update(width=512, height=0)
    prompt["5"] = {"class_type": "VP_SketchToSVG", "inputs": {"sketch": ["2", 0], "background": "none"}}
    prompt["6"] = {"class_type": "SaveSVGNode", "inputs": {"svg": ["5", 0], "filename_prefix": "vp_test/frames"}}
    prompt["7"] = {"class_type": "VP_SaveAnimatedSVG", "inputs": {
        "animation": ["2", 0], "filename_prefix": "vp_test/anim", "background": "#ffffff", "interpolation": "linear"}}
    executor = comfy_inproc.run(prompt)
    assert executor.success, executor.status_messages
    out = executor.history_result["outputs"]
    img = out["4"]["images"][0]
    with Image.open(os.path.join(comfy_inproc.base_dir, "temp", img["subfolder"], img["filename"])) as im:
        assert im.size == (512, 512)
    assert len(out["6"]["images"]) == 3
    anim = out["7"]["images"][0]
    doc = open(os.path.join(comfy_inproc.base_dir, "output", anim["subfolder"], anim["filename"]), "rb").read()
    root = SafeET.fromstring(doc)
    assert root.findall(f".//{SVG_NS}animate")[0].get("calcMode") == "linear"


def test_workflow_json_is_ui_format():
    assert WORKFLOWS, "workflows/ has no example graphs"
    for path in WORKFLOWS:
        wf = json.load(open(path))
        assert {"nodes", "links", "version"} <= set(wf)
        ids = {n["id"] for n in wf["nodes"]}
        for link in wf["links"]:
            assert link[1] in ids and link[3] in ids


def test_inprocess_loads_the_pack(comfy_inproc):
    failed = {f"IMPORT FAILED: {name}" for name in comfy_inproc.import_failed}
    assert failed <= KNOWN_CORE_IMPORT_FAILURES, failed
    for node in EXPECTED_NODES:
        cls = comfy_inproc.nodes.NODE_CLASS_MAPPINGS[node]
        assert cls.GET_SCHEMA().category.startswith("VideoPriors/")


# --- LiveSketch nodes in the runtime -------------------------------------------------------------

def livesketch_prompt(info: dict, **animate) -> dict:
    path = os.path.join(REPO, "workflows", "livesketch_modelscope.json")
    prompt = shrink_for_tests(workflow_to_prompt(load_workflow(path), info))
    for node in prompt.values():
        if node["class_type"] == "VP_AnimateSketch":
            node["inputs"].update(animate)
    return prompt


def _animate_node(prompt: dict) -> str:
    return next(k for k, n in prompt.items() if n["class_type"] == "VP_AnimateSketch")


@pytest.mark.server
def test_progress_messages_name_the_node_and_count_its_steps(comfy_server):
    """What `make demo` shows while a graph runs: ComfyUI's websocket messages for our client."""
    from comfy_runtime import ProgressTracker

    prompt = livesketch_prompt(comfy_server.object_info(), iterations=5, preview_every=2)
    animate = _animate_node(prompt)
    messages, lines = [], []
    tracker = ProgressTracker(prompt, every=0)
    entry = comfy_server.run(prompt, stall_timeout=STALL_TIMEOUT,
                             on_event=lambda m: (messages.append(m), lines.append(tracker.update(m))))
    assert entry["status"]["status_str"] == "success", entry["status"]
    executing = [m["data"]["node"] for m in messages if m["type"] == "executing" and m["data"]["node"] is not None]
    assert set(executing) == set(prompt), executing  # every node announced once it starts
    steps = [(m["data"]["value"], m["data"]["max"]) for m in messages
             if m["type"] == "progress" and m["data"]["node"] == animate]
    assert steps == [(i, 5) for i in range(1, 6)], steps  # one message per iteration, in order
    # The prompt ends with execution_success: no node runs or reports after it. (ComfyUI's worker then
    # announces "executing: None" and queue status, which may or may not arrive before the history entry.)
    types = [m["type"] for m in messages]
    assert types.count("execution_success") == 1, types[-5:]
    after = messages[types.index("execution_success") + 1:]
    assert not [m for m in after if m["type"] in ("progress", "executed", "execution_error")
                or (m["type"] == "executing" and m["data"]["node"] is not None)], after
    assert f"running VP_AnimateSketch (node {animate})" in lines
    assert f"VP_AnimateSketch (node {animate}): step 5/5" in [(ln or "").split(",")[0] for ln in lines]


@pytest.mark.server
def test_interrupt_stops_animate_sketch_and_the_next_prompt_runs(comfy_server):
    prompt = livesketch_prompt(comfy_server.object_info(), iterations=100000)
    animate = _animate_node(prompt)
    stream = comfy_server.events()
    assert stream is not None, "no websocket connection to the server"
    prompt_id = comfy_server.submit(prompt)
    seen = 0
    while seen < 3:  # until VP_AnimateSketch has done a few iterations (bounded by work, not a clock)
        m = stream.get(STALL_TIMEOUT)
        assert m is not None, f"no message from the server for {STALL_TIMEOUT}s while waiting for progress"
        data = m.get("data") or {}
        if data.get("prompt_id") == prompt_id and m["type"] == "progress" and data["node"] == animate:
            seen = data["value"]
        assert m["type"] not in ("execution_error", "execution_success"), m
    comfy_server.interrupt(prompt_id)
    later = []
    entry = comfy_server.wait(prompt_id, stall_timeout=STALL_TIMEOUT, on_event=later.append)
    events = [m[0] for m in entry["status"]["messages"]]
    assert "execution_interrupted" in events, events
    interrupted = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_interrupted"][0]
    assert interrupted["node_type"] == "VP_AnimateSketch"
    # The node checks for an interrupt before every pass: it stops within the iteration in flight.
    # The slack covers progress messages still on their way when the interrupt was sent.
    last = max([seen] + [m["data"]["value"] for m in later if m["type"] == "progress"])
    assert last - seen <= 25, (seen, last)
    assert comfy_server.run(small_prompt(frames=2), stall_timeout=STALL_TIMEOUT)["status"]["status_str"] == "success"


def _node_error(executor, node_type):
    errors = [m[1] for m in executor.status_messages if m[0] == "execution_error"]
    assert errors, executor.status_messages
    assert errors[0]["node_type"] == node_type
    return errors[0]["exception_message"]


def test_livesketch_bad_inputs_give_clear_node_errors(comfy_inproc, tmp_path):
    info = comfy_inproc.object_info()
    empty = livesketch_prompt(info)
    load = next(k for k, v in empty.items() if v["class_type"] == "VP_LoadSVGSketch")
    empty[load]["inputs"]["svg_text"] = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
    executor = comfy_inproc.run(empty)
    assert not executor.success
    assert "path" in _node_error(executor, "VP_LoadSVGSketch").lower()

    short = livesketch_prompt(info)
    motion = next(k for k, v in short.items() if v["class_type"] == "VP_SketchMotionModel")
    short[motion]["inputs"]["frames"] = 1
    valid, error, _o, node_errors = comfy_inproc.validate(short)
    assert not valid and error["type"] == "prompt_outputs_failed_validation" and motion in node_errors


def test_prior_name_resolves_to_the_folder_that_was_listed(comfy_inproc):
    # models/video_priors/<name> is not a text-to-video folder, models/diffusers/<name> is: the list offers the
    # name for the diffusers one, and loading must open that one, not the first directory of that name.
    import shutil
    import sys

    import folder_paths

    comfy_inproc.object_info()  # the pack is loaded (under ComfyUI's module name for custom nodes)
    pack = sys.modules[next(m for m in sys.modules if m.endswith(".nodes.prior_loading"))]
    priors = folder_paths.get_folder_paths("video_priors")[0]
    diffusers_root = os.path.join(os.path.dirname(priors), "diffusers")
    src = os.path.join(priors, "text-to-video-ms-1.7b")
    decoy, real = os.path.join(priors, "shadowed-t2v"), os.path.join(diffusers_root, "shadowed-t2v")
    try:
        os.makedirs(os.path.join(decoy, "unet"))  # a directory, but not a text-to-video model
        shutil.copytree(src, real)
        folder_paths.add_model_folder_path("diffusers", diffusers_root)
        assert "shadowed-t2v" in pack.list_prior_folders()
        assert os.path.realpath(pack.resolve_prior_folder("shadowed-t2v")) == os.path.realpath(real)
    finally:
        shutil.rmtree(decoy, ignore_errors=True)
        shutil.rmtree(real, ignore_errors=True)


def test_prior_folder_problems_name_the_file_and_where_to_get_it(comfy_inproc):
    import shutil

    import folder_paths

    info = comfy_inproc.object_info()
    root = folder_paths.get_folder_paths("video_priors")[0]
    src = os.path.join(root, "text-to-video-ms-1.7b")
    broken = os.path.join(root, "broken-t2v")
    shutil.rmtree(broken, ignore_errors=True)
    shutil.copytree(src, broken)
    shutil.rmtree(os.path.join(broken, "vae"))
    prompt = livesketch_prompt(info)
    loader = next(k for k, v in prompt.items() if v["class_type"] == "VP_LoadVideoPrior")
    prompt[loader]["inputs"]["prior"] = "broken-t2v"
    executor = comfy_inproc.run(prompt)
    msg = _node_error(executor, "VP_LoadVideoPrior")
    # named relative to ComfyUI's models folder, never by its absolute server path
    assert "vae" in msg and "video_priors/broken-t2v" in msg and broken not in msg

    # a truncated weights file is a wrong checkpoint, reported as such
    shutil.rmtree(broken)
    shutil.copytree(src, broken)
    weights = os.path.join(broken, "unet", "diffusion_pytorch_model.safetensors")
    with open(weights, "r+b") as f:
        f.truncate(os.path.getsize(weights) // 2)
    executor = comfy_inproc.run(prompt)
    msg = _node_error(executor, "VP_LoadVideoPrior")
    assert "unet" in msg.lower()
    shutil.rmtree(broken)

    missing = livesketch_prompt(info)
    missing[loader]["inputs"]["prior"] = "no-such-prior"
    valid, _error, _o, node_errors = comfy_inproc.validate(missing)
    assert not valid and "video_priors" in json.dumps(node_errors[loader])
