"""The LVDM UNet against the official code: golden forwards (DynamiCrafter 256/512, VideoCrafter2, Make-Your-Video)
loaded through our key detection and strict loading, and the exact key/shape layout of every published variant."""
import json

import pytest
import torch
from safetensors.torch import load_file
from shared_data import golden, manifest

from pipelines.lvdm.config import (
    VARIANTS,
    UnknownCheckpointError,
    detect_variant,
    shapes_from_manifest,
    tiny_config,
    unet_keys,
    variant_for,
)
from pipelines.lvdm.unet import UNetModel

ATOL = 1e-4  # golden README: single forward


def load_golden_unet(fixture, drop_alpha=False):
    sd = load_file(golden(fixture, "weights.safetensors"))
    if drop_alpha:
        sd = {k: v for k, v in sd.items() if not k.endswith(".alpha")}
    variant, cfg = detect_variant(sd)
    model = UNetModel(cfg).eval()
    model.load_state_dict({k: v.float() for k, v in unet_keys(sd).items()}, strict=True)
    return model, variant, cfg


@pytest.mark.parametrize("fixture,weights,drop_alpha,variant", [
    ("dc256_unet", "dc256_unet", False, "dynamicrafter_256"),
    ("dc512_unet", "dc256_unet", True, "dynamicrafter_512"),
])
def test_dynamicrafter_unet_matches_official(fixture, weights, drop_alpha, variant):
    model, found, cfg = load_golden_unet(weights, drop_alpha)
    assert found.name == variant and cfg == tiny_config(variant)
    io = load_file(golden(fixture, "io.safetensors"))
    fs, fs_alt = int(io["fs"].reshape(-1)[0]), int(io["fs_alt"].reshape(-1)[0])
    calls = {"out_t981": (981, fs), "out_t301": (301, fs), f"out_t981_fs{fs_alt}": (981, fs_alt),
             "out_t981_fsNone": (981, None)}
    assert set(calls) == {k for k in io if k.startswith("out")}
    with torch.no_grad():
        for name, (t, f) in calls.items():
            out = model(io["x"], torch.tensor([t]), context=io["context"],
                        fs=None if f is None else torch.tensor([f]))
            torch.testing.assert_close(out, io[name], atol=ATOL, rtol=0, msg=name)
    # the per-frame image context path is really taken (77 + 16 frames * 16 tokens)
    assert io["context"].shape[1] == 77 + io["x"].shape[2] * 16


def test_videocrafter2_unet_matches_official():
    model, found, cfg = load_golden_unet("vc2_unet")
    assert found.name == "videocrafter2_512" and cfg == tiny_config("videocrafter2_512")
    io = load_file(golden("vc2_unet", "io.safetensors"))
    fps, fps_alt = int(io["fps"].reshape(-1)[0]), int(io["fps_alt"].reshape(-1)[0])
    calls = {"out_t981": (981, fps), "out_t301": (301, fps), f"out_t981_fps{fps_alt}": (981, fps_alt),
             "out_t981_fpsDefault": (981, None)}
    assert set(calls) == {k for k in io if k.startswith("out")}
    with torch.no_grad():
        for name, (t, f) in calls.items():
            out = model(io["x"], torch.tensor([t]), context=io["context"], fs=None if f is None else torch.tensor([f]))
            torch.testing.assert_close(out, io[name], atol=ATOL, rtol=0, msg=name)


def test_make_your_video_unet_matches_official_at_16_and_24_frames():
    model, found, cfg = load_golden_unet("myv_unet")
    assert found.name == "makeyourvideo_256" and cfg == tiny_config("makeyourvideo_256")
    io = load_file(golden("myv_unet", "io.safetensors"))
    with torch.no_grad():
        for frames in (16, 24):
            for t in (981, 301):
                out = model(io[f"x{frames}"], torch.tensor([t]), context=io["context"])
                torch.testing.assert_close(out, io[f"out{frames}_t{t}"], atol=ATOL, rtol=0, msg=f"{frames}/{t}")


def test_make_your_video_causal_window_is_the_official_mask():
    from pipelines.lvdm.attention import temporal_mask

    io = load_file(golden("myv_unet", "io.safetensors"))
    official = io["causal_mask_24"].reshape(-1, 24, 24)[0] > 0.5
    assert torch.equal(temporal_mask(24, True, 16), official)
    assert not official[20, 4] and official[20, 5]  # frame 20 sees frames 5..20 only


def test_batch_of_two_equals_two_single_calls():
    model, _, _ = load_golden_unet("dc256_unet")
    io = load_file(golden("dc256_unet", "io.safetensors"))
    x = torch.cat([io["x"], io["x"].flip(2)])
    ctx = torch.cat([io["context"], io["context"] * 0.5])
    with torch.no_grad():
        both = model(x, torch.tensor([981, 301]), context=ctx, fs=torch.tensor([3, 5]))
        a = model(x[:1], torch.tensor([981]), context=ctx[:1], fs=torch.tensor([3]))
        b = model(x[1:], torch.tensor([301]), context=ctx[1:], fs=torch.tensor([5]))
    torch.testing.assert_close(both, torch.cat([a, b]), atol=2e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_model_built_from_detected_config_has_exactly_the_manifest_keys(name):
    variant = VARIANTS[name]
    expected = shapes_from_manifest(open(manifest(variant.manifest), encoding="utf-8"))
    found, cfg = variant_for(expected, name)
    assert found.name == name
    with torch.device("meta"):
        model = UNetModel(cfg)
    built = {"model.diffusion_model." + k: tuple(v.shape) for k, v in model.state_dict().items()}
    want = {k: v for k, v in expected.items() if k.startswith("model.diffusion_model.")}
    assert sorted(set(want) - set(built)) == [] and sorted(set(built) - set(want)) == []
    assert {k: s for k, s in built.items() if want[k] != s} == {}


def test_detection_uses_keys_not_names_and_explains_unknown_files():
    sd = shapes_from_manifest(open(manifest("dc256"), encoding="utf-8"))
    # DynamiCrafter 256 files that call the frame-stride embedding `framestride_embed`
    renamed = {k.replace("fps_embedding", "framestride_embed"): v for k, v in sd.items()}
    assert detect_variant(renamed)[0].name == "dynamicrafter_256"
    no_temporal = {k: v for k, v in sd.items() if "temopral" not in k and ".2.transformer" not in k}
    with pytest.raises(UnknownCheckpointError, match="supported"):
        detect_variant({"model.diffusion_model.foo": (1,), "first_stage_model.x": (1,)})
    assert detect_variant(no_temporal)[1].temporal_attention is False
    # the user picks among variants with one key layout; other picks are refused
    sd512 = shapes_from_manifest(open(manifest("dc512"), encoding="utf-8"))
    assert variant_for(sd512, "dynamicrafter_1024")[1].default_fs == 10
    with pytest.raises(UnknownCheckpointError, match="cannot run as"):
        variant_for(sd512, "videocrafter2_512")
    # the file's own scale_arr (base_scale 0.3) marks DynamiCrafter 1024
    sd1024 = dict(sd512, scale_arr=torch.cat([torch.linspace(1, 0.3, 400), torch.full((1000,), 0.3)]))
    assert detect_variant(sd1024)[0].name == "dynamicrafter_1024"


def test_config_json_of_fixtures_agrees_with_tiny_configs():
    for fixture, name in [("dc256_unet", "dynamicrafter_256"), ("vc2_unet", "videocrafter2_512"),
                          ("myv_unet", "makeyourvideo_256")]:
        params = json.load(open(golden(fixture, "config.json")))["unet_config"]["params"]
        cfg = tiny_config(name)
        assert cfg.model_channels == params["model_channels"] and cfg.in_channels == params["in_channels"]
        assert cfg.num_head_channels == params["num_head_channels"]
        assert set(cfg.attention_resolutions) == set(params["attention_resolutions"])
        assert cfg.use_relative_position == params["use_relative_position"]
        assert cfg.use_causal_attention == params["use_causal_attention"]


@pytest.mark.parametrize("name", ["dynamicrafter_256", "videocrafter2_512", "makeyourvideo_256"])
def test_half_precision_model_runs_and_stays_near_float32(name):
    """bf16 weights and activations; the ResBlock GroupNorms still compute in float32 as the official GroupNorm32."""
    cfg = tiny_config(name)
    torch.manual_seed(0)
    ref = UNetModel(cfg).eval()
    half = UNetModel(cfg, dtype=torch.bfloat16).eval()
    half.load_state_dict(ref.state_dict())
    x, ctx = torch.randn(1, cfg.in_channels, 8, 8, 8), torch.randn(1, 77, cfg.context_dim)
    with torch.no_grad():
        a = ref(x, torch.tensor([500]), ctx)
        b = half(x.bfloat16(), torch.tensor([500]), ctx.bfloat16())
    assert b.dtype == torch.bfloat16
    err = (a - b.float()).abs()
    assert err.max() < 0.15 and err.mean() < 0.02 * a.abs().mean() + 0.01
