#!/usr/bin/env python
"""Train the embedded text-to-video prior (pipelines/embedded/model.py) on procedural clips.

    python scripts/train_embedded_prior.py --steps 1200 --batch 8 --out pipelines/assets/embedded_prior

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
from pipelines.embedded.model import (FRAMES, MAX_TOKENS, SCHEDULER_CONFIG, SIZE, TEXT_CONFIG, UNET_CONFIG,  # noqa: E402
                                      build_models, save_folder, write_word_tokenizer)
from pipelines.priors.diffusers_prior import load_tokenizer, tokenize_prompts  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--cfg-drop", type=float, default=0.1)
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=1, help="data loader processes (0 = in the training loop)")
    p.add_argument("--out", default=os.path.join("pipelines", "assets", "embedded_prior"))
    p.add_argument("--ckpt-minutes", type=float, default=5.0)
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop (and save) after this many minutes; 0 = off")
    p.add_argument("--log-every", type=int, default=10)
    return p.parse_args(argv)


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
    tok_dir = os.path.join(args.out + ".tokenizer-tmp")
    write_word_tokenizer(tok_dir, vocab)
    tokenizer = load_tokenizer(tok_dir)
    shutil.rmtree(tok_dir, ignore_errors=True)
    abar = DDIMScheduler.from_config(SCHEDULER_CONFIG).alphas_cumprod.float()

    ema = [copy.deepcopy(m).requires_grad_(False).eval() for m in (unet, text_encoder)]
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / args.warmup) * (
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, args.steps))))))

    data = MotionClipDataset(length=args.steps * args.batch, seed=args.data_seed, frames=FRAMES, size=SIZE,
                             split="train")
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

    curve = {"step": [], "loss": [], "lr": [], "seconds": []}
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
        frames, captions = batch["frames"], list(batch["caption"])
        b = frames.shape[0]
        drop = torch.rand(b, generator=gen) < args.cfg_drop
        captions = ["" if d else c for c, d in zip(captions, drop.tolist())]
        ids = tokenize_prompts(tokenizer, captions, MAX_TOKENS)
        x0 = (frames * 2 - 1).permute(0, 2, 1, 3, 4)  # [B, 3, K, H, W]
        t = torch.randint(0, len(abar), (b,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        a = abar[t].view(b, 1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        hidden = text_encoder(ids).last_hidden_state
        pred = unet(xt, t, encoder_hidden_states=hidden).sample
        loss = F.mse_loss(pred, noise)
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
        window.append(float(loss))
        if step % args.log_every == 0 or step == args.steps:
            elapsed = time.time() - start
            curve["step"].append(step)
            curve["loss"].append(sum(window) / len(window))
            curve["lr"].append(opt.param_groups[0]["lr"])
            curve["seconds"].append(round(elapsed, 1))
            window = []
            print(f"step {step}/{args.steps} loss {curve['loss'][-1]:.4f} lr {curve['lr'][-1]:.2e} "
                  f"{elapsed / step:.2f} s/step", flush=True)
        out_of_time = args.max_minutes > 0 and time.time() - start > args.max_minutes * 60
        if step >= args.steps or out_of_time:
            break
        if time.time() - last_ckpt > args.ckpt_minutes * 60:
            checkpoint(step, False)
            last_ckpt = time.time()
    checkpoint(step, step >= args.steps)
    print(f"done: {step} steps in {(time.time() - start) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
