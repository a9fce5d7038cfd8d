"""Reading RIFE checkpoints safely and telling which version they hold.

Files: ComfyUI-Frame-Interpolation's rife47/49/417/426.pth (plain state dicts), Practical-RIFE / vs-rife
flownet*.pkl (keys prefixed `module.`: a leading `module.` is stripped, the step whose absence makes upstream loaders
silently load nothing), or .safetensors copies; read by pipelines/lvdm/checkpoint.read_checkpoint (safetensors, or
torch.load(weights_only=True)). The layout comes from key names and shapes (`fingerprint`); the file name only
picks between releases that share a layout exactly (4.7 / 4.8 / 4.9, 4.17 / 4.18, 4.25 / 4.26). Loading is strict:
a missing, unexpected or misshapen tensor is an error naming the file.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch

from ..lvdm.checkpoint import CheckpointError, read_checkpoint
from .rife import ARCHES, IFNet, RifeArch

WHERE_TO_GET = (
    "RIFE files go into ComfyUI/models/frame_interpolation/ (ComfyUI-Frame-Interpolation's ckpts/rife folder is "
    "read too): rife47.pth, rife49.pth, rife417.pth, rife426.pth (github.com/styler00dollar/VSGAN-tensorrt-docker "
    "releases, what ComfyUI-Frame-Interpolation downloads) or Practical-RIFE's train_log/flownet.pkl renamed after "
    "its version (e.g. rife422.pkl; github.com/hzwer/Practical-RIFE).")
PREFIX = "module."


class RifeCheckpointError(ValueError):
    """A file that is not a usable RIFE checkpoint; the message names it and says what was expected."""


@dataclass
class RifeCheckpoint:
    path: str
    arch: RifeArch
    version: str          # the release picked (e.g. "4.9")
    how: str              # how the version was chosen, for the user
    tensors: dict
    stripped_prefix: bool


def _name(path: str) -> str:
    return os.path.basename(os.fspath(path).rstrip(os.sep)) or os.fspath(path)


def strip_prefix(sd: dict) -> tuple[dict, bool]:
    """Remove a leading `module.` (DistributedDataParallel) from every key that has it."""
    if not any(k.startswith(PREFIX) for k in sd):
        return dict(sd), False
    return {k.removeprefix(PREFIX): v for k, v in sd.items()}, True


def _shape(sd: dict, key: str) -> tuple[int, ...] | None:
    t = sd.get(key)
    return tuple(t.shape) if isinstance(t, torch.Tensor) else None


def fingerprint(sd: dict) -> dict | None:
    """The layout-defining sizes of a state dict, or None when it has no RIFE IFNet at all."""
    if _shape(sd, "block0.conv0.1.0.weight") is None:
        return None
    widths = []
    while (s := _shape(sd, f"block{len(widths)}.conv0.1.0.weight")) is not None and len(s) == 4:
        widths.append(s[0])
    last = _shape(sd, "block0.lastconv.0.weight")
    if (s := _shape(sd, "encode.0.weight")) is not None and _shape(sd, "encode.1.weight") is not None:
        head, width, feat = "conv2", s[0], _shape(sd, "encode.1.weight")[1]
    elif (s := _shape(sd, "encode.cnn0.weight")) is not None and _shape(sd, "encode.cnn3.weight") is not None:
        head, width, feat = "head", s[0], _shape(sd, "encode.cnn3.weight")[1]
    else:
        head, width, feat = None, None, None
    return {"head": head, "head_width": width, "feat": feat, "widths": tuple(widths),
            "carry": None if last is None or len(last) != 4 else last[1] == 52}


def _arch_for(fp: dict) -> RifeArch | None:
    for a in ARCHES:
        if (a.head, a.head_width, a.feat, a.widths, a.carry) == (fp["head"], fp["head_width"], fp["feat"],
                                                                  fp["widths"], fp["carry"]):
            return a
    return None


def version_from_name(name: str, arch: RifeArch) -> tuple[str, str]:
    """(release, how) among the releases sharing `arch`, from numbers like rife49 / v4.9 / 4_26 in the file name."""
    named = [f"4.{int(m.group(1))}" for m in re.finditer(r"(?<!\d)4[._-]?(\d{1,2})(?!\d)", name.lower())]
    found = [v for v in named if v in arch.versions]
    if named and not found and not any(v.split("-")[0] in named for v in arch.versions):
        # shapes win over names: a renamed file still loads as what it is
        note = f" (the file name says {named[0]}, but the keys and shapes are those of {arch.name})"
    else:
        note = ""
    if len(arch.versions) == 1:
        return arch.versions[0], "from the keys and shapes" + note
    shared = " / ".join(arch.versions)
    if len(set(found)) == 1:
        return found[0], f"layout from the keys and shapes ({shared} share it), release from the file name"
    return arch.versions[0], (f"layout from the keys and shapes; {shared} share it exactly and the file name does "
                              f"not say which, so it is reported as {arch.versions[0]} (the computation is the "
                              f"same){note}")


def _other_model_hint(sd: dict) -> str:
    keys = list(sd)
    if any(k.startswith(("model.diffusion_model.", "diffusion_model.")) for k in keys):
        return "it is a video diffusion model (LVDM UNet): load it with VP_LoadLVDMCheckpoint from models/checkpoints"
    if any(k.startswith(("pretrained.", "scratch.", "depth_head.", "backbone.", "dpt.", "neck.")) for k in keys):
        return "it is a depth estimator (MiDaS / Depth-Anything): load it with VP_LoadDepthModel from models/depth"
    if not keys:
        return "it holds no tensors"
    tops = sorted({k.split(".")[0] for k in keys})
    return f"its top-level names are {', '.join(tops[:8])}"


def identify(sd: dict, name: str) -> tuple[RifeArch, str, str]:
    """(layout, release, how it was chosen) from keys and shapes; a RifeCheckpointError for anything else."""
    fp = fingerprint(sd)
    if fp is None:
        raise RifeCheckpointError(f"{name} is not a RIFE frame-interpolation model (no 'block0.*' IFNet keys): "
                                  f"{_other_model_hint(sd)}. " + WHERE_TO_GET)
    arch = _arch_for(fp)
    if arch is None:
        known = ", ".join(a.name for a in ARCHES)
        raise RifeCheckpointError(
            f"{name} is a RIFE IFNet of a layout this pack does not know (blocks {list(fp['widths'])}, encoder "
            f"{fp['head']} {fp['head_width']}->{fp['feat']} channels, feature carry {fp['carry']}); supported: "
            f"{known} (4.8, 4.18 and 4.26 share layouts listed there). " + WHERE_TO_GET)
    version, how = version_from_name(name, arch)
    return arch, version, how


def check_tensors(sd: dict, arch: RifeArch, name: str) -> None:
    """Exactly the layout's keys and shapes, else an error listing what differs."""
    want = {k: tuple(v.shape) for k, v in IFNet(arch).state_dict().items()}
    missing = [k for k in want if k not in sd]
    unexpected = [k for k in sd if k not in want]
    wrong = [f"{k} {list(sd[k].shape)} (expected {list(s)})" for k, s in want.items()
             if k in sd and tuple(sd[k].shape) != s]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            more = f" and {len(items) - 4} more" if len(items) > 4 else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:4])}{more}")
    if problems:
        raise RifeCheckpointError(f"{name} looks like RIFE {arch.name} but does not load strictly: "
                                  + "; ".join(problems) + ". The file is damaged or of another variant.")


def read_rife_checkpoint(path) -> RifeCheckpoint:
    """Read a RIFE file (safely), strip `module.`, identify the version, check every tensor."""
    path = os.fspath(path)
    name = _name(path)
    try:
        raw = read_checkpoint(path)
    except CheckpointError as e:
        raise RifeCheckpointError(f"{name}: {e}") from None
    sd, stripped = strip_prefix(raw.tensors)
    arch, version, how = identify(sd, name)
    check_tensors(sd, arch, name)
    if stripped:
        how += "; the 'module.' key prefix was removed"
    return RifeCheckpoint(path, arch, version, how, sd, stripped)


def build_model(ck: RifeCheckpoint, dtype: torch.dtype = torch.float32, device=None) -> IFNet:
    """The IFNet with the checkpoint's weights (strict load, fp32 copy first), in eval mode, in `dtype`."""
    model = IFNet(ck.arch)
    model.load_state_dict({k: v.float() for k, v in ck.tensors.items()}, strict=True)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def load_rife(path, dtype: torch.dtype = torch.float32, device=None) -> tuple[IFNet, RifeCheckpoint]:
    ck = read_rife_checkpoint(path)
    model = build_model(ck, dtype, device)
    ck.tensors = {}  # the weights live in the model now
    return model, ck
