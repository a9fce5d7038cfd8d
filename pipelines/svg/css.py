"""CSS: <style> sheets parsed into rules, matched against the tree, and the cascade order of declarations.

Cascade (CSS 2.2 / SVG 2, lowest to highest): presentation attributes, style-sheet rules by specificity then
document order, the style="" attribute, !important rules by specificity and order, !important in style="".
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .limits import MAX_CSS_RULES, MAX_PARSE_WORK, SVGLoadError
from .xmlutil import SVG_NS
from .xmlutil import split_tag as _split_tag

Declaration = Tuple[str, str, bool]  # property, value, !important

# One compound selector: type or *, then #id / .class / [attr] / [attr=v] / [attr~=v] / [attr^=v] /
# [attr$=v] / [attr*=v] / :first-child, in any order.
_IDENT = r"-?[A-Za-z_][\w-]*"
_SIMPLE_RE = re.compile(r"#(%s)|\.(%s)|\[\s*(%s)\s*(?:([~^$*|]?=)\s*(\"[^\"]*\"|'[^']*'|[\w-]+)\s*)?\]|:(first-child)"
                        % (_IDENT, _IDENT, _IDENT))
_TYPE_RE = re.compile(r"\*|%s" % _IDENT)


@dataclass
class _Compound:
    tag: Optional[str]
    ids: Tuple[str, ...]
    classes: frozenset
    attrs: Tuple[Tuple[str, Optional[str], Optional[str]], ...]  # name, operator, value
    first_child: bool

    def matches(self, elem: ET.Element, parent: Optional[ET.Element], classes: Optional[frozenset] = None) -> bool:
        """classes: the element's class set when the caller has it (match_css computes it once per element)."""
        if self.tag is not None and _split_tag(elem.tag)[1] != self.tag:
            return False
        if self.ids and (len(set(self.ids)) > 1 or elem.get("id") != self.ids[0]):
            return False
        if self.classes and not self.classes <= (frozenset(elem.get("class", "").split()) if classes is None
                                                 else classes):
            return False
        for name, op, value in self.attrs:
            actual = elem.get(name)
            if actual is None:
                return False
            if op == "=" and actual != value:
                return False
            if op == "~=" and value not in actual.split():
                return False
            if op == "^=" and not (value and actual.startswith(value)):
                return False
            if op == "$=" and not (value and actual.endswith(value)):
                return False
            if op == "*=" and not (value and value in actual):
                return False
            if op == "|=" and not (actual == value or actual.startswith(value + "-")):
                return False
        if self.first_child and (parent is None or next(iter(parent), None) is not elem):
            return False
        return True


@dataclass
class _CSSRule:
    parts: List[_Compound]  # left to right
    combinators: List[str]  # between parts: " " (descendant) or ">" (child)
    specificity: Tuple[int, int, int, int]  # ids, classes/attributes/pseudo-classes, types, document order
    declarations: List[Declaration]

    @property
    def key(self) -> str:
        last = self.parts[-1]
        return "#" + last.ids[0] if last.ids else "." + min(last.classes) if last.classes else last.tag or "*"


def parse_declarations(text: str) -> List[Declaration]:
    """'a: b; c: d !important' -> [(a, b, False), (c, d, True)]; empty values are dropped."""
    out = []
    for decl in text.split(";"):
        key, _, value = decl.partition(":")
        key, value = key.strip().lower(), value.strip()
        important = False
        low = value.lower()
        if low.endswith("important"):
            head = value[:len(value) - len("important")].rstrip()
            if head.endswith("!"):
                value, important = head[:-1].strip(), True
        if key and value:
            out.append((key, value, important))
    return out


def _parse_compound(text: str) -> Optional[_Compound]:
    pos, tag = 0, None
    m = _TYPE_RE.match(text)
    if m:
        tag = None if m.group() == "*" else m.group()
        pos = m.end()
    ids, classes, attrs, first = [], set(), [], False
    while pos < len(text):
        m = _SIMPLE_RE.match(text, pos)
        if not m:
            return None
        if m.group(1):
            ids.append(m.group(1))
        elif m.group(2):
            classes.add(m.group(2))
        elif m.group(3):
            value = m.group(5)
            if value and value[0] in "\"'":
                value = value[1:-1]
            attrs.append((m.group(3), m.group(4), value))
        else:
            first = True
        pos = m.end()
    if not text:
        return None
    return _Compound(tag, tuple(ids), frozenset(classes), tuple(attrs), first)


def _parse_selector(text: str) -> Optional[Tuple[List[_Compound], List[str]]]:
    tokens = re.sub(r"\s*>\s*", " > ", text.strip()).split()
    parts, combinators, pending = [], [], " "
    for token in tokens:
        if token == ">":
            if not parts or pending == ">":
                return None
            pending = ">"
            continue
        compound = _parse_compound(token)
        if compound is None:
            return None
        if parts:
            combinators.append(pending)
        parts.append(compound)
        pending = " "
    if not parts or pending == ">":
        return None
    return parts, combinators


def _css_rules(text: str, already: int = 0) -> Tuple[List[_CSSRule], int]:
    """Parse a style sheet into rules; returns (rules, number of selectors not supported).
    `already`: rules read from earlier style sheets, counted against MAX_CSS_RULES.

    Hand-written (no CSS library is a dependency; svgelements' <style> support backtracks catastrophically on
    4 KB of whitespace, applies rules only after the </style> and ignores specificity). The scanner is linear;
    at-rules (@media, @font-face, @import) are skipped. Selectors: compound selectors (type, *, #id, .class,
    [attribute] forms, :first-child) joined by descendant or child combinators.
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
            if prelude[1:].split("(")[0].split()[:1] in (["media"], ["supports"], ["container"], ["layer"]):
                unsupported += 1  # conditional style rules are not applied: counted in the warning
            continue
        decls = parse_declarations(body)
        for selector in prelude.split(","):
            if already + len(rules) + unsupported >= MAX_CSS_RULES:
                raise SVGLoadError(f"SVG style sheet has too many rules: more than the limit of {MAX_CSS_RULES}")
            parsed = _parse_selector(selector) if selector.strip() else None
            if parsed is None:
                unsupported += 1
                continue
            if not decls:
                continue  # an empty rule changes nothing
            parts, combinators = parsed
            ids = sum(len(p.ids) for p in parts)
            classes = sum(len(p.classes) + len(p.attrs) + p.first_child for p in parts)
            types = sum(p.tag is not None for p in parts)
            rules.append(_CSSRule(parts, combinators, (ids, classes, types, len(rules)), decls))
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


def collect_css(root: ET.Element, warnings: List[str]) -> List[_CSSRule]:
    """All rules of the document's text/css <style> sheets, in document order; a warning counts unsupported ones."""
    rules, unsupported = [], 0
    for elem in root.iter():
        ns, name = _split_tag(elem.tag)
        if ns in ("", SVG_NS) and name == "style" and elem.get("type", "text/css").strip() in ("text/css", ""):
            found, bad = _css_rules(elem.text or "", len(rules) + unsupported)
            for rule in found:
                rule.specificity = rule.specificity[:3] + (len(rules),)
                rules.append(rule)
            unsupported += bad
    if unsupported:
        warnings.append(f"CSS: ignored {unsupported} rule(s) with unsupported selectors or in @media/@supports "
                        f"blocks (supported: type, *, #id, .class, [attribute], :first-child, descendant and child "
                        f"combinators)")
    return rules


def match_css(root: ET.Element, rules: List[_CSSRule]) -> Dict[ET.Element, List[Tuple[Tuple, Declaration]]]:
    """Element -> the declarations of the rules that match it, each with its rule's specificity."""
    out: Dict[ET.Element, List[Tuple[Tuple, Declaration]]] = {}
    if not rules:
        return out
    index: Dict[str, List[_CSSRule]] = {}
    for rule in rules:
        index.setdefault(rule.key, []).append(rule)
    parent_of = {child: parent for parent in root.iter() for child in parent}
    work = 0
    UNIT_COST = 10  # one compound check, in the units of MAX_PARSE_WORK (~0.2 us each, measured)
    class_sets: Dict[int, frozenset] = {}

    def classes_of(elem: ET.Element) -> frozenset:
        """The element's class set, built once (a class list can be long: its length is charged)."""
        got = class_sets.get(id(elem))
        if got is None:
            text = elem.get("class", "")
            budget(len(text) // 4 + 1)
            got = class_sets[id(elem)] = frozenset(text.split())
        return got

    def budget(units: int):
        nonlocal work
        work += units
        if work > MAX_PARSE_WORK:
            raise SVGLoadError(f"SVG style sheet is too costly to apply: more than {MAX_PARSE_WORK} units "
                               f"of work (many rules matching many elements)")

    memo: Dict[Tuple[int, int, int, int], bool] = {}

    def match(rule: _CSSRule, i: int, elem: ET.Element) -> bool:
        """Does the selector prefix parts[:i+1] match with parts[i] on elem? Memoised per (rule, i, element), so
        every rule costs at most (its parts x elements) compound checks, whatever the combinators."""
        key = (id(rule), i, id(elem), 0)
        found = memo.get(key)
        if found is not None:
            return found
        part = rule.parts[i]
        budget(UNIT_COST + sum(len(elem.get(name) or "") for name, _, _ in part.attrs) // 4)  # values scanned
        result = part.matches(elem, parent_of.get(elem), classes_of(elem) if part.classes else None)
        if result and i > 0:
            parent = parent_of.get(elem)
            if rule.combinators[i - 1] == ">":
                result = parent is not None and match(rule, i - 1, parent)
            else:
                result = ancestor(rule, i - 1, parent)
        memo[key] = result
        return result

    def ancestor(rule: _CSSRule, i: int, elem: Optional[ET.Element]) -> bool:
        """Does elem or one of its ancestors match parts[:i+1]? (iterative: deep trees do not recurse)"""
        chain = []
        result = False
        while elem is not None:
            key = (id(rule), i, id(elem), 1)
            found = memo.get(key)
            if found is not None:
                result = found
                break
            chain.append(key)
            if match(rule, i, elem):
                result = True
                break
            elem = parent_of.get(elem)
        for key in chain:
            memo[key] = result
        return result

    for elem in root.iter():
        if not isinstance(elem.tag, str):
            continue
        tag = _split_tag(elem.tag)[1]
        ident = elem.get("id")
        keys = ["*", tag] + (["#" + ident] if ident else []) + ["." + c for c in classes_of(elem)]
        budget(len(keys))
        found = []
        for k in keys:
            for rule in index.get(k, ()):
                if match(rule, len(rule.parts) - 1, elem):
                    found.extend((rule.specificity, d) for d in rule.declarations)
                    budget(sum(20 + len(d[1]) for d in rule.declarations))  # a declaration ~ 20 characters
        if found:
            found.sort(key=lambda item: item[0])
            out[elem] = found
    return out


def cascade(elem: ET.Element, matched: List[Tuple[Tuple, Declaration]], properties) -> Dict[str, List[str]]:
    """Property -> declared values from the highest priority down (callers take the first valid one)."""
    layers: List[List[Tuple[str, str]]] = []  # lowest first
    layers.append([(k, v) for k, v in elem.attrib.items() if k in properties])
    inline = parse_declarations(elem.get("style", "")) if "style" in elem.attrib else []
    layers.append([(d[0], d[1]) for _, d in matched if not d[2]])
    layers.append([(k, v) for k, v, imp in inline if not imp])
    layers.append([(d[0], d[1]) for _, d in matched if d[2]])
    layers.append([(k, v) for k, v, imp in inline if imp])
    out: Dict[str, List[str]] = {}
    for layer in layers:
        for k, v in layer:
            if k in properties:
                out.setdefault(k, []).insert(0, v.strip())
    return out
