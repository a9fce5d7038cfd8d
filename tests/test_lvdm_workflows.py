"""The LVDM example workflows (workflows/t2v_videocrafter2.json, i2v_dynamicrafter*.json, interp_dynamicrafter.json,
keyframes_dynamicrafter.json)
run unchanged except for size and step count, with tiny official-layout checkpoints (tests/lvdm_tiny.py), in-process
(execution.PromptExecutor) and through the real server (/prompt, /history, /view)."""
from __future__ import annotations

import io
import os
import shutil

import lvdm_tiny
import numpy as np
import pytest
from comfy_env import STALL_TIMEOUT
from comfy_runtime import REPO, comfyui_dir, load_workflow, workflow_to_prompt
from PIL import Image

LVDM_WORKFLOWS = ["t2v_videocrafter2.json", "i2v_dynamicrafter.json", "i2v_dynamicrafter_official.json",
                  "interp_dynamicrafter.json", "keyframes_dynamicrafter.json", "livesketch_videocrafter2.json"]
SKETCH_FRAMES = 8  # livesketch_videocrafter2 at test size: 8 frames, 2 fused iterations at 64 px
# its outputs: the 8 keyframes x 3 (VP_InterpolateSketch, looping) rasterized from the vectors at the 256 canvas
SKETCH_OUTPUT_FRAMES, SKETCH_OUTPUT_SIZE = 3 * SKETCH_FRAMES, 256
SIZE, STEPS, FRAMES = 64, 2, 16
KEYFRAME_FRAMES = 2 * FRAMES - 1  # keyframes_dynamicrafter: 3 keyframes, 2 segments of 16 sharing the middle one
EXTRA_FILES = {"dynamicrafter_512_interp.ckpt": "dynamicrafter_512"}


def install(base_dir: str) -> None:
    """Tiny checkpoints under the workflows' file names, and ComfyUI's example.png in the input folder."""
    paths = lvdm_tiny.install_checkpoints(base_dir)
    for name, variant in EXTRA_FILES.items():
        target = os.path.join(base_dir, "models", "checkpoints", name)
        if not os.path.exists(target):
            os.link(paths[variant], target)
    os.makedirs(os.path.join(base_dir, "input"), exist_ok=True)
    shutil.copy(os.path.join(comfyui_dir(), "input", "example.png"), os.path.join(base_dir, "input", "example.png"))


def small_prompt(name: str, info: dict) -> dict:
    prompt = workflow_to_prompt(load_workflow(os.path.join(REPO, "workflows", name)), info)
    for node in prompt.values():
        inputs = node["inputs"]
        if node["class_type"] in ("VP_DynamiCrafterConditioning", "VP_VideoCrafterConditioning",
                                  "VP_CLIPContextEncoder", "VP_DynamiCrafterKeyframes"):
            inputs.update(width=SIZE, height=SIZE)
        if node["class_type"] in ("KSampler", "VP_LVDMScheduler"):
            inputs["steps"] = STEPS
        if node["class_type"] == "VP_SketchMotionModel":
            inputs.update(frames=SKETCH_FRAMES, hidden=16)
        if node["class_type"] == "VP_AnimateSketch":
            inputs.update(iterations=2, fused=True, render_size=SIZE, preview_every=1)
    return prompt


def check_frames(files: dict, fetch, frames: int = FRAMES, size: int = SIZE) -> None:
    import av

    assert {".webp", ".mp4"} <= set(files), files
    img = Image.open(io.BytesIO(fetch(files[".webp"])))
    assert img.size == (size, size) and img.n_frames == frames
    with av.open(io.BytesIO(fetch(files[".mp4"]))) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert decoded.shape[:3] == (frames, size, size) and decoded.std() > 1.0  # not one flat colour


def check_outputs(name: str, files: dict, fetch) -> None:
    if name.startswith("livesketch"):
        from test_comfy_integration import check_svg_file

        assert ".svg" in files, files
        check_svg_file(fetch(files[".svg"]), animated=True)
        check_frames(files, fetch, SKETCH_OUTPUT_FRAMES, SKETCH_OUTPUT_SIZE)
    elif name.startswith("keyframes"):
        check_frames(files, fetch, KEYFRAME_FRAMES)
    else:
        check_frames(files, fetch)


@pytest.fixture(scope="module")
def lvdm_inproc(comfy_inproc):
    ns = lvdm_tiny.substitution(comfy_inproc.base_dir)
    ns["apply"]()
    install(comfy_inproc.base_dir)
    yield comfy_inproc
    ns["undo"]()


def test_workflows_use_only_registered_nodes_and_official_settings(lvdm_inproc):
    info = lvdm_inproc.object_info()
    for name in LVDM_WORKFLOWS:
        prompt = workflow_to_prompt(load_workflow(os.path.join(REPO, "workflows", name)), info)
        types = {n["class_type"] for n in prompt.values()}
        assert types <= set(info), (name, types - set(info))
        cond = next((n["inputs"] for n in prompt.values() if n["class_type"].endswith("Conditioning")), None)
        if cond is not None:  # the LVDM sampling graphs; livesketch_videocrafter2 has no video conditioning
            assert (cond["width"], cond["height"], cond["frames"]) == (512, 320, 16)
    official = workflow_to_prompt(load_workflow(os.path.join(REPO, "workflows", "i2v_dynamicrafter_official.json")),
                                  info)
    by_type = {n["class_type"]: n["inputs"] for n in official.values()}
    assert by_type["VP_LVDMScheduler"]["steps"] == 50 and by_type["VP_LVDMOfficialDDIM"]["eta"] == 1.0
    assert by_type["CFGGuider"]["cfg"] == 7.5 and by_type["VP_LVDMRescaleCFG"]["multiplier"] == 0.7
    assert by_type["VP_DynamiCrafterConditioning"]["frame_stride"] == 24
    keys = workflow_to_prompt(load_workflow(os.path.join(REPO, "workflows", "keyframes_dynamicrafter.json")), info)
    by_type = {n["class_type"]: n["inputs"] for n in keys.values()}
    assert by_type["VP_LoadLVDMCheckpoint"]["variant"] == "dynamicrafter_512_interp"
    assert by_type["VP_LVDMScheduler"]["steps"] == 50 and by_type["VP_LVDMOfficialDDIM"]["eta"] == 1.0
    assert by_type["VP_LVDMRescaleCFG"]["multiplier"] == 0.7
    node = by_type["VP_DynamiCrafterKeyframes"]
    assert (node["frames"], node["cfg"], node["frame_stride"], node["width"], node["height"]) == \
        ("16", "7.5", "5", 512, 320)


@pytest.mark.parametrize("name", LVDM_WORKFLOWS)
def test_lvdm_workflow_runs_in_process(lvdm_inproc, name):
    executor = lvdm_inproc.run(small_prompt(name, lvdm_inproc.object_info()))
    errors = [m[1] for m in executor.status_messages if m[0] == "execution_error"]
    assert executor.success, errors
    out_dir = os.path.join(lvdm_inproc.base_dir, "output")

    def fetch(item):
        with open(os.path.join(out_dir, item.get("subfolder", ""), item["filename"]), "rb") as f:
            return f.read()

    check_outputs(name, lvdm_tiny.files_by_kind(executor.history_result["outputs"]), fetch)


@pytest.mark.server
def test_lvdm_workflows_run_through_the_server(tmp_path_factory, comfy_inproc):
    """The real server with the tiny checkpoints and the test-only encoder-config custom node: every LVDM workflow
    through /prompt, /history and /view. (comfy_inproc: building the tiny files needs ComfyUI importable.)"""
    from comfy_runtime import ComfyServer

    base = str(tmp_path_factory.mktemp("comfy-lvdm-server"))
    install(base)
    lvdm_tiny.install_custom_node(base)
    server = ComfyServer(base)
    server.start()
    try:
        info = server.object_info()
        listed = info["VP_LoadLVDMCheckpoint"]["input"]["required"]["ckpt_name"]
        names = listed[1]["options"] if listed[0] == "COMBO" else listed[0]
        assert {"videocrafter2_512.ckpt", "dynamicrafter_512.ckpt", "dynamicrafter_512_interp.ckpt"} <= set(names)
        for name in LVDM_WORKFLOWS:
            entry = server.run(small_prompt(name, info), stall_timeout=STALL_TIMEOUT)
            assert entry["status"]["status_str"] == "success", (name, entry["status"])
            check_outputs(name, lvdm_tiny.files_by_kind(entry["outputs"]), server.fetch)
    finally:
        server.stop()
