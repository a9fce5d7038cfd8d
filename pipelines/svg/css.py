"""CSS: <style> sheets parsed into simple rules and applied to the tree as inline style (the cascade)."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .limits import MAX_CSS_RULES, MAX_PARSE_WORK, SVGLoadError
from .xmlutil import SVG_NS, split_tag as _split_tag

_SELECTOR_RE = re.compile(r"(\*|[A-Za-z][\w-]*)?((?:[#.][\w-]+)*)")  # compound simple selector, no combinators


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


def collect_css(root: ET.Element, warnings: List[str]) -> List[_CSSRule]:
    """All rules of the document's text/css <style> sheets, in document order; a warning counts unsupported ones."""
    rules, unsupported = [], 0
    for elem in root.iter():
        ns, name = _split_tag(elem.tag)
        if ns in ("", SVG_NS) and name == "style" and elem.get("type", "text/css").strip() == "text/css":
            found, bad = _css_rules(elem.text or "", len(rules) + unsupported)
            for rule in found:
                rule.specificity = rule.specificity[:3] + (len(rules),)
                rules.append(rule)
            unsupported += bad
    if unsupported:
        warnings.append(f"ignored {unsupported} CSS rule(s) with unsupported selectors "
                             f"(only *, tag, #id, .class and their combinations are applied)")
    return rules


def apply_css(root: ET.Element, rules: List[_CSSRule]) -> None:
    """Inline matching rules at the front of each element's style="" (style attribute > CSS > attributes)."""
    if not rules:
        return
    index: Dict[str, List[_CSSRule]] = {}
    for rule in rules:
        key = ("#" + rule.ident if rule.ident else "." + min(rule.classes) if rule.classes
               else rule.tag or "*")
        index.setdefault(key, []).append(rule)
    work = 0
    for elem in root.iter():
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

