"""Procedural motion (global transform composition) and SVG export."""
import math
import re
import xml.etree.ElementTree as ET

import pytest
import torch

from pipelines.motion import PRESETS, GlobalParams, apply_global, preset_params, procedural_motion
from pipelines.sketch import Sketch, SketchAnimation, make_style
from pipelines.svg_export import animated_svg, animation_frames_svg, frame_svg, parse_color, path_data


def square_sketch():
    # one closed path, 4 straight cubic segments around (100..140, 60..100); one open stroke
    corners = [(100, 60), (140, 60), (140, 100), (100, 100)]
    pts = []
    for i in range(4):
        a, b = torch.tensor(corners[i], dtype=torch.float32), torch.tensor(corners[(i + 1) % 4], dtype=torch.float32)
        pts += [a, a + (b - a) / 3, a + 2 * (b - a) / 3]
    pts += [torch.tensor([10.0, 10.0]), torch.tensor([20.0, 10.0]), torch.tensor([30.0, 10.0]), torch.tensor([40.0, 10.0])]
    style = make_style([4, 1], [True, False], stroke_width=2.0, fill_color=(1.0, 0.0, 0.0), fill_opacity=0.5)
    return Sketch(torch.stack(pts), style, 256, 256)


def test_composition_order_is_translate_rotate_shear_scale():
    p = GlobalParams(translate=torch.tensor([[5.0, -3.0]]), rotate=torch.tensor([0.3]),
                     shear=torch.tensor([[0.2, -0.1]]), scale=torch.tensor([[1.5, 0.7]]))
    x = torch.tensor([[3.0, 4.0], [-2.0, 1.0]])
    c = torch.tensor([1.0, 2.0])
    got = apply_global(x, p, center=c)[0]
    rot = torch.tensor([[math.cos(0.3), -math.sin(0.3)], [math.sin(0.3), math.cos(0.3)]])
    shear = torch.tensor([[1.0, 0.2], [-0.1, 1.0]])
    scale = torch.diag(torch.tensor([1.5, 0.7]))
    want = ((rot @ shear @ scale) @ (x - c).T).T + c + torch.tensor([5.0, -3.0])
    assert torch.allclose(got, want, atol=1e-5)
    # a different order gives a different answer, so the test can tell
    wrong = ((scale @ shear @ rot) @ (x - c).T).T + c + torch.tensor([5.0, -3.0])
    assert not torch.allclose(got, wrong, atol=1e-3)


def test_identity_params_leave_points_unchanged():
    s = square_sketch()
    out = apply_global(s.points, GlobalParams.identity(3))
    assert out.shape == (3, s.num_points, 2)
    assert torch.allclose(out, s.points.expand(3, -1, -1), atol=1e-5)


def test_transform_is_differentiable():
    p = GlobalParams.identity(2)
    for t in (p.translate, p.rotate, p.shear, p.scale):
        t.requires_grad_(True)
    out = apply_global(square_sketch().points, p)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(0))
    (out * weights).sum().backward()
    for t in (p.translate, p.rotate, p.shear, p.scale):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_move_and_loop(preset):
    s = square_sketch()
    anim = procedural_motion(s, preset, frames=12, fps=6, amplitude=1.0, cycles=1, seed=3)
    assert isinstance(anim, SketchAnimation) and anim.num_frames == 12 and anim.fps == 6
    motion = (anim.points - s.points).abs().amax(dim=(1, 2))
    assert motion.max() > 1.0, "preset must visibly move the sketch"
    # looping: the step from the last frame back to the first is no bigger than a normal step
    steps = (anim.points.roll(-1, 0) - anim.points).norm(dim=-1).amax(dim=1)
    assert steps[-1] <= steps[:-1].max() * 1.5 + 1e-4
    assert torch.isfinite(anim.points).all()


def test_spin_turns_a_full_circle_and_amplitude_zero_is_still():
    s = square_sketch()
    p = preset_params("spin", 8, (256, 256))
    assert torch.allclose(p.rotate[1] - p.rotate[0], torch.tensor(2 * math.pi / 8), atol=1e-5)
    still = procedural_motion(s, "sway", frames=5, amplitude=0.0)
    assert torch.allclose(still.points, s.points.expand(5, -1, -1), atol=1e-4)


def test_wiggle_is_seeded():
    s = square_sketch()
    a = procedural_motion(s, "wiggle", frames=8, seed=1).points
    b = procedural_motion(s, "wiggle", frames=8, seed=1).points
    c = procedural_motion(s, "wiggle", frames=8, seed=2).points
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown motion preset"):
        preset_params("moonwalk", 4, (256, 256))


def test_path_data_round_trip_structure():
    s = square_sketch()
    d = path_data(s.style, s.points)
    assert d[0].startswith("M100 60 C") and d[0].endswith("Z") and d[0].count("C") == 4
    assert d[1].startswith("M10 10 C20 10 30 10 40 10") and "Z" not in d[1]
    nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", d[0])]
    assert len(nums) == 2 + 4 * 6


def test_frame_svg_is_valid_xml_with_styles():
    s = square_sketch()
    root = ET.fromstring(frame_svg(s.style, s.points, 256, 256))
    ns = "{http://www.w3.org/2000/svg}"
    paths = root.findall(f"{ns}path")
    assert len(paths) == 2 and root.get("width") == "256"
    assert paths[0].get("fill") == "#ff0000" and paths[0].get("fill-opacity") == "0.5"
    # an open path is filled as if closed (pipelines/sketch.py), as browsers do
    assert paths[1].get("fill") == "#ff0000" and paths[1].get("stroke-width") == "2"
    assert root.find(f"{ns}rect").get("fill") == "#ffffff"
    assert ET.fromstring(frame_svg(s.style, s.points, 256, 256, background=None)).find(f"{ns}rect") is None


def test_fill_groups_export_as_one_compound_path_and_load_back():
    from pipelines.svg import load_svg_sketch
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
           '<path d="M10 10 H90 V90 H10 Z M30 30 V70 H70 V30 Z" fill="#0000ff" stroke="#ff0000" stroke-width="2"/>'
           '<path d="M0 0 L50 0 L50 50" fill="#00ff00" fill-rule="evenodd" stroke="none"/></svg>')
    sk = load_svg_sketch(svg, canvas_size=100, fit=False).sketch
    root = ET.fromstring(frame_svg(sk.style, sk.points, 100, 100, background=None))
    paths = root.findall("{http://www.w3.org/2000/svg}path")
    # group 1: one element with both subpaths (its paths' strokes are the same); group 2: one element
    assert [(p.get("fill"), p.get("stroke"), p.get("d").count("M")) for p in paths] == [
        ("#0000ff", "#ff0000", 2), ("#00ff00", "none", 1)]
    assert paths[1].get("fill-rule") == "evenodd"
    back = load_svg_sketch(frame_svg(sk.style, sk.points, 100, 100, background=None), canvas_size=100, fit=False)
    fills = back.sketch.style
    assert fills.rules()[:2] == ["nonzero", "nonzero"] and fills.groups()[0] == fills.groups()[1]
    assert fills.rules()[-1] == "evenodd"


def test_animated_svg_has_one_animate_per_path_with_every_frame():
    s = square_sketch()
    anim = procedural_motion(s, "sway", frames=6, fps=3)
    root = ET.fromstring(animated_svg(anim))
    ns = "{http://www.w3.org/2000/svg}"
    anims = root.findall(f".//{ns}animate")
    assert len(anims) == 2
    for a in anims:
        assert a.get("attributeName") == "d" and a.get("repeatCount") == "indefinite"
        assert a.get("dur") == "2s" and a.get("calcMode") == "discrete"
        assert len(a.get("values").split(";")) == 6
    linear = ET.fromstring(animated_svg(anim, interpolation="linear")).findall(f".//{ns}animate")[0]
    vals = linear.get("values").split(";")
    assert len(vals) == 7 and vals[0] == vals[-1]
    assert len(animation_frames_svg(anim)) == 6


def test_parse_color():
    assert parse_color("#fff") == (1.0, 1.0, 1.0)
    assert parse_color("black") == (0.0, 0.0, 0.0)
    assert parse_color("none") is None
    with pytest.raises(ValueError):
        parse_color("#12345z")


def grouped_sketch(strokes_differ=False):
    """One fill group of two subpaths (outer square, inner square the other way round: a hole),
    even-odd, then an open filled path (a triangle without its closing segment)."""
    def square(x0, y0, x1, y1, reverse=False):
        corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        corners = corners[::-1] if reverse else corners
        pts = []
        for i in range(4):
            a, b = torch.tensor(corners[i], dtype=torch.float32), torch.tensor(corners[(i + 1) % 4], dtype=torch.float32)
            pts += [a, a + (b - a) / 3, a + 2 * (b - a) / 3]
        return pts
    tri = [torch.tensor(v, dtype=torch.float32) for v in
           [(20, 20), (80, 25), (140, 30), (200, 30), (170, 90), (150, 160), (120, 220)]]
    pts = square(20, 20, 180, 180) + square(60, 60, 140, 140, reverse=True) + tri
    style = make_style([4, 4, 2], [True, True, False], stroke_width=2.0, fill_color=(0.0, 0.0, 1.0),
                       fill_opacity=1.0)
    style.fill_rule = ["evenodd", "evenodd", "nonzero"]
    style.fill_group = [7, 7, 8]
    if strokes_differ:
        style.stroke_width[1] = 0.0
    return Sketch(torch.stack(pts), style, 256, 256)


def test_fill_group_is_one_path_with_subpaths_and_its_rule():
    s = grouped_sketch()
    ns = "{http://www.w3.org/2000/svg}"
    paths = ET.fromstring(frame_svg(s.style, s.points, 256, 256)).findall(f"{ns}path")
    assert len(paths) == 2
    group, open_path = paths
    assert group.get("d").count("M") == 2 and group.get("d").count("Z") == 2
    assert group.get("fill-rule") == "evenodd" and group.get("fill") == "#0000ff"
    assert group.get("stroke-width") == "2"
    # The open path keeps its fill (SVG fills an open subpath as if closed) and its open stroke.
    assert open_path.get("fill") == "#0000ff" and "Z" not in open_path.get("d")
    assert open_path.get("fill-rule") is None


def test_fill_group_with_different_strokes_keeps_paint_order():
    s = grouped_sketch(strokes_differ=True)
    ns = "{http://www.w3.org/2000/svg}"
    paths = ET.fromstring(frame_svg(s.style, s.points, 256, 256)).findall(f"{ns}path")
    # The group's fill (both subpaths, no stroke), then the stroke of its first path, then the open path.
    assert [p.get("d").count("M") for p in paths] == [2, 1, 1]
    assert paths[0].get("stroke") == "none" and paths[0].get("fill-rule") == "evenodd"
    assert paths[1].get("fill") == "none" and paths[1].get("stroke-width") == "2"
    assert paths[2].get("fill") == "#0000ff"


def test_animated_fill_group_animates_all_its_subpaths():
    s = grouped_sketch()
    anim = procedural_motion(s, "sway", frames=4, fps=4)
    ns = "{http://www.w3.org/2000/svg}"
    anims = ET.fromstring(animated_svg(anim)).findall(f".//{ns}animate")
    assert len(anims) == 2
    assert all(v.count("M") == 2 for v in anims[0].get("values").split(";"))
