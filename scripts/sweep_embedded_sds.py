#!/usr/bin/env python
"""Small sweep of LiveSketch's score-distillation settings for the embedded prior.

    python scripts/sweep_embedded_sds.py [--prior FOLDER] [--directions left,clockwise] [--seeds 0,6,8]
        [--jobs 2] [--out bench/results/embedded_prior_sds_sweep.json] [--grid default|wide] [--configs JSON]

Each configuration (a dict of `DistillSettings` fields over the defaults of
scripts/eval_embedded_prior.py) animates tuning sketches `--seeds` (indices into
`tuning_sketches()`, random sketches of another seed than the evaluation's, with held-out-style
prompts of another prompt seed: settings are not tuned on what is evaluated; `--eval-set` uses the
evaluation's own sketches and prompts instead) for every direction, and is
scored by the evaluation's `direction_matches`; the summary ranks configurations by matches, then
by the mean signed motion along the asked direction ("progress": displacement in canvas
fractions / rotation in units of 30 degrees / log-scale in units of log 1.3, positive = the
prompt's way). `--jobs` worker processes with one torch thread each share the runs.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (ROOT, os.path.join(ROOT, "scripts")):
    if p not in sys.path:
        sys.path.insert(0, p)

import eval_embedded_prior as ev

#: the default grid: the reference's global rate and larger ones (with at most 200 iterations the
#: reference's 1e-4 cannot move the drawing far, even under direct supervision of the points),
#: guidance, the local rate, t range, augmentation.
GRIDS = {
    "default": [
        {"guidance": 30.0, "global_lr": 1e-4, "local_lr": 5e-3},
        {"guidance": 30.0, "global_lr": 1e-3, "local_lr": 5e-3},
        {"guidance": 30.0, "global_lr": 5e-3, "local_lr": 5e-3},
        {"guidance": 30.0, "global_lr": 1e-2, "local_lr": 1e-3},
        {"guidance": 30.0, "global_lr": 2e-2, "local_lr": 1e-3},
        {"guidance": 10.0, "global_lr": 1e-2, "local_lr": 1e-3},
        {"guidance": 20.0, "global_lr": 1e-2, "local_lr": 1e-3},
        {"guidance": 30.0, "global_lr": 1e-2, "local_lr": 5e-3},
        {"guidance": 30.0, "global_lr": 1e-2, "local_lr": 1e-3, "augment": False},
        {"guidance": 30.0, "global_lr": 1e-2, "local_lr": 1e-3, "t_min": 200, "t_max": 800},
    ],
    "wide": [
        {"guidance": g, "global_lr": lr, "iterations": it}
        for g in (5.0, 10.0, 20.0, 30.0) for lr in (1e-4, 1e-3, 1e-2) for it in (100, 200)
    ],
}


def progress(direction: str, r: dict) -> float:
    """Signed motion along `direction` (positive = the prompt's way), ~1 for a clearly visible motion."""
    sign = {"left": (-1, "dx"), "right": (1, "dx"), "up": (-1, "dy"), "down": (1, "dy")}
    if direction in sign:
        s, key = sign[direction]
        return s * r[key] / 0.15
    if direction in ("clockwise", "counterclockwise"):
        return (1 if direction == "clockwise" else -1) * r["rotation"] / 30.0
    return (1 if direction == "grow" else -1) * math.log(max(r["scale"], 1e-6)) / math.log(1.3)


_PRIOR = None
_SKETCHES = None


_PROMPT_SEED = ev.TUNING_PROMPT_SEED


def _init(prior_dir: str, eval_set: bool = False) -> None:
    global _PRIOR, _SKETCHES, _PROMPT_SEED
    _PRIOR = ev.worker_prior(prior_dir)
    _SKETCHES = ev.heldout_sketches() if eval_set else ev.tuning_sketches()
    _PROMPT_SEED = ev.DISTILL_PROMPT_SEED if eval_set else ev.TUNING_PROMPT_SEED


def _run(job: tuple) -> dict:
    ci, cfg, direction, seed = job
    name, sketch, subject = _SKETCHES[seed % len(_SKETCHES)]
    prompt = ev.heldout_prompt(direction, seed, _PROMPT_SEED, subject)
    settings = ev.DistillSettings(**{**ev.dataclasses.asdict(ev.DistillSettings()), **cfg})
    r = ev.distill_run(_PRIOR, sketch, prompt, settings, seed=1000 + seed)
    r.update(config=ci, direction=direction, seed=seed, sketch=name, prompt=prompt,
             match=ev.direction_matches(direction, r), progress=progress(direction, r))
    return r


def summarise(configs: list, runs: list) -> list:
    rows = []
    for ci, cfg in enumerate(configs):
        rs = [r for r in runs if r["config"] == ci]
        if not rs:
            continue
        rows.append({"config": cfg, "matches": sum(r["match"] for r in rs), "runs": len(rs),
                     "mean_progress": round(statistics.fmean(r["progress"] for r in rs), 3),
                     "mean_abs_motion": round(statistics.fmean(abs(r["progress"]) for r in rs), 3),
                     "seconds_per_run": round(statistics.fmean(r["seconds"] for r in rs), 1),
                     "per_direction": {d: sum(r["match"] for r in rs if r["direction"] == d)
                                       for d in dict.fromkeys(r["direction"] for r in rs)}})
    return sorted(rows, key=lambda r: (-r["matches"], -r["mean_progress"]))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prior", default=None)
    p.add_argument("--directions", default="left,clockwise")
    p.add_argument("--seeds", default="0,1,2", help="sketch / seed indices")
    p.add_argument("--grid", choices=sorted(GRIDS), default="default")
    p.add_argument("--configs", default=None, help="JSON list of setting dicts (instead of --grid)")
    p.add_argument("--iterations", type=int, default=150, help="unless a configuration sets it")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--eval-set", action="store_true", help="the evaluation's sketches and prompts (not for tuning)")
    p.add_argument("--out", default=os.path.join("bench", "results", "embedded_prior_sds_sweep.json"))
    args = p.parse_args(argv)
    configs = json.loads(args.configs) if args.configs else GRIDS[args.grid]
    configs = [{"iterations": args.iterations, **c} for c in configs]
    directions = [d for d in args.directions.split(",") if d]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    jobs = [(ci, cfg, d, s) for ci, cfg in enumerate(configs) for d in directions for s in seeds]
    folder = os.path.abspath(args.prior or ev.EMBEDDED_PRIOR_DIR)
    t0 = time.perf_counter()
    runs = []
    with mp.get_context("spawn").Pool(args.jobs, initializer=_init, initargs=(folder, args.eval_set)) as pool:
        for r in pool.imap_unordered(_run, jobs):
            runs.append(r)
            print(f"[{len(runs)}/{len(jobs)}] config {r['config']} {r['direction']:>16} {r['sketch']:>13} "
                  f"{'ok' if r['match'] else 'NO'} progress {r['progress']:+.2f} ({r['seconds']:.0f} s)", flush=True)
    table = summarise(configs, runs)
    for row in table:
        print(f"{row['matches']:>2}/{row['runs']}  progress {row['mean_progress']:+.2f}  |motion| "
              f"{row['mean_abs_motion']:.2f}  {row['seconds_per_run']:>5.0f} s/run  {json.dumps(row['config'])}")
    report = {"prior": ev.model_summary(folder), "directions": directions, "seeds": seeds,
              "set": "evaluation" if args.eval_set else "tuning",
              "defaults": ev.dataclasses.asdict(ev.DistillSettings()), "ranking": table, "runs": runs,
              "seconds": round(time.perf_counter() - t0, 1), "git": ev.git_commit()}
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
