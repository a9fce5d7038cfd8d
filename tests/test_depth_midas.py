"""MiDaS DPT-Hybrid on transformers against the official code: the verified key map and both published layouts
(checkpoint manifests), and the golden forwards of the reduced model (Make-Your-Video preprocessing, 384x384 and a
non-square keep-aspect input)."""
import json

import pytest
import torch
from safetensors.torch import load_file
from shared_data import golden, manifest, require_shared, shared_path  # noqa: F401 (fixture)

from pipelines.depth import midas

ATOL = 5e-5  # golden README section 7: suggested tolerance on depth
FIXTURE = "depth/midas_dpt_hybrid"
pytestmark = pytest.mark.usefixtures("require_shared")
REDUCED = {"num_heads": 4, "vit_hooks": (1, 3)}  # not in any shape (golden config.json "reduced")


def manifest_shapes(name: str) -> dict[str, tuple[int, ...]]:
    out = {}
    with open(manifest(name), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                key, _, shape = line.strip().partition(" ")
                dims = shape.strip()[1:-1].strip()
                out[key] = tuple(int(d) for d in dims.split(",")) if dims else ()
    return out


def meta_state_dict(shapes: dict) -> dict[str, torch.Tensor]:
    return {k: torch.empty(s, device="meta") for k, s in shapes.items()}


def shapes_of(sd) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in sd.items()}


@pytest.fixture(scope="module")
def fixture_sd():
    return {k: v.float() for k, v in load_file(golden(FIXTURE, "weights.safetensors")).items()}


@pytest.fixture(scope="module")
def io():
    return load_file(golden(FIXTURE, "io.safetensors"))


@pytest.fixture(scope="module")
def model(fixture_sd):
    return midas.build(fixture_sd, **REDUCED)


def test_key_map_equals_the_verified_tsv():
    original = manifest_shapes("midas_dpt_hybrid")
    tsv_path = shared_path("checkpoint-manifests", "midas_dpt_hybrid_to_transformers_keymap.tsv")
    with open(tsv_path, encoding="utf-8") as f:
        tsv = dict(line.rstrip("\n").split("\t") for line in f if line.strip())
    assert set(tsv) == set(original) - set(midas.DROPPED)
    for key in original:
        if key in midas.DROPPED:
            assert midas.rename(key) == ()
            continue
        target = tsv[key]  # the TSV shows a fused qkv under its pre-split name
        want = (tuple(target.replace("attn.qkv", f"attention.attention.{p}") for p in ("query", "key", "value"))
                if "attn.qkv" in target else (target,))
        assert midas.rename(key) == want, key
        assert all(midas.original_name(name) == key for name in want)
    converted = midas.to_transformers(meta_state_dict(original))
    assert shapes_of(converted) == manifest_shapes("hf_dpt_hybrid_midas")
    assert midas.matches_original(original) and not midas.matches_transformers(original)
    assert midas.matches_transformers(converted) and not midas.matches_original(converted)
    for other in ("depth_anything_v2_vits", "hf_depth_anything_v2_vits"):  # the other depth family's layouts
        keys = manifest_shapes(other)
        assert not midas.matches_original(keys) and not midas.matches_transformers(keys), other


def test_real_size_model_has_the_transformers_layout():
    hf = manifest_shapes("hf_dpt_hybrid_midas")
    for sd in (meta_state_dict(manifest_shapes("midas_dpt_hybrid")), meta_state_dict(hf)):
        model = midas.build(sd)
        assert shapes_of(model.state_dict()) == hf
    with open(shared_path("checkpoint-manifests", "hf_dpt_hybrid_midas_config.json"), encoding="utf-8") as f:
        hub = json.load(f)
    cfg = model.config
    for field in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size",
                  "image_size", "is_hybrid", "readout_type", "reassemble_factors", "neck_hidden_sizes",
                  "fusion_hidden_size", "backbone_featmap_shape", "neck_ignore_stages", "qkv_bias", "hidden_act",
                  "use_batch_norm_in_fusion_residual", "head_in_index", "add_projection"):
        assert getattr(cfg, field) == hub[field], field
    assert cfg.backbone_out_indices[2:] == hub["backbone_out_indices"][2:]  # hybrid reads only ViT taps 2, 3
    assert cfg.layer_norm_eps == 1e-6 and hub["layer_norm_eps"] == 1e-12  # timm's eps, deliberately not the hub's
    bit = cfg.backbone_config
    for field in ("depths", "embedding_size", "layer_type", "global_padding", "embedding_dynamic_padding",
                  "num_groups", "out_features", "hidden_act"):
        assert getattr(bit, field) == hub["backbone_config"][field], field
    assert bit.hidden_sizes == hub["backbone_config"]["hidden_sizes"][:3]  # the hub lists an unused 4th stage
    assert midas.hf_config_overrides(hub) == {"num_heads": 12, "vit_hooks": (8, 11)}


def test_golden_depth(model, io):
    depth = midas.predict(model, io["x_midas"])
    torch.testing.assert_close(depth, io["depth"], atol=ATOL, rtol=0)
    # keep-aspect 128x160: the pos-embed grid is resized 24x24 -> 8x10 and the neck sees a non-square grid
    nonsquare = midas.predict(model, io["x_nonsquare"])
    torch.testing.assert_close(nonsquare, io["depth_nonsquare"], atol=ATOL, rtol=0)
    assert (io["depth"] > 0).float().mean() > 0.9  # the ReLU'd output is mostly live (fixture design)


def test_preprocess_and_postprocess_follow_make_your_video(io):
    x = midas.preprocess(io["frames_uint8"].float() / 255)
    torch.testing.assert_close(x, io["x_midas"], atol=1e-6, rtol=0)
    assert x.min() < -1 and x.max() > 1  # bicubic overshoot kept: no clamp
    # get_batch_depth: bicubic to the target size; its per-frame [-1, 1] scaling reproduces cond_depth
    d = midas.postprocess(io["depth"], (32, 32))
    lo, hi = d.amin(dim=(1, 2), keepdim=True), d.amax(dim=(1, 2), keepdim=True)
    cond = 2 * (d - lo) / (hi - lo + 1e-7) - 1
    torch.testing.assert_close(cond, io["cond_depth"][0, 0], atol=1e-4, rtol=0)


def test_transformers_folder_gives_the_same_depth(model, io, tmp_path):
    from transformers import DPTForDepthEstimation

    model.save_pretrained(tmp_path)
    sd = load_file(tmp_path / "model.safetensors")
    config = json.loads((tmp_path / "config.json").read_text())
    assert midas.matches_transformers(sd)
    assert shapes_of(sd) == shapes_of(model.state_dict())
    reloaded = midas.build(sd, **midas.hf_config_overrides(config))
    torch.testing.assert_close(midas.predict(reloaded, io["x_midas"][:1]), io["depth"][:1], atol=ATOL, rtol=0)
    torch.testing.assert_close(midas.predict(reloaded, io["x_nonsquare"]), io["depth_nonsquare"], atol=ATOL, rtol=0)
    # stock transformers reads the same folder (384x384 only, its own attention kernel)
    stock, info = DPTForDepthEstimation.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info.values()), info  # nothing missing, unexpected or mismatched
    stock.eval()
    with torch.no_grad():
        torch.testing.assert_close(stock(io["x_midas"][:1]).predicted_depth, io["depth"][:1], atol=ATOL, rtol=0)


def test_bad_state_dicts_name_the_key(fixture_sd):
    missing = dict(fixture_sd)
    del missing["scratch.refinenet2.out_conv.bias"]
    with pytest.raises(ValueError, match=r"missing.*scratch\.refinenet2\.out_conv\.bias"):
        midas.build(missing, **REDUCED)
    extra = dict(fixture_sd, **{"scratch.refinenet5.out_conv.bias": torch.zeros(32)})
    with pytest.raises(ValueError, match=r"no transformers name.*scratch\.refinenet5\.out_conv\.bias"):
        midas.build(extra, **REDUCED)
    wrong = dict(fixture_sd, **{"scratch.layer3_rn.weight": torch.zeros(32, 64, 1, 1)})
    with pytest.raises(ValueError, match=r"wrong shape.*scratch\.layer3_rn\.weight.*\[32, 64, 1, 1\]"):
        midas.build(wrong, **REDUCED)
    tf = midas.to_transformers(fixture_sd)
    del tf["dpt.encoder.layer.2.attention.attention.key.bias"]
    with pytest.raises(ValueError, match=r"missing.*dpt\.encoder\.layer\.2\.attention\.attention\.key\.bias"):
        midas.build(tf, **REDUCED)
    with pytest.raises(ValueError, match="pass vit_hooks"):  # 4 blocks: the taps cannot be guessed
        midas.build(fixture_sd, num_heads=4)
    with pytest.raises(ValueError, match="not a MiDaS DPT-Hybrid"):
        midas.build({"first_stage_model.encoder.conv_in.weight": torch.zeros(1)})


def test_input_checks(model):
    with pytest.raises(ValueError, match="multiple of 32"):
        midas.predict(model, torch.zeros(1, 3, 384, 400))
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        midas.preprocess(torch.zeros(2, 3, 64, 64))
