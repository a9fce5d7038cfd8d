"""The depth nodes in ComfyUI (in-process): where VP_LoadDepthModel looks, dtype, VP_EstimateDepth's chunks, progress,
interruption and bad input, VP_DepthPreview."""
from __future__ import annotations

import json
import os
import sys

import depth_tiny
import pytest
import torch


@pytest.fixture(scope="module")
def env(comfy_inproc):
    depth_tiny.install_depth_models(comfy_inproc.base_dir)
    return comfy_inproc


def node(env, name):
    return env.nodes.NODE_CLASS_MAPPINGS[name]


def module(env):
    return sys.modules[node(env, "VP_LoadDepthModel").__module__]


def test_depth_models_are_found_where_users_and_other_packs_keep_them(env):
    base = env.base_dir
    other = os.path.join(base, "models", "depthanything", "depth_anything_v2_vitl_fp16.safetensors")
    aux = os.path.join(base, "custom_nodes", "comfyui_controlnet_aux", "ckpts", "lllyasviel", "Annotators")
    hf = os.path.join(base, "models", "depth", "Depth-Anything-V2-Small-hf")
    for path in (other, os.path.join(aux, "dpt_hybrid-midas-501f0c75.pt"), os.path.join(aux, "body_pose_model.pth")):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "wb").close()
    os.makedirs(hf, exist_ok=True)
    with open(os.path.join(hf, "config.json"), "w") as f:
        json.dump({"model_type": "depth_anything"}, f)
    try:
        _check_listing(env, hf)
    finally:  # the in-process runtime is shared with other test files
        import shutil

        for path in (other, os.path.join(base, "custom_nodes", "comfyui_controlnet_aux"), hf):
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def _check_listing(env, hf: str) -> None:
    names = module(env).list_depth_models()
    assert {depth_tiny.MIDAS_FILE, depth_tiny.DA_FILE, "Depth-Anything-V2-Small-hf/",
            "depth_anything_v2_vitl_fp16.safetensors", "lllyasviel/Annotators/dpt_hybrid-midas-501f0c75.pt"} <= set(names)
    assert not any("body_pose" in n for n in names)  # another pack's folder: depth files only
    assert module(env).resolve_depth_model("Depth-Anything-V2-Small-hf/") == hf
    with pytest.raises(FileNotFoundError, match=r"models/depth/.*dpt_hybrid-midas-501f0c75\.pt"):
        module(env).resolve_depth_model("missing.pth")
    # an empty file in the list: the loader names it (never a silent no-op)
    with pytest.raises(ValueError, match=r"VP_LoadDepthModel: .*depth_anything_v2_vitl_fp16\.safetensors.*empty"):
        node(env, "VP_LoadDepthModel").execute("depth_anything_v2_vitl_fp16.safetensors", "fp32")


def test_weight_dtype_and_model_management(env):
    handle = node(env, "VP_LoadDepthModel").execute(depth_tiny.DA_FILE, "bf16").result[0]
    assert handle.estimator.dtype == torch.bfloat16 and handle.estimator.kind == "depth_anything_v2_96d"
    assert handle.patcher.model is handle.estimator  # ComfyUI's ModelPatcher manages the very module used
    handle = node(env, "VP_LoadDepthModel").execute(depth_tiny.DA_FILE, "fp32").result[0]
    assert handle.estimator.dtype == torch.float32


def test_estimate_depth_chunks_progress_and_preview(env, monkeypatch):
    import comfy.utils

    updates = []
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", lambda value, total, preview, node_id=None:
                        updates.append((value, total, preview is not None)))
    handle = node(env, "VP_LoadDepthModel").execute(depth_tiny.DA_FILE, "fp32").result[0]
    frames = depth_tiny.source_frames(frames=5, height=40, width=56)
    with torch.inference_mode():
        depth, preview = node(env, "VP_EstimateDepth").execute(handle, frames, "per_frame", 2, 70).result
    assert depth.depth.shape == (5, 40, 56) and depth.net_depth.shape[0] == 5
    assert [u[:2] for u in updates] == [(2, 5), (4, 5), (5, 5)] and all(u[2] for u in updates)
    assert preview.shape == (5, 40, 56, 3) and torch.equal(preview[..., 0], preview[..., 2])
    assert preview.amin() == 0 and abs(float(preview.amax()) - 1) < 1e-6
    same = handle.estimator.estimate(frames, batch_size=5, input_size=70)
    torch.testing.assert_close(depth.depth, same.depth, atol=1e-5, rtol=0)
    stable = node(env, "VP_DepthPreview").execute(depth, "stable").result[0]
    assert stable.shape == preview.shape and not torch.allclose(stable, preview)


def test_estimate_depth_stops_when_interrupted_and_refuses_bad_sizes(env):
    import comfy.model_management as mm

    handle = node(env, "VP_LoadDepthModel").execute(depth_tiny.DA_FILE, "fp32").result[0]
    frames = depth_tiny.source_frames(frames=4, height=40, width=56)
    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException), torch.inference_mode():
            node(env, "VP_EstimateDepth").execute(handle, frames, "stable", 2, 70)
    finally:
        mm.interrupt_current_processing(False)
    with pytest.raises(ValueError, match="multiple of 14"):
        node(env, "VP_EstimateDepth").execute(handle, frames, "stable", 2, 75)


def test_an_lvdm_checkpoint_given_as_depth_model_is_named(env):
    import lvdm_tiny

    path = os.path.join(env.base_dir, "models", "depth", "makeyourvideo_256.ckpt")
    lvdm_tiny.build_checkpoint(path, "makeyourvideo_256")
    try:
        with pytest.raises(ValueError, match=r"makeyourvideo_256\.ckpt is a video diffusion model.*"
                                             r"VP_LoadLVDMCheckpoint"):
            node(env, "VP_LoadDepthModel").execute("makeyourvideo_256.ckpt", "auto")
    finally:
        os.remove(path)
