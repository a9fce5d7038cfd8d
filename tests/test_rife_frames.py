"""The streaming interpolation driver (pipelines/interpolation/frames.py) with the golden 4.7 weights: output times,
keyframes kept exactly, in-betweens equal to the network on their pair at the fractional time, scene cuts, loop
closing, batches equal to one-by-one, progress / interruption, and bad input."""
from __future__ import annotations

from fractions import Fraction

import pytest
import rife_files
import torch
from shared_data import golden, require_shared  # noqa: F401 (fixture)

from pipelines.interpolation.frames import interpolate_frames, plan_times
from pipelines.interpolation.rife_checkpoint import load_rife

pytestmark = pytest.mark.usefixtures("require_shared")


@pytest.fixture(scope="module")
def model():
    return load_rife(golden("rife47", "weights.safetensors"))[0]


@pytest.fixture(scope="module")
def clip():
    return rife_files.moving_clip(frames=4, height=48, width=64)


def direct(model, clip, i, j, t, **kw):
    """The network on one pair, straight through IFNet.forward (no driver)."""
    with torch.inference_mode():
        a, b = clip[i].permute(2, 0, 1)[None], clip[j].permute(2, 0, 1)[None]
        return model(a, b, t, **kw).clamp(0, 1)[0].permute(1, 2, 0)


def test_multiplier_keeps_keyframes_exactly_and_makes_each_in_between_from_its_pair(model, clip):
    times = plan_times(4, multiplier=3)
    assert times == [Fraction(k, 3) for k in range(10)]
    res = interpolate_frames(model, clip, times, batch_size=4)
    assert res.frames.shape == (10, 48, 64, 3) and res.interpolated == 6
    for k in range(4):
        assert torch.equal(res.frames[3 * k], clip[k])  # t = 0 of each pair is the input frame itself
    torch.testing.assert_close(res.frames[4], direct(model, clip, 1, 2, 1 / 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(res.frames[8], direct(model, clip, 2, 3, 2 / 3), atol=1e-5, rtol=0)
    assert not torch.allclose(res.frames[4], res.frames[5], atol=1e-3)


def test_target_fps_uses_fractional_times_of_the_surrounding_pair(model, clip):
    times = plan_times(4, source_fps=24, target_fps=60)
    # 3 source intervals at 24 fps = 0.125 s -> 60 fps frames at k * 0.4 source frames, k = 0..7
    assert times == [Fraction(2 * k, 5) for k in range(8)]
    res = interpolate_frames(model, clip, times)
    assert torch.equal(res.frames[5], clip[2])  # 2.0 exactly: a source frame, copied
    torch.testing.assert_close(res.frames[3], direct(model, clip, 1, 2, 0.2), atol=1e-5, rtol=0)  # t = 1.2
    torch.testing.assert_close(res.frames[1], direct(model, clip, 0, 1, 0.4), atol=1e-5, rtol=0)  # t = 0.4
    assert plan_times(3, source_fps=23.976, target_fps=47.952)[-1] == 2  # exact ratios stay exact
    assert plan_times(5, frame_count=9) == [Fraction(k, 2) for k in range(9)]
    custom = interpolate_frames(model, clip, [0.25, 2.5, 3])
    torch.testing.assert_close(custom.frames[0], direct(model, clip, 0, 1, 0.25), atol=1e-5, rtol=0)
    assert torch.equal(custom.frames[2], clip[3])


def test_scene_cuts_duplicate_the_earlier_frame(model, clip):
    cut = clip.clone()
    cut[2:] = 1 - cut[2:].flip(1)  # a different shot from frame 2 on
    times = plan_times(4, multiplier=2)
    res = interpolate_frames(model, cut, times, scene_cut=0.15)
    assert res.cut_pairs == [(1, 2)] and res.interpolated == 2
    assert torch.equal(res.frames[3], cut[1])  # held, not blended
    off = interpolate_frames(model, cut, times, scene_cut=0.0)
    assert not torch.equal(off.frames[3], cut[1]) and off.cut_pairs == []
    torch.testing.assert_close(res.frames[1], off.frames[1], atol=1e-5, rtol=0)  # other pairs untouched


def test_loop_closes_last_to_first(model, clip):
    times = plan_times(4, multiplier=2, loop=True)
    assert times[-1] == Fraction(7, 2) and len(times) == 8
    res = interpolate_frames(model, clip, times, loop=True)
    torch.testing.assert_close(res.frames[-1], direct(model, clip, 3, 0, 0.5), atol=1e-5, rtol=0)
    assert len(plan_times(4, source_fps=8, target_fps=20, loop=True)) == 10  # 4 frames at 8 fps = 0.5 s at 20 fps


def test_batches_of_pairs_equal_one_by_one_with_progress_and_interruption(model, clip):
    times = plan_times(4, multiplier=4)
    calls = []
    one = interpolate_frames(model, clip, times, batch_size=1)
    many = interpolate_frames(model, clip, times, batch_size=5, progress=lambda d, t, b: calls.append((d, t, len(b))))
    torch.testing.assert_close(many.frames, one.frames, atol=1e-5, rtol=0)
    assert calls == [(5, 9, 5), (9, 9, 4)]

    class Stop(Exception):
        pass

    asked, done = [], []

    def interrupt():  # the user presses cancel during the second pass
        asked.append(1)
        if len(asked) == 2:
            raise Stop

    with pytest.raises(Stop):
        interpolate_frames(model, clip, times, batch_size=3, interrupt=interrupt,
                           progress=lambda d, t, b: done.append(d))
    assert done == [3]  # stopped before the second pass ran


def test_ensemble_and_scale_factor_reach_the_network(model, clip):
    times = [0.5]
    plain = interpolate_frames(model, clip, times).frames[0]
    torch.testing.assert_close(interpolate_frames(model, clip, times, ensemble=True).frames[0],
                               direct(model, clip, 0, 1, 0.5, ensemble=True), atol=1e-5, rtol=0)
    torch.testing.assert_close(interpolate_frames(model, clip, times, scale_factor=0.5).frames[0],
                               direct(model, clip, 0, 1, 0.5, scale_factor=0.5), atol=1e-5, rtol=0)
    assert not torch.allclose(plain, interpolate_frames(model, clip, times, ensemble=True).frames[0], atol=1e-4)


@pytest.mark.parametrize("kwargs, message", [
    ({"multiplier": 1}, "between 2 and 16"),
    ({"multiplier": 17}, "between 2 and 16"),
    ({"multiplier": 2.5}, "whole number"),
    ({"source_fps": 30, "target_fps": 24}, "must be higher than the source fps"),
    ({"source_fps": 24, "target_fps": 0}, "must be positive"),
    ({"source_fps": 24, "target_fps": -60}, "must be positive"),
    ({"source_fps": 0, "target_fps": 60}, "needs the source fps"),
    ({"source_fps": 1, "target_fps": 60}, "more than 16x"),
    ({"source_fps": 24, "target_fps": float("nan")}, "finite"),
    ({"frame_count": 3}, "more than the 4 input frames"),
    ({"times": [0, 3.5]}, r"must lie in \[0, 3\]"),
    ({"multiplier": 2, "frame_count": 8}, "exactly one"),
])
def test_plan_refuses_odd_requests(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plan_times(4, **kwargs)


def test_frames_must_be_two_or_more_of_one_size(model, clip):
    with pytest.raises(ValueError, match="at least two frames, got 1"):
        plan_times(1, multiplier=2)
    with pytest.raises(ValueError, match="at least two frames, got 1"):
        interpolate_frames(model, clip[:1], [0])
    with pytest.raises(ValueError, match="same size"):
        interpolate_frames(model, [clip[0], clip[1, :40]], [0.5])
    with pytest.raises(ValueError, match=r"expected frames \[T, H, W, 3\]"):
        interpolate_frames(model, clip[0], [0.5])
    with pytest.raises(ValueError, match="outside the clip"):
        interpolate_frames(model, clip, [3.5])
    with pytest.raises(ValueError, match="scale factor must be one of"):
        interpolate_frames(model, clip, [0.5], scale_factor=0.3)
