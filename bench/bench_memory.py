"""Memory of previews, renders and sampling: estimated before allocating, and measured.

Cases:
- preview_lines: the issue's hostile preview, N <line> elements (default 50,000) loaded at canvas
  256 and rendered as VP_LoadSVGSketch's preview with render_bounded (512 MB budget); its process peak
  RSS, tracked tensor peak and time, next to the estimate of one untiled rasterize call;
- render_256x2048: the output VP_RasterizeSketch would need for 256 frames at 2048x2048;
- sample_64x512: estimate_sampling_bytes of the embedded prior for 64 frames at 512x512.
Each heavy case runs in its own process (clean peak RSS). Nothing here is asserted (see
tests/test_render_budget.py); figures are printed and written to bench/results/memory.json.

Usage: python bench/bench_memory.py [--lines 50000] [--out bench/results/memory.json]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pipelines import render_budget as rb  # noqa: E402


def preview_lines(n: int) -> dict:
    from pipelines.priors.diffusers_prior import LiveTensorMemory
    from pipelines.svg import load_svg_sketch

    rnd = random.Random(0)
    els = "".join(f'<line x1="{rnd.uniform(0, 100):.1f}" y1="{rnd.uniform(0, 100):.1f}" '
                  f'x2="{rnd.uniform(0, 100):.1f}" y2="{rnd.uniform(0, 100):.1f}" stroke="black"/>' for _ in range(n))
    t0 = time.perf_counter()
    sketch = load_svg_sketch(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">{els}</svg>',
                             canvas_size=256).sketch
    load_s = time.perf_counter() - t0
    one_call = rb.estimate_render_bytes(sketch.points, sketch.style, (256, 256), (256, 256))
    t0 = time.perf_counter()
    with torch.no_grad(), LiveTensorMemory() as mem:
        rb.render_bounded(sketch.points, sketch.style, (256, 256), budget=512 * 1024 ** 2)
    render_s = time.perf_counter() - t0  # includes the tracking overhead
    return {"lines": n, "load_s": round(load_s, 2), "render_s_tracked": round(render_s, 2),
            "one_call_estimate_bytes": one_call, "bounded_tensor_peak_bytes": mem.peak,
            "process_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def sample_estimate() -> dict:
    from pipelines.embedded.prior import load_embedded_prior
    from pipelines.sampling import estimate_sampling_bytes

    prior = load_embedded_prior()
    est = estimate_sampling_bytes(prior, prior.encode_prompt("a cat", ""), 64, 512, 512)
    return {"prior": "embedded", "frames": 64, "size": 512, "estimate_bytes": est}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=50000)
    ap.add_argument("--case", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "memory.json"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.case:
        print(json.dumps(preview_lines(args.lines) if args.case == "preview" else sample_estimate()))
        return
    results = {}
    for case in ("preview", "sample"):
        out = subprocess.run([sys.executable, __file__, "--case", case, "--lines", str(args.lines)],
                             capture_output=True, text=True, check=True).stdout
        results[case] = json.loads(out.strip().splitlines()[-1])
    results["render_256x2048"] = {"frames": 256, "size": 2048, "output_bytes": rb.output_bytes(256, 2048, 2048)}
    p = results["preview"]
    print(f"preview of {p['lines']} lines at 256: load {p['load_s']} s; one rasterize call would need "
          f"{rb.gib(p['one_call_estimate_bytes'])}; tiled: tensor peak {rb.gib(p['bounded_tensor_peak_bytes'])}, "
          f"process peak RSS {rb.gib(p['process_peak_rss_bytes'])}, {p['render_s_tracked']} s (tracked)")
    print(f"VP_RasterizeSketch 256 frames at 2048x2048: output {rb.gib(results['render_256x2048']['output_bytes'])}")
    print(f"VP_SampleVideo embedded 64 frames at 512x512: estimated {rb.gib(results['sample']['estimate_bytes'])}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
