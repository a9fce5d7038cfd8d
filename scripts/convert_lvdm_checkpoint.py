#!/usr/bin/env python
"""Convert an official LVDM checkpoint (.ckpt/.pt/.pth/.bin) to .safetensors.

    python scripts/convert_lvdm_checkpoint.py model.ckpt [out.safetensors] [--dtype keep|fp16|bf16|fp32]
        [--variant auto|<name>]

The file is read the safe way the pack always reads it (pipelines/lvdm/checkpoint.py: weights_only, memory-mapped)
and must hold an LVDM UNet. Lightning/DeepSpeed wrappers are removed, but every key keeps its original name
(`model.diffusion_model.*`, `first_stage_model.*`, ..., schedule buffers, even DynamiCrafter 256's
`framestride_embed`), so the pack's loader and the official code (after `safetensors.torch.load_file`) both read
the result. Tensors are written one at a time; `--dtype` casts floating weights on the way (schedule buffers stay
as stored). The header metadata records the variant, the source file name and layout, and the dtype.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from pipelines.lvdm.checkpoint import (
    DTYPES,
    CheckpointError,
    cast_dtype,
    cast_tensor,
    identify,
    read_checkpoint,
    write_safetensors,
)
from pipelines.lvdm.config import VARIANTS


def convert(src: str, dst: str | None = None, dtype: str = "keep", variant: str = "auto") -> dict:
    raw = read_checkpoint(src)                       # lazy, memory-mapped: nothing is read yet
    ck = identify(raw, variant=variant)              # validates: an LVDM UNet must be there
    if dst is None:
        dst = os.path.splitext(src)[0] + ("" if dtype == "keep" else f"_{dtype}") + ".safetensors"
    if os.path.abspath(dst) == os.path.abspath(src):
        raise ValueError(f"output {dst!r} would overwrite the input")
    target = DTYPES[dtype]
    specs = [(k, cast_dtype(k, t, target), tuple(t.shape)) for k, t in raw.tensors.items()]
    metadata = {"format": "pt", "lvdm_variant": ck.variant.name, "lvdm_family": ck.variant.family,
                "source_file": os.path.basename(src), "source_layout": raw.layout, "dtype": dtype,
                "converted_by": "VideoPriors scripts/convert_lvdm_checkpoint.py"}
    tensors = raw.tensors
    size = write_safetensors(dst, specs, lambda k: cast_tensor(k, tensors[k], target), metadata)
    return {"output": dst, "bytes": size, "tensors": len(specs), "variant": ck.variant.name, "layout": raw.layout,
            "extra": [k for k in ck.ignored if k in tensors]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst", nargs="?", default=None)
    ap.add_argument("--dtype", choices=list(DTYPES), default="keep")
    ap.add_argument("--variant", choices=["auto", *VARIANTS], default="auto",
                    help="record this variant (only among those sharing the file's key layout)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        info = convert(args.src, args.dst, args.dtype, args.variant)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {info['output']}: {info['tensors']} tensors, {info['bytes'] / 1e9:.2f} GB, {info['variant']} "
          f"(from a {info['layout']} file) in {time.perf_counter() - t0:.1f} s")
    if info["extra"]:
        print(f"kept {len(info['extra'])} keys outside the known components, e.g. {info['extra'][:3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
