"""Issue 10, section 2: every bad SVG gets the loader's own error (SVGLoadError) naming what is wrong, and the
limits refuse exactly what is over them (work-bounded; load times are in bench/bench_svg_limits.py)."""
import pytest

from pipelines.svg import SVGLoadError, limits, load_svg_sketch

SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
PATH = '<path d="M 10 10 L 90 90" stroke="black"/>'


def refused(source, *words, **kwargs) -> str:
    with pytest.raises(SVGLoadError) as info:
        load_svg_sketch(source, **kwargs)
    message = str(info.value)
    for word in words:
        assert word.lower() in message.lower(), message
    return message


# ------------------------------------------------------------------------------------------------ encodings

def test_unknown_declared_encoding_is_a_load_error_naming_it():
    doc = b'<?xml version="1.0" encoding="x-nonexistent"?>' + (SVG + PATH + "</svg>").encode()
    refused(doc, "unknown text encoding", "x-nonexistent", "encoding")


@pytest.mark.parametrize("name", ["UTF-7", "rot13", "base64", "unicode_escape", "zlib"])
def test_codecs_that_are_no_document_encoding_are_refused(name):
    doc = f'<?xml version="1.0" encoding="{name}"?>{SVG}{PATH}</svg>'.encode()
    refused(doc, name, "not supported")


def test_lone_surrogate_in_str_input_is_a_load_error():
    message = refused(SVG + '<path id="p\ud800" d="M0 0 L5 5" stroke="black"/></svg>', "surrogate", "U+D800")
    assert "character" in message


@pytest.mark.parametrize("encoding", ["Shift_JIS", "EUC-JP", "GBK", "Big5", "EUC-KR", "ISO-8859-5"])
def test_declared_multibyte_encodings_are_decoded(encoding):
    # <use> resolves the id and the error message shows it as written: the bytes were decoded as declared.
    ident = "\u0436" if encoding == "ISO-8859-5" else {"Big5": "\u4e2d\u6587", "EUC-KR": "\ud55c"}.get(encoding,
                                                                                                    "\u65e5\u672c")
    text = (f'<?xml version="1.0" encoding="{encoding}"?>' + SVG + f'<defs><path id="{ident}" d="M0 0 L9 9" '
            f'stroke="black"/></defs><use href="#{ident}"/><use href="#{ident}" x="20"/></svg>')
    result = load_svg_sketch(text.encode(encoding), fit=False)
    assert result.sketch.num_paths == 2
    refused(text.replace('stroke="black"', 'stroke-opacity="inf"').encode(encoding), f"<path id='{ident}'>")


def test_utf16_without_byte_order_mark_is_detected():
    text = '<?xml version="1.0" encoding="UTF-16"?>' + SVG + PATH + "</svg>"
    assert load_svg_sketch(text.encode("utf-16-le")).sketch.num_paths == 1
    assert load_svg_sketch(text.encode("utf-16-be")).sketch.num_paths == 1


# -------------------------------------------------------------------------------- values named in errors

@pytest.mark.parametrize("markup, words", [
    ('<path id="p1" d="M0 0 L5 5" stroke="black" stroke-opacity="inf"/>', ("<path id='p1'>", "stroke-opacity")),
    ('<path id="p1" d="M0 0 L5 5" stroke="black" style="stroke-opacity: inf"/>', ("<path id='p1'>", "stroke-opacity")),
    ('<path id="p1" d="M0 0 L5 5" stroke="black" style="STROKE-OPACITY: inf"/>', ("<path id='p1'>", "stroke-opacity")),
    ('<style>#p1 { fill-opacity: 1e999 }</style><path id="p1" d="M0 0 L5 5"/>', ("<path id='p1'>", "fill-opacity")),
    ('<rect id="r" width="5" height="5" fill="rgb(1e400, 0, 0)"/>', ("<rect id='r'>", "fill")),
    ('<g id="g" opacity="NaN">' + PATH + '</g>', ("<g id='g'>", "opacity")),
    ('<circle id="c" r="5" stroke-width="1e12" stroke="red"/>', ("<circle id='c'>", "stroke-width")),
])
def test_non_finite_or_absurd_numbers_name_element_and_attribute(markup, words):
    refused(SVG + markup + "</svg>", *words)


@pytest.mark.parametrize("transform, function", [
    ("matrix(1 2 3 4 5)", "matrix"), ("rotate(1 2)", "rotate"), ("scale(1 2 3)", "scale"),
    ("translate()", "translate"), ("skewX(1, 2)", "skewx"),
])
def test_transform_with_wrong_argument_count_names_element_and_attribute(transform, function):
    refused(SVG + f'<g id="g1" transform="{transform}">{PATH}</g></svg>', "<g id='g1'>", "transform", function)


def test_too_long_transform_list_is_refused():
    many = "rotate(1 50 50)" * (limits.MAX_TRANSFORM_FUNCTIONS + 1)
    refused(SVG + f'<path id="p" d="M40 40 L60 60" stroke="black" transform="{many}"/></svg>', "<path id='p'>",
            "transform", str(limits.MAX_TRANSFORM_FUNCTIONS))
    just = "rotate(1 50 50)" * limits.MAX_TRANSFORM_FUNCTIONS
    assert load_svg_sketch(SVG + f'<path d="M40 40 L60 60" stroke="black" transform="{just}"/></svg>').sketch


@pytest.mark.parametrize("radius", ["1e-300", "4.9e-324", "1e-10"])
def test_tiny_arc_radius_names_the_path(radius):
    refused(SVG + f'<path id="a" d="M0 0 A{radius} {radius} 0 0 1 10 10" stroke="black"/></svg>', "<path id='a'>",
            "attribute d", "arc radius")


def test_zero_arc_radius_is_a_line():
    result = load_svg_sketch(SVG + '<path d="M0 0 A0 5 0 0 1 10 10" stroke="black"/></svg>')
    assert result.sketch.style.num_segments == [1]


# ------------------------------------------------------------------------------- limits, exactly at the edge

def _path_with(segments: int) -> str:
    return SVG + '<path stroke="black" d="M1 1' + " l0.001 0" * (segments - 1) + '"/></svg>'


def test_segment_limit_counts_movetos_and_is_exact():
    assert load_svg_sketch(_path_with(limits.MAX_SEGMENTS)).sketch.num_paths == 1
    refused(_path_with(limits.MAX_SEGMENTS + 1), "too many path segments", str(limits.MAX_SEGMENTS))
    subpaths = SVG + '<path stroke="black" d="' + "M1 1h1" * (limits.MAX_SEGMENTS // 2 + 1) + '"/></svg>'
    refused(subpaths, "too many path segments")


def test_arcs_cost_more_than_lines():
    arcs = limits.MAX_SEGMENTS // limits.ARC_SEGMENT_COST
    doc = SVG + '<path stroke="black" d="M1 1' + " a1 1 0 0 1 0.01 0" * (arcs + 1) + '"/></svg>'
    refused(doc, "too many path segments")


def test_element_limit_is_exact():
    lines = '<line x2="5" y2="5" stroke="black"/>'
    assert load_svg_sketch(SVG + lines * (limits.MAX_ELEMENTS - 1) + "</svg>").sketch.num_paths > 0
    refused(SVG + lines * limits.MAX_ELEMENTS + "</svg>", "too many elements", str(limits.MAX_ELEMENTS))


@pytest.mark.parametrize("pattern", ["4.9e-324", "1e-300 1e-300", "0.00001"])
def test_dash_patterns_too_fine_to_draw_become_solid_with_a_warning(pattern):
    result = load_svg_sketch(SVG + f'<rect width="50" height="50" stroke="red" stroke-dasharray="{pattern}"/></svg>')
    assert result.sketch.num_paths == 1
    assert any("too many dashes" in w for w in result.warnings)


def test_an_internal_failure_is_a_load_error_naming_the_element(monkeypatch):
    from pipelines.svg import build

    def broken(self, *args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(build.Builder, "shape", broken)
    refused(SVG + '<g><path id="p7" d="M0 0 L5 5" stroke="black"/></g></svg>', "internal error", "<path id='p7'>",
            "ZeroDivisionError")


@pytest.mark.parametrize("container", ["clipPath", "random", "mask"])
def test_use_reaches_into_unrendered_elements_and_that_content_is_still_checked(container):
    inner = '<g id="g1"><rect id="r1" x="10" y="10" width="50" height="50" fill="green"/></g>'
    doc = SVG + f'<{container} id="c">{inner}</{container}><use href="#r1"/></svg>'
    result = load_svg_sketch(doc)
    assert result.sketch.num_paths == 1  # the rect, through <use>; the container itself draws nothing
    refused(doc.replace('width="50"', 'width="1e999"'), "<rect id='r1'>", "width")


def test_own_viewport_canvas_is_bounded_like_canvas_size():
    doc = '<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="100">' + PATH + "</svg>"
    assert load_svg_sketch(doc.format(limits.MAX_CANVAS), canvas_size=None, fit=False).sketch.width == limits.MAX_CANVAS
    refused(doc.format(limits.MAX_CANVAS + 1), "canvas limit", "width/height", canvas_size=None, fit=False)


@pytest.mark.parametrize("stage, attribute", [("parse", "_Cleaner"), ("build", "to_canvas")])
def test_an_internal_failure_in_any_stage_is_a_load_error(monkeypatch, stage, attribute):
    import importlib

    load = importlib.import_module("pipelines.svg.load")

    def broken(*args, **kwargs):
        raise IndexError("boom")

    if attribute == "_Cleaner":
        monkeypatch.setattr(load._Cleaner, "run", broken)
    else:
        monkeypatch.setattr(load, "to_canvas", broken)
    refused(SVG + PATH + "</svg>", "internal error", "IndexError")


def test_gradient_work_is_bounded_by_stops_times_uses():
    stops = "".join(f'<stop offset="{i / 2000}" stop-color="#0{i % 10}0"/>' for i in range(2000))
    uses = limits.MAX_GRADIENT_STOP_USES // 2000

    def doc(n: int) -> str:
        return (SVG + f'<linearGradient id="g">{stops}</linearGradient>'
                + '<rect width="5" height="5" fill="url(#g)"/>' * n + "</svg>")

    assert load_svg_sketch(doc(uses)).sketch.num_paths == uses
    refused(doc(uses + 1), "gradient", "too costly", str(limits.MAX_GRADIENT_STOP_USES))
