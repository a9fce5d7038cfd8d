"""Loading a full-size LVDM checkpoint: seconds and peak RSS relative to the file size.

A random-weight VideoCrafter2 512 file (UNet + VAE, every key and shape of
shared/checkpoint-manifests/vc2_512.txt, fp16) is written tensor by tensor under a temporary folder, as a
`.safetensors` and as a Lightning-style `.ckpt` ({"state_dict": ...}, torch zip). Each case then runs in a fresh
process (clean peak RSS) after the file's pages were dropped from the page cache (posix_fadvise DONTNEED: a cold
read): `load_lvdm_checkpoint` alone ("load", lazy memory map), then reading every tensor once ("touched": what
copying the weights into a model costs on the file side), for dtype keep and a bf16 cast; and the convert script
(.ckpt -> .safetensors); and the whole node path, comfy_model.load_lvdm_checkpoint -> core MODEL + VAE, in the
file's dtype (fp16) and in ComfyUI's choice for the device ("auto": float32 on a CPU, a cast). RSS figures are the process peak (VmHWM of the child) and the same minus the RSS after
importing torch and the pack (the loader's own share). The files are deleted afterwards. Nothing is asserted (the tests check
behaviour); figures are printed and written to bench/results/lvdm_load.json.

Usage: python bench/bench_lvdm_load.py [--dir /tmp] [--keep-files] [--out bench/results/lvdm_load.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

MANIFEST_CANDIDATES = [os.environ.get("VP_MANIFESTS", ""), "/work/shared/checkpoint-manifests"]


def _manifest() -> str:
    for d in MANIFEST_CANDIDATES:
        p = os.path.join(d, "vc2_512.txt") if d else ""
        if p and os.path.isfile(p):
            return p
    sys.exit("vc2_512.txt not found: set VP_MANIFESTS to the checkpoint-manifests folder")


def _rss_peak() -> int:
    # VmHWM, the peak RSS of this process image. ru_maxrss would not do: Linux carries it over fork+exec, so a
    # child would report the parent's peak (here the file writer's) whenever that is higher.
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _drop_cache(path: str):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def write_files(folder: str) -> dict:
    import torch

    from pipelines.lvdm.checkpoint import read_checkpoint, write_safetensors
    from pipelines.lvdm.config import shapes_from_manifest

    with open(_manifest()) as f:
        shapes = {k: s for k, s in shapes_from_manifest(f).items()
                  if k.startswith(("model.diffusion_model.", "first_stage_model."))}
    gen = torch.Generator().manual_seed(0)

    def produce(name):
        return torch.empty(shapes[name], dtype=torch.float16).normal_(0, 0.02, generator=gen)

    st = os.path.join(folder, "vc2_random.safetensors")
    t0 = time.perf_counter()
    write_safetensors(st, [(k, torch.float16, s) for k, s in shapes.items()], produce, {"format": "pt"})
    st_s = time.perf_counter() - t0
    ck = os.path.join(folder, "vc2_random.ckpt")
    t0 = time.perf_counter()
    torch.save({"state_dict": read_checkpoint(st).tensors, "epoch": 0, "global_step": 0}, ck)  # from the mmap
    ck_s = time.perf_counter() - t0
    return {"tensors": len(shapes), "params": sum(int(torch.Size(s).numel()) for s in shapes.values()),
            "safetensors": st, "ckpt": ck, "write_safetensors_s": round(st_s, 1), "write_ckpt_s": round(ck_s, 1)}


def run_case(path: str, dtype: str, mode: str) -> dict:
    """In the child: load (and touch), report seconds and RSS."""
    import torch

    torch.set_num_threads(1)
    import convert_lvdm_checkpoint
    from pipelines.lvdm.checkpoint import load_lvdm_checkpoint

    if mode == "comfy":
        return run_comfy_case(path, dtype)
    base = _rss_now()
    t0 = time.perf_counter()
    if mode == "convert":
        out = path + ".converted.safetensors"
        convert_lvdm_checkpoint.convert(path, out, dtype=dtype)
        seconds = time.perf_counter() - t0
        os.remove(out)
        return {"seconds": round(seconds, 2), "baseline_rss": base, "peak_rss": _rss_peak()}
    ck = load_lvdm_checkpoint(path, dtype=dtype)
    load_s = time.perf_counter() - t0
    after_load = _rss_now()
    touched_s = None
    if mode == "touched":
        total = 0.0
        for part in ck.components().values():
            for t in part.values():
                total += float(t.float().sum()) if t.numel() < 2 ** 20 else float(t.sum(dtype=torch.float32))
        touched_s = time.perf_counter() - t0
    return {"load_s": round(load_s, 2), "touched_s": None if touched_s is None else round(touched_s, 2),
            "variant": ck.variant.name, "baseline_rss": base, "rss_after_load": after_load,
            "peak_rss": _rss_peak()}


def run_comfy_case(path: str, dtype: str) -> dict:
    """The whole node path: comfy_model.load_lvdm_checkpoint -> core MODEL (UNet weights in place) + VAE."""
    from comfy_runtime import comfyui_dir

    sys.path.insert(0, comfyui_dir())
    from comfy.cli_args import args as comfy_args

    comfy_args.cpu = True
    import comfy.model_management  # noqa: F401

    from pipelines.lvdm.comfy_model import load_lvdm_checkpoint

    import torch

    base = _rss_now()
    t0 = time.perf_counter()
    patcher, _clip, vae, _clip_vision, _resampler, variant = load_lvdm_checkpoint(
        path, dtype={"keep": None, "bf16": torch.bfloat16, "fp16": torch.float16}.get(dtype))
    seconds = time.perf_counter() - t0
    weights = sum(p.numel() * p.element_size() for p in patcher.model.parameters())
    return {"load_s": round(seconds, 2), "touched_s": None, "variant": variant.name, "baseline_rss": base,
            "rss_after_load": _rss_now(), "peak_rss": _rss_peak(), "unet_weight_bytes": weights,
            "unet_dtype": str(next(patcher.model.parameters()).dtype), "vae": vae is not None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--keep-files", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "lvdm_load.json"))
    ap.add_argument("--case", nargs=3, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(*args.case)))
        return
    folder = tempfile.mkdtemp(prefix="vp_lvdm_bench_", dir=args.dir)
    try:
        files = write_files(folder)
        results = {"files": {k: v for k, v in files.items() if k not in ("safetensors", "ckpt")}, "cases": {}}
        for fmt in ("safetensors", "ckpt"):
            path = files[fmt]
            size = os.path.getsize(path)
            results["files"][f"{fmt}_bytes"] = size
            for dtype, mode in [("keep", "load"), ("keep", "touched"), ("bf16", "touched"), ("keep", "convert"),
                                ("fp16", "comfy"), ("keep", "comfy")]:
                if mode == "convert" and fmt != "ckpt":
                    continue
                _drop_cache(path)
                out = subprocess.run([sys.executable, __file__, "--case", path, dtype, mode], cwd=ROOT,
                                     capture_output=True, text=True)
                if out.returncode != 0:
                    raise SystemExit(f"case {fmt} {dtype} {mode} failed:\n{out.stderr[-3000:]}")
                r = json.loads(out.stdout.strip().splitlines()[-1])
                r["file_bytes"] = size
                r["peak_rss_over_file"] = round(r["peak_rss"] / size, 3)
                r["loader_rss_over_file"] = round((r["peak_rss"] - r["baseline_rss"]) / size, 3)
                name = f"{fmt}_{mode}" + ("" if dtype == "keep" else f"_{dtype}")
                if mode == "comfy" and dtype == "keep":
                    name = f"{fmt}_comfy_auto"  # ComfyUI's dtype choice for the device (CPU: float32, a cast)
                results["cases"][name] = r
                secs = (r.get("touched_s") or r.get("load_s")) if mode != "convert" else r["seconds"]
                print(f"{name:28s} {secs:7.2f} s  peak RSS {r['peak_rss'] / 2 ** 30:5.2f} GiB = "
                      f"{r['peak_rss_over_file']:.2f}x file ({r['loader_rss_over_file']:.2f}x above the "
                      f"{r['baseline_rss'] / 2 ** 30:.2f} GiB after imports)"
                      + (f"; load alone {r['load_s']} s" if mode == "touched" else ""), flush=True)
        gib = results["files"]["safetensors_bytes"] / 2 ** 30
        print(f"file: {files['tensors']} tensors, {files['params'] / 1e9:.2f} B params, {gib:.2f} GiB fp16")
    finally:
        if not args.keep_files:
            shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
