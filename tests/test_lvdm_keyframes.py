"""VP_DynamiCrafterKeyframes (generative in-betweening over K keyframes) in the real ComfyUI (in-process) with the tiny
official-layout DynamiCrafter 512 file loaded as the interpolation variant (tests/lvdm_tiny.py), and the joining rule
of pipelines/lvdm/keyframes.py on its own."""
from __future__ import annotations

import lvdm_tiny
import pytest
import torch

from pipelines.lvdm import keyframes as kf

SIZE = 64
INTERP = "dynamicrafter_512_interp"


# ---- the joining rule and the per-segment lists (no ComfyUI) ------------------------------------------------------
def test_segments_join_with_every_shared_keyframe_once():
    frames = [16, 8, 5]
    clips = [torch.arange(f).float() + 100 * i for i, f in enumerate(frames)]  # value = 100 * segment + frame
    joined = kf.join_segments(clips)
    assert len(joined) == kf.joined_length(frames) == sum(frames) - (len(frames) + 1 - 2) == 27
    assert kf.keyframe_positions(frames) == [0, 15, 22, 26]
    # segment 0 whole, then each later segment without its first frame (the keyframe the previous one ended on)
    assert joined.tolist() == list(range(16)) + [100 + t for t in range(1, 8)] + [200 + t for t in range(1, 5)]
    assert [joined[p].item() for p in kf.keyframe_positions(frames)] == [0, 15, 107, 204]
    assert kf.joined_length([2, 2]) == 3  # two segments without in-betweens: the three keyframes


def test_per_segment_lists():
    assert kf.per_segment(kf.parse_values("16", "frames", int, 2), 3, "frames") == [16, 16, 16]
    assert kf.per_segment(kf.parse_values(" 16, 12 ,8", "frames", int, 2), 3, "frames") == [16, 12, 8]
    assert kf.parse_values("7.5, 3", "cfg", float, 0.0, 100.0) == [7.5, 3.0]
    with pytest.raises(ValueError, match=r"frames: 2 values for 3 segment\(s\) \(4 keyframes\)"):
        kf.per_segment([16, 12], 3, "frames")
    for text, message in [("1", "must be at least 2"), ("16,x", "'x' is not a whole number"), ("", "give one value"),
                          ("16.5", "not a whole number")]:
        with pytest.raises(ValueError, match=message):
            kf.parse_values(text, "frames", int, 2)
    for text, message in (("nan", "not a finite number"), ("inf", "not a finite number"), ("101", "at most 100")):
        with pytest.raises(ValueError, match=f"cfg: .*{message}"):
            kf.parse_values(text, "cfg", float, 0.0, 100.0)
    assert kf.per_segment_lines("\n  \n", 2, "prompts") is None
    assert kf.per_segment_lines("a cat\n\nturns", 2, "prompts") == ["a cat", "turns"]
    assert kf.per_segment_lines("one", 3, "prompts") == ["one"] * 3
    with pytest.raises(ValueError, match="prompts: 3 values for 2 segment"):
        kf.per_segment_lines("a\nb\nc", 2, "prompts")


# ---- the node in ComfyUI -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def env(comfy_inproc):
    ns = lvdm_tiny.substitution(comfy_inproc.base_dir)
    ns["apply"]()
    lvdm_tiny.install_checkpoints(comfy_inproc.base_dir)
    yield comfy_inproc
    ns["undo"]()


def node(env, name):
    return env.nodes.NODE_CLASS_MAPPINGS[name]


def encode(env, clip, text):
    enc = node(env, "CLIPTextEncode")
    return enc.execute(clip, text)[0] if hasattr(enc, "execute") else enc().encode(clip, text)[0]


@pytest.fixture(scope="module")
def loaded(env):
    with torch.inference_mode():
        model, clip, vae, cv, rs = node(env, "VP_LoadLVDMCheckpoint").execute("dynamicrafter_512.ckpt", INTERP,
                                                                              "fp32").result
        pos, neg = encode(env, clip, "a smooth transition"), encode(env, clip, "")
        sampler = node(env, "VP_LVDMOfficialDDIM").execute(0.0, "auto").result[0]  # eta 0: deterministic
        sigmas = node(env, "VP_LVDMScheduler").execute(model, 2, "auto", "zero").result[0]
    assert model.model.variant.name == INTERP
    return {"model": model, "clip": clip, "vae": vae, "cv": cv, "rs": rs, "pos": pos, "neg": neg,
            "sampler": sampler, "sigmas": sigmas}


def keyframes(k: int = 3, h: int = 80, w: int = 96) -> torch.Tensor:
    return torch.rand(k, h, w, 3, generator=torch.Generator().manual_seed(7))


def run(env, loaded, keys, frames="16", cfg="7.5", frame_stride="5", seed=3, prompts="", clip=True, model=None):
    with torch.inference_mode():
        return node(env, "VP_DynamiCrafterKeyframes").execute(
            model or loaded["model"], loaded["pos"], loaded["neg"], loaded["cv"], loaded["rs"], loaded["vae"], keys,
            loaded["sampler"], loaded["sigmas"], seed, frames, cfg, frame_stride, SIZE, SIZE, "center crop",
            "official", loaded["clip"] if clip else None, prompts).result[0]


@pytest.fixture
def calls(monkeypatch):
    """Every comfy.sample.sample_custom call the node makes: its arguments and result."""
    import comfy.sample

    recorded = []
    core = comfy.sample.sample_custom

    def recording(model, noise, cfg, sampler, sigmas, positive, negative, latent_image, **kw):
        out = core(model, noise, cfg, sampler, sigmas, positive, negative, latent_image, **kw)
        recorded.append({"noise": noise.clone(), "cfg": cfg, "pos": positive, "neg": negative,
                         "latent": latent_image.clone(), "seed": kw.get("seed"), "out": out.clone()})
        return out

    monkeypatch.setattr(comfy.sample, "sample_custom", recording)
    return recorded


def test_each_segment_is_the_two_node_interpolation_graph_and_they_join_without_duplicates(env, loaded, calls):
    """Segment i = VP_CLIPContextEncoder(keyframe i) -> VP_DynamiCrafterConditioning(start i, end i+1) ->
    sample_custom with seed + i, with that segment's frames / cfg / frame stride; the joined latent drops each
    later segment's first frame."""
    import comfy.sample

    keys = keyframes(3)
    frames, cfgs, strides = [16, 8], [7.5, 3.0], [5, 9]
    out = run(env, loaded, keys, frames="16, 8", cfg="7.5, 3", frame_stride="5,9", seed=3)["samples"]
    assert len(calls) == 2
    assert out.shape == (16 + 8 - 1, 4, SIZE // 8, SIZE // 8)
    positions = kf.keyframe_positions(frames)
    assert positions == [0, 15, 22]
    torch.testing.assert_close(out[:16], calls[0]["out"], atol=0, rtol=0)
    torch.testing.assert_close(out[16:], calls[1]["out"][1:], atol=0, rtol=0)
    assert torch.equal(out[positions[1]], calls[0]["out"][-1])  # the shared keyframe: segment 0's last frame
    assert torch.equal(out[positions[2]], calls[1]["out"][-1])

    ctx_node, cond_node = node(env, "VP_CLIPContextEncoder"), node(env, "VP_DynamiCrafterConditioning")
    for i, c in enumerate(list(calls)):  # (the reference runs below are recorded too)
        assert c["cfg"] == cfgs[i] and c["seed"] == 3 + i and c["noise"].shape[0] == frames[i]
        with torch.inference_mode():
            ctx = ctx_node.execute(loaded["cv"], loaded["rs"], keys[i:i + 1], "official", SIZE, SIZE,
                                   "center crop").result[0]
            pos, neg, latent, _ = cond_node.execute(loaded["pos"], loaded["neg"], ctx, loaded["vae"], keys[i:i + 1],
                                                    SIZE, SIZE, frames[i], strides[i], "center crop", 1,
                                                    end_image=keys[i + 1:i + 2]).result
        assert torch.equal(c["latent"], latent["samples"])
        torch.testing.assert_close(c["noise"], comfy.sample.prepare_noise(latent["samples"], 3 + i), atol=0, rtol=0)
        for ours, ref in ((c["pos"], pos), (c["neg"], neg)):
            got, want = ours[0][1], ref[0][1]
            assert torch.equal(ours[0][0], ref[0][0])  # the text
            assert got["lvdm_fs"] == strides[i] and got["num_video_frames"] == frames[i]
            assert torch.equal(got["concat_latent_image"], want["concat_latent_image"])
            assert torch.equal(got["lvdm_image_tokens"], want["lvdm_image_tokens"])
        # first and last frame latents of keyframes i and i + 1, zeros between
        concat = c["pos"][0][1]["concat_latent_image"]
        assert concat.shape[0] == frames[i] and not concat[1:-1].any() and concat[0].any() and concat[-1].any()
        assert not torch.allclose(c["pos"][0][1]["lvdm_image_tokens"], c["neg"][0][1]["lvdm_image_tokens"])
        # the same conditions through sample_custom give the node's segment (deterministic DDIM, same noise)
        with torch.inference_mode():
            ref_out = comfy.sample.sample_custom(loaded["model"], c["noise"], cfgs[i], loaded["sampler"],
                                                 loaded["sigmas"], pos, neg, latent["samples"], seed=3 + i)
        assert torch.equal(c["out"], ref_out)
    # segment 1 starts on keyframe 1 = the latent segment 0 ended on
    torch.testing.assert_close(calls[1]["pos"][0][1]["concat_latent_image"][0],
                               calls[0]["pos"][0][1]["concat_latent_image"][-1], atol=0, rtol=0)


def test_per_segment_prompts_reach_the_sampler(env, loaded, calls):
    run(env, loaded, keyframes(3), frames="4", prompts="a cat sits\n\na cat jumps\n")
    assert len(calls) == 2 and all(c["noise"].shape[0] == 4 for c in calls)
    with torch.inference_mode():
        texts = [encode(env, loaded["clip"], t)[0][0] for t in ("a cat sits", "a cat jumps")]
    for c, text in zip(calls, texts):
        assert torch.equal(c["pos"][0][0], text) and torch.equal(c["neg"][0][0], loaded["neg"][0][0])
    assert not torch.equal(texts[0], texts[1])
    calls.clear()
    run(env, loaded, keyframes(3), frames="4", prompts="")  # no lines: the positive input
    assert all(torch.equal(c["pos"][0][0], loaded["pos"][0][0]) for c in calls)


def test_one_progress_bar_across_segments_with_previews(env, loaded, monkeypatch):
    import comfy.utils

    updates = []
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK",
                        lambda value, total, preview, node_id=None: updates.append((value, total, preview)))
    run(env, loaded, keyframes(4), frames="3")
    steps = len(loaded["sigmas"]) - 1
    ours = [u for u in updates if u[1] == 3 * steps]
    assert [u[0] for u in ours] == list(range(1, 3 * steps + 1))  # 3 segments x steps, one bar


def test_interruption_stops_between_and_within_segments(env, loaded, calls, monkeypatch):
    import comfy.model_management as mm
    import comfy.sample

    recording = comfy.sample.sample_custom

    def interrupt_after(*args, **kw):
        out = recording(*args, **kw)
        mm.interrupt_current_processing(True)  # the user presses cancel during segment 1
        return out

    monkeypatch.setattr(comfy.sample, "sample_custom", interrupt_after)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            run(env, loaded, keyframes(4), frames="3")
    finally:
        mm.interrupt_current_processing(False)
    assert len(calls) == 1  # segments 2 and 3 never started
    # within a segment: the interrupt arrives after the first step; the next step's callback stops the sampler
    import comfy.utils

    monkeypatch.setattr(comfy.sample, "sample_custom", recording)
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK",
                        lambda value, total, preview, node_id=None: mm.interrupt_current_processing(True))
    try:
        with pytest.raises(mm.InterruptProcessingException):
            run(env, loaded, keyframes(2), frames="3")
    finally:
        mm.interrupt_current_processing(False)
    assert len(calls) == 1  # the segment never returned


def test_bad_input_is_refused_before_sampling(env, loaded, calls):
    keys = keyframes(3)
    cases = [
        ({"keys": keys[:1]}, r"in-betweening needs at least 2 keyframes .*; got 1"),
        ({"frames": "16, 1"}, r"frames: 1 must be at least 2"),
        ({"frames": "16, 16, 16"}, r"frames: 3 values for 2 segment\(s\) \(3 keyframes\)"),
        ({"cfg": "7.5, 7.5, 7.5, 7.5"}, r"cfg: 4 values for 2 segment"),
        ({"cfg": "nan"}, r"cfg: 'nan' is not a finite number"),
        ({"frame_stride": "0"}, r"frame_stride: 0 must be at least 1"),
        ({"prompts": "a\nb\nc"}, r"prompts: 3 values for 2 segment"),
        ({"prompts": "a cat", "clip": False}, r"prompts are given but no clip"),
    ]
    for kwargs, message in cases:
        kwargs.setdefault("keys", keys)
        with pytest.raises(ValueError, match="VP_DynamiCrafterKeyframes: " + message):
            run(env, loaded, **kwargs)
    # another DynamiCrafter (no end-frame condition) and another LVDM family: named, with what is expected
    with torch.inference_mode():
        loader = node(env, "VP_LoadLVDMCheckpoint")
        i2v = loader.execute("dynamicrafter_512.ckpt", "auto", "fp32").result[0]
        t2v = loader.execute("videocrafter2_512.ckpt", "auto", "fp32").result[0]
    for model, name in ((i2v, "dynamicrafter_512"), (t2v, "videocrafter2_512")):
        with pytest.raises(ValueError, match=rf"\({name}\), which has no end-frame condition; expected the "
                                             r"DynamiCrafter 512 frame interpolation .*variant "
                                             r"'dynamicrafter_512_interp'"):
            run(env, loaded, keys, model=model)
    assert calls == []  # nothing sampled
    validate = node(env, "VP_DynamiCrafterKeyframes").validate_inputs
    assert validate(frames="16,x", cfg="7.5", frame_stride="5", fit="center crop", preprocess="official") == \
        "frames: 'x' is not a whole number (in '16,x')"
    assert validate(frames="16", cfg="7.5", frame_stride="5", fit="center crop", preprocess="official") is True
