"""Tests of the diffusers text-to-video prior (pipelines/priors/diffusers_prior.py) on tiny random folders."""
import math
import os
import re
import shutil

import pytest
import torch

from pipelines.priors.base import sds_gradient
from pipelines.priors.diffusers_prior import (
    DiffusersVideoPrior,
    PriorFilesMissingError,
    PriorLoadError,
    TextEncoderFreedError,
    encode_memory_report,
)
from pipelines.priors.tiny_models import MODELSCOPE_17B_UNET_CONFIG, build_tiny_t2v_folder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_t2v_folder(str(tmp_path_factory.mktemp("t2v") / "tiny-t2v"), seed=0)


@pytest.fixture(scope="module")
def tiny_v_dir(tmp_path_factory):
    return build_tiny_t2v_folder(str(tmp_path_factory.mktemp("t2v-v") / "tiny-t2v-v"), seed=0,
                                 prediction_type="v_prediction")


@pytest.fixture(scope="module")
def prior(tiny_dir):
    return DiffusersVideoPrior.from_folder(tiny_dir)


def _copy(tiny_dir, tmp_path, name="copy"):
    dst = str(tmp_path / name)
    shutil.copytree(tiny_dir, dst)
    return dst


def _latents(prior, k=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(prior.latent_shape(k, prior.height, prior.width), generator=g)


# --- the real ModelScope UNet ----------------------------------------------------------------
def test_modelscope_unet_config_matches_manifest():
    from shared_data import manifest  # ../shared, VP_SHARED_DIR or /work/shared; fails under CI when absent

    manifest_path = manifest("ms17b_unet_diffusers")
    from diffusers import UNet3DConditionModel

    expected = {}
    with open(manifest_path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                key, shape = line.strip().split(" ", 1)
                expected[key] = [int(d) for d in re.findall(r"\d+", shape)]
    with torch.device("meta"):
        unet = UNet3DConditionModel.from_config(MODELSCOPE_17B_UNET_CONFIG)
    built = {k: list(v.shape) for k, v in unet.state_dict().items()}
    missing, extra = sorted(set(expected) - set(built)), sorted(set(built) - set(expected))
    wrong = {k: (built[k], expected[k]) for k in set(built) & set(expected) if built[k] != expected[k]}
    assert not missing and not extra and not wrong, (
        f"{len(missing)} keys only in the manifest {missing[:5]}, {len(extra)} only in the model {extra[:5]}, "
        f"{len(wrong)} shape differences {list(wrong.items())[:5]}")
    assert len(built) == 1480
    assert sum(math.prod(s) for s in built.values()) == 1_411_233_860


# --- loading ---------------------------------------------------------------------------------
def test_loads_tiny_folder_fp32(prior, tiny_dir):
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextModel

    assert isinstance(prior.unet, UNet3DConditionModel)
    assert isinstance(prior.vae, AutoencoderKL)
    assert isinstance(prior.text_encoder, CLIPTextModel)
    for m in (prior.unet, prior.vae, prior.text_encoder):
        assert all(p.dtype == torch.float32 and not p.requires_grad for p in m.parameters())
    assert prior.prediction_type == "epsilon" and prior.num_train_timesteps == 1000
    abar = prior.alphas_cumprod()
    assert abar.shape == (1000,) and abar.dtype == torch.float32
    assert torch.all(abar[1:] < abar[:-1]) and 0.99 < float(abar[0]) < 1 and float(abar[-1]) < 0.01
    # clip shape: LiveSketch default 24 frames; tiny native size = sample_size 8 x VAE factor 4
    assert (prior.num_frames, prior.height, prior.width, prior.vae_scale_factor) == (24, 32, 32, 4)


def test_bf16_option_and_overrides(tiny_dir):
    p = DiffusersVideoPrior.from_folder(tiny_dir, dtype="bf16", num_frames=8, height=64, width=96)
    assert {q.dtype for q in p.unet.parameters()} == {torch.bfloat16}
    assert {q.dtype for q in p.text_encoder.parameters()} == {torch.bfloat16}
    assert {q.dtype for q in p.vae.parameters()} == {torch.float32}  # VAE stays fp32 by default
    assert (p.num_frames, p.height, p.width) == (8, 64, 96)
    e = p.encode_prompt("a cat")
    noisy = _latents(p, k=2)
    out = p.predict_noise(noisy, 400, e, 5.0)
    assert out.dtype == torch.float32 and out.shape == noisy.shape and torch.isfinite(out).all()
    p.to(dtype=torch.float16)
    assert {q.dtype for q in p.unet.parameters()} == {torch.float16}


def test_clip_shape_defaults_by_folder_name(tiny_dir, tmp_path):
    zs = tmp_path / "zeroscope_v2_576w"
    os.symlink(tiny_dir, zs)
    p = DiffusersVideoPrior.from_folder(str(zs))
    assert (p.num_frames, p.height, p.width) == (24, 320, 576)
    ms = tmp_path / "text-to-video-ms-1.7b"  # ModelScope: the UNet's native size (the tiny one's here)
    os.symlink(tiny_dir, ms)
    p = DiffusersVideoPrior.from_folder(str(ms))
    assert (p.num_frames, p.height, p.width) == (24, 32, 32)


# --- denoiser and SDS ------------------------------------------------------------------------
def _manual_embeds(prior, prompt, negative=""):
    tok = prior.tokenizer
    ids = [tok(s, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
           for s in (prompt, negative)]
    with torch.no_grad():
        return [prior.text_encoder(i).last_hidden_state for i in ids]


def test_encode_prompt_matches_text_encoder(prior):
    e = prior.encode_prompt("a horse galloping", "blurry")
    cond, uncond = _manual_embeds(prior, "a horse galloping", "blurry")
    assert e.cond.shape == (1, 77, 32)
    torch.testing.assert_close(e.cond, cond)
    torch.testing.assert_close(e.uncond, uncond)


def test_sds_gradient_equals_manual_cfg(prior, tiny_dir):
    from diffusers import DDIMScheduler

    abar = DDIMScheduler.from_pretrained(tiny_dir, subfolder="scheduler").alphas_cumprod[600]
    e = prior.encode_prompt("a dancer spinning")
    cond, uncond = _manual_embeds(prior, "a dancer spinning")
    z = _latents(prior, k=4, seed=3)
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(4))
    g, t = 7.5, 600
    grad = sds_gradient(prior, z, e, g, t, noise)

    x_t = abar.sqrt() * z + (1 - abar).sqrt() * noise
    ts = torch.tensor([t])
    with torch.no_grad():
        eps_u = prior.unet(x_t, ts, encoder_hidden_states=uncond).sample
        eps_c = prior.unet(x_t, ts, encoder_hidden_states=cond).sample
    expected = (1 - abar) * (eps_u + g * (eps_c - eps_u) - noise)
    assert grad.shape == z.shape and grad.abs().max() > 0
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-5)
    assert prior.sds_weight(t) == pytest.approx(float(1 - abar))

    # guidance 1 is the conditional prediction alone
    torch.testing.assert_close(prior.predict_noise(x_t, t, e, 1.0), eps_c, rtol=1e-4, atol=1e-5)


def test_v_prediction_converted_to_epsilon(tiny_v_dir):
    from diffusers import DDIMScheduler

    p = DiffusersVideoPrior.from_folder(tiny_v_dir)
    assert p.prediction_type == "v_prediction"
    e = p.encode_prompt("a bird flapping its wings")
    cond, uncond = _manual_embeds(p, "a bird flapping its wings")
    t, g = 300, 4.0
    abar = DDIMScheduler.from_pretrained(tiny_v_dir, subfolder="scheduler").alphas_cumprod[t]
    x_t = _latents(p, k=3, seed=5)
    ts = torch.tensor([t])
    with torch.no_grad():
        v_u = p.unet(x_t, ts, encoder_hidden_states=uncond).sample
        v_c = p.unet(x_t, ts, encoder_hidden_states=cond).sample
    v = v_u + g * (v_c - v_u)
    expected = abar.sqrt() * v + (1 - abar).sqrt() * x_t
    out = p.predict_noise(x_t, t, e, g)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    assert (out - v).abs().max() > 1e-3  # the conversion did something


# --- frames <-> latents ----------------------------------------------------------------------
def test_encode_frames_differentiable_and_chunk_invariant(prior):
    frames = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    x = frames.clone().requires_grad_(True)
    z = prior.encode_frames(x, generator=torch.Generator().manual_seed(7), chunk=4)
    assert z.shape == (1, 4, 6, 8, 8) and z.dtype == torch.float32
    w = torch.randn(z.shape, generator=torch.Generator().manual_seed(8))
    (z * w).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0

    # all frames at once, no checkpointing: same latents and same gradient
    y = frames.clone().requires_grad_(True)
    z_full = prior.encode_frames(y, generator=torch.Generator().manual_seed(7), chunk=6, use_checkpoint=False)
    (z_full * w).sum().backward()
    torch.testing.assert_close(z, z_full, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(x.grad, y.grad, rtol=1e-4, atol=1e-6)

    # latent frame i encodes frame i alone (posterior mean: deterministic)
    prior.latent_sampling = "mean"
    try:
        with torch.no_grad():
            z_mean = prior.encode_frames(frames)
            z_one = prior.encode_frames(frames[2:3])
    finally:
        prior.latent_sampling = "sample"
    torch.testing.assert_close(z_one[:, :, 0], z_mean[:, :, 2], rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # the reference's recipe: [-1, 1] -> VAE posterior -> x scaling_factor -> [1, C, K, h, w]
        manual = prior.vae.encode(frames * 2 - 1).latent_dist.mean * prior.vae.config.scaling_factor
    torch.testing.assert_close(z_mean, manual.permute(1, 0, 2, 3)[None], rtol=1e-4, atol=1e-5)
    # sampling (the LiveSketch reference) differs from the posterior mean, seeded sampling is reproducible
    with torch.no_grad():
        s1 = prior.encode_frames(frames, generator=torch.Generator().manual_seed(1))
        s2 = prior.encode_frames(frames, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(s1, s2)
    assert (s1 - z_mean).abs().max() > 1e-4


def test_chunked_encode_memory(prior):
    frames = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    report = encode_memory_report(prior, frames, chunk=2)
    assert report["full_bytes"] > 0 and report["chunked_bytes"] > 0
    assert report["chunked_bytes"] <= 0.5 * report["full_bytes"], report


def test_decode_latents(prior):
    z = _latents(prior, k=5)
    frames = prior.decode_latents(z)
    assert frames.shape == (5, 3, 32, 32) and frames.dtype == torch.float32
    assert frames.min() >= 0 and frames.max() <= 1
    torch.testing.assert_close(prior.decode_latents(z[0]), frames)
    with torch.no_grad():
        manual = prior.vae.decode(z[0].permute(1, 0, 2, 3) / prior.vae.config.scaling_factor).sample
    torch.testing.assert_close(frames, ((manual + 1) / 2).clamp(0, 1), rtol=1e-4, atol=1e-5)


# --- prompt cache and freeing the text encoder -----------------------------------------------
def test_encode_prompt_cache_and_free(tiny_dir):
    p = DiffusersVideoPrior.from_folder(tiny_dir)
    a = p.encode_prompt("a cat", "ugly")
    assert p.encode_prompt("a cat", "ugly") is a
    assert p.encode_prompt("a cat") is not a
    reference = p.encode_prompt("a dog")
    p._embeds_cache.pop(("a dog", ""))

    p.free_text_encoder()
    assert p.text_encoder is None
    assert p.encode_prompt("a cat", "ugly") is a  # cached prompts need no encoder
    # default: a new prompt reloads the encoder from disk for that call and frees it again
    again = p.encode_prompt("a dog")
    assert p.text_encoder is None
    torch.testing.assert_close(again.cond, reference.cond)

    p.reload_text_encoder = False
    with pytest.raises(TextEncoderFreedError, match="free_text_encoder"):
        p.encode_prompt("a horse")


# --- errors ----------------------------------------------------------------------------------
def test_missing_folder(tmp_path):
    missing = str(tmp_path / "nothing-here")
    with pytest.raises(PriorFilesMissingError) as info:
        DiffusersVideoPrior.from_folder(missing)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, PriorLoadError)
    assert missing in str(info.value) and "ali-vilab/text-to-video-ms-1.7b" in str(info.value)


def test_missing_unet_subfolder(tiny_dir, tmp_path):
    d = _copy(tiny_dir, tmp_path)
    shutil.rmtree(os.path.join(d, "unet"))
    with pytest.raises(PriorLoadError) as info:
        DiffusersVideoPrior.from_folder(d)
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "'unet'" in msg and d in msg
    assert "ali-vilab/text-to-video-ms-1.7b" in msg and "ComfyUI/models/video_priors/" in msg


def test_missing_weights_file(tiny_dir, tmp_path):
    d = _copy(tiny_dir, tmp_path)
    os.remove(os.path.join(d, "unet", "diffusion_pytorch_model.safetensors"))
    with pytest.raises(PriorFilesMissingError, match=r"unet/diffusion_pytorch_model\.safetensors") as info:
        DiffusersVideoPrior.from_folder(d)
    assert os.path.join(d, "unet") in str(info.value)


def test_truncated_safetensors(tiny_dir, tmp_path):
    d = _copy(tiny_dir, tmp_path)
    f = os.path.join(d, "vae", "diffusion_pytorch_model.safetensors")
    with open(f, "rb") as fh:
        data = fh.read()
    with open(f, "wb") as fh:
        fh.write(data[: len(data) // 2])
    with pytest.raises(PriorLoadError, match="truncated") as info:
        DiffusersVideoPrior.from_folder(d)
    assert not isinstance(info.value, FileNotFoundError) and f in str(info.value)


def test_image_unet_rejected(tmp_path):
    d = build_tiny_t2v_folder(str(tmp_path / "sd-like"), image_unet=True)
    with pytest.raises(PriorLoadError, match="not a text-to-video UNet") as info:
        DiffusersVideoPrior.from_folder(d)
    assert "UNet2DConditionModel" in str(info.value)


def test_weights_not_matching_config(tiny_dir, tmp_path):
    import json

    d = _copy(tiny_dir, tmp_path)
    cfg_path = os.path.join(d, "unet", "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["block_out_channels"] = [32, 32]
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    with pytest.raises(PriorLoadError, match="unet"):
        DiffusersVideoPrior.from_folder(d)


class _Payload:
    """Unpickling this creates a marker file: proof that arbitrary pickle code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("component,bin_name", [("unet", "diffusion_pytorch_model.bin"),
                                                ("text_encoder", "pytorch_model.bin")])
def test_bin_weights_loaded_without_unsafe_pickle(tiny_dir, tmp_path, component, bin_name):
    from safetensors.torch import load_file

    d = _copy(tiny_dir, tmp_path)
    comp = os.path.join(d, component)
    st = [n for n in os.listdir(comp) if n.endswith(".safetensors")][0]
    state = load_file(os.path.join(comp, st))
    os.remove(os.path.join(comp, st))
    torch.save(state, os.path.join(comp, bin_name))
    p = DiffusersVideoPrior.from_folder(d)  # a plain tensor pickle loads (weights_only)
    assert p.encode_prompt("a cat").cond.shape == (1, 77, 32)

    marker = str(tmp_path / "pwned")
    torch.save({**state, "evil": _Payload(marker)}, os.path.join(comp, bin_name))
    with pytest.raises(PriorLoadError, match="weights_only=True") as info:
        DiffusersVideoPrior.from_folder(d)
    assert not os.path.exists(marker)
    assert f"{component}/{bin_name}" in str(info.value)


def test_fp16_variant_files_only(tiny_dir, tmp_path):
    d = _copy(tiny_dir, tmp_path)
    for comp, name in (("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model"), ("text_encoder", "model")):
        os.rename(os.path.join(d, comp, f"{name}.safetensors"), os.path.join(d, comp, f"{name}.fp16.safetensors"))
    p = DiffusersVideoPrior.from_folder(d)
    ref = DiffusersVideoPrior.from_folder(tiny_dir)
    for a, b in ((p.unet, ref.unet), (p.vae, ref.vae), (p.text_encoder, ref.text_encoder)):
        torch.testing.assert_close(dict(a.state_dict()), dict(b.state_dict()))
