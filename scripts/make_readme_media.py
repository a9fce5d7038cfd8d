"""The README's animation: the demo's sketch next to its LiveSketch animation, as a small looping GIF.

By default it runs the demo workflow (workflows/livesketch_embedded.json) in a real headless
ComfyUI, exactly as `make demo` does, and builds the GIF from the animated WEBP it saves.
`--from-output DIR` skips the run and takes the newest matching WEBP under DIR (e.g. ./output
after `make demo`). The GIF shows the bundled sketch (left), the animation (right) and the prompt
(below), at the workflow's fps, and is kept under --max-kb.

    python scripts/make_readme_media.py                      # run the demo, write docs/media/
    python scripts/make_readme_media.py --from-output output # reuse `make demo`'s files
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile

import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_WORKFLOW = os.path.join(REPO, "workflows", "livesketch_embedded.json")
DEFAULT_OUT = os.path.join(REPO, "docs", "media", "livesketch_embedded.gif")
BUNDLED_PREFIX = "examples/"  # how workflows name the sketches in pipelines/assets/sketches
CAPTION_HEIGHT = 30
GAP = 8


def workflow_settings(workflow: dict) -> dict:
    """Prompt, sketch, fps and file prefix of a LiveSketch workflow (read from its widgets_values)."""
    by_type = {}
    for node in workflow["nodes"]:
        by_type.setdefault(node["type"], node)

    def widget(ntype: str, index: int):
        node = by_type.get(ntype)
        if node is None:
            raise ValueError(f"the workflow has no {ntype} node")
        return node["widgets_values"][index]

    return {"prompt": widget("VP_SDSGuidance", 0), "sketch": widget("VP_LoadSVGSketch", 0),
            "canvas": widget("VP_LoadSVGSketch", 1), "force_black": widget("VP_LoadSVGSketch", 4),
            "fps": widget("VP_AnimateSketch", 4), "prefix": widget("SaveAnimatedWEBP", 0)}


def render_sketch(name: str, canvas: int, force_black: bool, size: int) -> Image.Image:
    """The workflow's input sketch, rendered as VP_LoadSVGSketch + VP_RasterizeSketch would."""
    sys.path.insert(0, REPO)
    from pipelines.raster import rasterize_sketch
    from pipelines.svg import load_svg_sketch

    if not name.startswith(BUNDLED_PREFIX):
        raise ValueError(f"{name!r} is not a bundled sketch ({BUNDLED_PREFIX}...)")
    path = os.path.join(REPO, "pipelines", "assets", "sketches", os.path.basename(name[len(BUNDLED_PREFIX):]))
    with open(path, "rb") as f:
        sketch = load_svg_sketch(f.read(), canvas_size=canvas, force_black=force_black).sketch
    img = rasterize_sketch(sketch, (size, size))[0].clamp(0, 1).numpy()
    return Image.fromarray((img * 255).round().astype(np.uint8))


def newest_webp(folder: str, prefix: str) -> str:
    stem = os.path.basename(prefix)
    found = glob.glob(os.path.join(folder, "**", stem + "*.webp"), recursive=True)
    if not found:
        raise FileNotFoundError(f"no {stem}*.webp under {folder}: run `make demo` first, or drop --from-output")
    return max(found, key=os.path.getmtime)


def run_demo(workflow: str, out_dir: str) -> None:
    sys.path.insert(0, HERE)
    import demo

    if demo.main(["--workflow", workflow, "--out", out_dir]) != 0:
        raise SystemExit("the demo workflow failed")


def read_frames(path: str) -> list[Image.Image]:
    frames = []
    with Image.open(path) as im:
        for k in range(getattr(im, "n_frames", 1)):
            im.seek(k)
            frames.append(im.convert("RGB"))
    return frames


def compose(sketch: Image.Image, frames: list[Image.Image], caption: str) -> list[Image.Image]:
    """[sketch | frame] side by side on white with the caption centred below."""
    w, h = frames[0].size
    sketch = sketch.convert("RGB").resize((w, h), Image.LANCZOS)
    try:
        font = ImageFont.load_default(size=18)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        font = ImageFont.load_default()
    out = []
    for frame in frames:
        canvas = Image.new("RGB", (2 * w + GAP, h + CAPTION_HEIGHT), "white")
        canvas.paste(sketch, (0, 0))
        canvas.paste(frame, (w + GAP, 0))
        draw = ImageDraw.Draw(canvas)
        draw.line([(w + GAP // 2, 8), (w + GAP // 2, h - 8)], fill=(200, 200, 200), width=1)
        text = f'"{caption}"'
        box = draw.textbbox((0, 0), text, font=font)
        draw.text(((canvas.width - (box[2] - box[0])) / 2, h + (CAPTION_HEIGHT - (box[3] - box[1])) / 2 - box[1]),
                  text, fill=(60, 60, 60), font=font)
        out.append(canvas)
    return out


def save_gif(frames: list[Image.Image], path: str, fps: float, max_kb: int) -> int:
    """A looping GIF with one shared palette; fewer colours until it fits max_kb. Returns its size."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    duration = max(20, round(1000 / fps))
    for colors in (32, 16, 8, 4):
        strip = Image.new("RGB", (frames[0].width, frames[0].height * len(frames)))
        for i, f in enumerate(frames):
            strip.paste(f, (0, i * f.height))
        palette = strip.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
        indexed = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
        indexed[0].save(path, save_all=True, append_images=indexed[1:], duration=duration, loop=0,
                        optimize=True, disposal=1)
        size = os.path.getsize(path)
        if size <= max_kb * 1024:
            return size
    raise SystemExit(f"{path} is {size // 1024} KB even with 4 colours (limit {max_kb} KB)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workflow", default=DEFAULT_WORKFLOW)
    ap.add_argument("--from-output", metavar="DIR", help="use the newest demo WEBP under DIR instead of running")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--max-kb", type=int, default=300)
    args = ap.parse_args(argv)

    with open(args.workflow, encoding="utf-8") as f:
        settings = workflow_settings(json.load(f))
    with tempfile.TemporaryDirectory(prefix="vp-media-") as tmp:
        folder = args.from_output
        if folder is None:
            run_demo(args.workflow, tmp)
            folder = tmp
        source = newest_webp(folder, settings["prefix"])
        frames = read_frames(source)
    sketch = render_sketch(settings["sketch"], settings["canvas"], settings["force_black"], frames[0].width)
    size = save_gif(compose(sketch, frames, settings["prompt"]), args.out, float(settings["fps"]), args.max_kb)
    print(f"[media] {len(frames)} frames from {source} -> {args.out} ({size / 1024:.1f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
