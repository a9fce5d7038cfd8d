#!/usr/bin/env python
"""Train the embedded text-to-video prior (pipelines/embedded/model.py) on procedural clips.

    python scripts/train_embedded_prior.py --out pipelines/assets/embedded_prior

The defaults are the shipped model's run (1900 scheduled steps of 32 clips, stopped by --max-minutes 57
at step 1854 on 2 cores); `--max-minutes 0 --stop-step 1854` repeats it step for step on any machine.

Seeded: model init from --seed, clips are make_clip(--data-seed, i) in order (balanced over the 12
motions), captions from the train split; timesteps, noise and caption dropout come from one
generator seeded by --seed. Epsilon prediction on the 1000-step cosine schedule, classifier-free
guidance dropout (--cfg-drop of the captions replaced by ""), AdamW with warm-up and cosine decay,
gradient clipping, EMA weights (those are saved). The UNet and the text encoder train together.
The model folder is (re)written every --ckpt-minutes and at the end, with loss_curve.json and
training_config.json, so an interrupted run leaves a usable model. --max-minutes stops early.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipelines.embedded.data import MotionClipDataset, build_vocab  # noqa: E402
from pipelines.embedded.data import MOTIONS, caption, make_clip  # noqa: E402
from pipelines.embedded.model import (FRAMES, MAX_TOKENS, PIXEL, SCHEDULER_CONFIG, SIZE, STROKE_PX,  # noqa: E402
                                      TEXT_CONFIG, UNET_CONFIG, build_models, save_folder, write_word_tokenizer)
from pipelines.priors.diffusers_prior import load_tokenizer, pixels_to_latents, tokenize_prompts  # noqa: E402


def encode_batch(frames: torch.Tensor) -> torch.Tensor:
    """[B, K, 3, H, W] clips in 0..1 -> [B, C, K, h, w] latents, the prior's own map (pixels_to_latents)."""
    b, k = frames.shape[:2]
    z = pixels_to_latents(frames.reshape(b * k, *frames.shape[2:]), PIXEL["ink_gain"], PIXEL["gray"], PIXEL["patch"])[0]
    return z.reshape(z.shape[0], b, k, *z.shape[2:]).permute(1, 0, 2, 3, 4)


def denoising_loss(pred: torch.Tensor, noise: torch.Tensor, tdiff: float) -> torch.Tensor:
    """Per-clip eps MSE plus `tdiff` x the MSE of its frame-to-frame differences.

    The quadratic form e^T (I + tdiff D^T D) e is positive definite, so its minimiser is still the
    conditional mean of the noise (the model stays a proper denoiser); it only weighs errors in how the
    frames change (the motion, which only the caption tells at high noise) more than errors in the drawing."""
    err = pred.float() - noise
    loss = err.pow(2).mean((1, 2, 3, 4))
    if tdiff > 0:
        loss = loss + tdiff * (err[:, :, 1:] - err[:, :, :-1]).pow(2).mean((1, 2, 3, 4))
    return loss


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=1900, help="scheduled steps (the learning-rate schedule's length)")
    p.add_argument("--stop-step", type=int, default=0, help="stop after this step (0 = --steps); the schedule is "
                   "still that of --steps")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=8e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--cfg-drop", type=float, default=0.1)
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=0, help="data loader processes (0 = in the training loop: a clip "
                   "takes ~2 ms to make, so a worker would only take a core from the UNet)")
    p.add_argument("--out", default=os.path.join("pipelines", "assets", "embedded_prior"))
    p.add_argument("--ckpt-minutes", type=float, default=5.0)
    p.add_argument("--max-minutes", type=float, default=57.0, help="stop (and save) after this many minutes; 0 = off")
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--init-from", default=None, help="start from the weights of a model folder (fine-tuning)")
    p.add_argument("--probe-every", type=int, default=100,
                   help="every this many steps, log the caption-probe accuracy (0 = off; see probe())")
    p.add_argument("--snr-weight-max", type=float, default=0.0,
                   help="> 0: weight the eps loss by clamp((1 - abar) / abar, 1, this), i.e. towards x0 error at high "
                        "noise, where only the caption tells the motion; 0 = plain eps MSE")
    p.add_argument("--tdiff", type=float, default=1.0,
                   help="weight of the frame-difference term of the loss (see denoising_loss); 0 = plain eps MSE")
    p.add_argument("--aux-ce", type=float, default=1.0,
                   help="weight of an auxiliary caption -> motion classification loss on the text encoder's pooled "
                        "output (a training-only linear head), so the caption's motion is separable from the start")
    return p.parse_args(argv)


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def merge_curves(first: dict, second: dict) -> dict:
    """Loss curve of a fine-tuning run appended to its initial model's (steps and seconds continue);
    "stage_starts" lists the first step of each stage."""
    first = {k: list(v) for k, v in (first or {}).items()}
    if not first.get("step"):
        return {k: list(v) for k, v in second.items()}
    s0, t0 = first["step"][-1], first["seconds"][-1]
    out = dict(first)
    out["stage_starts"] = list(first.get("stage_starts", [0])) + [s0]
    out["step"] = first["step"] + [s0 + s for s in second["step"]]
    out["seconds"] = first["seconds"] + [round(t0 + t, 1) for t in second["seconds"]]
    for k in ("loss", "lr"):
        out[k] = first[k] + list(second[k])
    out["offset"] = (s0, t0)
    return out


class Probe:
    """Does the model use the caption? Denoising classification on held-out clips and captions.

    For one held-out clip per motion and fixed noise at t in `ts`, the eps loss under each of the
    12 motions' held-out captions; the clip counts as right when its own motion's caption gives
    the lowest loss. Chance is 1/12; a model that ignores the text scores about chance.
    """

    def __init__(self, data_seed: int, ts=(300, 500, 700), per_motion: int = 1):
        self.clips = [make_clip(data_seed + 7777, i, frames=FRAMES, size=SIZE, split="heldout", stroke_px=STROKE_PX)
                      for i in range(len(MOTIONS) * per_motion)]
        self.captions = [caption(m, 99, "heldout") for m in MOTIONS]
        self.ts = ts
        g = torch.Generator().manual_seed(5)
        shape = encode_batch(self.clips[0]["frames"][None]).shape[1:]
        self.noise = torch.randn((len(ts), len(self.clips), *shape), generator=g)

    @torch.no_grad()
    def __call__(self, unet, text_encoder, tokenizer, abar) -> float:
        was = unet.training, text_encoder.training
        unet.eval()
        text_encoder.eval()
        out = text_encoder(tokenize_prompts(tokenizer, self.captions, MAX_TOKENS))
        x0 = encode_batch(torch.stack([c["frames"] for c in self.clips]))
        labels = torch.tensor([c["label"] for c in self.clips])
        losses = torch.zeros(len(self.clips), len(MOTIONS))
        for ti, t in enumerate(self.ts):
            a = abar[t]
            xt = a.sqrt() * x0 + (1 - a).sqrt() * self.noise[ti]
            for m in range(len(MOTIONS)):
                b = len(self.clips)
                pred = unet(xt, torch.full((b,), t), encoder_hidden_states=out.last_hidden_state[m:m + 1].expand(b, -1, -1),
                            timestep_cond=out.pooler_output[m:m + 1].expand(b, -1)).sample
                losses[:, m] += ((pred - self.noise[ti]) ** 2).mean((1, 2, 3, 4))
        unet.train(was[0])
        text_encoder.train(was[1])
        return float((losses.argmin(1) == labels).float().mean())


def _worker_init(_):
    torch.set_num_threads(1)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)

    from diffusers import DDIMScheduler

    vocab = build_vocab()
    unet, text_encoder = build_models(vocab, seed=args.seed)
    if args.init_from:
        from diffusers import UNet3DConditionModel
        from transformers import CLIPTextModel

        unet = UNet3DConditionModel.from_pretrained(os.path.join(args.init_from, "unet"))
        text_encoder = CLIPTextModel.from_pretrained(os.path.join(args.init_from, "text_encoder"))
    tok_dir = os.path.join(args.out + ".tokenizer-tmp")
    write_word_tokenizer(tok_dir, vocab)
    tokenizer = load_tokenizer(tok_dir)
    shutil.rmtree(tok_dir, ignore_errors=True)
    abar = DDIMScheduler.from_config(SCHEDULER_CONFIG).alphas_cumprod.float()
    for m in unet.modules():  # the temporal convolutions' dropout: no use with endless fresh data, and slow on CPU
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    probe = Probe(args.data_seed) if args.probe_every else None

    ema = [copy.deepcopy(m).requires_grad_(False).eval() for m in (unet, text_encoder)]
    head = torch.nn.Linear(text_encoder.config.hidden_size, len(MOTIONS))  # --aux-ce only; not saved
    params = list(unet.parameters()) + list(text_encoder.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / args.warmup) * (
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, args.steps))))))

    data = MotionClipDataset(length=args.steps * args.batch, seed=args.data_seed, frames=FRAMES, size=SIZE,
                             split="train", stroke_px=STROKE_PX)
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch, shuffle=False, num_workers=args.workers,
                                         worker_init_fn=_worker_init if args.workers else None,
                                         persistent_workers=bool(args.workers), prefetch_factor=4 if args.workers else None)
    n_unet = sum(p.numel() for p in unet.parameters())
    n_te = sum(p.numel() for p in text_encoder.parameters())
    config = dict(vars(args), frames=FRAMES, size=SIZE, max_tokens=MAX_TOKENS, unet=UNET_CONFIG, text=TEXT_CONFIG,
                  scheduler=SCHEDULER_CONFIG, vocab_size=len(vocab), params_unet=n_unet, params_text_encoder=n_te,
                  data="MotionClipDataset(split='train'), make_clip(data_seed, i), i = 0 .. steps*batch-1",
                  torch=torch.__version__)
    print(f"unet {n_unet / 1e6:.2f} M, text encoder {n_te / 1e6:.3f} M parameters; vocab {len(vocab)}", flush=True)

    curve = {"step": [], "loss": [], "lr": [], "seconds": [], "probe_step": [], "probe_accuracy": []}
    if args.init_from:  # fine-tuning: the curve and config continue those of the initial model
        config["previous_stage"] = _read_json(os.path.join(args.init_from, "training_config.json"))
        curve = merge_curves(_read_json(os.path.join(args.init_from, "loss_curve.json")), curve)
    start = last_ckpt = time.time()
    window = []

    def checkpoint(step: int, final: bool):
        cfg = dict(config, steps_done=step, finished=final, train_seconds=round(time.time() - start, 1))
        tmp = args.out + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        save_folder(tmp, ema[0], ema[1], vocab, {"loss_curve.json": curve, "training_config.json": cfg})
        old = args.out + ".old"
        shutil.rmtree(old, ignore_errors=True)
        if os.path.isdir(args.out):
            os.replace(args.out, old)
        os.replace(tmp, args.out)
        shutil.rmtree(old, ignore_errors=True)
        print(f"saved {args.out} at step {step}", flush=True)

    step = 0
    unet.train()
    text_encoder.train()
    for batch in loader:
        frames, captions, labels = batch["frames"], list(batch["caption"]), batch["label"]
        b = frames.shape[0]
        drop = torch.rand(b, generator=gen) < args.cfg_drop
        captions = ["" if d else c for c, d in zip(captions, drop.tolist())]
        ids = tokenize_prompts(tokenizer, captions, MAX_TOKENS)
        x0 = encode_batch(frames)  # [B, C, K, h, w]
        t = torch.randint(0, len(abar), (b,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        a = abar[t].view(b, 1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        text = text_encoder(ids)
        pred = unet(xt, t, encoder_hidden_states=text.last_hidden_state, timestep_cond=text.pooler_output).sample
        per_clip = denoising_loss(pred, noise, args.tdiff)
        if args.snr_weight_max > 0:
            w = ((1 - abar[t]) / abar[t]).clamp(1.0, args.snr_weight_max)
            loss = per_clip.mul(w).mean() / w.mean().detach()
        else:
            loss = per_clip.mean()
        diffusion_loss = loss.detach()
        if args.aux_ce > 0 and not bool(drop.all()):
            keep = ~drop
            ce = F.cross_entropy(head(text.pooler_output[keep]), labels[keep])
            loss = loss + args.aux_ce * ce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        step += 1
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for live, avg in zip((unet, text_encoder), ema):
                for p, q in zip(live.parameters(), avg.parameters()):
                    q.lerp_(p, 1 - decay)
        window.append(float(diffusion_loss))
        out_of_time = args.max_minutes > 0 and time.time() - start > args.max_minutes * 60
        stopping = step >= (args.stop_step or args.steps) or out_of_time
        if step % args.log_every == 0 or stopping:
            elapsed = time.time() - start
            s0, t0 = curve.get("offset", (0, 0.0))
            curve["step"].append(s0 + step)
            curve["loss"].append(sum(window) / len(window))
            curve["lr"].append(opt.param_groups[0]["lr"])
            curve["seconds"].append(round(t0 + elapsed, 1))
            window = []
            print(f"step {step}/{args.steps} loss {curve['loss'][-1]:.4f} lr {curve['lr'][-1]:.2e} "
                  f"{elapsed / step:.2f} s/step", flush=True)
        if probe is not None and step % args.probe_every == 0:
            acc = probe(unet, text_encoder, tokenizer, abar)
            curve["probe_step"].append(curve["step"][-1] if curve["step"] else step)
            curve["probe_accuracy"].append(acc)
            print(f"step {step} caption probe accuracy {acc:.3f} (chance {1 / len(MOTIONS):.3f})", flush=True)
        if stopping:
            break
        if time.time() - last_ckpt > args.ckpt_minutes * 60:
            checkpoint(step, False)
            last_ckpt = time.time()
    checkpoint(step, step >= args.steps)
    print(f"done: {step} steps in {(time.time() - start) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
