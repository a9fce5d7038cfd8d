"""LiveSketch iteration cost on CPU: K=24 frames, N=64 control points, 256x256, tiny prior.

Prints the per-iteration split (model / rasterize / augment / encode / prior / backward /
optimizer) for the two-pass and the fused schedule, "our part" of an iteration (model,
both passes' rasterization of 24 frames and the backward through them, measured with a
pooling encoder whose cost is negligible), the peak memory of each run (fresh process,
ru_maxrss), and the peak memory of the chunked vs all-at-once VAE encode.
Writes bench/results/livesketch.json.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

K, N_POINTS, SIZE = 24, 64, 256
ITERS = int(os.environ.get("VP_BENCH_ITERS", "3"))


def bench_sketch():
    import torch

    from pipelines.sketch import Sketch, make_style

    # 16 open strokes of one cubic each: 16 * 4 = 64 control points.
    gen = torch.Generator().manual_seed(0)
    pts = []
    for _ in range(16):
        p0 = torch.rand(2, generator=gen) * 160 + 48
        p3 = p0 + torch.randn(2, generator=gen) * 40
        pts += [p0, p0 + (p3 - p0) / 3 + torch.randn(2, generator=gen) * 10,
                p0 + 2 * (p3 - p0) / 3 + torch.randn(2, generator=gen) * 10, p3]
    return Sketch(torch.stack(pts), make_style([1] * 16, [False] * 16, stroke_width=2.0), SIZE, SIZE)


def run_case(kind: str, fused: bool, prior_dir: str | None) -> dict:
    import torch

    from pipelines.livesketch import AnimateConfig, MotionModelConfig, SDSConfig, animate_sketch

    torch.set_num_threads(2)
    sketch = bench_sketch()
    if kind == "pool":
        from toy_prior import TargetPrior
        from pipelines.raster import rasterize

        target = rasterize(sketch.points.expand(K, -1, -1), sketch.style, (SIZE, SIZE)).permute(0, 3, 1, 2)
        prior = TargetPrior(target)
    else:
        from pipelines.priors.diffusers_prior import DiffusersVideoPrior

        prior = DiffusersVideoPrior.from_folder(prior_dir, dtype=torch.float32, device="cpu")
    embeds = prior.encode_prompt("a drawing sways")
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cfg = AnimateConfig(iterations=1, seed=0, fused=fused, render_size=SIZE)
    model_cfg = MotionModelConfig(num_frames=K)
    animate_sketch(sketch, prior, embeds, model_cfg, SDSConfig(), cfg)  # warm-up
    cfg.iterations = ITERS
    t0 = time.perf_counter()
    res = animate_sketch(sketch, prior, embeds, model_cfg, SDSConfig(), cfg)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    per_iter = {k: v / ITERS for k, v in res.times.as_dict().items() if k not in ("passes", "iterations")}
    ours = per_iter["model"] + per_iter["rasterize"] + per_iter["augment"] + per_iter["backward"]
    return {"kind": kind, "fused": fused, "iterations": ITERS, "seconds_per_iteration": wall / ITERS,
            "split_per_iteration": per_iter, "prior_passes_per_iteration": res.times.passes / ITERS,
            "our_part_seconds_per_iteration": ours if kind == "pool" else None,
            "peak_rss_mb": peak / 1024, "rss_growth_mb": (peak - base_rss) / 1024}


def encode_memory(prior_dir: str) -> dict:
    import torch

    from pipelines.priors.diffusers_prior import DiffusersVideoPrior, encode_memory_report

    prior = DiffusersVideoPrior.from_folder(prior_dir, dtype=torch.float32, device="cpu")
    frames = torch.rand(K, 3, SIZE, SIZE)
    return encode_memory_report(prior, frames)


def child(args):
    kind, fused, prior_dir = args[0], args[1] == "1", (args[2] if len(args) > 2 else None)
    out = encode_memory(prior_dir) if kind == "encode_memory" else run_case(kind, fused, prior_dir)
    print(json.dumps(out))


def main():
    import torch

    from pipelines.priors.tiny_models import build_tiny_t2v_folder

    tmp = tempfile.mkdtemp(prefix="vp-bench-")
    prior_dir = os.path.join(tmp, "tiny_t2v")
    # A VAE with the real spatial factor 8 (256x256 frames -> 32x32 latents), as ModelScope has.
    build_tiny_t2v_folder(prior_dir, seed=0, vae_channels=(8, 16, 16, 16), sample_size=32)
    results = {"machine": {"cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()},
               "setup": {"frames": K, "control_points": N_POINTS, "size": SIZE, "iterations_timed": ITERS},
               "cases": []}
    for kind, fused in (("pool", False), ("pool", True), ("tiny_diffusers", False), ("tiny_diffusers", True)):
        out = subprocess.run([sys.executable, __file__, "--child", kind, "1" if fused else "0", prior_dir],
                             capture_output=True, text=True, check=True)
        case = json.loads(out.stdout.strip().splitlines()[-1])
        results["cases"].append(case)
        split = ", ".join(f"{k} {v:.3f}" for k, v in case["split_per_iteration"].items())
        print(f"{kind:15s} fused={fused!s:5s} {case['seconds_per_iteration']:.2f} s/iter "
              f"({case['prior_passes_per_iteration']:.0f} prior passes) [{split}] peak RSS {case['peak_rss_mb']:.0f} MB")
        if case["our_part_seconds_per_iteration"] is not None:
            print(f"    our part (model + rasterize + augment + backward through them): "
                  f"{case['our_part_seconds_per_iteration']:.2f} s/iter (target <= 4 s)")
    out = subprocess.run([sys.executable, __file__, "--child", "encode_memory", "0", prior_dir],
                         capture_output=True, text=True, check=True)
    results["encode_memory"] = json.loads(out.stdout.strip().splitlines()[-1])
    print("VAE encode memory:", results["encode_memory"])
    os.makedirs(os.path.join(REPO, "bench", "results"), exist_ok=True)
    path = os.path.join(REPO, "bench", "results", "livesketch.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    print("wrote", path)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        main()
