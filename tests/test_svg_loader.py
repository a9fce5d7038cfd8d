"""SVG -> Sketch loader: geometry, transforms, viewport mapping, style and options.

Most files live in tests/data/svg/ and use a 100x100 px viewport, so with canvas_size=100 and fit=False the
canvas coordinates equal the numbers written in the SVG (expected values below are computed by hand).
"""
import logging
import math
from pathlib import Path

import pytest
import torch

from pipelines.svg import SVGLoadError, SVGLoadResult, load_svg_sketch

DATA = Path(__file__).parent / "data" / "svg"
IDENTITY = dict(canvas_size=100, fit=False)
SVG_OPEN = '<svg xmlns="http://www.w3.org/2000/svg" '


def load(name, **kwargs) -> SVGLoadResult:
    return load_svg_sketch((DATA / name).read_bytes(), **kwargs)


def path_points(sketch, i):
    offset = sketch.style.path_offsets()[i]
    return sketch.points[offset: offset + sketch.style.points_per_path()[i]]


def on_curve(sketch, i):
    """The segment end points of path i (every third point)."""
    return path_points(sketch, i)[::3]


def bbox(points):
    return [points[:, 0].min().item(), points[:, 1].min().item(), points[:, 0].max().item(), points[:, 1].max().item()]


def close(actual, expected, tol=1e-4):
    torch.testing.assert_close(torch.as_tensor(actual, dtype=torch.float32),
                               torch.as_tensor(expected, dtype=torch.float32), atol=tol, rtol=0)


def cubic_at(p, t):
    return ((1 - t) ** 3 * p[0] + 3 * (1 - t) ** 2 * t * p[1] + 3 * (1 - t) * t ** 2 * p[2] + t ** 3 * p[3])


# ---------------------------------------------------------------------------------------------------- commands

def test_absolute_commands():
    result = load("commands_absolute.svg", **IDENTITY)
    sk = result.sketch
    assert result.warnings == [] and result.skipped == {}
    assert sk.width == sk.height == 100
    assert sk.points.dtype == torch.float32 and sk.points.shape == (sum(sk.style.points_per_path()), 2)
    assert sk.style.num_segments == [3, 2, 2, 2, 3, 1, 2]
    assert sk.style.closed == [False, False, False, False, True, False, False]

    lines = path_points(sk, 0)  # M L H V
    close(lines[::3], [[10, 10], [50, 10], [90, 10], [90, 50]])
    close(lines[1:3], [[10 + 40 / 3, 10], [10 + 80 / 3, 10]])  # a line is a cubic with controls at 1/3 and 2/3
    close(lines[7:9], [[90, 10 + 40 / 3], [90, 10 + 80 / 3]])

    # C then S: S's first control point is the reflection of (30,50) about (40,60)
    close(path_points(sk, 1), [[10, 60], [20, 50], [30, 50], [40, 60], [50, 70], [60, 70], [70, 60]])

    # Q then T, elevated exactly to cubics (controls at 2/3 towards the quadratic control);
    # T reflects (20,70) -> (40,90)
    d = 20 / 3
    close(path_points(sk, 2), [[10, 80], [10 + d, 80 - d], [30 - d, 80 - d], [30, 80],
                               [30 + d, 80 + d], [50 - d, 80 + d], [50, 80]])

    # A: half circle of radius 10 around (70,80), sweep-flag 1 goes over the top, one cubic per quarter
    arc = path_points(sk, 3)
    close(arc[::3], [[60, 80], [70, 70], [80, 80]])
    assert arc[1, 0].item() == pytest.approx(60, abs=1e-4) and arc[1, 1].item() < 80  # tangent at the start is vertical
    for k in range(2):
        for t in (0.25, 0.5, 0.75):
            x, y = cubic_at(arc[3 * k: 3 * k + 4].double(), t).tolist()
            assert math.hypot(x - 70, y - 80) == pytest.approx(10, abs=0.01)

    closed = path_points(sk, 4)  # Z back to the start adds the closing line; 3 points per segment, wrapping
    assert closed.shape[0] == 9
    close(closed[::3], [[10, 10], [20, 10], [20, 20]])
    close(closed[7:9], [[20 - 10 / 3, 20 - 10 / 3], [20 - 20 / 3, 20 - 20 / 3]])

    # two subpaths (M ... M ...) become two paths
    close(path_points(sk, 5), [[30, 30], [30 + 10 / 3, 30], [30 + 20 / 3, 30], [40, 30]])
    close(on_curve(sk, 6), [[50, 50], [60, 50], [60, 60]])


@pytest.mark.parametrize("d, ends", [
    # ellipse rx=20 ry=10 rotated 90 degrees around (50,50): its long axis is vertical
    ("M 50 30 A 20 10 90 0 1 50 70", [[50, 30], [60, 50], [50, 70]]),  # half, clockwise (right side)
    ("M 50 30 A 20 10 90 1 0 60 50", [[50, 30], [40, 50], [50, 70], [60, 50]]),  # large arc, counter-clockwise
])
def test_rotated_elliptical_arc(d, ends):
    svg = SVG_OPEN + f'width="100" height="100"><path d="{d}" stroke="black"/></svg>'
    sk = load_svg_sketch(svg, **IDENTITY).sketch
    pts = path_points(sk, 0).double()
    close(pts[::3], ends)
    for k in range(sk.style.num_segments[0]):
        for t in (0.25, 0.5, 0.75):
            x, y = cubic_at(pts[3 * k: 3 * k + 4], t).tolist()
            assert ((x - 50) / 10) ** 2 + ((y - 50) / 20) ** 2 == pytest.approx(1, abs=2e-3)


def test_arc_radius_too_small_is_scaled_up():
    svg = SVG_OPEN + 'width="100" height="100"><path d="M 0 50 A 1 1 0 0 1 20 50" stroke="black"/></svg>'
    close(on_curve(load_svg_sketch(svg, **IDENTITY).sketch, 0), [[0, 50], [10, 40], [20, 50]])


def test_relative_commands_match_absolute():
    absolute = load("commands_absolute.svg", **IDENTITY).sketch
    relative = load("commands_relative.svg", **IDENTITY).sketch
    assert relative.style.num_segments == absolute.style.num_segments
    assert relative.style.closed == absolute.style.closed
    close(relative.points, absolute.points)


def test_segments_of_a_subpath_share_end_points():
    sk = load("commands_absolute.svg", **IDENTITY).sketch
    idx = sk.style.segment_index()
    seg_path = sk.style.segment_path()
    offsets = sk.style.path_offsets()
    for s in range(len(idx) - 1):
        if seg_path[s] == seg_path[s + 1]:
            assert idx[s, 3] == idx[s + 1, 0]  # the same point, not a copy
    for p, is_closed in enumerate(sk.style.closed):
        last = idx[seg_path == p][-1]
        if is_closed:
            assert last[3].item() == offsets[p]  # the closing segment ends at the first point
    # geometry of the wrap segment of the closed triangle: (20,20) -> (10,10)
    tri = sk.points[idx[seg_path == 4][-1]]
    close(tri[[0, 3]], [[20, 20], [10, 10]])


def test_unterminated_path_is_open_and_consecutive_subpaths_split():
    svg = SVG_OPEN + 'width="100" height="100"><path d="M 0 0 L 10 0 L 10 10" stroke="black"/>' \
                     '<path d="M 0 50 L 10 50 Z L 20 60" stroke="black"/></svg>'
    sk = load_svg_sketch(svg, **IDENTITY).sketch
    assert sk.style.num_segments == [2, 2, 1]
    assert sk.style.closed == [False, True, False]
    close(on_curve(sk, 2), [[0, 50], [20, 60]])  # after Z a new subpath starts at the subpath's first point


# ------------------------------------------------------------------------------------------------------ shapes

def test_basic_shapes():
    sk = load("shapes.svg", **IDENTITY).sketch
    assert sk.style.num_segments == [1, 2, 3, 4, 8, 4, 4]
    assert sk.style.closed == [False, False, True, True, True, True, True]
    close(on_curve(sk, 0), [[10, 10], [40, 20]])  # line
    close(on_curve(sk, 1), [[10, 30], [20, 40], [30, 30]])  # polyline
    close(on_curve(sk, 2), [[50, 10], [70, 10], [60, 25]])  # polygon (closing segment wraps)
    close(on_curve(sk, 3), [[10, 50], [40, 50], [40, 70], [10, 70]])  # rect
    # rounded rect: the corners are cut by the radius 5
    close(on_curve(sk, 4), [[55, 50], [85, 50], [90, 55], [90, 65], [85, 70], [55, 70], [50, 65], [50, 55]])
    close(bbox(path_points(sk, 4)), [50, 50, 90, 70])
    circle = path_points(sk, 5)
    close(bbox(circle), [15, 75, 35, 95])
    assert ((circle[::3] - torch.tensor([25.0, 85.0])).norm(dim=1) - 10).abs().max() < 1e-4
    close(bbox(path_points(sk, 6)), [50, 77, 90, 93])  # ellipse


# -------------------------------------------------------------------------------------------------- transforms

def test_nested_transforms():
    sk = load("transforms.svg", **IDENTITY).sketch
    expected = [
        [[12, 22], [16, 24]],  # translate(10,20) scale(2)
        [[50, 10], [45, 10]],  # translate(50,0) rotate(90): (x, y) -> (50 - y, x)
        [[7, 8], [9, 11]],  # matrix(1 0 0 1 5 5) matrix(2 0 0 3 0 0)
        [[30, 40], [30, 30]],  # translate(20 30) skewX(45): x += y
        [[50, 60], [50, 70]],  # rotate(90 50 50)
        [[6, 2], [7, 4]],  # group translate(5,0) then the path's own scale(1,2)
        [[40, 40], [42, 48]],  # translate(40,40) scale(2,8)
    ]
    assert sk.num_paths == len(expected)
    for i, ends in enumerate(expected):
        close(on_curve(sk, i), ends)
        start, end = torch.tensor(ends[0]), torch.tensor(ends[1])
        thirds = torch.stack([start + (end - start) / 3, start + 2 * (end - start) / 3])
        close(path_points(sk, i)[1:3], thirds)  # still a straight line
    # stroke width x sqrt(|det|) of the total transform
    close(sk.style.stroke_width, [1.5 * 2, 1, math.sqrt(6), 1, 1, 3 * math.sqrt(2), 4])


def test_use_and_symbol():
    sk = load("use_symbol.svg", **IDENTITY).sketch
    assert sk.num_paths == 3  # the <defs> path and the <symbol> are not drawn in place
    close(on_curve(sk, 0), [[20, 30], [30, 30]])
    close(on_curve(sk, 1), [[50, 60], [60, 60]])
    close(on_curve(sk, 2), [[70, 70], [75, 75]])


# ------------------------------------------------------------------------------------------- viewport mapping

@pytest.mark.parametrize("par, expected", [
    ("xMidYMid meet", [0, 64, 256, 192]),
    ("xMinYMin meet", [0, 0, 256, 128]),
    ("xMaxYMax meet", [0, 128, 256, 256]),
    # slice: the viewport is the whole (square) canvas, so the 512 x 256 content outside it lies off-canvas
    # and is kept whole (the rasterizer does not draw it)
    ("xMinYMin slice", [0, 0, 512, 256]),
    ("xMidYMid slice", [-128, 0, 384, 256]),
    ("xMaxYMax slice", [-256, 0, 256, 256]),
    ("none", [0, 0, 256, 256]),
])
def test_viewbox_preserve_aspect_ratio(par, expected):
    text = (DATA / "viewbox_wide.svg").read_text()
    text = text.replace('preserveAspectRatio="xMidYMid meet"', f'preserveAspectRatio="{par}"')
    sk = load_svg_sketch(text, canvas_size=256, fit=False).sketch
    close(bbox(sk.points), expected)


@pytest.mark.parametrize("attrs, expected", [
    # the document viewport (width x height) is stretched by preserveAspectRatio=none, then shown whole and centred
    ('width="200" height="100" viewBox="0 0 100 100" preserveAspectRatio="none"', [0, 64, 256, 192]),
    ('width="200" height="100" viewBox="0 0 100 100"', [64, 64, 192, 192]),
    # only a width: the height follows the viewBox aspect ratio (100 x 200 viewport)
    ('width="100" viewBox="0 0 100 100"', [0, 0, 256, 256]),
    ('width="100" viewBox="0 0 50 100"', [64, 0, 192, 256]),
])
def test_viewport_onto_canvas(attrs, expected):
    svg = SVG_OPEN + attrs + '><path d="M 0 0 H 100 V 100 H 0 Z" stroke="black"/></svg>'
    if "0 0 50 100" in attrs:
        svg = svg.replace("H 100 V 100 H 0", "H 50 V 100 H 0")
    close(bbox(load_svg_sketch(svg, canvas_size=256, fit=False).sketch.points), expected)


def test_no_viewbox_user_units_are_pixels():
    svg = SVG_OPEN + 'width="100" height="50"><path d="M 0 0 L 100 50" stroke="black"/></svg>'
    close(load_svg_sketch(svg, canvas_size=200, fit=False).sketch.points[::3], [[0, 50], [200, 150]])


def test_physical_units_and_editor_export():
    result = load("inkscape_export.svg", canvas_size=256, fit=False)
    assert result.warnings == [] and result.skipped == {}  # editor metadata and the DOCTYPE are fine
    sk = result.sketch
    assert sk.num_paths == 2
    close(path_points(sk, 0)[0], [5 * 5.12, 5 * 5.12])  # 50 mm viewport showing a 50-unit viewBox on 256 px
    close(on_curve(sk, 1), [[5 * 5.12, 45 * 5.12], [45 * 5.12, 45 * 5.12]])
    close(sk.style.stroke_width, [0.5 * 5.12] * 2)


# ------------------------------------------------------------------------------------------------------- fit

def test_fit_centres_with_margin():
    svg = SVG_OPEN + 'width="1000" height="1000"><path d="M 10 10 L 30 50"/></svg>'
    sk = load_svg_sketch(svg, canvas_size=256).sketch
    scale = 256 * 0.9 / 40  # the larger extent (y: 40) fills the canvas minus a 5 % margin on each side
    close(bbox(sk.points), [128 - 10 * scale, 12.8, 128 + 10 * scale, 243.2])


def test_fit_includes_half_stroke_width():
    svg = SVG_OPEN + 'width="1000" height="1000"><path d="M 10 10 L 30 50" stroke="red" stroke-width="4"/></svg>'
    sk = load_svg_sketch(svg, canvas_size=256).sketch
    scale = 256 * 0.9 / 44
    close(bbox(sk.points), [128 - 10 * scale, 12.8 + 2 * scale, 128 + 10 * scale, 243.2 - 2 * scale])
    close(sk.style.stroke_width, [4 * scale])


def test_fit_with_stroke_override_keeps_stroke_inside():
    svg = SVG_OPEN + 'width="1000" height="1000"><path d="M 10 10 L 30 50" stroke="red" stroke-width="4"/></svg>'
    sk = load_svg_sketch(svg, canvas_size=256, stroke_width=10.0).sketch
    y0, y1 = bbox(sk.points)[1::2]
    assert y0 - 5 == pytest.approx(12.8, abs=1e-3) and y1 + 5 == pytest.approx(243.2, abs=1e-3)
    close(sk.style.stroke_width, [10.0])


def test_fit_ignores_document_position_and_scale():
    a = SVG_OPEN + 'width="100" height="100"><path d="M 0 0 C 10 0 20 10 20 30 L 5 30 Z" stroke="black"/></svg>'
    b = SVG_OPEN + ('viewBox="0 0 5000 5000"><g transform="translate(1000,2000) scale(3)">'
                    '<path d="M 0 0 C 10 0 20 10 20 30 L 5 30 Z" stroke="black"/></g></svg>')
    close(load_svg_sketch(a).sketch.points, load_svg_sketch(b).sketch.points, tol=1e-3)


# ------------------------------------------------------------------------------------------------------- style

def test_styles_presentation_style_attribute_and_css():
    sk = load("styles.svg", **IDENTITY).sketch
    st = sk.style
    red, green, blue, black = [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]
    expected_stroke = {0: (green, 2), 1: (blue, 4), 2: (red, 5), 3: (red, 5), 4: (blue, 5), 10: (blue, 7)}
    for i, (colour, width) in expected_stroke.items():
        close(st.stroke_color[i], colour)
        assert st.stroke_width[i].item() == pytest.approx(width), i
        assert st.stroke_opacity[i].item() == pytest.approx(1.0), i
        assert st.fill_opacity[i].item() == 0.0, i  # fill="none"
    # <style> tag rule: circle { fill: blue }; no stroke
    close(st.fill_color[5], blue)
    assert st.fill_opacity[5].item() == 1.0 and st.stroke_width[5].item() == 0 and st.stroke_opacity[5].item() == 0
    # SVG's default fill is opaque black
    close(st.fill_color[6], black)
    assert st.fill_opacity[6].item() == 1.0 and st.stroke_width[6].item() == 0
    # inherited stroke/width from the outer group, opacities multiply: 0.5 * 0.5 group opacity
    close(st.stroke_color[7], [1, 0, 1])
    close(st.fill_color[7], [1, 1, 0])
    assert st.stroke_width[7].item() == pytest.approx(3)
    assert st.stroke_opacity[7].item() == pytest.approx(0.8 * 0.25)
    assert st.fill_opacity[7].item() == pytest.approx(0.5 * 0.25)
    close(st.stroke_color[8], [0x12 / 255, 0x34 / 255, 0x56 / 255])  # currentColor
    close(st.stroke_color[9], red)
    assert st.stroke_opacity[9].item() == pytest.approx(0.25, abs=0.01)  # rgba alpha x stroke-opacity


def test_css_selectors_and_specificity():
    svg = SVG_OPEN + (
        'width="100" height="100"><style>'
        '/* comment { path { stroke: #123456 } } */'
        '@media print { path { stroke: #00ffff } }'
        '#a { stroke: #0000ff } .c { stroke: #00ff00 !important; stroke-width: 2 } path { stroke: #ff0000 }'
        'path.c.d { stroke-width: 9 } g path { stroke: #ffff00 } * { stroke-opacity: 0.5 } .late { stroke: #000000 }'
        '.late { stroke: #ff00ff } path:hover { stroke: #ffff00 }'
        '</style>'
        '<path id="a" class="c" d="M 0 0 L 1 1"/>'  # !important beats the id rule
        '<path class="c d" d="M 0 0 L 1 1"/>'  # compound selector
        '<path d="M 0 0 L 1 1"/>'  # tag only; 'g path' does not match (no <g> ancestor), :hover is not supported
        '<path class="late" d="M 0 0 L 1 1" style="stroke-opacity: 1"/>'  # later rule wins; style="" beats CSS
        '</svg>')
    result = load_svg_sketch(svg, **IDENTITY)
    st = result.sketch.style
    close(st.stroke_color, [[0, 1, 0], [0, 1, 0], [1, 0, 0], [1, 0, 1]])
    close(st.stroke_width, [2, 9, 1, 1])
    close(st.stroke_opacity, [0.5, 0.5, 0.5, 1])
    css = [w for w in result.warnings if not w.startswith("unsupported stroke-linecap")]  # widths 2 and 9: caps show
    assert len(css) == 1 and "unsupported selectors" in css[0]


def test_stroke_width_override():
    sk = load("styles.svg", stroke_width=2.5, **IDENTITY).sketch
    widths = sk.style.stroke_width.tolist()
    assert widths[5] == 0 and widths[6] == 0  # unstroked paths stay unstroked
    assert all(w == pytest.approx(2.5) for i, w in enumerate(widths) if i not in (5, 6))


def test_force_black():
    sk = load("styles.svg", force_black=True, **IDENTITY).sketch
    st = sk.style
    assert (st.stroke_color == 0).all() and (st.stroke_opacity == 1).all() and (st.fill_opacity == 0).all()
    assert st.stroke_width[0].item() == pytest.approx(2)  # document width kept
    assert st.stroke_width[5].item() == pytest.approx(1.5) and st.stroke_width[6].item() == pytest.approx(1.5)
    forced = load("styles.svg", force_black=True, stroke_width=3.0, **IDENTITY).sketch
    assert (forced.style.stroke_width == 3).all()


def test_hidden_elements_are_not_drawn():
    svg = SVG_OPEN + ('width="100" height="100"><path d="M 0 0 L 1 1" stroke="black" display="none"/>'
                      '<g style="display:none"><path d="M 0 0 L 2 2" stroke="black"/></g>'
                      '<path d="M 0 0 L 3 3" stroke="black" visibility="hidden"/>'
                      '<path d="M 0 0 L 4 4" stroke="black"/></svg>')
    sk = load_svg_sketch(svg, **IDENTITY).sketch
    assert sk.num_paths == 1
    close(on_curve(sk, 0), [[0, 0], [4, 4]])


# ----------------------------------------------------------------------------------------------------- options

def test_max_paths_keeps_first_paths_and_warns():
    full = load("commands_absolute.svg", **IDENTITY).sketch
    result = load("commands_absolute.svg", max_paths=2, **IDENTITY)
    assert result.sketch.num_paths == 2
    assert result.sketch.style.num_segments == full.style.num_segments[:2]
    close(result.sketch.points, full.points[: sum(full.style.points_per_path()[:2])])
    assert any("dropped 5 of 7 paths" in w for w in result.warnings)


def test_unsupported_features_one_warning_each_with_counts(caplog):
    with caplog.at_level(logging.WARNING, logger="VideoPriors"):
        result = load("unsupported.svg", **IDENTITY)
    assert result.skipped == {"text": 2, "image": 1, "foreignObject": 1, "linearGradient": 1, "filter": 1}
    unsupported = sorted(w for w in result.warnings if w.startswith("unsupported"))
    assert len(unsupported) == 4 and len(result.warnings) == 4  # the gradient is drawn: no warning
    for feature, count in (("<text>", 2), ("<image>", 1), ("<foreignObject>", 1), ("filter", 1)):
        assert sum(w.startswith(f"unsupported {feature}: {count} element(s) affected") for w in unsupported) == 1
    assert sum("unsupported" in r.getMessage() for r in caplog.records) == 4
    sk = result.sketch
    assert sk.num_paths == 2  # the gradient-filled rect and the filtered path
    close(sk.style.fill_color[0], [0.5, 0, 0.5])  # a gradient's flat colour: the mean of its stop colours
    assert sk.style.fill_paint[0] is not None and sk.style.fill_paint[0].kind == "linear"
    assert sk.style.fill_opacity[0].item() == 1.0


def test_str_and_bytes_give_the_same_sketch():
    raw = (DATA / "shapes.svg").read_bytes()
    a = load_svg_sketch(raw, **IDENTITY).sketch
    b = load_svg_sketch(raw.decode("utf-8"), **IDENTITY).sketch
    close(a.points, b.points)
    assert a.style.num_segments == b.style.num_segments


def test_malformed_tail_keeps_valid_prefix_with_warning():
    svg = SVG_OPEN + 'width="100" height="100"><path d="M 0 0 L 10 0 L 10 10 C 1 2" stroke="black"/></svg>'
    result = load_svg_sketch(svg, **IDENTITY)
    assert result.sketch.style.num_segments == [2]
    assert len(result.warnings) == 1 and "malformed path data" in result.warnings[0]


def test_paint_servers_become_flat_colours():
    svg = SVG_OPEN + (
        'xmlns:xlink="http://www.w3.org/1999/xlink" width="100" height="100"><defs>'
        '<radialGradient id="stops"><stop stop-color="#ffffff"/><stop stop-color="#000000"/></radialGradient>'
        '<linearGradient id="reuse" xlink:href="#stops"/>'  # takes its stops from the referenced gradient
        '<pattern id="hatch" width="4" height="4"><path d="M 0 0 L 4 4"/></pattern></defs>'
        '<rect width="10" height="10" fill="url(#reuse)"/>'
        '<rect width="10" height="10" fill="url(#hatch)"/>'
        '<rect width="10" height="10" fill="url(#missing) #00ff00"/>'  # SVG fallback colour
        '<rect width="10" height="10" fill="url(#missing)"/>'  # no fallback: no fill
        '</svg>')
    result = load_svg_sketch(svg, **IDENTITY)
    st = result.sketch.style
    close(st.fill_color[:3], [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [0, 1, 0]])
    close(st.fill_opacity, [1, 1, 1, 0])
    assert result.skipped == {"radialGradient": 1, "linearGradient": 1, "pattern": 1}
    assert sorted(result.warnings) == ["unsupported pattern: 1 element(s) affected, pattern paint drawn as flat grey"]
    reuse = st.fill_paint[0]  # drawn as a gradient, its stops from the href'd radial one
    assert reuse.kind == "linear" and reuse.colors == ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    assert st.fill_paint[1:] == [None, None, None]


@pytest.mark.parametrize("kwargs", [dict(canvas_size=0), dict(canvas_size=2.5), dict(stroke_width=-1.0),
                                    dict(stroke_width=float("nan")), dict(max_paths=-1)])
def test_bad_arguments(kwargs):
    with pytest.raises(SVGLoadError):
        load("shapes.svg", **kwargs)
