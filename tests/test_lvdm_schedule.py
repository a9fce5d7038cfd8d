"""LVDM training and DDIM schedules (pipelines/lvdm/schedule.py) against the golden fixtures of the official code.

/work/shared/golden/schedules: buffers of the official DynamiCrafter 256/512 and VideoCrafter2 models after
`__init__` (float32) and `DDIMSampler.make_schedule(S, spacing, ddim_eta=1.0)` attributes (float64/int64).
Every stored tensor is compared at rtol 1e-6 (the README's schedule tolerance).
"""
import json
import os

import pytest
import torch
from safetensors.torch import load_file
from shared_data import require_shared, root_or_placeholder  # noqa: F401 (fixture)

from pipelines.lvdm.config import VARIANTS
from pipelines.lvdm.schedule import (
    DDIMSchedule,
    TrainingSchedule,
    alphas_cumprod_from_sigmas,
    ddim_timesteps,
    make_scale_arr,
    sigmas_from_alphas_cumprod,
)

GOLDEN = root_or_placeholder("golden")
SCHED_DIR = os.path.join(GOLDEN, "schedules")
SAMPLER_ATTRS = {"ddim_timesteps": "timesteps", "ddim_alphas": "alphas", "ddim_alphas_prev": "alphas_prev",
                 "ddim_sigmas": "sigmas", "ddim_sqrt_one_minus_alphas": "sqrt_one_minus_alphas",
                 "ddim_scale_arr": "scale", "ddim_scale_arr_prev": "scale_prev"}
MODEL_VARIANT = {"dc256": "dynamicrafter_256", "dc512": "dynamicrafter_512", "vc2": "videocrafter2_512"}

pytestmark = pytest.mark.usefixtures("require_shared")


@pytest.fixture(scope="module")
def golden():
    out = {}
    for name in ("dynamicrafter.safetensors", "videocrafter2.safetensors"):
        out.update(load_file(os.path.join(SCHED_DIR, name)))
    return out


@pytest.fixture(scope="module")
def golden_config():
    with open(os.path.join(SCHED_DIR, "config.json")) as f:
        return json.load(f)


def _ours(key):
    model, rest = key.split(".", 1)
    train = TrainingSchedule.for_variant(VARIANTS[MODEL_VARIANT[model]])
    if "." not in rest:
        return getattr(train, rest)
    sched, attr = rest.split(".")
    steps, spacing = sched[len("ddim"):].split("_", 1)
    return getattr(DDIMSchedule.make(train, int(steps), spacing, eta=1.0), SAMPLER_ATTRS[attr])


def test_every_stored_tensor_matches(golden):
    assert len(golden) > 60
    checked = 0
    for key, ref in sorted(golden.items()):
        ours = _ours(key)
        assert ours is not None, key
        assert ours.dtype == ref.dtype, (key, ours.dtype, ref.dtype)
        assert ours.shape == ref.shape, (key, ours.shape, ref.shape)
        if ref.dtype == torch.int64:
            assert torch.equal(ours, ref), key
        else:
            torch.testing.assert_close(ours, ref, rtol=1e-6, atol=0, msg=key)
        checked += 1
    assert checked == len(golden)


def test_buffers_and_timesteps_are_bit_exact(golden):
    """Everything is computed at the official precision: the match is exact, not only within rtol.

    ddim_sigmas is a float64 expression whose last bit depends on the CPU's float32 reciprocal: 1e-15.
    """
    for key, ref in golden.items():
        if key.endswith(".ddim_sigmas"):
            torch.testing.assert_close(_ours(key), ref, rtol=1e-15, atol=0, msg=key)
        else:
            assert torch.equal(_ours(key), ref), key


def test_config_first_last_timesteps(golden_config):
    for model, spec in golden_config["models"].items():
        for sched, info in spec["ddim"].items():
            steps, spacing = sched[len("ddim"):].split("_", 1)
            ts = ddim_timesteps(int(steps), spacing).tolist()
            assert ts[:3] == info["first_timesteps"] and ts[-3:] == info["last_timesteps"], (model, sched)


def test_official_quirks():
    assert ddim_timesteps(50, "uniform").tolist()[:3] == [1, 21, 41]
    assert ddim_timesteps(50, "uniform").tolist()[-1] == 981
    assert ddim_timesteps(5, "uniform_trailing").tolist() == [199, 399, 599, 799, 999]
    # the official 'uniform' keeps range()'s length when steps does not divide 1000 (assert commented out there)
    assert len(ddim_timesteps(30, "uniform")) == 31  # 1, 34, ..., 991
    zsnr = TrainingSchedule.make(zero_terminal_snr=True, parameterization="v")
    plain = TrainingSchedule.make()
    assert zsnr.alphas_cumprod[-1].item() == 0.0 and plain.alphas_cumprod[-1].item() > 0.0
    assert zsnr.alphas_cumprod[0].item() == pytest.approx(plain.alphas_cumprod[0].item(), rel=1e-6)
    sa = make_scale_arr(0.7)
    assert sa.shape == (1400,) and sa[0].item() == 1.0 and sa[399].item() == pytest.approx(0.7)
    assert torch.all(sa[399:] == sa[-1])
    # alphas_prev[0] is alphas_cumprod[0], not 1; DC's scale_prev[0] = scale[0], VC's = scale_arr[0] = 1
    dc = DDIMSchedule.make(TrainingSchedule.for_variant(VARIANTS["dynamicrafter_512"]), 25, "uniform")
    vc = DDIMSchedule.make(TrainingSchedule.for_variant(VARIANTS["videocrafter2_512"]), 25, "uniform")
    assert dc.alphas_prev[0].item() == plain.alphas_cumprod[0].item()
    assert dc.scale_prev[0].item() == dc.scale[0].item() and vc.scale_prev[0].item() == 1.0
    assert dc.scale[0].item() < 1.0
    # eta scales the sigmas linearly, eta = 0 is deterministic DDIM
    train = TrainingSchedule.make()
    assert torch.all(DDIMSchedule.make(train, 10, "uniform", eta=0.0).sigmas == 0)
    torch.testing.assert_close(DDIMSchedule.make(train, 10, "uniform", eta=0.5).sigmas * 2,
                               DDIMSchedule.make(train, 10, "uniform", eta=1.0).sigmas)
    with pytest.raises(ValueError):
        ddim_timesteps(10, "quadratic")


def test_sigma_conversion_roundtrip():
    ac = TrainingSchedule.make().alphas_cumprod
    torch.testing.assert_close(alphas_cumprod_from_sigmas(sigmas_from_alphas_cumprod(ac)), ac.double(),
                               rtol=1e-12, atol=0)
