"""LiveSketch control-point model: shapes, branches, defect fixes, optimisers, schedule, size."""
import math

import pytest
import torch

from pipelines.livesketch_model import (SketchMotionModel, build_optimizers, count_parameters, lr_lambda,
                                        parameter_groups, render_points)
from pipelines.motion import GlobalParams, apply_global

N, K = 12, 4


def circle_sketch(n=N, radius=50.0, center=(128.0, 96.0)):
    angle = torch.arange(n, dtype=torch.float32) * (2 * math.pi / n)
    wobble = 1 + 0.2 * torch.sin(3 * angle)  # not perfectly symmetric
    return torch.stack([center[0] + radius * wobble * torch.cos(angle),
                        center[1] + radius * wobble * torch.sin(angle)], -1)


def make_model(seed=0, **kwargs):
    torch.manual_seed(seed)
    return SketchMotionModel(N, K, **kwargs)


def set_head_output(head, values):
    """Make a head output `values` whatever its input: zero last weight, bias = values."""
    with torch.no_grad():
        head[-1].weight.zero_()
        head[-1].bias.copy_(values)


def test_output_shapes():
    model = make_model()
    points, aux = model(circle_sketch())
    assert points.shape == (K, N, 2)
    assert aux["local_offsets"].shape == (K, N, 2)
    assert aux["global_offsets"].shape == (K, N, 2)
    assert aux["centroid"].shape == (2,)
    params = aux["global_params"]
    assert params.translate.shape == (K, 2) and params.rotate.shape == (K,)
    assert params.shear.shape == (K, 2) and params.scale.shape == (K, 2)
    with pytest.raises(ValueError):
        model(torch.zeros(N + 1, 2))


def test_frames_start_near_the_sketch():
    base = circle_sketch()
    # Default (reference) initialisation: within a few pixels of a sketch of radius ~50 px.
    for seed in range(3):
        shift = (render_points(make_model(seed), base) - base).norm(dim=-1)
        assert shift.mean() < 4.0 and shift.max() < 12.0
    # zero_init: exactly the sketch.
    points = render_points(make_model(zero_init=True), base)
    assert torch.allclose(points, base.expand(K, -1, -1), atol=1e-5)


def test_zero_lambdas_give_zero_global_motion():
    model = make_model(lambda_t=0.0, lambda_r=0.0, lambda_sh=0.0, lambda_s=0.0)
    model.train()
    _, aux = model(circle_sketch())
    assert torch.equal(aux["global_offsets"], torch.zeros(K, N, 2))
    assert aux["local_offsets"].abs().max() > 0  # the local branch still moves the points


def test_known_head_outputs_reproduce_apply_global():
    base = circle_sketch()
    gen = torch.Generator().manual_seed(1)
    raw = {name: torch.randn(size, generator=gen) for name, size in
           (("t", 2 * K), ("r", K), ("sh", 2 * K), ("s", 2 * K))}
    lam = dict(lambda_t=2.0, lambda_r=0.3, lambda_sh=0.2, lambda_s=0.1)
    want_params = GlobalParams(translate=raw["t"].reshape(K, 2) * 2.0, rotate=raw["r"] * 0.3,
                               shear=raw["sh"].reshape(K, 2) * 0.2, scale=1 + raw["s"].reshape(K, 2) * 0.1)
    want = apply_global(base, want_params)  # about the centroid

    for use_local in (False, True):
        model = make_model(use_local=use_local, **lam).eval()
        for head, key in ((model.translation_head, "t"), (model.rotation_head, "r"),
                          (model.shear_head, "sh"), (model.scale_head, "s")):
            set_head_output(head, raw[key])
        points, aux = model(base)
        for field in ("translate", "rotate", "shear", "scale"):
            assert torch.allclose(getattr(aux["global_params"], field), getattr(want_params, field), atol=1e-6)
        # The global transform acts on the sketch p0, not on p0 + local offsets.
        assert torch.allclose(points - aux["local_offsets"], want, atol=1e-4)
        assert (aux["local_offsets"].abs().max() > 0) == use_local


def test_parameter_groups_follow_the_reference():
    model = make_model()
    groups = parameter_groups(model)
    local, glob = ({id(p) for p in groups[g]} for g in ("local", "global"))
    projection = {id(p) for p in model.project_points.parameters()}
    assert local & glob == projection  # the point projection is in both optimisers
    assert local | glob == {id(p) for p in model.parameters()}
    assert {id(p) for p in model.global_trunk.parameters()} <= glob - local
    assert {id(p) for p in model.local_branch.parameters()} <= local - glob


def test_gradients_reach_every_parameter_of_each_group():
    model = make_model().train()
    points, _ = model(circle_sketch())
    weights = torch.randn(points.shape, generator=torch.Generator().manual_seed(2))
    (points * weights).sum().backward()
    for name, group in parameter_groups(model).items():
        assert group, name
        for p in group:
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_scale_comes_from_the_scale_head():
    model = make_model().eval()
    base = circle_sketch()
    before = model(base)[1]["global_params"]
    with torch.no_grad():
        model.scale_head[-1].weight.add_(0.5)
    after = model(base)[1]["global_params"]
    assert not torch.allclose(after.scale, before.scale, atol=1e-4)
    assert torch.equal(after.shear, before.shear)
    with torch.no_grad():
        model.shear_head[-1].weight.add_(0.5)
    last = model(base)[1]["global_params"]
    assert not torch.allclose(last.shear, after.shear, atol=1e-4)
    assert torch.equal(last.scale, after.scale)


def test_render_path_has_dropout_off():
    model = make_model().train()
    base = circle_sketch()
    first, second = render_points(model, base), render_points(model, base)
    assert torch.equal(first, second)
    assert model.training  # the render restores the mode
    assert not torch.allclose(model(base)[0], model(base)[0])  # dropout is on in training
    model.eval()
    assert torch.equal(model(base)[0], first)


def test_lr_lambda_matches_the_formula():
    def expected(step, total=1000):
        delay = 0.1 + 0.9 * math.sin(math.pi / 2 * min(step / 100, 1))
        t = min(step / total, 1)
        return delay * (2e-3 ** (1 - t) * 8e-4 ** t) / 2e-3

    for step in (0, 1, 37, 100, 250, 999, 1000, 1500):
        assert lr_lambda(step) == pytest.approx(expected(step), rel=1e-9)
    assert lr_lambda(300, total_steps=500) == pytest.approx(expected(300, total=500), rel=1e-9)
    assert lr_lambda(0) == pytest.approx(0.1)
    assert lr_lambda(1000) == pytest.approx(0.4)


def test_optimizers_and_zero_grad():
    model = make_model().train()
    opts = build_optimizers(model)
    assert opts.local.defaults["lr"] == 5e-3 and opts.global_.defaults["lr"] == 1e-4
    assert opts.local.defaults["betas"] == (0.9, 0.9) and opts.global_.defaults["eps"] == 1e-6
    glob = parameter_groups(model)["global"]
    base = circle_sketch()

    # The reference's two passes per iteration: local step, then global step.
    opts.zero_grad()
    model(base)[0].square().mean().backward()
    opts.step(global_=False)
    opts.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    torch.manual_seed(5)
    loss = model(base)[0].sum()
    loss.backward()
    torch.manual_seed(5)
    fresh = torch.autograd.grad(model(base)[0].sum(), glob)
    for p, g in zip(glob, fresh):  # the global gradients hold only this pass, nothing from the local one
        assert torch.allclose(p.grad, g, atol=1e-6)
    opts.step(local=False)


def test_disabled_branches():
    base = circle_sketch()
    local_only = make_model(use_global=False)
    _, aux = local_only(base)
    assert torch.equal(aux["global_offsets"], torch.zeros(K, N, 2))
    assert build_optimizers(local_only).global_ is None
    global_only = make_model(use_local=False)
    _, aux = global_only(base)
    assert torch.equal(aux["local_offsets"], torch.zeros(K, N, 2))
    assert build_optimizers(global_only).local is None
    with pytest.raises(ValueError):
        SketchMotionModel(N, K, use_local=False, use_global=False)


def test_deterministic_under_seed():
    base = circle_sketch()
    a = make_model(seed=7).train()
    torch.manual_seed(3)
    out_a = a(base)[0]
    b = make_model(seed=7).train()
    torch.manual_seed(3)
    out_b = b(base)[0]
    assert torch.equal(out_a, out_b)
    assert not torch.equal(render_points(make_model(seed=8), base), render_points(a, base))


def expected_parameter_count(n, k, h=128, use_local=True, use_global=True):
    def lin(i, o):
        return i * o + o

    def norm(d):
        return 2 * d

    m = n * k
    block = lin(h, h) + norm(h)
    total = lin(2, h) + norm(h) + lin(h, h)  # point projection
    if use_local:
        total += lin(m * h, h) + norm(h) + 2 * block + lin(h, 2 * m)
    if use_global:
        total += lin(m * h, h) + norm(h) + block  # trunk
        total += 3 * block + lin(h, 2 * k)  # translation
        total += block + lin(h, k)  # rotation
        total += 2 * (block + lin(h, 2 * k))  # shear, scale
    return total


def test_parameter_count_formula():
    full = count_parameters(64, 24)
    assert full == expected_parameter_count(64, 24)
    assert 50e6 < full < 52e6
    for kwargs in ({}, {"use_local": False}, {"use_global": False}):
        model = make_model(**kwargs)
        real = sum(p.numel() for p in model.parameters())
        assert real == count_parameters(N, K, **kwargs) == expected_parameter_count(N, K, **kwargs)
    assert count_parameters(N, K, hidden=32) == expected_parameter_count(N, K, h=32)


# --- anchoring (not in the paper): frame 0 is the input, the other frames move relative to it ----------


def _randomise_heads(model, seed=5, scale=0.3):
    """Give the global heads clearly non-identity outputs (a default model's are close to identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for head in model._global_heads():
            head[-1].bias.add_(torch.randn(head[-1].bias.shape, generator=gen) * scale)
            head[-1].weight.mul_(20.0)


def test_anchored_frame_zero_is_the_input_exactly():
    base = circle_sketch() + torch.tensor([0.1234567, -0.7654321])  # coordinates that round in centroid + p0
    for seed in range(3):
        model = make_model(seed, anchor=True)
        _randomise_heads(model, seed)
        for mode in (model.train, model.eval):
            mode()
            points, aux = model(base)
            assert torch.equal(points[0], base), "frame 0 must be the input bit for bit"
            assert torch.equal(aux["local_offsets"][0], torch.zeros(N, 2))
            assert (points[1:] - base).abs().amax() > 1.0  # the other frames do move
    # the same weights without anchoring: frame 0 is away from the input
    free = make_model(0)
    _randomise_heads(free, 0)
    assert (render_points(free, base)[0] - base).abs().amax() > 1.0


def test_anchored_motion_is_relative_to_frame_zero():
    """Anchored frame k = the free model's frame k with frame 0's local offsets removed and the global
    transform T_k . T_0^-1 (same weights): built here from the free model's outputs."""
    base = circle_sketch()
    free = make_model(1)
    _randomise_heads(free, 1)
    anchored = make_model(1, anchor=True)
    anchored.load_state_dict(free.state_dict())
    free.eval()
    anchored.eval()
    pts_free, aux = free(base)
    pts, aux_a = anchored(base)
    from pipelines.motion import transform_matrices

    c = base.mean(0)
    p0 = base - c
    lin = transform_matrices(aux["global_params"])  # x -> lin x + t about the centroid
    t = aux["global_params"].translate
    for k in range(1, K):
        rel = lin[k] @ torch.linalg.inv(lin[0])
        glob = (p0 - t[0]) @ rel.T + t[k]
        want = c + glob + aux["local_offsets"][k] - aux["local_offsets"][0]
        assert torch.allclose(pts[k], want, atol=1e-3), k
    # frame 0's relative transform is the identity
    assert torch.allclose(aux_a["global_matrices"][0], torch.eye(2), atol=1e-5)
    assert torch.allclose(aux_a["global_translations"][0], torch.zeros(2), atol=1e-4)
    # a pure rigid motion of every frame (same pose in all frames) is no motion at all when anchored
    assert not torch.allclose(pts_free[1], pts_free[0], atol=1e-2)


def test_anchored_gradients_reach_both_branches():
    base = circle_sketch()
    model = make_model(2, anchor=True)
    points, _ = model(base)
    (points[1:] * torch.randn_like(points[1:])).sum().backward()
    groups = model.parameter_groups()
    for name in ("local", "global"):
        grads = [p.grad for p in groups[name] if p.grad is not None]
        assert grads and sum(float(g.abs().sum()) for g in grads) > 0, name
    # frame 0 (the input) depends on no parameter
    points, _ = model(base)
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(points[0].sum(), params, allow_unused=True)
    assert all(g is None or float(g.abs().max()) == 0 for g in grads)


def test_anchor_off_is_the_paper_formulation():
    """anchor=False computes exactly what the model computed before the option existed: centroid + p0 +
    local + (T_k p0 - p0) for every frame, frame 0 included (same weights, bitwise)."""
    base = circle_sketch()
    model = make_model(3, anchor=False)
    _randomise_heads(model, 3)
    model.eval()
    points, aux = model(base)
    c = base.mean(0)
    p0 = base - c
    glob = apply_global(p0, aux["global_params"], center=torch.zeros_like(c)) - p0
    assert torch.equal(points, c + p0 + aux["local_offsets"] + glob)
    assert "global_matrices" not in aux


def test_shape_residual_and_penalty():
    from pipelines.livesketch_model import motion_acceleration, shape_penalty, shape_residual

    base = circle_sketch()
    angle = torch.tensor(0.7)
    rot = torch.stack([torch.stack([angle.cos(), -angle.sin()]), torch.stack([angle.sin(), angle.cos()])])
    similar = (base - base.mean(0)) @ rot.T * 1.7 + torch.tensor([30.0, -10.0]) + base.mean(0)
    line = base.clone()
    line[:, 1] = base[:, 1].mean()  # collapsed onto a horizontal line
    frames = torch.stack([base, similar, line])
    r = shape_residual(base, frames)
    assert r[0] < 1e-5 and r[1] < 1e-4 and r[2] > 0.45  # a round drawing flattened to a line: ~0.5
    # the penalty ignores shapes within the tolerance and pulls a collapsed frame back
    frames.requires_grad_(True)
    pen = shape_penalty(base, frames, tolerance=0.1)
    pen.backward()
    assert pen > 0 and frames.grad[:2].abs().max() == 0 and frames.grad[2].abs().max() > 0
    with torch.no_grad():
        better = frames[2] - 50.0 * frames.grad[2]
    assert shape_residual(base, better[None])[0] < r[2]
    # smoothness: constant velocity is free, a jump is not
    steps = torch.arange(4.0)[:, None, None] * torch.tensor([5.0, 0.0])
    assert motion_acceleration(base, base + steps) < 1e-10
    jump = base + steps
    jump[1] += 20.0
    assert motion_acceleration(base, jump) > 1e-3
