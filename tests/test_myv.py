"""Make-Your-Video end to end (issue 12, sections 2 and 4): the official depth condition (golden get_batch_depth),
the official frame selection, the conditioning node, core sampling of the tiny official-layout MYV checkpoint at 16
and 64 frames, long videos window by window, and bad input refused before sampling."""
from __future__ import annotations

import itertools

import lvdm_tiny
import pytest
import torch
from safetensors.torch import load_file
from shared_data import golden

from pipelines.depth.normalize import normalize_depth
from pipelines.depth.types import DepthVideo
from pipelines.lvdm.makeyourvideo import (
    MAX_FRAMES,
    Window,
    depth_condition,
    plan_frames,
    select_frames,
    window_plan,
    window_rows,
)

SIZE = 64        # pixels (latent 8x8)
CKPT = "makeyourvideo_256.ckpt"


# ---- pure: depth condition, frame selection, window plan -----------------------------------------------------------
def test_depth_condition_is_the_official_get_batch_depth():
    io = load_file(golden("depth", "midas_dpt_hybrid", "io.safetensors"))
    depth = io["depth"]                                     # [2, 384, 384] MiDaS output
    per_frame = depth_condition(depth, (32, 32))            # default = official (temporal_norm=False)
    clip = depth_condition(depth, (32, 32), "clip")         # official temporal_norm=True
    assert per_frame.shape == (2, 1, 32, 32)
    want = io["cond_depth"][0].transpose(0, 1)              # [1, 1, T, h, w] -> [T, 1, h, w]
    torch.testing.assert_close(per_frame, want, atol=1e-4, rtol=0)
    torch.testing.assert_close(clip, io["cond_depth_temporal_norm"][0].transpose(0, 1), atol=1e-4, rtol=0)
    assert not torch.allclose(per_frame, clip, atol=1e-3)   # the fixture tells the two apart
    # per frame: each frame spans [-1, 1]; clip: only the clip does
    assert torch.allclose(per_frame.amin(dim=(1, 2, 3)), torch.tensor(-1.0)) and per_frame.amax() <= 1
    assert clip.amin() == -1 and clip.amax().item() == pytest.approx(1.0, abs=1e-6)


def test_stable_mode_is_normalize_depth_stable_at_the_latent_size():
    gen = torch.Generator().manual_seed(0)
    base = torch.rand(1, 48, 40, generator=gen)
    depth = torch.cat([base * (1 + 0.2 * t) + 0.3 * t for t in range(6)])  # per-frame scale/shift drift
    cond = depth_condition(depth, (6, 5), "stable")
    small = torch.nn.functional.interpolate(depth[:, None], size=(6, 5), mode="bicubic", align_corners=False)[:, 0]
    torch.testing.assert_close(cond[:, 0], normalize_depth(small, "stable") * 2 - 1)
    assert cond.amin() == -1 and cond.amax() <= 1
    # the drift is removed: every frame equals the first (the clip mode keeps it)
    assert (cond - cond[:1]).abs().max() < 1e-3
    assert (depth_condition(depth, (6, 5), "clip") - depth_condition(depth, (6, 5), "clip")[:1]).abs().max() > 0.5
    with pytest.raises(ValueError, match="per_frame, clip, stable"):
        depth_condition(depth, (6, 5), "global")


def official_indices(max_frames: int, video_frames: int, frame_stride: int) -> list[int]:
    """scripts/evaluation/inference_videorerendering.py load_data_prompts, transcribed."""
    temp_stride = max_frames // video_frames if frame_stride == -1 else frame_stride
    if temp_stride * (video_frames - 1) >= max_frames:
        temp_stride = max_frames // video_frames
    return [temp_stride * i for i in range(video_frames)]


@pytest.mark.parametrize("total", [16, 17, 31, 32, 33, 100, 301])
@pytest.mark.parametrize("frames", [2, 16, 64])
@pytest.mark.parametrize("stride", [-1, 1, 2, 5])
def test_frame_selection_is_the_official_loader_rule(total, frames, stride):
    if frames > total:
        with pytest.raises(ValueError, match=f"has {total} frame"):
            select_frames(total, frames, stride)
        return
    got = select_frames(total, frames, stride)
    assert got == official_indices(total, frames, stride)
    assert len(got) == frames and got[-1] < total
    plan = plan_frames(total, frames, stride)
    assert bool(plan.note) == (stride != -1 and stride * (frames - 1) >= total)


def test_frame_selection_by_target_fps_and_all_frames():
    plan = plan_frames(300, 16, source_fps=30.0, target_fps=10.0)
    assert plan.stride == 3 and plan.indices == list(range(0, 48, 3)) and plan.fps(30.0) == 10.0
    assert plan_frames(300, 16, source_fps=24.0, target_fps=8.0).stride == 3
    assert plan_frames(300, 16, 7, source_fps=25.0, target_fps=25.0).stride == 1  # the fps wins over the stride
    assert plan_frames(10, 0, 3).indices == [0, 3, 6, 9]                          # 0 = every frame at the stride
    assert plan_frames(10, 0).indices == list(range(10))
    with pytest.raises(ValueError, match="source video's fps"):
        plan_frames(300, 16, target_fps=8.0)
    with pytest.raises(ValueError, match="-1 \\(auto\\) or >= 1"):
        plan_frames(300, 16, 0)
    with pytest.raises(ValueError, match="has 1 frame"):   # one image where a clip is needed
        plan_frames(1, 16)


@pytest.mark.parametrize("frames,window,overlap", [(16, 64, 16), (64, 64, 16), (65, 64, 16), (80, 64, 16),
                                                   (200, 64, 8), (150, 16, 4), (10, 4, 0)])
def test_window_plan_covers_every_frame_once_with_the_overlap(frames, window, overlap):
    plan = window_plan(frames, window, overlap)
    assert plan[0] == Window(0, min(frames, window), 0) and plan[-1].stop == frames
    assert all(w.frames <= window for w in plan)
    new = [t for w in plan for t in range(w.start + w.context, w.stop)]
    assert new == list(range(frames))                       # each frame generated exactly once, in order
    for prev, w in itertools.pairwise(plan):
        assert w.context == overlap and w.start == prev.stop - overlap
    assert len(plan) == (1 if frames <= window else 1 + -(-(frames - window) // (window - overlap)))
    assert window_rows(Window(2, 5, 1), 10, 2) == [2, 3, 4, 12, 13, 14]
    with pytest.raises(ValueError, match="overlap"):
        window_plan(frames, window, window)


# ---- in ComfyUI: tiny official-layout Make-Your-Video checkpoint -------------------------------------------------
@pytest.fixture(scope="module")
def myv(comfy_inproc):
    ns = lvdm_tiny.substitution(comfy_inproc.base_dir)
    ns["apply"]()
    lvdm_tiny.install_checkpoints(comfy_inproc.base_dir, ("makeyourvideo_256",))
    yield comfy_inproc
    ns["undo"]()


def node(env, name):
    return env.nodes.NODE_CLASS_MAPPINGS[name]


def node_error(executor) -> str:
    for event, data in executor.status_messages:
        if event == "execution_error":
            return f"{data.get('node_type')}: {data.get('exception_message')}"
    return ""


def random_depth(frames: int, h: int = 80, w: int = 96, seed: int = 0) -> torch.Tensor:
    return torch.rand(frames, h, w, generator=torch.Generator().manual_seed(seed)) * 5 + 1


def encode(env, clip, text):
    enc = node(env, "CLIPTextEncode")
    return enc.execute(clip, text)[0] if hasattr(enc, "execute") else enc().encode(clip, text)[0]


@pytest.fixture(scope="module")
def loaded(myv):
    with torch.inference_mode():
        model, clip, vae, _, _ = node(myv, "VP_LoadLVDMCheckpoint").execute(CKPT, "auto", "fp32").result
        pos, neg = encode(myv, clip, "a red car on a road"), encode(myv, clip, "")
    assert model.model.variant.name == "makeyourvideo_256"
    return model, clip, vae, pos, neg


def conditioning(env, loaded, depth, size=SIZE, mode="per_frame", batch=1):
    _model, _clip, _vae, pos, neg = loaded
    return node(env, "VP_MakeYourVideoConditioning").execute(pos, neg, depth, size, size, mode, batch).result


def test_conditioning_puts_the_official_depth_on_both_conds(myv, loaded):
    depth = random_depth(16)
    pos, neg, latent, preview = conditioning(myv, loaded, DepthVideo(depth, "midas_dpt_hybrid"))
    want = depth_condition(depth, (8, 8))
    for c in (pos, neg):                                    # official uc keeps the depth
        got = c[0][1]["lvdm_depth"]
        assert got.shape == (16, 1, 8, 8) and got.amin() >= -1 and got.amax() <= 1
        torch.testing.assert_close(got, want, atol=0, rtol=0)
        assert c[0][1]["num_video_frames"] == 16
    assert latent["samples"].shape == (16, 4, 8, 8) and not latent["samples"].any()
    assert preview.shape == (16, SIZE, SIZE, 3) and preview.amin() >= 0 and preview.amax() <= 1
    # a batch of two videos: 2 x 16 latent rows, the same one-clip depth
    _, _, latent2, _ = conditioning(myv, loaded, DepthVideo(depth, "x"), batch=2)
    assert latent2["samples"].shape == (32, 4, 8, 8)
    # a greyscale IMAGE from another pack is the same depth (channel values), clip normalisation differs
    grey = (depth / depth.max()).unsqueeze(-1).expand(-1, -1, -1, 3)
    pos_img = conditioning(myv, loaded, grey)[0]
    torch.testing.assert_close(pos_img[0][1]["lvdm_depth"], depth_condition(grey[..., 0], (8, 8)))
    pos_clip = conditioning(myv, loaded, DepthVideo(depth, "x"), mode="clip")[0]
    torch.testing.assert_close(pos_clip[0][1]["lvdm_depth"], depth_condition(depth, (8, 8), "clip"))


def test_select_frames_node(myv):
    images = torch.arange(40, dtype=torch.float32).reshape(40, 1, 1, 1).expand(40, 4, 4, 3)
    out, fps, stride = node(myv, "VP_SelectFrames").execute(images, 16, 2, 0.0, 30.0).result
    assert out[:, 0, 0, 0].tolist() == list(range(0, 32, 2)) and fps == 15.0 and stride == 2
    out, fps, stride = node(myv, "VP_SelectFrames").execute(images, 8, -1, 10.0, 30.0).result
    assert out[:, 0, 0, 0].tolist() == list(range(0, 24, 3)) and fps == 10.0 and stride == 3
    out, fps, stride = node(myv, "VP_SelectFrames").execute(images, 16, -1, 0.0).result
    assert stride == 2 and fps == 8.0  # unknown source fps: the official output fps


def myv_prompt(frames=16, official=False, size=SIZE) -> dict:
    p = {
        "1": {"class_type": "VP_LoadLVDMCheckpoint", "inputs": {"ckpt_name": CKPT, "variant": "auto",
                                                                 "weight_dtype": "fp32"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a red car on a road"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "4": {"class_type": "EmptyImage", "inputs": {"width": 96, "height": 80, "batch_size": 40, "color": 0x808080}},
        "5": {"class_type": "VP_SelectFrames", "inputs": {"images": ["4", 0], "frames": frames, "frame_stride": -1,
                                                           "target_fps": 0.0}},
        "6": {"class_type": "VP_MakeYourVideoConditioning", "inputs": {
            "positive": ["2", 0], "negative": ["3", 0], "depth": ["5", 0], "width": size, "height": size,
            "normalization": "per_frame", "batch_size": 1}},
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["1", 2]}},
        "10": {"class_type": "PreviewImage", "inputs": {"images": ["9", 0]}},
    }
    if official:
        p.update({
            "13": {"class_type": "CFGGuider", "inputs": {"model": ["1", 0], "positive": ["6", 0],
                                                         "negative": ["6", 1], "cfg": 7.5}},
            "14": {"class_type": "VP_LVDMOfficialDDIM", "inputs": {"eta": 1.0, "latent_scale": "auto"}},
            "15": {"class_type": "VP_LVDMScheduler", "inputs": {"model": ["1", 0], "steps": 2, "spacing": "auto",
                                                                "final": "zero"}},
            "16": {"class_type": "RandomNoise", "inputs": {"noise_seed": 1}},
            "8": {"class_type": "SamplerCustomAdvanced", "inputs": {
                "noise": ["16", 0], "guider": ["13", 0], "sampler": ["14", 0], "sigmas": ["15", 0],
                "latent_image": ["6", 2]}},
        })
    else:
        p["8"] = {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["6", 0], "negative": ["6", 1], "latent_image": ["6", 2], "seed": 0,
            "steps": 2, "cfg": 7.5, "sampler_name": "ddim", "scheduler": "ddim_uniform", "denoise": 1.0}}
    return p


@pytest.mark.parametrize("official", [False, True])
def test_make_your_video_graph_runs_with_core_samplers(myv, official):
    executor = myv.run(myv_prompt(official=official))
    assert executor.success, node_error(executor)
    assert len(executor.history_result["outputs"]["10"]["images"]) == 16


def test_64_frames_in_one_pass_with_the_official_causal_mask(myv, loaded):
    import comfy.sample

    from pipelines.lvdm.attention import temporal_mask

    model = loaded[0]
    temporal = [m for m in model.model.diffusion_model.modules() if hasattr(m, "causal_window")]
    assert temporal and all(m.causal_attention and m.causal_window == 16 for m in temporal)
    official = load_file(golden("myv_unet", "io.safetensors"))["causal_mask_24"].reshape(-1, 24, 24)[0] > 0.5
    for m in temporal:
        assert torch.equal(temporal_mask(24, m.causal_attention, m.causal_window), official)
    mask64 = temporal_mask(MAX_FRAMES, True, 16)
    assert mask64[63].nonzero().flatten().tolist() == list(range(48, 64))  # the 16-frame window slides to 64

    depth = random_depth(MAX_FRAMES, seed=3)
    pos, neg, latent, _ = conditioning(myv, loaded, DepthVideo(depth, "x"))
    assert latent["samples"].shape == (MAX_FRAMES, 4, 8, 8)
    noise = comfy.sample.prepare_noise(latent["samples"], 0)
    with torch.inference_mode():
        out = comfy.sample.sample(model, noise, 2, 7.5, "ddim", "ddim_uniform", pos, neg, latent["samples"],
                                  disable_pbar=True, seed=0)
    assert out.shape == (MAX_FRAMES, 4, 8, 8) and torch.isfinite(out).all()
    assert out.std(dim=(1, 2, 3)).min() > 0


def windows_node(env, loaded, pos, neg, latent, window=64, overlap=16, seed=5):
    return node(env, "VP_SampleVideoWindows").execute(loaded[0], pos, neg, latent, seed, 2, 7.5, "ddim",
                                                      "ddim_uniform", window, overlap, 1.0).result[0]


def test_one_window_is_exactly_core_ksampler(myv, loaded):
    pos, neg, latent, _ = conditioning(myv, loaded, DepthVideo(random_depth(16, seed=4), "x"))
    with torch.inference_mode():
        ours = windows_node(myv, loaded, pos, neg, latent)["samples"]
        core = node(myv, "KSampler")().sample(loaded[0], 5, 2, 7.5, "ddim", "ddim_uniform", pos, neg, latent)[0]
    assert torch.equal(ours, core["samples"])


def test_80_frames_window_by_window(myv, loaded, monkeypatch):
    import comfy.sample

    depth = random_depth(80, seed=6)
    pos, neg, latent, _ = conditioning(myv, loaded, DepthVideo(depth, "x"), mode="clip")
    whole = depth_condition(depth, (8, 8), "clip")          # normalised once, over all 80 frames
    calls = []
    core_sample = comfy.sample.sample

    def recording(model, noise, steps, cfg, sampler, scheduler, positive, negative, latent_image, **kw):
        out = core_sample(model, noise, steps, cfg, sampler, scheduler, positive, negative, latent_image, **kw)
        calls.append({"latent": latent_image.clone(), "mask": kw.get("noise_mask"), "pos": positive,
                      "neg": negative, "out": out.clone()})
        return out

    monkeypatch.setattr(comfy.sample, "sample", recording)
    with torch.inference_mode():
        result = windows_node(myv, loaded, pos, neg, latent)["samples"]
    assert result.shape == (80, 4, 8, 8) and torch.isfinite(result).all()
    assert len(calls) == 2                                   # [0, 64) then [48, 80) with 16 known frames
    first, second = calls
    assert first["mask"] is None and first["out"].shape[0] == 64 and second["out"].shape[0] == 32
    for c, (a, b) in ((first, (0, 64)), (second, (48, 80))):
        for cond in (c["pos"], c["neg"]):
            assert cond[0][1]["num_video_frames"] == b - a
            assert torch.equal(cond[0][1]["lvdm_depth"], whole[a:b])  # cut from the one normalisation
    # window 2 starts from window 1's last 16 frames, held fixed by the per-frame noise mask
    assert torch.equal(second["latent"][:16], first["out"][48:64])
    assert torch.equal(second["mask"][:16], torch.zeros_like(second["mask"][:16])) and second["mask"][16:].all()
    torch.testing.assert_close(second["out"][:16], first["out"][48:64], atol=1e-5, rtol=0)  # the sampler kept them
    # the result: window 1 as sampled, then window 2's new frames; the overlap frames are window 1's exactly
    assert torch.equal(result[:64], first["out"]) and torch.equal(result[64:], second["out"][16:])
    assert not torch.allclose(result[64:], first["out"][48:64])


# ---- bad input: a clear message before any sampling -------------------------------------------------------------
def test_bad_input_is_refused_before_sampling(myv, loaded):
    cond_node = node(myv, "VP_MakeYourVideoConditioning")
    _m, _c, _v, pos, neg = loaded
    # one frame where a clip is needed
    with pytest.raises(ValueError, match="the depth has 1 frame; give at least 2"):
        cond_node.execute(pos, neg, DepthVideo(random_depth(1), "x"), SIZE, SIZE, "per_frame", 1)
    with pytest.raises(ValueError, match="has 1 frame\\(s\\); 16 frames were asked for"):
        node(myv, "VP_SelectFrames").execute(torch.rand(1, 8, 8, 3), 16, -1, 0.0)
    # an RGB image where depth is expected
    with pytest.raises(ValueError, match="expected a depth map .* got an RGB image"):
        cond_node.execute(pos, neg, torch.rand(16, 64, 64, 3), SIZE, SIZE, "per_frame", 1)
    # a size the UNet cannot halve three times
    with pytest.raises(ValueError, match="multiples of 64"):
        cond_node.execute(pos, neg, DepthVideo(random_depth(16), "x"), 96, SIZE, "per_frame", 1)


def test_depth_and_latent_mismatch_is_refused_before_the_first_step(myv):
    p = myv_prompt()
    # a latent with another frame count than the depth (16 maps, 8 latent frames)
    p["7"] = {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 8}}
    p["8"]["inputs"]["latent_image"] = ["7", 0]
    executor = myv.run(p)
    assert not executor.success and "not a whole number of 16-frame videos" in node_error(executor)
    # a latent of another size than the depth (64x64 depth, 128x128 latent)
    p["7"]["inputs"].update(width=128, height=128, batch_size=16)
    executor = myv.run(p)
    message = node_error(executor)
    assert not executor.success and "depth condition is 8x8" in message and "latent 16x16" in message, message
    # the model without the depth condition (VideoCrafter's conditioning node on a Make-Your-Video model)
    p = myv_prompt()
    p["6"] = {"class_type": "VP_VideoCrafterConditioning", "inputs": {
        "positive": ["2", 0], "negative": ["3", 0], "width": SIZE, "height": SIZE, "frames": 16, "fps": 28,
        "batch_size": 1}}
    executor = myv.run(p)
    assert not executor.success and "needs a depth condition" in node_error(executor)


def test_depth_frames_differing_from_the_clip_are_named(myv, loaded):
    import comfy.sample

    model = loaded[0]
    pos, _neg, latent, _ = conditioning(myv, loaded, DepthVideo(random_depth(16), "x"))
    short = [[t, dict(v, lvdm_depth=v["lvdm_depth"][:12])] for t, v in pos]
    with pytest.raises(ValueError, match="lvdm_depth has 12 frames; the video has 16"):
        comfy.sample.sample(model, torch.zeros_like(latent["samples"]), 1, 1.0, "euler", "normal", short, short,
                            latent["samples"], disable_pbar=True)


def test_window_node_refuses_what_it_cannot_do(myv, loaded):
    pos, neg, latent, _ = conditioning(myv, loaded, DepthVideo(random_depth(16), "x"))
    with pytest.raises(ValueError, match="overlap"):
        windows_node(myv, loaded, pos, neg, latent, window=8, overlap=8)
    bad = {"samples": torch.zeros(20, 4, 8, 8)}
    with pytest.raises(ValueError, match="not a whole number of 16-frame clips"):
        windows_node(myv, loaded, pos, neg, bad)
    assert "overlap (16) must be smaller than window (8)" in node(myv, "VP_SampleVideoWindows").validate_inputs(
        "ddim", "ddim_uniform", 8, 16, 7.5, 1.0)


def test_a_depth_model_file_given_as_lvdm_checkpoint_is_named(myv):
    import shutil

    folder = myv.base_dir + "/models/checkpoints/"
    shutil.copy(golden("depth", "midas_dpt_hybrid", "weights.safetensors"), folder + "dpt_hybrid_midas.safetensors")
    p = myv_prompt()
    p["1"]["inputs"]["ckpt_name"] = "dpt_hybrid_midas.safetensors"
    executor = myv.run(p)
    message = node_error(executor)
    assert not executor.success and message.startswith("VP_LoadLVDMCheckpoint"), message
    assert "dpt_hybrid_midas.safetensors" in message and "VP_LoadDepthModel" in message, message


def test_official_ddim_with_cfg_reproduces_the_official_depth_guided_synthesis(myv, loaded):
    """SamplerCustomAdvanced + VP_LVDMOfficialDDIM (eta 0), cfg 7.5 = the official depth_guided_synthesis loop
    (pipelines.lvdm.ddim.ddim_sample on the raw UNet): the depth concatenated to the noise in cond AND uncond."""
    import comfy.samplers

    from pipelines.lvdm.ddim import ddim_sample
    from pipelines.lvdm.schedule import DDIMSchedule, TrainingSchedule

    model, _c, _v, text, empty = loaded
    frames = 16
    pos, neg, latent, _ = conditioning(myv, loaded, DepthVideo(random_depth(frames, seed=8), "x"))
    with torch.inference_mode():
        sigmas = node(myv, "VP_LVDMScheduler").execute(model, 4, "auto", "official").result[0]
        sampler = node(myv, "VP_LVDMOfficialDDIM").execute(0.0, "auto").result[0]
        noise = torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(3))
        guider = comfy.samplers.CFGGuider(model)
        guider.set_conds(pos, neg)
        guider.set_cfg(7.5)
        out = guider.sample(noise, latent["samples"], sampler, sigmas, seed=0)

        base = model.model
        train = TrainingSchedule.for_variant(base.variant)
        sched = DDIMSchedule.make(train, 4, "uniform", eta=0.0)
        depth = pos[0][1]["lvdm_depth"].reshape(1, frames, 1, 8, 8).transpose(1, 2)

        def model_fn(x, t, context):
            return base.diffusion_model(torch.cat([x, depth], dim=1), t, context=context)

        x_t = noise.reshape(1, frames, 4, 8, 8).transpose(1, 2)
        ref = ddim_sample(model_fn, x_t, sched, cond=text[0][0], uncond=empty[0][0], cfg_scale=7.5)
    ours = base.process_latent_in(out).reshape(1, frames, 4, 8, 8).transpose(1, 2) * train.alphas_cumprod[0].sqrt()
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)


def test_windows_report_progress_across_windows_and_stop_when_interrupted(myv, loaded):
    import comfy.model_management
    import comfy.utils

    pos, neg, latent, _ = conditioning(myv, loaded, DepthVideo(random_depth(24, seed=9), "x"))
    seen = []
    old_hook = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: seen.append((value, total)))
    try:
        with torch.inference_mode():
            out = windows_node(myv, loaded, pos, neg, latent, window=8, overlap=2)["samples"]
    finally:
        comfy.utils.set_progress_bar_global_hook(old_hook)
    plan = window_plan(24, 8, 2)                            # 4 windows x 2 steps on one bar
    assert out.shape == (24, 4, 8, 8) and len(plan) == 4
    assert seen[-1] == (2 * len(plan), 2 * len(plan)) and [v for v, _ in seen] == sorted(v for v, _ in seen)
    comfy.model_management.interrupt_current_processing(True)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException), torch.inference_mode():
            windows_node(myv, loaded, pos, neg, latent, window=8, overlap=2)
    finally:
        comfy.model_management.interrupt_current_processing(False)


def test_video_to_depth_to_make_your_video_end_to_end(myv):
    """core LoadVideo -> GetVideoComponents -> VP_SelectFrames -> VP_EstimateDepth (tiny MiDaS, real names) ->
    VP_MakeYourVideoConditioning -> core KSampler -> VAEDecode: a 16-frame clip from the 64-frame source video."""
    import depth_tiny

    depth_tiny.install_depth_models(myv.base_dir)
    depth_tiny.install_source_video(myv.base_dir)
    p = myv_prompt()
    p.update({
        "20": {"class_type": "LoadVideo", "inputs": {"file": depth_tiny.SOURCE_VIDEO}},
        "21": {"class_type": "GetVideoComponents", "inputs": {"video": ["20", 0]}},
        "22": {"class_type": "VP_LoadDepthModel", "inputs": {"model_name": depth_tiny.MIDAS_FILE,
                                                              "weight_dtype": "fp32"}},
        "23": {"class_type": "VP_EstimateDepth", "inputs": {"depth_model": ["22", 0], "images": ["5", 0],
                                                             "normalization": "per_frame", "batch_size": 4,
                                                             "input_size": 518}},
        "24": {"class_type": "PreviewAny", "inputs": {"source": ["5", 1]}},
    })
    p["5"]["inputs"].update(images=["21", 0], source_fps=["21", 2], frames=16, frame_stride=-1)
    p["6"]["inputs"]["depth"] = ["23", 0]
    executor = myv.run(p)
    assert executor.success, node_error(executor)
    assert len(executor.history_result["outputs"]["10"]["images"]) == 16
    stride = depth_tiny.source_frames().shape[0] // 16  # the official auto stride (-1): total // frames
    assert executor.history_result["outputs"]["24"]["text"][0] == str(8.0 / stride)  # 8 fps source


def test_depth_conditioning_on_another_lvdm_model_is_refused(myv):
    lvdm_tiny.install_checkpoints(myv.base_dir, ("videocrafter2_512",))
    p = myv_prompt()
    p["1"]["inputs"]["ckpt_name"] = "videocrafter2_512.ckpt"
    executor = myv.run(p)
    message = node_error(executor)
    assert not executor.success and "depth condition" in message and "takes none" in message, message


def test_windows_keep_each_video_of_a_batch_apart(myv, loaded, monkeypatch):
    import comfy.sample

    pos, neg, latent, _ = conditioning(myv, loaded, DepthVideo(random_depth(24, seed=10), "x"), batch=2)
    assert latent["samples"].shape[0] == 48
    calls = []
    core_sample = comfy.sample.sample

    def recording(*args, **kw):
        out = core_sample(*args, **kw)
        calls.append({"latent": args[8].clone(), "mask": kw.get("noise_mask"), "out": out.clone()})
        return out

    monkeypatch.setattr(comfy.sample, "sample", recording)
    with torch.inference_mode():
        result = windows_node(myv, loaded, pos, neg, latent, window=16, overlap=4)["samples"]
    assert [c["out"].shape[0] for c in calls] == [32, 24]     # windows [0, 16) and [12, 24) of both videos
    first, second = calls
    for v in range(2):                                       # rows of video v: v*16.. / v*12.. in the windows
        w1, w2 = first["out"][v * 16:(v + 1) * 16], second["out"][v * 12:(v + 1) * 12]
        assert torch.equal(second["latent"][v * 12:v * 12 + 4], w1[12:16])
        assert not second["mask"][v * 12:v * 12 + 4].any() and second["mask"][v * 12 + 4:(v + 1) * 12].all()
        assert torch.equal(result[v * 24:v * 24 + 16], w1) and torch.equal(result[v * 24 + 16:(v + 1) * 24], w2[4:])
    assert not torch.equal(result[:24], result[24:])          # two different videos (their own noise)


def test_windows_with_the_official_ddim_sampler(myv, loaded):
    """sampler + sigmas (VP_LVDMOfficialDDIM + VP_LVDMScheduler) replace the KSampler settings: one window is exactly
    core SamplerCustom; more windows run and keep the known frames."""
    model = loaded[0]
    pos, neg, latent, _ = conditioning(myv, loaded, DepthVideo(random_depth(16, seed=11), "x"))
    with torch.inference_mode():
        sigmas = node(myv, "VP_LVDMScheduler").execute(model, 4, "auto", "official").result[0]
        ddim = node(myv, "VP_LVDMOfficialDDIM").execute(1.0, "auto").result[0]
        run = node(myv, "VP_SampleVideoWindows").execute
        one = run(model, pos, neg, latent, 7, 50, 7.5, "euler", "normal", 64, 16, 1.0, ddim, sigmas).result[0]
        custom = node(myv, "SamplerCustom")
        core = (custom.execute(model, True, 7, 7.5, pos, neg, ddim, sigmas, latent) if hasattr(custom, "execute")
                else custom().sample(model, True, 7, 7.5, pos, neg, ddim, sigmas, latent))[0]
        assert torch.equal(one["samples"], core["samples"])
        two = run(model, pos, neg, latent, 7, 50, 7.5, "euler", "normal", 10, 4, 1.0, ddim, sigmas).result[0]
        assert two["samples"].shape == (16, 4, 8, 8) and torch.isfinite(two["samples"]).all()
        with pytest.raises(ValueError, match="both sampler and sigmas"):
            run(model, pos, neg, latent, 7, 50, 7.5, "euler", "normal", 64, 16, 1.0, ddim, None)
