"""Gradient paints (SVG linearGradient / radialGradient): the loader's Gradient, the rasterizer's per-pixel
evaluation against an independent numpy evaluation of the SVG formulas, and the SVG export round trip."""
import math

import numpy as np
import pytest
import torch

from pipelines.raster import rasterize, rasterize_sketch
from pipelines.sketch import Gradient, PathStyle, make_style
from pipelines.svg import load_svg_sketch
from pipelines.svg_export import frame_svg


def rect_points(x0, y0, x1, y1):
    v = torch.tensor([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=torch.float32)
    nxt = torch.roll(v, -1, 0)
    return torch.stack([v, v + (nxt - v) / 3, v + 2 * (nxt - v) / 3], 1).reshape(-1, 2)


def svg_gradient_numpy(g: Gradient, x, y):
    """Reference: SVG gradient colour and opacity at canvas points (written from the spec formulas)."""
    m = np.array([[g.matrix[0], g.matrix[2], g.matrix[4]], [g.matrix[1], g.matrix[3], g.matrix[5]], [0, 0, 1.0]])
    inv = np.linalg.inv(m)
    gx = inv[0, 0] * x + inv[0, 1] * y + inv[0, 2]
    gy = inv[1, 0] * x + inv[1, 1] * y + inv[1, 2]
    if g.kind == "linear":
        d = np.array([g.x2 - g.x1, g.y2 - g.y1])
        t = ((gx - g.x1) * d[0] + (gy - g.y1) * d[1]) / (d @ d)
    else:  # point on circle(t): centre f + t (c - f), radius fr + t (r - fr); solve per point, largest root
        t = np.empty_like(gx)
        for k, (px, py) in enumerate(zip(gx.ravel(), gy.ravel())):
            cd = np.array([g.cx - g.fx, g.cy - g.fy])
            pd = np.array([px - g.fx, py - g.fy])
            dr = g.r - g.fr
            roots = np.roots([cd @ cd - dr * dr, -2 * (pd @ cd + g.fr * dr), pd @ pd - g.fr ** 2])
            roots = [r.real for r in roots if abs(r.imag) < 1e-9 and g.fr + r.real * dr >= 0]
            t.ravel()[k] = max(roots)
    if g.spread == "pad":
        t = np.clip(t, 0, 1)
    elif g.spread == "repeat":
        t = t - np.floor(t)
    else:
        t = np.abs(((t + 1) % 2) - 1)
    offs = np.array(g.offsets)
    stops = np.concatenate([np.array(g.colors), np.array(g.opacities)[:, None]], 1)
    out = np.stack([np.interp(t, offs, stops[:, c]) for c in range(4)], -1)
    return out[..., :3], out[..., 3]


def render_rect_with(g: Gradient, size=(64, 48), out_size=None, stroke=False):
    pts = rect_points(-2, -2, size[0] + 2, size[1] + 2)
    style = make_style([4], [True], stroke_width=0.0, fill_opacity=1.0)
    style.fill_paint = [g]
    return rasterize(pts, style, size, out_size=out_size, background=(1.0, 1.0, 1.0))[0].double().numpy()


def expected_over_white(g, W, H, scale=(1.0, 1.0)):
    ys, xs = np.mgrid[0:H, 0:W]
    rgb, a = svg_gradient_numpy(g, (xs + 0.5) / scale[0], (ys + 0.5) / scale[1])
    return rgb * a[..., None] + (1 - a[..., None])


STOPS = dict(offsets=(0.0, 0.3, 0.3, 1.0), colors=((1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0)),
             opacities=(1.0, 0.5, 1.0, 0.8))


@pytest.mark.parametrize("spread", ["pad", "reflect", "repeat"])
def test_linear_matches_svg_formula(spread):
    g = Gradient("linear", spread=spread, matrix=(1.0, 0.3, -0.2, 0.9, 5.0, 3.0), x1=10, y1=8, x2=30, y2=20,
                 **STOPS)
    img = render_rect_with(g)
    ref = expected_over_white(g, 64, 48)
    err = np.abs(img - ref).max(-1)
    assert np.median(err) < 1e-5
    assert (err < 1e-4).mean() > 0.97  # pixels on the hard stop at 0.3 may round to either side


@pytest.mark.parametrize("spread", ["pad", "reflect", "repeat"])
@pytest.mark.parametrize("focal", [(0.5, 0.5, 0.0), (0.3, 0.6, 0.0), (0.45, 0.5, 0.1)])
def test_radial_matches_svg_formula(spread, focal):
    fx, fy, fr = focal
    g = Gradient("radial", spread=spread, matrix=(40.0, 0.0, 10.0, 30.0, 10.0, 8.0), cx=0.5, cy=0.5, r=0.4, fx=fx,
                 fy=fy, fr=fr, **STOPS)
    img = render_rect_with(g)
    ref = expected_over_white(g, 64, 48)
    err = np.abs(img - ref).max(-1)
    assert np.median(err) < 1e-5
    assert (err < 1e-4).mean() > 0.97


def test_gradient_at_other_out_size_uses_canvas_units():
    g = Gradient("linear", x1=0, y1=0, x2=32, y2=0, offsets=(0.0, 1.0), colors=((0, 0, 0), (1, 1, 1)),
                 opacities=(1.0, 1.0))
    img = render_rect_with(g, size=(32, 32), out_size=(96, 64))
    ref = expected_over_white(g, 96, 64, scale=(3.0, 2.0))
    assert np.abs(img - ref).max() < 1e-4


def test_flat_paths_bit_identical_and_control_point_gradients_flow():
    pts = rect_points(5.3, 6.1, 40.7, 30.2)
    style = make_style([4], [True], stroke_width=2.0, fill_color=(0.2, 0.4, 0.6), fill_opacity=0.9)
    flat = rasterize(pts, style, (48, 40))
    style_none = PathStyle(**{**vars(style), "fill_paint": [None], "stroke_paint": [None]})
    assert torch.equal(flat, rasterize(pts, style_none, (48, 40)))
    g = Gradient("linear", x1=0, y1=0, x2=48, y2=0, offsets=(0.0, 1.0), colors=((1, 0, 0), (0, 0, 1)),
                 opacities=(1.0, 1.0))
    style_g = PathStyle(**{**vars(style), "fill_paint": [g], "stroke_paint": [None]})
    p = pts.clone().requires_grad_(True)
    img = rasterize(p, style_g, (48, 40))
    assert not torch.equal(img, flat)
    img[..., 0].sum().backward()
    assert p.grad is not None and p.grad.abs().sum() > 0


LINEAR_SVG = """<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="100" height="80">
  <linearGradient id="base" x1="0.1" x2="0.9" spreadMethod="reflect">
    <stop offset="0" stop-color="#ff0000"/>
    <stop offset="50%" style="stop-color: rgb(0, 255, 0); stop-opacity: 0.5"/>
    <stop offset="0.2" stop-color="blue"/>
  </linearGradient>
  <linearGradient id="child" xlink:href="#base" y2="0.5" gradientTransform="rotate(10)"/>
  <linearGradient id="user" href="#base" gradientUnits="userSpaceOnUse" x1="10" y1="0" x2="50%" y2="0"/>
  <rect x="10" y="10" width="60" height="40" fill="url(#child)"/>
  <rect x="10" y="55" width="80" height="20" fill="url(#user)" transform="translate(2 0)"/>
</svg>"""


def test_loader_resolves_href_units_and_stops():
    r = load_svg_sketch(LINEAR_SVG, canvas_size=None, fit=False)
    assert not any("gradient" in w for w in r.warnings)
    child, user = r.sketch.style.fill_paint
    assert child.kind == "linear" and child.spread == "reflect"  # spread inherited through xlink:href
    assert child.offsets == (0.0, 0.5, 0.5)  # a stop offset below the previous one is raised to it
    assert child.colors[1] == (0.0, 1.0, 0.0) and child.opacities == (1.0, 0.5, 1.0)  # CSS style on <stop>
    assert (child.x1, child.y1, child.x2, child.y2) == pytest.approx((0.1, 0.0, 0.9, 0.5))
    c, s = math.cos(math.radians(10)), math.sin(math.radians(10))
    # objectBoundingBox: bbox (10, 10, 60, 40), then gradientTransform
    assert child.matrix == pytest.approx((60 * c, 40 * s, -60 * s, 40 * c, 10, 10))
    assert (user.x1, user.x2) == pytest.approx((10.0, 50.0))  # userSpaceOnUse: 50% of the viewport width
    assert user.matrix == pytest.approx((1, 0, 0, 1, 2, 0))  # the element's transform
    # flat colour: the mean of the stops, kept for code that needs one colour
    assert r.sketch.style.fill_color[0].tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3], abs=1e-6)


def test_loader_renders_gradient_rect_like_formula():
    svg = """<svg xmlns="http://www.w3.org/2000/svg" width="80" height="60">
      <radialGradient id="g" cx="0.4" fx="0.3" fy="0.4" r="0.6" spreadMethod="repeat">
        <stop offset="0.1" stop-color="white"/><stop offset="0.9" stop-color="black" stop-opacity="0.7"/>
      </radialGradient>
      <rect x="0" y="0" width="80" height="60" fill="url(#g)"/></svg>"""
    r = load_svg_sketch(svg, canvas_size=None, fit=False)
    g = r.sketch.style.fill_paint[0]
    assert g.kind == "radial" and (g.cx, g.cy, g.fx, g.fy) == pytest.approx((0.4, 0.5, 0.3, 0.4))
    img = rasterize_sketch(r.sketch)[0].double().numpy()
    ref = expected_over_white(g, 80, 60)
    assert np.abs(img - ref)[2:-2, 2:-2].max() < 1e-3


def test_single_stop_zero_bbox_and_canvas_mapping():
    svg = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">
      <linearGradient id="one"><stop offset="0.5" stop-color="#00ff00" stop-opacity="0.5"/></linearGradient>
      <linearGradient id="two"><stop offset="0" stop-color="red"/><stop offset="1" stop-color="blue"/></linearGradient>
      <rect x="10" y="10" width="30" height="30" fill="url(#one)"/>
      <line x1="10" y1="60" x2="90" y2="60" stroke="url(#two) green" stroke-width="4"/>
      <line x1="10" y1="80" x2="90" y2="80" stroke="url(#two)" stroke-width="4"/>
      <rect x="50" y="10" width="40" height="30" fill="url(#two)"/>
      <linearGradient id="none"/><rect x="0" y="90" width="10" height="10" fill="url(#none) blue"/>
      <rect x="20" y="90" width="10" height="10" fill="url(#none)"/></svg>"""
    r = load_svg_sketch(svg, canvas_size=200, fit=False)
    st = r.sketch.style
    assert st.fill_paint[0] is None and st.fill_color[0].tolist() == [0.0, 1.0, 0.0]  # one stop: flat
    assert float(st.fill_opacity[0]) == pytest.approx(0.5)
    assert st.stroke_color[1].tolist() == pytest.approx([0.0, 128 / 255, 0.0])  # zero-height bbox: fallback
    assert float(st.stroke_width[2]) == 0 and float(st.fill_opacity[2]) == 0  # no fallback: draws nothing
    g = st.fill_paint[3]
    assert st.fill_color[4].tolist() == [0.0, 0.0, 1.0] and float(st.fill_opacity[4]) == 1  # no stops: fallback
    assert float(st.fill_opacity[5]) == 0  # no stops, no fallback: no fill
    assert g.matrix == pytest.approx((80, 0, 0, 60, 100, 20))  # canvas: the viewBox scaled by 2


def test_export_round_trip_keeps_gradients():
    r = load_svg_sketch(LINEAR_SVG, canvas_size=None, fit=False)
    sk = r.sketch
    svg = frame_svg(sk.style, sk.points, sk.width, sk.height, background=None)
    assert 'fill="url(#vp-fill-0)"' in svg and "<defs>" in svg
    back = load_svg_sketch(svg, canvas_size=None, fit=False).sketch
    for a, b in zip(sk.style.fill_paint, back.style.fill_paint):
        assert a.kind == b.kind and a.spread == b.spread and a.offsets == pytest.approx(b.offsets)
        assert np.allclose(a.colors, b.colors, atol=1e-7) and a.opacities == pytest.approx(b.opacities)
        ga = render_rect_with(a, size=(100, 80))
        gb = render_rect_with(b, size=(100, 80))
        assert np.abs(ga - gb).max() < 1e-5
