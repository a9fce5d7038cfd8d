"""The renderer walk: the cleaned tree -> styled cubic paths in document coordinates (paths.RawPath).

The walk does what a browser's renderer does for the supported subset: the CSS cascade and inheritance,
transforms, nested viewports (<svg>, <symbol> through <use>) with their viewBox / preserveAspectRatio and
overflow clipping, <use> instancing, <switch> and conditional processing attributes, display / visibility,
dashes, and paints with opacity. Each shape becomes one fill group (all its subpaths, under its fill-rule);
strokes that must differ from the fill geometry (dashes, clipped strokes) become separate stroke-only paths.
Every feature it cannot draw is counted per feature and reported in one warning each (report.py). Computed
styles come from style.py, the mapping onto the canvas is canvas.py.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from . import clip as clipping
from .css import cascade
from .dashes import MAX_DASHES, count_dashes, dash, dash_pattern
from .geometry import (
    IDENTITY,
    Matrix,
    Point2,
    Subpath,
    apply,
    ellipse,
    invert,
    line_cubic,
    multiply,
    parse_numbers,
    parse_path_data,
    parse_viewbox,
    polyline,
    rect,
    same_point,
    translate,
    viewbox_transform,
)
from .limits import MAX_ABS_COORD, MAX_GRADIENT_STOP_USES, PATTERN_FALLBACK_RGB, SVGLoadError
from .markers import end_dir, start_dir, vertices
from .gradient import build_gradient, resolve_spec, shape_bbox
from .paint import Paint, PaintServer
from .paths import RawPath
from .report import Report
from .style import Style, StyleResolver
from .xmlutil import SHAPES, SVG_NS, describe, split_tag

CONTAINERS = {"svg", "g", "a", "switch", "use"}
# Graphics elements that are drawn by browsers but not by this loader (reported when they would be drawn).
UNSUPPORTED_GRAPHICS = {"text", "image", "foreignObject", "video", "audio", "canvas", "iframe"}
NEVER_DRAWN = {"defs", "symbol", "clipPath", "mask", "marker", "pattern", "linearGradient", "radialGradient",
               "filter", "style", "title", "desc", "metadata", "script", "view", "cursor", "font", "font-face",
               "glyph", "missing-glyph", "meshgradient", "hatch", "solidcolor", "animate", "animateMotion",
               "animateTransform", "animateColor", "set", "mpath", "color-profile"}
MAX_MARKER_SEGMENTS = 20_000  # segments all marker instances may draw; beyond, markers are reported instead
ANIMATIONS = {"animate", "animateMotion", "animateTransform", "animateColor", "set"}
USER_LANGUAGES = ("en-US", "en")  # systemLanguage is matched against these (resvg's default, as browsers in en-US)



def _has_corner(subpaths) -> bool:
    """Does any join (between segments, and the closing join of closed subpaths) turn by more than ~1 degree?"""
    for sp in subpaths:
        segs = sp.segments
        pairs = list(zip(segs, segs[1:])) + ([(segs[-1], segs[0])] if sp.closed and len(segs) > 1 else [])
        for c0, c1 in pairs:
            d0, d1 = end_dir(c0), start_dir(c1)
            if d0 and d1 and d0[0] * d1[0] + d0[1] * d1[1] < 0.99985:
                return True
    return False


def _overlap(paths: List[RawPath], limit: int = 200) -> bool:
    """Do two of these shapes (fill groups) overlap? Opacity applied per path is exact for a group whose
    shapes do not overlap (bounding boxes with half the stroke width); more than `limit` shapes: assumed."""
    boxes: Dict[int, List[float]] = {}
    for p in paths:
        if p.fill_rgb is None and p.stroke_rgb is None:
            continue
        pad = p.stroke_width / 2
        xs, ys = [q[0] for q in p.points], [q[1] for q in p.points]
        box = [min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad]
        old = boxes.setdefault(p.group, box)
        if old is not box:
            boxes[p.group] = [min(old[0], box[0]), min(old[1], box[1]), max(old[2], box[2]), max(old[3], box[3])]
    if len(boxes) > limit:
        return True
    items = list(boxes.values())
    return any(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
               for i, a in enumerate(items) for b in items[i + 1:])


@dataclass
class _Context:
    ctm: Matrix
    viewport: Tuple[float, float]  # for percentages
    clips: Tuple[Tuple[Tuple[float, float, float, float], Matrix, Matrix], ...]  # (rect, to_rect, from_rect)
    opacity: float


MAX_CLIPS = 16  # clip rectangles at different rotations in effect at once; more are not applied (warned)


def add_clip(clips, rect_, from_rect: Matrix):
    """The clip stack with one more rectangle (given in the coordinates `from_rect` maps to the document).

    A rectangle that is axis-aligned with one already in the stack (their transforms differ by scales and
    translations only) is intersected with it, so nested viewports cost one clip, not one per level; an
    axis-aligned first rectangle is kept in document coordinates. Returns None when the transform is singular
    (nothing inside can be drawn).
    """
    inverse = invert(from_rect)
    if inverse is None:
        return None
    for k, (r, to_r, from_r) in enumerate(clips):
        a, b, c, d, e, f = multiply(to_r, from_rect)  # the new rectangle's coordinates -> clip k's
        if abs(b) <= 1e-12 * (abs(a) + abs(d)) and abs(c) <= 1e-12 * (abs(a) + abs(d)):
            xs = sorted((a * rect_[0] + e, a * rect_[2] + e))
            ys = sorted((d * rect_[1] + f, d * rect_[3] + f))
            merged = (max(r[0], xs[0]), max(r[1], ys[0]), min(r[2], xs[1]), min(r[3], ys[1]))
            return tuple(clips[:k]) + ((merged, to_r, from_r),) + tuple(clips[k + 1:])
    if len(clips) >= MAX_CLIPS:
        return tuple(clips)  # the caller reports the clip as not applied
    a, b, c, d, e, f = from_rect
    if b == 0 and c == 0:
        xs = sorted((a * rect_[0] + e, a * rect_[2] + e))
        ys = sorted((d * rect_[1] + f, d * rect_[3] + f))
        return tuple(clips) + (((xs[0], ys[0], xs[1], ys[1]), IDENTITY, IDENTITY),)
    return tuple(clips) + ((rect_, inverse, from_rect),)


class Builder:
    def __init__(self, css: Dict, servers: Dict[str, PaintServer], ids: Dict[str, ET.Element],
                 clip_rects: Optional[Dict] = None, markers: Optional[Dict] = None):
        self.clip_rects = clip_rects or {}
        self.css = css
        self.servers = servers
        self.specs: Dict[str, object] = {}  # gradient id -> resolved GradientSpec (or None)
        self.gradient_stop_uses = 0  # bounded by MAX_GRADIENT_STOP_USES
        self.ids = ids
        self.report = Report()
        self.styles = StyleResolver(css, self.report)
        self.paths: List[RawPath] = []
        self.group = 0
        self.shapes = 0  # elements that emitted paths
        self.markers: Dict[str, Optional[ET.Element]] = markers or {}
        self.in_marker = False
        self.marker_segments = 0  # segments drawn and elements walked by marker instances (MAX_MARKER_SEGMENTS)
        self.marker_sizes: Dict[str, int] = {}
        self.root_style = Style()
        self.instance = 0  # distinguishes the elements drawn through different <use>s
        self.instances = 0
        self.use_stack: List[ET.Element] = []
        self.dashes = 0
        self.current: Optional[ET.Element] = None

    def style_of(self, elem: ET.Element, parent: Style, ctx: _Context) -> Style:
        return self.styles.style_of(elem, parent, ctx.viewport)

    def enter(self, elem: ET.Element, parent: Style, ctx: _Context) -> Optional[Style]:
        """elem's computed style, or None when it draws nothing: its conditions fail, or display is none."""
        if not self.conditions_hold(elem):
            return None
        self.current = elem
        style = self.style_of(elem, parent, ctx)
        return style if style.display else None

    def _length(self, value: str, ctx: _Context, axis: str, font_size: float) -> Optional[float]:
        return self.styles.length(value, ctx.viewport, axis, font_size)

    # -- walk --------------------------------------------------------------------------------------------------
    def conditions_hold(self, elem: ET.Element) -> bool:
        """systemLanguage, requiredExtensions and requiredFeatures as resvg and browsers treat them."""
        langs = elem.get("systemLanguage")
        if langs is not None:
            wanted = [x.strip().lower() for x in langs.split(",") if x.strip()]
            mine = [x.lower() for x in USER_LANGUAGES]
            if not any(w == m or w.split("-")[0] == m.split("-")[0] for w in wanted for m in mine):
                return False
        if elem.get("requiredExtensions") is not None:
            return False  # no extension is supported (an empty list is false too)
        return True  # requiredFeatures: SVG 2 dropped it, browsers and resvg treat it as true

    def walk(self, elem: ET.Element, parent: Style, ctx: _Context) -> None:
        ns, name = split_tag(elem.tag)
        if ns not in ("", SVG_NS):
            return
        if name in NEVER_DRAWN:
            return  # (animation elements are reported from the clean-up's count, see load.py)
        style = self.enter(elem, parent, ctx)
        if style is None:
            return
        if name in UNSUPPORTED_GRAPHICS:
            self.report.add(f"<{name}>", elem, self.instance)
            return
        if name not in SHAPES and name not in CONTAINERS:
            self.report.add("unknown element", elem, self.instance)  # browsers do not draw them either
            return
        for flag, feature in ((style.filter, "filter"), (style.mask, "mask"), (style.blend, "mix-blend-mode")):
            if flag:
                self.report.add(feature, elem, self.instance)
        ctm = ctx.ctm if style.transform is None else multiply(ctx.ctm, style.transform)
        opacity = ctx.opacity * style.opacity
        clips = ctx.clips
        if style.clip_path is not None:
            if style.clip_path in self.clip_rects and self.clip_rects[style.clip_path] is not None:
                rect_, m = self.clip_rects[style.clip_path]
                # the clip path lives in the user space of the referencing element
                before, clips = clips, add_clip(clips, rect_, multiply(ctm, m))
                if clips is None:
                    return  # a singular transform: the element collapses to a line and is not drawn
                if clips is before:
                    self.report.add("clip-path", elem, self.instance)
            elif style.clip_path in self.clip_rects:
                self.report.add("clip-path", elem, self.instance)
            # a reference to a missing element: SVG 2 draws the element unclipped
        inner = _Context(ctm, ctx.viewport, clips, opacity)
        if name in SHAPES:
            self.shape(elem, name, style, inner)
            return
        groups_before, paths_before = self.shapes, len(self.paths)
        if name == "svg":
            self.nested_svg(style, inner, elem)
        elif name == "use":
            self.use(elem, style, inner)
        elif name == "switch":
            for child in elem:
                if not isinstance(child.tag, str):
                    continue
                cns, cname = split_tag(child.tag)
                if cns not in ("", SVG_NS) or cname in NEVER_DRAWN or not (
                        cname in SHAPES or cname in CONTAINERS or cname in UNSUPPORTED_GRAPHICS):
                    continue
                if self.conditions_hold(child):
                    self.walk(child, style, inner)
                    break
        else:
            for child in elem:
                if isinstance(child.tag, str):
                    self.walk(child, style, inner)
        if style.opacity < 1 and self.shapes - groups_before > 1 and _overlap(self.paths[paths_before:]):
            self.report.add("group opacity", elem, self.instance)

    def nested_svg(self, style: Style, ctx: _Context, source: ET.Element,
                   size: Tuple[Optional[str], Optional[str]] = (None, None)) -> None:
        """A new viewport: nested <svg>, or a <symbol> / <svg> instanced by <use> (size from the <use>)."""
        fs = style.font_size
        x = self._length(source.get("x", "0"), ctx, "x", fs) or 0.0 if split_tag(source.tag)[1] == "svg" else 0.0
        y = self._length(source.get("y", "0"), ctx, "y", fs) or 0.0 if split_tag(source.tag)[1] == "svg" else 0.0
        w = self._length(size[0] or source.get("width", "100%"), ctx, "x", fs)
        h = self._length(size[1] or source.get("height", "100%"), ctx, "y", fs)
        if w is None:
            w = self._length("100%", ctx, "x", fs)
        if h is None:
            h = self._length("100%", ctx, "y", fs)
        if w <= 0 or h <= 0:
            return
        viewbox = parse_viewbox(source.get("viewBox"))
        if viewbox is not None and (viewbox[2] <= 0 or viewbox[3] <= 0):
            return
        ctm = multiply(ctx.ctm, translate(x, y))
        clips = ctx.clips
        if not style.overflow_visible:
            before, clips = clips, add_clip(clips, (0.0, 0.0, w, h), ctm)
            if clips is None:
                return  # a singular transform: nothing inside is drawn
            if clips is before:
                self.report.add("viewport clip", source, self.instance)
        if viewbox is not None:
            ctm = multiply(ctm, viewbox_transform(viewbox, source.get("preserveAspectRatio"), w, h))
            viewport = (viewbox[2], viewbox[3])
        else:
            viewport = (w, h)
        inner = _Context(ctm, viewport, clips, ctx.opacity)
        for child in source:
            if isinstance(child.tag, str):
                self.walk(child, style, inner)

    def use(self, elem: ET.Element, style: Style, ctx: _Context) -> None:
        ref = (elem.get("href") or "").strip()
        target = self.ids.get(ref[1:]) if ref.startswith("#") else None
        if target is None or target in self.use_stack or len(self.use_stack) > 64:
            return
        fs = style.font_size
        x = self._length(elem.get("x", "0"), ctx, "x", fs) or 0.0
        y = self._length(elem.get("y", "0"), ctx, "y", fs) or 0.0
        inner = _Context(multiply(ctx.ctm, translate(x, y)), ctx.viewport, ctx.clips, ctx.opacity)
        self.use_stack.append(target)
        instance = self.instance
        self.instances += 1
        self.instance = self.instances
        try:
            tns, tname = split_tag(target.tag)
            if tname in ("symbol", "svg"):
                own_style = self.enter(target, style, inner)
                if own_style is None:
                    return
                # a transform on <symbol> is SVG 2 only; ignored as in SVG 1.1 and resvg
                own_ctx = _Context(inner.ctm, inner.viewport, inner.clips, inner.opacity * own_style.opacity)
                # the <use>'s width/height win; a <symbol>'s own are the fallback, a referenced <svg> keeps its own
                size = tuple(elem.get(k) if elem.get(k) not in (None, "auto")
                             else (target.get(k) if tname == "symbol" else None) for k in ("width", "height"))
                self.nested_svg(own_style, own_ctx, target, size)
            else:
                self.walk(target, style, inner)
        finally:
            self.use_stack.pop()
            self.instance = instance

    # -- shapes ------------------------------------------------------------------------------------------------
    def geometry(self, elem: ET.Element, name: str, style: Style, ctx: _Context) -> List[Subpath]:
        fs = style.font_size

        def length(key, axis, default="0"):
            v = self._length(elem.get(key, default), ctx, axis, fs)
            return 0.0 if v is None else v

        if name == "path":
            return parse_path_data(elem.get("d", ""))[0]
        if name == "rect":
            w = self._length(elem.get("width", ""), ctx, "x", fs)
            h = self._length(elem.get("height", ""), ctx, "y", fs)
            if w is None or h is None or w <= 0 or h <= 0:
                return []
            rx = self._length(elem.get("rx", "auto"), ctx, "x", fs)
            ry = self._length(elem.get("ry", "auto"), ctx, "y", fs)
            rx = None if rx is not None and rx < 0 else rx
            ry = None if ry is not None and ry < 0 else ry
            if rx is None and ry is None:
                rx = ry = 0.0
            elif rx is None:
                rx = ry
            elif ry is None:
                ry = rx
            rx, ry = min(rx, w / 2), min(ry, h / 2)
            return rect(length("x", "x"), length("y", "y"), w, h, rx, ry)
        if name in ("circle", "ellipse"):
            if name == "circle":
                r = self._length(elem.get("r", ""), ctx, "diag", fs)
                rx = ry = r
            else:
                rx = self._length(elem.get("rx", "auto"), ctx, "x", fs)
                ry = self._length(elem.get("ry", "auto"), ctx, "y", fs)
                rx = None if rx is not None and rx < 0 else rx  # negative or invalid: auto (SVG 2)
                ry = None if ry is not None and ry < 0 else ry
                rx, ry = (ry if rx is None else rx), (rx if ry is None else ry)
            if rx is None or ry is None or rx <= 0 or ry <= 0:
                return []
            return ellipse(length("cx", "x"), length("cy", "y"), rx, ry)
        if name == "line":
            p0 = (length("x1", "x"), length("y1", "y"))
            p1 = (length("x2", "x"), length("y2", "y"))
            return [Subpath([line_cubic(p0, p1)], False)]
        try:
            numbers = parse_numbers(elem.get("points", ""))
        except ValueError:
            numbers = []
        return polyline(numbers[: len(numbers) // 2 * 2], name == "polygon")

    def shape(self, elem: ET.Element, name: str, style: Style, ctx: _Context) -> None:
        if not style.visible:
            return
        subpaths = self.geometry(elem, name, style, ctx)
        self._draw_shape(elem, name, style, ctx, subpaths)
        if subpaths and any(m is not None for m in style.markers):  # markers apply to every shape (SVG 2)
            self.draw_markers(elem, subpaths, style, ctx)

    def _draw_shape(self, elem: ET.Element, name: str, style: Style, ctx: _Context, subpaths: List[Subpath]) -> None:
        if style.linecap == "butt":
            # a zero-length subpath has no area and, with butt caps, no stroke: SVG draws nothing for it
            subpaths = [sp for sp in subpaths if any(p != sp.segments[0][0] for c in sp.segments for p in c)]
        if not subpaths:
            return
        inst = self.instance
        if not style.paint_order_normal:
            self.report.add("paint-order", elem, inst)
        if style.non_scaling:
            self.report.add("vector-effect", elem, inst)
        bbox = []  # computed once, when a gradient in objectBoundingBox units needs it
        fill_rgb, fill_alpha, fill_grad = self.paint(style.fill, style, elem, ctx, subpaths, bbox)
        stroke_rgb, stroke_alpha, stroke_grad = self.paint(style.stroke, style, elem, ctx, subpaths, bbox)
        a, b, c, d, _, _ = ctx.ctm
        if a * d - b * c == 0:
            return  # a singular transform (scale(0), a zeroed matrix): nothing is rendered
        scale = math.sqrt(abs(a * d - b * c))
        if stroke_rgb is not None and style.stroke_width > 0 and (
                abs(a * a + b * b - c * c - d * d) > 1e-6 * (a * a + b * b + c * c + d * d) or
                abs(a * c + b * d) > 1e-6 * (a * a + b * b + c * c + d * d)):
            self.report.add("non-uniform stroke", elem, inst)
        width = style.stroke_width * scale
        if not math.isfinite(width):
            raise SVGLoadError(f"non-finite stroke width on <{name}>")
        if width > MAX_ABS_COORD:
            raise SVGLoadError(f"absurd stroke width {width:g} on <{name}> (limit {MAX_ABS_COORD:g})")
        if name == "line":
            fill_rgb = fill_grad = None
        fill_opacity = fill_alpha * style.fill_opacity * ctx.opacity if fill_rgb else 0.0
        stroke_opacity = stroke_alpha * style.stroke_opacity * ctx.opacity if stroke_rgb else 0.0
        if stroke_rgb is None or width <= 0 or stroke_opacity <= 0:
            stroke_rgb, width, stroke_opacity, stroke_grad = None, 0.0, 0.0, None
        if fill_opacity <= 0:
            fill_rgb, fill_opacity, fill_grad = None, 0.0, None
        # The rasterizer draws every cap and join; SVG 2's miter-clip and arcs joins are drawn as miter.
        if stroke_rgb is not None and style.linejoin in ("miter-clip", "arcs") and _has_corner(subpaths):
            self.report.add("stroke-linejoin", elem, inst)
        if stroke_rgb is not None and fill_opacity > 0 and ctx.opacity < 1:
            self.report.add("group opacity", elem, inst)
        stroke_pieces = None  # None: the stroke follows the fill geometry
        if stroke_rgb is not None and style.dasharray:
            pattern = dash_pattern(style.dasharray)
            if pattern is not None:
                if self.dashes + count_dashes(subpaths, pattern) > MAX_DASHES:
                    self.report.add("dashes", elem, inst)
                else:
                    stroke_pieces = dash(subpaths, pattern, style.dashoffset, style.linecap, style.stroke_width)
                    self.dashes += len(stroke_pieces)
        fill_geom = clipping.map_subpaths(subpaths, ctx.ctm)
        for sp in fill_geom:
            for c in sp.segments:
                for x, y in c:
                    if not (math.isfinite(x) and math.isfinite(y)):
                        raise SVGLoadError(f"non-finite coordinate in <{name}> after applying transforms")
                    if abs(x) > MAX_ABS_COORD or abs(y) > MAX_ABS_COORD:
                        raise SVGLoadError(f"absurd coordinate ({x:g}, {y:g}) in <{name}> after applying "
                                           f"transforms (limit |x| <= {MAX_ABS_COORD:g})")
        stroke_geom = None if stroke_pieces is None else clipping.map_subpaths(stroke_pieces, ctx.ctm)
        for rect_, to_rect, from_rect in reversed(ctx.clips):
            local = clipping.map_subpaths(fill_geom, to_rect)
            rel = clipping.relation(local, rect_)
            if rel == "inside":
                continue
            if stroke_geom is None and stroke_rgb is not None and rel != "inside":
                stroke_geom = fill_geom
            fill_geom = [] if rel == "outside" else clipping.clip_fill(fill_geom, rect_, to_rect, from_rect)
            if stroke_geom is not None:
                stroke_geom = clipping.clip_stroke(stroke_geom, rect_, to_rect, from_rect)
        join = "miter" if style.linejoin in ("miter-clip", "arcs") else style.linejoin
        self.emit(fill_geom, stroke_geom, fill_rgb, fill_opacity, stroke_rgb, stroke_opacity, width, style.fill_rule,
                  (style.linecap, join, style.miterlimit), fill_grad, stroke_grad)

    def draw_markers(self, elem: ET.Element, subpaths: List[Subpath], style: Style, ctx: _Context) -> None:
        if self.in_marker:
            self.report.add("marker", elem, self.instance)  # markers inside markers are not drawn
            return
        a, b, c, d, _, _ = ctx.ctm
        if a * d - b * c == 0:
            return
        points = vertices(subpaths)
        for i, (point, angle) in enumerate(points):
            ident = style.markers[0 if i == 0 else 2 if i == len(points) - 1 else 1]
            if ident is None or ident not in self.markers:
                continue  # no marker, or a reference to a missing one: nothing is drawn
            marker = self.markers[ident]
            if marker is None or self.marker_segments > MAX_MARKER_SEGMENTS:
                self.report.add("marker", elem, self.instance)
                continue
            if ident not in self.marker_sizes:
                self.marker_sizes[ident] = sum(1 for _ in marker.iter())
            self.marker_segments += self.marker_sizes[ident]  # walking its elements costs too, drawn or not
            self.marker_instance(marker, point, angle, i == 0, style, ctx)

    def marker_instance(self, marker: ET.Element, point: Point2, angle: float, is_start: bool, style: Style,
                        ctx: _Context) -> None:
        fs = style.font_size
        mw = self._length(marker.get("markerWidth", "3"), ctx, "x", fs)
        mh = self._length(marker.get("markerHeight", "3"), ctx, "y", fs)
        if mw is None or mh is None or mw <= 0 or mh <= 0:
            return
        orient = marker.get("orient", "0").strip()
        if orient == "auto-start-reverse":
            rotation = angle + 180.0 if is_start else angle
        elif orient == "auto":
            rotation = angle
        else:
            rotation = 0.0
            for unit, factor in (("deg", 1.0), ("grad", 0.9), ("rad", 180 / math.pi), ("turn", 360.0), ("", 1.0)):
                if orient.endswith(unit):
                    try:
                        rotation = float(orient[:len(orient) - len(unit)]) * factor
                    except ValueError:
                        pass
                    break
            if not math.isfinite(rotation):
                rotation = 0.0
        scale = style.stroke_width if marker.get("markerUnits", "strokeWidth").strip() == "strokeWidth" else 1.0
        if scale <= 0:
            return
        viewbox = parse_viewbox(marker.get("viewBox"))
        if viewbox is not None and (viewbox[2] <= 0 or viewbox[3] <= 0):
            return
        to_viewport = (viewbox_transform(viewbox, marker.get("preserveAspectRatio"), mw, mh)
                       if viewbox is not None else IDENTITY)
        ref = apply(to_viewport, (self._length(marker.get("refX", "0"), ctx, "x", fs) or 0.0,
                                  self._length(marker.get("refY", "0"), ctx, "y", fs) or 0.0))
        r = math.radians(rotation)
        place = multiply(ctx.ctm, multiply(translate(point[0], point[1]), multiply(
            (math.cos(r), math.sin(r), -math.sin(r), math.cos(r), 0.0, 0.0),
            multiply((scale, 0.0, 0.0, scale, 0.0, 0.0), translate(-ref[0], -ref[1])))))
        marker_style = self.styles.style_of(marker, self.root_style, ctx.viewport)  # inherits from the document
        clips = ctx.clips
        if not marker_style.overflow_visible:
            clips = add_clip(clips, (0.0, 0.0, mw, mh), place)
            if clips is None:
                return
        inner = _Context(multiply(place, to_viewport), (viewbox[2], viewbox[3]) if viewbox else (mw, mh), clips,
                         ctx.opacity * marker_style.opacity)
        instance, self.in_marker = self.instance, True
        self.instances += 1
        self.instance = self.instances
        try:
            for child in marker:
                if isinstance(child.tag, str):
                    self.walk(child, marker_style, inner)
        finally:
            self.in_marker, self.instance = False, instance

    def paint(self, paint: Paint, style: Style, elem: ET.Element, ctx: _Context,
              subpaths: Optional[List[Subpath]] = None, bbox: Optional[list] = None):
        """-> (flat rgb or None, alpha, Gradient in document coordinates or None). A gradient's flat colour is
        the mean of its stops and its alpha 1 (the stops' opacities are in the Gradient)."""
        if paint.kind == "none":
            return None, 0.0, None
        if paint.kind == "currentColor":
            return style.color[0], style.color[1], None
        if paint.kind == "color":
            return paint.rgb, paint.alpha, None
        server = self.servers.get(paint.server)
        if server is None:
            if paint.fallback is not None:
                return self.paint(paint.fallback, style, elem, ctx, subpaths, bbox)
            return None, 0.0, None  # a missing server without fallback colour paints nothing
        if paint.server not in self.specs:  # resolved once per gradient, not once per element it paints
            self.specs[paint.server] = resolve_spec(paint.server, self.servers, self.css)
        spec = self.specs[paint.server]
        if spec is None:  # a pattern, or another server that is not a gradient
            self.report.add("pattern", elem, self.instance)
            return PATTERN_FALLBACK_RGB, 1.0, None
        self.gradient_stop_uses += len(spec.stops)
        if self.gradient_stop_uses > MAX_GRADIENT_STOP_USES:
            raise SVGLoadError(f"SVG gradients are too costly: more than {MAX_GRADIENT_STOP_USES} gradient stops "
                               f"summed over the paints that use them (at {describe(elem)})")
        if bbox is not None and not bbox:
            bbox.append(shape_bbox(subpaths or []))
        kind, value = build_gradient(spec, bbox[0] if bbox else None, ctx.ctm, ctx.viewport)
        if kind == "gradient":
            return value.mean_color(), 1.0, value
        if kind == "flat":
            return value[0], value[1], None
        if kind == "fallback" and paint.fallback is not None:  # no stops, or a zero-size objectBoundingBox
            return self.paint(paint.fallback, style, elem, ctx, subpaths, bbox)
        return None, 0.0, None

    def emit(self, fill_geom, stroke_geom, fill_rgb, fill_opacity, stroke_rgb, stroke_opacity, width, rule,
             caps: Tuple[str, str, float] = ("butt", "miter", 4.0), fill_grad=None, stroke_grad=None) -> None:
        def layout(sp: Subpath) -> Tuple[List[Point2], bool]:
            segs = sp.segments
            pts = [segs[0][0]]
            for c in segs:
                pts += [c[1], c[2], c[3]]
            if sp.closed:
                if same_point(pts[-1], pts[0]):
                    return pts[:-1], True
                pts += list(line_cubic(pts[-1], pts[0])[1:3])
                return pts, True
            return pts, False

        separate = stroke_geom is not None
        self.shapes += 1
        if self.in_marker:
            self.marker_segments += sum(len(sp.segments) for sp in fill_geom) + sum(
                len(sp.segments) for sp in (stroke_geom or ()))
        group = self.group
        self.group += 1
        for sp in fill_geom if (fill_rgb is not None or not separate) else ():  # no empty shell beside pieces
            if not sp.segments:
                continue
            pts, closed = layout(sp)
            self.paths.append(RawPath(pts, closed, None if separate else stroke_rgb,
                                      0.0 if separate else stroke_opacity, 0.0 if separate else width,
                                      fill_rgb, fill_opacity, group, rule, *caps, fill_paint=fill_grad,
                                      stroke_paint=None if separate else stroke_grad))
        if separate and stroke_rgb is not None:
            for sp in stroke_geom:
                if not sp.segments:
                    continue
                pts, closed = layout(sp)
                self.paths.append(RawPath(pts, closed, stroke_rgb, stroke_opacity, width, None, 0.0, self.group,
                                          rule, *caps, stroke_paint=stroke_grad))
                self.group += 1


def build_paths(root: ET.Element, css, servers, ids: Dict[str, ET.Element], viewport: Tuple[float, float],
                clip_root: bool, clip_rects: Optional[Dict] = None,
                markers: Optional[Dict] = None) -> Tuple[List[RawPath], Report]:
    """Walks the cleaned document (ids: the clean-up's id map, the one its expansion check counted; viewport:
    the outermost viewport's size, canvas.root_viewport). Returns (paths, report)."""
    width, height = viewport
    if not (width > 0 and height > 0 and math.isfinite(width) and math.isfinite(height)):
        raise SVGLoadError(f"empty SVG: the viewport is {width:g}x{height:g}, nothing is rendered")
    builder = Builder(css, servers, ids, clip_rects=clip_rects, markers=markers)
    base = Style()
    top = _Context(IDENTITY, (width, height), (), 1.0)
    style = builder.style_of(root, base, top)
    builder.root_style = style
    background = cascade(root, css.get(root, ()), {"background-color"}).get("background-color", [])
    if background and background[0].strip().lower() not in ("transparent", "none", "initial"):
        builder.report.add("background-color", root)
    if not style.display or not builder.conditions_hold(root):
        return [], builder.report
    for flag, feature in ((style.filter, "filter"), (style.mask, "mask"), (style.blend, "mix-blend-mode"),
                          (style.clip_path is not None, "clip-path")):
        if flag:
            builder.report.add(feature, root)  # on the outermost <svg>: not applied
    ctm = IDENTITY
    if style.transform is not None:
        ctm = style.transform
    clips = ()
    if clip_root:
        clips = (((0.0, 0.0, width, height), IDENTITY, IDENTITY),)
    viewbox = parse_viewbox(root.get("viewBox"))
    viewport = (width, height)
    if viewbox is not None:
        if viewbox[2] <= 0 or viewbox[3] <= 0:
            raise SVGLoadError("empty SVG: the viewBox has zero width or height, nothing is rendered")
        ctm = multiply(ctm, viewbox_transform(viewbox, root.get("preserveAspectRatio"), width, height))
        viewport = (viewbox[2], viewbox[3])
    ctx = _Context(ctm, viewport, clips, style.opacity)
    try:
        for child in root:
            if isinstance(child.tag, str):
                builder.walk(child, style, ctx)
    except SVGLoadError:
        raise
    except Exception as exc:  # a bug of ours: still the loader's error, naming the element being built
        where = describe(builder.current) if builder.current is not None else "the document"
        raise SVGLoadError(f"internal error while building {where}: {type(exc).__name__}: {exc}") from exc
    if style.opacity < 1 and builder.shapes > 1 and _overlap(builder.paths):
        builder.report.add("group opacity", root)
    return builder.paths, builder.report


