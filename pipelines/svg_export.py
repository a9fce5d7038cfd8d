"""Sketches back to SVG: one static document per frame, or one animated document (SMIL)."""
from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import quoteattr

import torch

from .sketch import DEFAULT_MITERLIMIT, PathStyle, SketchAnimation


def _num(v: float) -> str:
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _hex(rgb) -> str:
    r, g, b = (max(0, min(255, int(round(float(c) * 255)))) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def parse_color(text: str) -> tuple[float, float, float] | None:
    """'#rrggbb', '#rgb', 'white', 'black' or 'none'/'transparent' (-> None)."""
    t = text.strip().lower()
    named = {"white": "#ffffff", "black": "#000000", "red": "#ff0000", "green": "#008000", "blue": "#0000ff",
             "gray": "#808080", "grey": "#808080"}
    if t in ("none", "transparent", ""):
        return None
    t = named.get(t, t)
    if t.startswith("#") and len(t) == 4:
        t = "#" + "".join(c * 2 for c in t[1:])
    if not (t.startswith("#") and len(t) == 7):
        raise ValueError(f"colour {text!r} is not #rrggbb, #rgb, a basic colour name or 'none'")
    try:
        return tuple(int(t[i:i + 2], 16) / 255.0 for i in (1, 3, 5))
    except ValueError:
        raise ValueError(f"colour {text!r} is not a valid hex colour") from None


def path_data(style: PathStyle, points: torch.Tensor) -> list[str]:
    """SVG `d` strings, one per path, from [N, 2] points (same command structure for every frame)."""
    pts = points.detach().cpu().tolist()
    out = []
    for off, n, segs, closed in zip(style.path_offsets(), style.points_per_path(), style.num_segments, style.closed):
        p = pts[off:off + n]
        parts = [f"M{_num(p[0][0])} {_num(p[0][1])}"]
        for k in range(segs):
            c1, c2 = p[3 * k + 1], p[3 * k + 2]
            end = p[0] if (closed and k == segs - 1) else p[3 * k + 3]
            parts.append(f"C{_num(c1[0])} {_num(c1[1])} {_num(c2[0])} {_num(c2[1])} {_num(end[0])} {_num(end[1])}")
        if closed:
            parts.append("Z")
        out.append(" ".join(parts))
    return out


def _paint(style: PathStyle, which: str, i: int) -> str:
    """A path's paint: its flat colour, or a reference to its gradient in <defs> (_gradient_defs)."""
    paints = style.fill_paint if which == "fill" else style.stroke_paint
    if paints is not None and paints[i] is not None:
        return f"url(#vp-{which}-{i})"
    return _hex(style.fill_color[i] if which == "fill" else style.stroke_color[i])


def _gradient_defs(style: PathStyle) -> list[str]:
    """<defs> with each path's gradients, in canvas units (userSpaceOnUse, the Gradient's matrix as
    gradientTransform), numbers written with 9 significant digits so a reload gives the same gradient."""
    out = []
    for which, paints in (("fill", style.fill_paint), ("stroke", style.stroke_paint)):
        for i, g in enumerate(paints or ()):
            if g is None:
                continue
            n = lambda v: f"{float(v):.9g}"  # noqa: E731
            if g.kind == "linear":
                geom = f'x1="{n(g.x1)}" y1="{n(g.y1)}" x2="{n(g.x2)}" y2="{n(g.y2)}"'
                tag = "linearGradient"
            else:
                geom = f'cx="{n(g.cx)}" cy="{n(g.cy)}" r="{n(g.r)}" fx="{n(g.fx)}" fy="{n(g.fy)}" fr="{n(g.fr)}"'
                tag = "radialGradient"
            out.append(f'<{tag} id="vp-{which}-{i}" gradientUnits="userSpaceOnUse" spreadMethod="{g.spread}" '
                       f'gradientTransform="matrix({" ".join(n(v) for v in g.matrix)})" {geom}>')
            for offset, rgb, opacity in zip(g.offsets, g.colors, g.opacities):
                rgb_text = ",".join(n(100 * c) + "%" for c in rgb)
                out.append(f'<stop offset="{n(offset)}" stop-color="rgb({rgb_text})" stop-opacity="{n(opacity)}"/>')
            out.append(f"</{tag}>")
    return ["<defs>"] + out + ["</defs>"] if out else []


def _stroke_attrs(style: PathStyle, i: int) -> list[str]:
    width = float(style.stroke_width[i])
    if width > 0 and float(style.stroke_opacity[i]) > 0:
        attrs = [f'stroke="{_paint(style, "stroke", i)}" stroke-width="{_num(width)}"']
        if float(style.stroke_opacity[i]) < 1:
            attrs.append(f'stroke-opacity="{_num(float(style.stroke_opacity[i]))}"')
        return attrs
    return ['stroke="none"']


def _cap_attrs(cap: str, join: str, miterlimit: float) -> list[str]:
    """Cap and join of a path, always written (SVG's defaults, butt and miter, are not ours: round)."""
    attrs = [f'stroke-linecap="{cap}"', f'stroke-linejoin="{join}"']
    if join == "miter" and miterlimit != DEFAULT_MITERLIMIT:
        attrs.append(f'stroke-miterlimit="{_num(miterlimit)}"')
    return attrs


def _fill_attrs(style: PathStyle, i: int, rule: str) -> list[str]:
    """Fill of path i's group (i = its first path, `rule` its fill rule). Open paths are filled too: SVG,
    like the rasterizer, fills an open subpath as if closed."""
    if float(style.fill_opacity[i]) <= 0:
        return ['fill="none"']
    attrs = [f'fill="{_paint(style, "fill", i)}"']
    if float(style.fill_opacity[i]) < 1:
        attrs.append(f'fill-opacity="{_num(float(style.fill_opacity[i]))}"')
    if rule == "evenodd":
        attrs.append('fill-rule="evenodd"')
    return attrs


def _elements(style: PathStyle) -> list[tuple[list[int], str]]:
    """The `<path>` elements of a sketch: (paths whose subpaths it draws, attributes), in paint order.

    A fill group is one element with one subpath per path, its fill and fill rule. If its paths
    have different strokes, the group's fill is drawn by that element (stroke="none") and each
    path's stroke by one more element after it (fill="none"): the same paint order as the
    rasterizer (a group's fill, then its paths' strokes).
    """
    # the per-path lists resolved once (each getter builds a list of every path)
    rules, caps_of, joins, limits = style.rules(), style.linecaps(), style.linejoins(), style.miterlimits()
    bounds, out = style.group_bounds(), []
    for p, end in zip(bounds, bounds[1:]):
        members = list(range(p, end))
        strokes = [_stroke_attrs(style, i) for i in members]
        caps = [_cap_attrs(caps_of[i], joins[i], limits[i]) for i in members]
        if all(st == strokes[0] and cp == caps[0] for st, cp in zip(strokes, caps)):
            out.append((members, " ".join(caps[0] + strokes[0] + _fill_attrs(style, p, rules[p]))))
        else:
            if float(style.fill_opacity[p]) > 0:
                out.append((members, " ".join(['stroke="none"'] + _fill_attrs(style, p, rules[p]))))
            out += [([i], " ".join(cp + st + ['fill="none"'])) for i, st, cp in zip(members, strokes, caps)
                    if st != ['stroke="none"']]
    return out


def _header(width: int, height: int, background) -> list[str]:
    lines = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">']
    if background is not None:
        lines.append(f'<rect width="{width}" height="{height}" fill="{_hex(background)}"/>')
    return lines


def frame_svg(style: PathStyle, points: torch.Tensor, width: int, height: int,
              background=(1.0, 1.0, 1.0)) -> str:
    lines = _header(width, height, background) + _gradient_defs(style)
    data = path_data(style, points)
    for members, attrs in _elements(style):
        lines.append(f'<path d="{" ".join(data[i] for i in members)}" {attrs}/>')
    lines.append("</svg>")
    return "\n".join(lines) + "\n"


def animation_frames_svg(anim: SketchAnimation, background=(1.0, 1.0, 1.0)) -> list[str]:
    return [frame_svg(anim.style, anim.points[k], anim.width, anim.height, background) for k in range(anim.num_frames)]


INTERPOLATIONS = ("discrete", "linear", "spline")


def _key_number(v: float) -> str:
    # 10 decimals: keyTimes such as 1/24 must not shift the frames' times (1e-6 of a 1 s loop moves a fast
    # stroke by 1e-3 px)
    s = f"{v:.10f}".rstrip("0").rstrip(".")
    return s or "0"


def smil_timing(points: torch.Tensor, interpolation: str) -> dict[str, str]:
    """calcMode, keyTimes and keySplines of the looping <animate> of the frames [K, N, 2] of one element's
    points (attribute name -> text).

    discrete: K values, each shown for 1/fps s (SMIL's default even spacing; no keyTimes).
    linear / spline: K + 1 values (the first again at the end closes the loop), keyTimes j / K.
    - linear: every number of `d` moves linearly from frame to frame: exact for piecewise-linear
      motion through the frames (VP_InterpolateSketch linear, or any frames taken as such); for smooth
      modes write the interpolated frames: exact at each of them, linear between (a small chord error).
    - spline: per-segment keySplines easing (chord_easing) that follows the Catmull-Rom timing through
      the frames; exact at the frames only, since between two values SMIL moves every number on the
      straight line between them (one shared timing), which no keySplines can bend into a curve.
    """
    k = int(points.shape[0])
    if interpolation == "discrete":
        return {"calcMode": "discrete"}
    times = ";".join(_key_number(j / k) for j in range(k + 1))
    out = {"calcMode": interpolation, "keyTimes": times}
    if interpolation == "spline":
        from .interpolation.sketch_inbetween import chord_easing

        ease = chord_easing(points, loop=True).tolist()
        out["keySplines"] = ";".join(f"0.333333 {_key_number(a / 3)} 0.666667 {_key_number(1 - b / 3)}"
                                     for a, b in ease)
    return out


def animated_svg(anim: SketchAnimation, background=(1.0, 1.0, 1.0), interpolation: str = "discrete",
                 title: str | None = None) -> str:
    """One SVG whose paths animate their `d` with SMIL, looping at the animation's fps.

    discrete: each frame is shown for 1/fps s, like the rendered frames.
    linear: the path morphs linearly from frame to frame and back to the first (keyTimes j / K).
    spline: the same values with eased timing per segment (keySplines, see smil_timing).
    Browsers interpolate between values themselves, so linear / spline play smoothly at any refresh rate.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}")
    k = anim.num_frames
    dur = k / float(anim.fps)
    per_frame = [path_data(anim.style, anim.points[j]) for j in range(k)]
    offsets, counts = anim.style.path_offsets(), anim.style.points_per_path()
    lines = _header(anim.width, anim.height, background) + _gradient_defs(anim.style)
    if title:
        lines.append(f"<title>{quoteattr(title)[1:-1]}</title>")
    for members, attrs in _elements(anim.style):
        values: Sequence[str] = [" ".join(per_frame[j][i] for i in members) for j in range(k)]
        if interpolation != "discrete":
            values = list(values) + [values[0]]
        lines.append(f'<path d="{values[0]}" {attrs}>')
        if k > 1:
            index = [offsets[i] + c for i in members for c in range(counts[i])]  # this element's points
            timing = " ".join(f'{name}="{value}"' for name, value in smil_timing(anim.points[:, index],
                                                                               interpolation).items())
            lines.append(f'<animate attributeName="d" dur="{dur:.6g}s" repeatCount="indefinite" '
                         f'{timing} values="{";".join(values)}"/>')
        lines.append("</path>")
    lines.append("</svg>")
    return "\n".join(lines) + "\n"
