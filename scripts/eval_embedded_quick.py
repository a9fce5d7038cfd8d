#!/usr/bin/env python
"""Quick evaluation of the embedded prior: DDIM samples per directional motion + LiveSketch SDS runs.

    python scripts/eval_embedded_quick.py [--folder pipelines/assets/embedded_prior] [--per-split 3]
        [--steps 30] [--guidance 6] [--sds-seeds 1] [--sds-iters 150] [--out eval.json]

Sampling: for each motion in DIRECTIONAL, `--per-split` train and held-out captions
(`caption(motion, seed, split)`), DDIM from pure noise, each clip classified with
`measure_motion_from_frames` + `classify_motion`; per-class accuracy per split.
SDS: `animate_sketch` on held-out sketches (`random_sketch` seeds 9000+), prompts "it moves to
the left" / "to the right"; the direction is read from the control points (`measure_motion`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipelines.embedded.data import (DIRECTIONAL, caption, classify_motion, measure_motion,  # noqa: E402
                                     measure_motion_from_frames, random_sketch)
from pipelines.embedded.prior import load_embedded_prior, sample_clips  # noqa: E402


def eval_sampling(prior, per_split: int, steps: int, guidance: float, seed: int = 0) -> dict:
    result = {}
    for split in ("train", "heldout"):
        prompts, labels = [], []
        for m in DIRECTIONAL:
            for i in range(per_split):
                prompts.append(caption(m, 100 + i, split))
                labels.append(m)
        clips = sample_clips(prior, prompts, steps, guidance, seed)
        preds = [classify_motion(measure_motion_from_frames(c)) for c in clips]
        per_class = {m: sum(p == m for p, l in zip(preds, labels) if l == m) / per_split for m in DIRECTIONAL}
        result[split] = {"accuracy": sum(p == l for p, l in zip(preds, labels)) / len(labels), "per_class": per_class,
                         "samples": [{"prompt": p, "motion": l, "predicted": q} for p, l, q in zip(prompts, labels, preds)]}
        print(f"[{split}] accuracy {result[split]['accuracy']:.2f}  " +
              " ".join(f"{m}:{a:.2f}" for m, a in per_class.items()), flush=True)
    return result


def sds_run(prior, prompt: str, sketch_seed: int, iterations: int, guidance: float, augment: bool, fused: bool):
    from pipelines.livesketch import AnimateConfig, MotionModelConfig, SDSConfig, animate_sketch

    sketch = random_sketch(sketch_seed, 256, width_range=(0.7 / 32, 1.6 / 32))
    t0 = time.time()
    res = animate_sketch(sketch, prior, prior.encode_prompt(prompt), MotionModelConfig(num_frames=prior.num_frames),
                         SDSConfig(prompt=prompt, guidance_local=guidance, guidance_global=guidance, augment=augment),
                         AnimateConfig(iterations=iterations, seed=sketch_seed, fused=fused,
                                       render_size=prior.height))
    m = measure_motion(res.animation)
    return {"prompt": prompt, "sketch_seed": sketch_seed, "dx": m["dx"], "dy": m["dy"], "rotation": m["rotation"],
            "scale": m["scale"], "class": classify_motion(m), "seconds": round(time.time() - t0, 1),
            "passes": res.times.passes}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--folder", default=None)
    p.add_argument("--per-split", type=int, default=3)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--guidance", type=float, default=6.0)
    p.add_argument("--sds-seeds", type=int, default=1)
    p.add_argument("--sds-iters", type=int, default=150)
    p.add_argument("--sds-guidance", type=float, default=30.0)
    p.add_argument("--sds-augment", type=int, default=1)
    p.add_argument("--sds-fused", type=int, default=1)
    p.add_argument("--skip-sampling", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    prior = load_embedded_prior(args.folder)
    report = {"args": vars(args)}
    if not args.skip_sampling:
        t0 = time.time()
        report["sampling"] = eval_sampling(prior, args.per_split, args.steps, args.guidance)
        report["sampling"]["seconds"] = round(time.time() - t0, 1)
    runs = []
    for s in range(args.sds_seeds):
        for direction in ("left", "right"):
            r = sds_run(prior, f"it moves to the {direction}", 9000 + s, args.sds_iters, args.sds_guidance,
                        bool(args.sds_augment), bool(args.sds_fused))
            r["ok"] = (r["dx"] < 0) == (direction == "left")
            runs.append(r)
            print("SDS", json.dumps(r), flush=True)
    report["sds"] = runs
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
