"""Depth-model files and folders through the pack's reader (pipelines/depth/checkpoint.py) and the DepthEstimator:
detection from keys, the golden outputs through the file path, clear errors naming the file."""
from __future__ import annotations

import json
import os

import depth_tiny
import pytest
import torch
from safetensors.torch import load_file, save_file
from shared_data import golden, require_shared  # noqa: F401 (fixture)

from pipelines.depth import depth_anything, midas
from pipelines.depth.checkpoint import (
    DepthCheckpointError,
    build_network,
    generic_overrides,
    read_depth_checkpoint,
)
from pipelines.depth.estimate import DepthEstimator
from pipelines.depth.normalize import normalize_depth

MIDAS_REDUCED = {"num_heads": 4, "vit_hooks": (1, 3)}  # golden README section 7 (not in any shape)
DA_REDUCED = {"num_heads": 6, "out_indices": [1, 2, 4, 5]}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return depth_tiny.install_depth_models(str(tmp_path_factory.mktemp("depth")))


def _hf_folder(path, sd_tf: dict, config: dict) -> str:
    os.makedirs(path, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sd_tf.items()}, os.path.join(path, "model.safetensors"))
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    return str(path)


def test_original_files_are_detected_from_their_keys(files, tmp_path):
    for name, kind in ((depth_tiny.MIDAS_FILE, "midas_dpt_hybrid"), (depth_tiny.DA_FILE, "depth_anything_v2_96d")):
        ck = read_depth_checkpoint(files[name])
        assert (ck.kind, ck.layout) == (kind, "original")
        # the name does not matter: the same tensors under another name, and as safetensors
        other = tmp_path / "renamed.safetensors"
        save_file({k: v.contiguous() for k, v in ck.tensors.items()}, str(other))
        assert read_depth_checkpoint(other).kind == kind
    # {"model": ..., "optimizer": ...} saves (MiDaS' BaseModel.load accepts them)
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"model": read_depth_checkpoint(files[depth_tiny.MIDAS_FILE]).tensors, "optimizer": {}}, wrapped)
    assert read_depth_checkpoint(wrapped).kind == "midas_dpt_hybrid"


def test_midas_golden_through_a_transformers_folder(tmp_path, require_shared):
    """A transformers-format folder whose config.json carries the reduced head count and taps: the reader passes
    them on and the estimator reproduces the official depth (MYV's recipe from uint8 frames) at 5e-5."""
    sd = depth_tiny.fixture_state_dict("midas_dpt_hybrid")
    folder = _hf_folder(tmp_path / "dpt-hybrid-midas", midas.to_transformers(sd),
                        {"model_type": "dpt", "num_attention_heads": 4, "backbone_out_indices": [0, 1, 1, 3]})
    ck = read_depth_checkpoint(folder)
    assert (ck.kind, ck.layout) == ("midas_dpt_hybrid", "transformers")
    est = DepthEstimator(build_network(ck), ck.kind)
    io = load_file(golden("depth", "midas_dpt_hybrid", "io.safetensors"))
    frames = io["frames_uint8"].float() / 255  # [2, 256, 256, 3]
    out = est(frames)  # 384x384 network output, bicubic back to 256x256 (get_batch_depth's resize)
    expect = midas.postprocess(io["depth"].float(), (256, 256))
    assert out.shape == (2, 256, 256)
    assert (out - expect).abs().max() < 5e-5


def test_make_your_video_depth_condition_from_frames_is_the_official(require_shared):
    """The whole official chain from decoded frames: [-1, 1], 384x384 bicubic, MiDaS, straight to the 32x32 latent
    (get_batch_depth, from the network-resolution maps the DepthVideo keeps), per-frame or whole-clip min/max."""
    from pipelines.lvdm.makeyourvideo import depth_condition

    sd = depth_tiny.fixture_state_dict("midas_dpt_hybrid")
    est = DepthEstimator(midas.build(sd, **MIDAS_REDUCED), "midas_dpt_hybrid")
    io = load_file(golden("depth", "midas_dpt_hybrid", "io.safetensors"))
    video = est.estimate(io["frames_uint8"].float() / 255, batch_size=1)
    assert video.net_depth.shape == (2, 384, 384)
    assert (video.net_depth - io["depth"].float()).abs().max() < 5e-5
    for mode, key in (("per_frame", "cond_depth"), ("clip", "cond_depth_temporal_norm")):
        cond = depth_condition(video.net_depth, (32, 32), mode)  # [T, 1, 32, 32]
        expect = io[key].float()[0].permute(1, 0, 2, 3)  # [1, 1, T, 32, 32] -> [T, 1, 32, 32]
        assert (cond - expect).abs().max() < 1e-4, mode


def test_depth_anything_golden_through_the_estimator(require_shared):
    """The original-layout fixture with its reduced sizes: preprocessing from the raw frame (RGB), network and the
    official resize back to the raw size, against `depth_raw_size` (official infer_image at input_size 140)."""
    sd = depth_tiny.fixture_state_dict("depth_anything_v2_vits")
    est = DepthEstimator(depth_anything.build(sd, **DA_REDUCED), "depth_anything_v2_vits")
    io = load_file(golden("depth", "depth_anything_v2_vits", "io.safetensors"))
    rgb = io["raw_bgr_uint8"].float().flip(-1)[None] / 255  # [1, 100, 133, 3]
    assert est.working_size(100, 133, input_size=140) == (140, 182)
    out = est(rgb, input_size=140)
    # preprocessing (torch bicubic vs cv2) is 5.4e-6 from the golden input (tests/test_depth_anything.py)
    assert (out[0] - io["depth_raw_size"].float()).abs().max() < 5e-5


def test_unpublished_sizes_use_the_generic_rule(files):
    ck = read_depth_checkpoint(files[depth_tiny.MIDAS_FILE])
    assert generic_overrides(ck) == {"vit_hooks": (2, 3)}
    ck = read_depth_checkpoint(files[depth_tiny.DA_FILE])
    assert generic_overrides(ck) == {"num_heads": 1, "out_indices": [1, 2, 3, 5]}


def test_estimate_in_chunks_equals_one_pass(files):
    ck = read_depth_checkpoint(files[depth_tiny.DA_FILE])
    est = DepthEstimator(build_network(ck), ck.kind)
    frames = depth_tiny.source_frames(frames=5, height=40, width=56)
    seen = []
    video = est.estimate(frames, batch_size=2, input_size=70, step=lambda done, d: seen.append((done, d.shape[0])))
    whole = est(frames, input_size=70)
    assert seen == [(2, 2), (4, 2), (5, 1)]
    assert video.depth.shape == (5, 40, 56) and video.model == ck.kind
    assert torch.allclose(video.depth, whole, atol=1e-5)
    assert torch.isfinite(normalize_depth(video.depth, "stable")).all()


def test_bad_files_name_the_file_and_say_what_was_expected(files, tmp_path):
    import lvdm_tiny

    unet = lvdm_tiny.build_checkpoint(str(tmp_path / "makeyourvideo_256.ckpt"), "makeyourvideo_256")
    with pytest.raises(DepthCheckpointError, match=r"makeyourvideo_256\.ckpt.*VP_LoadLVDMCheckpoint"):
        read_depth_checkpoint(unet)
    metric = tmp_path / "depth_anything_v2_metric_hypersim_vits.pth"
    os.link(files[depth_tiny.DA_FILE], metric)
    with pytest.raises(DepthCheckpointError, match="metric"):
        read_depth_checkpoint(metric)
    other = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(2, 2)}, str(other))
    with pytest.raises(DepthCheckpointError, match=r"other\.safetensors.*MiDaS DPT-Hybrid or Depth-Anything-V2"):
        read_depth_checkpoint(other)
    broken = tmp_path / "dpt_hybrid_broken.pt"
    sd = read_depth_checkpoint(files[depth_tiny.MIDAS_FILE]).tensors
    sd.pop("scratch.output_conv.2.weight")
    torch.save(sd, broken)
    with pytest.raises(DepthCheckpointError, match=r"dpt_hybrid_broken\.pt.*scratch\.output_conv\.2\.weight"):
        build_network(read_depth_checkpoint(broken))
    with pytest.raises(DepthCheckpointError, match=r"empty_folder is a folder without config\.json"):
        os.makedirs(tmp_path / "empty_folder")
        read_depth_checkpoint(tmp_path / "empty_folder")
    truncated = tmp_path / "cut.pth"
    with open(files[depth_tiny.DA_FILE], "rb") as f:
        truncated.write_bytes(f.read()[:5000])
    with pytest.raises(DepthCheckpointError, match=r"cut\.pth.*(truncated|damaged)"):
        read_depth_checkpoint(truncated)
