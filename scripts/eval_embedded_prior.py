#!/usr/bin/env python
"""Evaluation of the embedded text-to-video prior (`make eval-prior`): sampling and distillation.

    python scripts/eval_embedded_prior.py [--prior FOLDER] [--out bench/results/embedded_prior_eval.json]
        [--quick] [--per-class 10] [--seeds 10] [--iterations 200] [--guidance 30] [--global-lr ...] ...

Everything the model is evaluated on is held out from its training data:

* Prompts are held-out paraphrases, `caption(motion, gen, "heldout")`: verb x complement pairs and
  sentence frames that no training caption has (pipelines/embedded/data.py explains the split).
* Random sketches come from `random_sketch(clip_generator(HELDOUT_SKETCH_SEED, i))`. Training
  draws clip i of data set `data_seed` from `clip_generator(data_seed, i)` (data seeds 1234 and
  4321; the training-time caption probe uses data_seed + 7777 = 9011 / 12098); clip_generator
  hashes (seed, index, stream) with SplitMix64 into a 63-bit torch seed, so a different seed
  gives unrelated generators, not a shifted run of the same ones (no seed*k + i collisions).
  HELDOUT_SKETCH_SEED = 90001 is none of those seeds.
* Hand-drawn sketches: the SVG files in tests/data/sketches/ (a house, a stick figure, a flower,
  a car; 256 canvas, black strokes of width 3), loaded with the pack's SVG loader.

Sampling part. For each of the 12 motions, `--per-class` held-out prompts with varied subjects;
DDIM (`pipelines.sampling.sample_video`, `--sampling-steps`, `--sampling-guidance`) from noise;
each clip's motion is measured from its pixels (`measure_motion_from_frames`) and classified
(`classify_motion`). Reported: per-class accuracy, overall accuracy over all 12 classes and over
the 8 directional ones, and the confusion matrix (rows: prompt's motion, columns: measured).
Target: >= 80 %.

Distillation part. `pipelines.livesketch.animate_sketch` (what VP_AnimateSketch runs) with the
embedded prior, K = the prior's clip length (8 frames), for each of the 8 directions x `--seeds`
seeds; seed s animates held-out sketch s (random sketches first, then the hand-drawn ones, cycling)
with a held-out paraphrase of the direction. The direction is read from the animated sketch's
control points (`measure_motion`) and must pass `direction_matches` (thresholds below).
Target: >= 8 of 10 seeds for every direction. Seconds per run are wall-clock for the whole
`animate_sketch` call on this machine with `--threads` torch threads.

Anchoring part (`--anchoring`, instead of the two parts above; `make eval-anchoring`). The distillation
runs of left, right, clockwise and grow on the six random held-out sketches (same prompts and seeds),
each with anchoring off (the paper's formulation) and on (`pipelines.livesketch.ANCHORING`, as the
workflows use it). Every frame is compared with the input sketch (`fidelity`): frame 0's error,
rotation and scale, the worst frame's shape residual after the best similarity, and the rotation or
scale that the motion class did not ask for. Written as the section "anchoring" of the --out report,
whose other sections are kept; `--finished-only` writes it from the runs an interrupted comparison
finished.

The JSON (see `build_report`) also records the settings, the model folder's training summary,
the git commit and the thread count; `scripts/write_model_card.py` turns it into the model card.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from pipelines.embedded.data import (
    DIRECTIONAL,
    KINDS,
    MOTIONS,
    caption,
    classify_motion,
    clip_generator,
    measure_motion,
    measure_motion_from_frames,
    random_sketch,
)
from pipelines.embedded.prior import EMBEDDED_PRIOR_DIR, load_embedded_prior
from pipelines.sketch import Sketch

SCHEMA = 1
DEFAULT_OUT = os.path.join("bench", "results", "embedded_prior_eval.json")
SKETCH_DIR = os.path.join(ROOT, "tests", "data", "sketches")
#: hand-drawn sketch file -> the subject its prompts use (a noun the training captions know)
HAND_DRAWN = {"house.svg": "the house", "stick_figure.svg": "the stick figure", "flower.svg": "the flower",
              "car.svg": "the car"}

HELDOUT_SKETCH_SEED = 90001  # random held-out sketches: clip_generator(90001, i); see the module docstring
SAMPLING_PROMPT_SEED = 91001  # held-out prompts of the sampling part: clip_generator(91001, i, stream=motion)
DISTILL_PROMPT_SEED = 92001  # held-out prompts of the distillation part
NUM_RANDOM_SKETCHES = 6  # random held-out sketches; with the 4 hand-drawn ones, 10 seeds see 10 sketches
# Settings are tuned (scripts/sweep_embedded_sds.py) on other sketches and prompts than those evaluated:
TUNING_SKETCH_SEED = 93001  # random tuning sketches: clip_generator(93001, i)
TUNING_PROMPT_SEED = 94001  # their held-out-style prompts

SAMPLING_TARGET = 0.8  # fraction of generated clips whose measured motion is the prompt's
DISTILL_TARGET = 8  # of DISTILL_SEEDS seeds, per direction
DISTILL_SEEDS = 10

# "Direction matches" (from control points, `measure_motion` on the canvas): modest thresholds, a
# motion that is visible but far smaller than the training data's (translations of 18-35 % of the
# canvas, rotations of 35-120 deg, scalings x1.35-1.8).
MOVE_THRESHOLD = 0.03  # net centroid displacement, fraction of the canvas side (7.7 px at 256)
ROTATE_THRESHOLD = 5.0  # net rotation, degrees (positive = clockwise on screen)
SCALE_THRESHOLD = 0.05  # net scale: grow > 1 + t, shrink < 1 / (1 + t)

# Random held-out sketches: 256 canvas, drawings 40-55 % of the side (room to move, like the
# training clips, whose drawings are shrunk until the whole motion fits), strokes 2-4 px.
SKETCH_CANVAS = 256
SKETCH_EXTENT = (0.40, 0.55)
SKETCH_WIDTH_PX = (2.0, 4.0)


@dataclasses.dataclass
class DistillSettings:
    """Score-distillation settings of the evaluation, for the embedded prior with at most 200 iterations.

    Global learning rate: the reference's 1e-4 (tuned for 1000 iterations) cannot move a drawing
    far in 200. Fitting the motion model directly to a known translation of 23 % of the canvas
    (a loss on the points, the same optimisers and schedule), 100 iterations reach 7.5 % at 1e-4,
    13.5 % at 5e-3 and all of it at 2e-2. With the shipped prior (which does not follow the
    caption), 1e-4..1e-3 gave motions of a few pixels, 5e-3 visible ones (rotations up to ~15 deg,
    scale 0.8-1.2), and 1e-2 ran away whatever the guidance (the drawing shrank to 8-56 % of its
    size and spun by up to 700 deg), so 5e-3. A local rate of 1e-3 (reference 5e-3) keeps the
    per-point wobble, which no prompt asks for, down. Guidance 30 (10 moved less), t range and
    augmentation are the reference's. Whether the direction follows the prompt could not be tuned
    on a prior that ignores the caption: rerun `scripts/sweep_embedded_sds.py` for a new model.
    """

    iterations: int = 200
    guidance: float = 30.0  # the same for the local and the global pass
    local_lr: float = 1e-3
    global_lr: float = 5e-3
    t_min: int = 50
    t_max: int = 950
    augment: bool = True
    fused: bool = True
    render_size: int = 64  # the prior area-downsamples frames to 32 x 32 itself
    negative_prompt: str = ""
    use_local: bool = True
    # Anchoring (MotionModelConfig.anchor / shape_weight / shape_tolerance): off here, as in the paper and
    # the 8-direction report; the anchoring comparison (--anchoring) runs it on and off.
    anchor: bool = False
    shape_weight: float = 0.0
    shape_tolerance: float = 0.1
    smooth_weight: float = 0.0


def direction_matches(direction: str, m: dict) -> bool:
    """Whether a `measure_motion` dict moves in `direction` (one of DIRECTIONAL).

    left / right / up / down: the displacement along that axis has the right sign, is larger than
    MOVE_THRESHOLD and larger than the displacement along the other axis.
    clockwise / counterclockwise: net rotation beyond +-ROTATE_THRESHOLD degrees.
    grow / shrink: net scale beyond 1 + SCALE_THRESHOLD or below 1 / (1 + SCALE_THRESHOLD).
    """
    dx, dy = m["dx"], m["dy"]
    if direction == "left":
        return dx < -MOVE_THRESHOLD and abs(dx) > abs(dy)
    if direction == "right":
        return dx > MOVE_THRESHOLD and abs(dx) > abs(dy)
    if direction == "up":
        return dy < -MOVE_THRESHOLD and abs(dy) > abs(dx)
    if direction == "down":
        return dy > MOVE_THRESHOLD and abs(dy) > abs(dx)
    if direction == "clockwise":
        return m["rotation"] > ROTATE_THRESHOLD
    if direction == "counterclockwise":
        return m["rotation"] < -ROTATE_THRESHOLD
    if direction == "grow":
        return m["scale"] > 1.0 + SCALE_THRESHOLD
    if direction == "shrink":
        return m["scale"] < 1.0 / (1.0 + SCALE_THRESHOLD)
    raise ValueError(f"not a directional motion: {direction!r}; choose one of {', '.join(DIRECTIONAL)}")


# ---------------------------------------------------------------------------------------------
# Held-out material


def heldout_random_sketch(index: int, seed: int = HELDOUT_SKETCH_SEED) -> Sketch:
    """Random held-out sketch `index`: kind cycles through KINDS, 5..12 strokes (see module docstring)."""
    gen = clip_generator(seed, index)
    lo, hi = SKETCH_WIDTH_PX
    return random_sketch(gen, SKETCH_CANVAS, kind=KINDS[index % len(KINDS)], num_strokes=5 + (index * 3) % 8,
                         extent=SKETCH_EXTENT, width_range=(lo / SKETCH_CANVAS, hi / SKETCH_CANVAS))


def hand_drawn_sketch(name: str) -> Sketch:
    """A hand-drawn SVG of tests/data/sketches on a 256 canvas, as drawn (fit=False), black strokes."""
    from pipelines.svg import load_svg_sketch

    with open(os.path.join(SKETCH_DIR, name), "rb") as f:
        return load_svg_sketch(f.read(), SKETCH_CANVAS, fit=False, force_black=True).sketch


def heldout_sketches(num_random: int = NUM_RANDOM_SKETCHES) -> list[tuple[str, Sketch, str | None]]:
    """(name, sketch, subject or None) for the random held-out sketches then the hand-drawn ones."""
    out: list[tuple[str, Sketch, str | None]] = [
        (f"random-{i}", heldout_random_sketch(i), None) for i in range(num_random)]
    out += [(name[:-4], hand_drawn_sketch(name), subject) for name, subject in HAND_DRAWN.items()]
    return out


def tuning_sketches(num: int = 8) -> list[tuple[str, Sketch, str | None]]:
    """Random sketches for tuning the distillation settings, none of them evaluated (TUNING_SKETCH_SEED)."""
    return [(f"tune-{i}", heldout_random_sketch(i, TUNING_SKETCH_SEED), None) for i in range(num)]


def heldout_prompt(motion: str, index: int, seed: int, subject: str | None = None) -> str:
    """Held-out paraphrase `index` of `motion` (random subject unless given)."""
    return caption(motion, clip_generator(seed, index, stream=2 + MOTIONS.index(motion)), "heldout", subject)


# ---------------------------------------------------------------------------------------------
# Sampling


def _sample(prior, prompts: Sequence[str], steps: int, guidance: float, seed: int,
            start_t: int = 0, eta: float = 0.0) -> list[torch.Tensor]:
    """One DDIM clip [K, 3, H, W] per prompt (all prompts in one batch, one noise draw per `seed`).

    start_t = 0: from pure noise (`pipelines.sampling.sample_video`). start_t > 0: the DDIM steps at
    or below start_t only, from a white clip noised to that step (an SDEdit-style start; an option to
    look past a model that cannot find the white background from pure noise).
    """
    from pipelines.sampling import make_scheduler, sample_video, stack_embeds

    embeds = stack_embeds([prior.encode_prompt(p) for p in prompts])
    if not start_t:
        frames = sample_video(prior, embeds, steps=steps, eta=eta, guidance=guidance, seed=seed, batch=len(prompts))
        return list(frames.view(len(prompts), -1, *frames.shape[1:]))
    sched = make_scheduler(prior)
    sched.set_timesteps(steps)
    timesteps = [int(t) for t in sched.timesteps if int(t) <= start_t]
    gen = torch.Generator().manual_seed(seed)
    white = prior.encode_frames(torch.ones(prior.num_frames, 3, prior.height, prior.width))
    x = white.expand(len(prompts), *white.shape[1:])
    x = prior.add_noise(x, torch.randn(x.shape, generator=gen), timesteps[0])
    with torch.no_grad():
        for t in timesteps:
            x = sched.step(prior.predict_noise(x, t, embeds, guidance), t, x, eta=eta, generator=gen).prev_sample
    return [prior.decode_latents(x[i:i + 1]) for i in range(len(prompts))]


def eval_sampling(prior, per_class: int, steps: int, guidance: float, seed: int = 0, batch: int = 12,
                  log=print, start_t: int = 0, eta: float = 0.0, prompt_seed: int = SAMPLING_PROMPT_SEED) -> dict:
    """Sampling accuracy: see the module docstring. Returns the "sampling" section of the report.
    prompt_seed: another seed than SAMPLING_PROMPT_SEED (e.g. TUNING_PROMPT_SEED) to tune sampler settings
    on prompts that are not evaluated."""
    items = [(m, heldout_prompt(m, i, prompt_seed)) for i in range(per_class) for m in MOTIONS]
    t0 = time.perf_counter()
    samples = []
    for b in range(0, len(items), batch):
        chunk = items[b:b + batch]
        clips = _sample(prior, [p for _, p in chunk], steps, guidance, seed + b // batch, start_t, eta)
        for (motion, prompt), clip in zip(chunk, clips):
            m = measure_motion_from_frames(clip)
            samples.append({"motion": motion, "prompt": prompt, "predicted": classify_motion(m),
                            **{k: round(float(m[k]), 4) for k in ("dx", "dy", "rotation", "scale", "deform")},
                            "mean_value": round(float(clip.mean()), 4)})
        log(f"  sampled {len(samples)}/{len(items)} clips ({time.perf_counter() - t0:.0f} s)")
    confusion = {m: {p: 0 for p in MOTIONS} for m in MOTIONS}
    for s in samples:
        confusion[s["motion"]][s["predicted"]] += 1
    per = {m: {"correct": confusion[m][m], "total": sum(confusion[m].values())} for m in MOTIONS}
    for v in per.values():
        v["accuracy"] = v["correct"] / max(1, v["total"])

    def acc(classes):
        return sum(per[m]["correct"] for m in classes) / max(1, sum(per[m]["total"] for m in classes))

    return {"settings": {"per_class": per_class, "steps": steps, "guidance": guidance, "seed": seed,
                         "scheduler": f"DDIM eta {eta:g}", "eta": eta, "prompt_seed": prompt_seed,
                         "start": f"white clip noised to t={start_t}" if start_t else "pure noise"},
            "accuracy_all": acc(MOTIONS), "accuracy_directional": acc(DIRECTIONAL), "per_class": per,
            "confusion": confusion, "target": SAMPLING_TARGET, "chance": 1 / len(MOTIONS),
            # mean pixel value of the generated clips (training clips: black strokes on white, ~0.95)
            "mean_value": round(statistics.fmean(x["mean_value"] for x in samples), 4),
            "meets_target": {"all": acc(MOTIONS) >= SAMPLING_TARGET,
                             "directional": acc(DIRECTIONAL) >= SAMPLING_TARGET},
            "seconds": round(time.perf_counter() - t0, 1), "samples": samples}


# ---------------------------------------------------------------------------------------------
# Distillation


def distill_run(prior, sketch: Sketch, prompt: str, settings: DistillSettings, seed: int) -> dict:
    """One `animate_sketch` run; the motion of its control points and the wall-clock seconds."""
    from pipelines.livesketch import (
        AnimateConfig,
        MotionModelConfig,
        SDSConfig,
        animate_sketch,
    )

    s = settings
    t0 = time.perf_counter()
    embeds = prior.encode_prompt(prompt, s.negative_prompt)
    res = animate_sketch(
        sketch, prior, embeds,
        MotionModelConfig(num_frames=prior.num_frames, local_lr=s.local_lr, global_lr=s.global_lr,
                          use_local=s.use_local, anchor=s.anchor, shape_weight=s.shape_weight,
                          shape_tolerance=s.shape_tolerance, smooth_weight=s.smooth_weight),
        SDSConfig(prompt=prompt, negative_prompt=s.negative_prompt, guidance_local=s.guidance,
                  guidance_global=s.guidance, t_min=s.t_min, t_max=s.t_max, augment=s.augment),
        AnimateConfig(iterations=s.iterations, seed=seed, fused=s.fused, render_size=s.render_size))
    seconds = time.perf_counter() - t0
    m = measure_motion(res.animation)
    return {"dx": m["dx"], "dy": m["dy"], "rotation": m["rotation"], "scale": m["scale"],
            "class": classify_motion(m), "seconds": round(seconds, 2), "passes": res.times.passes,
            "fidelity": fidelity(sketch.points, res.animation.points)}


def fidelity(sketch_points: torch.Tensor, points: torch.Tensor) -> dict:
    """How the animation [K, N, 2] relates to the drawing [N, 2] it animates, frame by frame.

    Each frame is compared with the input sketch by the least-squares similarity input -> frame k
    (`_similarity_fit`): its rotation (deg, unwrapped along the clip), its scale, and the rms residual
    left after it relative to the sketch's rms radius ("shape residual"; 0 = the frame is the drawing
    moved, turned and scaled). frame0_error: the largest coordinate difference between frame 0 and the
    input, in pixels and relative to the rms radius.
    """
    from pipelines.embedded.data import _similarity_fit

    base = sketch_points.detach().double()
    pts = points.detach().double()
    k = pts.shape[0]
    theta, scale, resid = _similarity_fit(base.unsqueeze(0).expand(k, -1, -1), pts)
    # unwrap: frame k's angle is frame k-1's plus the step between them
    steps = _similarity_fit(pts[:-1], pts[1:])[0] if k > 1 else pts.new_zeros(0)
    unwrapped = torch.cat([theta[:1], theta[:1] + torch.cumsum(steps, 0)])
    deg = torch.rad2deg(unwrapped)
    radius = float((base - base.mean(0)).pow(2).sum(-1).mean().sqrt())
    err = float((pts[0] - base).abs().max())
    return {"frame0_error_px": err, "frame0_error_rel": err / max(radius, 1e-12),
            "frame0_rotation": float(deg[0]), "frame0_scale": float(scale[0]),
            "rotation_per_frame": [round(float(x), 3) for x in deg],
            "scale_per_frame": [round(float(x), 4) for x in scale],
            "shape_residual_per_frame": [round(float(x), 4) for x in resid],
            "shape_residual_max": float(resid.max()),
            "max_abs_rotation": float(deg.abs().max()),
            "max_scale_change": float(torch.exp(torch.log(scale.clamp_min(1e-12)).abs().max())),
            "last_scale_vs_input": float(scale[-1]), "last_rotation_vs_input": float(deg[-1])}


_WORKER_PRIOR = None


def worker_prior(folder: str):
    """Set up a worker process of a distillation pool (one torch thread, tokenizer warnings off) and load
    its prior; used by eval_distillation(jobs > 1) and scripts/sweep_embedded_sds.py."""
    torch.set_num_threads(1)
    logging.getLogger("VideoPriors").setLevel(logging.ERROR)
    return load_embedded_prior(folder)


def _worker_init(folder: str) -> None:
    global _WORKER_PRIOR
    _WORKER_PRIOR = worker_prior(folder)


def _worker_run(job: tuple) -> tuple:
    key, sketch, prompt, settings, seed = job
    return key, distill_run(_WORKER_PRIOR, sketch, prompt, settings, seed)


def _run_jobs(prior, todo: list, jobs: int, finished) -> None:
    """Run the distillation jobs (key, sketch, prompt, settings, seed), calling finished(key, result) for each.

    With jobs > 1: worker processes with one torch thread each (2 small runs side by side use 2 cores better
    than one run on 2 threads); each loads the prior from its folder."""
    if jobs > 1 and todo:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(jobs, initializer=_worker_init, initargs=(prior.folder,)) as pool:
            for key, r in pool.imap_unordered(_worker_run, todo):
                finished(key, r)
    else:
        for key, sketch, prompt, st, seed in todo:
            finished(key, distill_run(prior, sketch, prompt, st, seed))


def eval_distillation(prior, settings: DistillSettings, directions: Sequence[str] = DIRECTIONAL,
                      seeds: int = DISTILL_SEEDS, sketches=None, log=print, done: Sequence[dict] = (),
                      on_run=None, jobs: int = 1) -> dict:
    """Distillation matches per direction: see the module docstring. Returns the "distillation" section.

    done: runs of an interrupted evaluation with the same settings (reused, not rerun);
    on_run(run) is called after every new run (the script saves its progress there).
    """
    sketches = sketches if sketches is not None else heldout_sketches()
    previous = {(r["direction"], r["seed"]): r for r in done}
    todo = []  # (key, sketch, prompt, settings, seed) of the runs still to do, in order
    meta = {}
    for direction in directions:
        for s in range(seeds):
            key = (direction, 1000 + s)
            name, sketch, subject = sketches[s % len(sketches)]
            prompt = heldout_prompt(direction, s, DISTILL_PROMPT_SEED, subject)
            meta[key] = {"direction": direction, "seed": 1000 + s, "sketch": name, "points": sketch.num_points,
                         "prompt": prompt}
            if key not in previous:
                todo.append((key, sketch, prompt, settings, 1000 + s))

    def finished(key, r):
        r = {**meta[key], "match": direction_matches(key[0], r), **r}
        previous[key] = r
        if on_run is not None:
            on_run(r)
        log(f"  {r['direction']:>16} seed {r['seed']} {r['sketch']:>13} {'ok ' if r['match'] else 'NO '} "
            f"dx {r['dx']:+.3f} dy {r['dy']:+.3f} rot {r['rotation']:+6.1f} scale {r['scale']:.3f} "
            f"({r['seconds']:.0f} s)  {r['prompt']!r}")

    _run_jobs(prior, todo, jobs, finished)
    runs = [previous[k] for k in meta]
    per = {d: {"matches": sum(r["match"] for r in runs if r["direction"] == d),
               "runs": sum(1 for r in runs if r["direction"] == d)} for d in directions}
    secs = [r["seconds"] for r in runs]
    need = math.ceil(DISTILL_TARGET / DISTILL_SEEDS * seeds - 1e-9)
    return {"settings": dataclasses.asdict(settings), "num_frames": prior.num_frames,
            "thresholds": {"move": MOVE_THRESHOLD, "rotate_deg": ROTATE_THRESHOLD, "scale": SCALE_THRESHOLD},
            "seeds": seeds, "sketches": [n for n, _, _ in sketches], "prompt_seed": DISTILL_PROMPT_SEED,
            "per_direction": per, "target": f"{DISTILL_TARGET} of {DISTILL_SEEDS} seeds per direction",
            "meets_target": all(v["matches"] >= need for v in per.values()),
            "jobs": jobs, "threads_per_run": 1 if jobs > 1 else torch.get_num_threads(),
            "seconds_per_run": {"mean": round(statistics.fmean(secs), 1), "median": round(statistics.median(secs), 1),
                                "min": round(min(secs), 1), "max": round(max(secs), 1)} if secs else {},
            "runs": runs}


# ---------------------------------------------------------------------------------------------
# Anchoring: frame 0 = the input sketch (MotionModelConfig.anchor + shape term), on versus off

#: motion class of each direction, and what each class did not ask for
MOTION_CLASS = {"left": "translation", "right": "translation", "up": "translation", "down": "translation",
                "clockwise": "rotation", "counterclockwise": "rotation", "grow": "scaling", "shrink": "scaling"}
UNREQUESTED = {"translation": ("rotation", "scale"), "rotation": ("scale",), "scaling": ("rotation",)}
ANCHOR_DIRECTIONS = ("left", "right", "clockwise", "grow")
ANCHOR_SEEDS = 6  # the six random held-out sketches
COLLAPSE_RESIDUAL = 0.3  # a frame whose shape residual exceeds this has lost the drawing's shape


def anchored_settings(settings: DistillSettings, **overrides) -> DistillSettings:
    """The same SDS settings with anchoring on as the workflows and the demo use it (`pipelines.livesketch.ANCHORING`;
    overrides: shape_weight, shape_tolerance, smooth_weight)."""
    from pipelines.livesketch import ANCHORING

    return dataclasses.replace(settings, **{**ANCHORING, **overrides})


def _stats(values: list[float], digits: int = 3) -> dict:
    if not values:
        return {}
    return {"mean": round(statistics.fmean(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits)}


def anchoring_summary(runs: Sequence[dict]) -> dict:
    """Per variant ("off", "on") and motion class: direction matches, frame-0 error (pixels, rotation,
    scale against the input), the worst frame's shape residual, and the unrequested rotation (largest
    |angle| of any frame against the input, degrees) and scale (largest factor away from 1, either way).
    """
    out: dict = {}
    for variant in ("off", "on"):
        mine = [r for r in runs if r["variant"] == variant]
        classes = {}
        for cls in dict.fromkeys(MOTION_CLASS[r["direction"]] for r in mine):
            rs = [r for r in mine if MOTION_CLASS[r["direction"]] == cls]
            f = [r["fidelity"] for r in rs]
            row = {"directions": sorted({r["direction"] for r in rs}),
                   "matches": sum(r["match"] for r in rs), "runs": len(rs),
                   "frame0_error_px": _stats([x["frame0_error_px"] for x in f], 4),
                   "frame0_rotation_abs_deg": _stats([abs(x["frame0_rotation"]) for x in f], 2),
                   "frame0_scale": _stats([x["frame0_scale"] for x in f]),
                   "shape_residual_max": _stats([x["shape_residual_max"] for x in f]),
                   "collapsed_runs": sum(x["shape_residual_max"] > COLLAPSE_RESIDUAL for x in f),
                   "last_scale_vs_input": _stats([x["last_scale_vs_input"] for x in f]),
                   "last_rotation_vs_input_deg": _stats([x["last_rotation_vs_input"] for x in f], 2)}
            if "rotation" in UNREQUESTED[cls]:
                row["unrequested_rotation_deg"] = _stats([x["max_abs_rotation"] for x in f], 2)
            if "scale" in UNREQUESTED[cls]:
                row["unrequested_scale_factor"] = _stats([x["max_scale_change"] for x in f])
            classes[cls] = row
        per_direction = {d: {"matches": sum(r["match"] for r in mine if r["direction"] == d),
                             "runs": sum(1 for r in mine if r["direction"] == d)}
                         for d in dict.fromkeys(r["direction"] for r in mine)}
        f_all = [r["fidelity"] for r in mine]
        out[variant] = {"per_class": classes, "per_direction": per_direction,
                        "matches": sum(r["match"] for r in mine), "runs": len(mine),
                        "frame0_error_px_max": round(max((x["frame0_error_px"] for x in f_all), default=0.0), 6),
                        "collapsed_runs": sum(x["shape_residual_max"] > COLLAPSE_RESIDUAL for x in f_all)}
    return out


def eval_anchoring(prior, settings: DistillSettings, on_settings: DistillSettings,
                   directions: Sequence[str] = ANCHOR_DIRECTIONS, seeds: int = ANCHOR_SEEDS, sketches=None,
                   log=print, done: Sequence[dict] = (), on_run=None, jobs: int = 1, new_runs: bool = True) -> dict:
    """The distillation runs of `eval_distillation` (same sketches, prompts and seeds) twice, with anchoring
    off (`settings`, the paper's formulation) and on (`on_settings`), interleaved so that a partial run
    has both (and every direction, seed by seed). Returns the report's "anchoring" section: the settings, the
    summary and every run. new_runs=False: only the finished runs in `done` (the section says how many were
    planned)."""
    sketches = sketches if sketches is not None else heldout_sketches()
    variants = {"off": settings, "on": on_settings}
    previous = {(r["variant"], r["direction"], r["seed"]): r for r in done}
    todo, meta = [], {}
    for s in range(seeds):  # seed-major, so that a partial run covers every direction with both variants
        name, sketch, subject = sketches[s % len(sketches)]
        for direction in directions:
            prompt = heldout_prompt(direction, s, DISTILL_PROMPT_SEED, subject)
            for variant, st in variants.items():
                key = (variant, direction, 1000 + s)
                meta[key] = {"variant": variant, "direction": direction, "seed": 1000 + s, "sketch": name,
                             "points": sketch.num_points, "prompt": prompt}
                if key not in previous:
                    todo.append((key, sketch, prompt, st, 1000 + s))
    planned = len(meta)
    if not new_runs:
        todo = []
        meta = {k: v for k, v in meta.items() if k in previous}

    def finished(key, r):
        r = {**meta[key], "match": direction_matches(key[1], r), **r}
        previous[key] = r
        if on_run is not None:
            on_run(r)
        fd = r["fidelity"]
        log(f"  {r['variant']:>3} {r['direction']:>10} seed {r['seed']} {r['sketch']:>9} "
            f"{'ok ' if r['match'] else 'NO '} frame0 err {fd['frame0_error_px']:.2g} px rot "
            f"{fd['frame0_rotation']:+.1f} scale {fd['frame0_scale']:.2f}; worst residual "
            f"{fd['shape_residual_max']:.2f}, max |rot| {fd['max_abs_rotation']:.1f}, "
            f"last scale {fd['last_scale_vs_input']:.2f} ({r['seconds']:.0f} s)")

    _run_jobs(prior, todo, jobs, finished)
    runs = [previous[k] for k in meta]
    secs = [r["seconds"] for r in runs]
    return {"settings": {v: dataclasses.asdict(st) for v, st in variants.items()},
            "directions": list(directions), "seeds": seeds, "sketches": sorted({r["sketch"] for r in runs}),
            "prompt_seed": DISTILL_PROMPT_SEED, "collapse_residual": COLLAPSE_RESIDUAL,
            "summary": anchoring_summary(runs), "runs_planned": planned, "runs_done": len(runs), "jobs": jobs,
            "threads_per_run": 1 if jobs > 1 else torch.get_num_threads(),
            "seconds_per_run": _stats(secs, 1), "runs": runs}


# ---------------------------------------------------------------------------------------------
# Report


def model_summary(folder: str) -> dict:
    """Training summary of a prior folder from its training_config.json and loss_curve.json."""

    def read(name):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            return {}
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    cfg, curve = read("training_config.json"), read("loss_curve.json")
    out = {"folder": os.path.relpath(folder, ROOT) if folder.startswith(ROOT) else folder,
           "steps": (curve.get("step") or [cfg.get("steps")])[-1], "configured_steps": cfg.get("steps"),
           "batch": cfg.get("batch"), "data_seed": cfg.get("data_seed")}
    losses = curve.get("loss") or []
    if losses:
        tail = losses[-5:]
        out["final_loss"] = round(float(tail[-1]), 5)
        out["final_loss_mean5"] = round(statistics.fmean(float(v) for v in tail), 5)
    if curve.get("seconds"):
        out["train_minutes"] = round(float(curve["seconds"][-1]) / 60, 1)
    if curve.get("probe_accuracy"):
        out["probe_accuracy"] = round(float(curve["probe_accuracy"][-1]), 3)
        out["probe_step"] = curve["probe_step"][-1]
    return out


def git_commit() -> dict:
    def run(*args):
        try:
            done = subprocess.run(["git", *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=20)
            return done.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": run("rev-parse", "HEAD") or None,
            "dirty": bool(run("status", "--porcelain", "--untracked-files=no"))}


def build_report(args, folder: str, sampling: dict | None, distillation: dict | None, seconds: float) -> dict:
    compute = (sampling or {}).get("seconds", 0.0) + sum(r["seconds"] for r in (distillation or {}).get("runs", []))
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": git_commit(),
        "quick": bool(args.quick),
        "environment": {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                        "cpu_count": os.cpu_count(), "machine": platform.machine(),
                        "python": platform.python_version()},
        "prior": model_summary(folder),
        "sampling": sampling,
        "distillation": distillation,
        "seconds_total": round(seconds, 1),  # this process (less than the compute time after a resume)
        "seconds_compute": round(compute, 1),  # sampling + every distillation run
    }


def print_tables(report: dict) -> None:
    s, d = report.get("sampling"), report.get("distillation")
    if s:
        print(f"\nSampling ({s['settings']['per_class']} held-out prompts per class, DDIM {s['settings']['steps']} "
              f"steps, guidance {s['settings']['guidance']}, from {s['settings']['start']}):")
        print(f"  {'motion':>16}  accuracy   most often measured as")
        for m, v in s["per_class"].items():
            row = s["confusion"][m]
            top = sorted(((c, p) for p, c in row.items() if c), reverse=True)[:3]
            print(f"  {m:>16}  {v['correct']:>3}/{v['total']:<3}    " + ", ".join(f"{p} {c}" for c, p in top))
        print(f"  all 12 classes {s['accuracy_all']:.1%}, 8 directional {s['accuracy_directional']:.1%} "
              f"(target {s['target']:.0%}); {s['seconds']:.0f} s")
    if d:
        st = d["settings"]
        print(f"\nDistillation ({st['iterations']} iterations, guidance {st['guidance']}, lr local {st['local_lr']} "
              f"global {st['global_lr']}, t [{st['t_min']}, {st['t_max']}), augment {st['augment']}, "
              f"fused {st['fused']}, render {st['render_size']}):")
        for direction, v in d["per_direction"].items():
            print(f"  {direction:>16}  {v['matches']:>2}/{v['runs']}")
        sp = d["seconds_per_run"]
        if sp:
            how = (f"1 torch thread per run, {d['jobs']} runs side by side" if d.get("jobs", 1) > 1
                   else f"{report['environment']['torch_threads']} torch threads")
            print(f"  seconds per run: mean {sp['mean']}, median {sp['median']} (min {sp['min']}, max {sp['max']}) "
                  f"with {how}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    d = DistillSettings()
    p.add_argument("--prior", default=None, help=f"model folder (default: the shipped {EMBEDDED_PRIOR_DIR})")
    p.add_argument("--out", default=DEFAULT_OUT, help="JSON report (default %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="a small run: 2 prompts per class, DDIM 10 steps, 2 seeds per direction, 40 iterations "
                        "(explicit options still win)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default %(default)s)")
    p.add_argument("--skip-sampling", action="store_true")
    p.add_argument("--skip-distillation", action="store_true")
    p.add_argument("--no-resume", action="store_true",
                   help="start afresh even if <out>.partial.json holds finished parts of the same evaluation")
    g = p.add_argument_group("sampling")
    g.add_argument("--per-class", type=int, default=None, help="held-out prompts per motion class (default 10)")
    g.add_argument("--sampling-steps", type=int, default=None, help="DDIM steps (default 50)")
    g.add_argument("--sampling-guidance", type=float, default=6.0)
    g.add_argument("--sampling-seed", type=int, default=0)
    g.add_argument("--sampling-eta", type=float, default=1.0,
                   help="DDIM eta (default 1: fresh noise every step, which corrects this small model's errors; "
                        "at eta 0 its samples keep a grey, speckled background)")
    g.add_argument("--sampling-start-t", type=int, default=0,
                   help="0: DDIM from pure noise (default); T > 0: from a white clip noised to step T")
    g = p.add_argument_group("distillation (SDS settings)")
    g.add_argument("--directions", default=",".join(DIRECTIONAL), help="comma-separated subset of the 8 directions")
    g.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="distillation runs side by side, one torch thread each (default %(default)s; 1 = in this "
                        "process with --threads)")
    g.add_argument("--seeds", type=int, default=None, help=f"seeds per direction (default {DISTILL_SEEDS})")
    g.add_argument("--iterations", type=int, default=None, help=f"default {d.iterations}")
    g.add_argument("--guidance", type=float, default=d.guidance)
    g.add_argument("--local-lr", type=float, default=d.local_lr)
    g.add_argument("--global-lr", type=float, default=d.global_lr)
    g.add_argument("--t-min", type=int, default=d.t_min)
    g.add_argument("--t-max", type=int, default=d.t_max)
    g.add_argument("--augment", type=int, choices=(0, 1), default=int(d.augment))
    g.add_argument("--fused", type=int, choices=(0, 1), default=int(d.fused))
    g.add_argument("--render-size", type=int, default=d.render_size)
    g.add_argument("--negative-prompt", default=d.negative_prompt)
    g.add_argument("--use-local", type=int, choices=(0, 1), default=int(d.use_local))
    g = p.add_argument_group("anchoring comparison")
    g.add_argument("--anchoring", action="store_true",
                   help="instead of the sampling and distillation parts: the distillation runs of --directions "
                        f"(default {','.join(ANCHOR_DIRECTIONS)}) x --seeds (default {ANCHOR_SEEDS}) with anchoring off "
                        "(the paper's formulation) and on; the section 'anchoring' is written into the --out "
                        "report, whose other sections are kept")
    g.add_argument("--shape-weight", type=float, default=None,
                   help="shape-preservation weight of the anchored runs (default: the workflows' value)")
    g.add_argument("--shape-tolerance", type=float, default=None,
                   help="shape residual tolerated before the term acts (default: the workflows' value)")
    g.add_argument("--finished-only", action="store_true",
                   help="write the section from the runs an interrupted --anchoring left in its partial file, "
                        "running no new ones")
    g.add_argument("--smooth-weight", type=float, default=None,
                   help="smoothness weight of the anchored runs (default: the workflows' value)")
    args = p.parse_args(argv)
    quick = args.quick
    if args.anchoring:
        if args.directions == ",".join(DIRECTIONAL):
            args.directions = ",".join(ANCHOR_DIRECTIONS)
        if args.seeds is None:
            args.seeds = ANCHOR_SEEDS
    for name, full, small in (("per_class", 10, 2), ("sampling_steps", 50, 10), ("seeds", DISTILL_SEEDS, 2),
                              ("iterations", d.iterations, 40)):
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    args.directions = [x.strip() for x in args.directions.split(",") if x.strip()]
    bad = [x for x in args.directions if x not in DIRECTIONAL]
    if bad:
        p.error(f"unknown direction(s) {', '.join(bad)}; choose from {', '.join(DIRECTIONAL)}")
    return args


def settings_from_args(args) -> DistillSettings:
    return DistillSettings(iterations=args.iterations, guidance=args.guidance, local_lr=args.local_lr,
                           global_lr=args.global_lr, t_min=args.t_min, t_max=args.t_max, augment=bool(args.augment),
                           fused=bool(args.fused), render_size=args.render_size, negative_prompt=args.negative_prompt,
                           use_local=bool(args.use_local))  # anchoring off: --anchoring adds the anchored variant


class Progress:
    """The finished parts of an evaluation in `<out>.partial.json`, so an interrupted run can resume.

    `key` is {"prior": ..., "sampling": settings, "distillation": settings}: the sampling part is
    reused when the model and the sampling settings are the same, the finished distillation runs when
    the model and the distillation settings are (so changing one part's settings keeps the other's
    work); the file is removed once the report is written.
    """

    def __init__(self, out: str | None, key: dict, enabled: bool, log=print):
        self.path = out + ".partial.json" if out else None
        self.key = key
        self.state = {"key": key, "sampling": None, "runs": []}
        if enabled and self.path and os.path.isfile(self.path):
            with open(self.path, encoding="utf-8") as f:
                saved = json.load(f)
            old = saved.get("key") or {}
            same_prior = old.get("prior") == key.get("prior")
            if same_prior and old.get("sampling") == key.get("sampling") and saved.get("sampling"):
                self.state["sampling"] = saved["sampling"]
            if same_prior and old.get("distillation") == key.get("distillation"):
                self.state["runs"] = list(saved.get("runs") or [])
            log(f"resuming from {self.path}: sampling {'reused' if self.state['sampling'] else 'to do'}, "
                f"{len(self.state['runs'])} distillation runs reused (parts written with other settings or "
                "another model are redone)")

    def save(self) -> None:
        if not self.path:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(self.state, f)
        os.replace(self.path + ".tmp", self.path)

    def add_run(self, run: dict) -> None:
        self.state["runs"].append(run)
        self.save()

    def finish(self) -> None:
        if self.path and os.path.isfile(self.path):
            os.remove(self.path)


def _run(args, prior, log, progress: Progress) -> tuple[dict | None, dict | None]:
    sampling = distillation = None
    if not args.skip_sampling:
        sampling = progress.state["sampling"]
        if sampling is None:
            log(f"sampling: {args.per_class} prompts x {len(MOTIONS)} motions")
            sampling = eval_sampling(prior, args.per_class, args.sampling_steps, args.sampling_guidance,
                                     args.sampling_seed, log=log, start_t=args.sampling_start_t,
                                     eta=args.sampling_eta)
            progress.state["sampling"] = sampling
            progress.save()
    if not args.skip_distillation:
        log(f"distillation: {len(args.directions)} directions x {args.seeds} seeds")
        distillation = eval_distillation(prior, settings_from_args(args), args.directions, args.seeds, log=log,
                                         done=progress.state["runs"], on_run=progress.add_run, jobs=args.jobs)
    return sampling, distillation


def anchoring_main(args, prior, folder: str, log) -> dict:
    """--anchoring: run the comparison and write its section into the --out report (other sections kept)."""
    off = settings_from_args(args)
    on = anchored_settings(off, **{k: v for k, v in (("shape_weight", args.shape_weight),
                                                       ("shape_tolerance", args.shape_tolerance),
                                                       ("smooth_weight", args.smooth_weight)) if v is not None})
    key = {"prior": model_summary(folder), "distillation": {"anchoring": True, "directions": args.directions, "seeds": args.seeds,
                                                         "off": dataclasses.asdict(off), "on": dataclasses.asdict(on)}}
    progress = Progress(args.out + ".anchoring" if args.out else None, key, enabled=not args.no_resume, log=log)
    log(f"anchoring: {len(args.directions)} directions x {args.seeds} seeds x anchoring off / on")
    t0 = time.perf_counter()
    section = eval_anchoring(prior, off, on, args.directions, args.seeds, log=log, done=progress.state["runs"],
                             on_run=progress.add_run, jobs=args.jobs, new_runs=not args.finished_only)
    section["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    section["git"] = git_commit()
    section["prior"] = model_summary(folder)
    section["seconds_total"] = round(time.perf_counter() - t0, 1)
    report = {}
    if args.out and os.path.isfile(args.out):
        with open(args.out, encoding="utf-8") as f:
            report = json.load(f)
    report["anchoring"] = section
    print_anchoring_table(section)
    if args.out:
        _write_json(args.out, report)
        if not args.finished_only:
            progress.finish()
        print(f"\nwrote the 'anchoring' section of {args.out}")
    return report


def print_anchoring_table(section: dict) -> None:
    """The comparison as the model card shows it (write_model_card.anchoring_table)."""
    from write_model_card import anchoring_table

    print(f"\nAnchoring ({', '.join(section['directions'])} x {section['seeds']} held-out sketches; "
          f"{section['settings']['off']['iterations']} iterations):")
    for line in anchoring_table(section):
        print("  " + line)


def _write_json(path: str, data: dict) -> None:
    """Atomically: a stopped run never leaves a half-written report."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    os.replace(path + ".tmp", path)


@contextlib.contextmanager
def _quiet_pack_log():
    """Held-out sentence frames contain words the vocabulary lacks ("that", "there", "where", by design): the
    tokenizer's one warning per prompt would flood the log."""
    logger = logging.getLogger("VideoPriors")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _log(msg: str) -> None:
    print(msg, flush=True)


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    folder = os.path.abspath(args.prior or EMBEDDED_PRIOR_DIR)
    t0 = time.perf_counter()
    prior = load_embedded_prior(folder)
    print(f"prior {folder}: {json.dumps(model_summary(folder))}", flush=True)
    if args.anchoring:
        with _quiet_pack_log():
            return anchoring_main(args, prior, folder, _log)
    key = {"prior": model_summary(folder),
           "sampling": {"per_class": args.per_class, "steps": args.sampling_steps, "guidance": args.sampling_guidance,
                        "seed": args.sampling_seed, "start_t": args.sampling_start_t, "eta": args.sampling_eta},
           "distillation": {"directions": args.directions, "seeds": args.seeds,
                            **dataclasses.asdict(settings_from_args(args))}}
    progress = Progress(args.out, key, enabled=not args.no_resume, log=_log)
    with _quiet_pack_log():
        sampling, distillation = _run(args, prior, _log, progress)
    report = build_report(args, folder, sampling, distillation, time.perf_counter() - t0)
    print_tables(report)
    if args.out:
        _write_json(args.out, report)
        progress.finish()
        print(f"\nwrote {args.out} ({report['seconds_total']:.0f} s)")
    return report


if __name__ == "__main__":
    main()
