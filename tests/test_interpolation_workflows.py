"""workflows/interpolate_video.json (load video -> RIFE -> save at the new fps) runs unchanged except for the target
fps, with the golden RIFE 4.7 weights under ComfyUI-Frame-Interpolation's file name and a generated source video:
in-process (execution.PromptExecutor) and through the real server (/prompt, /history, /view)."""
from __future__ import annotations

import io
import os

import depth_tiny
import numpy as np
import pytest
import rife_files
from comfy_env import STALL_TIMEOUT
from comfy_runtime import REPO, load_workflow, workflow_to_prompt
from PIL import Image

NAME = "interpolate_video.json"
SOURCE_FPS, TARGET_FPS = 8.0, 16.0  # the generated source video; x2 keeps the test short


def small_prompt(info: dict) -> dict:
    prompt = workflow_to_prompt(load_workflow(os.path.join(REPO, "workflows", NAME)), info)
    for node in prompt.values():
        if node["class_type"] == "VP_InterpolateFrames":
            node["inputs"]["target_fps"] = TARGET_FPS
    return prompt


def source_frames(path: str) -> np.ndarray:
    import av

    with av.open(path) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def check(items: list[dict], fetch, source: np.ndarray) -> None:
    import av

    n = 2 * (source.shape[0] - 1) + 1  # every source frame, one in-between per pair
    webp = next(i for i in items if i["filename"].endswith(".webp"))
    mp4 = next(i for i in items if i["filename"].endswith(".mp4"))
    img = Image.open(io.BytesIO(fetch(webp)))
    assert img.n_frames == n and img.size == (source.shape[2], source.shape[1])
    for k in (0, 1, 2, n - 1):  # the source frames come back exactly (lossless WEBP of the same uint8 values)
        img.seek(k)
        frame = np.asarray(img.convert("RGB"), dtype=np.int16)
        if k % 2 == 0:
            assert np.abs(frame - source[k // 2]).max() <= 1, k
        else:
            assert np.abs(frame - source[k // 2]).mean() > 0.5  # an in-between, not a copy
    with av.open(io.BytesIO(fetch(mp4))) as container:
        stream = container.streams.video[0]
        decoded = [f for f in container.decode(video=0)]
        assert float(stream.average_rate) == TARGET_FPS and len(decoded) == n


def outputs(history_outputs: dict) -> list[dict]:
    return [i for items in history_outputs.values() for v in items.values() if isinstance(v, list) for i in v
            if isinstance(i, dict) and i.get("type") == "output" and "filename" in i]


def test_interpolate_video_runs_in_process(comfy_inproc):
    base = comfy_inproc.base_dir
    rife_files.install_rife_model(base)
    src = depth_tiny.install_source_video(base)
    info = comfy_inproc.object_info()
    prompt = workflow_to_prompt(load_workflow(os.path.join(REPO, "workflows", NAME)), info)
    by_type = {n["class_type"]: n["inputs"] for n in prompt.values()}
    assert by_type["VP_InterpolateFrames"]["target_fps"] == 60.0  # the template: up to 60 fps
    assert by_type["VP_LoadFrameInterpolator"]["model_name"] == rife_files.TEST_FILE
    executor = comfy_inproc.run(small_prompt(info))
    errors = [m[1] for m in executor.status_messages if m[0] == "execution_error"]
    assert executor.success, errors
    out_dir = os.path.join(base, "output")

    def fetch(item):
        with open(os.path.join(out_dir, item.get("subfolder", ""), item["filename"]), "rb") as f:
            return f.read()

    check(outputs(executor.history_result["outputs"]), fetch, source_frames(src))


@pytest.mark.server
def test_interpolate_video_runs_through_the_server(comfy_server):
    """The shared server holds the RIFE file and the source video (conftest.install_lvdm_test_models)."""
    info = comfy_server.object_info()
    entry = comfy_server.run(small_prompt(info), stall_timeout=STALL_TIMEOUT)
    assert entry["status"]["status_str"] == "success", entry["status"]
    src = os.path.join(comfy_server.base_dir, "input", depth_tiny.SOURCE_VIDEO)
    check(outputs(entry["outputs"]), comfy_server.fetch, source_frames(src))
