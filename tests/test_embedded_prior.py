"""Tests of the shipped embedded prior (pipelines/assets/embedded_prior, pipelines/embedded/{model,prior}.py)."""
import json
import logging
import os
import shutil

import pytest
import torch

from pipelines.embedded.data import caption, motion_from_caption
from pipelines.embedded.model import FRAMES, INK_GAIN, LATENT_CHANNELS, MAX_TOKENS, PIXEL, SIZE, WEIGHT_FILES
from pipelines.embedded.prior import EMBEDDED_PRIOR_DIR, load_embedded_prior, sample_clips
from pipelines.priors.base import sds_gradient
from pipelines.priors.diffusers_prior import DiffusersVideoPrior, PriorFilesMissingError, PriorLoadError

MAX_FOLDER_BYTES = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def prior():
    return load_embedded_prior()


def _copy(tmp_path):
    dst = str(tmp_path / "embedded_prior")
    shutil.copytree(EMBEDDED_PRIOR_DIR, dst)
    return dst


def test_folder_layout_and_size():
    for rel in ("model_index.json", "loss_curve.json", "training_config.json", "unet/config.json",
                "text_encoder/config.json", "tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json",
                "scheduler/scheduler_config.json", *WEIGHT_FILES.values()):
        assert os.path.isfile(os.path.join(EMBEDDED_PRIOR_DIR, rel)), rel
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(EMBEDDED_PRIOR_DIR) for f in fs)
    assert total <= MAX_FOLDER_BYTES
    with open(os.path.join(EMBEDDED_PRIOR_DIR, "loss_curve.json")) as f:
        curve = json.load(f)
    assert len(curve["step"]) == len(curve["loss"]) > 0
    with open(os.path.join(EMBEDDED_PRIOR_DIR, "scheduler", "scheduler_config.json")) as f:
        sched = json.load(f)
    assert sched["prediction_type"] == "epsilon" and sched["num_train_timesteps"] == 1000


def test_weights_match_config_shapes():
    """Every tensor of the safetensors files has the shape the saved config builds (and no key is missing)."""
    from accelerate import init_empty_weights
    from diffusers import UNet3DConditionModel
    from safetensors import safe_open
    from transformers import CLIPTextConfig, CLIPTextModel

    with init_empty_weights():
        unet = UNet3DConditionModel.from_config(UNet3DConditionModel.load_config(os.path.join(EMBEDDED_PRIOR_DIR, "unet")))
        te = CLIPTextModel(CLIPTextConfig.from_pretrained(os.path.join(EMBEDDED_PRIOR_DIR, "text_encoder")))
    for comp, model in (("unet", unet), ("text_encoder", te)):
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        with safe_open(os.path.join(EMBEDDED_PRIOR_DIR, WEIGHT_FILES[comp]), "pt") as f:
            stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        missing = set(expected) - set(stored)
        # transformers may leave out non-persistent buffers (position_ids)
        assert not {k for k in missing if not k.endswith("position_ids")}, (comp, sorted(missing)[:5])
        assert not set(stored) - set(expected), comp
        assert all(stored[k] == expected[k] for k in stored), comp


def test_loads_through_from_folder(prior):
    assert isinstance(prior, DiffusersVideoPrior)
    assert prior.vae is None and prior.pixel_gray and prior.pixel_patch == PIXEL["patch"]
    assert prior.latent_channels == LATENT_CHANNELS == PIXEL["patch"] ** 2
    assert prior.vae_scale_factor == PIXEL["patch"]
    assert prior.unet.config.sample_size * prior.vae_scale_factor == SIZE
    assert (prior.num_frames, prior.height, prior.width) == (FRAMES, SIZE, SIZE)
    assert prior.max_text_length == MAX_TOKENS and prior.prediction_type == "epsilon"
    direct = DiffusersVideoPrior.from_folder(EMBEDDED_PRIOR_DIR)
    assert direct.num_frames == FRAMES
    for a, b in zip(prior.unet.parameters(), direct.unet.parameters()):
        assert torch.equal(a, b)


def test_pixel_space_encode_decode_and_sds(prior):
    frames = torch.rand(FRAMES, 3, SIZE, SIZE, requires_grad=True)
    z = prior.encode_frames(frames)
    p = PIXEL["patch"]
    assert z.shape == (1, p * p, FRAMES, SIZE // p, SIZE // p)
    assert prior.ink_gain == INK_GAIN
    seen = (frames.detach().clamp_min(1e-6) ** INK_GAIN).mean(1)  # ink gain (value ** gain), then grey
    # Channel c of latent pixel (i, j) is frame pixel (p i + c // p, p j + c % p): pixel_unshuffle.
    for c in range(p * p):
        assert torch.allclose(z[0, c], seen[:, c // p::p, c % p::p] * 2 - 1, atol=1e-6), c
    decoded = prior.decode_latents(z.detach())
    assert decoded.shape == (FRAMES, 3, SIZE, SIZE)
    for ch in range(3):  # exact inverse up to the gain and the grey level
        assert torch.allclose(decoded[:, ch], seen, atol=1e-6)
    # Larger frames (a 256 render) are area-downsampled to the model's 32 x 32 before the gain.
    big = torch.ones(FRAMES, 3, SIZE * 8, SIZE * 8)
    big[:, :, 40:42, :] = 0.0  # a 2 px line at 256 = 0.25 px at 32: row 5 of the 32 x 32 frame, 25 % ink
    frame = prior.decode_latents(prior.encode_frames(big))[0, 0]
    assert torch.allclose(frame[5], torch.full((SIZE,), 0.75 ** INK_GAIN), atol=1e-5)
    assert torch.allclose(frame[4], torch.ones(SIZE)) and torch.allclose(frame[6], torch.ones(SIZE))
    embeds = prior.encode_prompt("a bird flies to the left")
    grad = sds_gradient(prior, z, embeds, 7.5, 500, torch.randn(z.shape, generator=torch.Generator().manual_seed(0)))
    assert grad.shape == z.shape and torch.isfinite(grad).all()
    z.backward(gradient=grad)
    assert frames.grad is not None and frames.grad.abs().sum() > 0


def test_pixel_channels_checked(tmp_path):
    """A pixel-space folder whose UNet channels do not fit its grey/patch layout is refused, naming both."""
    folder = _copy(tmp_path)
    index_path = os.path.join(folder, "model_index.json")
    with open(index_path) as f:
        index = json.load(f)
    index["videopriors_pixel"]["gray"] = False  # RGB with patch 2 would need 12 channels
    with open(index_path, "w") as f:
        json.dump(index, f)
    with pytest.raises(PriorLoadError, match="expected 12"):
        load_embedded_prior(folder)


def test_out_of_vocabulary_words_ignored_with_one_warning(prior, caplog):
    prior._embeds_cache.clear()
    with caplog.at_level(logging.WARNING, logger="VideoPriors"):
        oov = prior.encode_prompt("it zorbles there to the left")
    records = [r for r in caplog.records if r.name == "VideoPriors"]
    assert len(records) == 1
    assert "zorbles" in records[0].getMessage() and "there" in records[0].getMessage()
    clean = prior.encode_prompt("it to the left")
    assert torch.equal(oov.cond, clean.cond)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="VideoPriors"):
        prior.encode_prompt("a bird flies to the left")  # in vocabulary: no warning
    assert not [r for r in caplog.records if r.name == "VideoPriors"]


def test_heldout_paraphrases_are_in_vocabulary(prior):
    """Held-out captions combine trained words; only the held-out function words are unknown."""
    unk = prior.tokenizer.unk_token_id
    for motion in ("left", "right", "up", "down", "clockwise", "grow"):
        for seed in range(5):
            text = caption(motion, seed, "heldout")
            ids = prior.tokenizer(text)["input_ids"]
            words = [w for w, i in zip(text.lower().split(), ids[1:-1]) if i == unk]
            assert set(words) <= {"that", "there", "where"}, (text, words)
            assert motion_from_caption(text) == motion


@pytest.mark.parametrize("damage", ["truncate", "corrupt_header", "missing"])
def test_damaged_weights_give_clear_error(tmp_path, damage):
    folder = _copy(tmp_path)
    path = os.path.join(folder, WEIGHT_FILES["unet"])
    if damage == "truncate":
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(size // 2)
    elif damage == "corrupt_header":
        with open(path, "r+b") as f:
            f.write(b"\xff" * 16)
    else:
        os.remove(path)
    error = PriorFilesMissingError if damage == "missing" else PriorLoadError
    with pytest.raises(error) as info:
        load_embedded_prior(folder)
    message = str(info.value)
    assert path in message and "train_embedded_prior" in message


def test_truncated_text_encoder_named(tmp_path):
    folder = _copy(tmp_path)
    path = os.path.join(folder, WEIGHT_FILES["text_encoder"])
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 100)
    with pytest.raises(PriorLoadError, match="text_encoder"):
        load_embedded_prior(folder)


def test_sampling_smoke(prior):
    clips = sample_clips(prior, ["a bird flies to the left", "the drawing is spinning clockwise"], steps=3,
                         guidance=5.0, seed=0)
    assert len(clips) == 2
    for clip in clips:
        assert clip.shape == (FRAMES, 3, SIZE, SIZE)
        assert torch.isfinite(clip).all() and clip.min() >= 0 and clip.max() <= 1
    again = sample_clips(prior, ["a bird flies to the left"], steps=3, guidance=5.0, seed=0)
    assert torch.allclose(again[0], clips[0], atol=1e-5)
