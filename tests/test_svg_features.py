"""SVG loader at browser level (issue 10, section 1): one test per reproducer.

The expected values follow the SVG 1.1 / 2 rendering rules (and resvg where SVG leaves a choice); they are
computed by hand in each test. Rendering is checked in tests/test_raster.py; here the loader's output (the
Sketch's geometry, fill groups, rules and styles) is checked directly.
"""
import logging
import math

import pytest
import torch

from pipelines.svg import SVGLoadError, load_svg_sketch

SVG = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
NATIVE = dict(canvas_size=None, fit=False)


def load(body, head='width="200" height="200"', **kwargs):
    return load_svg_sketch(SVG + head + ">" + body + "</svg>", **(kwargs or NATIVE))


def paths(sketch):
    """Per path: its points (the layout of pipelines/sketch.py)."""
    out = []
    for off, n in zip(sketch.style.path_offsets(), sketch.style.points_per_path()):
        out.append(sketch.points[off:off + n].double())
    return out


def bbox(points):
    return [points[:, 0].min().item(), points[:, 1].min().item(), points[:, 0].max().item(), points[:, 1].max().item()]


def close(actual, expected, tol=1e-4):
    torch.testing.assert_close(torch.as_tensor(actual, dtype=torch.float64),
                               torch.as_tensor(expected, dtype=torch.float64), atol=tol, rtol=0)


def polygon_area(pts, closed):
    """Signed area of the polygon through every point of a path (exact for straight segments: their controls lie
    on the segment, so they add no area)."""
    p = pts if closed else torch.cat([pts, pts[:1]])
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float((x * torch.roll(y, -1) - torch.roll(x, -1) * y).sum())


def group_area(sketch, rule="nonzero", samples=400):
    """Area (in px^2) of the union fill of all fill groups, by point sampling the winding numbers of the
    polygons through the path points (straight-edged test shapes only)."""
    xs = (torch.arange(samples, dtype=torch.float64) + 0.5) * sketch.width / samples
    ys = (torch.arange(samples, dtype=torch.float64) + 0.5) * sketch.height / samples
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    winding = torch.zeros_like(gx)
    for pts, closed in zip(paths(sketch), sketch.style.closed):
        p = pts if closed else torch.cat([pts, pts[:1]])
        for (x0, y0), (x1, y1) in zip(p.tolist(), torch.roll(p, -1, 0).tolist()):
            up = (y0 <= gy) & (y1 > gy)
            down = (y1 <= gy) & (y0 > gy)
            cross = (x1 - x0) * (gy - y0) - (gx - x0) * (y1 - y0)
            winding += (up & (cross > 0)).double() - (down & (cross < 0)).double()
    inside = (winding != 0) if rule == "nonzero" else (winding.remainder(2) != 0)
    return float(inside.double().mean()) * sketch.width * sketch.height


# ----------------------------------------------------------------------------------------------- fills

def test_open_subpath_with_fill_keeps_its_fill_and_an_open_stroke():
    result = load('<path d="M20 20 L180 40 L100 180" fill="green" stroke="black"/>')
    st = result.sketch.style
    assert st.num_segments == [2] and st.closed == [False]  # the stroke stays open
    close(st.fill_color[0], [0, 128 / 255, 0])
    assert st.fill_opacity[0].item() == 1.0 and st.stroke_width[0].item() == 1.0
    assert result.warnings == []


def test_compound_path_is_one_fill_group_with_opposite_windings():
    result = load('<path d="M20 20 H180 V180 H20 Z M60 60 V140 H140 V60 Z" fill="black"/>')
    st = result.sketch.style
    assert st.num_paths == 2 and st.closed == [True, True]
    assert st.fill_group[0] == st.fill_group[1] and st.rules() == ["nonzero", "nonzero"]
    outer, inner = (polygon_area(p, True) for p in paths(result.sketch))
    assert outer == pytest.approx(160 * 160) and inner == pytest.approx(-80 * 80)  # opposite winding: a hole
    assert group_area(result.sketch) == pytest.approx(160 * 160 - 80 * 80, rel=0.01)


STAR = "M100 10 L158 190 L5 72 L195 72 L42 190 Z"


@pytest.mark.parametrize("rule", ["nonzero", "evenodd"])
def test_fill_rule_of_a_self_intersecting_star(rule):
    result = load(f'<path d="{STAR}" fill-rule="{rule}"/>')
    st = result.sketch.style
    assert st.rules() == [rule] and st.num_paths == 1
    full, ring = group_area(result.sketch, "nonzero"), group_area(result.sketch, "evenodd")
    assert ring < 0.8 * full  # the pentagon in the middle is left empty by evenodd only


def test_each_shape_is_its_own_group_and_groups_are_contiguous():
    sk = load('<path d="M0 0 H10 V10 Z M20 20 H30 V30 Z"/><rect width="5" height="5"/>'
              '<path d="M0 50 H10 V60 Z M0 70 H10 V80 Z" fill-rule="evenodd"/>').sketch
    groups = sk.style.fill_group
    assert groups[0] == groups[1] and groups[1] != groups[2] and groups[2] != groups[3] and groups[3] == groups[4]
    assert sk.style.rules() == ["nonzero", "nonzero", "nonzero", "evenodd", "evenodd"]


# -------------------------------------------------------------------------------------------- viewports

ALIGN = {"Min": 0.0, "Mid": 0.5, "Max": 1.0}


@pytest.mark.parametrize("x", ["Min", "Mid", "Max"])
@pytest.mark.parametrize("y", ["Min", "Mid", "Max"])
@pytest.mark.parametrize("mode", ["meet", "slice"])
def test_preserve_aspect_ratio_alignment(x, y, mode):
    # a 100 x 50 viewBox filled by a rect, shown in a 200 x 200 viewport (the native canvas)
    result = load('<rect width="100" height="50"/>',
                  head=f'width="200" height="200" viewBox="0 0 100 50" preserveAspectRatio="x{x}Y{y} {mode}"')
    sk = result.sketch
    assert (sk.width, sk.height) == (200, 200)
    scale = 2.0 if mode == "meet" else 4.0
    ox, oy = (200 - 100 * scale) * ALIGN[x], (200 - 50 * scale) * ALIGN[y]
    close(bbox(torch.cat(paths(sk))), [ox, oy, ox + 100 * scale, oy + 50 * scale])
    # what lies on the canvas (slice: the part inside the viewport; the rest is off-canvas)
    visible = (min(200.0, ox + 100 * scale) - max(0.0, ox)) * (min(200.0, oy + 50 * scale) - max(0.0, oy))
    assert group_area(sk) == pytest.approx(visible, rel=0.01)


@pytest.mark.parametrize("par, expected", [("xMinYMid slice", [0, 0, 100, 50]), ("xMaxYMax meet", [50, 0, 100, 50])])
def test_letterboxed_viewport_is_clipped_on_a_square_canvas(par, expected):
    # a 200 x 100 viewport on a 100 px canvas is shown at y 25..75; slice content beyond it would be drawn in
    # the margins, so it is clipped to the viewport
    sk = load('<rect width="100" height="100" fill="blue"/>',
              head=f'width="200" height="100" viewBox="0 0 100 100" preserveAspectRatio="{par}"',
              canvas_size=100, fit=False).sketch
    close(bbox(torch.cat(paths(sk))), [expected[0], 25 + expected[1] / 2, expected[2], 25 + expected[3]])


def test_preserve_aspect_ratio_none_stretches():
    sk = load('<circle cx="50" cy="25" r="25"/>',
              head='width="200" height="200" viewBox="0 0 100 50" preserveAspectRatio="none"').sketch
    close(bbox(paths(sk)[0]), [50, 0, 150, 200])  # x scaled by 2, y by 4: the circle becomes an ellipse


def test_canvas_mode_clips_to_the_centred_viewport():
    # 200 x 100 viewport on a 100 px square canvas: scale 0.5, centred vertically (y offset 25); the rect
    # sticking out of the viewport is cut at its border instead of being drawn over the letterbox
    sk = load('<rect x="-50" y="50" width="300" height="100" fill="red"/>',
              head='width="200" height="100"', canvas_size=100, fit=False).sketch
    close(bbox(torch.cat(paths(sk))), [0, 50, 100, 75])


def test_nested_svg_viewport_and_clip():
    sk = load('<svg x="50" y="40" width="100" height="80" viewBox="0 0 10 10"><rect width="20" height="20"/></svg>'
              '<svg x="10" y="10" width="30" height="30" overflow="visible"><rect width="60" height="5"/></svg>').sketch
    # viewBox 10x10 in 100x80: meet scale 8, centred horizontally (x offset 10): the rect would cover
    # [60, 200] x [40, 200]; the nested viewport clips it to [60, 150] x [40, 120] ... and the viewBox area
    # [60, 140] is what meet shows, but content outside the viewBox and inside the viewport is visible too.
    close(bbox(paths(sk)[0]), [60, 40, 150, 120])
    close(bbox(paths(sk)[1]), [10, 10, 70, 15])  # overflow="visible": not clipped


def test_nested_svg_percentages_resolve_against_the_parent_viewport():
    sk = load('<svg x="10%" y="25%" width="50%" height="50%"><rect width="100%" height="100%"/></svg>',
              head='width="200" height="100"').sketch
    close(bbox(paths(sk)[0]), [20, 25, 120, 75])


def test_symbol_with_viewbox_instanced_by_use_with_size():
    sk = load('<defs><symbol id="s" viewBox="0 0 10 10"><circle cx="5" cy="5" r="5"/></symbol></defs>'
              '<use href="#s" x="10" y="20" width="40" height="40"/>'
              '<use xlink:href="#s" x="100" y="100" width="80" height="40"/>').sketch
    close(bbox(paths(sk)[0]), [10, 20, 50, 60])
    close(bbox(paths(sk)[1]), [120, 100, 160, 140])  # meet: a 40 px circle centred in 80 x 40


def test_symbol_content_outside_its_viewbox_is_clipped():
    sk = load('<symbol id="s" viewBox="0 0 10 10"><rect x="5" y="5" width="10" height="10"/></symbol>'
              '<use href="#s" width="100" height="100"/>').sketch
    close(bbox(paths(sk)[0]), [50, 50, 100, 100])


def test_native_mode_keeps_a_non_square_document():
    sk = load('<rect x="10" y="10" width="20" height="20"/>', head='viewBox="0 0 300 150"').sketch
    assert (sk.width, sk.height) == (300, 150)
    close(bbox(paths(sk)[0]), [10, 10, 30, 30])


# ---------------------------------------------------------------------------------------------- switch

def test_switch_draws_only_the_first_child_whose_conditions_hold():
    sk = load('<switch>'
              '<rect width="1" height="1" systemLanguage="fr, de"/>'  # not the user's language (en-US)
              '<rect width="2" height="2" requiredExtensions="http://example.org/x"/>'  # no extension supported
              '<!-- a comment is not a child element -->'
              '<rect width="3" height="3" systemLanguage="en-GB" requiredFeatures="http://www.w3.org/TR/SVG11/feature#Shape"/>'
              '<rect width="4" height="4"/>'
              '</switch>'
              '<rect width="5" height="5" systemLanguage="ru"/>').sketch  # conditions apply outside <switch> too
    assert sk.num_paths == 1
    close(bbox(paths(sk)[0]), [0, 0, 3, 3])


def test_switch_chooses_an_unsupported_child_and_warns():
    result = load('<switch><text>hi</text><rect width="4" height="4"/></switch><rect width="9" height="9"/>')
    assert result.sketch.num_paths == 1  # the text is the chosen child: the rect after it is not drawn
    assert result.warnings == ["unsupported <text>: 1 element(s) affected, not drawn (text is not supported)"]


# ----------------------------------------------------------------------------------------------- units

def test_em_ex_and_percent_units():
    sk = load('<g font-size="20"><rect x="1em" y="2ex" width="50%" height="10%"/>'
              '<g font-size="150%"><rect width="1em" height="1ex"/></g></g>', head='width="200" height="100"').sketch
    close(bbox(paths(sk)[0]), [20, 20, 120, 30])  # ex = em / 2 (no font metrics, as resvg)
    close(bbox(paths(sk)[1]), [0, 0, 30, 15])


def test_physical_units():
    sk = load('<line x1="1in" y1="0" x2="2.54cm" y2="72pt" stroke="black" stroke-width="1pc"/>').sketch
    close(paths(sk)[0][[0, -1]], [[96, 0], [96, 96]])
    assert sk.style.stroke_width[0].item() == pytest.approx(16)


# --------------------------------------------------------------------------------------------- cascade

@pytest.mark.parametrize("css, attrs, expected", [
    ("rect { fill: #00ff00 }", 'fill="#ff0000"', [0, 1, 0]),  # a style sheet beats a presentation attribute
    ("#r { fill: #00ff00 }", 'style="fill: #0000ff"', [0, 0, 1]),  # style="" beats any rule
    ("rect { fill: #00ff00 !important }", 'style="fill: #0000ff"', [0, 1, 0]),  # !important beats style=""
    ("#r { fill: #00ff00 !important }", 'style="fill: #0000ff !important"', [0, 0, 1]),  # ...but not style !important
    ("#r { fill: #00ff00 !important } rect.c { fill: #0000ff !important }", "", [0, 1, 0]),  # id > class + type
    ("rect.c { fill: #00ff00 } rect { fill: #0000ff }", "", [0, 1, 0]),  # specificity, not order
    (".c { fill: #0000ff } rect { fill: #00ff00 }", "", [0, 0, 1]),  # class beats type
    ("svg > rect { fill: #00ff00 } g rect { fill: #ff0000 }", "", [0, 1, 0]),  # no <g> ancestor
    ("[data-x] { fill: #00ff00 }", 'data-x="1"', [0, 1, 0]),  # attribute selector
    ("rect { fill: bogus } rect { fill: #00ff00; fill: notacolour }", "", [0, 1, 0]),  # invalid values skipped
])
def test_css_cascade(css, attrs, expected):
    sk = load(f'<style>{css}</style><rect id="r" class="c" width="10" height="10" {attrs}/>').sketch
    close(sk.style.fill_color[0], expected)


def test_inheritance_and_currentcolor_through_use():
    sk = load('<defs><path id="p" d="M0 0 H10" stroke="currentColor"/></defs>'
              '<g color="#0000ff" stroke-width="3"><use href="#p"/></g>').sketch
    close(sk.style.stroke_color[0], [0, 0, 1])
    assert sk.style.stroke_width[0].item() == pytest.approx(3)


# ----------------------------------------------------------------------------------------------- dashes

def test_dasharray_and_offset_split_the_stroke_into_pieces():
    result = load('<path d="M0 10 H100" stroke="#ff0000" stroke-width="2" stroke-linecap="round" fill="none" '
                  'stroke-opacity="0.5" stroke-dasharray="20 10" stroke-dashoffset="5"/>')
    sk = result.sketch
    # the pattern starts 5 units in: dashes [0, 15], [25, 45], [55, 75], [85, 100]
    ends = [bbox(p)[0::2] for p in paths(sk)]
    close(ends, [[0, 15], [25, 45], [55, 75], [85, 100]], tol=0.05)
    st = sk.style
    assert len(set(st.fill_group)) == 4 and (st.fill_opacity == 0).all()
    close(st.stroke_color, [[1, 0, 0]] * 4)
    close(st.stroke_width, [2] * 4)
    close(st.stroke_opacity, [0.5] * 4)
    assert result.warnings == []


def test_dashes_follow_curves_by_arc_length_and_restart_per_subpath():
    sk = load('<circle cx="100" cy="100" r="50" fill="none" stroke="black" stroke-linecap="round" '
              'stroke-dasharray="10"/><path d="M0 0 H30 M0 20 H30" stroke="black" stroke-linecap="round" '
              'stroke-dasharray="10" fill="none"/>').sketch
    circle = paths(sk)[:-4]
    assert len(circle) == math.ceil(2 * math.pi * 50 / 20)  # 315 units: 16 dashes of 10 with gaps of 10
    for p in circle[:-1]:
        chord = (p[-1] - p[0]).norm().item()
        assert chord == pytest.approx(2 * 50 * math.sin(10 / 50 / 2), abs=0.05)
    lines = [bbox(p)[0::2] for p in paths(sk)[-4:]]
    close(lines, [[0, 10], [20, 30], [0, 10], [20, 30]], tol=1e-3)


def test_dashes_keep_the_elements_caps_and_joins():
    result = load('<path d="M0 10 H100" stroke="black" stroke-width="4" stroke-dasharray="20 10" fill="none" '
                  'stroke-linejoin="bevel" stroke-miterlimit="2"/>'
                  '<path d="M0 50 H100" stroke="black" stroke-width="4" stroke-dasharray="0 10" fill="none"/>'
                  '<path d="M0 90 H30" stroke="black" stroke-width="4" stroke-dasharray="0 10" fill="none" '
                  'stroke-linecap="square"/>')
    st = result.sketch.style
    # the butt-capped zero-length dashes of the second path draw nothing; the square-capped ones are tiny pieces
    assert st.num_paths == 4 + 3  # dots at 0, 10 and 20 (a dash starting at the very end is not drawn)
    ends = [bbox(p)[0::2] for p in paths(result.sketch)[:4]]
    close(ends, [[0, 20], [30, 50], [60, 80], [90, 100]], tol=0.05)  # exact dashes: the caps are drawn
    assert st.linecaps() == ["butt"] * 4 + ["square"] * 3
    assert st.linejoins()[:4] == ["bevel"] * 4 and st.miterlimits()[:4] == [2.0] * 4
    assert result.warnings == []


def test_caps_and_joins_follow_the_cascade_and_force_black_rounds_them():
    svg = ('<g stroke-linecap="square" stroke-linejoin="bevel"><path d="M0 0 L10 10 L20 0" stroke="black"/>'
           '<path d="M0 20 L10 30 L20 20" stroke="black" '
           'style="stroke-linecap: butt; stroke-linejoin: miter-clip"/></g>'
           '<rect width="5" height="5" stroke="black"/>')
    result = load(svg)
    st = result.sketch.style
    assert st.linecaps() == ["square", "butt", "butt"] and st.linejoins() == ["bevel", "miter", "miter"]
    assert [w.split(":")[0] for w in result.warnings] == ["unsupported stroke-linejoin"]
    black = load(svg, canvas_size=64, force_black=True).sketch.style
    assert black.linecaps() == ["round"] * 3 and black.linejoins() == ["round"] * 3


def test_butt_capped_dashes_keep_their_length_and_cap():
    result = load('<path d="M0 10 H100" stroke="black" stroke-width="4" stroke-dasharray="20 10" fill="none"/>')
    ends = [bbox(p)[0::2] for p in paths(result.sketch)]
    close(ends, [[0, 20], [30, 50], [60, 80], [90, 100]], tol=0.05)  # the rasterizer draws the butt caps
    assert result.sketch.style.linecaps() == ["butt"] * 4 and not result.warnings


def test_caps_joins_and_miter_limit_reach_the_sketch():
    sk = load('<path d="M10 10 L90 20 L20 80" fill="none" stroke="black" stroke-width="6" stroke-miterlimit="7" '
              'stroke-linejoin="bevel"/><g stroke-linecap="square" stroke-linejoin="round">'
              '<path d="M10 90 H90" stroke="red"/></g><path d="M5 5 H9" stroke="blue" stroke-miterlimit="0.5"/>'
              '<path d="M10 50 L50 60 L90 50" stroke="red" stroke-linejoin="miter-clip" fill="none"/>')
    st = sk.sketch.style
    assert st.linecaps() == ["butt", "square", "butt", "butt"]
    assert st.linejoins() == ["bevel", "round", "miter", "miter"]  # miter-clip (SVG 2) is drawn as miter
    assert st.miterlimits() == [7.0, 4.0, 4.0, 4.0]  # below 1 is invalid: the initial value stays
    assert [w.split(":")[0] for w in sk.warnings] == ["unsupported stroke-linejoin"]


def test_round_caps_and_joins_everywhere_stay_the_default_style():
    sk = load('<path d="M10 10 L90 20 L20 80" fill="none" stroke="black" stroke-linecap="round" '
              'stroke-linejoin="round"/>').sketch
    assert sk.style.stroke_linecap is None and sk.style.stroke_linejoin is None
    forced = load_svg_sketch(f'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
                             '<path d="M10 10 L90 20" stroke="black"/></svg>', force_black=True).sketch
    assert forced.style.stroke_linecap is None  # LiveSketch's normalisation keeps diffvg's round strokes


def test_filled_dashed_shape_keeps_its_fill_group_without_stroke():
    sk = load('<rect width="100" height="100" fill="blue" stroke="black" stroke-width="1" '
              'stroke-dasharray="10 10"/>').sketch
    st = sk.style
    assert st.fill_opacity[0].item() == 1 and st.stroke_width[0].item() == 0  # the fill, undashed
    assert (st.fill_opacity[1:] == 0).all() and (st.stroke_width[1:] == 1).all() and st.num_paths == 1 + 20


@pytest.mark.parametrize("dashes", ["none", "0 0", "5 -1", "oops"])
def test_invalid_or_empty_dasharray_draws_a_solid_stroke(dashes):
    sk = load(f'<path d="M0 0 H100" stroke="black" stroke-dasharray="{dashes}"/>').sketch
    assert sk.num_paths == 1 and sk.style.num_segments == [1]


# ------------------------------------------------------------------------------------- unsupported features

def test_every_unsupported_feature_gives_one_warning_with_its_count(caplog):
    body = ('<defs><filter id="f"/><mask id="m"/><clipPath id="c"><circle r="5"/></clipPath>'
            '<pattern id="p" width="2" height="2"/>'
            '<linearGradient id="g"><stop stop-color="#ff0000"/><stop stop-color="#0000ff"/></linearGradient>'
            '<text id="unused">never drawn: in defs</text></defs>'
            '<rect width="10" height="10" filter="url(#f)"/><circle r="5" style="filter: url(#f)"/>'
            '<rect width="10" height="10" mask="url(#m)"/>'
            '<rect width="10" height="10" clip-path="url(#c)"/>'
            '<rect width="10" height="10" fill="url(#p)"/>'
            '<rect width="10" height="10" fill="url(#g)"/><rect width="10" height="10" stroke="url(#g)"/>'
            '<text>a</text><text>b</text><g><text>c</text></g>'
            '<image width="10" height="10" href="data:image/png;base64,AAAA"/>'
            '<foreignObject width="10" height="10"/>')
    with caplog.at_level(logging.WARNING, logger="VideoPriors"):
        result = load(body)
    counts = {}
    for w in result.warnings:
        assert w.startswith("unsupported ")
        feature, _, rest = w[len("unsupported "):].partition(": ")
        assert feature not in counts  # one warning per feature
        counts[feature] = int(rest.split()[0])
    assert counts == {"filter": 2, "mask": 1, "clip-path": 1, "pattern": 1,  # gradients are drawn
                      "<text>": 3, "<image>": 1, "<foreignObject>": 1}
    assert len(caplog.records) == len(result.warnings)
    # gradients keep their fallback: the mean of the stop colours
    st = result.sketch.style
    close(st.fill_color[st.fill_opacity.nonzero().flatten().tolist()[-2]], [0.5, 0, 0.5])


def test_clip_path_of_one_rect_clips_exactly():
    result = load('<clipPath id="c" transform="translate(10 0)"><rect x="10" y="20" width="50" height="30"/></clipPath>'
                  '<g clip-path="url(#c)" transform="scale(2)"><rect width="100" height="100" fill="red"/>'
                  '<path d="M0 30 H200" stroke="black" stroke-linecap="round" fill="none"/></g>')
    sk = result.sketch
    assert result.warnings == []
    # the clip rect [20, 70] x [20, 50] lives in the group's user space (scale 2): [40, 140] x [40, 100]
    close(bbox(paths(sk)[0]), [40, 40, 140, 100])
    assert group_area(sk) == pytest.approx(100 * 60, rel=0.01)
    close(bbox(paths(sk)[1]), [40, 60, 140, 60])  # the stroke is cut where it leaves the clip


def test_features_counted_per_use_instance():
    result = load('<defs><g id="g"><text>x</text><rect width="1" height="1" filter="url(#nope)"/></g></defs>'
                  '<use href="#g"/><use href="#g" x="5"/>')
    assert sorted(result.warnings) == [
        "unsupported <text>: 2 element(s) affected, not drawn (text is not supported)",
        "unsupported filter: 2 element(s) affected, drawn without the filter"]


def test_only_unsupported_content_is_an_empty_svg_error_naming_it():
    with pytest.raises(SVGLoadError, match="<text>"):
        load('<text>hello</text>')


@pytest.mark.parametrize("body", [
    '<clipPath id="c"><rect width="5" height="5"/></clipPath><g transform="scale(0)" clip-path="url(#c)">'
    '<rect width="9" height="9"/></g><rect width="1" height="1"/>',  # singular transform and a clip path
    '<rect width="9" height="9" transform="matrix(0 0 0 0 0 0)" stroke="black"/><rect width="1" height="1"/>',
])
def test_singular_transforms_draw_nothing(body):
    sk = load(body, canvas_size=32, force_black=True).sketch  # force_black would otherwise stroke a collapsed shape
    assert sk.num_paths == 1 and torch.isfinite(sk.points).all()


def test_fit_with_a_denormal_extent_stays_finite():
    sk = load('<line x1="0" y1="0" x2="0" y2="1e-320" stroke="black"/>', head="", canvas_size=64).sketch
    assert torch.isfinite(sk.points).all() and torch.isfinite(sk.style.stroke_width).all()


def test_css_combinators_need_backtracking():
    # 'g.x > g rect': the rect's nearest <g> is not a child of g.x, its grandparent is; a greedy nearest-ancestor
    # match would miss it. 'g.y > rect' must not match a grandchild.
    sk = load('<style>g.x > g rect { fill: #00ff00 } g.y > rect { fill: #ff0000 }</style>'
              '<g class="x y"><g><g><rect width="1" height="1"/></g></g></g>').sketch
    close(sk.style.fill_color[0], [0, 1, 0])


def test_nested_viewports_clip_to_their_intersection():
    # five nested viewports, each 80 wide and shifted by 10: the innermost rect [50, 130] is cut at 90, the
    # right side of the first viewport; the clips of the levels are merged into one rectangle
    nest = '<svg x="10" width="80" height="100">' * 5 + '<rect width="100%" height="10"/>' + '</svg>' * 5
    sk = load(nest).sketch
    close(bbox(paths(sk)[0]), [50, 0, 90, 10])


def test_many_rotated_viewports_stay_bounded_and_warn():
    nest = '<g transform="rotate(7 100 100)"><svg width="200" height="200">' * 20 + \
        '<circle cx="100" cy="100" r="90" fill="black"/>' + '</svg></g>' * 20
    result = load(nest)
    # 16 rotated viewports clip; the 4 innermost are reported
    assert any(w.startswith("unsupported viewport clip: 4 element(s)") for w in result.warnings)
    assert result.sketch.num_paths == 1


def test_animations_and_unknown_elements_are_reported():
    result = load('<path d="M0 0 H10" stroke="black"><animate attributeName="d" values="M0 0 H10;M0 0 H20"/></path>'
                  '<g><set attributeName="opacity" to="0"/></g><blink/><rect width="1" height="1"/>')
    assert sorted(result.warnings) == [
        "unsupported animation: 2 element(s) affected, SMIL animation ignored: the document's static state is drawn",
        "unsupported unknown element: 1 element(s) affected, not drawn (not an SVG element; browsers do not draw it "
        "either)"]


def test_zero_length_subpaths_draw_nothing_with_butt_caps():
    sk = load('<path d="M 10 10 L 10 10 M 20 20 L 30 20" stroke="black" stroke-width="4" fill="none"/>'
              '<path d="M 50 50 Z" stroke="black" stroke-linecap="round"/><path d="M 60 60 L 60 60" '
              'stroke="black" stroke-width="4" stroke-linecap="round"/>').sketch
    # the butt-capped dot is dropped; the round-capped one stays (a dot, as in SVG); 'M x y Z' has no segment
    assert sk.num_paths == 2
    close(bbox(paths(sk)[0]), [20, 20, 30, 20])
    close(bbox(paths(sk)[1]), [60, 60, 60, 60])


def test_group_opacity_warns_only_where_shapes_overlap():
    apart = load('<g opacity="0.5"><rect width="10" height="10"/><rect x="50" width="10" height="10"/></g>')
    assert apart.warnings == []  # per-path opacity is exact for shapes that do not overlap
    close(apart.sketch.style.fill_opacity, [0.5, 0.5])
    overlapping = load('<g opacity="0.5"><rect width="10" height="10"/><rect x="5" width="10" height="10"/></g>')
    assert [w.split(":")[0] for w in overlapping.warnings] == ["unsupported group opacity"]


ARROW = ('<marker id="a" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="4" markerHeight="4" orient="auto">'
         '<path d="M0 0 L10 5 L0 10 Z"/></marker>')


def test_marker_end_arrow_is_placed_scaled_and_oriented():
    sk = load(ARROW + '<path d="M10 50 H90" stroke="black" stroke-width="2" marker-end="url(#a)" fill="none"/>'
              '<path d="M150 10 V90" stroke="black" stroke-width="2" marker-end="url(#a)" fill="none"/>').sketch
    assert sk.num_paths == 4
    # viewBox 10 -> 4 px viewport (x0.4), markerUnits=strokeWidth (x2); the tip (refX, refY) sits on the end
    close(bbox(paths(sk)[1]), [82, 46, 90, 54])
    close(bbox(paths(sk)[3]), [146, 82, 154, 90])  # orient="auto" on a downward line: rotated 90 degrees
    close(sk.style.fill_opacity[[1, 3]], [1, 1])  # the marker's content inherits from the document, not the path


def test_marker_start_mid_end_and_auto_start_reverse():
    marker = ARROW.replace('orient="auto"', 'orient="auto-start-reverse"')
    sk = load(marker + '<polyline points="10 10 50 10 50 50" stroke="black" fill="none" stroke-width="1" '
              'marker-start="url(#a)" marker-mid="url(#a)" marker-end="url(#a)"/>').sketch
    assert sk.num_paths == 4
    close(bbox(paths(sk)[1]), [10, 8, 14, 12])  # start, reversed: the tip points back along -x onto (10, 10)
    close(bbox(paths(sk)[3]), [48, 46, 52, 50])  # end: pointing down onto (50, 50)
    # the corner: oriented along the bisector of east and south (45 degrees), the tip on (50, 10) and the body
    # up-left of it: back corners (-4, -2) and (-4, 2) (after the x0.4 viewBox scale) rotated by 45 degrees
    r = math.sqrt(0.5)
    close(bbox(paths(sk)[2]), [50 - 6 * r, 10 - 6 * r, 50, 10])


def test_marker_shorthand_and_budget():
    dots = '<marker id="d" markerWidth="2" markerHeight="2" refX="1" refY="1"><circle cx="1" cy="1" r="1"/></marker>'
    sk = load(dots + '<path d="M0 0 L10 0 L20 0" style="marker: url(#d)" stroke="black" fill="none"/>').sketch
    assert sk.num_paths == 1 + 3  # start, mid and end from the 'marker' shorthand
    plain = load(dots + '<path d="M0 0 L10 0 L20 0" marker="url(#d)" stroke="black" fill="none"/>').sketch
    assert plain.num_paths == 1  # 'marker' is a CSS shorthand, not a presentation attribute
    oriented = load(ARROW.replace('orient="auto"', 'orient="0.25turn"') +
                    '<path d="M10 50 H90" stroke="black" stroke-width="2" marker-end="url(#a)" fill="none"/>').sketch
    close(bbox(paths(oriented)[1]), [86, 42, 94, 50])  # a quarter turn: pointing down onto (90, 50)
    many = " ".join(f"L{i % 200} {i // 200}" for i in range(1, 6000))
    result = load(dots + f'<path d="M0 0 {many}" marker-mid="url(#d)" stroke="black" fill="none"/>')
    assert any(w.startswith("unsupported marker:") for w in result.warnings)  # over the marker budget


def test_dash_through_the_start_of_a_closed_path_is_one_piece():
    # perimeter 400, pattern 30 on / 20 off from offset 10: the dash [390, 400] + [0, 20] runs through the start
    sk = load('<rect x="10" y="10" width="100" height="100" fill="none" stroke="black" stroke-linejoin="round" '
              'stroke-dasharray="30 20" stroke-dashoffset="10"/>').sketch
    assert sk.num_paths == 8  # 400 / 50 dashes, the one through the corner (10, 10) not split in two
    through = [p for p in paths(sk) if bbox(p)[:2] == pytest.approx([10, 10], abs=1e-6)]
    assert len(through) == 1
    close(bbox(through[0]), [10, 10, 30, 20], tol=0.05)


def test_closed_dash_through_the_start_is_one_dash():
    # 480 around, dashes of 40 with no gap: the last dash (up the left side) and the first (along the top) are one
    # dash with a join at the start corner, as browsers and resvg draw it
    sk = load('<rect x="40" y="40" width="120" height="120" fill="none" stroke="green" stroke-width="20" '
              'stroke-dasharray="40 0"/>').sketch
    counts = sk.style.num_segments
    assert len(counts) == 11 and counts[0] == 2 and not any(sk.style.closed)
    whole = load('<rect x="40" y="40" width="120" height="120" fill="none" stroke="green" stroke-width="20" '
                 'stroke-dasharray="480 10"/>').sketch
    assert whole.style.closed[-1]  # one dash around the whole subpath: drawn closed


def test_zero_length_dash_at_a_corner_stays_on_one_segment():
    sk = load('<rect x="40" y="40" width="120" height="120" fill="none" stroke="green" stroke-width="20" '
              'stroke-dasharray="0 40" stroke-linecap="square"/>').sketch
    assert len(sk.style.num_segments) == 12 and all(n == 1 for n in sk.style.num_segments)  # a dot: one tiny segment, no join


def test_root_em_size_follows_the_viewbox_aspect():
    # width in em (16 px each), height from the viewBox aspect ratio: both read by the walk's length parser
    sketch = load_svg_sketch('<svg xmlns="http://www.w3.org/2000/svg" width="2em" viewBox="0 0 10 20">'
                             '<rect width="10" height="20" fill="black"/></svg>', canvas_size=None, fit=False).sketch
    assert (sketch.width, sketch.height) == (32, 64)


@pytest.mark.parametrize("where", ['style="fill:inherit"', "sheet"])
def test_inherit_takes_the_parents_value_over_the_elements_own(where):
    # fill="red" is a presentation attribute: below both an inline style and a style sheet rule saying inherit
    sheet = "<style>rect{fill:inherit}</style>" if where == "sheet" else ""
    inline = where if where != "sheet" else ""
    sketch = load(f'{sheet}<g fill="blue" opacity="0.5"><rect width="50" height="50" fill="red" {inline} '
                  'opacity="inherit"/></g>').sketch
    close(sketch.style.fill_color[0], [0.0, 0.0, 1.0])
    close(sketch.style.fill_opacity[0], 0.25)  # opacity is not inherited: "inherit" takes the group's 0.5 again


def test_preserve_aspect_ratio_defer_prefix_is_ignored():
    # SVG 1.1's "defer" (only meaningful on <image>) must not change the alignment of an <svg>
    body = '<rect width="10" height="10" fill="black"/>'
    head = 'width="200" height="100" viewBox="0 0 10 10" preserveAspectRatio="{}"'
    plain = load(body, head=head.format("xMinYMax meet")).sketch
    deferred = load(body, head=head.format("defer  xMinYMax meet")).sketch
    assert torch.equal(plain.points, deferred.points)
    assert bbox(plain.points)[0] == 0  # xMin: not centred
