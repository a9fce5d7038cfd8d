"""Stroke caps and joins (SVG stroke-linecap / stroke-linejoin / stroke-miterlimit) of the rasterizer,
against an exact reference: the SVG stroke outline of the polyline (tests/stroke_reference.py),
measured by exact polygon clipping (tests/exact_coverage.py)."""
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from exact_coverage import exact_fill_coverage
from stroke_reference import stroke_outline

from pipelines.raster import rasterize
from pipelines.sketch import PathStyle, make_style
from pipelines.svg_export import frame_svg

SIZE = 64


def polyline_points(vertices, closed=False):
    """Path of straight cubics through the vertices (closed: back to the first)."""
    v = torch.tensor(vertices, dtype=torch.float64)
    nxt = torch.roll(v, -1, 0)
    seg = torch.stack([v, v + (nxt - v) / 3, v + 2 * (nxt - v) / 3], 1)
    if closed:
        return seg.reshape(-1, 2)
    return torch.cat([seg[:-1].reshape(-1, 2), v[-1:]])


def styled(vertices, width, cap, join, miterlimit=None, closed=False):
    n = len(vertices) if closed else len(vertices) - 1
    style = make_style([n], [closed], stroke_width=width)
    return replace(style, stroke_linecap=[cap], stroke_linejoin=[join],
                   stroke_miterlimit=None if miterlimit is None else [miterlimit])


def coverage(points, style, size=SIZE):
    return rasterize(points, style, (size, size), background=None)[0, ..., 3].double().numpy()


def corner(angle_deg, arm=20.0, start=(11.3, 40.2), tilt=0.03):
    """Two segments meeting at an interior angle of angle_deg (the turn is 180 - angle_deg)."""
    x0, y0 = start
    mid = (x0 + arm, y0 + arm * tilt)
    heading = math.atan2(mid[1] - y0, mid[0] - x0) + math.pi - math.radians(angle_deg)
    return [(x0, y0), mid, (mid[0] + arm * math.cos(heading), mid[1] + arm * math.sin(heading))]


CASES = [(25.0, 3.0), (70.0, 7.5), (118.0, 5.0), (171.0, 9.0)]


@pytest.mark.parametrize("angle,width", CASES)
@pytest.mark.parametrize("cap", ["butt", "square", "round"])
@pytest.mark.parametrize("join", ["miter", "bevel", "round"])
def test_caps_and_joins_match_exact_outline(angle, width, cap, join):
    if cap == join == "round":
        pytest.skip("round caps with round joins are the capsule strokes of test_raster.py")
    vertices = corner(angle)
    got = coverage(polyline_points(vertices), styled(vertices, width, cap, join))
    ref = exact_fill_coverage(stroke_outline(vertices, width, cap, join), "nonzero", SIZE, SIZE)
    err = np.abs(got - ref)
    assert ref.sum() > 10 * width
    # Butt, square, miter and bevel are polygons: exact up to float32 rounding. Round caps and joins are
    # drawn as polygons within 0.05 px of the arc.
    exact = cap != "round" and join != "round"
    assert err.max() < (2e-4 if exact else 0.06), err.max()
    assert abs(got.sum() - ref.sum()) < (1e-3 if exact else 0.02 * width)


@pytest.mark.parametrize("limit,expect", [(4.0, "bevel"), (6.0, "miter")])
def test_miter_limit_switches_to_bevel(limit, expect):
    vertices = corner(20.0)  # miter ratio 1 / sin(10 deg) = 5.76
    got = coverage(polyline_points(vertices), styled(vertices, 5.0, "butt", "miter", miterlimit=limit))
    ref = exact_fill_coverage(stroke_outline(vertices, 5.0, "butt", expect, miterlimit=limit), "nonzero", SIZE, SIZE)
    other = exact_fill_coverage(stroke_outline(vertices, 5.0, "butt", "bevel" if expect == "miter" else "miter",
                                               miterlimit=100.0), "nonzero", SIZE, SIZE)
    assert np.abs(got - ref).max() < 2e-4
    assert np.abs(got - other).max() > 0.5  # the two joins really differ here


@pytest.mark.parametrize("join", ["miter", "bevel", "round"])
def test_closed_polygon_joins_including_the_closing_one(join):
    vertices = [(14.2, 12.7), (50.1, 16.3), (41.0, 49.4), (20.5, 44.0)]
    got = coverage(polyline_points(vertices, closed=True), styled(vertices, 6.0, "butt", join, closed=True))
    ref = exact_fill_coverage(stroke_outline(vertices, 6.0, "butt", join, closed=True), "nonzero", SIZE, SIZE)
    assert np.abs(got - ref).max() < (2e-4 if join != "round" else 0.06)


def test_square_corners_of_a_mitered_rectangle():
    vertices = [(10.0, 10.0), (50.0, 10.0), (50.0, 40.0), (10.0, 40.0)]
    got = coverage(polyline_points(vertices, closed=True), styled(vertices, 4.0, "butt", "miter", closed=True))
    assert got[8, 8] == pytest.approx(1.0, abs=1e-5) and got[41, 51] == pytest.approx(1.0, abs=1e-5)
    assert got.sum() == pytest.approx(44 * 34 - 36 * 26, abs=1e-2)


@pytest.mark.parametrize("cap,area", [("butt", 0.0), ("square", 36.0), ("round", math.pi * 9)])
def test_zero_length_path(cap, area):
    pts = torch.tensor([[30.5, 30.5]] * 4)
    got = coverage(pts, styled([(0, 0), (1, 1)], 6.0, cap, "miter"))
    assert got.sum() == pytest.approx(area, abs=0.05 if cap != "round" else 0.15)  # round: a capsule's disc
    if cap == "square":  # aligned with the axes
        assert got[28:33, 28:33].min() == pytest.approx(1.0, abs=1e-5)


def test_butt_capped_arc_has_the_annulus_sector_area():
    r, c = 30.0, 0.5523 * 30.0
    pts = torch.tensor([[40.0 + r, 10.0], [40.0 + r, 10.0 + c], [40.0 + c, 10.0 + r], [40.0, 10.0 + r]])
    got = coverage(pts, styled([(0, 0), (1, 1)], 6.0, "butt", "miter"), size=80)
    assert got.sum() == pytest.approx(math.pi / 4 * (33 ** 2 - 27 ** 2), rel=3e-3)
    round_cap = coverage(pts, styled([(0, 0), (1, 1)], 6.0, "round", "round"), size=80)
    assert round_cap.sum() - got.sum() == pytest.approx(math.pi * 9, rel=0.02)  # two half discs


def test_smooth_joint_between_cubics_adds_no_spike():
    """A circle of four cubics with miter joins: the joints are smooth, the ring keeps its area."""
    r, c, cx, cy = 20.0, 0.5523 * 20.0, 32.0, 32.0
    pts = torch.tensor([
        [cx + r, cy], [cx + r, cy + c], [cx + c, cy + r], [cx, cy + r], [cx - c, cy + r], [cx - r, cy + c],
        [cx - r, cy], [cx - r, cy - c], [cx - c, cy - r], [cx, cy - r], [cx + c, cy - r], [cx + r, cy - c]])
    style = replace(make_style([4], [True], stroke_width=4.0), stroke_linejoin=["miter"], stroke_linecap=["butt"])
    got = coverage(pts, style)
    capsule = coverage(pts, make_style([4], [True], stroke_width=4.0))
    assert got.sum() == pytest.approx(math.pi * (22 ** 2 - 18 ** 2), rel=5e-3)
    assert np.abs(got - capsule).max() < 0.2


def _random_scene(seed, P=5):
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(3, 4 * P + 3 * 4, 2, generator=g) * 50 + 7
    style = make_style([1] * P + [4], [False] * P + [True], stroke_width=2.5, fill_opacity=0.0)
    return pts, replace(style, fill_opacity=torch.tensor([0.0] * P + [0.6]),
                        stroke_width=torch.rand(P + 1, generator=g) * 6 + 0.5)


def test_default_style_is_bit_identical_to_explicit_round():
    pts, style = _random_scene(0)
    P = style.num_paths
    explicit = replace(style, stroke_linecap=["round"] * P, stroke_linejoin=["round"] * P,
                       stroke_miterlimit=[4.0] * P)
    # A closed path or a one-cubic open path with round caps has no cap / joint that differs.
    mixed = replace(style, stroke_linecap=["round"] * (P - 1) + ["butt"],
                    stroke_linejoin=["miter"] * (P - 1) + ["round"])
    base = rasterize(pts, style, (SIZE, SIZE))
    assert torch.equal(base, rasterize(pts, explicit, (SIZE, SIZE)))
    assert torch.equal(base, rasterize(pts, mixed, (SIZE, SIZE)))
    butt = replace(style, stroke_linecap=["butt"] * P)
    assert not torch.equal(base, rasterize(pts, butt, (SIZE, SIZE)))


def test_gradients_match_finite_differences():
    vertices = [(12.3, 40.1), (32.0, 40.6), (22.0, 18.4), (44.7, 20.2)]
    pts = polyline_points(vertices)
    pts[4] += torch.tensor([3.0, -4.0], dtype=torch.float64)  # a real curve in the middle
    base = styled(vertices, 5.0, "square", "miter")
    base = replace(base, stroke_width=base.stroke_width.double())
    weight = torch.rand(SIZE, SIZE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def loss(p, width, join="miter", cap="square"):
        style = replace(base, stroke_width=width, stroke_linejoin=[join], stroke_linecap=[cap])
        return (rasterize(p, style, (SIZE, SIZE), background=None)[0, ..., 3] * weight).sum()

    for cap, join in (("square", "miter"), ("square", "bevel"), ("square", "round"), ("round", "miter"),
                      ("butt", "bevel")):
        p = pts.clone().requires_grad_(True)
        w = base.stroke_width.clone().requires_grad_(True)
        loss(p, w, join, cap).backward()
        h = 1e-4
        for index in (0, 3, 4, 9):
            for axis in (0, 1):
                dp = torch.zeros_like(pts)
                dp[index, axis] = h
                fd = (loss(pts + dp, base.stroke_width, join, cap) - loss(pts - dp, base.stroke_width, join, cap)) / (2 * h)
                assert float(p.grad[index, axis]) == pytest.approx(float(fd), rel=1e-3, abs=1e-3), (cap, join, index, axis)
        fd = (loss(pts, base.stroke_width + h, join, cap) - loss(pts, base.stroke_width - h, join, cap)) / (2 * h)
        assert float(w.grad[0]) == pytest.approx(float(fd), rel=1e-3), (cap, join)
        assert float(w.grad[0]) > 0


def test_select_picks_every_per_path_field():
    from pipelines.sketch import Gradient

    grad = Gradient("linear", (0.0, 1.0), ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)), (1.0, 1.0), "pad", x2=1.0)
    style = replace(make_style([1, 2, 3], [False, True, True], stroke_width=2.0), fill_rule=["nonzero", "evenodd", "evenodd"],
                    fill_group=[0, 1, 1], stroke_linecap=["butt", "round", "square"],
                    stroke_linejoin=["bevel", "miter", "round"], stroke_miterlimit=[2, 3, 4],
                    fill_paint=[None, grad, None], stroke_paint=[grad, None, None],
                    stroke_width=torch.tensor([1.0, 2.0, 3.0]))
    sub = style.select([2, 0])
    assert (sub.num_segments, sub.closed, sub.fill_rule, sub.fill_group) == ([3, 1], [True, False], ["evenodd", "nonzero"],
                                                                            [1, 0])
    assert (sub.stroke_linecap, sub.stroke_linejoin, sub.stroke_miterlimit) == (["square", "butt"], ["round", "bevel"],
                                                                               [4.0, 2.0])
    assert sub.fill_paint == [None, None] and sub.stroke_paint == [None, grad]
    assert sub.stroke_width.tolist() == [3.0, 1.0] and sub.fill_color.shape == (2, 3)
    assert style.select([1]).fill_paint == [grad]
    assert replace(style, fill_rule=None).select([0]).fill_rule is None


def test_style_fields_are_checked_and_carried():
    style = replace(make_style([1, 2], [False, True]), stroke_linecap=["butt", "square"],
                    stroke_linejoin=["bevel", "miter"], stroke_miterlimit=[2, 7.5])
    assert style.stroke_miterlimit == [2.0, 7.5]
    sub = style.select([1])
    assert (sub.stroke_linecap, sub.stroke_linejoin, sub.stroke_miterlimit) == (["square"], ["miter"], [7.5])
    assert style.to("cpu").stroke_linejoin == ["bevel", "miter"]
    with pytest.raises(ValueError, match="stroke_linecap"):
        replace(style, stroke_linecap=["flat", "butt"])
    with pytest.raises(ValueError, match="stroke_linejoin"):
        replace(style, stroke_linejoin=["miter"])
    with pytest.raises(ValueError, match="stroke_miterlimit"):
        replace(style, stroke_miterlimit=[0.5, 4])
    with pytest.raises(ValueError, match="stroke_miterlimit"):
        replace(style, stroke_miterlimit=[float("nan"), 4])
    default = make_style([1], [False])
    assert (default.linecaps(), default.linejoins(), default.miterlimits()) == (["round"], ["round"], [4.0])


def test_svg_export_writes_caps_and_joins():
    pts = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]] * 2)
    style = PathStyle([1, 1], [False, False], torch.tensor([2.0, 2.0]), torch.zeros(2, 3), torch.ones(2),
                      torch.zeros(2, 3), torch.zeros(2), stroke_linecap=["butt", "round"],
                      stroke_linejoin=["miter", "round"], stroke_miterlimit=[6.0, 4.0])
    svg = frame_svg(style, pts, 8, 8)
    assert 'stroke-linecap="butt" stroke-linejoin="miter" stroke-miterlimit="6"' in svg
    assert 'stroke-linecap="round" stroke-linejoin="round"' in svg
    default = frame_svg(make_style([1], [False]), pts[:4], 8, 8)
    assert 'stroke-linecap="round" stroke-linejoin="round"' in default and "miterlimit" not in default


def test_caps_round_trip_through_svg_export_and_the_loader():
    from pipelines.svg import load_svg_sketch

    vertices = corner(60.0)
    style = styled(vertices, 5.0, "square", "bevel")
    two = PathStyle([2, 2], [False, False], torch.tensor([5.0, 3.0]), torch.zeros(2, 3), torch.ones(2),
                    torch.zeros(2, 3), torch.zeros(2), stroke_linecap=["square", "butt"],
                    stroke_linejoin=["bevel", "miter"], stroke_miterlimit=[4.0, 9.0])
    pts = torch.cat([polyline_points(vertices), polyline_points(vertices) + 2]).float()
    back = load_svg_sketch(frame_svg(two, pts, SIZE, SIZE, background=None), canvas_size=SIZE, fit=False).sketch
    assert back.style.linecaps() == ["square", "butt"] and back.style.linejoins() == ["bevel", "miter"]
    assert back.style.miterlimits() == [4.0, 9.0]
    one = rasterize(pts[:7], style, (SIZE, SIZE))
    again = rasterize(back.points[:7], back.style.select([0]), (SIZE, SIZE))
    assert (one - again).abs().max() < 0.02  # coordinates are written rounded


def test_outlines_batch_equals_frames_one_by_one():
    pts, style = _random_scene(2)
    P = style.num_paths
    style = replace(style, stroke_linecap=["butt", "square"] * (P // 2), stroke_linejoin=["miter", "bevel"] * (P // 2))
    style = replace(style, num_segments=[1] * (P - 1) + [4])
    batch = rasterize(pts, style, (SIZE, SIZE))
    for k in range(pts.shape[0]):  # equal up to the float64 prefix sums of the fill code
        assert (batch[k] - rasterize(pts[k], style, (SIZE, SIZE))[0]).abs().max() < 1e-5


def test_outline_path_without_segments_draws_nothing():
    style = replace(make_style([0, 1], [False, False], stroke_width=3.0), stroke_linecap=["butt", "butt"])
    pts = torch.tensor([[5.0, 5.0], [10.0, 10.0], [20.0, 10.0], [30.0, 10.0], [40.0, 10.0]])
    img = rasterize(pts, style, (SIZE, SIZE))
    assert float((1 - img).sum()) == pytest.approx(3 * 30 * 3, rel=1e-4)  # only the butt line, 30 x 3 px
    alone = replace(make_style([0], [False], stroke_width=3.0), stroke_linecap=["square"])
    assert torch.equal(rasterize(pts[:1], alone, (SIZE, SIZE)), torch.ones(1, SIZE, SIZE, 3))


def test_repeated_point_at_a_corner_keeps_the_miter():
    vertices = corner(70.0)
    pts = polyline_points(vertices)
    repeated = torch.cat([pts[:4], pts[3:4].repeat(3, 1), pts[4:]])  # a zero-length cubic at the corner
    style = replace(styled(vertices, 7.5, "butt", "miter"), num_segments=[3])
    got = coverage(repeated, style)
    ref = exact_fill_coverage(stroke_outline(vertices, 7.5, "butt", "miter"), "nonzero", SIZE, SIZE)
    assert np.abs(got - ref).max() < 2e-4
