"""The frame-interpolation nodes in ComfyUI (in-process): where VP_LoadFrameInterpolator looks, the version it
reports, dtype and model management; VP_InterpolateFrames' frames, fps, progress previews, interruption and bad
input (checked before anything runs)."""
from __future__ import annotations

import os
import shutil
import sys

import pytest
import rife_files
import torch
from shared_data import require_shared  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("require_shared")


@pytest.fixture(scope="module")
def env(comfy_inproc):
    rife_files.install_rife_model(comfy_inproc.base_dir)
    return comfy_inproc


def node(env, name):
    return env.nodes.NODE_CLASS_MAPPINGS[name]


def module(env):
    return sys.modules[node(env, "VP_LoadFrameInterpolator").__module__]


def load(env, name=rife_files.TEST_FILE, dtype="fp32"):
    return node(env, "VP_LoadFrameInterpolator").execute(name, dtype).result


def test_files_are_found_in_our_folder_and_the_other_pack_s(env):
    other = os.path.join(env.base_dir, "custom_nodes", "ComfyUI-Frame-Interpolation", "ckpts", "rife")
    os.makedirs(other, exist_ok=True)
    shutil.copy(rife_files.install_rife_model(env.base_dir), os.path.join(other, "rife49.pth"))
    try:
        names = module(env).list_interpolators()
        assert {rife_files.TEST_FILE, "rife49.pth"} <= set(names)
        handle, info = load(env, "rife49.pth")
        assert handle.version == "4.9" and "RIFE 4.9" in info and "file name" in info
        with pytest.raises(FileNotFoundError, match=r"models/frame_interpolation/.*rife47\.pth"):
            module(env).resolve_interpolator("missing.pth")
    finally:  # the in-process runtime is shared with other test files
        shutil.rmtree(os.path.join(env.base_dir, "custom_nodes", "ComfyUI-Frame-Interpolation"))


def test_dtype_and_model_management(env):
    handle, info = load(env, dtype="bf16")
    assert next(handle.model.parameters()).dtype == torch.bfloat16 and "bfloat16" in info
    assert handle.patcher.model is handle.model  # ComfyUI's ModelPatcher manages the very module used
    handle, _ = load(env)
    assert next(handle.model.parameters()).dtype == torch.float32 and handle.version == "4.7"


def test_interpolate_frames_multiplier_fps_and_progress(env, monkeypatch):
    import comfy.utils

    updates = []
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", lambda value, total, preview, node_id=None:
                        updates.append((value, total, preview is not None)))
    handle, _ = load(env)
    clip = rife_files.moving_clip(frames=3, height=40, width=56)
    run = node(env, "VP_InterpolateFrames").execute
    with torch.inference_mode():
        frames, fps = run(handle, clip, 3, 8.0, 0.0, "1.0", False, 0.0, False, 2).result
    assert frames.shape == (7, 40, 56, 3) and fps == 24.0
    assert torch.equal(frames[0], clip[0]) and torch.equal(frames[3], clip[1]) and torch.equal(frames[6], clip[2])
    assert [u[:2] for u in updates] == [(2, 4), (4, 4)] and all(u[2] for u in updates)
    with torch.inference_mode():
        same = handle.model(clip[1:2].permute(0, 3, 1, 2), clip[2:3].permute(0, 3, 1, 2), 2 / 3)
    torch.testing.assert_close(frames[5], same.clamp(0, 1)[0].permute(1, 2, 0), atol=1e-5, rtol=0)
    with torch.inference_mode():
        frames, fps = run(handle, clip, 2, 24.0, 60.0, "0.5", True, 0.0, True, 4).result
    assert fps == 60.0 and frames.shape[0] == 8  # 3 frames looped = 0.125 s at 24 fps -> 7.5 -> 8 frames at 60


def test_interpolation_stops_when_interrupted(env):
    import comfy.model_management as mm

    handle, _ = load(env)
    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException), torch.inference_mode():
            node(env, "VP_InterpolateFrames").execute(handle, rife_files.moving_clip(3), 2, 8.0, 0.0, "1.0", False,
                                                      0.0, False, 1)
    finally:
        mm.interrupt_current_processing(False)


def test_bad_input_is_refused_with_clear_messages(env):
    handle, _ = load(env)
    cls = node(env, "VP_InterpolateFrames")
    clip = rife_files.moving_clip(3)
    with pytest.raises(ValueError, match=r"VP_InterpolateFrames: needs at least two frames.*\[1, 48, 64, 3\]"):
        cls.execute(handle, clip[:1], 2, 8.0, 0.0, "1.0", False, 0.0, False, 1)
    with pytest.raises(ValueError, match="target_fps 24.0 must be higher than source_fps 30.0"):
        cls.execute(handle, clip, 2, 30.0, 24.0, "1.0", False, 0.0, False, 1)
    with pytest.raises(ValueError, match="multiplier: 1 is below the minimum 2"):
        cls.execute(handle, clip, 1, 8.0, 0.0, "1.0", False, 0.0, False, 1)
    assert "above the maximum 16" in cls.validate_inputs(40, 8.0, 0.0, "1.0", 0.0, 1)
    assert "more than 16x" in cls.validate_inputs(2, 1.0, 60.0, "1.0", 0.0, 1)
    assert "must be higher" in cls.validate_inputs(2, 30.0, 25.0, "1.0", 0.0, 1)
    assert "is not one of" in cls.validate_inputs(2, 8.0, 0.0, "0.3", 0.0, 1)
    assert cls.validate_inputs(2, 8.0, 0.0, "1.0", 0.0, 1) is True


def test_other_models_given_as_interpolator_are_named(env):
    import depth_tiny
    import lvdm_tiny

    folder = os.path.join(env.base_dir, "models", "frame_interpolation")
    lvdm = lvdm_tiny.build_checkpoint(os.path.join(folder, "makeyourvideo_256.ckpt"), "makeyourvideo_256")
    depth = os.path.join(folder, depth_tiny.DA_FILE)
    torch.save(depth_tiny.fixture_state_dict("depth_anything_v2_vits"), depth)
    try:
        with pytest.raises(ValueError, match=r"VP_LoadFrameInterpolator: makeyourvideo_256\.ckpt is not a RIFE.*"
                                             r"video diffusion model"):
            load(env, "makeyourvideo_256.ckpt")
        with pytest.raises(ValueError, match=r"depth_anything_v2_vits\.pth is not a RIFE.*depth estimator"):
            load(env, depth_tiny.DA_FILE)
    finally:
        os.remove(lvdm)
        os.remove(depth)
