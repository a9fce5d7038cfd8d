"""The official LVDM DDIM sampler (pipelines/lvdm/ddim.py) against the golden DynamiCrafter-512 trajectory, an
independent float64 reference of the official formulas, and the k-diffusion (ComfyUI sigma grid) form.

Golden: /work/shared/golden/ddim_dc512/trajectory.safetensors, the official `DDIMSampler.sample` (ddim.py and
ddim_multiplecond.py) on the tiny DynamiCrafter-512 UNet: v-prediction, zero terminal SNR, dynamic rescale,
S=5 uniform_trailing, eta 1, CFG 7.5, guidance_rescale 0.7, fs 24, given x_T and noise_i. Tolerance 5e-4 (README).
"""
import importlib
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file
from shared_data import require_shared, root_or_placeholder  # noqa: F401 (fixture)

from pipelines.lvdm.config import VARIANTS, tiny_config
from pipelines.lvdm.ddim import (
    SamplingInterrupted,
    ddim_sample,
    rescale_noise_cfg,
    sample_ddim_sigmas,
)
from pipelines.lvdm.schedule import (
    DDIMSchedule,
    TrainingSchedule,
    alphas_cumprod_from_sigmas,
    ddim_sigma_grid,
    denoised_scale_fn,
    timestep_from_sigma,
    training_sigmas,
)

GOLDEN = root_or_placeholder("golden")
TRAJ_DIR = os.path.join(GOLDEN, "ddim_dc512")
UNET_PREFIX = "model.diffusion_model."
ATOL = 5e-4

needs_golden = pytest.mark.usefixtures("require_shared")


def _gen_randn(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def traj():
    return load_file(os.path.join(TRAJ_DIR, "trajectory.safetensors"))


@pytest.fixture(scope="module")
def traj_config():
    with open(os.path.join(TRAJ_DIR, "config.json")) as f:
        return json.load(f)


def _dc512_schedule(steps=5, spacing="uniform_trailing", eta=1.0):
    return DDIMSchedule.make(TrainingSchedule.for_variant(VARIANTS["dynamicrafter_512"]), steps, spacing, eta)


def _run(model_fn, traj, multicond, branches=("c", "u", "ui")):
    """The golden call: CFG 7.5, rescale 0.7, noise_i injected; returns (x_0, {step: (x, pred_x0)})."""
    record = {}
    kw = {"cond_img_only": branches[2], "cfg_img": 2.5} if multicond else {}
    x0 = ddim_sample(model_fn, traj["x_T"], _dc512_schedule(), branches[0], branches[1], cfg_scale=7.5,
                     guidance_rescale=0.7, noise_fn=lambda i, x: traj[f"noise_{i}"],
                     callback=lambda i, x, p: record.__setitem__(i, (x, p)), **kw)
    return x0, record


# ---------------------------------------------------------------- golden, step 0 from the stored model outputs

@needs_golden
@pytest.mark.parametrize("multicond", [False, True])
def test_step0_from_stored_model_outputs(traj, multicond):
    """The sampler arithmetic alone (CFG, rescale, v -> eps/x0, dynamic rescale, noise) on the stored raw outputs."""
    outs = {"c": traj["step0_model_out_cond"], "u": traj["step0_model_out_uncond"],
            "ui": traj["mc_step0_model_out_uncond_img_nonetext"]}
    calls = []

    class Stop(Exception):
        pass

    def model_fn(x, t, cond):
        if calls and calls[-1][0] != int(t[0]):
            raise Stop
        calls.append((int(t[0]), cond))
        torch.testing.assert_close(x, traj["x_T"], rtol=0, atol=0)
        return outs[cond]

    record = {}
    kw = {"cond_img_only": "ui", "cfg_img": 2.5} if multicond else {}
    with pytest.raises(Stop):
        ddim_sample(model_fn, traj["x_T"], _dc512_schedule(), "c", "u", cfg_scale=7.5, guidance_rescale=0.7,
                    noise_fn=lambda i, x: traj[f"noise_{i}"], callback=lambda i, x, p: record.__setitem__(i, (x, p)),
                    **kw)
    assert [c for _, c in calls[:3 if multicond else 2]] == (["c", "u", "ui"] if multicond else ["c", "u"])
    assert calls[0][0] == 999
    prefix = "mc_" if multicond else ""
    torch.testing.assert_close(record[0][0], traj[f"{prefix}x_step0"], rtol=0, atol=1e-6)
    if not multicond:
        torch.testing.assert_close(record[0][1], traj["pred_x0_step0"], rtol=0, atol=1e-6)


# ---------------------------------------------------------------- golden, full trajectory with the UNet

@pytest.fixture(scope="module")
def unet_model_fn(traj, tmp_path_factory):
    unet_mod = pytest.importorskip("pipelines.lvdm.unet")
    weights = load_file(os.path.join(GOLDEN, "dc256_unet", "weights.safetensors"))
    # the dc512 fixture = the dc256 weights minus the learnable `alpha` gates, stored fp16, computed in fp32
    sd = {k[len(UNET_PREFIX):]: v.float() for k, v in weights.items() if not k.endswith(".alpha")}
    path = tmp_path_factory.mktemp("dc512") / "unet.safetensors"
    save_file(sd, str(path))
    unet = unet_mod.UNetModel(tiny_config("dynamicrafter_512")).eval()
    unet.load_state_dict(load_file(str(path)), strict=True)
    contexts = {"c": traj["context_cond"], "u": traj["context_uncond"],
                "ui": torch.cat([traj["context_uncond"][:, :77], traj["context_cond"][:, 77:]], dim=1)}

    def model_fn(x, t, cond):
        with torch.no_grad():
            return unet(torch.cat([x, traj["img_cat_cond"]], dim=1), t, context=contexts[cond], fs=traj["fs"])

    return model_fn


@needs_golden
def test_golden_trajectory(traj, unet_model_fn):
    x0, record = _run(unet_model_fn, traj, multicond=False)
    assert sorted(record) == [0, 1, 2, 3, 4]
    for i in range(4):
        torch.testing.assert_close(record[i][0], traj[f"x_step{i}"], rtol=0, atol=ATOL, msg=f"x_step{i}")
    for i in range(5):
        torch.testing.assert_close(record[i][1], traj[f"pred_x0_step{i}"], rtol=0, atol=ATOL, msg=f"pred_x0_step{i}")
    torch.testing.assert_close(x0, traj["x_0"], rtol=0, atol=ATOL)
    torch.testing.assert_close(record[4][0], x0, rtol=0, atol=0)
    # the model outputs at step 0 (also checks the test's cond/uncond construction)
    t = torch.tensor([999])
    torch.testing.assert_close(unet_model_fn(traj["x_T"], t, "c"), traj["step0_model_out_cond"], rtol=0, atol=1e-4)
    torch.testing.assert_close(unet_model_fn(traj["x_T"], t, "u"), traj["step0_model_out_uncond"], rtol=0, atol=1e-4)


@needs_golden
def test_golden_multicond_trajectory(traj, unet_model_fn):
    x0, record = _run(unet_model_fn, traj, multicond=True)
    t = torch.tensor([999])
    torch.testing.assert_close(unet_model_fn(traj["x_T"], t, "ui"), traj["mc_step0_model_out_uncond_img_nonetext"],
                               rtol=0, atol=1e-4)
    for i in range(4):
        torch.testing.assert_close(record[i][0], traj[f"mc_x_step{i}"], rtol=0, atol=ATOL, msg=f"mc_x_step{i}")
    torch.testing.assert_close(x0, traj["mc_x_0"], rtol=0, atol=ATOL)
    # cfg_img != cfg really changes the result (the fixture's reason for 2.5)
    assert (traj["mc_x_0"] - traj["x_0"]).abs().max() > 0.1


@needs_golden
def test_contexts_from_the_seeds_through_the_resampler(traj, traj_config):
    """context_cond/uncond = cat(text, Resampler(CLIP tokens)) rebuilt from config.json's seeds."""
    try:
        resampler_mod = importlib.import_module("pipelines.lvdm.resampler")
    except ModuleNotFoundError as e:
        if e.name != "pipelines.lvdm.resampler":
            raise
        pytest.skip("pipelines/lvdm/resampler.py is not on this branch yet")
    params = traj_config["model_config"]["params"]["image_proj_stage_config"]["params"]
    resampler = resampler_mod.Resampler(**params).eval()
    w = load_file(os.path.join(GOLDEN, "dc_resampler", "weights.safetensors"))
    resampler.load_state_dict({k[len("image_proj_model."):]: v.float() for k, v in w.items()}, strict=True)
    with torch.no_grad():
        img = resampler(_gen_randn((1, 257, 64), 53))
        img_zero = resampler(_gen_randn((1, 257, 64), 54))
    torch.testing.assert_close(torch.cat([_gen_randn((1, 77, 64), 51), img], 1), traj["context_cond"],
                               rtol=0, atol=1e-4)
    torch.testing.assert_close(torch.cat([_gen_randn((1, 77, 64), 52), img_zero], 1), traj["context_uncond"],
                               rtol=0, atol=1e-4)
    torch.testing.assert_close(_gen_randn((1, 4, 16, 8, 8), 55)[:, :, :1].repeat(1, 1, 16, 1, 1),
                               traj["img_cat_cond"], rtol=0, atol=0)


# ---------------------------------------------------------------- independent float64 reference

def _reference_ddim(model_fn, x_T, train, steps, spacing, eta, cfg, rescale, cfg_img, multicond, noises):
    """Straight from the official p_sample_ddim formulas, float64, own bookkeeping (a test oracle)."""
    d = torch.float64
    ac = train.alphas_cumprod.to(d)
    ts = DDIMSchedule.make(train, steps, spacing, eta).timesteps.tolist()
    scale_arr = train.scale_arr.to(d) if train.scale_arr is not None else None
    x = x_T.to(d)
    xs = []
    for step, t in enumerate(reversed(ts)):
        k = len(ts) - 1 - step
        t_prev = ts[k - 1] if k > 0 else None
        a = ac[t]
        a_prev = ac[t_prev] if t_prev is not None else ac[0]
        sig = eta * torch.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
        tt = torch.tensor([t])
        oc = model_fn(x, tt, "c").to(d)
        if cfg == 1.0:
            out = oc
        else:
            ou = model_fn(x, tt, "u").to(d)
            if multicond:
                oi = model_fn(x, tt, "ui").to(d)
                out = ou + cfg_img * (oi - ou) + cfg * (oc - oi)
            else:
                out = ou + cfg * (oc - ou)
            if rescale > 0:
                per_sample = list(range(1, out.ndim))  # torch.std (unbiased) per batch element
                ratio = oc.std(dim=per_sample, keepdim=True) / out.std(dim=per_sample, keepdim=True)
                out = rescale * out * ratio + (1 - rescale) * out
        if train.parameterization == "v":
            eps = a.sqrt() * out + (1 - a).sqrt() * x
            x0 = a.sqrt() * x - (1 - a).sqrt() * out
        else:
            eps = out
            x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        coef = a_prev.sqrt()
        if train.scale_kind == "dynamicrafter":
            s_prev = scale_arr[t_prev] if t_prev is not None else scale_arr[t]
            x0 = x0 * s_prev / scale_arr[t]
        elif train.scale_kind == "videocrafter":
            s_prev = scale_arr[t_prev] if t_prev is not None else scale_arr[0]
            x0 = x0 / scale_arr[t]
            coef = coef * s_prev
        # zero terminal SNR, eta 1, first step: 1 - a_prev - sig^2 is 0 up to rounding
        x = coef * x0 + (1 - a_prev - sig ** 2).clamp(min=0).sqrt() * eps + sig * noises[step].to(d)
        xs.append((x, x0))
    return xs


class LinearFakeModel:
    """out = w(t) * x + b_cond: a smooth stand-in for the UNet with branch-dependent outputs."""

    def __init__(self, shape, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.bias = {k: 0.3 * torch.randn(shape, generator=g) for k in ("c", "u", "ui")}
        self.calls = []

    def __call__(self, x, t, cond):
        self.calls.append((int(t[0]), cond))
        w = 0.5 + 0.3 * t.to(x.dtype).view(-1, *([1] * (x.ndim - 1))) / 1000.0
        return w * x + self.bias[cond].to(x.dtype)


REF_CASES = [
    # variant, steps, spacing, eta, cfg, rescale, cfg_img, multicond
    ("dynamicrafter_512", 5, "uniform_trailing", 1.0, 7.5, 0.7, 2.5, True),
    ("dynamicrafter_512", 8, "uniform", 0.0, 7.5, 0.7, None, False),
    ("dynamicrafter_256", 7, "uniform", 1.0, 7.5, 0.0, None, False),   # 1000 // 7: 8 timesteps (official)
    ("dynamicrafter_256", 4, "uniform_trailing", 0.5, 1.0, 0.0, None, False),
    ("videocrafter2_512", 10, "uniform", 1.0, 12.0, 0.0, None, False),
    ("videocrafter2_512", 5, "uniform", 0.0, 3.0, 0.5, 4.0, True),
]


@pytest.mark.parametrize("case", REF_CASES, ids=[f"{c[0]}-{c[2]}-eta{c[3]}-cfg{c[4]}" for c in REF_CASES])
def test_matches_float64_reference(case):
    variant, steps, spacing, eta, cfg, rescale, cfg_img, multicond = case
    train = TrainingSchedule.for_variant(VARIANTS[variant])
    shape = (2, 4, 3, 4, 4)
    model = LinearFakeModel(shape)
    x_T = _gen_randn(shape, 1)
    n = len(DDIMSchedule.make(train, steps, spacing, eta))
    noises = [_gen_randn(shape, 100 + i) for i in range(n)]
    ref = _reference_ddim(model, x_T, train, steps, spacing, eta, cfg, rescale, cfg_img or cfg, multicond, noises)
    model.calls.clear()
    record = {}
    x0 = ddim_sample(model, x_T, DDIMSchedule.make(train, steps, spacing, eta), "c", "u", cfg_scale=cfg,
                     guidance_rescale=rescale, cond_img_only="ui" if multicond else None, cfg_img=cfg_img,
                     noise_fn=lambda i, x: noises[i], callback=lambda i, x, p: record.__setitem__(i, (x, p)))
    n_branches = 1 if cfg == 1.0 else (3 if multicond else 2)
    assert len(model.calls) == n * n_branches
    assert sorted(record) == list(range(n))
    for i, (rx, rp) in enumerate(ref):
        # float32 vs float64: the eps cases with strong CFG reach |pred_x0| ~ 200, hence the rtol
        torch.testing.assert_close(record[i][0].double(), rx, rtol=1e-6, atol=2e-5, msg=f"x step {i}")
        torch.testing.assert_close(record[i][1].double(), rp, rtol=1e-6, atol=2e-5, msg=f"pred_x0 step {i}")
    torch.testing.assert_close(x0.double(), ref[-1][0], rtol=1e-6, atol=2e-5)
    assert torch.isfinite(x0).all()


def test_zero_snr_first_step_stays_finite():
    """DynamiCrafter 512, 25 trailing steps, eta 1: the official float32 sqrt(1 - a_prev - sigma^2) is sqrt(-6e-8)."""
    sched = _dc512_schedule(25, "uniform_trailing", 1.0)
    a_prev = torch.full((1,), float(sched.alphas_prev[-1]))
    sigma = torch.full((1,), float(sched.sigmas[-1]))
    assert (1.0 - a_prev - sigma ** 2).item() < 0  # the official expression would give NaN here
    shape = (1, 4, 2, 4, 4)
    record = {}
    x0 = ddim_sample(LinearFakeModel(shape), _gen_randn(shape, 1), sched, "c",
                     noise_fn=lambda i, x: _gen_randn(shape, 100 + i),
                     callback=lambda i, x, p: record.__setitem__(i, x))
    assert torch.isfinite(x0).all() and torch.isfinite(record[0]).all()


def test_reference_distinguishes_the_conventions():
    """The oracle's cases are not degenerate: scale conventions, eta and rescale each change the result."""
    shape = (1, 4, 2, 4, 4)
    x_T = _gen_randn(shape, 1)
    noises = [_gen_randn(shape, 100 + i) for i in range(5)]

    def run(train, eta=1.0, rescale=0.0):
        return ddim_sample(LinearFakeModel(shape), x_T, DDIMSchedule.make(train, 5, "uniform", eta), "c", "u",
                           cfg_scale=7.5, guidance_rescale=rescale, noise_fn=lambda i, x: noises[i])

    plain = run(TrainingSchedule.make())
    dc = run(TrainingSchedule.make(scale_kind="dynamicrafter"))
    vc = run(TrainingSchedule.make(scale_kind="videocrafter"))
    for a, b in ((plain, dc), (plain, vc), (dc, vc), (plain, run(TrainingSchedule.make(), eta=0.0)),
                 (plain, run(TrainingSchedule.make(), rescale=0.7))):
        assert (a - b).abs().max() > 1e-3


def test_rescale_noise_cfg_uses_unbiased_std():
    g = torch.Generator().manual_seed(3)
    cond, guided = torch.randn(2, 3, 4, generator=g), 3 * torch.randn(2, 3, 4, generator=g)
    out = rescale_noise_cfg(guided, cond, 1.0)
    torch.testing.assert_close(out.std(dim=(1, 2)), cond.std(dim=(1, 2)))
    n = cond[0].numel()
    biased = cond[0].var(unbiased=False).sqrt()
    assert abs(out[0].std(unbiased=True) - biased * (n / (n - 1)) ** 0.5) < 1e-5
    torch.testing.assert_close(rescale_noise_cfg(guided, cond, 0.0), guided)


def test_default_noise_is_the_official_random_stream():
    """x_T None + a seeded generator = randn(shape) then one randn(x.shape) per step (even at eta 0)."""
    train = TrainingSchedule.make()
    sched = DDIMSchedule.make(train, 4, "uniform", 1.0)
    shape = (1, 4, 2, 4, 4)
    model = LinearFakeModel(shape)
    a = ddim_sample(model, None, sched, "c", shape=shape, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    x_T = torch.randn(shape, generator=g)
    noises = [torch.randn(shape, generator=g) for _ in range(4)]
    b = ddim_sample(model, x_T, sched, "c", noise_fn=lambda i, x: noises[i])
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    # eta 0 is deterministic in the noise
    s0 = DDIMSchedule.make(train, 4, "uniform", 0.0)
    c = ddim_sample(model, x_T, s0, "c", noise_fn=lambda i, x: noises[i])
    d = ddim_sample(model, x_T, s0, "c", noise_fn=lambda i, x: torch.zeros_like(x))
    torch.testing.assert_close(c, d, rtol=0, atol=0)


def test_interrupt_hook_and_callback():
    sched = DDIMSchedule.make(TrainingSchedule.make(), 5, "uniform", 0.0)
    shape = (1, 4, 2, 4, 4)
    model = LinearFakeModel(shape)
    seen = []
    with pytest.raises(SamplingInterrupted):
        ddim_sample(model, _gen_randn(shape, 1), sched, "c", "u", cfg_scale=2.0,
                    callback=lambda i, x, p: seen.append(i), interrupt=lambda: len(seen) >= 2)
    assert seen == [0, 1] and len(model.calls) == 4

    class Boom(Exception):
        pass

    def raising():
        raise Boom

    with pytest.raises(Boom):
        ddim_sample(model, _gen_randn(shape, 1), sched, "c", interrupt=raising)


# ---------------------------------------------------------------- k-diffusion form (ComfyUI sigma grid)

def _denoiser(model, train, cond="c"):
    """A DDPM-space model behind ComfyUI's k-diffusion interface: x_k = x_ddpm / sqrt(a), returns x0."""
    def denoise(x, sigma, **extra):
        s = float(sigma[0])
        a = alphas_cumprod_from_sigmas(torch.tensor(s)).float()
        x_ddpm = x * a.sqrt()
        out = model(x_ddpm, torch.full((x.shape[0],), timestep_from_sigma(train, s)), cond)
        if train.parameterization == "v":
            return a.sqrt() * x_ddpm - (1 - a).sqrt() * out
        return x - s * out
    return denoise


KDIFF_CASES = [  # variant, spacing, eta, atol
    ("dynamicrafter_256", "uniform", 0.0, 5e-5), ("dynamicrafter_256", "uniform_trailing", 1.0, 5e-5),
    ("dynamicrafter_512", "uniform", 0.0, 5e-5), ("dynamicrafter_512", "uniform", 1.0, 5e-5),
    # zero terminal SNR: the first sigma is ComfyUI's cap (alphas_cumprod 4.9e-8 instead of 0), not infinity
    ("dynamicrafter_512", "uniform_trailing", 1.0, 5e-4),  # measured 8.6e-5
    ("videocrafter2_512", "uniform", 0.0, 5e-5), ("videocrafter2_512", "uniform", 1.0, 5e-5)]


@pytest.mark.parametrize("case", KDIFF_CASES, ids=["-".join(map(str, c[:3])) for c in KDIFF_CASES])
def test_sigma_grid_sampler_matches_discrete_ddim(case):
    """x_k = x_ddpm / sqrt(a): the k-diffusion update on sigma(ddim alphas) equals the official discrete one,
    latent-scale correction (DynamiCrafter / VideoCrafter conventions) included via `denoised_scale_fn`."""
    variant, spacing, eta, atol = case
    train = TrainingSchedule.for_variant(VARIANTS[variant])
    sched = DDIMSchedule.make(train, 8, spacing, eta)
    steps = len(sched)
    sigmas = ddim_sigma_grid(sched, final="official")
    assert torch.all(sigmas[:-1] > sigmas[1:]) and torch.isfinite(sigmas).all()
    shape = (2, 4, 3, 4, 4)
    model = LinearFakeModel(shape)
    x_T = _gen_randn(shape, 1)
    noises = [_gen_randn(shape, 100 + i) for i in range(steps)]
    ref = ddim_sample(model, x_T, sched, "c", noise_fn=lambda i, x: noises[i])

    counter = iter(range(steps))
    seen = []
    a_first = alphas_cumprod_from_sigmas(sigmas[:1]).float()
    x_k = sample_ddim_sigmas(_denoiser(model, train), x_T / a_first.sqrt(), sigmas, extra_args={},
                             callback=seen.append, eta=eta, noise_sampler=lambda s, sn: noises[next(counter)],
                             denoised_scale=denoised_scale_fn(train))
    out = x_k * sched.alphas_prev[0].sqrt().float()
    assert [c["i"] for c in seen] == list(range(steps))
    torch.testing.assert_close(out, ref, rtol=0, atol=atol)
    # eta = 0 uses no noise; eta > 0 one draw per step
    assert next(counter, None) == (0 if eta == 0 else None)


def test_denoised_scale_conventions():
    dc = TrainingSchedule.for_variant(VARIANTS["dynamicrafter_512"])
    vc = TrainingSchedule.for_variant(VARIANTS["videocrafter2_512"])
    assert denoised_scale_fn(TrainingSchedule.make()) is None
    for train in (dc, vc):
        sig = training_sigmas(train)
        assert [timestep_from_sigma(train, sig[t]) for t in (0, 1, 19, 500, 998, 999)] == [0, 1, 19, 500, 998, 999]
        f = denoised_scale_fn(train)
        s = train.scale_arr
        assert f(sig[399], sig[199]) == pytest.approx(float(s[199] / s[399]))
        assert f(sig[999], sig[799]) == 1.0     # both on the flat tail (base scale)
    # the last step: DynamiCrafter ratio 1, VideoCrafter 1 / scale[t] (prev = scale_arr[0] = 1)
    for last in (0.0, float(training_sigmas(dc)[0])):
        assert denoised_scale_fn(dc)(training_sigmas(dc)[19], last) == 1.0
        assert denoised_scale_fn(vc)(training_sigmas(vc)[19], last) == pytest.approx(1.0 / float(vc.scale_arr[19]))
    grid = ddim_sigma_grid(DDIMSchedule.make(dc, 5, "uniform_trailing"), final="zero")
    assert grid[-1].item() == 0.0 and grid[0].item() == pytest.approx((1 / 4.8973451890853435e-08 - 1) ** 0.5)


def test_sigma_grid_sampler_last_sigma_zero_returns_denoised():
    calls = []

    def denoise(x, sigma, **extra):
        calls.append(float(sigma[0]))
        return 0.5 * x

    x = _gen_randn((1, 4, 2, 4, 4), 3)
    out = sample_ddim_sigmas(denoise, x, torch.tensor([2.0, 1.0, 0.0]), eta=0.0)
    # eta 0: x1 = x0 + 1.0 * (x - x0) / 2  with x0 = x/2 -> 0.75 x;  then x0 = 0.375 x
    torch.testing.assert_close(out, 0.375 * x)
    assert calls == [2.0, 1.0]
    # seeded default noise sampler: reproducible, and eta changes the result
    a = sample_ddim_sigmas(denoise, x, torch.tensor([2.0, 1.0, 0.5, 0.0]), extra_args={"seed": 5}, eta=1.0)
    b = sample_ddim_sigmas(denoise, x, torch.tensor([2.0, 1.0, 0.5, 0.0]), extra_args={"seed": 5}, eta=1.0)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - sample_ddim_sigmas(denoise, x, torch.tensor([2.0, 1.0, 0.5, 0.0]), eta=0.0)).abs().max() > 1e-2


_COMFY_SCRIPT = r"""
import sys, torch
sys.path.insert(0, sys.argv[1])
from comfy.cli_args import args
args.cpu = True
import comfy.k_diffusion.sampling as ks
from pipelines.lvdm.ddim import sample_ddim_sigmas

class Inner: model_sampling = object()
class Wrap:
    inner_model = type("I", (), {"inner_model": Inner()})()
    def __call__(self, x, sigma, **kw):
        return 0.6 * x + 0.1 * sigma.view(-1, 1, 1, 1, 1)
x = torch.randn((1, 4, 2, 4, 4), generator=torch.Generator().manual_seed(0)) * 14.6
sigmas = torch.tensor([14.6, 7.0, 3.1, 1.2, 0.4, 0.03, 0.0])
worst = 0.0
for eta in (0.0, 0.5, 1.0):
    ours = sample_ddim_sigmas(Wrap(), x, sigmas, extra_args={"seed": 3}, eta=eta)
    theirs = ks.sample_euler_ancestral(Wrap(), x, sigmas, extra_args={"seed": 3}, eta=eta, disable=True)
    worst = max(worst, (ours - theirs).abs().max().item())
print(worst)
"""


def test_sigma_grid_sampler_equals_comfy_euler_ancestral():
    """DDIM with eta on a sigma grid is k-diffusion's Euler ancestral step: cross-check in ComfyUI's own code."""
    comfy = os.environ.get("COMFYUI_PATH") or os.environ.get("VP_COMFYUI")
    if not comfy or not os.path.isfile(os.path.join(comfy, "comfy", "k_diffusion", "sampling.py")):
        pytest.skip("no ComfyUI runtime (COMFYUI_PATH / VP_COMFYUI)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", _COMFY_SCRIPT, comfy], check=False, env=env, cwd=root,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert float(res.stdout.strip().splitlines()[-1]) < 1e-5
