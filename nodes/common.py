"""Shared pieces of the ComfyUI adapters: pack types, file lookup, small helpers."""
from __future__ import annotations

import hashlib
import math
import os
import re

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


# A request may use at most this fraction of the memory the machine has free when it starts.
MEMORY_FRACTION = 0.5


def free_memory_bytes(device=None) -> int:
    """Free memory of `device` (ComfyUI's figure: a GPU's, or the machine's available RAM for the CPU);
    device None = the CPU's."""
    import comfy.model_management as mm
    import torch

    return int(mm.get_free_memory(device if device is not None else torch.device("cpu")))


def require_memory(node_id: str, nbytes: int, what: str, knob: str, device=None) -> None:
    """Refuse (ValueError) before allocating when `nbytes` exceeds MEMORY_FRACTION of the free memory.

    The message states the figure and the input to turn (`knob`)."""
    from ..pipelines.render_budget import gib

    free = free_memory_bytes(device)
    if nbytes > MEMORY_FRACTION * free:
        raise ValueError(f"{node_id}: {what} needs {gib(nbytes)}, more than {int(MEMORY_FRACTION * 100)} % of the "
                         f"{gib(free)} of memory free on this machine; {knob}")


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _schema_inputs(node_cls) -> list:
    # define_schema(), not GET_SCHEMA(): validation runs on a locked clone of the class that must not be written to.
    return list(node_cls.define_schema().inputs or [])


def _number_problem(name: str, value, inp) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{name}: expected a number, got {value!r}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name}: {value!r} is not a finite number"
    lo, hi = getattr(inp, "min", None), getattr(inp, "max", None)
    if lo is not None and value < lo:
        return f"{name}: {value!r} is below the minimum {lo}"
    if hi is not None and value > hi:
        return f"{name}: {value!r} is above the maximum {hi}"
    return None


def check_inputs(node_cls, values: dict, input_types: dict | None = None, *, at_run_time: bool = False) -> bool | str:
    """The pack's one check of widget values against the node's own schema (True or an error message).

    ComfyUI 0.3.75 converts numbers but accepts NaN and infinities, skips min/max for every input a
    node's validate_inputs names, checks enum membership only for legacy list-typed combos (not V3
    `COMBO` inputs), and gives a node's validate_inputs None both for a linked input and for a
    literal null. So every node of the pack that validates routes its values through here:
    - numbers (FLOAT, INT): finite, within the schema's min/max;
    - combos: one of the options the schema lists now (folder listings are re-read);
    - null: refused for a required input unless it is linked (`input_types`, ComfyUI's types of the
      linked inputs, tells the two apart; without it a None is taken as a link at validation time);
    - linked inputs: their type is checked as ComfyUI would (naming `input_types` in validate_inputs
      turns ComfyUI's own check off).
    At run time (`at_run_time`), values coming through links are checked too (NaN from a float node).
    """
    from comfy_execution.validation import validate_node_input

    linked = input_types or {}
    for inp in _schema_inputs(node_cls):
        name = inp.id
        if name in linked:
            want = inp.get_io_type()
            if not validate_node_input(linked[name], want):
                return f"{name}: a {linked[name]} output cannot be connected to this {want} input"
            continue
        if name not in values:
            continue
        value = values[name]
        if value is None:
            if inp.optional or not (at_run_time or input_types is not None):
                continue
            return f"{name}: a value is required (got null)"
        if isinstance(inp, (io.Float.Input, io.Int.Input)):
            problem = _number_problem(name, value, inp)
            if problem:
                return problem
        elif isinstance(inp, io.Combo.Input):
            options = inp.options or []
            if value not in options:
                shown = options if len(options) <= 20 else f"a list of {len(options)} names"
                return f"{name}: {value!r} is not one of {shown}"
    return True


def ensure_inputs(node_cls, **values) -> None:
    """`check_inputs` at run time: raise a ValueError naming the node (values from links included)."""
    result = check_inputs(node_cls, values, at_run_time=True)
    if result is not True:
        raise ValueError(f"{node_cls.define_schema().node_id}: {result}")


def check_filename_prefix(name: str, prefix) -> bool | str:
    """A save prefix stays inside the output folder: relative, no '..' component, no drive."""
    if prefix is None:
        return True
    text = str(prefix)
    parts = text.replace("\\", "/").split("/")
    if not text.strip() or os.path.isabs(text) or text.startswith(("/", "\\")) or ".." in parts or ":" in text:
        return (f"{name}: {text!r} must be a relative name inside the output folder "
                "(sub/folder/name, without '..' or a drive)")
    return True


def display_path(text: str) -> str:
    """An error message with every server path replaced by a name relative to ComfyUI's folders.

    Clients see errors; absolute paths would tell them how the server's disk is laid out.
    Known roots become their ComfyUI names (models/video_priors, input, output, custom_nodes/<pack>);
    any other absolute path keeps only its last component.
    """
    base = os.path.abspath(getattr(folder_paths, "base_path", "") or "/")

    def label(path: str, fallback: str) -> str:
        path = os.path.abspath(path)
        if base != "/" and os.path.commonpath([path, base]) == base:
            return os.path.relpath(path, base).replace(os.sep, "/")
        return fallback

    roots = [(PACK_DIR, label(PACK_DIR, f"custom_nodes/{os.path.basename(PACK_DIR)}"))]
    try:
        for key, (paths, _exts) in list(folder_paths.folder_names_and_paths.items()):
            roots += [(pth, label(pth, f"models/{key}")) for pth in paths]
        roots += [(folder_paths.models_dir, "models"), (folder_paths.get_input_directory(), "input"),
                  (folder_paths.get_output_directory(), "output"), (folder_paths.get_temp_directory(), "temp")]
    except Exception:  # a partial folder_paths (tests): the generic rule below still applies
        pass
    if base != "/":
        roots.append((base, "ComfyUI"))
    text = str(text)
    for root, label in sorted(roots, key=lambda r: -len(str(r[0]))):
        root = os.path.abspath(str(root))
        if len(root) > 1:
            text = text.replace(root, label)
    return _ABS_PATH.sub(lambda m: "…/" + os.path.basename(m.group(0).rstrip("/")), text)


# An absolute POSIX path not inside a URL or another path (one or more components).
_ABS_PATH = re.compile(r"(?<![\w:/.~<>-])/(?:\.?\w[\w.+@-]*/)*\.?\w[\w.+@-]*/?")


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


def frame_strip(frames, count: int = 6):
    """IMAGE frames [T, H, W, 3] in 0..1 -> up to `count` evenly spaced frames side by side (a progress preview)."""
    import numpy as np
    import torch
    from PIL import Image

    idx = np.linspace(0, frames.shape[0] - 1, min(count, frames.shape[0])).round().astype(int)
    row = torch.cat([frames[i] for i in idx], dim=1)  # [H, W*n, 3]
    return Image.fromarray((row.clamp(0, 1).cpu().numpy() * 255).astype(np.uint8))


def other_pack_folder(*parts: str) -> str:
    """A folder beside ComfyUI's models/ (e.g. another custom node pack's downloads), as an absolute path."""
    import folder_paths

    return os.path.join(os.path.dirname(os.path.abspath(folder_paths.models_dir)), *parts)


def model_files(folder_key: str, extensions: tuple[str, ...], *, accept=None, is_model_folder=None) -> dict[str, str]:
    """{name shown in a loader's list: path} for files (any depth) under every folder registered as `folder_key`.

    accept(root, filename) -> bool filters files (e.g. only depth files in another pack's shared folder);
    is_model_folder(dirpath) -> bool lists a whole folder (a transformers model) by its name with a trailing "/".
    The first folder that has a name wins, as folder_paths does."""
    import folder_paths

    found: dict[str, str] = {}
    try:
        roots = folder_paths.get_folder_paths(folder_key)
    except KeyError:
        roots = []
    for root in roots:
        if not os.path.isdir(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            if rel_dir != "." and is_model_folder is not None and is_model_folder(dirpath):
                found.setdefault(rel_dir.replace(os.sep, "/") + "/", dirpath)
                dirnames[:] = []
                continue
            for name in sorted(filenames):
                if not name.lower().endswith(extensions) or (accept is not None and not accept(root, name)):
                    continue
                rel = os.path.normpath(os.path.join(rel_dir, name)).replace(os.sep, "/")
                found.setdefault(rel, os.path.join(dirpath, name))
    return found
