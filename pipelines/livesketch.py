"""LiveSketch optimisation: animate a vector sketch by score distillation from a video prior.

One iteration (as the reference `animate_svg.py`):
  local pass : model -> K frames of points -> rasterize -> augment -> encode -> SDS (guidance 30)
               -> backward -> step the local optimiser only;
  global pass: the same with guidance 40 -> step the global optimiser only;
  then both learning-rate schedules advance.
`fused=True` does one SDS pass per iteration and steps both optimisers (half the prior calls).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import torch
import torchvision.transforms.functional as TF

from .livesketch_model import SketchMotionModel, build_optimizers, lr_lambda, render_points, shape_penalty, \
    motion_acceleration
from .priors.base import PromptEmbeds, VideoPrior, sds_gradient
from .raster import rasterize
from .sketch import Sketch, SketchAnimation


#: Anchoring as the workflows and the demo use it (MotionModelConfig fields), chosen with the embedded prior
#: (scripts/eval_embedded_prior.py --anchoring compares it with the paper's formulation).
ANCHORING = {"anchor": True, "shape_weight": 1000.0, "shape_tolerance": 0.1, "smooth_weight": 1000.0}


@dataclass
class MotionModelConfig:
    """Hyper-parameters of the control-point model (VP_SKETCH_MOTION_MODEL)."""

    num_frames: int = 24
    hidden: int = 128
    dropout: float = 0.1
    lambda_t: float = 1.0
    lambda_r: float = 0.01
    lambda_sh: float = 0.1
    lambda_s: float = 0.05
    use_local: bool = True
    use_global: bool = True
    local_lr: float = 5e-3
    global_lr: float = 1e-4
    # Not in the paper (off = its formulation): frame 0 is the input sketch and the motion is relative to it
    # (SketchMotionModel anchor), and a shape-preservation term (`shape_penalty`: frames whose residual after
    # the best similarity exceeds shape_tolerance of the drawing's size are pulled back, weight shape_weight).
    anchor: bool = False
    shape_weight: float = 0.0
    shape_tolerance: float = 0.1
    smooth_weight: float = 0.0  # `motion_acceleration` term (not in the paper)

    def build(self, num_points: int) -> SketchMotionModel:
        return SketchMotionModel(num_points, self.num_frames, hidden=self.hidden, dropout=self.dropout,
                                 lambda_t=self.lambda_t, lambda_r=self.lambda_r, lambda_sh=self.lambda_sh,
                                 lambda_s=self.lambda_s, use_local=self.use_local, use_global=self.use_global,
                                 anchor=self.anchor)


@dataclass
class SDSConfig:
    """Score-distillation settings (VP_SDS_GUIDANCE), defaults of the reference."""

    prompt: str = ""
    negative_prompt: str = ""
    guidance_local: float = 30.0
    guidance_global: float = 40.0
    t_min: int = 50
    # exclusive: t in 50..948, as the reference code (losses.py draws randint(50, min(950, 1000) - 1))
    t_max: int = 949
    augment: bool = True
    perspective_distortion: float = 0.5
    crop_scale: tuple = (0.4, 1.0)


@dataclass
class AnimateConfig:
    # The reference code loops over range(num_iter + 1) with num_iter 1000: 1001 iterations. Its learning-rate
    # schedule runs over num_iter = 1000 steps, ours over `iterations` (1001): the factor differs by < 0.1 %.
    iterations: int = 1001
    seed: int = 1000
    fused: bool = False
    render_size: int = 256
    fps: float = 8.0
    quality: int = 1


@dataclass
class StepTimes:
    """Seconds spent per stage, summed over the run."""

    model: float = 0.0
    rasterize: float = 0.0
    augment: float = 0.0
    encode: float = 0.0
    prior: float = 0.0
    backward: float = 0.0
    optimizer: float = 0.0
    passes: int = 0
    iterations: int = 0

    def as_dict(self) -> Dict[str, float]:
        return dict(self.__dict__)


def sample_augmentation(gen: torch.Generator, size: int, distortion: float, scale: tuple) -> dict:
    """Parameters of RandomPerspective(p=1) then square RandomResizedCrop, drawn from `gen`.

    Drawn here rather than by torchvision's transforms because those use the global RNG; the
    sampling rules are torchvision's (perspective corners within distortion*half-size; crop
    area in `scale`, aspect 1, up to 10 tries then the whole image).
    """
    h = w = size
    half_h, half_w = h // 2, w // 2
    dh, dw = int(distortion * half_h), int(distortion * half_w)

    def r(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=gen))

    start = [[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]
    end = [[r(0, dw), r(0, dh)], [w - 1 - r(0, dw), r(0, dh)],
           [w - 1 - r(0, dw), h - 1 - r(0, dh)], [r(0, dw), h - 1 - r(0, dh)]]
    area = h * w
    crop = (0, 0, h, w)
    for _ in range(10):
        target = area * float(torch.empty(1).uniform_(scale[0], scale[1], generator=gen))
        side = int(round(math.sqrt(target)))
        if 0 < side <= min(h, w):
            top, left = r(0, h - side), r(0, w - side)
            crop = (top, left, side, side)
            break
    return {"start": start, "end": end, "crop": crop}


def apply_augmentation(frames: torch.Tensor, params: dict, size: int) -> torch.Tensor:
    """Differentiable perspective (white fill) then resized crop, same parameters for every frame."""
    x = TF.perspective(frames, params["start"], params["end"], interpolation=TF.InterpolationMode.BILINEAR, fill=1.0)
    top, left, hh, ww = params["crop"]
    return TF.resized_crop(x, top, left, hh, ww, [size, size], interpolation=TF.InterpolationMode.BILINEAR,
                           antialias=True)


class Interrupted(Exception):
    pass


@dataclass
class AnimationResult:
    animation: SketchAnimation
    frames: torch.Tensor  # [K, H, W, 3] in 0..1, rendered with dropout off
    times: StepTimes
    history: list = field(default_factory=list)


def animate_sketch(sketch: Sketch, prior: VideoPrior, embeds: PromptEmbeds, model_cfg: MotionModelConfig,
                   sds: SDSConfig, cfg: AnimateConfig,
                   callback: Optional[Callable[[int, int, Optional[torch.Tensor]], None]] = None,
                   preview_every: int = 0, check_interrupt: Optional[Callable[[], None]] = None,
                   device: torch.device | str = "cpu") -> AnimationResult:
    """Optimise a SketchMotionModel so that the rendered clip matches the prompt under the prior.

    callback(step, total, preview_frames_or_None) is called after every iteration;
    check_interrupt() is called before every pass and may raise to stop.
    """
    if sketch.num_paths == 0 or sketch.num_points == 0:
        raise ValueError("the sketch has no paths to animate")
    k = model_cfg.num_frames
    if k < 2:
        raise ValueError(f"an animation needs at least 2 frames, got {k}")
    if not prior.frame_count_ok(k):
        raise ValueError(f"{prior.name} needs 1 + {prior.time_compression}*n frames, got {k}")
    device = torch.device(device)
    torch.manual_seed(cfg.seed)  # model initialisation and dropout follow the seed
    gen = torch.Generator().manual_seed(cfg.seed)

    base = sketch.points.detach().float().to(device)
    style = sketch.style.to(device)
    model = model_cfg.build(sketch.num_points).to(device)
    model.train()
    optim = build_optimizers(model, local_lr=model_cfg.local_lr, global_lr=model_cfg.global_lr)
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, lambda s: lr_lambda(s, total_steps=max(1, cfg.iterations)))
                  for o in optim if o is not None]

    size = cfg.render_size
    times = StepTimes()
    history = []
    if cfg.fused:
        passes = [(sds.guidance_local, True, True)]
    else:
        passes = [(sds.guidance_local, True, False), (sds.guidance_global, False, True)]
        if not model_cfg.use_global:
            passes = passes[:1]
        if not model_cfg.use_local:
            passes = [(sds.guidance_global, False, True)]

    for step in range(cfg.iterations):
        for guidance, step_local, step_global in passes:
            if check_interrupt is not None:
                check_interrupt()
            optim.zero_grad()
            t0 = time.perf_counter()
            points, _aux = model(base)
            t1 = time.perf_counter()
            frames = rasterize(points, style, (sketch.width, sketch.height), (size, size), quality=cfg.quality)
            frames = frames.permute(0, 3, 1, 2)  # [K, 3, H, W]
            t2 = time.perf_counter()
            if sds.augment:
                frames = apply_augmentation(frames, sample_augmentation(gen, size, sds.perspective_distortion,
                                                                        sds.crop_scale), size)
            t3 = time.perf_counter()
            latents = prior.encode_frames(frames)
            t4 = time.perf_counter()
            t = int(torch.randint(sds.t_min, sds.t_max, (1,), generator=gen))
            noise = torch.randn(latents.shape, generator=gen).to(latents.device, latents.dtype)
            grad = sds_gradient(prior, latents, embeds, guidance, t, noise)
            t5 = time.perf_counter()
            if model_cfg.shape_weight > 0 or model_cfg.smooth_weight > 0:
                penalty = points.new_zeros(())
                if model_cfg.shape_weight > 0:
                    penalty = penalty + model_cfg.shape_weight * shape_penalty(base, points, model_cfg.shape_tolerance)
                if model_cfg.smooth_weight > 0:
                    penalty = penalty + model_cfg.smooth_weight * motion_acceleration(base, points)
                torch.autograd.backward([latents, penalty], [grad, None])
            else:
                latents.backward(gradient=grad)
            t6 = time.perf_counter()
            optim.step(local=step_local, global_=step_global)
            t7 = time.perf_counter()
            times.model += t1 - t0
            times.rasterize += t2 - t1
            times.augment += t3 - t2
            times.encode += t4 - t3
            times.prior += t5 - t4
            times.backward += t6 - t5
            times.optimizer += t7 - t6
            times.passes += 1
            history.append({"step": step, "t": t, "grad_norm": float(grad.float().norm())})
        for sched in schedulers:
            sched.step()
        times.iterations += 1
        if callback is not None:
            preview = None
            if preview_every and (step + 1) % preview_every == 0:
                with torch.no_grad():
                    preview = rasterize(render_points(model, base), style, (sketch.width, sketch.height))
            callback(step + 1, cfg.iterations, preview)

    final_points = render_points(model, base).detach().cpu()
    with torch.no_grad():
        frames = rasterize(final_points, sketch.style, (sketch.width, sketch.height), (size, size),
                           quality=max(cfg.quality, 1)).clamp(0, 1)
    anim = SketchAnimation(final_points, sketch.style, sketch.width, sketch.height, cfg.fps)
    return AnimationResult(anim, frames, times, history)
