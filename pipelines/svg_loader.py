"""SVG document -> vector Sketch (cubic Bezier paths), hardened against hostile input.

Pipeline of `load_svg_sketch`:

1. Raw checks: input type, size limit, "starts like XML", text encoding.
2. defusedxml parse: entity declarations and external references are refused; element count, nesting depth
   and the root tag are checked inside the parser callbacks, so parsing stops at the first violation.
3. Tree clean-up: unsupported elements are dropped (and counted), path data is checked with svgelements'
   own path lexer (a malformed tail is cut off with a warning; NaN/inf/absurd numbers reject the document),
   <style> rules are applied by a linear parser of ours, and the cost of what svgelements will do is
   bounded (<use> expansion, segments, inherited attributes). The cleaned tree is re-serialised, so
   svgelements never sees a DTD, a style sheet or anything else that was not checked.
4. svgelements resolves geometry, transforms, viewBox/preserveAspectRatio, presentation attributes,
   style="" and inheritance.
5. Every segment becomes a cubic, every subpath one sketch path; the result is mapped onto the canvas.

Everything the caller can get wrong raises SVGLoadError (a ValueError) with a message naming the problem.
"""
from __future__ import annotations

import io
import logging
import math
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple, Union

import defusedxml
import defusedxml.ElementTree as DET
import svgelements as se
import torch

from .sketch import PathStyle, Sketch

log = logging.getLogger("VideoPriors")

MAX_BYTES = 10 * 1024 * 1024  # document size
MAX_ELEMENTS = 100_000  # XML elements, also after expanding <use>
MAX_DEPTH = 200  # element nesting, also through <use>; svgelements recurses per level
MAX_SEGMENTS = 100_000  # path segments in the whole document, after expanding <use>
MAX_CSS_RULES = 10_000  # selectors in all <style> elements
MAX_PARSE_WORK = 20_000_000  # estimated characters svgelements parses, see _Cleaner._check_expansion
MAX_ABS_COORD = 1e7  # any coordinate / number beyond this is treated as hostile
MAX_CANVAS = 16384
FIT_MARGIN = 0.05  # fit=True leaves this fraction of the canvas free on each side
FORCED_STROKE_WIDTH = 1.5  # force_black: stroke width for paths that had no stroke
PATTERN_FALLBACK_RGB = (0.5, 0.5, 0.5)  # flat colour for pattern paints (gradients use their mean stop colour)

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"

# Elements kept for svgelements; everything else in the SVG namespace is dropped with its subtree.
_SHAPES = {"path", "rect", "circle", "ellipse", "line", "polyline", "polygon"}
_SUPPORTED = {"svg", "g", "a", "defs", "use", "switch"} | _SHAPES
# Dropped without a warning: they never draw anything (<style> is read and inlined before).
_SILENT = {"title", "desc", "metadata", "script", "style", "view", "cursor", "color-profile"}
_GRADIENTS = {"linearGradient", "radialGradient"}
_PAINT_SERVERS = _GRADIENTS | {"pattern", "meshgradient", "hatch"}
# Attributes that hold numbers, checked for NaN/inf/absurd values before anything is built ('d' and
# 'points' have their own checks).
_NUMERIC_ATTRS = ("x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry", "width", "height",
                  "viewBox", "transform", "stroke-width")
# Inherited attributes that svgelements parses again for every descendant (see _attribute_cost).
_REPARSED_INHERITED = ("transform", "style", "fill", "stroke", "stroke-width", "stroke-opacity", "fill-opacity",
                       "opacity", "color")

_FLOAT = r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_FLOAT_RE = re.compile(_FLOAT)
_NONFINITE_WORD_RE = re.compile(r"(?i)(?<![a-z])[-+]?(?:nan|inf(?:inity)?)(?![a-z])")
_NONFINITE_IN_D_RE = re.compile(r"(?i)nan|inf")  # path data has no words, so any 'nan'/'inf' is a number
_POINTS_BAD_CHAR_RE = re.compile(r"[^0-9eE.+\-,\s]")
_SELECTOR_RE = re.compile(r"(\*|[A-Za-z][\w-]*)?((?:[#.][\w-]+)*)")  # compound simple selector, no combinators
_LENGTH_RE = re.compile(r"(%s)(px|pt|pc|mm|cm|in|em|ex)?" % _FLOAT)  # used with fullmatch
_XML_ENCODING_RE = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
          (b"%PDF", "a PDF document"), (b"\x1f\x8b", "gzip data (a compressed .svgz? decompress it first)"),
          (b"PK\x03\x04", "a ZIP archive"), (b"RIFF", "a RIFF file (WebP/AVI/WAV)"), (b"BM", "a BMP image"))


class SVGLoadError(ValueError):
    """The SVG was rejected; the message names the problem."""


@dataclass
class SVGLoadResult:
    sketch: Sketch
    warnings: List[str]
    skipped: Dict[str, int]  # unsupported element tag -> number of elements dropped


# ----------------------------------------------------------------------------------------------------------
# 1. raw input
# ----------------------------------------------------------------------------------------------------------

def _too_large(size: int, unit: str) -> SVGLoadError:
    return SVGLoadError(f"SVG is too large: {size} {unit}, the limit is {MAX_BYTES} bytes "
                        f"({MAX_BYTES // (1024 * 1024)} MB)")


def _check_source(source: Union[bytes, str]) -> Union[bytes, str]:
    """Size, type and encoding checks; returns the document for the XML parser."""
    if isinstance(source, str):
        if len(source) > MAX_BYTES:  # characters: rejected before encoding anything
            raise _too_large(len(source), "characters")
        size = len(source.encode("utf-8", "surrogatepass"))
        if size > MAX_BYTES:
            raise _too_large(size, "bytes")
        head = source.lstrip("\ufeff \t\r\n")
        if not head:
            raise SVGLoadError("not an SVG document: the input is empty")
        if not head.startswith("<"):
            hint = " (pass the SVG file's contents, not its path)" if head.rstrip().lower().endswith(".svg") else ""
            raise SVGLoadError(f"not an SVG document: text does not start with '<'{hint}")
        return source
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > MAX_BYTES:
            raise _too_large(len(data), "bytes")
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            return data  # UTF-16 with a byte-order mark: expat decodes and checks it
        head = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
        head = head.lstrip(b" \t\r\n")
        if not head:
            raise SVGLoadError("not an SVG document: the input is empty")
        if not head.startswith(b"<"):
            kind = next((name for magic, name in _MAGIC if head.startswith(magic)), "binary or plain-text data")
            raise SVGLoadError(f"not an SVG document: the bytes look like {kind}, not XML")
        _check_utf8(data[3:] if data.startswith(b"\xef\xbb\xbf") else data)
        return data
    raise SVGLoadError(f"SVG source must be bytes or str (the SVG text itself), got {type(source).__name__}")


def _check_utf8(data: bytes) -> None:
    """XML without an encoding declaration must be UTF-8; report bad bytes clearly (expat just says 'invalid token')."""
    match = _XML_ENCODING_RE.match(data[:300])
    if match and match.group(1).decode("ascii").lower().replace("_", "-") not in ("utf-8", "utf8"):
        return  # another declared encoding: expat decodes and checks it
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SVGLoadError(f"SVG text is not valid UTF-8 (invalid byte 0x{data[exc.start]:02x} at offset "
                           f"{exc.start}); UTF-8 is its declared or default encoding") from None


# ----------------------------------------------------------------------------------------------------------
# 2. safe XML parse
# ----------------------------------------------------------------------------------------------------------

def _split_tag(tag) -> Tuple[str, str]:
    if not isinstance(tag, str):
        return "?", ""  # comments / processing instructions (not produced by the default builder)
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return "", tag


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


def _parse_xml(data: Union[bytes, str]) -> ET.Element:
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

def _check_numbers(text: str, where: str) -> None:
    if _NONFINITE_WORD_RE.search(text):
        raise SVGLoadError(f"non-finite number (NaN/inf) in {where}")
    for match in _FLOAT_RE.finditer(text):
        _check_value(float(match.group()), where)


def _check_value(value: float, where: str) -> None:
    if not math.isfinite(value):
        raise SVGLoadError(f"non-finite number (NaN/inf, or too large for a float) in {where}")
    if abs(value) > MAX_ABS_COORD:
        raise SVGLoadError(f"absurd coordinate {value:g} in {where} (limit |x| <= {MAX_ABS_COORD:g})")


def _too_many_segments(after_use: bool = False) -> SVGLoadError:
    how = " after expanding <use> references" if after_use else ""
    return SVGLoadError(f"SVG has too many path segments{how}: more than the limit of {MAX_SEGMENTS}")


def _describe(elem: ET.Element) -> str:
    name = _split_tag(elem.tag)[1]
    ident = elem.get("id")
    return f"<{name} id={ident[:40]!r}>" if ident else f"<{name}>"


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

    def _accept(self, values, move: bool = False) -> None:
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
        if not move:
            self.segments += 1
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
        self._accept(args)


@dataclass
class _CSSRule:
    tag: Optional[str]  # None = any element
    ident: Optional[str]
    classes: frozenset
    specificity: Tuple[int, int, int, int]  # ids, classes, tags, document order
    declarations: str


def _css_rules(text: str, already: int = 0) -> Tuple[List[_CSSRule], int]:
    """Parse a style sheet into simple rules; returns (rules, number of rules with unsupported selectors).
    `already`: rules read from earlier style sheets, counted against MAX_CSS_RULES.

    Hand-written instead of svgelements' <style> support: its rule regex backtracks catastrophically
    (4 KB of whitespace take ~50 s), it applies rules only to elements after the </style>, and it ignores
    specificity. This scanner is linear; at-rules (@media, @font-face, @import) are skipped.
    """
    rules: List[_CSSRule] = []
    unsupported = 0
    text = _strip_css_comments(text)
    pos = 0
    while True:
        open_at = text.find("{", pos)
        if open_at < 0:
            break
        # drop statements such as '@import url(x);' and stray '}' before the selector
        prelude = text[pos:open_at].rsplit(";", 1)[-1].rsplit("}", 1)[-1].strip()
        # Find the matching '}' (nested blocks only occur inside at-rules); every character is scanned once.
        depth, cursor = 1, open_at + 1
        close_at = text.find("}", cursor)
        while close_at >= 0:
            nested = text.find("{", cursor, close_at)
            if nested >= 0:
                depth, cursor = depth + 1, nested + 1
                continue
            depth, cursor = depth - 1, close_at + 1
            if not depth:
                break
            close_at = text.find("}", cursor)
        if close_at < 0:
            close_at = len(text)  # unterminated block runs to the end
        body, pos = text[open_at + 1:close_at], close_at + 1
        if prelude.startswith("@"):
            continue
        decls = []
        for decl in body.split(";"):
            key, _, value = decl.partition(":")
            value = value.replace("!important", "").strip()
            if key.strip() and value and value.lower() != "inherit":
                decls.append(f"{key.strip()}:{value}")
        for selector in prelude.split(","):
            if already + len(rules) + unsupported >= MAX_CSS_RULES:
                raise SVGLoadError(f"SVG style sheet has too many rules: more than the limit of {MAX_CSS_RULES}")
            match = _SELECTOR_RE.fullmatch(selector.strip())
            if not match or not selector.strip():
                unsupported += 1
                continue
            tag, parts = match.group(1), re.findall(r"[#.][\w-]+", match.group(2))
            ids = [p[1:] for p in parts if p[0] == "#"]
            classes = frozenset(p[1:] for p in parts if p[0] == ".")
            if len(ids) > 1 or not decls:
                continue  # '#a#b' never matches; an empty rule changes nothing
            tags = 0 if tag in (None, "*") else 1
            rules.append(_CSSRule(None if tags == 0 else tag, ids[0] if ids else None, classes,
                                  (len(ids), len(classes), tags, len(rules)), ";".join(decls)))
    return rules, unsupported


def _strip_css_comments(text: str) -> str:
    out, pos = [], 0
    while True:
        start = text.find("/*", pos)
        if start < 0:
            out.append(text[pos:])
            return "".join(out)
        out.append(text[pos:start])
        end = text.find("*/", start + 2)
        if end < 0:
            return "".join(out)  # an unterminated comment runs to the end
        pos = end + 2


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
        self.paint_servers: Dict[str, Optional[Tuple[float, float, float]]] = {}

    def run(self) -> None:
        self._collect_paint_servers()
        rules = self._collect_css()
        self._clean_element(self.root, "svg")
        symbols = self._walk()
        self._apply_css(rules)
        if symbols:  # <symbol> is only drawn through <use>: keep it, as a group, where nothing draws it directly
            ns = _split_tag(self.root.tag)[0]
            defs = ET.Element(f"{{{ns}}}defs" if ns else "defs")
            defs.extend(symbols)
            self.root.insert(0, defs)
        self._fix_root()
        self._check_expansion()
        if self.malformed:
            more = f" (and {len(self.malformed) - 1} more)" if len(self.malformed) > 1 else ""
            self.warnings.append(f"malformed path data or geometry in {len(self.malformed)} element(s), drawn up "
                                 f"to the error: {self.malformed[0]}{more}")
        if self.bad_refs:
            self.warnings.append(f"ignored {self.bad_refs} <use> reference(s) to missing, external or circular targets")

    # -- paint servers and style sheets (document-wide, so read before anything is removed) -----------------
    def _collect_paint_servers(self) -> None:
        """Gradient id -> mean stop colour (flat fallback, since the sketch has one colour per path)."""
        by_id = {}
        for elem in self.root.iter():
            ns, name = _split_tag(elem.tag)
            if ns in ("", SVG_NS) and name in _PAINT_SERVERS and elem.get("id"):
                by_id[elem.get("id")] = (name, elem)
        colour_of: Dict[str, Optional[Tuple[float, float, float]]] = {}
        for ident in by_id:
            chain, result = {}, None  # dict: ordered and O(1) membership
            while ident not in colour_of and ident in by_id and ident not in chain:
                chain[ident] = True
                name, elem = by_id[ident]
                stops = [s for s in elem if _split_tag(s.tag)[1] == "stop"]
                if name not in _GRADIENTS or stops:
                    colours = [c for c in map(_stop_colour, stops) if c is not None]
                    if colours:
                        result = tuple(sum(c[i] for c in colours) / len(colours) for i in range(3))
                    break
                ref = (elem.get("href") or elem.get(XLINK_HREF) or "").strip()  # no stops: use the href'd ones
                ident = ref[1:] if ref.startswith("#") else ""
            else:
                result = colour_of.get(ident)  # already resolved (or missing / circular: None)
            for link in chain:  # memoised, so long href chains are walked once
                colour_of[link] = result
        self.paint_servers = colour_of

    def _collect_css(self) -> List[_CSSRule]:
        rules, unsupported = [], 0
        for elem in self.root.iter():
            ns, name = _split_tag(elem.tag)
            if ns in ("", SVG_NS) and name == "style" and elem.get("type", "text/css").strip() == "text/css":
                found, bad = _css_rules(elem.text or "", len(rules) + unsupported)
                for rule in found:
                    rule.specificity = rule.specificity[:3] + (len(rules),)
                    rules.append(rule)
                unsupported += bad
        if unsupported:
            self.warnings.append(f"ignored {unsupported} CSS rule(s) with unsupported selectors "
                                 f"(only *, tag, #id, .class and their combinations are applied)")
        return rules

    def _apply_css(self, rules: List[_CSSRule]) -> None:
        """Inline matching rules at the front of each element's style="" (style attribute > CSS > attributes)."""
        if not rules:
            return
        index: Dict[str, List[_CSSRule]] = {}
        for rule in rules:
            key = ("#" + rule.ident if rule.ident else "." + min(rule.classes) if rule.classes
                   else rule.tag or "*")
            index.setdefault(key, []).append(rule)
        work = 0
        for elem in self.root.iter():
            tag = _split_tag(elem.tag)[1]
            ident = elem.get("id")
            classes = frozenset(elem.get("class", "").split())
            keys = ["*", tag] + (["#" + ident] if ident else []) + ["." + c for c in classes]
            work += 10 * (len(keys) + sum(len(index.get(k, ())) for k in keys))  # a rule check ~ 10 characters
            if work > MAX_PARSE_WORK:
                raise SVGLoadError(f"SVG style sheet is too costly to apply: more than {MAX_PARSE_WORK} units "
                                   f"of work (many rules matching many elements)")
            matched = [r for k in keys for r in index.get(k, ())
                       if r.tag in (None, tag) and r.ident in (None, ident) and r.classes <= classes]
            work += sum(len(r.declarations) for r in matched)
            if matched:
                matched.sort(key=lambda r: r.specificity)
                css = ";".join(r.declarations for r in matched if r.declarations)
                elem.set("style", css + ";" + elem.get("style", "") if elem.get("style") else css)

    # -- per element ---------------------------------------------------------------------------------------
    def _walk(self) -> List[ET.Element]:
        symbols = []
        stack = [self.root]
        while stack:
            parent = stack.pop()
            parent_is_shape = _split_tag(parent.tag)[1] in _SHAPES
            for child in list(parent):
                ns, name = _split_tag(child.tag)
                if ns not in ("", SVG_NS) or name in _SILENT:  # editor metadata (sodipodi:namedview, ...) draws nothing
                    parent.remove(child)
                    continue
                if name == "symbol" and not parent_is_shape:
                    # svgelements treats <symbol> as an unknown element and would draw its content in place;
                    # it becomes a group in <defs> (its viewBox is ignored).
                    parent.remove(child)
                    child.tag = child.tag[:-len("symbol")] + "g"
                    symbols.append(child)
                    name = "g"
                elif name not in _SUPPORTED or parent_is_shape:  # shapes have no drawable children in SVG
                    parent.remove(child)
                    self.skipped[name] += 1
                    continue
                if self._clean_element(child, name):
                    stack.append(child)
                else:
                    parent.remove(child)
        return symbols

    def _clean_element(self, elem: ET.Element, name: str) -> bool:
        """Returns False if the element must be dropped."""
        attrib = elem.attrib
        for key in [k for k, v in attrib.items() if v.strip().lower() == "inherit"]:
            del attrib[key]  # svgelements copies 'inherit' literally; removing it lets the parent's value through
        if "style" in attrib:
            decls = [d for d in attrib["style"].split(";") if d.partition(":")[2].strip().lower() != "inherit"]
            attrib["style"] = ";".join(decls)
        attrib.pop("clip-path", None)  # clipping is not supported (and svgelements' url() regex is quadratic)
        for key in _NUMERIC_ATTRS:
            if key in attrib:
                _check_numbers(attrib[key], f"{_describe(elem)} attribute {key}")
        segments = 0
        if name == "path":
            if not attrib.get("d", "").strip():
                return False  # draws nothing; svgelements raises TypeError on a missing d
            segments = self._clean_path_data(elem)
        elif name in ("polyline", "polygon"):
            segments = self._clean_points(elem, name)
        elif name in ("rect", "circle", "ellipse", "line"):
            sizes = {"rect": ("width", "height"), "circle": ("r",), "ellipse": ("rx", "ry"), "line": ()}[name]
            if any(attrib.get(k, "").strip().startswith("-") for k in sizes):
                self.malformed.append(f"{_describe(elem)} has a negative size (not drawn)")  # svgelements mirrors it
                return False
            segments = 8 if name == "rect" else (1 if name == "line" else 4)
        elif name == "use":
            self._clean_use(elem)
        elif name == "svg":
            par = attrib.get("preserveAspectRatio")
            if par is not None:  # svgelements splits on one space and does not know the SVG 1.1 'defer' prefix
                words = par.split()
                attrib["preserveAspectRatio"] = " ".join(words[1:] if words[:1] == ["defer"] else words)
        if segments:
            self.segments_total += segments
            if self.segments_total > MAX_SEGMENTS:
                raise _too_many_segments()
            self.segments[elem] = segments
        return True

    def _clean_path_data(self, elem: ET.Element) -> int:
        d = elem.get("d")
        where = f"path data of {_describe(elem)}"
        if _NONFINITE_IN_D_RE.search(d):
            raise SVGLoadError(f"non-finite number (NaN/inf) in {where}")
        budget = MAX_SEGMENTS - self.segments_total
        # Cheap lower bound first (every command letter but Z draws at least one segment or subpath): a path
        # with a million commands is refused here without being lexed.
        if sum(d.count(c) for c in "LlHhVvCcSsQqTtAa") > budget or sum(d.count(c) for c in "Mm") > budget:
            raise _too_many_segments()
        check = _PathDataCheck(where, budget)
        problem = check.run(d)
        if problem:
            self.malformed.append(f"{_describe(elem)}: {problem}")
            elem.set("d", d[:check.valid_end])
        return check.segments

    def _clean_points(self, elem: ET.Element, name: str) -> int:
        points = elem.get("points", "")
        where = f"{_describe(elem)} attribute points"
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
            self.malformed.append(f"{_describe(elem)}: invalid points list at character {valid}")
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
            # svgelements reads an invalid length as 0, which would disable rendering: treat it as absent instead.
            length = float(se.Length(value).value(ppi=se.DEFAULT_PPI)) if _LENGTH_RE.fullmatch(value) else -1.0
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
        """Bound what svgelements will do, before it starts.

        Mirrors svgelements' <use> inlining (the target's subtree is parsed again under each <use>) to count
        elements, segments and nesting depth of the expanded document: use-bombs, circular references and deep
        chains are caught here. Also estimates parse work: svgelements copies every inherited attribute into
        each descendant and re-parses inherited strings (the whole transform chain, paint values) for each
        one, so an attribute costs its length times the size of the subtree below it.
        """
        ids = {}
        for elem in self.root.iter():
            if elem.get("id"):
                ids[elem.get("id")] = elem  # last one wins, as in svgelements

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
            inherited, own = _attribute_cost(node)
            work = elements * inherited + own + sum(p[3] for p in parts)
            if elements > MAX_ELEMENTS:
                raise SVGLoadError(f"SVG has too many elements after expanding <use> references: more than "
                                   f"the limit of {MAX_ELEMENTS}")
            if segments > MAX_SEGMENTS:
                raise _too_many_segments(after_use=True)
            if depth > MAX_DEPTH:
                raise SVGLoadError(f"SVG is nested too deeply through <use> references: more than {MAX_DEPTH} levels")
            if work > MAX_PARSE_WORK:
                raise SVGLoadError(f"SVG is too costly to parse: inherited attributes and transforms add up to more "
                                   f"than {MAX_PARSE_WORK} characters of parsing (long attributes on large groups)")
            totals[node] = (elements, segments, depth, work)
            state[node] = 2


def _attribute_cost(elem: ET.Element) -> Tuple[int, int]:
    """(cost paid by every element below `elem` for its attributes, cost paid by `elem` itself), in characters.

    Path data and points are excluded: they are only parsed by their own element and bounded by MAX_SEGMENTS.
    """
    attrib = elem.attrib
    inherited = len(attrib) + sum(len(attrib.get(k, "")) for k in _REPARSED_INHERITED)
    inherited += 3 * len(attrib.get("transform", ""))  # measured: transform chains cost ~4x other characters
    if "viewBox" in attrib:
        inherited += 4 * 64  # svgelements turns a viewBox into a transform string inherited like 'transform'
    own = sum(len(v) for k, v in attrib.items() if k not in ("d", "points"))
    return inherited, own


def _stop_colour(stop: ET.Element) -> Optional[Tuple[float, float, float]]:
    value = stop.get("stop-color")
    for decl in stop.get("style", "").split(";"):
        key, _, val = decl.partition(":")
        if key.strip() == "stop-color":
            value = val
    colour = se.Color(value.strip() if value else "black")
    if colour.value is None:
        return None
    return colour.red / 255.0, colour.green / 255.0, colour.blue / 255.0


# ----------------------------------------------------------------------------------------------------------
# 4./5. geometry and style from svgelements
# ----------------------------------------------------------------------------------------------------------

Point2 = Tuple[float, float]


@dataclass
class _RawPath:
    points: List[Point2]  # document (viewport px) coordinates, sketch layout
    closed: bool
    stroke_rgb: Optional[Tuple[float, float, float]]  # None = no stroke
    stroke_opacity: float
    stroke_width: float  # document px, 0 = no stroke
    fill_rgb: Optional[Tuple[float, float, float]]  # None = no fill
    fill_opacity: float


def _xy(point) -> Point2:
    return float(point[0]), float(point[1])


def _cubics(seg) -> List[Tuple[Point2, Point2, Point2]]:
    """One svgelements segment as cubic pieces (c1, c2, end); the start is the previous end."""
    p0 = _xy(seg.start)
    if isinstance(seg, se.CubicBezier):
        return [(_xy(seg.control1), _xy(seg.control2), _xy(seg.end))]
    if isinstance(seg, se.QuadraticBezier):
        # exact degree elevation (svgelements has no quad->cubic conversion)
        q, p1 = _xy(seg.control), _xy(seg.end)
        return [((p0[0] + 2 / 3 * (q[0] - p0[0]), p0[1] + 2 / 3 * (q[1] - p0[1])),
                 (p1[0] + 2 / 3 * (q[0] - p1[0]), p1[1] + 2 / 3 * (q[1] - p1[1])), p1)]
    if isinstance(seg, se.Arc):
        p1 = _xy(seg.end)
        if p0 == p1:
            return []  # SVG: an arc whose endpoints coincide is omitted
        if seg.sweep == 0 or seg.rx == 0 or seg.ry == 0:
            return _line(p0, p1)  # SVG: zero radius means a straight line (svgelements would yield nothing)
        return _arc_cubics(seg, p0, p1)
    if isinstance(seg, se.Linear):  # Line and Close
        return _line(p0, _xy(seg.end))
    raise SVGLoadError(f"unexpected path segment type {type(seg).__name__}")


def _arc_cubics(arc, p0: Point2, p1: Point2) -> List[Tuple[Point2, Point2, Point2]]:
    """Elliptical arc as cubics of at most 90 degrees each.

    Hand-written instead of svgelements' Arc.as_cubic_curves: that uses Maisonobe's control length, whose
    quarter-circle cubics are 0.2 % off the radius; 4/3*tan(delta/4) keeps them within 0.03 %.
    """
    pieces = max(1, math.ceil(abs(arc.sweep) / (math.pi / 2) - 1e-9))
    delta = arc.sweep / pieces
    k = 4.0 / 3.0 * math.tan(delta / 4.0)
    cx, cy = _xy(arc.center)
    rx, ry = arc.rx, arc.ry
    rotation = arc.get_rotation()
    cos_r, sin_r = math.cos(rotation), math.sin(rotation)
    # start parameter on the unrotated ellipse (svgelements' get_start_t gives the same, ~20x slower)
    vx, vy = p0[0] - cx, p0[1] - cy
    t0 = math.atan2((-vx * sin_r + vy * cos_r) / ry, (vx * cos_r + vy * sin_r) / rx)

    def point(t):
        ex, ey = rx * math.cos(t), ry * math.sin(t)
        return cx + ex * cos_r - ey * sin_r, cy + ex * sin_r + ey * cos_r

    def tangent(t):  # d point / dt
        dx, dy = -rx * math.sin(t), ry * math.cos(t)
        return dx * cos_r - dy * sin_r, dx * sin_r + dy * cos_r

    out = []
    start = p0
    for i in range(pieces):
        ta, tb = t0 + i * delta, t0 + (i + 1) * delta
        end = p1 if i == pieces - 1 else point(tb)
        (dax, day), (dbx, dby) = tangent(ta), tangent(tb)
        out.append(((start[0] + k * dax, start[1] + k * day), (end[0] - k * dbx, end[1] - k * dby), end))
        start = end
    return out


def _line(p0: Point2, p1: Point2) -> List[Tuple[Point2, Point2, Point2]]:
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    return [((p0[0] + dx / 3, p0[1] + dy / 3), (p0[0] + 2 * dx / 3, p0[1] + 2 * dy / 3), p1)]


def _same(a: Point2, b: Point2) -> bool:
    tol = 1e-9 * (1.0 + max(abs(a[0]), abs(a[1]), abs(b[0]), abs(b[1])))
    return abs(a[0] - b[0]) <= tol and abs(a[1] - b[1]) <= tol


def _subpaths(segments) -> Iterator[Tuple[List[Point2], bool]]:
    """Split segments into subpaths in the sketch point layout: (points, closed)."""
    pts: List[Point2] = []
    pen: Optional[Point2] = None
    for seg in segments:
        if isinstance(seg, se.Move):
            if len(pts) >= 4:
                yield pts, False
            pts, pen = [], _xy(seg.end)
            continue
        start = _xy(seg.start) if seg.start is not None else pen
        if start is None:
            continue  # svgelements leaves start unset only for data without a moveto, which the cleaner cuts off
        if isinstance(seg, se.Close):
            if not pts:
                pen = _xy(seg.end)
                continue  # 'M x y Z' draws nothing
            if not _same(pts[-1], _xy(seg.end)):
                pts += _line(pts[-1], _xy(seg.end))[0]
            yield pts[:-1], True  # the last segment wraps to the first point
            pts, pen = [], _xy(seg.end)  # after Z a new subpath starts at the same point
            continue
        if pts and not _same(pts[-1], start):
            if len(pts) >= 4:  # segments that do not join start a new path
                yield pts, False
            pts = []
        if not pts:
            pts = [start]
        for c1, c2, end in _cubics(seg):
            pts += [c1, c2, end]
        pen = pts[-1]
    if len(pts) >= 4:
        yield pts, False


def _unit_interval(value, default: float = 1.0) -> float:
    """An opacity: number or percentage, clamped to [0, 1]; invalid -> default."""
    if value is None:
        return default
    text = str(value).strip()
    try:
        number = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        return default
    if not math.isfinite(number):
        return default
    return min(1.0, max(0.0, number))


class _PaintResolver:
    def __init__(self, paint_servers):
        self.paint_servers = paint_servers
        self.fallbacks = 0
        self.colours: Dict[str, Tuple[Optional[Tuple[float, float, float]], float]] = {}  # parse each colour once

    def __call__(self, values: dict, key: str) -> Tuple[Optional[Tuple[float, float, float]], float]:
        """(rgb or None for no paint, colour alpha). Read from the raw value: svgelements turns url(#...) into black."""
        text = str(values.get(key, "black" if key == "fill" else "none")).strip()
        if text.lower().startswith("url("):
            ref, _, fallback = text.partition(")")
            ident = ref[4:].strip().strip("'\"")
            ident = ident[1:] if ident.startswith("#") else ident
            if ident in self.paint_servers:
                self.fallbacks += 1
                return self.paint_servers[ident] or PATTERN_FALLBACK_RGB, 1.0
            text = fallback.strip() or "none"  # SVG: a missing paint server without fallback colour means none
        if text.lower() == "currentcolor":
            text = str(values.get("color", "black"))
        if text not in self.colours:
            colour = se.Color(text)
            self.colours[text] = ((None, 0.0) if colour.value is None else
                                  ((colour.red / 255.0, colour.green / 255.0, colour.blue / 255.0),
                                   colour.alpha / 255.0))
        return self.colours[text]


def _iter_shapes(doc) -> Iterator[Tuple[se.Shape, float]]:
    """Shapes in document order with the product of their ancestors' and own `opacity`.

    svgelements copies inherited values down the tree but `opacity` is not inherited in SVG, it composes;
    so multiply each node's own attribute along the chain.
    """
    stack = [(doc, 1.0)]
    while stack:
        node, opacity = stack.pop()
        own = getattr(node, "values", {}).get(se.SVG_STRUCT_ATTRIB, {}) or {}
        opacity *= _unit_interval(own.get("opacity"))
        if isinstance(node, se.Shape):
            yield node, opacity
        elif isinstance(node, list):  # SVG, Group, Use
            stack.extend((child, opacity) for child in reversed(node))


def _collect_paths(doc, paint: _PaintResolver) -> List[_RawPath]:
    out: List[_RawPath] = []
    for shape, opacity in _iter_shapes(doc):
        values = shape.values
        if str(values.get("visibility", "visible")).strip().lower() in ("hidden", "collapse"):
            continue
        stroke_rgb, stroke_alpha = paint(values, "stroke")
        fill_rgb, fill_alpha = paint(values, "fill")
        width = shape.implicit_stroke_width  # local width x sqrt|det| of the total transform (non-scaling-stroke aware)
        width = 1.0 if width is None else float(width)
        if not math.isfinite(width):
            raise SVGLoadError(f"non-finite stroke width on {shape.values.get('tag', 'shape')}")
        if width > MAX_ABS_COORD:
            raise SVGLoadError(f"absurd stroke width {width:g} (limit {MAX_ABS_COORD:g})")
        if stroke_rgb is None or width <= 0:
            stroke_rgb, width = None, 0.0
        stroke_opacity = stroke_alpha * _unit_interval(values.get("stroke-opacity")) * opacity if stroke_rgb else 0.0
        fill_opacity = fill_alpha * _unit_interval(values.get("fill-opacity")) * opacity if fill_rgb else 0.0
        m = shape.transform
        a, b, c, d, e, f = (float(v) for v in (m.a, m.b, m.c, m.d, m.e, m.f))
        for pts, closed in _subpaths(shape.segments(transformed=False)):
            doc_pts = [(a * x + c * y + e, b * x + d * y + f) for x, y in pts]
            for x, y in doc_pts:
                if not (math.isfinite(x) and math.isfinite(y)):
                    raise SVGLoadError("non-finite coordinate after applying transforms")
                if abs(x) > MAX_ABS_COORD or abs(y) > MAX_ABS_COORD:
                    raise SVGLoadError(f"absurd coordinate ({x:g}, {y:g}) after applying transforms "
                                       f"(limit |x| <= {MAX_ABS_COORD:g})")
            out.append(_RawPath(doc_pts, closed, stroke_rgb, stroke_opacity, width, fill_rgb, fill_opacity))
    return out


# ----------------------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------------------

def load_svg_sketch(source: Union[bytes, str], canvas_size: int = 256, fit: bool = True, stroke_width: float = 0.0,
                    force_black: bool = False, max_paths: int = 0) -> SVGLoadResult:
    """Parse an SVG document (bytes or the SVG text) into a Sketch of cubic Bezier paths.

    canvas_size: output canvas is canvas_size x canvas_size pixels.
    fit: True fits the content (control points plus half stroke width) into the canvas with a 5 % margin,
        centred, keeping aspect ratio. False maps the document viewport onto the canvas: the viewBox is mapped
        into the viewport by preserveAspectRatio; width/height missing or in % resolve against the canvas; a
        viewport that is not square is scaled uniformly and centred.
    stroke_width: > 0 overrides the width (canvas px) of every stroked path; 0 keeps the document's widths.
    force_black: LiveSketch convention, black opaque strokes and no fills; unstroked paths get a stroke
        (stroke_width if > 0, else 1.5).
    max_paths: > 0 keeps only the first max_paths paths in document order (with a warning).
    """
    if isinstance(canvas_size, bool) or not isinstance(canvas_size, int) or not 1 <= canvas_size <= MAX_CANVAS:
        raise SVGLoadError(f"canvas_size must be an integer in [1, {MAX_CANVAS}], got {canvas_size!r}")
    if not (isinstance(stroke_width, (int, float)) and math.isfinite(stroke_width)
            and 0 <= stroke_width <= MAX_CANVAS):
        raise SVGLoadError(f"stroke_width must be a number in [0, {MAX_CANVAS}], got {stroke_width!r}")
    if isinstance(max_paths, bool) or not isinstance(max_paths, int) or max_paths < 0:
        raise SVGLoadError(f"max_paths must be a non-negative integer, got {max_paths!r}")

    root = _parse_xml(_check_source(source))
    cleaner = _Cleaner(root)
    cleaner.run()
    warnings = list(cleaner.warnings)

    paint = _PaintResolver(cleaner.paint_servers)
    try:
        doc = se.SVG.parse(io.BytesIO(ET.tostring(root, encoding="utf-8")), reify=False, ppi=se.DEFAULT_PPI,
                           width=canvas_size, height=canvas_size, color="black")
        raw = _collect_paths(doc, paint) if isinstance(doc, se.SVG) else []
    except SVGLoadError:
        raise
    except Exception as exc:  # svgelements has many unchecked paths (IndexError, ZeroDivisionError, ...)
        raise SVGLoadError(f"svgelements failed on this SVG: {type(exc).__name__}: {exc}") from exc

    if cleaner.skipped:
        names = ", ".join(f"{name}\u00d7{count}" for name, count in sorted(cleaner.skipped.items()))
        note = " (gradient/pattern paints drawn as a flat colour)" if paint.fallbacks else ""
        warnings.insert(0, f"skipped unsupported SVG elements: {names}{note}")

    if not raw:
        reason = "empty SVG: no paths"
        if cleaner.skipped:
            reason += " (only unsupported elements: " + ", ".join(sorted(cleaner.skipped)) + ")"
        elif cleaner.malformed:
            reason += f" (malformed path data: {cleaner.malformed[0]})"
        raise SVGLoadError(reason)
    if max_paths and len(raw) > max_paths:
        warnings.append(f"max_paths={max_paths}: dropped {len(raw) - max_paths} of {len(raw)} paths")
        raw = raw[:max_paths]

    sketch = _to_canvas(raw, doc, canvas_size, fit, float(stroke_width), force_black)
    for message in warnings:
        log.warning("SVG loader: %s", message)
    return SVGLoadResult(sketch=sketch, warnings=warnings, skipped=dict(cleaner.skipped))


def _to_canvas(raw: List[_RawPath], doc, canvas: int, fit: bool, override: float, force_black: bool) -> Sketch:
    # Output widths: either document widths (scale with the canvas mapping) or fixed canvas pixels.
    doc_widths, fixed_widths = [], []
    for p in raw:
        stroked = p.stroke_rgb is not None
        if override > 0 and (stroked or force_black):
            doc_widths.append(0.0)
            fixed_widths.append(override)
        elif stroked:
            doc_widths.append(p.stroke_width)
            fixed_widths.append(0.0)
        else:
            doc_widths.append(0.0)
            fixed_widths.append(FORCED_STROKE_WIDTH if force_black else 0.0)

    pts = torch.tensor([xy for p in raw for xy in p.points], dtype=torch.float64)
    if fit:
        pad = torch.tensor([w / 2 for p, w in zip(raw, doc_widths) for _ in p.points], dtype=torch.float64)
        lo = (pts - pad[:, None]).min(dim=0).values
        hi = (pts + pad[:, None]).max(dim=0).values
        extent = hi - lo
        avail = canvas * (1 - 2 * FIT_MARGIN)
        if avail - max(fixed_widths) > 0.25 * avail:
            avail -= max(fixed_widths)  # fixed-width strokes stick out by half a width on each side
        positive = extent[extent > 0]
        scale = float(avail / positive.max()) if len(positive) else 1.0
        out = (pts - (lo + hi) / 2) * scale + canvas / 2
    else:
        width, height = float(doc.width), float(doc.height)
        if not (width > 0 and height > 0 and math.isfinite(width) and math.isfinite(height)):
            raise SVGLoadError(f"empty SVG: the viewport is {width:g}x{height:g}, nothing is rendered")
        scale = canvas / max(width, height)  # a non-square viewport is shown whole, centred
        offset = torch.tensor([(canvas - width * scale) / 2, (canvas - height * scale) / 2], dtype=torch.float64)
        out = pts * scale + offset
        if not torch.isfinite(out).all() or out.abs().max() > MAX_ABS_COORD:
            raise SVGLoadError("absurd coordinates after mapping the viewport onto the canvas")

    n = len(raw)
    black = (0.0, 0.0, 0.0)
    style = PathStyle(
        num_segments=[len(p.points) // 3 for p in raw],
        closed=[p.closed for p in raw],
        stroke_width=torch.tensor([d * scale + f for d, f in zip(doc_widths, fixed_widths)], dtype=torch.float32),
        stroke_color=torch.tensor([black if force_black or p.stroke_rgb is None else p.stroke_rgb for p in raw],
                                  dtype=torch.float32).reshape(n, 3),
        stroke_opacity=torch.tensor([1.0 if force_black else p.stroke_opacity for p in raw], dtype=torch.float32),
        fill_color=torch.tensor([p.fill_rgb or black for p in raw], dtype=torch.float32).reshape(n, 3),
        fill_opacity=torch.tensor([0.0 if force_black else p.fill_opacity for p in raw], dtype=torch.float32),
    )
    return Sketch(points=out.to(torch.float32), style=style, width=canvas, height=canvas)
