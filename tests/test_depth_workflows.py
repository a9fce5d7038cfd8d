"""The depth and Make-Your-Video example workflows (workflows/depth_from_video.json, make_your_video.json,
make_your_video_long.json) run unchanged except for sizes and step counts, with tiny models of the real classes (the
golden fixtures' depth weights under the real file names, a tiny official-layout Make-Your-Video checkpoint) on a
generated source video: in-process (execution.PromptExecutor) and through the real server (/prompt, /history, /view).
"""
from __future__ import annotations

import io
import os

import depth_tiny
import lvdm_tiny
import numpy as np
import pytest
from comfy_env import STALL_TIMEOUT
from comfy_runtime import REPO, load_workflow, workflow_to_prompt
from PIL import Image

WORKFLOWS = ["depth_from_video.json", "make_your_video.json", "make_your_video_long.json"]
SIZE, STEPS = 64, 2
SOURCE = depth_tiny.source_frames()  # 64 frames of 96x64
FRAMES = {"make_your_video.json": 8, "make_your_video_long.json": 64}


def install(base_dir: str) -> None:
    lvdm_tiny.install_checkpoints(base_dir, ("makeyourvideo_256",))
    depth_tiny.install_depth_models(base_dir)
    depth_tiny.install_source_video(base_dir)


def small_prompt(name: str, info: dict) -> dict:
    prompt = workflow_to_prompt(load_workflow(os.path.join(REPO, "workflows", name)), info)
    for node in prompt.values():
        inputs, cls = node["inputs"], node["class_type"]
        if cls == "VP_EstimateDepth":
            inputs["input_size"] = 70  # Depth-Anything: 70 px instead of 518 (MiDaS always works at 384)
        if cls == "VP_MakeYourVideoConditioning":
            inputs.update(width=SIZE, height=SIZE)
        if cls in ("VP_LVDMScheduler", "VP_SampleVideoWindows"):
            inputs["steps"] = STEPS
        if cls == "VP_SelectFrames" and name == "make_your_video.json":
            inputs["frames"] = FRAMES[name]  # stride 2 as the official run.sh
        if cls == "VP_LoadDepthModel" and name == "make_your_video_long.json":
            inputs["model_name"] = depth_tiny.DA_FILE  # 64 frames: the faster tiny model
    return prompt


def output_items(outputs: dict) -> list[dict]:
    return [i for items in outputs.values() for v in items.values() if isinstance(v, list) for i in v
            if isinstance(i, dict) and i.get("type") == "output" and "filename" in i]


def webp_frames(data: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    frames = []
    for k in range(img.n_frames):
        img.seek(k)
        frames.append(np.asarray(img.convert("RGB"), dtype=np.float32))
    return np.stack(frames)


def check(name: str, items: list[dict], fetch) -> None:
    by_name = {i["filename"]: i for i in items}
    if name == "depth_from_video.json":
        previews = {}
        for mode in ("per_frame", "clip", "stable"):
            item = next(i for n, i in by_name.items() if n.startswith(f"depth_{mode}"))
            frames = webp_frames(fetch(item))
            assert frames.shape == (SOURCE.shape[0], SOURCE.shape[1], SOURCE.shape[2], 3), (mode, frames.shape)
            assert np.allclose(frames[..., 0], frames[..., 2], atol=2)  # grey
            previews[mode] = frames
        assert previews["per_frame"][:, :, :, 0].max(axis=(1, 2)).min() > 250  # every frame reaches white
        assert np.abs(previews["per_frame"] - previews["stable"]).mean() > 0.5  # the modes differ
        return
    frames = FRAMES[name]
    videos = [i for n, i in by_name.items() if n.startswith(name[:-5] + "_")]
    webp = next(i for i in videos if i["filename"].endswith(".webp"))
    mp4 = next(i for i in videos if i["filename"].endswith(".mp4"))
    depth = next(i for n, i in by_name.items() if n.startswith("make_your_video_depth"))
    assert webp_frames(fetch(webp)).shape[:3] == (frames, SIZE, SIZE)
    assert webp_frames(fetch(depth)).shape[:3] == (frames, SIZE, SIZE)
    import av

    with av.open(io.BytesIO(fetch(mp4))) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert decoded.shape[:3] == (frames, SIZE, SIZE) and decoded.std() > 1.0


@pytest.fixture(scope="module")
def depth_inproc(comfy_inproc):
    ns = lvdm_tiny.substitution(comfy_inproc.base_dir)
    ns["apply"]()
    install(comfy_inproc.base_dir)
    yield comfy_inproc
    ns["undo"]()


def test_workflows_keep_the_official_settings(depth_inproc):
    info = depth_inproc.object_info()
    for name in WORKFLOWS:
        prompt = workflow_to_prompt(load_workflow(os.path.join(REPO, "workflows", name)), info)
        by_type = {n["class_type"]: n["inputs"] for n in prompt.values()}
        assert set(by_type) <= set(info)
        if name == "make_your_video.json":  # scripts/run.sh of Make-Your-Video
            assert by_type["VP_SelectFrames"]["frames"] == 16 and by_type["VP_SelectFrames"]["frame_stride"] == 2
            assert (by_type["VP_MakeYourVideoConditioning"]["width"], by_type["VP_MakeYourVideoConditioning"]
                    ["height"], by_type["VP_MakeYourVideoConditioning"]["normalization"]) == (256, 256, "per_frame")
            assert by_type["CFGGuider"]["cfg"] == 7.5 and by_type["VP_LVDMOfficialDDIM"]["eta"] == 1.0
            assert by_type["VP_LVDMScheduler"]["steps"] == 50
            assert by_type["VP_LoadDepthModel"]["model_name"] == depth_tiny.MIDAS_FILE
        if name == "make_your_video_long.json":
            assert by_type["VP_SelectFrames"]["frames"] == 64 and by_type["VP_SampleVideoWindows"]["window"] == 64


@pytest.mark.parametrize("name", WORKFLOWS)
def test_depth_workflow_runs_in_process(depth_inproc, name):
    executor = depth_inproc.run(small_prompt(name, depth_inproc.object_info()))
    errors = [m[1] for m in executor.status_messages if m[0] == "execution_error"]
    assert executor.success, errors
    out_dir = os.path.join(depth_inproc.base_dir, "output")

    def fetch(item):
        with open(os.path.join(out_dir, item.get("subfolder", ""), item["filename"]), "rb") as f:
            return f.read()

    check(name, output_items(executor.history_result["outputs"]), fetch)


@pytest.mark.server
def test_depth_workflows_run_through_the_server(comfy_server):
    """The shared server holds the same tiny files (conftest.install_lvdm_test_models)."""
    info = comfy_server.object_info()
    listed = info["VP_LoadDepthModel"]["input"]["required"]["model_name"]
    names = listed[1]["options"] if listed[0] == "COMBO" else listed[0]
    assert {depth_tiny.MIDAS_FILE, depth_tiny.DA_FILE} <= set(names)
    for name in WORKFLOWS:
        entry = comfy_server.run(small_prompt(name, info), stall_timeout=STALL_TIMEOUT)
        assert entry["status"]["status_str"] == "success", (name, entry["status"])
        check(name, output_items(entry["outputs"]), comfy_server.fetch)
