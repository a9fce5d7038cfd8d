"""Text-to-video sampling (pipelines/sampling.py) and the VP_SampleVideo node in the real ComfyUI runtime."""
import os

import pytest
import torch
from PIL import Image
from toy_prior import TargetPrior

from pipelines.embedded.prior import load_embedded_prior
from pipelines.priors.diffusers_prior import DiffusersVideoPrior
from pipelines.priors.tiny_models import build_tiny_t2v_folder
from pipelines.sampling import SamplingError, make_scheduler, sample_video, stack_embeds


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny random ModelScope-like prior (latent space, VAE factor 4, 32x32 frames)."""
    return DiffusersVideoPrior.from_folder(build_tiny_t2v_folder(str(tmp_path_factory.mktemp("t2v") / "tiny"), seed=0))


@pytest.fixture(scope="module")
def embedded():
    return load_embedded_prior()


def _sample(prior, prompt="a cat", **kw):
    opts = {"steps": 4, "eta": 0.0, "guidance": 7.5, "seed": 0, "num_frames": 4}
    opts.update(kw)
    return sample_video(prior, prior.encode_prompt(prompt, ""), **opts)


# --- any VideoPrior: DDIM on a schedule recovered from alphas_cumprod --------------------------------

def test_exact_denoiser_gives_its_target():
    """With the exact epsilon of a known clean clip, DDIM lands on that clip (eta 0 and eta 1)."""
    target = torch.rand(4, 3, 32, 32)
    prior = TargetPrior(target)  # no scheduler, no latent_shape: the generic paths
    embeds = prior.encode_prompt("x")
    want = prior.decode_latents(prior.target)
    for eta in (0.0, 1.0):
        out = sample_video(prior, embeds, steps=10, eta=eta, guidance=1.0, seed=3)
        assert out.shape == (4, 3, 32, 32)
        assert (out - want).abs().max() < 1e-4
    sched = make_scheduler(prior)
    assert sched.config.prediction_type == "epsilon"
    assert torch.allclose(sched.alphas_cumprod, prior.alphas_cumprod(), rtol=1e-4)


class VarianceExplodingTarget(TargetPrior):
    """The same prior written as ComfyUI writes eps models: x = x0 + sigma eps (not variance preserving)."""

    def sigma(self, t):
        abar = self._abar[int(t)]
        return ((1 - abar) / abar).sqrt()

    def add_noise(self, latents, noise, t):
        return latents + self.sigma(t) * noise

    def predict_noise(self, noisy, t, embeds, guidance_scale):
        self.calls += 1
        return guidance_scale * (noisy - self.target) / self.sigma(t)


def test_non_variance_preserving_prior_input_is_rescaled():
    prior = VarianceExplodingTarget(torch.rand(2, 3, 16, 16))
    out = sample_video(prior, prior.encode_prompt("x"), steps=6, guidance=1.0, seed=0)
    assert (out - prior.decode_latents(prior.target)).abs().max() < 1e-4


# --- the tiny ModelScope-like prior ------------------------------------------------------------------

def test_seed_eta_and_determinism(tiny):
    a = _sample(tiny, seed=1)
    assert a.shape == (4, 3, 32, 32) and a.dtype == torch.float32 and a.device.type == "cpu"
    assert torch.isfinite(a).all() and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, _sample(tiny, seed=1))
    assert (a - _sample(tiny, seed=2)).abs().max() > 1e-3
    noisy = _sample(tiny, seed=1, eta=1.0)
    assert (a - noisy).abs().max() > 1e-3
    assert torch.equal(noisy, _sample(tiny, seed=1, eta=1.0))  # the eta noise comes from the seeded generator


def test_guidance_one_runs_the_conditional_branch_only(tiny):
    batches = []
    hook = tiny.unet.register_forward_pre_hook(lambda _m, args: batches.append(args[0].shape[0]))
    try:
        plain = _sample(tiny, guidance=1.0, steps=3)
        assert batches == [1, 1, 1]
        batches.clear()
        guided = _sample(tiny, guidance=7.5, steps=3)
        assert batches == [2, 2, 2]
    finally:
        hook.remove()
    assert (plain - guided).abs().max() > 1e-4


def test_matches_diffusers_ddim_on_raw_v_prediction_output(tmp_path):
    """Sampling through predict_noise (epsilon) equals diffusers' own DDIM on a v-prediction model's raw output."""
    from diffusers import DDIMScheduler

    prior = DiffusersVideoPrior.from_folder(build_tiny_t2v_folder(str(tmp_path / "v"), seed=1,
                                                                  prediction_type="v_prediction"))
    embeds = prior.encode_prompt("a dog runs", "")
    ours = sample_video(prior, embeds, steps=5, guidance=1.0, seed=7, num_frames=3, eta=0.5)

    sched = DDIMScheduler.from_config(prior.scheduler.config)
    assert sched.config.prediction_type == "v_prediction"
    sched.set_timesteps(5)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(prior.latent_shape(3, prior.height, prior.width), generator=gen)
    with torch.no_grad():
        for t in sched.timesteps:
            v = prior.unet(x, t, encoder_hidden_states=embeds.cond).sample
            x = sched.step(v, t, x, eta=0.5, generator=gen).prev_sample
    ref = prior.decode_latents(x)
    assert (ours - ref).abs().max() < 1e-4


def test_frames_and_size_options(tiny):
    out = _sample(tiny, steps=2, num_frames=3, height=16, width=24)
    assert out.shape == (3, 3, 16, 24)
    default = _sample(tiny, steps=1, num_frames=0)
    assert default.shape == (tiny.num_frames, 3, tiny.height, tiny.width)
    with pytest.raises(SamplingError, match="multiple of 4"):
        _sample(tiny, steps=1, width=30)
    with pytest.raises(SamplingError, match="steps"):
        _sample(tiny, steps=0)


def test_callback_every_step_and_interrupt_within_one_step(tiny):
    seen = []
    calls = []
    predict = tiny.predict_noise

    def counting(*a, **k):
        calls.append(1)
        return predict(*a, **k)

    def callback(step, total, x0):
        seen.append((step, total, tuple(x0.shape)))

    tiny.predict_noise = counting
    try:
        _sample(tiny, steps=5, callback=callback)
        assert [s[:2] for s in seen] == [(i, 5) for i in range(1, 6)]
        assert seen[0][2] == tiny.latent_shape(4, tiny.height, tiny.width)
        assert len(calls) == 5

        calls.clear()
        stop = {"now": False}

        def check():
            if stop["now"]:
                raise Stop()

        def stop_after_two(step, total, x0):
            if step == 2:
                stop["now"] = True

        with pytest.raises(Stop):
            _sample(tiny, steps=50, callback=stop_after_two, check_interrupt=check)
        assert len(calls) == 2  # the step after the request never reached the model
    finally:
        del tiny.predict_noise


def test_pooled_text_timestep_conditioning_and_prompt_batches(tiny):
    """A UNet with pooled-text timestep_cond (as the newer embedded prior): extras are batched per prompt."""
    from diffusers import UNet3DConditionModel

    torch.manual_seed(0)
    unet = UNet3DConditionModel.from_config({**tiny.unet.config, "time_cond_proj_dim": 32})
    prior = DiffusersVideoPrior(unet, tiny.vae, tiny.text_encoder, tiny.tokenizer, tiny.scheduler, name="pooled",
                                timestep_cond="pooled_text")
    prompts = ["a cat", "the dog runs"]
    embeds = [prior.encode_prompt(p, "") for p in prompts]
    both = stack_embeds(embeds)
    assert both.extra["cond_pooled"].shape[0] == 2
    pair = sample_video(prior, both, steps=3, seed=5, num_frames=2, batch=2)
    assert pair.shape == (4, 3, 32, 32)
    alone = sample_video(prior, embeds[0], steps=3, seed=5, num_frames=2)
    assert (pair[:2] - alone).abs().max() < 1e-4  # the first clip's noise is the first slice of the batch's
    assert (pair[:2] - pair[2:]).abs().max() > 1e-4
    with pytest.raises(SamplingError, match="2 prompts"):
        sample_video(prior, both, steps=1, num_frames=2, batch=3)


# --- the embedded prior --------------------------------------------------------------------------------

def test_embedded_prior(embedded):
    embeds = embedded.encode_prompt("a bird flies to the left", "")
    out = sample_video(embedded, embeds, steps=3, guidance=6.0, seed=0)
    assert out.shape == (embedded.num_frames, 3, embedded.height, embedded.width) == (8, 3, 32, 32)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, sample_video(embedded, embeds, steps=3, guidance=6.0, seed=0))
    bigger = sample_video(embedded, embeds, steps=2, guidance=6.0, seed=0, num_frames=4, height=48, width=64)
    assert bigger.shape == (4, 3, 48, 64)


# --- VP_SampleVideo in the real ComfyUI runtime (in-process PromptExecutor) -----------------------------

def sample_prompt(prior="embedded", **sample):
    inputs = {"prior": ["1", 0], "prompt": "a bird flies to the left", "negative_prompt": "", "steps": 4, "eta": 0.0,
              "guidance": 6.0, "seed": 0, "frames": 0, "width": 0, "height": 0, "preview": True}
    inputs.update(sample)
    return {
        "1": {"class_type": "VP_LoadVideoPrior", "inputs": {"prior": prior, "dtype": "auto"}},
        "2": {"class_type": "VP_SampleVideo", "inputs": inputs},
        "3": {"class_type": "SaveAnimatedWEBP", "inputs": {
            "images": ["2", 0], "filename_prefix": "vp_test/sample", "fps": 8.0, "lossless": True, "quality": 80,
            "method": "default"}},
    }


class ProgressRecorder:
    """Stands in for the server's progress hook (main.py sets one; the in-process runtime has none)."""

    def __init__(self, on_update=None):
        self.updates = []
        self.on_update = on_update

    def __call__(self, value, total, preview, node_id=None):
        self.updates.append((value, total, preview, node_id))
        if self.on_update:
            self.on_update(value)

    def __enter__(self):
        import comfy.utils

        self._old = comfy.utils.PROGRESS_BAR_HOOK
        comfy.utils.set_progress_bar_global_hook(self)
        return self

    def __exit__(self, *exc):
        import comfy.utils

        comfy.utils.set_progress_bar_global_hook(self._old)


def test_node_samples_the_embedded_prior_with_previews(comfy_inproc):
    with ProgressRecorder() as rec:
        executor = comfy_inproc.run(sample_prompt(steps=4))
    assert executor.success, executor.status_messages
    ours = [u for u in rec.updates if u[3] == "2"]
    assert [u[:2] for u in ours] == [(i, 4) for i in range(1, 5)]
    kind, image, max_size = ours[-1][2]
    assert max_size == 512
    assert kind == "JPEG" and image.height >= 128 and image.width == 6 * image.height
    item = executor.history_result["outputs"]["3"]["images"][0]
    with Image.open(os.path.join(comfy_inproc.base_dir, "output", item["subfolder"], item["filename"])) as img:
        assert img.size == (32, 32) and img.n_frames == 8


def test_node_sizes_and_the_tiny_modelscope_folder(comfy_inproc):
    executor = comfy_inproc.run(sample_prompt(prior="text-to-video-ms-1.7b", steps=2, frames=3, width=40,
                                              height=24, preview=False, guidance=9.0))
    assert executor.success, executor.status_messages
    item = executor.history_result["outputs"]["3"]["images"][0]
    with Image.open(os.path.join(comfy_inproc.base_dir, "output", item["subfolder"], item["filename"])) as img:
        assert img.size == (40, 24) and img.n_frames == 3


def test_node_interrupted_within_one_step(comfy_inproc):
    import comfy.model_management as mm

    def interrupt(step):
        if step == 2:
            mm.interrupt_current_processing(True)

    with ProgressRecorder(interrupt) as rec:
        executor = comfy_inproc.run(sample_prompt(steps=200, preview=False))
    events = [m[0] for m in executor.status_messages]
    assert "execution_interrupted" in events, executor.status_messages
    assert max(u[0] for u in rec.updates if u[3] == "2") == 2
    assert not mm.processing_interrupted()


def test_node_errors(comfy_inproc):
    bad = sample_prompt(steps=0)
    valid, error, _outputs, node_errors = comfy_inproc.validate(bad)
    assert not valid and error["type"] == "prompt_outputs_failed_validation" and "2" in node_errors

    executor = comfy_inproc.run(sample_prompt(prior="text-to-video-ms-1.7b", steps=1, width=30))
    assert not executor.success
    errors = [m[1] for m in executor.status_messages if m[0] == "execution_error"]
    assert errors and errors[0]["node_type"] == "VP_SampleVideo"
    assert "multiple of 4" in errors[0]["exception_message"]
