#!/usr/bin/env python
"""Write the embedded prior's model card from its folder and the evaluation report.

    python scripts/write_model_card.py [--prior pipelines/assets/embedded_prior]
        [--eval bench/results/embedded_prior_eval.json] [--out pipelines/assets/embedded_prior/MODEL_CARD.md]

Every number in the card is read from files, none is typed in: the architecture from the
folder's unet/, text_encoder/, tokenizer/ and scheduler/ configs, the training from
training_config.json and loss_curve.json, the evaluation from the JSON that
scripts/eval_embedded_prior.py (`make eval-prior`) wrote. The "can / cannot" lists of the
limits section are computed from the per-class accuracies. The card ends with a JSON block of
the evaluation figures it shows (between CARD_JSON_BEGIN and CARD_JSON_END), which
tests/test_embedded_eval.py compares with the evaluation report. The output is deterministic
(no dates other than the report's own), so rewriting an unchanged card changes nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from pipelines.embedded.data import DIRECTIONAL, MOTIONS, REFERENCE
from pipelines.embedded.prior import EMBEDDED_PRIOR_DIR

DEFAULT_EVAL = os.path.join(ROOT, "bench", "results", "embedded_prior_eval.json")
CARD_JSON_BEGIN = "<!-- CARD_JSON_BEGIN: the evaluation figures above, checked against the report by the tests -->"
CARD_JSON_END = "<!-- CARD_JSON_END -->"
GOOD, FAIR = 0.8, 0.4  # per-class accuracy: >= GOOD "reliably", >= FAIR "sometimes", else "not"
WHITE_ENOUGH = 0.8  # mean pixel value of generated clips below which the card says they are not drawings on white


def _read(path: str) -> dict:
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _count_params(folder: str, rel: str) -> int | None:
    path = os.path.join(folder, rel)
    if not os.path.isfile(path):
        return None
    from safetensors import safe_open

    total = 0
    with safe_open(path, "pt") as f:
        names = f.keys()  # safe_open is not iterable
        for k in names:
            n = 1
            for d in f.get_slice(k).get_shape():
                n *= int(d)
            total += n
    return total


def card_numbers(report: dict) -> dict:
    """The evaluation figures the card shows (also embedded in the card as JSON)."""
    out: dict = {"eval_created": report.get("created"), "eval_commit": (report.get("git") or {}).get("commit"),
                 "eval_quick": report.get("quick"), "prior_steps": (report.get("prior") or {}).get("steps"),
                 "prior_final_loss": (report.get("prior") or {}).get("final_loss")}
    s = report.get("sampling")
    if s:
        out["sampling"] = {"accuracy_all": round(s["accuracy_all"], 4),
                           "accuracy_directional": round(s["accuracy_directional"], 4),
                           "per_class": {m: [v["correct"], v["total"]] for m, v in s["per_class"].items()}}
    d = report.get("distillation")
    if d:
        out["distillation"] = {"per_direction": {m: [v["matches"], v["runs"]] for m, v in d["per_direction"].items()},
                               "seconds_per_run_mean": d["seconds_per_run"].get("mean"),
                               "iterations": d["settings"]["iterations"],
                               "torch_threads": (report.get("environment") or {}).get("torch_threads")}
    a = report.get("anchoring")
    if a:
        out["anchoring"] = {v: {"per_class": {c: _anchoring_row_numbers(row) for c, row in part["per_class"].items()},
                                "matches": [part["matches"], part["runs"]], "collapsed_runs": part["collapsed_runs"]}
                            for v, part in a["summary"].items()}
    return out


def _anchoring_row_numbers(row: dict) -> dict:
    """The figures of one anchoring table row (motion class x variant), rounded as the table shows them."""
    out = {"matches": [row["matches"], row["runs"]], "frame0_error_px_max": round(row["frame0_error_px"]["max"], 3),
           "frame0_rotation_abs_deg_max": round(row["frame0_rotation_abs_deg"]["max"], 1),
           "frame0_scale": [round(row["frame0_scale"]["min"], 2), round(row["frame0_scale"]["max"], 2)],
           "shape_residual_max": [round(row["shape_residual_max"]["mean"], 2), round(row["shape_residual_max"]["max"], 2)],
           "collapsed_runs": row["collapsed_runs"],
           "last_scale_vs_input": [round(row["last_scale_vs_input"]["min"], 2),
                                   round(row["last_scale_vs_input"]["max"], 2)]}
    if row.get("unrequested_rotation_deg"):
        out["unrequested_rotation_deg"] = [round(row["unrequested_rotation_deg"]["mean"], 1),
                                           round(row["unrequested_rotation_deg"]["max"], 1)]
    if row.get("unrequested_scale_factor"):
        out["unrequested_scale_factor"] = [round(row["unrequested_scale_factor"]["mean"], 2),
                                           round(row["unrequested_scale_factor"]["max"], 2)]
    return out


def anchoring_table(a: dict) -> list[str]:
    """Markdown table of the report's "anchoring" section: one row per motion class and variant."""
    lines = ["| class | anchoring | direction | frame-0 error (px, max) | frame-0 rotation (deg, max) "
             "| frame-0 scale | worst-frame shape residual (mean / max) | runs with a frame > "
             f"{a['collapse_residual']:g} | unrequested rotation (deg, mean / max) | unrequested scale (x, mean / max) "
             "| last frame's scale vs input |", "|" + "---|" * 11]
    summary = a["summary"]
    for cls in summary["off"]["per_class"]:
        for variant in ("off", "on"):
            row = summary.get(variant, {}).get("per_class", {}).get(cls)
            if not row:
                continue
            n = _anchoring_row_numbers(row)
            rot = n.get("unrequested_rotation_deg")
            sc = n.get("unrequested_scale_factor")
            lines.append(
                f"| {cls} | {variant} | {n['matches'][0]}/{n['matches'][1]} | {n['frame0_error_px_max']:g} | "
                f"{n['frame0_rotation_abs_deg_max']:g} | {n['frame0_scale'][0]:g}-{n['frame0_scale'][1]:g} | "
                f"{n['shape_residual_max'][0]:g} / {n['shape_residual_max'][1]:g} | {n['collapsed_runs']} | "
                f"{f'{rot[0]:g} / {rot[1]:g}' if rot else '-'} | {f'{sc[0]:g} / {sc[1]:g}' if sc else '-'} | "
                f"{n['last_scale_vs_input'][0]:g}-{n['last_scale_vs_input'][1]:g} |")
    return lines


def _display_path(path: str) -> str:
    path = os.path.abspath(path)
    return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


def _dump(nums: dict) -> str:
    """JSON with one line per key of the first two levels (readable, still plain JSON)."""
    def level(obj, indent):
        if not isinstance(obj, dict) or indent > 2:
            return json.dumps(obj, sort_keys=True)
        pad = " " * indent
        items = [f"{pad}{json.dumps(k)}: {level(v, indent + 1)}" for k, v in sorted(obj.items())]
        return "{\n" + ",\n".join(items) + "\n" + " " * (indent - 1) + "}"

    return level(nums, 1)


def _threads(n) -> str:
    return f"{n} CPU thread" + ("" if n == 1 else "s")


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _groups(rates: dict) -> tuple[list, list, list]:
    good = [m for m, r in rates.items() if r >= GOOD]
    fair = [m for m, r in rates.items() if FAIR <= r < GOOD]
    bad = [m for m, r in rates.items() if r < FAIR]
    return good, fair, bad


def _names(items) -> str:
    return ", ".join(items) if items else "none"


def render_card(folder: str, report: dict) -> str:
    unet = _read(os.path.join(folder, "unet", "config.json"))
    text = _read(os.path.join(folder, "text_encoder", "config.json"))
    sched = _read(os.path.join(folder, "scheduler", "scheduler_config.json"))
    index = _read(os.path.join(folder, "model_index.json"))
    cfg = _read(os.path.join(folder, "training_config.json"))
    curve = _read(os.path.join(folder, "loss_curve.json"))
    clip = index.get("videopriors_clip", {})
    frames, height, width = clip.get("num_frames", "?"), clip.get("height", "?"), clip.get("width", "?")
    p_unet = _count_params(folder, "unet/diffusion_pytorch_model.safetensors")
    p_text = _count_params(folder, "text_encoder/model.safetensors")
    vocab = text.get("vocab_size")
    nums = card_numbers(report)
    L: list[str] = []
    add = L.append

    add("# Model card: the VideoPriors embedded prior")
    add("")
    add(f"A small text-to-video diffusion model of black line drawings moving on white, {frames} frames of "
        f"{width} x {height} pixels, trained from scratch on CPU on procedural data. It ships with the pack so "
        "that LiveSketch (`VP_AnimateSketch`) works without downloading a video model, and loads with the "
        "same code as ModelScope (`VP_LoadVideoPrior`, name `embedded`). It is a small model for a narrow task, "
        "not a general video model.")
    add("")
    add("This card is generated by `scripts/write_model_card.py` from the model folder and the evaluation "
        "report of `scripts/eval_embedded_prior.py` (`make eval-prior`); do not edit it by hand.")
    add("")

    add("## Data")
    add("")
    add("Procedural, generated while training (`pipelines/embedded/data.py`), nothing downloaded: random line "
        "drawings (closed shapes, open strokes, stick figures, doodles; 4-24 cubic Bezier strokes) moved by one "
        f"of {len(MOTIONS)} motion classes ({', '.join(MOTIONS)}), rendered by the pack's rasterizer at "
        f"{width} x {height} and described by templated captions (\"a bird flies to the left\").")
    steps_total = cfg.get("total_steps", cfg.get("steps_done", cfg.get("steps")))
    if cfg.get("batch") and cfg.get("steps_done", cfg.get("steps")):
        add(f"This model saw {cfg.get('steps_done', cfg.get('steps')) * cfg['batch']:,} clips in its last stage "
            f"(`make_clip(data_seed={cfg.get('data_seed')}, i)`, train captions only).")
    add("Captions are split per (verb, complement) pair: the evaluation uses held-out paraphrases (new "
        "combinations of trained words, and sentence frames with the words \"that\", \"there\", \"where\", "
        "which the vocabulary does not have) and held-out sketches (other seeds, and hand-drawn SVGs).")
    add("")

    add("## Architecture")
    add("")
    add("| part | what |")
    add("|---|---|")
    blocks = unet.get("block_out_channels")
    attn = [b for b in unet.get("down_block_types", []) + unet.get("up_block_types", []) if "CrossAttn" in b]
    pixel = index.get("videopriors_pixel") or {}
    patch = int(pixel.get("patch", 1))
    add(f"| UNet | diffusers `UNet3DConditionModel`, pixel space ({unet.get('in_channels')} -> "
        f"{unet.get('out_channels')} channels at {unet.get('sample_size')} x {unet.get('sample_size')}, no VAE), "
        f"blocks {blocks}, {unet.get('layers_per_block')} layer(s) per "
        f"block, cross-attention ({unet.get('cross_attention_dim')}-d) in {' + '.join(attn)} and the mid block"
        + (f", pooled text as `timestep_cond` ({unet.get('time_cond_proj_dim')}-d)"
           if unet.get("time_cond_proj_dim") else "")
        + (f"; {p_unet / 1e6:.2f} M parameters" if p_unet else "") + " |")
    add(f"| text encoder | transformers `CLIPTextModel`, {text.get('num_hidden_layers')} layers, "
        f"{text.get('hidden_size')}-d, {text.get('max_position_embeddings')} positions"
        + (f"; {p_text / 1e3:.0f} k parameters" if p_text else "") + " |")
    add(f"| tokenizer | word level, {vocab} entries (the words of the training captions + 4 specials) |")
    add(f"| scheduler | {sched.get('_class_name')}, {sched.get('num_train_timesteps')} steps, "
        f"{sched.get('beta_schedule')}, {sched.get('prediction_type')} prediction |")
    gain = pixel.get("ink_gain")
    add(f"| clip | {frames} frames x {width} x {height} {'grey' if pixel.get('gray') else 'RGB'} in [-1, 1]"
        + (f", each {patch} x {patch} block of pixels as {patch * patch} channels (pixel unshuffle: exact, "
           f"invertible, no training)" if patch > 1 else "")
        + "; larger frames are area-downsampled"
        + (f", ink darkened as value ** {gain:g}" if gain else "") + " |")
    add("")

    add("## Training")
    add("")
    losses, seconds = curve.get("loss") or [], curve.get("seconds") or []
    add("| | |")
    add("|---|---|")
    logged = (curve.get('step') or [cfg.get('steps')])[-1]
    done = cfg.get("steps_done") if not cfg.get("previous_stage") else None
    add(f"| steps | {done or logged}"
        + (f" of {cfg['steps']} scheduled (stopped by the time limit)" if done and cfg.get("steps") and done < cfg["steps"]
           else "")
        + (f"; loss logged up to step {logged}" if done and logged != done else "")
        + (f" ({steps_total} over all stages)" if steps_total and cfg.get("previous_stage") else "") + " |")
    add(f"| batch, learning rate | {cfg.get('batch')}, {cfg.get('lr')} (warm-up {cfg.get('warmup')}, AdamW, "
        f"weight decay {cfg.get('weight_decay')}), EMA {cfg.get('ema')}, caption dropout {cfg.get('cfg_drop')} |")
    if cfg.get("tdiff") or cfg.get("aux_ce"):
        add(f"| loss | epsilon MSE + {cfg.get('tdiff', 0):g} x MSE of its frame-to-frame differences (weighs "
            f"errors in the motion more; same minimiser)"
            + (f"; auxiliary caption -> motion cross-entropy on the pooled text (weight {cfg.get('aux_ce'):g}, "
               f"training-only head)" if cfg.get("aux_ce") else "") + " |")
    if losses:
        add(f"| final loss | {losses[-1]:.4f} (mean of the last 5 logged: {sum(losses[-5:]) / len(losses[-5:]):.4f}) |")
    if seconds:
        add(f"| training time | {seconds[-1] / 60:.0f} min on {_threads(cfg.get('threads', '?'))} |")
    probe = list(zip(curve.get("probe_step") or [], curve.get("probe_accuracy") or []))
    if probe:
        add(f"| caption probe | {probe[-1][1]:.2f} at step {probe[-1][0]} (chance {1 / len(MOTIONS):.3f}) |")
    add("")
    if probe:
        add("Caption probe (during training: for one held-out clip per motion, is the lowest denoising loss "
            "obtained under that motion's caption?):")
        add("")
        add("| step | " + " | ".join(str(s) for s, _ in probe) + " |")
        add("|---|" + "---|" * len(probe))
        add("| accuracy | " + " | ".join(f"{a:.2f}" for _, a in probe) + " |")
        add("")

    add("## Evaluation")
    add("")
    if not report:
        add("No evaluation report was given.")
        add("")
    else:
        env = report.get("environment") or {}
        add(f"From `{_display_path(report.get('_path', DEFAULT_EVAL))}`, written {report.get('created')} "
            f"at commit {str(nums.get('eval_commit'))[:12]}"
            + (" (a --quick run: small samples)" if report.get("quick") else "")
            + f"; torch {env.get('torch')}, {_threads(env.get('torch_threads'))}.")
        add("")
    s = report.get("sampling")
    if s:
        st = s["settings"]
        add(f"**Sampling.** {st['per_class']} held-out prompt(s) per motion, DDIM {st['steps']} steps "
            f"(eta {st.get('eta', 0):g}) from {st.get('start', 'pure noise')}, guidance {st['guidance']}; the motion of each generated clip is "
            "measured from its frames (centroid "
            "displacement, rotation, scale change) and classified. Target: 80 %.")
        add("")
        add("| motion | correct | accuracy | most often measured as |")
        add("|---|---|---|---|")
        for m, v in s["per_class"].items():
            row = s["confusion"][m]
            top = sorted(((c, p) for p, c in row.items() if c), key=lambda x: (-x[0], x[1]))[:2]
            add(f"| {m} | {v['correct']}/{v['total']} | {_pct(v['accuracy'])} | "
                + ", ".join(f"{p} ({c})" for c, p in top) + " |")
        add(f"| **all {len(s['per_class'])}** | | **{_pct(s['accuracy_all'])}** | |")
        add(f"| **directional {len(DIRECTIONAL)}** | | **{_pct(s['accuracy_directional'])}** | |")
        add("")
    d = report.get("distillation")
    if d:
        st, th = d["settings"], d["thresholds"]
        add(f"**Distillation (LiveSketch).** `animate_sketch` with this prior on held-out sketches "
            f"({', '.join(d['sketches'])}), {st['iterations']} iterations, guidance {st['guidance']}, learning "
            f"rates {st['local_lr']} (local) / {st['global_lr']} (global), t in [{st['t_min']}, {st['t_max']}), "
            f"augmentation {'on' if st['augment'] else 'off'}, {'fused' if st['fused'] else 'two'} SDS pass"
            f"{'' if st['fused'] else 'es'} per iteration, rendered at {st['render_size']} px, "
            f"{d['num_frames']} frames. A run matches when the animated control points move the prompt's way: "
            f"a displacement of more than {_pct(th['move'])} of the canvas along the named axis (and more "
            f"than along the other axis), a rotation of more than {th['rotate_deg']:g} degrees, a scale change "
            f"of more than {_pct(th['scale'])}. Target: 8 of 10 seeds per direction.")
        add("")
        add("| direction | matches |")
        add("|---|---|")
        for m, v in d["per_direction"].items():
            add(f"| {m} | {v['matches']}/{v['runs']} |")
        sp = d["seconds_per_run"]
        add("")
        if sp:
            if d.get("jobs", 1) > 1:
                how = (f"1 CPU thread per run, {d['jobs']} runs side by side on "
                       f"{(report.get('environment') or {}).get('cpu_count')} cores")
            else:
                how = _threads((report.get('environment') or {}).get('torch_threads'))
            add(f"Seconds per run: {sp['mean']} on average (median {sp['median']}, {sp['min']}-{sp['max']}) with "
                f"{how}.")
            add("")
    a = report.get("anchoring")
    if a:
        on, off = a["settings"]["on"], a["settings"]["off"]
        add(f"**Anchoring.** The runs above use the paper's formulation, where frame 0 is as free as the others. "
            f"With anchoring (`VP_SketchMotionModel` anchor_first_frame, on in the workflows and the demo) frame 0 is "
            f"the input sketch and the other frames move relative to it, with a shape-preservation term (weight "
            f"{on['shape_weight']:g}, acting past a shape residual of {on['shape_tolerance']:g}) and a smoothness "
            f"term (weight {on.get('smooth_weight', 0):g}). Compared on {', '.join(a['directions'])} x "
            f"{a['seeds']} held-out sketches ({', '.join(a['sketches'])}), {off['iterations']} iterations, the other "
            "settings as above. Every frame is compared with the input sketch by the best similarity (move, turn, "
            "uniform scale): frame 0's error, rotation and scale; the shape residual left after it (rms, relative to "
            "the sketch's rms radius; the worst frame of each run); the rotation asked of no translation or "
            "scaling and the scale asked of no translation or rotation (the largest of any frame).")
        add("")
        for line in anchoring_table(a):
            add(line)
        add("")

    add("## Limits")
    add("")
    chance = 1 / len(MOTIONS)
    if s and s["accuracy_all"] < 2 * chance:
        dtext = ""
        if d:
            got = sum(v["matches"] for v in d["per_direction"].values())
            runs = sum(v["runs"] for v in d["per_direction"].values())
            dtext = f", and LiveSketch moved sketches the prompt's way in {got} of {runs} runs"
        add(f"- **It does not follow the prompt.** Held-out prompts give the asked motion in "
            f"{_pct(s['accuracy_all'])} of generated clips, where chance is {_pct(chance)}{dtext}.")
    if s and s.get("mean_value") is not None and s["mean_value"] < WHITE_ENOUGH:
        add(f"- Sampled from {s['settings'].get('start', 'pure noise')}, its clips are not line drawings on white: "
            f"their mean value is {s['mean_value']:.2f}, where the training clips' is about 0.93 (white "
            "background; both with the ink gain). Score distillation does not start from noise (it noises the rendered sketch), so it "
            "is not affected in the same way.")
    if s and "still" in s["per_class"] and s["per_class"]["still"]["accuracy"] < FAIR:
        top = sorted(((c, p) for p, c in s["confusion"]["still"].items() if c and p != "still"), reverse=True)
        add("- Clips asked to stay still are not measured as still: the frames of a sampled clip differ a little "
            "from each other (noise the small model leaves), which the measure from pixels reads as motion"
            + (f" (mostly as {top[0][1]})" if top else "") + ".")
    if s:
        rates = {m: v["accuracy"] for m, v in s["per_class"].items()}
        good, fair, bad = _groups(rates)
        add(f"- Generating clips from text: reliably ({_pct(GOOD)} or more of held-out prompts) {_names(good)}; "
            f"sometimes ({_pct(FAIR)}-{_pct(GOOD)}) {_names(fair)}; not reliably (under {_pct(FAIR)}) {_names(bad)}.")
    if d:
        rates = {m: v["matches"] / max(1, v["runs"]) for m, v in d["per_direction"].items()}
        good, fair, bad = _groups(rates)
        parts = [f"in {_pct(GOOD)} or more of the seeds for {_names(good)}" if good else "",
                 f"in {_pct(FAIR)}-{_pct(GOOD)} for {_names(fair)}" if fair else "",
                 f"less often for {_names(bad)}" if bad else ""]
        add("- Animating a sketch (LiveSketch): the direction is right " + "; ".join(x for x in parts if x) + ". "
            "Periodic motions (sway, bounce, wave) are not measured in distillation.")
        moves = [r for r in d.get("runs", []) if r["direction"] in ("left", "right", "up", "down")]
        a = report.get("anchoring")
        if a and "translation" in a["summary"].get("on", {}).get("per_class", {}):
            t_off = a["summary"]["off"]["per_class"]["translation"]
            t_on = a["summary"]["on"]["per_class"]["translation"]
            add(f"- Distillation also adds motion nobody asked for: translations came with rotations of "
                f"{t_off['unrequested_rotation_deg']['mean']:.0f} degrees on average (up to "
                f"{t_off['unrequested_rotation_deg']['max']:.0f}) in the paper's formulation and "
                f"{t_on['unrequested_rotation_deg']['mean']:.0f} (up to {t_on['unrequested_rotation_deg']['max']:.0f}) "
                "with anchoring (largest angle of any frame against the input); the global transform has no prior "
                "against them.")
        elif moves:
            rot = sorted(abs(r["rotation"]) for r in moves)
            scales = [r["scale"] for r in moves]
            add(f"- Distillation also adds motion nobody asked for: translations asked of it came with rotations of "
                f"up to {rot[-1]:.0f} degrees (median {rot[len(rot) // 2]:.0f}) and scale changes of "
                f"x{min(scales):.2f}-x{max(scales):.2f}; the global transform has no prior against them.")
    add(f"- It sees only {frames} frames of {width} x {height} pixels: a 256 px sketch is area-downsampled "
        "to that, so fine detail (faces, texture, strokes closer than ~8 px at 256) is invisible to it, and "
        "it can only ask for the coarse motion of the whole drawing or of large parts of it.")
    add("- Black line drawings on white only: it never saw colour, fills, photographs or thick paint; "
        "such inputs are outside its training data.")
    add(f"- Text: a word-level vocabulary of {vocab} entries, the words of its training captions. Words it does "
        "not know are dropped with one warning naming them (the rest of the prompt is used); synonyms it "
        "never saw mean nothing to it. Captions carry the motion, not the subject: training subjects are "
        "drawn at random whatever the drawing (only stick figures are always called people), so \"a bird\" "
        "and \"a car\" differ only by the motion verbs the captions pair with them (flies, drives).")
    add(f"- Motion classes: {', '.join(MOTIONS)}; nothing else (no walking gait, no camera motion, no "
        "object interactions). Magnitudes follow the training ranges: translations of 18-35 % of the "
        f"canvas, rotations of 35-120 degrees, scalings by 1.35-1.8 (classification references: "
        f"{REFERENCE['translate']:g} of the canvas, {REFERENCE['rotate']:g} degrees).")
    if d:
        st = d["settings"]
        add(f"- Trained for minutes on a CPU. Score distillation used these settings (the evaluation's; "
            f"`scripts/sweep_embedded_sds.py` compares others): guidance {st['guidance']:g}, learning rates "
            f"{st['local_lr']:g} (local) / {st['global_lr']:g} (global), t in [{st['t_min']}, {st['t_max']}), "
            f"augmentation {'on' if st['augment'] else 'off'}, {st['iterations']} iterations; the LiveSketch "
            "paper's ModelScope settings are not tuned for it.")
    add("")

    add("## Figures (machine-readable)")
    add("")
    add(CARD_JSON_BEGIN)
    add("```json")
    add(_dump(nums))
    add("```")
    add(CARD_JSON_END)
    add("")
    return "\n".join(L)


def parse_card_numbers(text: str) -> dict:
    """The JSON block of a card written by `render_card`."""
    start, end = text.index(CARD_JSON_BEGIN), text.index(CARD_JSON_END)
    block = text[start + len(CARD_JSON_BEGIN):end].strip()
    block = block.removeprefix("```json").strip().removesuffix("```")
    return json.loads(block)


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prior", default=EMBEDDED_PRIOR_DIR, help="model folder (default %(default)s)")
    p.add_argument("--eval", default=DEFAULT_EVAL, help="evaluation report JSON (default %(default)s)")
    p.add_argument("--out", default=os.path.join(EMBEDDED_PRIOR_DIR, "MODEL_CARD.md"), help="default %(default)s")
    args = p.parse_args(argv)
    if not os.path.isfile(os.path.join(args.prior, "model_index.json")):
        p.error(f"not a model folder (no model_index.json): {args.prior}")
    if not os.path.isfile(args.eval):
        p.error(f"no evaluation report at {args.eval}; run `make eval-prior` (scripts/eval_embedded_prior.py)")
    report = _read(args.eval)
    report["_path"] = os.path.abspath(args.eval)
    text = render_card(args.prior, report)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {args.out}")
    return args.out


if __name__ == "__main__":
    main()
