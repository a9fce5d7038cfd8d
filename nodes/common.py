"""Shared pieces of the ComfyUI adapters: pack types, file lookup, small helpers."""
from __future__ import annotations

import hashlib
import os

from comfy_api.latest import io

import folder_paths

PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED_SKETCH_DIR = os.path.join(PACK_DIR, "pipelines", "assets", "sketches")
BUNDLED_PREFIX = "examples/"

# Pack types. Core types (IMAGE, SVG, ...) come from io directly.
Sketch = io.Custom("VP_SKETCH")
SketchAnimation = io.Custom("VP_SKETCH_ANIMATION")


def list_svg_files() -> list[str]:
    """SVG files in ComfyUI's input folder (recursively), then the sketches bundled with the pack."""
    names = []
    root = folder_paths.get_input_directory()
    if os.path.isdir(root):
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                if f.lower().endswith(".svg"):
                    names.append(os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/"))
    names.sort()
    if os.path.isdir(BUNDLED_SKETCH_DIR):
        names += [BUNDLED_PREFIX + f for f in sorted(os.listdir(BUNDLED_SKETCH_DIR)) if f.lower().endswith(".svg")]
    return names


def resolve_svg_path(name: str) -> str:
    """Path of an SVG chosen in the loader: ComfyUI's input folder first, then the bundled examples."""
    input_dir = folder_paths.get_input_directory()
    candidate = os.path.abspath(os.path.join(input_dir, name))
    if os.path.commonpath([candidate, os.path.abspath(input_dir)]) == os.path.abspath(input_dir) and os.path.isfile(candidate):
        return candidate
    if name.startswith(BUNDLED_PREFIX):
        base = os.path.basename(name[len(BUNDLED_PREFIX):])
        bundled = os.path.join(BUNDLED_SKETCH_DIR, base)
        if os.path.isfile(bundled):
            return bundled
    raise FileNotFoundError(
        f"SVG file {name!r} not found in ComfyUI's input folder ({input_dir}) nor among the bundled sketches "
        f"({BUNDLED_SKETCH_DIR}). Upload it with the node's upload button or copy it into the input folder.")


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
