"""LiveSketch optimisation loop (pipelines/livesketch.py) on an analytic prior."""
import math

import pytest
import torch

from pipelines.livesketch import (AnimateConfig, Interrupted, MotionModelConfig, SDSConfig, animate_sketch,
                                  apply_augmentation, sample_augmentation)
from pipelines.priors.base import sds_gradient
from pipelines.raster import rasterize
from pipelines.sketch import Sketch, make_style
from toy_prior import TargetPrior


def star_sketch(n_paths=4, size=64):
    pts, gen = [], torch.Generator().manual_seed(0)
    for i in range(n_paths):
        a = 2 * math.pi * i / n_paths
        p0 = torch.tensor([size / 2, size / 2])
        p3 = p0 + 0.3 * size * torch.tensor([math.cos(a), math.sin(a)])
        pts += [p0, p0 + (p3 - p0) / 3 + torch.randn(2, generator=gen), p0 + 2 * (p3 - p0) / 3, p3]
    return Sketch(torch.stack(pts), make_style([1] * n_paths, [False] * n_paths, stroke_width=3.0), size, size)


def shifted_target(sketch, frames, dx):
    pts = (sketch.points + torch.tensor([dx, 0.0])).expand(frames, -1, -1)
    return rasterize(pts, sketch.style, (sketch.width, sketch.height)).permute(0, 3, 1, 2)


def small_cfgs(frames=4, iterations=3, **kw):
    model = MotionModelConfig(num_frames=frames, hidden=16)
    sds = SDSConfig(prompt="move right", guidance_local=1.0, guidance_global=1.0, augment=False)
    cfg = AnimateConfig(iterations=iterations, seed=7, render_size=64, **kw)
    return model, sds, cfg


def test_sds_gradient_is_weighted_eps_difference():
    sk = star_sketch()
    prior = TargetPrior(shifted_target(sk, 4, 5.0))
    frames = rasterize(sk.points.expand(4, -1, -1), sk.style, (64, 64)).permute(0, 3, 1, 2)
    latents = prior.encode_frames(frames)
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(1))
    t, g = 400, 7.5
    got = sds_gradient(prior, latents, prior.encode_prompt("x"), g, t, noise)
    abar = prior.alphas_cumprod()[t]
    noisy = abar.sqrt() * latents + (1 - abar).sqrt() * noise
    eps_hat = g * (noisy - abar.sqrt() * prior.target) / (1 - abar).sqrt()
    want = (1 - abar) * (eps_hat - noise)
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("fused", [False, True])
def test_loop_runs_and_counts_prior_calls(fused):
    sk = star_sketch()
    prior = TargetPrior(shifted_target(sk, 4, 5.0))
    model, sds, cfg = small_cfgs(iterations=3, fused=fused)
    res = animate_sketch(sk, prior, prior.encode_prompt("x"), model, sds, cfg)
    assert prior.calls == (3 if fused else 6)
    assert res.times.passes == prior.calls and res.times.iterations == 3
    assert res.animation.points.shape == (4, sk.num_points, 2)
    assert res.frames.shape == (4, 64, 64, 3)
    assert torch.isfinite(res.animation.points).all()


def test_every_parameter_group_learns():
    sk = star_sketch()
    prior = TargetPrior(shifted_target(sk, 4, 5.0))
    model_cfg, sds, cfg = small_cfgs(iterations=1)
    torch.manual_seed(cfg.seed)
    before = {k: v.clone() for k, v in model_cfg.build(sk.num_points).state_dict().items()}
    captured = {}

    import pipelines.livesketch as ls
    orig_build = MotionModelConfig.build

    def spy(self, n):
        m = orig_build(self, n)
        captured["model"] = m
        return m

    MotionModelConfig.build = spy
    try:
        ls.animate_sketch(sk, prior, prior.encode_prompt("x"), model_cfg, sds, cfg)
    finally:
        MotionModelConfig.build = orig_build
    after = captured["model"].state_dict()
    groups = captured["model"].parameter_groups()
    names = {id(p): n for n, p in captured["model"].named_parameters()}
    for group in ("local", "global"):
        changed = [names[id(p)] for p in groups[group] if not torch.equal(before[names[id(p)]], after[names[id(p)]])]
        assert len(changed) == len(groups[group]), f"{group}: only {len(changed)}/{len(groups[group])} changed"


def test_deterministic_for_a_seed():
    sk = star_sketch()
    outs = []
    for _ in range(2):
        prior = TargetPrior(shifted_target(sk, 4, 5.0))
        model, sds, cfg = small_cfgs(iterations=2)
        sds.augment = True
        outs.append(animate_sketch(sk, prior, prior.encode_prompt("x"), model, sds, cfg).animation.points)
    assert torch.equal(outs[0], outs[1])


def test_distillation_follows_the_prior():
    """With a prior whose clean clip is the sketch moved 6 px right, the animation moves right."""
    sk = star_sketch()
    prior = TargetPrior(shifted_target(sk, 4, 6.0))
    model = MotionModelConfig(num_frames=4, hidden=32, use_local=False, global_lr=2e-3)
    sds = SDSConfig(guidance_local=1.0, guidance_global=1.0, augment=False)
    start = animate_sketch(sk, prior, prior.encode_prompt("x"), model, sds,
                           AnimateConfig(iterations=0, seed=3, render_size=64)).animation.points
    res = animate_sketch(sk, prior, prior.encode_prompt("x"), model, sds,
                         AnimateConfig(iterations=150, seed=3, render_size=64))
    before = (start - sk.points).mean(dim=(0, 1))
    after = (res.animation.points - sk.points).mean(dim=(0, 1))
    assert after[0] - before[0] > 2.0, f"expected a rightward shift: {before.tolist()} -> {after.tolist()}"
    assert abs(after[0] - 6.0) < abs(before[0] - 6.0)


def test_augmentation_same_for_all_frames_and_differentiable():
    gen = torch.Generator().manual_seed(0)
    params = sample_augmentation(gen, 64, 0.5, (0.4, 1.0))
    frames = torch.rand(1, 3, 64, 64).repeat(3, 1, 1, 1).requires_grad_(True)
    out = apply_augmentation(frames, params, 64)
    assert out.shape == (3, 3, 64, 64)
    assert torch.allclose(out[0], out[1]) and torch.allclose(out[1], out[2])
    out.sum().backward()
    assert frames.grad is not None and frames.grad.abs().sum() > 0
    top, left, h, w = params["crop"]
    assert h == w and 0.4 * 64 * 64 * 0.9 <= h * w <= 64 * 64


def test_interrupt_and_bad_inputs():
    sk = star_sketch()
    prior = TargetPrior(shifted_target(sk, 4, 5.0))
    model, sds, cfg = small_cfgs(iterations=50)
    calls = []

    def stop():
        calls.append(1)
        if len(calls) > 3:
            raise Interrupted()

    with pytest.raises(Interrupted):
        animate_sketch(sk, prior, prior.encode_prompt("x"), model, sds, cfg, check_interrupt=stop)
    assert prior.calls == 3
    empty = Sketch(torch.zeros(0, 2), make_style([], []), 64, 64)
    with pytest.raises(ValueError, match="no paths"):
        animate_sketch(empty, prior, prior.encode_prompt("x"), model, sds, cfg)
    with pytest.raises(ValueError, match="at least 2 frames"):
        animate_sketch(sk, prior, prior.encode_prompt("x"), MotionModelConfig(num_frames=1), sds, cfg)


def test_anchor_off_reproduces_the_run_before_the_option(monkeypatch):
    """With anchoring and both extra terms off, a run is bit for bit the run of the model as it was before the
    option existed: its forward pass, restated here from that version (every frame, frame 0 included, is
    centroid + p0 + local + (T_k p0 - p0)), replaces the model's in a second run of the same loop."""
    import pipelines.livesketch_model as lm
    from pipelines.motion import apply_global

    def paper_forward(self, base_points):
        k, n = self.num_frames, self.num_points
        enc = self.position_encoding
        base = base_points.to(device=enc.device, dtype=enc.dtype)
        centroid = base.mean(dim=0)
        p0 = base - centroid
        features = (self.project_points(p0.repeat(k, 1)) + self.encoding_dropout(enc)).reshape(1, -1)
        local = self.local_branch(features).reshape(k, n, 2)
        params = self.global_params(features)
        glob = apply_global(p0, params, center=torch.zeros_like(centroid)) - p0
        return centroid + p0 + local + glob, {"local_offsets": local, "global_offsets": glob, "global_params": params,
                                              "centroid": centroid}

    def run():
        sk = star_sketch()
        prior = TargetPrior(shifted_target(sk, 4, 5.0))
        model, sds, cfg = small_cfgs(iterations=3)
        assert (model.anchor, model.shape_weight, model.smooth_weight) == (False, 0.0, 0.0)  # the defaults
        sds.augment = True
        return animate_sketch(sk, prior, prior.encode_prompt("x"), model, sds, cfg).animation.points

    now = run()
    monkeypatch.setattr(lm.SketchMotionModel, "forward", paper_forward)
    before = run()
    assert torch.equal(now, before)


def test_anchored_run_starts_from_the_drawing():
    """anchor=True: after optimisation frame 0 is still the input exactly, and the other frames moved."""
    sk = star_sketch()
    prior = TargetPrior(shifted_target(sk, 4, 6.0))
    model = MotionModelConfig(num_frames=4, hidden=16, anchor=True, shape_weight=10.0, smooth_weight=1.0)
    sds = SDSConfig(guidance_local=1.0, guidance_global=1.0, augment=True)
    res = animate_sketch(sk, prior, prior.encode_prompt("x"), model, sds, AnimateConfig(iterations=5, seed=3,
                                                                                       render_size=64))
    pts = res.animation.points
    assert torch.equal(pts[0], sk.points.float())
    assert (pts[1:] - sk.points).abs().amax() > 0.05
    assert torch.isfinite(pts).all()


def test_workflows_and_demo_anchor_the_animation():
    """Every LiveSketch workflow (the demo's included) turns anchoring on with the evaluated weights; the
    ModelScope template keeps the SVG's coordinates as the reference does."""
    import json
    import os

    from pipelines.livesketch import ANCHORING

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = 0
    for name in sorted(os.listdir(os.path.join(root, "workflows"))):
        with open(os.path.join(root, "workflows", name), encoding="utf-8") as f:
            wf = json.load(f)
        for node in wf["nodes"]:
            if node["type"] == "VP_SketchMotionModel":
                # widgets: frames, hidden, dropout, 4 lambdas, 2 rates, 2 branch switches, then the appended three
                assert node["widgets_values"][11:14] == [True, ANCHORING["shape_weight"], ANCHORING["smooth_weight"]], name
                found += 1
            if name == "livesketch_modelscope.json" and node["type"] == "VP_LoadSVGSketch":
                assert node["widgets_values"][2] is False  # fit_to_canvas
    assert found >= 3
