"""The embedded prior's training script (scripts/train_embedded_prior.py): its loss, its encoding, a tiny run."""
import json
import os

import torch
import train_embedded_prior as tr

from pipelines.embedded.data import make_clip
from pipelines.embedded.model import FRAMES, LATENT_CHANNELS, SIZE, STROKE_PX
from pipelines.embedded.prior import load_embedded_prior


def test_encode_batch_is_the_priors_own_encoding():
    """Training sees clips exactly as DiffusersVideoPrior.encode_frames shows them to the UNet in SDS."""
    prior = load_embedded_prior()
    clips = torch.stack([make_clip(5, i, frames=FRAMES, size=SIZE, stroke_px=STROKE_PX)["frames"] for i in range(3)])
    z = tr.encode_batch(clips)
    assert z.shape == (3, LATENT_CHANNELS, FRAMES, SIZE // 2, SIZE // 2)
    for i in range(3):
        assert torch.allclose(z[i:i + 1], prior.encode_frames(clips[i]), atol=1e-6)


def test_denoising_loss_weighs_frame_differences():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(4, 4, FRAMES, 6, 6, generator=g)
    pred = noise + 0.1 * torch.randn(noise.shape, generator=g)
    plain = ((pred - noise) ** 2).mean((1, 2, 3, 4))
    assert torch.allclose(tr.denoising_loss(pred, noise, 0.0), plain)
    # An error that is the same in every frame has no frame-difference part ...
    static = noise + torch.randn(4, 4, 1, 6, 6, generator=g).expand_as(noise)
    assert torch.allclose(tr.denoising_loss(static, noise, 3.0), tr.denoising_loss(static, noise, 0.0))
    # ... one that flips sign from frame to frame has the largest: (1 + 4 tdiff) times the MSE.
    sign = torch.tensor([(-1.0) ** k for k in range(FRAMES)]).view(1, 1, FRAMES, 1, 1)
    flicker = noise + 0.1 * sign
    expected = 0.01 * (1 + 3.0 * 4)
    assert torch.allclose(tr.denoising_loss(flicker, noise, 3.0), torch.full((4,), expected), rtol=1e-4)


def test_denoising_loss_minimiser_is_the_mean():
    """Positive-definite weighting: the best constant prediction of random targets is still their mean."""
    g = torch.Generator().manual_seed(1)
    targets = (torch.randn(256, 1, FRAMES, 2, 2, generator=g) + torch.linspace(-1, 1, FRAMES).view(1, 1, -1, 1, 1)).double()
    guess = torch.zeros(1, 1, FRAMES, 2, 2, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([guess], lr=1.0, max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        loss = tr.denoising_loss(guess.expand_as(targets), targets, 2.0).mean()
        loss.backward()
        return loss

    opt.step(closure)
    assert torch.allclose(guess.detach()[0], targets.mean(0), atol=1e-4)
    assert not torch.allclose(targets.mean(0), torch.zeros(1, dtype=torch.float64), atol=0.1)  # the mean is not the trivial 0


def test_tiny_training_run_writes_a_loadable_prior(tmp_path):
    out = str(tmp_path / "prior")
    torch_threads = torch.get_num_threads()
    try:
        tr.main(["--steps", "3", "--batch", "2", "--warmup", "1", "--log-every", "1", "--probe-every", "0",
                 "--max-minutes", "0", "--threads", str(torch_threads), "--out", out])
    finally:
        torch.set_num_threads(torch_threads)
    with open(os.path.join(out, "loss_curve.json")) as f:
        curve = json.load(f)
    assert curve["step"] == [1, 2, 3] and all(v > 0 for v in curve["loss"])
    with open(os.path.join(out, "training_config.json")) as f:
        cfg = json.load(f)
    assert cfg["steps_done"] == 3 and cfg["finished"] and cfg["tdiff"] == 1.0 and cfg["aux_ce"] == 1.0
    prior = load_embedded_prior(out)
    z = prior.encode_frames(torch.ones(FRAMES, 3, SIZE, SIZE))
    eps = prior.predict_noise(z, 500, prior.encode_prompt("a bird flies to the left"), 5.0)
    assert eps.shape == z.shape and torch.isfinite(eps).all()
