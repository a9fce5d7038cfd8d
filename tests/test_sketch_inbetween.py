"""Vector in-betweens (pipelines/interpolation/sketch_inbetween.py), the animated SVG's SMIL timing
(pipelines/svg_export.py) checked against SMIL's own value-at-time rules, and VP_InterpolateSketch in ComfyUI."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch
from defusedxml import ElementTree as SafeET
from scipy.interpolate import CubicSpline

from pipelines.interpolation.sketch_inbetween import (MAX_FRAMES, MODES, InterpolationError, chord_easing, evaluate,
                                                      interpolate_sketch, output_timing)
from pipelines.sketch import SketchAnimation, make_style
from pipelines.svg_export import animated_svg

SVG_NS = "{http://www.w3.org/2000/svg}"


def keyframes(k=8, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(k, 7, 2, generator=g) * 200 + 20  # [K, 7, 2]: one open path of 2 cubic segments


def animation(k=8, fps=8.0, seed=0) -> SketchAnimation:
    style = make_style([2], [False], stroke_width=3.0)  # one open path of 2 segments: 7 points
    return SketchAnimation(keyframes(k, seed), style, 256, 256, fps)


# --- the interpolation -----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("loop", [True, False])
def test_keyframes_are_kept_bit_for_bit(mode, loop):
    anim = animation()
    out = interpolate_sketch(anim, mode, multiplier=3, loop=loop)
    assert out.num_frames == (24 if loop else 22)
    assert torch.equal(out.points[::3], anim.points)
    # a target fps that is not a multiple: 8 -> 30 fps; output frame i is at t = 8 i / 30, on keyframes 0 and 4
    out = interpolate_sketch(anim, mode, target_fps=30.0, loop=True)
    assert out.num_frames == 30 and out.fps == 30.0
    assert torch.equal(out.points[0], anim.points[0]) and torch.equal(out.points[15], anim.points[4])
    # arbitrary float times through evaluate(): integral times are keyframes too
    times = torch.tensor([0.0, 3.0, 5.0, 7.0], dtype=torch.float64)
    assert torch.equal(evaluate(anim.points, times, mode, loop), anim.points[[0, 3, 5, 7]])


def test_linear_midpoint_and_catmull_rom_reproduce_constant_velocity():
    anim = animation()
    p = anim.points
    out = interpolate_sketch(anim, "linear", multiplier=2, loop=True).points
    assert torch.allclose(out[1], (p[0] + p[1]) / 2, atol=1e-5)
    assert torch.allclose(out[15], (p[7] + p[0]) / 2, atol=1e-5)  # the closing segment
    # points moving at constant velocity: the uniform Catmull-Rom in-betweens stay on that line exactly
    line = p[:1] + torch.arange(8.0)[:, None, None] * torch.tensor([3.0, -2.0])
    ramp = interpolate_sketch(SketchAnimation(line, anim.style, 256, 256, 8.0), "catmull_rom", multiplier=4, loop=False)
    want = p[:1] + (torch.arange(29.0) / 4)[:, None, None] * torch.tensor([3.0, -2.0])
    assert torch.allclose(ramp.points, want, atol=1e-4)


def _derivatives(points, t, mode, loop, h=1e-6):
    """Left and right first (and second) finite differences at t, in float64."""
    p = points.double()
    ts = torch.tensor([t - 2 * h, t - h, t, t + h, t + 2 * h], dtype=torch.float64)
    s = evaluate(p, ts, mode, loop)
    d1 = ((s[2] - s[1]) / h, (s[3] - s[2]) / h)
    d2 = ((s[2] - 2 * s[1] + s[0]) / h ** 2, (s[4] - 2 * s[3] + s[2]) / h ** 2)
    return d1, d2


@pytest.mark.parametrize("mode", ["catmull_rom", "natural_cubic"])
def test_splines_are_c1_at_keyframes_and_across_the_loop(mode):
    p = keyframes().double()
    for loop in (True, False):
        for j in range(1, 7):
            (left, right), _ = _derivatives(p, float(j), mode, loop)
            assert (left - right).abs().max() < 1e-2, (loop, j)
            if mode == "catmull_rom":  # velocity = central difference of the neighbours
                assert torch.allclose((left + right) / 2, (p[j + 1] - p[j - 1]) / 2, atol=1e-2)
    # the closing segment joins the first smoothly: t = 8 is t = 0 again
    (left, right), _ = _derivatives(p, 8.0, mode, True)
    assert (left - right).abs().max() < 1e-2
    assert torch.equal(evaluate(p, torch.tensor([8.0], dtype=torch.float64), mode, True)[0], p[0])
    # linear has corners: the same check must be able to fail
    (left, right), _ = _derivatives(p, 3.0, "linear", True)
    assert (left - right).abs().max() > 1.0


def test_natural_cubic_is_scipys_natural_and_periodic_spline():
    p = keyframes().double()
    t = torch.linspace(0, 7, 141, dtype=torch.float64)
    ours = evaluate(p, t, "natural_cubic", loop=False).numpy()
    ref = CubicSpline(np.arange(8), p.numpy(), axis=0, bc_type="natural")(t.numpy())
    assert np.abs(ours - ref).max() < 1e-9
    # natural ends: zero second derivative at the first and last keyframe (one-sided differences)
    for end, sign in ((0.0, 1), (7.0, -1)):
        h = 1e-3
        s = evaluate(p, torch.tensor([end, end + sign * h, end + sign * 2 * h], dtype=torch.float64),
                     "natural_cubic", False)
        assert ((s[0] - 2 * s[1] + s[2]) / h ** 2).abs().max() < 1.0  # O(h) of a third derivative ~ 100s
    closed = np.concatenate([p.numpy(), p.numpy()[:1]])
    t = torch.linspace(0, 7.99, 161, dtype=torch.float64)
    ours = evaluate(p, t, "natural_cubic", loop=True).numpy()
    ref = CubicSpline(np.arange(9), closed, axis=0, bc_type="periodic")(t.numpy())
    assert np.abs(ours - ref).max() < 1e-9
    # and C2 where the loop closes
    _, (left, right) = _derivatives(p, 8.0, "natural_cubic", True, h=1e-3)
    assert (left - right).abs().max() < 2.0  # vs second derivatives of order 100s


def test_frame_counts_and_fps():
    assert output_timing(8, 8.0, True, multiplier=3) == (24, 24, 24.0)
    assert output_timing(8, 8.0, False, multiplier=3) == (22, 21, 24.0)
    assert output_timing(8, 8.0, True, target_frames=40) == (40, 40, 40.0)
    assert output_timing(8, 8.0, False, target_frames=15) == (15, 14, 16.0)
    assert output_timing(8, 8.0, True, target_fps=60.0) == (60, 60, 60.0)
    # 7 keyframes at 8 fps loop in 0.875 s: 26.25 frames at 30 fps; 26 frames keep the duration at 29.71 fps
    frames, steps, fps = output_timing(7, 8.0, True, target_fps=30.0)
    assert (frames, steps) == (26, 26) and fps == pytest.approx(26 / 0.875)
    anim = animation(k=5, fps=12.0)
    out = interpolate_sketch(anim, "catmull_rom", multiplier=4, loop=False)
    assert out.num_frames == 17 and out.fps == 48.0 and out.style is anim.style and out.width == 256
    assert torch.equal(out.points[-1], anim.points[-1])


@pytest.mark.parametrize("kwargs, message", [
    ({"k": 1, "multiplier": 3}, "at least two keyframes"),
    ({"multiplier": 1}, "at least 2"),
    ({"multiplier": 65}, "above the limit"),
    ({"target_frames": 8}, "more than the animation's 8 keyframes"),
    ({"target_frames": MAX_FRAMES + 1}, "limit"),
    ({"target_fps": 8.0}, "above the animation's 8 fps"),
    ({"target_fps": float("nan")}, "target_fps"),
    ({"target_fps": 961.0}, "limit"),
    ({"target_frames": 30, "target_fps": 30.0}, "not both"),
    ({"k": 200, "multiplier": 64}, "more than the limit"),
])
def test_bad_settings_are_refused_with_clear_messages(kwargs, message):
    k = kwargs.pop("k", 8)
    with pytest.raises(InterpolationError, match=message):
        interpolate_sketch(animation(k=k), "catmull_rom", **{"multiplier": 3, **kwargs})
    with pytest.raises(InterpolationError, match="mode"):
        interpolate_sketch(animation(), "bezier")


# --- SMIL: the document's values at given times ----------------------------------------------------

def _numbers(d: str) -> np.ndarray:
    return np.array([float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", d)])


def _bezier_progress(p: float, x1: float, y1: float, x2: float, y2: float) -> float:
    """SMIL keySplines: the y of the cubic Bezier (0,0) (x1,y1) (x2,y2) (1,1) where its x is p (bisection)."""
    def bez(s, a, b):
        return 3 * (1 - s) ** 2 * s * a + 3 * (1 - s) * s ** 2 * b + s ** 3

    lo, hi = 0.0, 1.0
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if bez(mid, x1, x2) < p else (lo, mid)
    return bez((lo + hi) / 2, y1, y2)


def smil_value(animate, seconds: float) -> np.ndarray:
    """The numbers of `d` at a time, from the <animate> element by SMIL's rules (SMIL 3.0 animation, 'calcMode',
    'keyTimes', 'keySplines'): simple time = t mod dur; find the keyTimes interval; linear: interpolate the
    two values; spline: first map the interval's fraction through its keySplines Bezier; discrete: hold."""
    values = [_numbers(v) for v in animate.get("values").split(";")]
    dur = float(animate.get("dur").rstrip("s"))
    f = (seconds % dur) / dur
    mode = animate.get("calcMode", "linear")
    n = len(values)
    times = ([float(x) for x in animate.get("keyTimes").split(";")] if animate.get("keyTimes")
             else ([i / n for i in range(n)] if mode == "discrete" else [i / (n - 1) for i in range(n)]))
    i = max(j for j in range(n) if times[j] <= f)
    if mode == "discrete":
        return values[i]
    i = min(i, n - 2)
    p = (f - times[i]) / (times[i + 1] - times[i])
    if mode == "spline":
        p = _bezier_progress(p, *(float(x) for x in animate.get("keySplines").split(";")[i].split()))
    return values[i] + p * (values[i + 1] - values[i])


def _path_numbers(points: torch.Tensor) -> np.ndarray:
    """The numbers of our one open path's `d` (M p0 C c1 c2 p1 C ...) for points [..., 7, 2]."""
    return points.reshape(*points.shape[:-2], -1).numpy()


def _animate(doc: str):
    root = SafeET.fromstring(doc)  # parses as safe XML
    (animate,) = root.findall(f".//{SVG_NS}animate")
    return animate


def test_linear_svg_plays_our_linear_interpolation_exactly():
    anim = animation()
    animate = _animate(animated_svg(anim, interpolation="linear"))
    assert animate.get("calcMode") == "linear" and animate.get("keyTimes").split(";")[::4] == ["0", "0.5", "1"]
    written = torch.round(anim.points.double() * 100) / 100  # path data has 2 decimals
    for seconds in np.linspace(0.0, 2.0, 37):  # two loops of 1 s
        t = torch.tensor([seconds * anim.fps], dtype=torch.float64)
        ours = evaluate(written, t, "linear", loop=True)[0]
        assert np.abs(smil_value(animate, seconds) - _path_numbers(ours)).max() < 1e-9
        exact = evaluate(anim.points.double(), t, "linear", loop=True)[0]
        assert np.abs(smil_value(animate, seconds) - _path_numbers(exact)).max() <= 0.005 + 1e-9


def test_baked_spline_frames_play_exactly_at_each_frame_and_close_between():
    anim = animation()
    baked = interpolate_sketch(anim, "catmull_rom", multiplier=3, loop=True)
    animate = _animate(animated_svg(baked, interpolation="linear"))
    assert float(animate.get("dur").rstrip("s")) == pytest.approx(1.0)  # same clip length as the 8 keyframes
    worst_between = 0.0
    for i, seconds in enumerate(np.linspace(0.0, 1.0, 97)[:-1]):
        exact = _path_numbers(evaluate(anim.points.double(), torch.tensor([seconds * 8.0], dtype=torch.float64),
                                       "catmull_rom", True)[0])
        err = np.abs(smil_value(animate, seconds) - exact).max()
        if i % 4 == 0:  # output frame times (96 / 24); 2 decimals written, float32 points
            assert err <= 0.005 + 1e-4
        worst_between = max(worst_between, err)
    # between baked frames SMIL is linear: a chord error, smaller than playing the 8 keyframes linearly
    linear8 = _animate(animated_svg(anim, interpolation="linear"))
    worst_keys = max(np.abs(smil_value(linear8, s) - _path_numbers(evaluate(
        anim.points.double(), torch.tensor([s * 8.0], dtype=torch.float64), "catmull_rom", True)[0])).max()
        for s in np.linspace(0.0, 1.0, 97)[:-1])
    assert worst_between < worst_keys / 2  # (random keyframes 100s of px apart: a very curved motion)


def test_spline_svg_eases_each_segment_by_the_projected_catmull_rom_timing():
    anim = animation()
    doc = animated_svg(anim, interpolation="spline")
    animate = _animate(doc)
    assert animate.get("calcMode") == "spline"
    splines = [[float(x) for x in s.split()] for s in animate.get("keySplines").split(";")]
    assert len(splines) == 8 and all(0.0 <= v <= 1.0 for s in splines for v in s)  # SMIL's allowed range
    # independent slopes: Catmull-Rom tangents projected on each segment's chord (least squares, clamped to [0, 3])
    p = anim.points.double().reshape(8, -1)
    tangents = (torch.roll(p, -1, 0) - torch.roll(p, 1, 0)) / 2
    written = torch.round(anim.points.double() * 100) / 100
    for i in range(8):
        d = p[(i + 1) % 8] - p[i]
        a = float((tangents[i] * d).sum() / (d * d).sum())
        b = float((tangents[(i + 1) % 8] * d).sum() / (d * d).sum())
        a, b = min(max(a, 0.0), 3.0), min(max(b, 0.0), 3.0)
        for u in (0.0, 0.2, 0.5, 0.9):
            s = 2 * u ** 3 - 3 * u ** 2 + 1, u ** 3 - 2 * u ** 2 + u, -2 * u ** 3 + 3 * u ** 2, u ** 3 - u ** 2
            progress = s[1] * a + s[2] + s[3] * b  # the 1D Hermite from 0 to 1 with slopes a, b
            want = written[i] + progress * (written[(i + 1) % 8] - written[i])
            got = smil_value(animate, (i + u) / 8.0)
            assert np.abs(got - _path_numbers(want)).max() < 2e-4, (i, u)  # keySplines have 6 decimals
    assert torch.allclose(chord_easing(anim.points)[:, 0].double(),
                          torch.tensor([min(max(float((tangents[i] * (p[(i + 1) % 8] - p[i])).sum()
                                                      / ((p[(i + 1) % 8] - p[i]) ** 2).sum()), 0), 3)
                                        for i in range(8)], dtype=torch.float64), atol=1e-9)
    # keyframes only: 8 values + the closing one, a much smaller file than 24 baked frames
    baked = animated_svg(interpolate_sketch(anim, "catmull_rom", multiplier=3), interpolation="linear")
    assert len(_animate(baked).get("values").split(";")) == 25 and len(animate.get("values").split(";")) == 9
    assert len(doc) < 0.6 * len(baked)


def test_discrete_svg_is_unchanged_by_the_new_timing():
    animate = _animate(animated_svg(animation(k=4, fps=4.0)))
    assert animate.get("calcMode") == "discrete" and animate.get("keyTimes") is None
    assert animate.get("keySplines") is None and len(animate.get("values").split(";")) == 4


# --- the node in ComfyUI ---------------------------------------------------------------------------

SMALL_SVG = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">
<path d="M20 20 C40 10 60 30 80 20" stroke="black" stroke-width="3" fill="none"/></svg>"""


def node_prompt(frames=4, **interp):
    settings = {"mode": "catmull_rom", "multiplier": 3, "target_frames": 0, "target_fps": 0.0, "loop": True}
    settings.update(interp)
    return {
        "1": {"class_type": "VP_LoadSVGSketch", "inputs": {
            "svg": "examples/cat.svg", "canvas_size": 64, "fit_to_canvas": True, "stroke_width": 0.0,
            "force_black": False, "max_paths": 0, "svg_text": SMALL_SVG}},
        "2": {"class_type": "VP_ProceduralMotion", "inputs": {
            "sketch": ["1", 0], "preset": "sway", "frames": frames, "fps": 8.0, "amplitude": 1.0, "cycles": 1,
            "seed": 0}},
        "3": {"class_type": "VP_InterpolateSketch", "inputs": {"animation": ["2", 0], **settings}},
        "4": {"class_type": "VP_RasterizeSketch", "inputs": {
            "sketch": ["3", 0], "width": 0, "height": 0, "background": "#ffffff", "quality": 1, "backend": "torch"}},
        "5": {"class_type": "SaveAnimatedPNG", "inputs": {
            "images": ["4", 0], "filename_prefix": "vp_inbetween/anim", "fps": ["3", 1], "compress_level": 4}},
        "6": {"class_type": "VP_SaveAnimatedSVG", "inputs": {
            "animation": ["3", 0], "filename_prefix": "vp_inbetween/anim", "background": "#ffffff",
            "interpolation": "spline"}},
    }


def test_node_interpolates_in_comfyui(comfy_inproc):
    from PIL import Image

    executor = comfy_inproc.run(node_prompt())
    assert executor.success, executor.status_messages
    out = executor.history_result["outputs"]
    png = out["5"]["images"][0]
    with Image.open(os.path.join(comfy_inproc.base_dir, "output", png["subfolder"], png["filename"])) as im:
        assert im.n_frames == 12 and im.size == (64, 64)
        im.seek(1)
        assert im.info.get("duration") == pytest.approx(1000 / 24, abs=1)  # the node's fps output: 8 x 3
    svg = out["6"]["images"][0]
    with open(os.path.join(comfy_inproc.base_dir, "output", svg["subfolder"], svg["filename"]), "rb") as f:
        doc = f.read()
    animate = _animate(doc.decode())
    assert animate.get("calcMode") == "spline" and len(animate.get("values").split(";")) == 13
    assert float(animate.get("dur").rstrip("s")) == pytest.approx(0.5)  # 4 keyframes at 8 fps, as before


def test_node_refuses_bad_input_before_writing_anything(comfy_inproc):
    out_dir = os.path.join(comfy_inproc.base_dir, "output", "vp_inbetween_bad")
    for change in ({"multiplier": 65}, {"multiplier": 1}, {"target_frames": 12, "target_fps": 30.0},
                   {"mode": "bezier"}, {"target_fps": float("nan")}):
        prompt = node_prompt(**change)
        prompt["6"]["inputs"]["filename_prefix"] = "vp_inbetween_bad/anim"
        valid, _error, _outputs, node_errors = comfy_inproc.validate(prompt)
        assert not valid and "3" in node_errors, change
    for frames, change, message in ((1, {}, "at least two keyframes"), (4, {"target_frames": 4}, "more than"),
                                    (4, {"target_fps": 4.0}, "above the animation's 8 fps")):
        prompt = node_prompt(frames=frames, **change)
        prompt["5"]["inputs"]["filename_prefix"] = prompt["6"]["inputs"]["filename_prefix"] = "vp_inbetween_bad/x"
        executor = comfy_inproc.run(prompt)
        assert not executor.success
        errors = [m[1] for m in executor.status_messages if m[0] == "execution_error"]
        assert errors and errors[0]["node_type"] == "VP_InterpolateSketch", executor.status_messages
        assert errors[0]["exception_message"].startswith("VP_InterpolateSketch: ") and message in \
            errors[0]["exception_message"]
    assert not os.path.exists(out_dir) or not os.listdir(out_dir), "a refused run wrote files"
