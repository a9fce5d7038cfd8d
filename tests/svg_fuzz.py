"""Seeded generator of hostile SVG inputs for the loader (pipelines/svg), and a timing run over them.

`cases(n, seed)` yields (name, source, options) tuples: mutated and truncated real SVGs from the repository,
giant / tiny / non-finite numbers in every numeric attribute and in path data, deep nesting and element, segment,
CSS-rule and transform counts just under and just over the loader's limits, <use> bombs and cycles, DTD entity
tricks, declared and detected text encodings (known, unknown, multi-byte, escape codecs), byte-order marks,
lone surrogates, control characters. The same seed gives the same cases.

tests/test_svg_fuzz.py loads each one and requires a result or an SVGLoadError (never another exception).
The work per case is bounded by the loader's limits, not by a clock; `python tests/svg_fuzz.py` times every case
and prints the slowest ones (figures go to bench/results/svg_fuzz.json, the budget is 2 s per load).
"""
from __future__ import annotations

import glob
import os
import random
from typing import Iterator, List, Tuple, Union

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NS = 'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
HEAD = f'<svg {NS} width="100" height="100" viewBox="0 0 100 100">'
PATH = '<path d="M 10 10 L 90 20 L 50 90 Z" fill="green" stroke="black"/>'

Source = Union[bytes, str]
Case = Tuple[str, Source, dict]

# Values that have broken parsers: non-finite, beyond float range, denormal, absurd, malformed, very long.
HOSTILE_NUMBERS = ["nan", "NaN", "inf", "-inf", "Infinity", "1e308", "1e309", "-1e400", "1e-300", "4.9e-324",
                   "1e7", "1.0000001e7", "-0", "+.5e-3", "1e", "e5", "--1", "1..2", ".", "0x10", "1_000",
                   "9" * 400, "0." + "0" * 400 + "1", "1e" + "9" * 30, "\u0661\u0662", "\uff11", ""]
NUMERIC_ATTRIBUTES = ["x", "y", "width", "height", "rx", "ry", "r", "cx", "cy", "x1", "x2", "y1", "y2",
                      "stroke-width", "opacity", "fill-opacity", "stroke-opacity", "stroke-dasharray",
                      "stroke-dashoffset", "stroke-miterlimit", "font-size"]
TRANSFORMS = ["matrix(1 2 3 4 5)", "matrix(1,0,0,1,0,0,0)", "rotate()", "rotate(1 2)", "scale(1 2 3)",
              "translate(1e400)", "skewX(90)", "skewY(270)", "rotate(nan)", "scale(0)", "matrix(0 0 0 0 0 0)",
              "rotate(1" * 50, "translate(5)scale(2)", "rotate(45deg)", "skewX(1e308)", "scale(1e-300)",
              "qwe", "translate(,,)", "matrix(" + "1 " * 10_000 + ")"]
PAINTS = ["rgb(1e400,0,0)", "rgb(nan,0,0)", "rgb(999,-5,1e9)", "hsl(999,100%,25%)", "#12", "#1e9999",
          "url(#missing)", "url(#g) rgb(1e309,0,0)", "url(", "currentColor", "icc-color(x, 1e999)",
          "rgba(0,0,0,inf)", "#" + "f" * 10_000]
PATH_DATA = ["M0 0 A1e-300 1e-300 0 0 1 10 10", "M0 0 A0 5 0 0 1 10 10", "M0 0 A5 5 1e308 1 1 10 10",
             "M0 0 A5 5 0 2 1 10 10", "M 1e308 1e308 L -1e308 -1e308", "M0 0 L nan 5", "M0 0 h", "M0 0 z z z m",
             "M" + " 1" * 5001, "M0 0" + "c1,1,1,1,1,1" * 300, "m0 0" + "a1 1 0 0 0 1 1" * 300,
             "M0,0L" + "0" * 5000 + "1,1", "M0 0 L10 10 Z L 20 5", "M0 0 Q 1e-320 1e-320 5 5 T 9 9 S 1 1 2 2",
             "\x00M0 0L1 1", "M0 0 L1 1 \ud800", "M 0 0 A 5 5 0 1 1 0 0", "M 5 5 A 1e-9 1e-9 0 0 1 6 6"]
ENCODINGS = ["UTF-8", "utf8", "UTF-16", "utf-16le", "UTF-32", "ISO-8859-1", "latin1", "cp1252", "Shift_JIS",
             "EUC-JP", "GBK", "GB18030", "Big5", "EUC-KR", "KOI8-R", "cp500", "UTF-7", "utf_7", "rot13",
             "rot_13", "base64", "zlib", "hex", "unicode_escape", "raw_unicode_escape", "idna", "punycode",
             "undefined", "mbcs", "x-nonexistent", "", "utf-8-sig", "ascii", "us-ascii", "UTF-16BE", "ucs-2"]


def seeds() -> List[str]:
    """The repository's own SVG files plus a template using most supported features."""
    docs = []
    for pattern in ("tests/data/**/*.svg", "pipelines/assets/**/*.svg"):
        for path in sorted(glob.glob(os.path.join(ROOT, pattern), recursive=True)):
            with open(path, encoding="utf-8") as f:
                docs.append(f.read())
    docs.append(
        HEAD + '<style>.a{stroke:red;stroke-width:2} #p2{fill:blue !important} g > rect{opacity:.5}</style>'
        '<defs><linearGradient id="g"><stop offset="0" stop-color="red"/><stop offset="1" stop-color="blue"/>'
        '</linearGradient><symbol id="s" viewBox="0 0 10 10"><circle cx="5" cy="5" r="4"/></symbol></defs>'
        '<g transform="translate(5 5) rotate(10)" opacity="0.8"><rect class="a" x="5" y="5" width="20" height="10"'
        ' rx="2"/><path id="p2" d="M30 30 C 40 10 60 10 70 30 S 90 50 80 60 Q 70 80 50 70 T 30 60 A 10 5 30 0 1 '
        '30 30 Z" fill-rule="evenodd" stroke-dasharray="4 2"/></g><use href="#s" x="60" y="60" width="20" '
        'height="20"/><switch><rect systemLanguage="xx" width="5" height="5"/><ellipse cx="10" cy="90" rx="8" '
        'ry="4" fill="url(#g)"/></switch><svg x="70" y="0" width="30" height="30" viewBox="0 0 10 10">'
        '<polyline points="0,0 5,10 10,0" fill="none" stroke="black"/></svg><line x1="0" y1="99" x2="99" y2="99"'
        ' stroke="black"/><polygon points="50,5 60,20 40,20"/><text x="5" y="50">hi</text></svg>')
    return docs


def _wrap(body: str, head: str = HEAD) -> str:
    return head + body + "</svg>"


def mutations(rng: random.Random, doc: str) -> Iterator[Tuple[str, Source]]:
    """A few random mutations of one document."""
    data = doc.encode("utf-8")
    cut = rng.randrange(len(data))
    yield "truncated", data[:cut]
    i, j = sorted(rng.sample(range(len(data)), 2))
    yield "slice-deleted", data[:i] + data[j:]
    yield "slice-duplicated", data[:j] + data[i:j] * rng.randint(2, 5) + data[j:]
    flipped = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        flipped[rng.randrange(len(flipped))] = rng.randrange(256)
    yield "bytes-flipped", bytes(flipped)
    # a hostile value into an attribute that already holds a number
    pos = [k for k in range(len(doc) - 1) if doc[k] == '"' and doc[k + 1:k + 2].isdigit()]
    if pos:
        k = rng.choice(pos)
        end = doc.find('"', k + 1)
        yield "number-replaced", doc[:k + 1] + rng.choice(HOSTILE_NUMBERS) + doc[end:]
    insert_at = doc.rfind("</svg>")
    if insert_at > 0:
        extra = rng.choice([
            f'<path d="{rng.choice(PATH_DATA)}" stroke="black"/>',
            f'<rect width="10" height="10" transform="{rng.choice(TRANSFORMS)}"/>',
            f'<rect width="10" height="10" fill="{rng.choice(PAINTS)}" stroke="{rng.choice(PAINTS)}"/>',
            f'<circle r="5" {rng.choice(NUMERIC_ATTRIBUTES)}="{rng.choice(HOSTILE_NUMBERS)}"/>',
            (f'<g style="{rng.choice(NUMERIC_ATTRIBUTES)}:{rng.choice(HOSTILE_NUMBERS)};transform:'
             f'{rng.choice(TRANSFORMS)}">{PATH}</g>'),
            f'<style>path{{{rng.choice(NUMERIC_ATTRIBUTES)}:{rng.choice(HOSTILE_NUMBERS)}}}</style>',
        ])
        yield "element-inserted", doc[:insert_at] + extra + doc[insert_at:]


def attribute_cases(rng: random.Random) -> Iterator[Tuple[str, Source]]:
    for value in HOSTILE_NUMBERS:
        attr = rng.choice(NUMERIC_ATTRIBUTES)
        yield f"number-{attr}", _wrap(f'<rect x="1" y="1" width="10" height="10" {attr}="{value}" stroke="red"/>')
    for value in TRANSFORMS:
        yield "transform", _wrap(f'<g transform="{value}">{PATH}</g>')
    for value in PAINTS:
        yield "paint", _wrap(f'<rect width="10" height="10" fill="{value}" stroke="{value}" color="{value}"/>')
    for d in PATH_DATA:
        yield "path-data", _wrap(f'<path d="{d}" stroke="black" fill="red"/>')
    for value in ("none", "-1 -1", "0 0 0 0", "0 0 1e-300 1e-300", "0 0 1e308 1e308", "nan 0 1 1", "1 2 3",
                  "0,0,100,100,5", "0 0 -100 100"):
        yield "viewBox", f'<svg {NS} viewBox="{value}">{PATH}</svg>'
    for w, h in (("0", "0"), ("-5", "5"), ("1e400", "1"), ("100%", "auto"), ("1em", "1ex"), ("5q", "5vw"),
                 ("1e7", "1e7"), ("1e-300", "1"), ("abc", "def")):
        yield "viewport-size", f'<svg {NS} width="{w}" height="{h}">{PATH}</svg>'


def structure_cases(rng: random.Random, limits) -> Iterator[Tuple[str, Source]]:
    """Counts just under and just over each limit, and the classic expansion tricks."""
    depth = limits.MAX_DEPTH
    for levels in (depth - 2, depth - 1, depth, depth + 1):
        yield f"nesting-{levels}", _wrap('<g transform="rotate(1)">' * levels + PATH + "</g>" * levels)
    elements = limits.MAX_ELEMENTS
    for count in (elements - 1, elements + 1):  # the root is one element
        yield f"elements-{count}", _wrap('<line x2="5" y2="5" stroke="black"/>' * (count - 1))
    segments = limits.MAX_SEGMENTS
    for count in (segments - 1, segments):  # the initial moveto counts one segment
        yield f"segments-{count}", _wrap('<path stroke="black" d="M0 0' + " l1 1" * count + '"/>')
    arcs = segments // limits.ARC_SEGMENT_COST
    for count in (arcs - 1, arcs):
        yield f"arcs-{count}", _wrap('<path stroke="black" d="M0 0' + " a5 5 0 0 1 1 1" * count + '"/>')
    for count in (segments + 1, segments + 2):  # n points draw n - 1 segments
        yield f"polyline-points-{count}", _wrap('<polyline stroke="black" points="' + "1,2 " * count + '"/>')
    functions = limits.MAX_TRANSFORM_FUNCTIONS
    for count in (functions, functions + 1):
        yield f"transform-functions-{count}", _wrap(f'<path d="M0 0 L5 5" transform="{"rotate(1)" * count}"/>')
    rules = limits.MAX_CSS_RULES
    for count in (rules, rules + 1):
        yield f"css-rules-{count}", _wrap("<style>" + ".a{fill:red}" * count + "</style>" + PATH)
    groups = "".join(f'<g id="g{i}">' + f'<use href="#g{i - 1}"/>' * 10 + "</g>" for i in range(1, 8))
    yield "use-bomb", _wrap('<defs><path id="g0" d="M0 0 L1 1"/>' + groups + '</defs><use href="#g7"/>')
    yield "use-cycle", _wrap('<g id="a"><use href="#b"/></g><g id="b"><use href="#a"/></g>' + PATH)
    yield "use-self", _wrap('<use id="u" href="#u"/><use xlink:href="#u"/>' + PATH)
    chain = "".join(f'<g id="c{i}"><use href="#c{i - 1}"/></g>' for i in range(1, depth + 5))
    yield "use-chain", _wrap(f'<defs><path id="c0" d="M0 0 L1 1"/>{chain}</defs><use href="#c{depth + 4}"/>')
    yield "symbol-recursion", _wrap('<symbol id="s"><use href="#s"/>' + PATH + '</symbol><use href="#s"/>')
    yield "css-bomb", _wrap("<style>" + "*" * 3000 + "{fill:red}" + "a " * 3000 + "{" + "}" * 3000 + "/*"
                            + "</style>" + PATH)
    yield "css-combinators", _wrap("<style>" + "g " * 150 + "path{fill:red} " + "g>" * 150 + "*{stroke:blue}"
                                   + "</style>" + '<g>' * 150 + PATH + '</g>' * 150)
    yield "css-class-lists", _wrap("<style>" + "".join(f".c{i}{{stroke:red}}" for i in range(3000)) + "</style>"
                                   + ('<path class="' + " ".join(f"c{i}" for i in range(3000)) + '" d="M0 0L5 5"/>')
                                   * 40)
    yield "css-descendant-chain", _wrap("<style>" + " ".join(["*"] * 300) + "{fill:red}</style>" + "<g>" * 150 + PATH
                                        + "</g>" * 150)
    yield "css-attribute-substring", _wrap("<style>" + "".join(f'[d*="q{i}"]{{fill:red}}' for i in range(3000))
                                           + '</style><path d="M0 0' + " L1 1" * 5000 + '"/>')
    yield "attribute-bomb", f'<svg {NS} ' + " ".join(f'a{i}="{i}"' for i in range(3000)) + ">" + PATH + "</svg>"
    yield "long-id-refs", _wrap(f'<path id="{"x" * 100_000}" d="M0 0L1 1"/><use href="#{"x" * 100_000}"/>')


def entity_cases() -> Iterator[Tuple[str, Source]]:
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    yield "billion-laughs", f'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY l0 "lol">{laughs}]>' + _wrap("&l9;")
    yield "external-entity", ('<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                              + _wrap("<text>&x;</text>" + PATH))
    yield "parameter-entity", ('<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY % p SYSTEM "http://127.0.0.1/x">%p;]>'
                               + _wrap(PATH))
    yield "external-dtd", ('<?xml version="1.0"?><!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
                           '"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">' + _wrap(PATH))
    yield "entity-in-attribute", ('<!DOCTYPE svg [<!ENTITY v "1e400">]>' + _wrap('<rect width="&v;" height="5"/>'))
    yield "undefined-entity", _wrap('<rect width="&nope;" height="5"/>')
    yield "char-refs", _wrap('<path d="M&#48; &#48; L&#x31;&#x30; 10" stroke="black"/><title>&#xD800;</title>')
    yield "xinclude", _wrap('<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/etc/passwd"/>' + PATH)
    yield "processing-instructions", '<?xml-stylesheet href="x.css"?><?php x ?>' + _wrap(PATH) + "<!-- tail -->"
    yield "cdata", _wrap("<style><![CDATA[path{fill:red}]]></style>" + PATH)


def encoding_cases(rng: random.Random) -> Iterator[Tuple[str, Source]]:
    body = _wrap('<title>caf\u00e9 \u65e5\u672c \U0001F600</title>' + PATH)
    for name in ENCODINGS:
        decl = f'<?xml version="1.0" encoding="{name}"?>'
        try:
            encoded = (decl + body).encode(name)
        except (LookupError, UnicodeError):
            encoded = (decl + body).encode("utf-8")
        yield f"encoding-{name or 'empty'}", encoded
        yield f"encoding-{name or 'empty'}-as-utf8", (decl + body).encode("utf-8")
    for bom in (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
        yield "bom", bom + body.encode("utf-8")
    yield "utf16-no-bom", body.encode("utf-16-le")
    yield "utf16-declared-utf8", '<?xml version="1.0" encoding="UTF-8"?>'.encode("utf-16") + body.encode("utf-16")
    yield "lone-surrogate-str", _wrap('<path id="p\ud800" d="M0 0 L5 5" stroke="black"/>')
    yield "lone-surrogate-utf8", body.encode("utf-8").replace(b"caf", b"\xed\xa0\x80")
    yield "surrogate-pair-str", _wrap('<title>\ud83d\ude00</title>' + PATH)
    yield "nul-bytes", body.encode("utf-8").replace(b"<title>", b"<title>\x00\x01\x02")
    yield "control-chars-str", body.replace("caf", "\x07\x1b\x7f")
    yield "overlong-utf8", body.encode("utf-8").replace(b"caf", b"\xc0\xaf")
    yield "random-bytes", bytes(rng.randrange(256) for _ in range(2048))
    yield "random-bytes-after-lt", b"<" + bytes(rng.randrange(256) for _ in range(2048))


def cases(n: int = 300, seed: int = 0) -> List[Case]:
    """About n cases (all structured ones, then random mutations of the seed documents up to n)."""
    from pipelines.svg import limits

    rng = random.Random(seed)
    out: List[Case] = []
    options = [{}, {"fit": False}, {"canvas_size": None, "fit": False}, {"canvas_size": 64, "force_black": True},
               {"stroke_width": 3.0, "max_paths": 2}]

    def add(name: str, source: Source) -> None:
        out.append((f"{len(out):03d}-{name}", source, rng.choice(options)))

    for group in (attribute_cases(rng), structure_cases(rng, limits), entity_cases(), encoding_cases(rng)):
        for name, source in group:
            add(name, source)
    docs = seeds()
    while len(out) < n:
        doc = rng.choice(docs)
        for name, source in mutations(rng, doc):
            if len(out) < n:
                add(name, source)
    return out


def main() -> int:
    """Times every case; prints the slowest and writes bench/results/svg_fuzz.json."""
    import json
    import logging
    import sys
    import time

    sys.path.insert(0, ROOT)
    import torch

    from pipelines.svg import SVGLoadError, load_svg_sketch

    torch.set_num_threads(1)
    logging.getLogger("VideoPriors").setLevel(logging.ERROR)
    rows, bad = [], []
    for name, source, options in cases():
        t0 = time.perf_counter()
        try:
            load_svg_sketch(source, **options)
            outcome = "loaded"
        except SVGLoadError as exc:
            outcome = "SVGLoadError: " + str(exc)[:100]
        except Exception as exc:  # noqa: BLE001  (reported, the test tier fails on it)
            outcome = f"ESCAPED {type(exc).__name__}: {exc}"[:120]
            bad.append(name)
        rows.append({"case": name, "seconds": round(time.perf_counter() - t0, 4), "outcome": outcome})
    rows.sort(key=lambda r: -r["seconds"])
    for r in rows[:10]:
        print(f"{r['seconds']:7.3f} s  {r['case']:36} {r['outcome'][:80]}")
    loaded = sum(r["outcome"] == "loaded" for r in rows)
    print(f"{len(rows)} cases: {loaded} loaded, {len(rows) - loaded - len(bad)} refused, {len(bad)} escaped; "
          f"slowest {rows[0]['seconds']:.3f} s, total {sum(r['seconds'] for r in rows):.1f} s; "
          f"load average {os.getloadavg()[0]:.1f}")
    out = os.path.join(ROOT, "bench", "results", "svg_fuzz.json")
    with open(out, "w") as f:
        json.dump({"cases": len(rows), "loaded": loaded, "escaped": bad, "budget_s": 2.0,
                   "slowest_s": rows[0]["seconds"], "load_average_1min": round(os.getloadavg()[0], 2),
                   "slowest": rows[:20]}, f, indent=1)
    print(f"wrote {out}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
