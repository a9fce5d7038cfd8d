"""Parsing and sanitising: raw input checks, the defusedxml parse with element limits, and the tree clean-up
that leaves svgelements only what is supported and checked (including bounds on the work it will do)."""
from __future__ import annotations

import codecs
import math
import re
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Dict, List, Optional, Tuple, Union

import defusedxml
import defusedxml.ElementTree as DET
import svgelements as se

from .css import collect_css, match_css
from .geometry import parse_length
from .limits import (ARC_SEGMENT_COST, MAX_BYTES, MAX_DEPTH, MAX_ELEMENTS, MAX_PARSE_WORK, MAX_SEGMENTS,
                     MIN_ARC_RADIUS, SVGLoadError,
                     _FLOAT_RE, _NONFINITE_IN_D_RE, _NONFINITE_WORD_RE, _POINTS_BAD_CHAR_RE,
                     _check_value, _too_many_segments)
from .paint import collect_paint_servers
from .validate import check_values
from .xmlutil import SHAPES, SVG_NS, XLINK_HREF, describe, id_map, split_tag as _split_tag

# Elements kept for svgelements; everything else in the SVG namespace is dropped with its subtree.
_SUPPORTED = {"svg", "g", "a", "defs", "use", "switch", "symbol"} | SHAPES
# Dropped without a warning: they never draw anything (<style> is read and inlined before).
_SILENT = {"title", "desc", "metadata", "script", "style", "view", "cursor", "color-profile"}

_XML_ENCODING_RE = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
          (b"%PDF", "a PDF document"), (b"\x1f\x8b", "gzip data (a compressed .svgz? decompress it first)"),
          (b"PK\x03\x04", "a ZIP archive"), (b"RIFF", "a RIFF file (WebP/AVI/WAV)"), (b"BM", "a BMP image"))


# ----------------------------------------------------------------------------------------------------------
# 1. raw input
# ----------------------------------------------------------------------------------------------------------

def _too_large(size: int, unit: str) -> SVGLoadError:
    return SVGLoadError(f"SVG is too large: {size} {unit}, the limit is {MAX_BYTES} bytes "
                        f"({MAX_BYTES // (1024 * 1024)} MB)")


def _check_source(source: Union[bytes, str]) -> str:
    """Size, type and encoding checks; returns the document as text for the XML parser.

    Bytes are decoded here, not by expat: expat raises raw LookupError/ValueError for unknown or multi-byte
    declared encodings (Shift_JIS, GBK, ...), while Python's codecs decode them; the text is then parsed as str."""
    from_bytes = isinstance(source, (bytes, bytearray, memoryview))
    if from_bytes:
        data = bytes(source)
        if len(data) > MAX_BYTES:
            raise _too_large(len(data), "bytes")
        source = _decode(data)
    elif isinstance(source, str):
        if len(source) > MAX_BYTES:  # characters: rejected before encoding anything
            raise _too_large(len(source), "characters")
    else:
        raise SVGLoadError(f"SVG source must be bytes or str (the SVG text itself), got {type(source).__name__}")
    try:
        size = len(source.encode("utf-8"))
    except UnicodeEncodeError as exc:
        line = source.count("\n", 0, exc.start) + 1
        raise SVGLoadError(f"SVG text is not valid Unicode: unpaired surrogate U+{ord(source[exc.start]):04X} at "
                           f"character {exc.start} (line {line})") from None
    if size > MAX_BYTES and not from_bytes:  # decoded bytes were measured as bytes
        raise _too_large(size, "bytes")
    head = source.lstrip("\ufeff \t\r\n")
    if not head:
        raise SVGLoadError("not an SVG document: the input is empty")
    if not head.startswith("<"):
        hint = " (pass the SVG file's contents, not its path)" if head.rstrip().lower().endswith(".svg") else ""
        raise SVGLoadError(f"not an SVG document: text does not start with '<'{hint}")
    return source


# Byte-order marks (UTF-32 before UTF-16: its little-endian mark starts like UTF-16's).
_BOMS = ((b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\xef\xbb\xbf", "utf-8"),
         (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
# Python codecs that decode bytes but are no character encoding a document may declare (escape codecs, codecs
# for host names) or that can hide markup in harmless-looking bytes (UTF-7).
_REFUSED_CODECS = frozenset(("utf-7", "unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined"))


def _decode(data: bytes) -> str:
    """Bytes -> text: byte-order mark, else the XML declaration's encoding, else UTF-8 (XML 1.0 appendix F)."""
    name, how = "utf-8", "default"
    for bom, bom_name in _BOMS:
        if data.startswith(bom):
            name, how, data = bom_name, "byte-order mark", data[len(bom):]
            break
    else:
        if data.startswith(b"<\x00?\x00"):
            name, how = "utf-16-le", "detected"
        elif data.startswith(b"\x00<\x00?"):
            name, how = "utf-16-be", "detected"
        else:
            head = data.lstrip(b" \t\r\n")
            if not head:
                raise SVGLoadError("not an SVG document: the input is empty")
            if not head.startswith(b"<"):
                kind = next((k for magic, k in _MAGIC if head.startswith(magic)), "binary or plain-text data")
                raise SVGLoadError(f"not an SVG document: the bytes look like {kind}, not XML")
            match = _XML_ENCODING_RE.match(data[:300])
            if match:
                name, how = match.group(1).decode("ascii"), "declared"
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise SVGLoadError(f"unknown text encoding {name[:40]!r} in the XML declaration (attribute 'encoding')") from None
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED_CODECS:
        raise SVGLoadError(f"text encoding {name[:40]!r} in the XML declaration (attribute 'encoding') is not "
                           f"supported for SVG")
    try:
        return data.decode(info.name)
    except UnicodeDecodeError as exc:
        shown = "UTF-8" if info.name == "utf-8" else name
        raise SVGLoadError(f"SVG text is not valid {shown} (invalid byte 0x{data[exc.start]:02x} at offset "
                           f"{exc.start}); {shown} is its {how} encoding") from None


# ----------------------------------------------------------------------------------------------------------
# 2. safe XML parse
# ----------------------------------------------------------------------------------------------------------


class _LimitedTreeBuilder(ET.TreeBuilder):
    """TreeBuilder that enforces the element limits inside the parser callbacks: parsing stops at the first
    element over a limit, before the rest of the document is turned into objects."""

    def __init__(self):
        super().__init__()
        self.count = 0
        self.depth = 0

    def start(self, tag, attrs):
        self.count += 1
        self.depth += 1
        if self.count == 1:
            ns, name = _split_tag(tag)
            if name != "svg" or ns not in ("", SVG_NS):
                shown = name if ns in ("", SVG_NS) else tag
                raise SVGLoadError(f"not an SVG document: the root element is <{shown}>, expected <svg>")
        if self.count > MAX_ELEMENTS:
            raise SVGLoadError(f"SVG has too many elements: more than the limit of {MAX_ELEMENTS}")
        if self.depth > MAX_DEPTH:
            raise SVGLoadError(f"SVG is nested too deeply: more than {MAX_DEPTH} levels of elements")
        return super().start(tag, attrs)

    def end(self, tag):
        self.depth -= 1
        return super().end(tag)


def _parse_xml(data: str) -> ET.Element:
    """defusedxml parse with element limits checked while parsing."""
    try:
        # A plain <!DOCTYPE svg PUBLIC ...> is allowed (common in exports; its external DTD is never loaded),
        # but any entity declaration or external reference is refused.
        parser = DET.DefusedXMLParser(target=_LimitedTreeBuilder(), forbid_dtd=False, forbid_entities=True,
                                      forbid_external=True)
        parser.feed(data)  # one feed: chunked feeding makes expat 2.5 quadratic on megabyte-long attributes
        root = parser.close()
    except defusedxml.EntitiesForbidden as exc:
        kind = "external entity" if (exc.sysid or exc.pubid) else "entity"
        raise SVGLoadError(f"XML {kind} declaration '{str(exc.name)[:40]}' is not allowed: DTD entities are refused "
                           f"(entity-expansion bombs, external file access)") from None
    except defusedxml.ExternalReferenceForbidden:
        raise SVGLoadError("XML external reference is not allowed (external DTDs/entities are never loaded)") from None
    except defusedxml.DefusedXmlException as exc:
        raise SVGLoadError(f"unsafe XML construct refused: {exc}") from None
    except ET.ParseError as exc:
        raise SVGLoadError(f"SVG is not well-formed XML: {exc}") from None
    if root is None:
        raise SVGLoadError("not an SVG document: no XML element found")
    return root


# ----------------------------------------------------------------------------------------------------------
# 3. tree clean-up and checks
# ----------------------------------------------------------------------------------------------------------


class _PathDataCheck:
    """Runs svgelements' own path lexer with a sink that builds nothing.

    It counts segments, checks every number, and records where the last complete command ended, so malformed
    data can be cut exactly where svgelements would stop parsing (or crash: e.g. 'h' without a number).
    """

    current_point = None  # the lexer asks for it to make relative coordinates absolute; raw values suffice here

    def __init__(self, where: str, budget: int):
        self.where = where
        self.budget = budget
        self.lexer = se.SVGLexicalParser()
        self.segments = 0
        self.valid_end = 0
        self.started = False
        self.problem: Optional[str] = None

    def run(self, d: str) -> Optional[str]:
        """Returns None if `d` is valid, else a description of the first problem (valid prefix: d[:valid_end])."""
        try:
            self.lexer.parse(self, d)
        except SVGLoadError:
            raise
        except (ValueError, TypeError, AttributeError, IndexError):  # the lexer signals bad data with a bare ValueError
            problem = self.problem or f"incomplete command after character {self.valid_end}"
        else:
            rest = d[self.lexer.pos:].strip(" \t\r\n\f,")
            if not rest:
                return None
            problem = f"unexpected {rest[:16]!r} at character {self.lexer.pos}"
        tail = d[self.valid_end:]
        stripped = tail.lstrip(" \t\r\n\f,")
        if self.started and stripped[:1] in ("Z", "z"):  # 'Z 5 5': the close itself is valid, the numbers are not
            self.valid_end += len(tail) - len(stripped) + 1
            self.segments += 1
        return problem

    def _accept(self, values, move: bool = False, cost: int = 1) -> None:
        if not self.started and not move:
            self.problem = "path data must begin with a moveto (M/m)"
            raise ValueError(self.problem)
        for value in values:
            for v in (value if isinstance(value, tuple) else (value,)):
                if v is None:
                    raise ValueError("missing number")
                if not isinstance(v, bool):
                    _check_value(float(v), self.where)
        self.started = True
        self.segments += cost  # a moveto counts too: every subpath becomes a sketch path
        if self.segments > self.budget:
            raise _too_many_segments()
        self.valid_end = self.lexer.pos

    def start(self):
        pass

    def end(self):
        pass

    def move(self, *points, relative=False):
        self._accept(points, move=True)

    def closed(self, relative=False):
        self._accept(())

    def line(self, *points, relative=False):
        self._accept(points)

    horizontal = vertical = smooth_quad = quad = smooth_cubic = cubic = line

    def arc(self, *args, relative=False):
        for radius in args[:2]:
            if radius is not None and 0 < abs(float(radius)) < MIN_ARC_RADIUS:
                raise SVGLoadError(f"arc radius {float(radius):g} in {self.where} is too small (a radius is 0 or at "
                                   f"least {MIN_ARC_RADIUS:g})")
        self._accept(args, cost=ARC_SEGMENT_COST)


class _Cleaner:
    """Checks and rewrites the parsed tree in place so that svgelements only sees what we support and checked."""

    def __init__(self, root: ET.Element):
        self.root = root
        self.skipped: Counter = Counter()
        self.warnings: List[str] = []
        self.malformed: List[str] = []
        self.bad_refs = 0
        self.segments_total = 0
        self.segments: Dict[ET.Element, int] = {}  # element -> number of path segments it draws itself
        self.paint_servers: Dict = {}
        self.css: Dict = {}
        self.ids: Dict[str, ET.Element] = {}  # id -> element, set by _check_expansion for the walk
        self._use_targets: Optional[set] = None  # ids referenced by <use>, computed when first needed

    def run(self) -> None:
        self.paint_servers = collect_paint_servers(self.root)
        rules = collect_css(self.root, self.warnings)
        self._clean_element(self.root, "svg")
        self._walk()
        self.css = match_css(self.root, rules)  # element -> matched declarations, for the cascade in build.py
        check_values(self.root, self.css)  # numbers, paints and transforms in attributes, styles and the sheet
        self._fix_root()
        self._check_expansion()
        if self.malformed:
            more = f" (and {len(self.malformed) - 1} more)" if len(self.malformed) > 1 else ""
            self.warnings.append(f"malformed path data or geometry in {len(self.malformed)} element(s), drawn up "
                                 f"to the error: {self.malformed[0]}{more}")
        if self.bad_refs:
            self.warnings.append(f"ignored {self.bad_refs} <use> reference(s) to missing, external or circular targets")

    # -- per element ---------------------------------------------------------------------------------------
    def _walk(self) -> None:
        stack = [self.root]
        while stack:
            parent = stack.pop()
            parent_is_shape = _split_tag(parent.tag)[1] in SHAPES
            for child in list(parent):
                ns, name = _split_tag(child.tag)
                if ns not in ("", SVG_NS) or name in _SILENT:  # editor metadata (sodipodi:namedview, ...) draws nothing
                    parent.remove(child)
                    continue
                if parent_is_shape:  # shapes have no drawable children in SVG
                    parent.remove(child)
                    self.skipped[name] += 1
                    continue
                if name not in _SUPPORTED:
                    # Kept without its content: <switch> must still see it, and build.py reports it if drawn.
                    # Content that a <use> references (by id) moves to a <defs> and is cleaned like the rest.
                    moved = self._referenced_content(child)
                    for grandchild in list(child):
                        child.remove(grandchild)
                    if moved:
                        stack.append(self._orphans(moved))
                    self.skipped[name] += 1
                    continue
                if self._clean_element(child, name):
                    stack.append(child)
                else:
                    parent.remove(child)

    def _referenced_content(self, elem: ET.Element) -> List[ET.Element]:
        """Outermost descendants of `elem` whose id some <use> references (<use href="#x"> may point into
        content that is not rendered itself, e.g. a <clipPath> or an unknown element)."""
        if self._use_targets is None:
            self._use_targets = {value.strip()[1:] for e in self.root.iter() for key in ("href", XLINK_HREF)
                                 if (value := e.get(key)) and value.strip().startswith("#")}
        if not self._use_targets:
            return []
        found, stack = [], list(reversed(list(elem)))
        while stack:
            node = stack.pop()
            if node.get("id") in self._use_targets:
                found.append(node)
            else:
                stack.extend(reversed(list(node)))
        return found

    def _orphans(self, elements: List[ET.Element]) -> ET.Element:
        """A <defs> at the end of the document holding `elements` (not rendered, reachable by <use>)."""
        ns = _split_tag(self.root.tag)[0]
        defs = ET.SubElement(self.root, f"{{{ns}}}defs" if ns else "defs")
        defs.extend(elements)
        return defs

    def _clean_element(self, elem: ET.Element, name: str) -> bool:
        """Returns False if the element must be dropped."""
        attrib = elem.attrib
        # numbers in attributes and styles are checked by validate.check_values, once the style sheet is matched
        segments = 0
        if name == "path":
            if not attrib.get("d", "").strip():
                return False  # draws nothing; svgelements raises TypeError on a missing d
            segments = self._clean_path_data(elem)
        elif name in ("polyline", "polygon"):
            segments = self._clean_points(elem, name)
        elif name in ("rect", "circle", "ellipse", "line"):
            # (a negative rx/ry of an ellipse means auto, SVG 2: build.py resolves it)
            sizes = {"rect": ("width", "height"), "circle": ("r",), "ellipse": (), "line": ()}[name]
            if any(attrib.get(k, "").strip().startswith("-") for k in sizes):
                self.malformed.append(f"{describe(elem)} has a negative size (not drawn)")  # svgelements mirrors it
                return False
            segments = 8 if name == "rect" else (1 if name == "line" else 4)
        elif name == "use":
            self._clean_use(elem)
        if segments:
            self.segments_total += segments
            if self.segments_total > MAX_SEGMENTS:
                raise _too_many_segments()
            self.segments[elem] = segments
        return True

    def _clean_path_data(self, elem: ET.Element) -> int:
        d = elem.get("d")
        where = f"{describe(elem)} attribute d (path data)"
        if _NONFINITE_IN_D_RE.search(d):
            raise SVGLoadError(f"non-finite number (NaN/inf) in {where}")
        budget = MAX_SEGMENTS - self.segments_total
        # Cheap lower bound first (every command letter but Z draws at least one segment or subpath): a path
        # with a million commands is refused here without being lexed.
        if sum(d.count(c) for c in "MmLlHhVvCcSsQqTtAa") > budget:
            raise _too_many_segments()
        check = _PathDataCheck(where, budget)
        problem = check.run(d)
        if problem:
            self.malformed.append(f"{describe(elem)}: {problem}")
            elem.set("d", d[:check.valid_end])
        return check.segments

    def _clean_points(self, elem: ET.Element, name: str) -> int:
        points = elem.get("points", "")
        where = f"{describe(elem)} attribute points"
        bad = _POINTS_BAD_CHAR_RE.search(points)
        if bad and _NONFINITE_WORD_RE.search(points):
            raise SVGLoadError(f"non-finite number (NaN/inf) in {where}")
        valid = bad.start() if bad else len(points)
        limit = 2 * (MAX_SEGMENTS - self.segments_total + 1)
        numbers = []
        for match in _FLOAT_RE.finditer(points, 0, valid):
            value = float(match.group())
            _check_value(value, where)
            numbers.append(value)
            if len(numbers) > limit:
                raise _too_many_segments()
        if bad or len(numbers) % 2:  # SVG: draw up to the error (svgelements would silently skip garbage)
            self.malformed.append(f"{describe(elem)}: invalid points list at character {valid}")
            numbers = numbers[: len(numbers) // 2 * 2]
        # Always rewritten canonically: svgelements' coordinate-pair regex backtracks catastrophically
        # on long digit runs.
        elem.set("points", " ".join(map(repr, numbers)))
        return max(0, len(numbers) // 2 - 1) + (1 if name == "polygon" else 0)

    def _clean_use(self, elem: ET.Element) -> None:
        ref = elem.get("href", elem.get(XLINK_HREF))  # svgelements also lets SVG 2 href win over xlink:href
        elem.attrib.pop(XLINK_HREF, None)
        if ref is None:
            return
        if ref.strip().startswith("#"):
            elem.set("href", ref.strip())
        else:  # only same-document references are followed (svgelements would look up ref[1:] whatever ref is)
            elem.attrib.pop("href", None)
            self.bad_refs += 1

    def _fix_root(self) -> None:
        attrib = self.root.attrib
        for key in ("x", "y"):
            attrib.pop(key, None)  # no effect on the outermost <svg>, but svgelements would offset everything
        viewbox = None
        if "viewBox" in attrib:
            numbers = [float(n) for n in _FLOAT_RE.findall(attrib["viewBox"])]
            if len(numbers) != 4 or numbers[2] < 0 or numbers[3] < 0:
                self.warnings.append(f"ignored invalid viewBox {attrib['viewBox'][:60]!r}")
                del attrib["viewBox"]
            elif numbers[2] == 0 or numbers[3] == 0:
                raise SVGLoadError("empty SVG: the viewBox has zero width or height, nothing is rendered")
            else:
                viewbox = numbers
        size = {}
        for key in ("width", "height"):
            value = attrib.get(key, "").strip()
            if not value or value == "auto" or value.endswith("%"):
                continue  # resolved against the canvas by svgelements (parse width/height)
            # the walk's own length parser (canvas.root_viewport reads the size with it); invalid = absent
            length = parse_length(value, 0.0)
            length = -1.0 if length is None else length
            if length < 0 or not math.isfinite(length):
                self.warnings.append(f"ignored invalid {key} {value[:60]!r} on <svg>")
                del attrib[key]
            elif length == 0:
                raise SVGLoadError(f"empty SVG: {key} is zero, nothing is rendered")
            else:
                size[key] = length
        if viewbox and len(size) == 1:
            # Only one of width/height: the other follows the viewBox aspect ratio (CSS sizing of replaced elements).
            if "width" in size:
                attrib["height"] = repr(size["width"] * viewbox[3] / viewbox[2])
            else:
                attrib["width"] = repr(size["height"] * viewbox[2] / viewbox[3])

    def _check_expansion(self) -> None:
        """Bound what the walk (build.py) will do, before it starts.

        Mirrors the walk's <use> inlining (the target's subtree is walked again under each <use>) to count
        elements, segments and nesting depth of the expanded document: use-bombs, circular references and deep
        chains are caught here. Also counts parse work: the characters of every instance's own attributes.
        """
        self.ids = ids = id_map(self.root)  # build.py walks <use> through the same map

        def target_of(node):
            if _split_tag(node.tag)[1] == "use" and node.get("href"):
                return ids.get(node.get("href")[1:])
            return None

        def kids(node):
            yield from node
            if _split_tag(node.tag)[1] == "use" and node.get("href"):
                target = target_of(node)
                if target is None or state.get(target) == 1:  # missing, or an ancestor in the expansion: a cycle
                    del node.attrib["href"]
                    self.bad_refs += 1
                else:
                    yield target

        state: Dict[ET.Element, int] = {self.root: 1}  # 1 = being expanded, 2 = done
        totals: Dict[ET.Element, Tuple[int, int, int, int]] = {}  # elements, segments, depth, work
        stack = [(self.root, kids(self.root))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is not None:
                if state.get(child) is None:
                    state[child] = 1
                    stack.append((child, kids(child)))
                continue
            stack.pop()
            target = target_of(node)
            parts = [totals[c] for c in node] + ([totals[target]] if target is not None else [])
            elements = 1 + sum(p[0] for p in parts)
            segments = self.segments.get(node, 0) + sum(p[1] for p in parts)
            depth = 1 + max((p[2] for p in parts), default=0)
            work = _attribute_cost(node) + sum(p[3] for p in parts)
            if elements > MAX_ELEMENTS:
                raise SVGLoadError(f"SVG has too many elements after expanding <use> references: more than "
                                   f"the limit of {MAX_ELEMENTS}")
            if segments > MAX_SEGMENTS:
                raise _too_many_segments(after_use=True)
            if depth > MAX_DEPTH:
                raise SVGLoadError(f"SVG is nested too deeply through <use> references: more than {MAX_DEPTH} levels")
            if work > MAX_PARSE_WORK:
                raise SVGLoadError(f"SVG is too costly to parse: its attributes, with <use> instances counted "
                                   f"again, add up to more than {MAX_PARSE_WORK} characters")
            totals[node] = (elements, segments, depth, work)
            state[node] = 2


def _attribute_cost(elem: ET.Element) -> int:
    """Characters of `elem`'s own attributes that the walk parses (path data and points excluded: they are
    bounded by MAX_SEGMENTS). Inherited values cost nothing per descendant: the walk copies the parent's
    computed style and composes transforms as matrices, so an attribute is parsed once per instance of its
    element (a <use> instantiates its target's subtree again, which the expansion above counts)."""
    return sum(len(v) for k, v in elem.attrib.items() if k not in ("d", "points"))
