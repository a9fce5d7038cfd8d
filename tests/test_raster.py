"""Tests of the pure-PyTorch vector rasterizer (pipelines/raster.py)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from exact_coverage import exact_fill_coverage

from pipelines.raster import diffvg_available, rasterize, rasterize_sketch
from pipelines.sketch import PathStyle, Sketch, SketchAnimation, make_style

KAPPA = 0.5523  # cubic Bezier circle constant


# ---------------------------------------------------------------------------------------------
# Shape builders (points in canvas pixels)


def line_points(p, q):
    """One straight open cubic from p to q: [4, 2]."""
    p, q = torch.tensor(p), torch.tensor(q)
    return torch.stack([p, p + (q - p) / 3, p + 2 * (q - p) / 3, q])


def polygon_points(vertices):
    """Closed path of straight cubics through the vertices: [3 * n, 2]."""
    v = torch.tensor(vertices)
    nxt = torch.roll(v, -1, 0)
    return torch.stack([v, v + (nxt - v) / 3, v + 2 * (nxt - v) / 3], 1).reshape(-1, 2)


def circle_points(cx, cy, r):
    """Closed path of 4 cubic arcs: [12, 2]."""
    c = KAPPA * r
    return torch.tensor([
        [cx + r, cy], [cx + r, cy + c], [cx + c, cy + r],
        [cx, cy + r], [cx - c, cy + r], [cx - r, cy + c],
        [cx - r, cy], [cx - r, cy - c], [cx - c, cy - r],
        [cx, cy - r], [cx + c, cy - r], [cx + r, cy - c],
    ])


def stroke_style(n_paths=1, width=2.0, color=(0.0, 0.0, 0.0), opacity=1.0):
    return make_style([1] * n_paths, [False] * n_paths, stroke_width=width, stroke_color=color, stroke_opacity=opacity)


def fill_style(num_segments, color=(0.0, 0.0, 0.0), opacity=1.0):
    return make_style(num_segments, [True] * len(num_segments), stroke_width=0.0, fill_color=color,
                      fill_opacity=opacity)


def ink(img):
    """Covered area of a black drawing on white: sum of (1 - image) over the pixels."""
    return float((1 - img[..., 0]).sum())


def random_strokes(K, P, size, seed, width=2.0):
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(K, 4 * P, 2, generator=g) * (size - 20) + 10
    return pts, stroke_style(P, width)


# ---------------------------------------------------------------------------------------------
# Coverage against analytic areas


@pytest.mark.parametrize("angle", [0.0, 17.0, 45.0, 90.0, 123.0])
@pytest.mark.parametrize("width", [1.0, 4.0])
def test_straight_stroke_area(angle, width):
    L, c = 60.0, torch.tensor([40.3, 37.8])
    d = torch.tensor([math.cos(math.radians(angle)), math.sin(math.radians(angle))]) * L / 2
    img = rasterize(line_points((c - d).tolist(), (c + d).tolist()), stroke_style(1, width), (80, 80))
    expected = L * width + math.pi * (width / 2) ** 2  # rectangle + two half-disc caps
    assert ink(img) == pytest.approx(expected, rel=0.01)


def test_thin_stroke_keeps_its_area():
    # Width below a pixel: coverage must scale with the width, not saturate at half a pixel.
    img = rasterize(line_points((10.0, 20.5), (70.0, 20.5)), stroke_style(1, 0.25), (80, 40))
    assert ink(img) == pytest.approx(60 * 0.25 + math.pi * 0.125 ** 2, rel=0.02)
    assert float(1 - img[0, 20, 40, 0]) == pytest.approx(0.25, abs=1e-6)


def test_filled_circle_area():
    r = 25.0
    img = rasterize(circle_points(40.0, 38.6, r), fill_style([4]), (80, 80))
    assert ink(img) == pytest.approx(math.pi * r * r, rel=0.01)


def test_stroked_circle_ring_area():
    r, w = 25.0, 3.0
    img = rasterize(circle_points(40.2, 38.6, r), make_style([4], [True], stroke_width=w), (80, 80))
    assert ink(img) == pytest.approx(2 * math.pi * r * w, rel=0.01)


def test_filled_square_is_exact_area_coverage():
    x0, y0, x1, y1 = 10.3, 12.6, 50.8, 40.1
    img = rasterize(polygon_points([(x0, y0), (x1, y0), (x1, y1), (x0, y1)]), fill_style([4]), (64, 48))
    assert ink(img) == pytest.approx((x1 - x0) * (y1 - y0), rel=1e-4)
    cov = 1 - img[0, ..., 0]
    assert float(cov[30, 10]) == pytest.approx(0.7, abs=1e-4)  # left edge column
    assert float(cov[12, 30]) == pytest.approx(0.4, abs=1e-4)  # top edge row (vertical anti-aliasing)
    assert float(cov[12, 10]) == pytest.approx(0.7 * 0.4, abs=1e-4)  # corner
    assert float(cov[25, 30]) == 1.0 and float(cov[5, 5]) == 0.0


def test_fill_clipped_by_the_canvas():
    # A square sticking out on all four sides: only the visible part is drawn, exactly.
    img = rasterize(polygon_points([(-10.5, -7.25), (70.3, -7.25), (70.3, 50.6), (-10.5, 50.6)]), fill_style([4]),
                    (64, 48))
    assert float(img.max()) == 0.0
    img = rasterize(polygon_points([(-10.5, 5.25), (20.3, 5.25), (20.3, 60.0), (-10.5, 60.0)]), fill_style([4]),
                    (64, 48))
    assert ink(img) == pytest.approx(20.3 * (48 - 5.25), rel=1e-4)


OUTER = [(8.0, 8.0), (56.0, 8.0), (56.0, 56.0), (8.0, 56.0)]
INNER = [(20.0, 20.0), (44.0, 20.0), (44.0, 44.0), (20.0, 44.0)]


@pytest.mark.parametrize("same_direction", [True, False])
def test_nonzero_winding_nested_squares(same_direction):
    # One closed path: the outer square, a bridge in, the inner square, the bridge back out.
    inner = INNER if same_direction else [INNER[0]] + INNER[:0:-1]
    verts = OUTER + [OUTER[0]] + inner + [inner[0]]
    img = rasterize(polygon_points(verts), fill_style([len(verts)]), (64, 64))[0, ..., 0]
    assert float(img[14, 32]) == 0.0  # winding 1 between the squares: filled
    # Inside the inner square the winding is 2 (filled) or 0 (a hole).
    assert float(img[32, 32]) == (0.0 if same_direction else 1.0)
    assert float(img[2, 32]) == 1.0


def test_nonzero_winding_star():
    R, c = 28.0, 32.0
    verts = [(c + R * math.cos(math.radians(-90 + 144 * i)), c + R * math.sin(math.radians(-90 + 144 * i)))
             for i in range(5)]
    img = rasterize(polygon_points(verts), fill_style([5]), (64, 64))[0, ..., 0]
    assert float(img[32, 32]) == 0.0  # winding 2 at the centre: filled (even-odd would leave a hole)
    assert float(img[int(c - R + 4), 32]) == 0.0  # top tip
    assert float(img[2, 2]) == 1.0 and float(img[60, 32]) == 1.0  # outside


# ---------------------------------------------------------------------------------------------
# Fills against exact area coverage: every slope, both rules, fill groups, open paths



def group_style(polygons, rule="nonzero", group=True, colors=None):
    """Filled closed polygons (straight cubics), one fill group unless group=False."""
    n = len(polygons)
    return PathStyle(num_segments=[len(p) for p in polygons], closed=[True] * n,
                     stroke_width=torch.zeros(n), stroke_color=torch.zeros(n, 3), stroke_opacity=torch.ones(n),
                     fill_color=torch.tensor(colors or [[0.0, 0.0, 0.0]] * n), fill_opacity=torch.ones(n),
                     fill_rule=[rule] * n, fill_group=[0] * n if group else None)


def fill_errors(polygons, rule, size):
    """|rendered - exact| coverage: (on the partly covered pixels, everywhere)."""
    W, H = size
    pts = torch.cat([polygon_points(p) for p in polygons])
    got = (1 - rasterize(pts, group_style(polygons, rule), size)[0, ..., 0]).double().numpy()
    ref = exact_fill_coverage(polygons, rule, W, H)
    err = np.abs(got - ref)
    partial = (ref > 1e-9) & (ref < 1 - 1e-9)
    return err[partial] if partial.any() else err.ravel(), err, ref, got


def rotated_rect(cx, cy, w, h, degrees):
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return [(cx + c * x - s * y, cy + s * x + c * y) for x, y in [(-w / 2, -h / 2), (w / 2, -h / 2),
                                                                  (w / 2, h / 2), (-w / 2, h / 2)]]


def test_exact_reference_is_exact():
    # The reference itself against closed forms: a half-pixel-offset square and a right triangle.
    ref = exact_fill_coverage([[(1.5, 1.25), (3.5, 1.25), (3.5, 3.0), (1.5, 3.0)]], "nonzero", 5, 4)
    assert ref[1, 1] == pytest.approx(0.5 * 0.75) and ref[2, 2] == pytest.approx(1.0) and ref.sum() == pytest.approx(3.5)
    tri = exact_fill_coverage([[(0.0, 0.0), (4.0, 0.0), (0.0, 1.0)]], "nonzero", 4, 1)
    assert tri[0] == pytest.approx([1 - 0.5 / 4, 1 - 1.5 / 4, 1 - 2.5 / 4, 1 - 3.5 / 4])


def test_shallow_edge_is_exact():
    # The case: a black quad whose top edge rises 10 px over 240 px (mean error was 0.053).
    partial, err, _, _ = fill_errors([[(8.0, 30.0), (248.0, 20.0), (248.0, 60.3), (8.0, 60.3)]], "nonzero", (256, 64))
    assert partial.size > 400
    assert float(partial.mean()) < 2e-5 and float(err.max()) < 1e-4


@pytest.mark.parametrize("degrees", [2.3859, 14.0, 30.0, 45.0, 63.0, 80.0, 88.5])
def test_fill_exact_at_every_slope(degrees):
    partial, err, _, _ = fill_errors([rotated_rect(100.37, 99.71, 150.0, 40.0, degrees)], "nonzero", (200, 200))
    assert partial.size > 300
    assert float(partial.mean()) < 2e-5 and float(err.max()) < 1e-4


R_STAR, C_STAR = 28.0, (32.3, 31.8)
STAR = [(C_STAR[0] + R_STAR * math.cos(math.radians(-90 + 144 * i)),
         C_STAR[1] + R_STAR * math.sin(math.radians(-90 + 144 * i))) for i in range(5)]
OUTER_R, INNER_R = rotated_rect(32.2, 31.7, 48.0, 44.0, 7.0), rotated_rect(32.6, 31.3, 20.0, 22.0, 7.0)
SQUARE_R = rotated_rect(32.2, 31.7, 40.0, 36.0, 11.0)


@pytest.mark.parametrize("name,polygons,rule,centre", [
    ("star nonzero", [STAR], "nonzero", 1.0),
    ("star evenodd", [STAR], "evenodd", 0.0),  # the self-intersection's centre is empty
    ("hole by opposite winding", [OUTER_R, INNER_R[::-1]], "nonzero", 0.0),
    ("same winding nonzero", [OUTER_R, INNER_R], "nonzero", 1.0),
    ("hole by even-odd", [OUTER_R, INNER_R], "evenodd", 0.0),
    ("wound twice nonzero", [SQUARE_R + SQUARE_R], "nonzero", 1.0),
    ("wound twice evenodd", [SQUARE_R + SQUARE_R], "evenodd", 0.0),
    ("overlapping subpaths nonzero", [rotated_rect(26.2, 30.7, 30.0, 26.0, 20.0),
                                      rotated_rect(38.6, 34.3, 30.0, 26.0, -15.0)], "nonzero", 1.0),
    ("overlapping subpaths evenodd", [rotated_rect(26.2, 30.7, 30.0, 26.0, 20.0),
                                      rotated_rect(38.6, 34.3, 30.0, 26.0, -15.0)], "evenodd", 0.0),
])
def test_fill_rules_are_exact(name, polygons, rule, centre):
    partial, err, ref, got = fill_errors(polygons, rule, (64, 64))
    assert float(partial.mean()) < 2e-5 and float(err.max()) < 1e-4, name
    assert got[32, 32] == pytest.approx(centre, abs=1e-6) and ref[32, 32] == pytest.approx(centre)
    assert got.sum() == pytest.approx(ref.sum(), rel=1e-5, abs=1e-3)


def test_many_vertices_in_the_same_rows_fall_back_to_bands(monkeypatch):
    # Forced band mode: edges sampled at 8 mid-heights per row near vertices, exact across.
    from pipelines import raster

    monkeypatch.setattr(raster, "FILL_SLAB_BUDGET", 0)
    for polygons, rule in [([rotated_rect(32.2, 31.7, 40.0, 36.0, 11.0)], "nonzero"), ([STAR], "evenodd")]:
        partial, err, ref, got = fill_errors(polygons, rule, (64, 64))
        assert float(err.max()) < 1 / 16 and float(partial.mean()) < 0.01
        assert got.sum() == pytest.approx(ref.sum(), rel=0.01)


def test_zigzag_of_many_edges_stays_linear():
    # 20,000 edges inside two pixel rows: exact slabs would be quadratic; the bands are not.
    xs = np.linspace(2.0, 62.0, 20000)
    # Distinct y for every vertex, so each row would be cut ~10,000 times.
    zigzag = [(float(x), 10.2 + 1.5 * (i % 2) + 1e-5 * (i % 1000)) for i, x in enumerate(xs)]
    zigzag += [(62.0, 40.0), (2.0, 40.0)]
    img = rasterize(polygon_points(zigzag), fill_style([len(zigzag)]), (64, 64))
    assert ink(img) == pytest.approx(60.0 * (40.0 - 10.95), rel=1e-3)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_points_do_not_break_the_fill(bad):
    # Edges with a non-finite end are left out; the rest of the scene renders.
    pts = torch.cat([polygon_points([(10.0, 10.0), (50.0, 12.0), (40.0, 50.0)]), circle_points(40.0, 40.0, 8.0)])
    pts[4, 0], pts[7, 1] = bad, bad
    img = rasterize(pts, fill_style([3, 4]), (64, 64))
    assert torch.isfinite(img).all()
    assert float(img[0, 40, 40, 0]) == 0.0  # the circle is still filled


def test_path_wound_twice_covers_once():
    # The case: one closed path going round a square twice (left edge was 1.0 for 0.70).
    square = [(10.3, 12.6), (50.8, 12.6), (50.8, 40.1), (10.3, 40.1)]
    img = rasterize(polygon_points(square + square), fill_style([8]), (64, 48))
    cov = 1 - img[0, ..., 0]
    assert float(cov[30, 10]) == pytest.approx(0.7, abs=1e-4)
    assert float(cov[12, 30]) == pytest.approx(0.4, abs=1e-4)
    assert ink(img) == pytest.approx((50.8 - 10.3) * (40.1 - 12.6), rel=1e-5)


def straight_open_path(vertices):
    """Open path of straight cubics through the vertices: [3 * (n - 1) + 1, 2]."""
    v = torch.tensor(vertices)
    a, b = v[:-1], v[1:]
    inner = torch.stack([a, a + (b - a) / 3, a + 2 * (b - a) / 3], 1).reshape(-1, 2)
    return torch.cat([inner, v[-1:]])


@pytest.mark.parametrize("vertices", [
    [(20.0, 20.0), (200.0, 30.0), (120.0, 220.0), (20.0, 20.0)],  # returns to its start without Z
    [(20.0, 20.0), (180.0, 40.0), (100.0, 180.0)],  # the fill closes it with a straight line
])
def test_open_path_is_filled_as_if_closed(vertices):
    style = make_style([len(vertices) - 1], [False], stroke_width=0.0, fill_opacity=1.0)
    img = rasterize(straight_open_path(vertices), style, (240, 240))
    (x0, y0), (x1, y1), (x2, y2) = vertices[:3]
    area = 0.5 * abs((x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0))
    assert ink(img) == pytest.approx(area, rel=1e-4)
    got = (1 - img[0, ..., 0]).double().numpy()
    assert np.abs(got - exact_fill_coverage([vertices[:3]], "nonzero", 240, 240)).max() < 1e-4


def test_open_path_stroke_stays_open():
    # Red fill, blue stroke: the fill's closing edge (20,20)-(100,180) gets no stroke.
    vertices = [(20.0, 20.0), (180.0, 40.0), (100.0, 180.0)]
    style = PathStyle(num_segments=[2], closed=[False], stroke_width=torch.tensor([3.0]),
                      stroke_color=torch.tensor([[0.0, 0.0, 1.0]]), stroke_opacity=torch.tensor([1.0]),
                      fill_color=torch.tensor([[1.0, 0.0, 0.0]]), fill_opacity=torch.tensor([1.0]))
    img = rasterize(straight_open_path(vertices), style, (200, 200))[0]
    # Just inside the closing edge, near its middle (60, 100): fill only; on the first segment: stroke.
    assert torch.allclose(img[100, 63], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(img[30, 100], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)
    assert float(img[100, 58].min()) == 1.0  # outside, beside the closing edge: nothing drawn


def test_fill_group_uses_first_path_and_paints_fill_before_strokes():
    # Two subpaths of one group (outer square, inner square reversed: a hole). The group's fill is
    # the first path's (red); the second path's fill attributes are ignored; the strokes (blue, green)
    # come after the group's fill.
    outer, inner = [(8.0, 8.0), (56.0, 8.0), (56.0, 56.0), (8.0, 56.0)], [(20.0, 20.0), (20.0, 44.0), (44.0, 44.0),
                                                                         (44.0, 20.0)]
    style = PathStyle(num_segments=[4, 4], closed=[True, True], stroke_width=torch.tensor([2.0, 2.0]),
                      stroke_color=torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]),
                      stroke_opacity=torch.tensor([1.0, 1.0]),
                      fill_color=torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]),
                      fill_opacity=torch.tensor([1.0, 0.0]), fill_group=[3, 3])
    img = rasterize(torch.cat([polygon_points(outer), polygon_points(inner)]), style, (64, 64))[0]
    assert torch.allclose(img[14, 32], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)  # between the squares: red fill
    assert torch.allclose(img[32, 32], torch.ones(3), atol=1e-6)  # the hole
    assert torch.allclose(img[20, 32], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)  # inner stroke over the fill's edge
    assert torch.allclose(img[8, 32], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)  # outer stroke
    # Without the group the second square is its own (unfilled) shape and the hole is filled.
    solo = rasterize(torch.cat([polygon_points(outer), polygon_points(inner)]),
                     PathStyle(**{**style.__dict__, "fill_group": None}), (64, 64))[0]
    assert torch.allclose(solo[32, 32], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Batching, compositing, empty scenes


def test_batch_equals_per_frame_loop():
    K, P = 5, 6
    pts, style = random_strokes(K, P, 64, seed=1, width=2.5)
    circles = torch.stack([circle_points(30 + k, 28 - k, 12 + k) for k in range(K)])
    pts = torch.cat([pts, circles], 1)
    style = make_style([1] * P + [4], [False] * P + [True], stroke_width=2.5, fill_opacity=0.6,
                       fill_color=(0.2, 0.4, 0.9))
    batch = rasterize(pts, style, (64, 64))
    single = torch.cat([rasterize(pts[k], style, (64, 64)) for k in range(K)])
    assert batch.shape == (K, 64, 64, 3)
    assert torch.allclose(batch, single, atol=1e-6, rtol=0)


def test_chunked_render_matches_single_pass(monkeypatch):
    # Big renders go frame chunk by frame chunk, checkpointed under autograd: same values and gradients.
    from pipelines import raster

    pts, style = random_strokes(5, 4, 32, seed=8)
    pts = torch.cat([pts, torch.stack([circle_points(16 + k, 15, 8) for k in range(5)])], 1)
    style = make_style([1] * 4 + [4], [False] * 4 + [True], stroke_width=1.5, fill_opacity=0.5)

    def render():
        p = pts.clone().requires_grad_(True)
        img = rasterize(p, style, (32, 32))
        (img * torch.linspace(0, 1, img.numel()).view(img.shape)).sum().backward()
        return img.detach(), p.grad

    img_one, grad_one = render()
    monkeypatch.setattr(raster, "CHUNK_PIXELS", 2 * 32 * 32)  # chunks of 2 frames
    img_chunked, grad_chunked = render()
    assert torch.allclose(img_one, img_chunked, atol=1e-6)
    assert torch.allclose(grad_one, grad_chunked, atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(img_one, rasterize(pts, style, (32, 32)), atol=1e-6)


def test_empty_sketch_gives_background():
    style = make_style([], [])
    img = rasterize(torch.zeros(3, 0, 2), style, (20, 10), background=(0.1, 0.2, 0.3))
    assert img.shape == (3, 10, 20, 3)
    assert torch.equal(img, torch.tensor([0.1, 0.2, 0.3]).expand(3, 10, 20, 3))
    rgba = rasterize(torch.zeros(0, 2), style, (20, 10), background=None)
    assert rgba.shape == (1, 10, 20, 4) and float(rgba.abs().max()) == 0.0


def test_half_opaque_red_over_white():
    img = rasterize(line_points((10.0, 20.0), (50.0, 20.0)), stroke_style(1, 6.0, (1.0, 0.0, 0.0), 0.5), (60, 40))
    assert torch.allclose(img[0, 20, 30], torch.tensor([1.0, 0.5, 0.5]), atol=1e-6)
    assert torch.equal(img[0, 5, 5], torch.ones(3))


def test_over_operator_order():
    # Path 0: filled blue square with an opaque red stroke (fill first, then stroke).
    # Path 1: a half-opaque green horizontal stroke across everything, on top.
    sq = polygon_points([(10.0, 10.0), (50.0, 10.0), (50.0, 50.0), (10.0, 50.0)])
    ln = line_points((0.0, 30.5), (60.0, 30.5))
    style = PathStyle(
        num_segments=[4, 1], closed=[True, False],
        stroke_width=torch.tensor([4.0, 5.0]),
        stroke_color=torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        stroke_opacity=torch.tensor([1.0, 0.5]),
        fill_color=torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]),
        fill_opacity=torch.tensor([1.0, 1.0]),  # the open path is filled as if closed: a straight line has no area
    )
    img = rasterize(torch.cat([sq, ln]), style, (60, 60), background=(1.0, 1.0, 1.0))[0]
    assert torch.allclose(img[20, 30], torch.tensor([0.0, 0.0, 1.0]))  # fill
    assert torch.allclose(img[20, 10], torch.tensor([1.0, 0.0, 0.0]))  # stroke over fill
    assert torch.allclose(img[30, 30], torch.tensor([0.0, 0.5, 0.5]))  # green 50% over blue
    assert torch.allclose(img[30, 55], torch.tensor([0.5, 1.0, 0.5]))  # green 50% over white
    assert torch.allclose(img[5, 30], torch.ones(3))  # the open straight path encloses nothing


def test_transparent_background_straight_rgba():
    img = rasterize(line_points((10.0, 20.3), (50.0, 20.3)), stroke_style(1, 6.0, (1.0, 0.5, 0.0), 0.5), (60, 40),
                    background=None)
    assert img.shape == (1, 40, 60, 4)
    assert torch.allclose(img[0, 20, 30], torch.tensor([1.0, 0.5, 0.0, 0.5]), atol=1e-6)
    # An edge pixel (row 17 is 70 % covered): partial alpha, the straight colour stays the stroke colour.
    assert torch.allclose(img[0, 17, 30], torch.tensor([1.0, 0.5, 0.0, 0.35]), atol=1e-6)
    assert float(img[0, 2, 2].abs().max()) == 0.0


def test_rasterize_sketch_accepts_sketch_and_animation():
    pts, style = random_strokes(3, 4, 48, seed=2)
    anim = SketchAnimation(pts, style, 48, 40)
    out = rasterize_sketch(anim, out_size=(96, 80))
    assert out.shape == (3, 80, 96, 3)
    assert torch.allclose(out[1:2], rasterize_sketch(anim.frame(1), out_size=(96, 80)), atol=1e-6)
    assert rasterize_sketch(Sketch(pts[0], style, 48, 40)).shape == (1, 40, 48, 3)
    with pytest.raises(TypeError):
        rasterize_sketch(pts)


def test_bad_arguments():
    pts, style = random_strokes(1, 2, 32, seed=3)
    with pytest.raises(ValueError):
        rasterize(pts[:, :5], style, (32, 32))
    with pytest.raises(ValueError):
        rasterize(pts, style, (32, 32), quality=0)
    with pytest.raises(ValueError):
        rasterize(pts, style, (32, 32), backend="cairo")


# ---------------------------------------------------------------------------------------------
# Resolution independence and supersampling


def test_render_at_4x_is_sharp_and_consistent():
    # A straight stroke spanning y in [29.3, 31.3] renders at 4x with one partial pixel per edge
    # (117 and 125 of [117.2, 125.2]), not a 4x blurred ramp.
    line = rasterize(line_points((8.0, 30.3), (56.0, 30.3)), stroke_style(1, 2.0), (64, 64), out_size=(256, 256))
    column = line[0, :, 128, 0]
    assert int(((column > 0.02) & (column < 0.98)).sum()) == 2
    assert float(column[117]) == pytest.approx(0.2, abs=1e-4) and float(column[125]) == pytest.approx(0.8, abs=1e-4)

    pts, style = random_strokes(2, 5, 64, seed=4, width=2.0)
    low = rasterize(pts, style, (64, 64))
    high = rasterize(pts, style, (64, 64), out_size=(256, 256))
    assert high.shape == (2, 256, 256, 3)
    # The same vector scene downsampled matches the native low-resolution render (the native
    # render's error is concentrated on a few pixels of sharp turns, where the union of line
    # pieces under-covers a pixel).
    down = F.avg_pool2d(high.permute(0, 3, 1, 2), 4).permute(0, 2, 3, 1)
    diff = (down - low).abs()
    assert float(diff.mean()) < 2e-3
    assert float((diff > 0.05).float().mean()) < 0.01
    assert ink(down) == pytest.approx(ink(low), rel=0.01)


def test_quality_supersampling_stays_close():
    pts, style = random_strokes(2, 6, 64, seed=5)
    q1 = rasterize(pts, style, (64, 64), quality=1)
    q2 = rasterize(pts, style, (64, 64), quality=2)
    q3 = rasterize(pts, style, (64, 64), quality=3)
    assert q2.shape == q1.shape == q3.shape
    assert float((q2 - q1).abs().mean()) < 2e-3
    assert float((q3 - q1).abs().max()) < 0.2
    assert ink(q2) == pytest.approx(ink(q1), rel=0.01)


# ---------------------------------------------------------------------------------------------
# Gradients


def _grad_scene():
    torch.manual_seed(0)
    pts = torch.cat([
        torch.tensor([[6.0, 8.0], [20.0, 30.0], [30.0, 2.0], [42.0, 20.0]]),  # open stroke
        torch.tensor([[8.0, 30.0], [25.0, 22.0], [31.0, 36.0], [44.0, 33.0]]),  # open stroke
        circle_points(24.3, 19.6, 9.0),  # filled and stroked circle
    ]).double()
    style = PathStyle(
        num_segments=[1, 1, 4], closed=[False, False, True],
        stroke_width=torch.tensor([3.0, 1.5, 2.0], dtype=torch.float64),
        stroke_color=torch.tensor([[0.9, 0.1, 0.2], [0.1, 0.3, 0.8], [0.2, 0.7, 0.1]], dtype=torch.float64),
        stroke_opacity=torch.tensor([0.7, 1.0, 0.8], dtype=torch.float64),
        fill_color=torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.6, 0.2, 0.9]], dtype=torch.float64),
        fill_opacity=torch.tensor([0.0, 0.0, 0.6], dtype=torch.float64),
    )
    weight = torch.rand(1, 40, 48, 3, dtype=torch.float64)
    return pts, style, weight


@pytest.mark.parametrize("name,index", [
    ("points", (1, 0)), ("points", (2, 1)), ("points", (5, 1)), ("points", (10, 0)), ("points", (15, 1)),
    ("stroke_width", (0,)), ("stroke_width", (1,)), ("stroke_color", (0, 1)), ("stroke_color", (2, 0)),
    ("stroke_opacity", (0,)), ("fill_color", (2, 2)), ("fill_opacity", (2,)),
])
def test_gradient_matches_finite_differences(name, index):
    pts, style, weight = _grad_scene()

    def loss(p, s):
        return (rasterize(p, s, (48, 40)) * weight).sum()

    tensors = {"points": pts, **{k: getattr(style, k) for k in
                                 ("stroke_width", "stroke_color", "stroke_opacity", "fill_color", "fill_opacity")}}
    target = tensors[name].clone().requires_grad_(True)

    def build(t):
        p = t if name == "points" else pts
        s = style if name == "points" else PathStyle(**{**style.__dict__, name: t})
        return p, s

    loss(*build(target)).backward()
    analytic = float(target.grad[index])
    eps = 1e-6
    with torch.no_grad():
        plus, minus = target.detach().clone(), target.detach().clone()
        plus[index] += eps
        minus[index] -= eps
        numeric = (float(loss(*build(plus))) - float(loss(*build(minus)))) / (2 * eps)
    assert abs(analytic) > 1e-3  # the parameter does matter to this loss
    assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-6)


def test_fill_has_vertical_gradient():
    # Moving a pixel-aligned square vertically changes the covered area of its top and bottom rows:
    # the gradient must see it (point-sampled scanlines would give exactly zero).
    base = polygon_points([(10.0, 10.25), (30.0, 10.25), (30.0, 20.25), (10.0, 20.25)]).double()
    shift = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    rows = torch.arange(32, dtype=torch.float64).view(1, 32, 1, 1)

    def loss(dy):
        img = rasterize(base + torch.cat([torch.zeros_like(dy), dy]), fill_style([4]), (40, 32))
        return (img[..., :1] * rows).sum()

    loss(shift).backward()
    eps = 1e-6
    numeric = (float(loss(torch.tensor([eps], dtype=torch.float64))) -
               float(loss(torch.tensor([-eps], dtype=torch.float64)))) / (2 * eps)
    # Area 20 x 10 of ink moves down: d/dy sum(row * (1 - cov)) = -200 (rows weighted by index).
    assert float(shift.grad) == pytest.approx(numeric, rel=1e-5)
    assert float(shift.grad) == pytest.approx(-200.0, rel=1e-5)


def _grouped_fill_scene():
    """A fill group (outer square and a reversed inner square: a hole) under even-odd, a
    self-intersecting star under even-odd, an open filled path, a stroke; vertices nudged off
    ties so that finite differences see one smooth piece."""
    g = torch.Generator().manual_seed(3)
    star = [(20.3 + 11.0 * math.cos(math.radians(-90 + 144 * i)), 22.1 + 11.0 * math.sin(math.radians(-90 + 144 * i)))
            for i in range(5)]
    outer, inner = rotated_rect(26.4, 19.2, 30.0, 24.0, 9.0), rotated_rect(26.9, 19.6, 12.0, 10.0, 9.0)[::-1]
    pts = torch.cat([polygon_points(outer), polygon_points(inner), polygon_points(star),
                     straight_open_path([(4.3, 30.2), (20.6, 35.1), (11.2, 38.7)])]).double()
    pts = pts + 0.01 * torch.rand(pts.shape, generator=g, dtype=torch.float64)
    style = PathStyle(num_segments=[4, 4, 5, 2], closed=[True, True, True, False],
                      stroke_width=torch.tensor([0.0, 0.0, 0.0, 1.5], dtype=torch.float64),
                      stroke_color=torch.zeros(4, 3, dtype=torch.float64),
                      stroke_opacity=torch.ones(4, dtype=torch.float64),
                      fill_color=torch.tensor([[0.9, 0.2, 0.1], [0.0, 0.0, 0.0], [0.1, 0.3, 0.8], [0.2, 0.7, 0.3]],
                                              dtype=torch.float64),
                      fill_opacity=torch.tensor([0.8, 0.0, 0.7, 0.9], dtype=torch.float64),
                      fill_rule=["evenodd", "evenodd", "evenodd", "nonzero"], fill_group=[0, 0, 1, 2])
    weight = torch.rand(1, 40, 48, 3, generator=g, dtype=torch.float64)
    return pts, style, weight


def test_fill_gradient_matches_finite_differences():
    # Every control point of the new fill path (groups, even-odd, crossings, an open fill):
    # autograd against central differences.
    pts, style, weight = _grouped_fill_scene()

    def loss(p):
        return (rasterize(p, style, (48, 40)) * weight).sum()

    p = pts.clone().requires_grad_(True)
    loss(p).backward()
    eps = 1e-6
    numeric = torch.zeros_like(pts)
    with torch.no_grad():
        for i in range(pts.shape[0]):
            for d in range(2):
                plus, minus = pts.clone(), pts.clone()
                plus[i, d] += eps
                minus[i, d] -= eps
                numeric[i, d] = (loss(plus) - loss(minus)) / (2 * eps)
    assert float(numeric.abs().max()) > 1.0  # the points do move the image
    assert torch.allclose(p.grad, numeric, rtol=1e-4, atol=1e-5)


def test_grouped_sketch_through_the_motion_model():
    # The motion model treats each subpath's points as its own; the rasterizer fills the group; the
    # gradient reaches the model's weights. With zero_init, frame 0 is the input sketch exactly.
    from pipelines.livesketch_model import SketchMotionModel

    pts, style, _ = _grouped_fill_scene()
    pts, style = pts.float(), PathStyle(**{k: (v.float() if torch.is_tensor(v) else v)
                                           for k, v in style.__dict__.items()})
    torch.manual_seed(0)
    model = SketchMotionModel(num_points=pts.shape[0], num_frames=3, hidden=16, zero_init=True)
    frames, _ = model(pts)
    assert frames.shape == (3, pts.shape[0], 2)
    assert torch.allclose(frames[0], pts, atol=1e-5)
    images = rasterize(frames, style, (48, 40))
    with torch.no_grad():
        assert torch.allclose(images[0], rasterize(pts, style, (48, 40))[0], atol=1e-4)
    model2 = SketchMotionModel(num_points=pts.shape[0], num_frames=3, hidden=16)
    images = rasterize(model2(pts)[0], style, (48, 40))
    (images * torch.linspace(0, 1, images.numel()).view(images.shape)).sum().backward()
    grads = [q.grad for q in model2.parameters() if q.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_gradients_flow_in_float32_batch():
    pts, style = random_strokes(3, 4, 64, seed=6)
    pts = pts.requires_grad_(True)
    width = style.stroke_width.clone().requires_grad_(True)
    style = PathStyle(**{**style.__dict__, "stroke_width": width})
    rasterize(pts, style, (64, 64)).mean().backward()
    assert torch.isfinite(pts.grad).all() and pts.grad.abs().sum() > 0
    assert (pts.grad.abs().sum(-1) > 0).float().mean() > 0.9  # nearly every control point moves the image
    assert torch.isfinite(width.grad).all() and (width.grad < 0).all()  # wider strokes darken the image


# ---------------------------------------------------------------------------------------------
# Optional diffvg backend


def test_diffvg_backend():
    pts, style = random_strokes(2, 4, 64, seed=7)
    if not diffvg_available():
        with pytest.raises(RuntimeError, match="pydiffvg"):
            rasterize(pts, style, (64, 64), backend="diffvg")
        return
    ours = rasterize(pts, style, (64, 64), quality=2)
    ref = rasterize(pts, style, (64, 64), quality=2, backend="diffvg")
    assert ref.shape == ours.shape
    assert float((ref - ours).abs().mean()) < 0.01
    assert ink(ref) == pytest.approx(ink(ours), rel=0.03)
