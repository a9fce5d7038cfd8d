"""SVG loader conformance against the resvg test suite (`make conformance SUITE=/path/to/tests`).

The suite is `crates/resvg/tests/tests/` of github.com/linebender/resvg: one SVG per test and its reference
PNG beside it (rendered by resvg at 300 px wide, transparent background). For every in-scope test this
script loads the SVG with our loader keeping the document's own viewport, rasterizes it with
pipelines.raster at the reference PNG's size, composites both on white, and scores PSNR (RGB, 0..1).

A test passes when PSNR >= --threshold (default 30 dB, see THRESHOLD_DB). Tests whose title says "(UB)"
(undefined behaviour in resvg's own words) and the ones resvg itself does not run are reported but not
scored. A document our loader refuses (SVGLoadError) is scored as a blank white image, so a test whose
reference is empty passes when we refuse it and fails otherwise.

Writes bench/results/svg_conformance.json and, with --notes, a Markdown list of the failures.
Usage: python scripts/svg_conformance.py SUITE [--categories shapes,painting/fill] [--save-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
import time
import warnings as pywarnings

import numpy as np
import torch
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pipelines import svg as svg_loader  # noqa: E402  (after the sys.path line)
from pipelines.raster import rasterize_sketch  # noqa: E402

# 30 dB = a mean squared error of 0.1 % of full scale. Chosen by looking at renders side by side (--save-dir):
# visually right ones (same geometry, different anti-aliasing or curve flattening) score 31-45 dB; visible
# defects score lower, down to 26-29.5 dB for small ones (a wrong colour on a thin line, round instead of miter
# joins on a wide stroke, a stray 2 px line) and below 22 dB for a missing shape or a filled hole.
THRESHOLD_DB = 30.0

# Categories a sketch loader must handle (issue 10, section 1).
IN_SCOPE = (
    ["shapes/" + c for c in ("circle", "ellipse", "line", "path", "polygon", "polyline", "rect")]
    + ["painting/" + c for c in ("fill", "fill-rule", "fill-opacity", "stroke", "stroke-dasharray", "stroke-linecap",
                                 "stroke-linejoin", "stroke-opacity", "opacity", "display", "visibility")]
    + ["structure/" + c for c in ("svg", "g", "use", "symbol", "switch", "style", "transform", "defs",
                                  "systemLanguage")]
)
# Tests resvg's own test generator leaves out (crates/resvg/tests/gen-tests.py): invalid sizes/encoding.
RESVG_IGNORED = {"structure/svg/negative-size", "structure/svg/no-size", "structure/svg/zero-size",
                 "structure/svg/not-UTF-8-encoding"}
MAX_PSNR = 99.0  # identical images

_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.DOTALL)


def _title(text: str) -> str:
    match = _TITLE_RE.search(text)
    return " ".join(match.group(1).split()) if match else ""


def _reference(path: str) -> np.ndarray:
    """Reference PNG composited on white -> float [H, W, 3] in 0..1."""
    img = Image.open(path).convert("RGBA")
    rgba = np.asarray(img, dtype=np.float64) / 255.0
    alpha = rgba[..., 3:4]
    return rgba[..., :3] * alpha + (1.0 - alpha)


def _load(data: bytes, width: int, height: int):
    """Load keeping the document's viewport, rendered at width x height (the reference's size).

    Returns (image [H, W, 3] numpy on white, warnings). With canvas_size=None the loader's canvas is the
    document's own viewport, and the rasterizer scales it to the reference size."""
    result = svg_loader.load_svg_sketch(data, canvas_size=None, fit=False)
    img = rasterize_sketch(result.sketch, out_size=(width, height), background=(1.0, 1.0, 1.0))
    return np.clip(img[0].detach().double().numpy(), 0.0, 1.0), list(result.warnings)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return MAX_PSNR if mse <= 10 ** (-MAX_PSNR / 10) else min(MAX_PSNR, -10.0 * math.log10(mse))


def run_test(svg_path: str, rel: str, threshold: float, save_dir: str | None) -> dict:
    with open(svg_path, "rb") as f:
        data = f.read()
    ref = _reference(svg_path[:-4] + ".png")
    height, width = ref.shape[:2]
    title = _title(data.decode("utf-8", "replace"))
    record = {"test": rel, "title": title, "size": [width, height], "ub": "(UB)" in title,
              "resvg_ignored": rel in RESVG_IGNORED, "warnings": [], "error": None}
    t0 = time.perf_counter()
    try:
        with pywarnings.catch_warnings():
            pywarnings.simplefilter("ignore")
            img, record["warnings"] = _load(data, width, height)
    except svg_loader.SVGLoadError as exc:
        record["error"] = f"SVGLoadError: {exc}"
        img = np.ones_like(ref)
    except Exception as exc:  # noqa: BLE001  (a crash is a finding: recorded, scored as a blank image)
        record["error"] = f"CRASH {type(exc).__name__}: {exc}"
        img = np.ones_like(ref)
    record["seconds"] = round(time.perf_counter() - t0, 3)
    record["psnr"] = round(_psnr(img, ref), 2)
    record["scored"] = not (record["ub"] or record["resvg_ignored"])
    record["passed"] = record["psnr"] >= threshold
    if save_dir:  # side by side: ours | reference
        out = os.path.join(save_dir, rel.replace("/", "__") + ".png")
        both = np.concatenate([img, np.ones((height, 4, 3)) * 0.5, ref], axis=1)
        Image.fromarray((both * 255 + 0.5).astype(np.uint8)).save(out)
    return record


def summarise(records: list, threshold: float) -> dict:
    cats = {}
    for r in records:
        cat = r["test"].rsplit("/", 1)[0]
        c = cats.setdefault(cat, {"tests": 0, "scored": 0, "passed": 0, "failed_with_warning": 0, "not_scored": 0})
        c["tests"] += 1
        if r["scored"]:
            c["scored"] += 1
            c["passed"] += int(r["passed"])
            c["failed_with_warning"] += int(not r["passed"] and bool(r["warnings"] or r["error"]))
        else:
            c["not_scored"] += 1
    for c in cats.values():
        c["pass_rate"] = round(c["passed"] / c["scored"], 4) if c["scored"] else None
    scored = sum(c["scored"] for c in cats.values())
    passed = sum(c["passed"] for c in cats.values())
    warned = sum(c["failed_with_warning"] for c in cats.values())
    return {"threshold_db": threshold, "tests": len(records), "scored": scored, "passed": passed,
            "failed_with_warning": warned,
            "pass_rate": round(passed / scored, 4) if scored else None,
            "crashes": sum(1 for r in records if (r["error"] or "").startswith("CRASH")), "categories": cats}


def table(summary: dict) -> str:
    lines = ["| category | passed / scored | pass rate | failed with a warning | not scored (UB) |",
             "|---|---|---|---|---|"]
    for cat, c in summary["categories"].items():
        rate = "-" if c["pass_rate"] is None else f"{100 * c['pass_rate']:.0f} %"
        lines.append(f"| {cat} | {c['passed']} / {c['scored']} | {rate} | {c['failed_with_warning']} | "
                     f"{c['not_scored']} |")
    lines.append(f"| **all** | **{summary['passed']} / {summary['scored']}** | "
                 f"**{100 * summary['pass_rate']:.1f} %** | {summary['failed_with_warning']} | "
                 f"{summary['tests'] - summary['scored']} |")
    return "\n".join(lines)


def cause(record: dict, causes: dict) -> str:
    """Known cause of a failure: an exact test name, the longest matching name prefix, or '@feature' for a
    test whose warnings say 'unsupported <feature>'."""
    name = record["test"]
    if name in causes:
        return causes[name]
    prefixes = [k for k in causes if not k.startswith("@") and name.startswith(k)]
    if prefixes:
        return causes[max(prefixes, key=len)]
    said = " ".join(record["warnings"])
    found = [text for key, text in causes.items() if key.startswith("@") and f"unsupported {key[1:]}" in said]
    return "; ".join(dict.fromkeys(found)) or "?"


def notes(summary: dict, records: list, command: str, causes: dict) -> str:
    out = [f"# SVG conformance failures (resvg suite), threshold {summary['threshold_db']:g} dB PSNR on white",
           "", f"Generated by `{command}` at {time.strftime('%Y-%m-%d %H:%M:%S %Z')}.", "", table(summary), "",
           "## Failures by cause (most first)", "", "| failing tests | cause |", "|---|---|"]
    by_cause: dict = {}
    for r in records:
        if r["scored"] and not r["passed"]:
            by_cause.setdefault(cause(r, causes), []).append(r["test"])
    for text, tests in sorted(by_cause.items(), key=lambda kv: -len(kv[1])):
        out.append(f"| {len(tests)} | {text} |")
    out += ["", "## Failures (scored tests below the threshold)", "",
            "| test | PSNR | title | cause | loader warnings / error |", "|---|---|---|---|---|"]
    for r in records:
        if r["scored"] and not r["passed"]:
            said = r["error"] or "; ".join(r["warnings"]) or "(no warning)"
            out.append(f"| {r['test']} | {r['psnr']:.1f} | {r['title']} | {cause(r, causes)} | "
                       f"{said.replace('|', '/')[:300]} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("suite", help="path to resvg's crates/resvg/tests/tests (or a copy of the in-scope folders)")
    ap.add_argument("--threshold", type=float, default=THRESHOLD_DB, help="PSNR (dB) a test must reach")
    ap.add_argument("--categories", default="", help="comma-separated subset, e.g. shapes,painting/fill")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "svg_conformance.json"))
    ap.add_argument("--notes", default="", help="also write the failures as Markdown to this file")
    ap.add_argument("--causes", default="", help="JSON {test or name prefix or @element: cause} for --notes")
    ap.add_argument("--save-dir", default="", help="write ours|reference side-by-side PNGs here")
    args = ap.parse_args(argv)

    threads, logger = torch.get_num_threads(), logging.getLogger("VideoPriors")
    level = logger.level
    torch.set_num_threads(1)
    logger.setLevel(logging.ERROR)  # warnings are recorded per test instead
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)
        logger.setLevel(level)


def _run(args) -> int:
    suite = os.path.abspath(args.suite)
    for inner in ("tests", os.path.join("crates", "resvg", "tests", "tests")):  # a checkout's root works too
        if not os.path.isdir(os.path.join(suite, "shapes")) and os.path.isdir(os.path.join(suite, inner, "shapes")):
            suite = os.path.join(suite, inner)
    wanted = [c.strip().strip("/") for c in args.categories.split(",") if c.strip()]
    cats = [c for c in IN_SCOPE if not wanted or any(c == w or c.startswith(w + "/") for w in wanted)]
    missing = [c for c in cats if not os.path.isdir(os.path.join(suite, c))]
    if missing:
        print(f"missing in {suite}: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.save_dir:
        os.makedirs(args.save_dir, exist_ok=True)
    records = []
    for cat in cats:
        folder = os.path.join(suite, cat)
        for name in sorted(os.listdir(folder)):
            if name.endswith(".svg") and os.path.exists(os.path.join(folder, name[:-4] + ".png")):
                rel = f"{cat}/{name[:-4]}"
                records.append(run_test(os.path.join(folder, name), rel, args.threshold, args.save_dir or None))
    summary = summarise(records, args.threshold)
    print(table(summary))
    for r in records:
        if r["scored"] and not r["passed"]:
            said = r["error"] or "; ".join(r["warnings"]) or "(no warning)"
            print(f"FAIL {r['test']}  {r['psnr']:.1f} dB  [{r['title']}]  {said[:200]}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"suite": "linebender/resvg crates/resvg/tests/tests", "summary": summary, "tests": records},
                  f, indent=1)
    print(f"wrote {args.out}")
    if args.notes:
        with open(args.notes, "w") as f:
            causes = {}
            if args.causes:
                with open(args.causes) as c:
                    causes = json.load(c)
            f.write(notes(summary, records, "make conformance SUITE=" + args.suite, causes))
        print(f"wrote {args.notes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
