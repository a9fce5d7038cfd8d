"""XML names shared by the loader's modules."""
from __future__ import annotations

from typing import Tuple

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
SHAPES = frozenset({"path", "rect", "circle", "ellipse", "line", "polyline", "polygon"})  # the drawn elements


def split_tag(tag) -> Tuple[str, str]:
    if not isinstance(tag, str):
        return "?", ""  # comments / processing instructions (not produced by the default builder)
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return "", tag


def id_map(root) -> dict:
    """id -> element, the first element with an id winning (as browsers' getElementById). One map serves both
    the expansion check and the walk, so what is counted is what is drawn."""
    ids: dict = {}
    for elem in root.iter():
        ident = elem.get("id")
        if ident and ident not in ids:
            ids[ident] = elem
    return ids


def describe(elem) -> str:
    """<tag id='...'> for messages that name an element."""
    name = split_tag(elem.tag)[1]
    ident = elem.get("id")
    return f"<{name} id={ident[:40]!r}>" if ident else f"<{name}>"
