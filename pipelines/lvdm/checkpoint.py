"""Safe, lean loading of the official LVDM checkpoints (VideoCrafter1/2, DynamiCrafter, Make-Your-Video).

Formats, sniffed from the content (never from the extension):
- `.safetensors`: memory-mapped by the safetensors library (tensors are views of a private mapping, read lazily);
- PyTorch zip (`torch.save`, what `.ckpt/.pt/.pth/.bin` usually are): `torch.load(weights_only=True, mmap=True)`;
- legacy (pre-1.6) PyTorch pickles: `torch.load(weights_only=True)` (that format cannot be memory-mapped).
A pickle is never unpickled beyond `weights_only`. The only additions are inert stand-ins (`_Inert`: no behaviour,
they keep nothing) for a short list of training-metadata classes that Lightning writes next to the weights (callback
objects, numpy scalars); any other Python object in the file (omegaconf configs in `hyper_parameters`, code) makes
the load fail with an error that names the file and the objects. Such a file has to be converted once by the user
in an environment they trust (the weights themselves never need those objects).

Layouts: a plain state dict, Lightning's `{"state_dict": ...}`, DeepSpeed's `{"module": ...}` whose keys all carry
the 16-character '_forward_module.' prefix (Lightning's DeepSpeed wrapper attribute; the official loader drops the
first 16 characters of every key), and the converted `.safetensors` with the original key names.

`load_lvdm_checkpoint` splits the keys into components (prefix removed):
  unet          model.diffusion_model.*   (`framestride_embed.*` -> `fps_embedding.*`, as the official loader does)
  vae           first_stage_model.*
  resampler     image_proj_model.*        (DynamiCrafter)
  text_encoder  cond_stage_model.model.*  (OpenCLIP ViT-H-14 text tower, Stable Diffusion 2.x layout)
  clip_vision   embedder.model.*          (OpenCLIP ViT-H-14 image tower, DynamiCrafter; SD 2.1 unCLIP layout)
  schedule      betas, alphas_cumprod, ..., scale_arr, logvar, scale_factor (diffusion-wrapper buffers)
Only the UNet is required; unknown keys are ignored and listed in `ignored`.

Memory: nothing is copied unless a dtype cast is asked for. With dtype "keep" a memory-mapped tensor costs RAM only
once it is read. A cast converts tensor by tensor (safetensors through `pread`, torch zips without mmap) so the
source bytes of each tensor are released after it is cast; schedule buffers are never cast (they stay fp32). (A
cast read of a torch zip loads every storage of the file, so a training checkpoint with optimizer states would cost
their size too; the published LVDM files hold weights only.) bench/bench_lvdm_load.py measures all of this.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pickle
import re
import threading
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch

from .config import (
    UNET_PREFIX,
    VARIANTS,
    UNetConfig,
    UnknownCheckpointError,
    Variant,
    unet_keys,
    variant_for,
)

PREFIXES = {
    "unet": UNET_PREFIX,
    "vae": "first_stage_model.",
    "resampler": "image_proj_model.",
    "text_encoder": "cond_stage_model.model.",
    "clip_vision": "embedder.model.",
}
SCHEDULE_KEYS = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                 "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
                 "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
                 "posterior_mean_coef1", "posterior_mean_coef2", "lvlb_weights", "scale_arr", "logvar",
                 "scale_factor")
DTYPES = {"keep": None, "fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
FAMILY_TITLES = {"videocrafter": "text-to-video (VideoCrafter1/2)", "dynamicrafter": "image-to-video (DynamiCrafter)",
                 "makeyourvideo": "depth-guided video (Make-Your-Video)"}
DEEPSPEED_PREFIX = "_forward_module."
CONVERT_HINT = "scripts/convert_lvdm_checkpoint.py"


class CheckpointError(ValueError):
    """A file that is not a loadable LVDM checkpoint; the message names the file and what was expected."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle that needs Python objects beyond tensors and plain containers: refused, never unpickled."""


class _Inert:
    """Stand-in for a training-metadata class of a Lightning checkpoint: takes any arguments, runs and keeps nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __repr__(self):
        return "<training metadata not loaded>"


# Globals Lightning writes next to the weights (callback state keyed by the callback class in older versions, numpy
# scalars for `best_model_score`): ComfyUI's loader allows the same ones. They are replaced by `_Inert`.
METADATA_GLOBALS = (
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    "lightning.pytorch.callbacks.model_checkpoint.ModelCheckpoint",
    "pytorch_lightning.callbacks.early_stopping.EarlyStopping",
    "lightning.pytorch.callbacks.early_stopping.EarlyStopping",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.dtype",
    "numpy.dtypes.Float64DType",
    "numpy.dtypes.Float32DType",
)


@dataclasses.dataclass
class RawCheckpoint:
    """Flat {official key: tensor} (wrappers removed, names unchanged) plus where it came from."""

    path: str
    tensors: dict
    format: str                 # "safetensors" | "torch-zip" | "torch-legacy"
    layout: str                 # "plain" | "state_dict" | "deepspeed" | "model" | "safetensors"
    metadata: dict
    non_tensor: list            # top-level / state-dict entries that are not tensors (ignored)


@dataclasses.dataclass
class LVDMCheckpoint:
    path: str
    variant: Variant
    unet_config: UNetConfig
    unet: dict
    vae: dict | None = None
    resampler: dict | None = None
    text_encoder: dict | None = None
    clip_vision: dict | None = None
    schedule: dict = dataclasses.field(default_factory=dict)
    ignored: list = dataclasses.field(default_factory=list)
    format: str = ""
    layout: str = ""
    metadata: dict = dataclasses.field(default_factory=dict)

    def components(self) -> dict:
        return {name: getattr(self, name) for name in PREFIXES if getattr(self, name)}

    def summary(self) -> str:
        parts = [f"{name} {len(sd)} tensors" for name, sd in self.components().items()]
        if self.schedule:
            parts.append(f"schedule {len(self.schedule)} buffers")
        if self.ignored:
            parts.append(f"{len(self.ignored)} other keys ignored")
        return f"{os.path.basename(self.path)}: {self.variant.title} ({self.layout}); " + ", ".join(parts)


def _name(path) -> str:
    return f"'{os.path.basename(os.fspath(path))}'"


def _sniff(path: str) -> str:
    """The container format from the first bytes; clear errors for empty, missing and foreign files."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist or is not a file")
    size = os.path.getsize(path)
    if size == 0:
        raise CheckpointError(f"checkpoint {_name(path)} is empty (0 bytes): the download or copy did not finish")
    with open(path, "rb") as f:
        head = f.read(64)
    if head[:4] == b"PK\x03\x04":
        return "torch-zip"
    if len(head) >= 9 and head[8:9] == b"{":
        n = int.from_bytes(head[:8], "little")
        if 0 < n <= size - 8:
            return "safetensors"
        raise CheckpointError(
            f"checkpoint {_name(path)} is a truncated safetensors file: its header needs {n} bytes, the file has "
            f"{size}; download it again")
    if head[:1] == b"\x80":
        return "torch-legacy"
    if head.startswith(b"version https://git-lfs"):
        why = "a Git LFS pointer, not the weights (fetch the file with `git lfs pull` or download it directly)"
    elif head.lstrip()[:1] == b"<":
        why = "an HTML/XML page (probably an error or login page saved instead of the file)"
    else:
        why = "neither a safetensors file nor a PyTorch checkpoint (zip or pickle)"
    raise CheckpointError(f"{_name(path)} is not a model checkpoint: {why}")


def _refuse(path: str, names: Iterable[str], detail: str = "") -> UnsafeCheckpointError:
    names = sorted(set(names))
    listed = ", ".join(names) if names else "objects outside the weights_only allow-list"
    lightning = any(n.split(".")[0] in ("omegaconf", "pytorch_lightning", "lightning", "argparse", "typing")
                    for n in names)
    why = (" Official training checkpoints can carry such extras (for example omegaconf configs under "
           "'hyper_parameters'); the weights never need them." if lightning or not names else "")
    return UnsafeCheckpointError(
        f"refused to load {_name(path)}: the pickle needs Python objects beyond tensors and plain containers "
        f"({listed}), and unpickling them could run code from the file.{why} Use a .safetensors version of the "
        f"model, or, only if you trust the file's source, re-save its 'state_dict' alone (plain tensors) with the "
        f"tools that wrote it and convert that with {CONVERT_HINT}." + (f" ({detail})" if detail else ""))


_ALLOWLIST_LOCK = threading.Lock()


@contextlib.contextmanager
def _only_stand_ins():
    """torch's weights_only allow-list holds exactly our inert stand-ins while a file is read, then what it held.

    Why not torch.serialization.safe_globals: it only adds to the process-wide list, and ComfyUI registers the real
    numpy `scalar` / `dtype` under the same names at import (comfy/utils.py); torch keeps the list as a set, so
    which object a name resolves to changed from run to run, and a Lightning file's numpy metadata then failed to
    unpickle about 7 times in 8 (real `scalar` called with an inert `dtype`)."""
    stand_ins = [(_Inert, name) for name in METADATA_GLOBALS]
    with _ALLOWLIST_LOCK:
        saved = torch.serialization.get_safe_globals()
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(stand_ins)
        try:
            yield
        finally:
            torch.serialization.clear_safe_globals()
            torch.serialization.add_safe_globals(saved)


def _torch_load(path: str, fmt: str, mmap: bool):
    with _only_stand_ins():
        if fmt == "torch-zip":
            _check_zip(path)
            try:
                unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
            except (RuntimeError, ValueError, zipfile.BadZipFile) as e:
                raise _damaged(path, e) from None
            if unsafe:
                raise _refuse(path, unsafe)
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and fmt == "torch-zip")
        except pickle.UnpicklingError as e:
            found = re.findall(r"GLOBAL (\S+) was not an allowed global", str(e))
            found += re.findall(r"unsupported GLOBAL (\S+) whose module", str(e))
            raise _refuse(path, found, "" if found else str(e).strip().splitlines()[-1][:200]) from None
        except (EOFError, RuntimeError, zipfile.BadZipFile, OSError) as e:
            raise _damaged(path, e) from None


def _check_zip(path: str):
    """The zip's table of contents: a torch.save archive has '<folder>/data.pkl' and no TorchScript code."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        raise CheckpointError(f"checkpoint {_name(path)} is truncated or damaged (the zip's table of contents at its "
                              f"end is missing or broken); download it again") from None
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        raise CheckpointError(f"{_name(path)} is a TorchScript archive (a compiled program), not a checkpoint of "
                              f"weights; it is not loaded")
    if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        raise CheckpointError(f"{_name(path)} is a zip archive without a PyTorch checkpoint inside (no data.pkl)")


def _damaged(path: str, err: Exception) -> CheckpointError:
    text = str(err).strip()
    msg = text.splitlines()[0].split(". ")[0][:160] if text else type(err).__name__
    return CheckpointError(f"checkpoint {_name(path)} is truncated or damaged ({msg}); download it again")


def _unwrap(obj, path: str) -> tuple[dict, str, list]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{_name(path)} holds a {type(obj).__name__}, not a state dict: not a model checkpoint")
    layout = "plain"
    if isinstance(obj.get("state_dict"), Mapping):
        obj, layout = obj["state_dict"], "state_dict"
    elif isinstance(obj.get("module"), Mapping):
        obj, layout = obj["module"], "deepspeed"
    elif isinstance(obj.get("model"), Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        obj, layout = obj["model"], "model"  # {"model": ..., "optimizer": ...} training saves (MiDaS accepts them)
    sd, non_tensor = {}, []
    for k, v in obj.items():
        if isinstance(k, str) and isinstance(v, torch.Tensor):
            sd[k] = v
        else:
            non_tensor.append(str(k))
    if layout == "deepspeed" and sd:
        first = next(iter(sd))
        prefix = DEEPSPEED_PREFIX if first.startswith(DEEPSPEED_PREFIX) else first[:16]
        if all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd, layout, non_tensor


def read_checkpoint(path, dtype: str = "keep") -> RawCheckpoint:
    """Every tensor of a checkpoint under its official name (wrappers and the DeepSpeed prefix removed).

    dtype "keep" returns lazily memory-mapped tensors; "fp16"/"bf16"/"fp32" casts floating tensors one at a time
    (schedule buffers excepted).
    """
    path = os.fspath(path)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    target = DTYPES[dtype]
    fmt = _sniff(path)
    metadata = {}
    if fmt == "safetensors":
        from safetensors import SafetensorError, safe_open
        try:
            # pread: each tensor gets its own buffer, freed once cast; mmap: zero-copy views read on demand.
            with safe_open(path, framework="pt", device="cpu", backend="mmap" if target is None else "pread") as f:
                metadata = dict(f.metadata() or {})
                sd = {}
                for k in f.keys():
                    sd[k] = cast_tensor(k, f.get_tensor(k), target)
        except SafetensorError as e:
            raise _damaged(path, e) from None
        return RawCheckpoint(path, sd, fmt, "safetensors", metadata, [])
    obj = _torch_load(path, fmt, mmap=target is None)
    sd, layout, non_tensor = _unwrap(obj, path)
    del obj
    if target is not None:
        for k in list(sd):
            sd[k] = cast_tensor(k, sd[k], target)
    return RawCheckpoint(path, sd, fmt, layout, metadata, non_tensor)


def cast_dtype(key: str, t: torch.Tensor, target) -> torch.dtype:
    """The dtype `cast_tensor` gives: floating weights take `target`; integers and schedule buffers keep theirs."""
    if target is None or not t.is_floating_point() or key in SCHEDULE_KEYS:
        return t.dtype
    return target


def cast_tensor(key: str, t: torch.Tensor, target) -> torch.Tensor:
    dtype = cast_dtype(key, t, target)
    return t if dtype == t.dtype else t.to(dtype)


def split_components(sd: Mapping) -> tuple[dict, dict, list]:
    """{component: {key without prefix: tensor}}, schedule buffers, ignored keys (framestride_embed renamed)."""
    parts = {name: {} for name in PREFIXES}
    schedule, ignored = {}, []
    order = sorted(PREFIXES.items(), key=lambda kv: -len(kv[1]))
    for k, v in sd.items():
        for name, prefix in order:
            if k.startswith(prefix):
                parts[name][k[len(prefix):]] = v
                break
        else:
            if k in SCHEDULE_KEYS:
                schedule[k] = v
            else:
                ignored.append(k)
    parts["unet"] = unet_keys(parts["unet"], prefix="")
    return parts, schedule, ignored


def _has_temporal_layers(unet: Mapping) -> bool:
    return any(".temopral_conv." in k or k.startswith("init_attn.") or re.match(r"(input|output)_blocks\.\d+\.2\."
               r"transformer_blocks\.", k) or re.match(r"middle_block\.2\.transformer_blocks\.", k) for k in unet)


def _no_unet_error(path: str, sd: Mapping, raw: RawCheckpoint) -> CheckpointError:
    if not sd:
        return CheckpointError(f"{_name(path)} holds no tensors ({raw.layout} layout"
                               + (f"; other entries: {', '.join(raw.non_tensor[:8])}" if raw.non_tensor else "")
                               + "): not a model checkpoint")
    tops = sorted({k.split(".")[0] for k in sd})
    if any(k.startswith(("down_blocks.", "up_blocks.", "mid_block.")) for k in sd):
        hint = "it looks like a diffusers UNet (down_blocks/up_blocks), a layout this loader does not read"
    elif any(k.startswith(("encoder.", "decoder.", "first_stage_model.")) for k in sd):
        hint = "it looks like a VAE only"
    elif any(k.startswith(("scratch.", "depth_head.", "pretrained.model.")) for k in sd):
        # MiDaS DPT (pretrained.* + scratch.*) and Depth-Anything-V2 (pretrained.* + depth_head.*) layouts.
        hint = "it looks like a depth estimator (MiDaS / Depth-Anything): load it with VP_LoadDepthModel"
    else:
        hint = f"top-level names: {', '.join(tops[:10])}"
    return CheckpointError(
        f"{_name(path)} has no LVDM UNet (expected keys 'model.diffusion_model.*' of a VideoCrafter, "
        f"DynamiCrafter or Make-Your-Video checkpoint); {hint}")


def load_lvdm_checkpoint(path, *, dtype: str = "keep", variant: str = "auto",
                         expect_family: str | Iterable[str] | None = None) -> LVDMCheckpoint:
    """Read, unwrap, split and identify an official LVDM checkpoint. See the module docstring."""
    return identify(read_checkpoint(path, dtype=dtype), variant=variant, expect_family=expect_family)


def identify(raw: RawCheckpoint, *, variant: str = "auto",
             expect_family: str | Iterable[str] | None = None) -> LVDMCheckpoint:
    """Split a read checkpoint into components and find its variant; errors name the file."""
    path = raw.path
    parts, schedule, ignored = split_components(raw.tensors)
    unet = parts["unet"]
    if not unet:
        raise _no_unet_error(path, raw.tensors, raw)
    if not _has_temporal_layers(unet):
        raise CheckpointError(
            f"{_name(path)} holds an image UNet without temporal layers (a Stable Diffusion checkpoint?), not a "
            f"video model; expected a VideoCrafter, DynamiCrafter or Make-Your-Video checkpoint")
    # scale_arr (DynamiCrafter 1024 vs 512) sits next to the UNet keys in the full state dict.
    probe = dict(schedule)
    probe.update({UNET_PREFIX + k: v for k, v in unet.items()})
    try:
        chosen, cfg = variant_for(probe, variant)
        recorded = raw.metadata.get("lvdm_variant")
        if variant in ("", "auto", None) and recorded in VARIANTS and recorded != chosen.name:
            try:  # the choice made when the file was converted, if the keys allow it
                chosen, cfg = variant_for(probe, recorded)
            except UnknownCheckpointError:
                pass
    except UnknownCheckpointError as e:
        raise CheckpointError(f"{_name(path)}: {e}") from None
    if expect_family is not None:
        wanted = (expect_family,) if isinstance(expect_family, str) else tuple(expect_family)
        if chosen.family not in wanted:
            need = " or ".join(FAMILY_TITLES.get(w, w) for w in wanted)
            raise CheckpointError(
                f"{_name(path)} is a {chosen.title} checkpoint; this node needs a {need} model")
    return LVDMCheckpoint(
        path=path, variant=chosen, unet_config=cfg, unet=unet, vae=parts["vae"] or None,
        resampler=parts["resampler"] or None, text_encoder=parts["text_encoder"] or None,
        clip_vision=parts["clip_vision"] or None, schedule=schedule, ignored=ignored + raw.non_tensor,
        format=raw.format, layout=raw.layout, metadata=raw.metadata)


_ST_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
              torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
              torch.bool: "BOOL"}


def write_safetensors(path, specs: Sequence[tuple], produce: Callable[[str], torch.Tensor],
                      metadata: Mapping[str, str] | None = None) -> int:
    """Write a .safetensors file one tensor at a time; returns its size in bytes.

    specs: (name, dtype, shape) in file order; produce(name) returns that tensor when its turn comes, so only one
    tensor needs to exist at once. Hand-written because safetensors' save_file takes every tensor at the same time
    (a dtype-cast conversion would hold the whole cast model). The file is written under a temporary name and
    renamed when complete.
    """
    header, offset = {}, 0
    for name, dtype, shape in specs:
        nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        header[name] = {"dtype": _ST_DTYPES[dtype], "shape": [int(d) for d in shape],
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    tmp = os.fspath(path) + ".partial"
    try:
        with open(tmp, "wb") as f:
            f.write(len(blob).to_bytes(8, "little"))
            f.write(blob)
            for name, dtype, shape in specs:
                t = produce(name)
                if t.dtype != dtype or tuple(t.shape) != tuple(shape):
                    raise ValueError(f"{name}: produced {t.dtype} {tuple(t.shape)}, announced {dtype} {tuple(shape)}")
                f.write(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return 8 + len(blob) + offset
