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


def check_choices(node_cls, **values) -> bool | str:
    """Validation of combo (enum) values for V3 nodes.

    ComfyUI 0.3.75 checks min/max for every input but checks enum membership only for
    legacy list-typed combos, not for V3 `COMBO` inputs; without this, a bad enum in an
    API prompt passes validation and fails (or silently misbehaves) at run time.
    """
    from comfy_api.latest import io as _io

    # define_schema(), not GET_SCHEMA(): validation runs on a locked clone of the class that must not be written to.
    for inp in node_cls.define_schema().inputs or []:
        if isinstance(inp, _io.Combo.Input) and inp.id in values and values[inp.id] is not None:
            options = inp.options or []
            if values[inp.id] not in options:
                return f"{inp.id}: {values[inp.id]!r} is not one of {options}"
    return True


def check_color(name: str, text) -> bool | str:
    from ..pipelines.svg_export import parse_color

    if text is None:
        return True
    try:
        parse_color(text)
    except ValueError as e:
        return f"{name}: {e}"
    return True


def first_error(*results) -> bool | str:
    for r in results:
        if r is not True:
            return r
    return True
