"""Depth normalisation modes and the flicker figures (pipelines/depth/normalize.py)."""
import pytest
import torch

from pipelines.depth.normalize import (
    MODES,
    align_clip,
    drift,
    flicker,
    normalize_depth,
    synthetic_clip,
)


def test_per_frame_and_clip_are_min_max():
    d = torch.randn(5, 7, 9, generator=torch.Generator().manual_seed(0)) * 3 + 1
    per = normalize_depth(d, "per_frame")
    for t in range(5):
        expect = (d[t] - d[t].min()) / (d[t].max() - d[t].min() + 1e-7)
        assert torch.allclose(per[t], expect, atol=1e-6)
        assert per[t].min() == 0 and abs(float(per[t].max()) - 1) < 1e-6
    clip = normalize_depth(d, "clip")
    assert torch.allclose(clip, (d - d.min()) / (d.max() - d.min() + 1e-7), atol=1e-6)


def test_stable_undoes_per_frame_scale_and_shift_exactly():
    """Without moving objects or noise every frame is an affine copy of frame 0: alignment must recover frame 0."""
    gen = torch.Generator().manual_seed(1)
    base = torch.rand(40, 50, generator=gen) + 0.2
    scale = 0.5 + torch.rand(12, 1, 1, generator=gen)
    shift = torch.randn(12, 1, 1, generator=gen)
    aligned = align_clip(base * scale + shift)
    assert torch.allclose(aligned, (base * scale[0] + shift[0]).expand(12, -1, -1), atol=1e-5)


def test_stable_ignores_a_moving_object_when_aligning():
    _, truth, static = synthetic_clip(frames=16, height=48, width=64, seed=3)
    # same scene without noise: the background must come out static although the object moves and grows
    gen = torch.Generator().manual_seed(9)
    clean = truth * (1 + 0.15 * torch.randn(16, 1, 1, generator=gen)) + 0.1 * torch.randn(16, 1, 1, generator=gen)
    stable = normalize_depth(clean, "stable")
    assert drift(stable, static) < 2e-3
    assert drift(normalize_depth(clean, "per_frame"), static) > 0.02  # the min/max moves with the object


@pytest.mark.parametrize("seed", [0, 1])
def test_stable_flickers_clearly_less_than_per_frame(seed):
    """The issue's measure: mean |frame-to-frame change| of the static background; figures in the README."""
    est, _, static = synthetic_clip(seed=seed)
    f = {m: flicker(normalize_depth(est, m), static) for m in MODES}
    d = {m: drift(normalize_depth(est, m), static) for m in MODES}
    assert f["stable"] < 0.6 * f["per_frame"], f
    assert f["stable"] < 0.2 * f["clip"], f
    assert d["stable"] < 0.2 * d["per_frame"], d


def test_single_frame_and_bad_arguments():
    one = torch.rand(1, 4, 4)
    assert torch.equal(align_clip(one), one)
    assert normalize_depth(one, "stable").shape == (1, 4, 4)
    with pytest.raises(ValueError, match="per_frame, clip, stable"):
        normalize_depth(one, "percentile")
    with pytest.raises(ValueError, match=r"\[T, H, W\]"):
        normalize_depth(torch.rand(4, 4), "clip")
    with pytest.raises(ValueError, match="two frames"):
        flicker(one, torch.ones(4, 4, dtype=torch.bool))
