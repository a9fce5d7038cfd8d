"""Procedural training data for the embedded text-to-video prior: moving line drawings + captions.

Everything here is seeded and needs no download: a clip is a random line drawing
(`random_sketch`), moved by one of the motion classes in `MOTIONS` (`motion_points`), rendered
with the pack's own rasterizer (black strokes on white), and described by a templated caption
(`caption`). `make_clip(seed, index)` and `MotionClipDataset` tie them together; the same
(seed, index) always gives bit-identical tensors (same torch version and thread count), so data
loader workers and resumed runs see the same data.

Conventions: screen coordinates, x right, y down. "up" = decreasing y. Rotation angles follow
`pipelines.motion` (positive = clockwise on screen) and are reported in degrees here.

Motion classes (`MOTIONS`) and their visible magnitudes over the clip (`amplitude` in [0, 1]
interpolates each range; `speed` in [0, 1] is the tempo, see `motion_points`):
  left / right / up / down     translate 18-35 % of the canvas side
  clockwise / counterclockwise rotate 35-120 deg about the drawing's centroid
  grow / shrink                scale x1.35-1.8 (grow ends at, shrink starts at, the drawing's size)
  sway                         rotate back and forth +-12-30 deg about the drawing's bottom centre
  bounce                       hop up by 12-25 % of the canvas height and land again
  wave                         travelling sinusoidal deformation, 2.5-5 % of the canvas
  still                        at most a sub-pixel jitter
Periodic motions (sway, bounce, wave) complete whole cycles, so first and last frames agree.

Captions: subject + motion phrase in a sentence frame, e.g. "a bird flies to the left",
"the drawing is spinning clockwise", "a video of it swaying back and forth". Each motion has
groups of verbs x complements; the TRAIN / HELD-OUT split is made per (verb, complement) pair
with a Latin-square rule ((i + j) % 3 == 2 is held out), so every held-out verb and every
held-out complement also occurs in some train pair *of the same motion*: held-out phrases are
new combinations of trained words ("glides leftwards" when training saw "glides to the left"
and "drifts leftwards"). Held-out captions use a held-out pair in a train frame, or any pair in
a held-out frame; held-out frames add only the function words in `HELDOUT_NEW_WORDS` ("that",
"there", "where"), which a word-level vocabulary built on the train captions maps to <unk>.
See `caption_space` for the full enumeration and `motion_from_caption` for a keyword parser.

Motion measures (`measure_motion` from control points, `measure_motion_from_frames` from
pixels) return the same keys, and `classify_motion` maps them to a class; the evaluation of a
generated clip compares that class with the prompt's.
"""
from __future__ import annotations

import math
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..motion import GlobalParams, apply_global
from ..raster import rasterize
from ..sketch import PathStyle, Sketch, SketchAnimation

__all__ = [
    "MOTIONS", "KINDS", "HELDOUT_NEW_WORDS", "MOTION_KEYWORDS",
    "random_sketch", "motion_points", "caption", "caption_space", "motion_from_caption",
    "make_clip", "MotionClipDataset", "tokenize", "Vocab", "build_vocab",
    "measure_motion", "measure_motion_from_frames", "motion_scores", "classify_motion", "clip_generator",
    "DIRECTIONAL", "REFERENCE",
]

MOTIONS = ("left", "right", "up", "down", "clockwise", "counterclockwise", "grow", "shrink",
           "sway", "bounce", "wave", "still")
DIRECTIONAL = MOTIONS[:8]  # the classes with a net displacement, rotation or scaling
KINDS = ("closed", "open", "figure", "doodle")

GenLike = Union[torch.Generator, int]
Size = Union[int, Tuple[int, int]]

# ---------------------------------------------------------------------------------------------
# Randomness


def _mix64(*values: int) -> int:
    """SplitMix64-style hash of a tuple of integers -> a 63-bit seed (no collisions of seed*k+i)."""
    mask = (1 << 64) - 1
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (int(v) & mask)) & mask
        h = (h + 0x9E3779B97F4A7C15) & mask
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & mask
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & mask
        h ^= h >> 31
    return h & ((1 << 63) - 1)


def clip_generator(seed: int, index: int, stream: int = 0) -> torch.Generator:
    """The torch.Generator of clip (seed, index); `stream` separates independent uses (captions)."""
    return torch.Generator().manual_seed(_mix64(seed, index, stream))


class _Rng:
    """Python-float draws from a torch.Generator, fetched 64 at a time (one torch call per block)."""

    def __init__(self, gen: GenLike):
        self.gen = gen if isinstance(gen, torch.Generator) else torch.Generator().manual_seed(int(gen))
        self._buf: List[float] = []

    def u(self) -> float:
        if not self._buf:
            self._buf = torch.rand(64, generator=self.gen, dtype=torch.float64).tolist()[::-1]
        return self._buf.pop()

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.u()

    def randint(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi] (inclusive)."""
        return lo + min(int(self.u() * (hi - lo + 1)), hi - lo)

    def choice(self, seq):
        return seq[self.randint(0, len(seq) - 1)]

    def chance(self, p: float) -> bool:
        return self.u() < p

    def shuffled(self, seq) -> list:
        out = list(seq)
        for i in range(len(out) - 1, 0, -1):
            j = self.randint(0, i)
            out[i], out[j] = out[j], out[i]
        return out


def _as_rng(gen: Union[GenLike, _Rng]) -> _Rng:
    return gen if isinstance(gen, _Rng) else _Rng(gen)


def _wh(size: Size) -> Tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[1]))


# ---------------------------------------------------------------------------------------------
# Drawing primitives, in a unit box around (0, 0). A path is (control points, closed) with the
# layout of `pipelines.sketch`: open 3S+1 points, closed 3S points.

Pt = Tuple[float, float]
Path = Tuple[List[Pt], bool]
KAPPA = 0.5523


def _add(a: Pt, b: Pt, s: float = 1.0) -> Pt:
    return (a[0] + s * b[0], a[1] + s * b[1])


def _lerp(a: Pt, b: Pt, t: float) -> Pt:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


def _polar(r: float, angle: float) -> Pt:
    return (r * math.cos(angle), r * math.sin(angle))


def _straight(points: Sequence[Pt], closed: bool = False) -> Path:
    """Polyline / polygon through `points` made of straight cubics."""
    pts = list(points)
    n = len(pts) if closed else len(pts) - 1
    out: List[Pt] = []
    for i in range(n):
        a, b = pts[i], pts[(i + 1) % len(pts)]
        out += [a, _lerp(a, b, 1 / 3), _lerp(a, b, 2 / 3)]
    if not closed:
        out.append(pts[-1])
    return out, closed


def _smooth(points: Sequence[Pt], closed: bool = False) -> Path:
    """Catmull-Rom spline through `points` as cubic Beziers."""
    p = list(points)
    n = len(p)
    segs = n if closed else n - 1
    out: List[Pt] = []
    for i in range(segs):
        a, b = p[i], p[(i + 1) % n]
        prev = p[(i - 1) % n] if (closed or i > 0) else a
        nxt = p[(i + 2) % n] if (closed or i + 2 < n) else b
        out += [a, _add(a, (b[0] - prev[0], b[1] - prev[1]), 1 / 6), _add(b, (nxt[0] - a[0], nxt[1] - a[1]), -1 / 6)]
    if not closed:
        out.append(p[-1])
    return out, closed


def _ellipse(c: Pt, rx: float, ry: float, angle: float, start: float) -> Path:
    ca, sa = math.cos(angle), math.sin(angle)

    def place(x: float, y: float) -> Pt:
        x, y = x * rx, y * ry
        return (c[0] + ca * x - sa * y, c[1] + sa * x + ca * y)

    out: List[Pt] = []
    for i in range(4):
        a0, a1 = start + i * math.pi / 2, start + (i + 1) * math.pi / 2
        p0, p1 = (math.cos(a0), math.sin(a0)), (math.cos(a1), math.sin(a1))
        c1 = (p0[0] - KAPPA * math.sin(a0), p0[1] + KAPPA * math.cos(a0))
        c2 = (p1[0] + KAPPA * math.sin(a1), p1[1] - KAPPA * math.cos(a1))
        out += [place(*p0), place(*c1), place(*c2)]
    return out, True


def _arc(c: Pt, r: float, a0: float, sweep: float) -> Path:
    n = max(1, math.ceil(abs(sweep) / (math.pi / 2) - 1e-9))
    d = sweep / n
    k = 4 / 3 * math.tan(d / 4)
    out: List[Pt] = []
    for i in range(n):
        a, b = a0 + i * d, a0 + (i + 1) * d
        pa, pb = _add(c, _polar(r, a)), _add(c, _polar(r, b))
        out += [pa, _add(pa, (-math.sin(a), math.cos(a)), k * r), _add(pb, (math.sin(b), -math.cos(b)), k * r)]
    out.append(_add(c, _polar(r, a0 + sweep)))
    return out, False


def _closed_shape(rng: _Rng, c: Pt, r: float) -> Path:
    kind = rng.choice(("ellipse", "polygon", "star", "blob"))
    angle = rng.uniform(0, 2 * math.pi)
    if kind == "ellipse":
        return _ellipse(c, r, r * rng.uniform(0.45, 1.0), angle, rng.uniform(0, 2 * math.pi))
    if kind == "polygon":
        n = rng.randint(3, 6)
        return _straight([_add(c, _polar(r * rng.uniform(0.8, 1.0), angle + 2 * math.pi * i / n)) for i in range(n)],
                         closed=True)
    if kind == "star":
        n, inner = rng.randint(4, 6), rng.uniform(0.35, 0.6)
        return _straight([_add(c, _polar(r * (1.0 if i % 2 == 0 else inner), angle + math.pi * i / n))
                          for i in range(2 * n)], closed=True)
    n = rng.randint(4, 6)
    return _smooth([_add(c, _polar(r * rng.uniform(0.55, 1.0), angle + 2 * math.pi * (i + rng.uniform(-0.2, 0.2)) / n))
                    for i in range(n)], closed=True)


def _open_shape(rng: _Rng, c: Pt, size: float) -> Path:
    kind = rng.choice(("line", "arc", "zigzag", "spiral", "squiggle"))
    angle = rng.uniform(0, 2 * math.pi)
    if kind == "line":
        d = _polar(size / 2, angle)
        return _straight([_add(c, d, -1), _add(c, d)])
    if kind == "arc":
        return _arc(c, size / 2, angle, rng.choice((-1, 1)) * rng.uniform(0.4, 1.5) * math.pi)
    if kind == "zigzag":
        n = rng.randint(3, 6)
        along, across = _polar(size / n, angle), _polar(size * rng.uniform(0.1, 0.25), angle + math.pi / 2)
        start = _add(c, along, -n / 2)
        return _straight([_add(_add(start, along, i), across, 1 if i % 2 else -1) for i in range(n + 1)])
    if kind == "spiral":
        turns, n, sign = rng.uniform(1.0, 2.2), 7, rng.choice((-1, 1))
        return _smooth([_add(c, _polar(size / 2 * (0.15 + 0.85 * i / (n - 1)),
                                       angle + sign * 2 * math.pi * turns * i / (n - 1))) for i in range(n)])
    n, p, heading, pts = rng.randint(3, 6), c, angle, []
    step = size / (n - 1)
    for _ in range(n):
        pts.append(p)
        heading += rng.uniform(-1.4, 1.4)
        p = _add(p, _polar(step, heading))
    return _smooth(pts)


def _closed_drawing(rng: _Rng, n: int) -> List[Path]:
    """A cluster of closed shapes, decorated with small shapes and short lines."""
    big = rng.randint(1, min(4, n))
    centers = [(rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6)) for _ in range(big)]
    paths = [_closed_shape(rng, c, rng.uniform(0.25, 0.55)) for c in centers]
    shrink = min(1.0, math.sqrt(10 / n))
    while len(paths) < n:
        c = _add(rng.choice(centers), (rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4)))
        if rng.chance(0.6):
            paths.append(_closed_shape(rng, c, rng.uniform(0.06, 0.18) * shrink))
        else:
            paths.append(_open_shape(rng, c, rng.uniform(0.15, 0.4) * shrink))
    return paths


def _open_drawing(rng: _Rng, n: int) -> List[Path]:
    """Open strokes: lines, arcs, zigzags, spirals and squiggles."""
    shrink = min(1.0, math.sqrt(8 / n))  # many strokes: smaller ones, so the drawing stays legible
    return [_open_shape(rng, (rng.uniform(-0.7, 0.7), rng.uniform(-0.7, 0.7)), rng.uniform(0.25, 0.9) * shrink)
            for _ in range(n)]


def _doodle(rng: _Rng, n: int) -> List[Path]:
    """Pen-walk doodle: strokes next to each other (squiggles, loops, spirals, dots, dashes)."""
    paths, pen = [], (0.0, 0.0)
    shrink = min(1.0, math.sqrt(8 / n))
    for _ in range(n):
        pen = _add(pen, _polar(rng.uniform(0.1, 0.4), rng.uniform(0, 2 * math.pi)))
        pen = (max(-1.0, min(1.0, pen[0])), max(-1.0, min(1.0, pen[1])))
        r = rng.u()
        if r < 0.45:
            paths.append(_open_shape(rng, pen, rng.uniform(0.2, 0.6) * shrink))
        elif r < 0.8:
            paths.append(_closed_shape(rng, pen, rng.uniform(0.06, 0.25) * shrink))
        else:
            s = rng.uniform(0.03, 0.06)
            paths.append(_ellipse(pen, s, s, 0.0, rng.uniform(0, 2 * math.pi)))
    return paths


def _stick_figure(rng: _Rng, n: int) -> List[Path]:
    """Stick figure (y down): head, torso, arms, legs; extras (face, hat, hair, ...) up to n strokes."""
    head_r = rng.uniform(0.16, 0.24)
    neck = (rng.uniform(-0.08, 0.08), -0.45)
    hip = (rng.uniform(-0.05, 0.05), 0.25)
    head = (neck[0] + rng.uniform(-0.05, 0.05), neck[1] - head_r)
    shoulder = _lerp(neck, hip, 0.2)
    bend = rng.uniform(-0.08, 0.08)
    torso = ([neck, _add(_lerp(neck, hip, 1 / 3), (bend, 0)), _add(_lerp(neck, hip, 2 / 3), (bend, 0)), hip], False)
    arms, legs = [], []
    for side in (-1, 1):
        up_angle = math.pi / 2 - side * rng.uniform(0.3, 2.6)  # from hanging down to raised, outwards
        elbow = _add(shoulder, _polar(rng.uniform(0.25, 0.33), up_angle))
        hand = _add(elbow, _polar(rng.uniform(0.22, 0.3), up_angle - side * rng.uniform(-0.6, 0.9)))
        knee = _add(hip, (side * rng.uniform(0.06, 0.25), rng.uniform(0.28, 0.36)))
        foot = _add(knee, (side * rng.uniform(-0.05, 0.2), rng.uniform(0.28, 0.36)))
        arms.append((elbow, hand))
        legs.append((knee, foot))
    (el, hl), (er, hr) = arms
    (kl, fl), (kr, fr) = legs
    paths = [_ellipse(head, head_r, head_r * rng.uniform(0.9, 1.1), 0.0, rng.uniform(0, 2 * math.pi)), torso]
    if n < 6:  # four strokes: both arms in one path, both legs in one path
        paths += [_straight([hl, el, shoulder, er, hr]), _straight([fl, kl, hip, kr, fr])]
    else:
        paths += [_straight([shoulder, el, hl]), _straight([shoulder, er, hr]),
                  _straight([hip, kl, fl]), _straight([hip, kr, fr])]
    r = head_r
    extras = [
        lambda: _ellipse(_add(head, (-0.4 * r, -0.15 * r)), 0.1 * r, 0.12 * r, 0.0, 0.0),
        lambda: _ellipse(_add(head, (0.4 * r, -0.15 * r)), 0.1 * r, 0.12 * r, 0.0, 0.0),
        lambda: _arc(head, 0.55 * r, rng.uniform(0.2, 0.5) * math.pi, rng.uniform(0.3, 0.6) * math.pi),
        lambda: _straight([_add(head, (0, -0.05 * r)), _add(head, (0.1 * r, 0.2 * r))]),
        lambda: _ellipse(hl, 0.06, 0.06, 0.0, 0.0),
        lambda: _ellipse(hr, 0.06, 0.06, 0.0, 0.0),
        lambda: _straight([fl, _add(fl, (-0.12, 0.0))]),
        lambda: _straight([fr, _add(fr, (0.12, 0.0))]),
        lambda: _straight([_add(head, (-0.7 * r, -0.9 * r)), _add(head, (0.7 * r, -0.9 * r)),
                           _add(head, (0, -2.0 * r))], closed=True),
        lambda: _straight([_add(head, (-1.1 * r, -0.9 * r)), _add(head, (1.1 * r, -0.9 * r))]),
        lambda: _ellipse(_lerp(neck, hip, 0.4), 0.025, 0.025, 0.0, 0.0),
        lambda: _ellipse(_lerp(neck, hip, 0.6), 0.025, 0.025, 0.0, 0.0),
        lambda: _ellipse(_lerp(neck, hip, 0.8), 0.025, 0.025, 0.0, 0.0),
        lambda: _ellipse(_add(hr, (0.05, -0.45)), 0.14, 0.18, 0.0, 0.0),
        lambda: _straight([hr, _add(hr, (0.05, -0.27))]),
    ]
    for k in range(6):  # hair strands on the top of the head
        a = -math.pi / 2 + (k - 2.5) * 0.3
        extras.append(lambda a=a: _straight([_add(head, _polar(r, a)), _add(head, _polar(r * 1.45, a + 0.1))]))
    for make in rng.shuffled(extras)[:max(0, n - len(paths))]:
        paths.append(make())
    return paths


_KIND_BUILDERS = {"closed": _closed_drawing, "open": _open_drawing, "figure": _stick_figure, "doodle": _doodle}


def random_sketch(gen: GenLike, canvas: Size = 256, kind: Optional[str] = None, num_strokes: Optional[int] = None,
                  extent: Tuple[float, float] = (0.45, 0.7),
                  width_range: Tuple[float, float] = (1 / 45, 1 / 18)) -> Sketch:
    """A random line drawing of 4..24 cubic-Bezier strokes, centred on the canvas.

    gen: torch.Generator (or an int seed). canvas: side or (width, height) in pixels.
    kind: one of KINDS ("closed" shapes, "open" strokes, stick "figure", "doodle"); random if None.
    num_strokes: number of paths (random in 4..24 if None). extent: range of the drawing's
    largest side as a fraction of the canvas' smaller side. width_range: stroke widths as a
    fraction of the canvas' smaller side (1/45..1/18 = 0.7..1.8 px at 32 px, 1.4..3.6 px at 64).
    Black strokes, no fill.
    """
    rng = _as_rng(gen)
    W, H = _wh(canvas)
    S = min(W, H)
    kind = rng.choice(KINDS) if kind is None else kind
    if kind not in _KIND_BUILDERS:
        raise ValueError(f"unknown drawing kind {kind!r}; choose one of {', '.join(KINDS)}")
    n = rng.randint(4, 24) if num_strokes is None else int(num_strokes)
    if not 1 <= n <= 64:
        raise ValueError(f"num_strokes must be in 1..64, got {n}")
    paths = _KIND_BUILDERS[kind](rng, n)[:n]

    # Orientation: figures stay upright (a small lean, maybe mirrored); other kinds turn freely.
    angle = rng.uniform(-0.25, 0.25) if kind == "figure" else rng.uniform(0, 2 * math.pi)
    mirror = -1.0 if rng.chance(0.5) else 1.0
    pts = torch.tensor([p for path, _ in paths for p in path], dtype=torch.float64)
    pts[:, 0] *= mirror
    ca, sa = math.cos(angle), math.sin(angle)
    pts = pts @ torch.tensor([[ca, sa], [-sa, ca]], dtype=torch.float64)
    lo, hi = pts.amin(0), pts.amax(0)
    scale = rng.uniform(*extent) * S / float((hi - lo).max().clamp_min(1e-6))
    pts = (pts - (lo + hi) / 2) * scale + torch.tensor([W / 2, H / 2], dtype=torch.float64)

    base_width = rng.uniform(*width_range) * S
    widths = torch.tensor([base_width * rng.uniform(0.75, 1.25) for _ in paths])
    closed = [c for _, c in paths]
    num_segments = [len(p) // 3 for p, _ in paths]
    P = len(paths)
    style = PathStyle(num_segments=num_segments, closed=closed, stroke_width=widths.float(),
                      stroke_color=torch.zeros(P, 3), stroke_opacity=torch.ones(P),
                      fill_color=torch.zeros(P, 3), fill_opacity=torch.zeros(P))
    return Sketch(pts.float(), style, W, H)


# ---------------------------------------------------------------------------------------------
# Motions

TRANSLATE_RANGE = (0.18, 0.35)  # fraction of the canvas side along the motion
ROTATE_RANGE = (35.0, 120.0)  # degrees
SCALE_RANGE = (1.35, 1.8)  # factor
SWAY_RANGE = (12.0, 30.0)  # degrees, each side
BOUNCE_RANGE = (0.12, 0.25)  # fraction of the canvas height
WAVE_RANGE = (0.025, 0.05)  # fraction of the canvas' smaller side
STILL_JITTER = (0.006, 0.8)  # at most: fraction of the canvas, degrees
_DIRECTION = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
FRAMES_PER_CYCLE = 8  # periodic motions get 1 + round(speed * (frames // 8 - 1)) cycles (at least 1)


def _lerp1(r: Tuple[float, float], a: float) -> float:
    return r[0] + (r[1] - r[0]) * a


def _motion_params(motion: str, frames: int, rng: _Rng, speed: Optional[float], amplitude: Optional[float]) -> dict:
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; choose one of {', '.join(MOTIONS)}")
    amp = rng.u() if amplitude is None else float(amplitude)
    spd = rng.u() if speed is None else float(speed)
    if not (0.0 <= amp <= 1.0 and 0.0 <= spd <= 1.0):
        raise ValueError("speed and amplitude must be in [0, 1]")
    max_cycles = max(1, frames // FRAMES_PER_CYCLE)
    prm = dict(motion=motion, amplitude=amp, speed=spd, cycles=1 + int(round(spd * (max_cycles - 1))),
               profile=2.0 ** (0.6 * (1.0 - 2.0 * spd)))
    if motion == "wave":
        prm["wave_angle"] = rng.uniform(0, math.pi)
        prm["wave_length"] = rng.uniform(0.5, 1.0)
    if motion == "still":
        prm["jitter"] = (torch.rand(frames, 3, generator=rng.gen, dtype=torch.float64) * 2 - 1).float()
    return prm


def _animate(base: torch.Tensor, prm: dict, frames: int, canvas: Tuple[int, int]) -> torch.Tensor:
    """base [N, 2] -> [K, N, 2] for the sampled motion parameters (deterministic)."""
    W, H = canvas
    S = min(W, H)
    motion, amp, K = prm["motion"], prm["amplitude"], frames
    t = torch.linspace(0, 1, K) if K > 1 else torch.zeros(1)
    progress = t ** prm["profile"]
    phase = 2 * math.pi * prm["cycles"] * t
    p = GlobalParams.identity(K)
    center = base.mean(0)
    if motion in _DIRECTION:
        dx, dy = _DIRECTION[motion]
        dist = _lerp1(TRANSLATE_RANGE, amp) * (W if dx else H)
        p.translate = torch.stack([dx * dist * progress, dy * dist * progress], -1)
    elif motion in ("clockwise", "counterclockwise"):
        sign = 1.0 if motion == "clockwise" else -1.0
        p.rotate = sign * math.radians(_lerp1(ROTATE_RANGE, amp)) * progress
    elif motion in ("grow", "shrink"):
        f = _lerp1(SCALE_RANGE, amp)
        s = f ** (progress - 1) if motion == "grow" else f ** (-progress)
        p.scale = s[:, None].expand(-1, 2).clone()
    elif motion == "sway":
        p.rotate = math.radians(_lerp1(SWAY_RANGE, amp)) * torch.sin(phase)
        center = torch.stack([center[0], base[:, 1].max()])  # pivot at the bottom
    elif motion == "bounce":
        p.translate[:, 1] = -_lerp1(BOUNCE_RANGE, amp) * H * torch.sin(phase / 2).abs()
    elif motion == "wave":
        u = torch.tensor([math.cos(prm["wave_angle"]), math.sin(prm["wave_angle"])])
        normal = torch.stack([-u[1], u[0]])
        along = (base - center) @ u
        span = float(along.max() - along.min()) if base.shape[0] else 1.0
        k = 2 * math.pi / max(prm["wave_length"] * span, 1e-3)
        a = _lerp1(WAVE_RANGE, amp) * S
        disp = a * (torch.sin(k * along[None, :] - phase[:, None]) - torch.sin(k * along)[None, :])  # [K, N]
        return base[None] + disp[..., None] * normal
    elif motion == "still":
        j = prm["jitter"]
        p.translate = j[:, :2] * STILL_JITTER[0] * amp * S
        p.rotate = j[:, 2] * math.radians(STILL_JITTER[1]) * amp
    return apply_global(base, p, center=center)


def _move(sketch: Sketch, motion: str, frames: int, rng: _Rng, speed: Optional[float], amplitude: Optional[float],
          place: bool, margin: float) -> Tuple[torch.Tensor, dict]:
    if frames < 1:
        raise ValueError("frames must be >= 1")
    prm = _motion_params(motion, frames, rng, speed, amplitude)
    canvas = (sketch.width, sketch.height)
    base = sketch.points.float()
    pts = _animate(base, prm, frames, canvas)
    if not place or base.shape[0] == 0:
        return pts, prm
    # Fit the whole motion inside the canvas (shrinking the drawing, not the motion), then put the
    # union of all frames at a random place: a drawing that moves left starts on the right.
    size = torch.tensor(canvas, dtype=torch.float32)
    room = size - 2 * margin * min(canvas)
    center = base.mean(0)
    for _ in range(8):
        extent = pts.amax((0, 1)) - pts.amin((0, 1))
        ratio = float((room / extent.clamp_min(1e-6)).min())
        if ratio >= 1.0:
            break
        base = center + (base - center) * (ratio * 0.98)
        pts = _animate(base, prm, frames, canvas)
    lo, hi = pts.amin((0, 1)), pts.amax((0, 1))
    slack = (room - (hi - lo)).clamp_min(0)
    target = margin * min(canvas) + slack * torch.tensor([rng.u(), rng.u()], dtype=torch.float32)
    return pts + (target - lo), prm


def motion_points(sketch: Sketch, motion: str, frames: int = 8, gen: GenLike = 0, speed: Optional[float] = None,
                  amplitude: Optional[float] = None, place: bool = True, margin: float = 0.03) -> torch.Tensor:
    """Control points [K, N, 2] (screen coordinates, y down) of `sketch` moving by `motion`.

    amplitude in [0, 1]: size of the motion within the class range (module docstring); with the
    clip length fixed this is also the mean speed of the monotonic motions.
    speed in [0, 1]: tempo. Monotonic motions follow progress(t) = t ** 2**(0.6 (1 - 2 speed)):
    0 starts slowly and accelerates, 0.5 is constant speed, 1 starts fast and slows down.
    Periodic motions make 1 + round(speed * (frames // 8 - 1)) cycles (at least 8 frames each).
    Both are drawn from `gen` when None.
    place: shrink the drawing (not the motion) until every frame fits inside the canvas minus
    `margin` (fraction of the smaller side), then put the motion at a random place, so a drawing
    moving left starts on the right. With place=False the motion starts where the sketch is.
    """
    return _move(sketch, motion, frames, _as_rng(gen), speed, amplitude, place, margin)[0]


# ---------------------------------------------------------------------------------------------
# Captions


def _v(third: str, ing: str) -> Tuple[str, str]:
    return (third, ing)


_GO = [_v("moves", "moving"), _v("slides", "sliding"), _v("goes", "going"), _v("travels", "traveling"),
       _v("drifts", "drifting"), _v("shifts", "shifting"), _v("glides", "gliding")]
_SPIN = [_v("spins", "spinning"), _v("rotates", "rotating"), _v("turns", "turning"), _v("twirls", "twirling")]

#: per motion: groups of (verbs, complements); every verb x complement pair is a phrase.
PHRASE_GROUPS: Dict[str, List[Tuple[List[Tuple[str, str]], List[str]]]] = {
    "left": [(_GO, ["to the left", "left", "leftwards", "toward the left"])],
    "right": [(_GO, ["to the right", "right", "rightwards", "toward the right"])],
    "up": [([_v("moves", "moving"), _v("goes", "going"), _v("rises", "rising"), _v("floats", "floating"),
             _v("drifts", "drifting"), _v("climbs", "climbing"), _v("slides", "sliding"), _v("travels", "traveling")],
            ["up", "upwards", "upward", "toward the top"])],
    "down": [([_v("moves", "moving"), _v("goes", "going"), _v("falls", "falling"), _v("drops", "dropping"),
               _v("sinks", "sinking"), _v("drifts", "drifting"), _v("slides", "sliding"), _v("travels", "traveling")],
              ["down", "downwards", "downward", "toward the bottom"])],
    "clockwise": [(_SPIN, ["clockwise", "in a clockwise direction", "around clockwise"])],
    "counterclockwise": [(_SPIN, ["counterclockwise", "in a counterclockwise direction", "around counterclockwise",
                                  "anticlockwise", "in an anticlockwise direction"])],
    "grow": [([_v("grows", "growing"), _v("expands", "expanding"), _v("swells", "swelling"),
               _v("enlarges", "enlarging")], ["", "in size"]),
             ([_v("grows", "growing"), _v("gets", "getting"), _v("becomes", "becoming")],
              ["bigger", "larger", "bigger and bigger", "larger and larger"])],
    "shrink": [([_v("shrinks", "shrinking"), _v("contracts", "contracting"), _v("deflates", "deflating")],
                ["", "in size"]),
               ([_v("gets", "getting"), _v("becomes", "becoming")], ["smaller", "tinier", "smaller and smaller"])],
    "sway": [([_v("sways", "swaying"), _v("rocks", "rocking"), _v("swings", "swinging"), _v("tilts", "tilting")],
              ["", "back and forth", "from side to side", "gently", "to and fro"])],
    "bounce": [([_v("bounces", "bouncing"), _v("hops", "hopping"), _v("jumps", "jumping"), _v("bobs", "bobbing")],
                ["", "up and down", "in place", "repeatedly"])],
    "wave": [([_v("waves", "waving"), _v("ripples", "rippling"), _v("wiggles", "wiggling"),
               _v("undulates", "undulating"), _v("flutters", "fluttering"), _v("wobbles", "wobbling")],
              ["", "like a flag", "in the wind", "gently"])],
    "still": [([_v("stays", "staying"), _v("remains", "remaining"), _v("stands", "standing"), _v("sits", "sitting")],
               ["still", "in place", "motionless", "perfectly still"]),
              ([_v("does not move", "not moving")], ["", "at all"])],
}

#: subject-specific locomotion verbs, added to the first group of the listed motions.
SUBJECT_VERBS: Dict[Tuple[str, str], Tuple[str, ...]] = {
    ("flies", "flying"): ("left", "right", "up", "down"),
    ("swims", "swimming"): ("left", "right", "up", "down"),
    ("sails", "sailing"): ("left", "right"),
    ("walks", "walking"): ("left", "right"),
    ("runs", "running"): ("left", "right"),
    ("rolls", "rolling"): ("left", "right"),
    ("drives", "driving"): ("left", "right"),
}
_PEOPLE = ("person", "man", "woman", "boy", "girl", "stick figure")
#: noun -> its subject-specific verbs (3rd person singular).
NOUNS: Dict[str, Tuple[str, ...]] = {
    "bird": ("flies",), "butterfly": ("flies",), "plane": ("flies",), "kite": ("flies",),
    "fish": ("swims",), "boat": ("sails",),
    **{p: ("walks", "runs") for p in _PEOPLE}, "cat": ("walks", "runs"), "dog": ("walks", "runs"),
    "ball": ("rolls",), "car": ("drives",),
    "flower": (), "tree": (), "star": (), "leaf": (), "house": (), "balloon": (), "robot": ("walks",),
}
GENERIC_SUBJECTS = ("it", "the drawing", "the sketch", "the doodle", "the shape", "the line drawing", "the object")
SUBJECTS = GENERIC_SUBJECTS + tuple(f"{art} {noun}" for noun in NOUNS for art in ("a", "the"))
_KIND_SUBJECTS = {"figure": GENERIC_SUBJECTS + tuple(f"{a} {n}" for n in _PEOPLE + ("robot",) for a in ("a", "the"))}

TRAIN_FRAMES = ("{s} {v}", "{s} {g}", "{s} is {g}", "a video of {s} {g}", "an animation of {s} {g}")
HELDOUT_FRAMES = ("{s} that {v}", "there is {s} {g}", "a video where {s} {v}")
#: words of the held-out frames that no train caption has (expected <unk> for a train vocabulary).
HELDOUT_NEW_WORDS = frozenset({"that", "there", "where"})


def _subject_verbs(subject: str) -> Tuple[str, ...]:
    noun = subject.split(" ", 1)[1] if subject.split(" ", 1)[0] in ("a", "an", "the") else subject
    return NOUNS.get(noun, ())


def _phrases(motion: str, subject_verbs: Iterable[str] = ()) -> List[Tuple[str, str, bool]]:
    """(3rd-person phrase, -ing phrase, is_train) of one motion, for a subject with these verbs.

    Pair (verb i, complement j) of a group is held out iff (i + j) % 3 == 2: with >= 2 verbs and
    >= 2 complements per group every verb and every complement also appears in a train pair.
    """
    if motion not in PHRASE_GROUPS:
        raise ValueError(f"unknown motion {motion!r}; choose one of {', '.join(MOTIONS)}")
    allowed = set(subject_verbs)
    out = []
    for g, (verbs, comps) in enumerate(PHRASE_GROUPS[motion]):
        verbs = list(verbs)
        if g == 0:  # subject verbs extend the first group; their index does not depend on the subject
            verbs += [v for v, ms in SUBJECT_VERBS.items() if motion in ms]
        for i, (third, ing) in enumerate(verbs):
            if i >= len(PHRASE_GROUPS[motion][g][0]) and third not in allowed:
                continue
            for j, comp in enumerate(comps):
                tail = f" {comp}" if comp else ""
                out.append((third + tail, ing + tail, (i + j) % 3 != 2))
    return out


def _fill(frame: str, subject: str, third: str, ing: str) -> str:
    return frame.format(s=subject, v=third, g=ing)


def caption(motion: str, gen: GenLike = 0, split: str = "train", subject: Optional[str] = None) -> str:
    """A caption of `motion` ("a bird flies to the left"), lowercase, no punctuation.

    split "train": a train phrase in a train frame. split "heldout": with probability 2/3 a
    held-out phrase in a train frame (no new word), else any phrase in a held-out frame.
    subject: a noun phrase ("a bird", "the drawing", "it"); random from SUBJECTS if None.
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    rng = _as_rng(gen)
    subject = rng.choice(SUBJECTS) if subject is None else subject
    phrases = _phrases(motion, _subject_verbs(subject))
    if split == "train":
        frame, pool = rng.choice(TRAIN_FRAMES), [p for p in phrases if p[2]]
    elif rng.u() < 2 / 3:
        frame, pool = rng.choice(TRAIN_FRAMES), [p for p in phrases if not p[2]]
    else:
        frame, pool = rng.choice(HELDOUT_FRAMES), phrases
    third, ing, _ = rng.choice(pool)
    return _fill(frame, subject, third, ing)


def caption_space(split: str = "train", motions: Sequence[str] = MOTIONS,
                  subjects: Sequence[str] = SUBJECTS) -> List[str]:
    """Every caption `caption` can produce for these motions and subjects (sorted, unique)."""
    out = set()
    for motion in motions:
        for subject in subjects:
            for third, ing, train in _phrases(motion, _subject_verbs(subject)):
                if split == "train":
                    frames = TRAIN_FRAMES if train else ()
                else:
                    frames = HELDOUT_FRAMES if train else TRAIN_FRAMES + HELDOUT_FRAMES
                out.update(_fill(f, subject, third, ing) for f in frames)
    return sorted(out)


#: the words that identify each motion in a caption (checked in this order by motion_from_caption).
MOTION_KEYWORDS: Dict[str, frozenset] = {
    "counterclockwise": frozenset({"counterclockwise", "anticlockwise"}),
    "clockwise": frozenset({"clockwise"}),
    "bounce": frozenset({"bounces", "bouncing", "bounce", "hops", "hopping", "jumps", "jumping", "bobs", "bobbing"}),
    "sway": frozenset({"sways", "swaying", "sway", "rocks", "rocking", "swings", "swinging", "tilts", "tilting",
                       "forth", "fro"}),
    "wave": frozenset({"waves", "waving", "wave", "ripples", "rippling", "wiggles", "wiggling", "undulates",
                       "undulating", "flutters", "fluttering", "wobbles", "wobbling"}),
    "still": frozenset({"still", "motionless", "stays", "staying", "remains", "remaining", "stands", "standing",
                        "sits", "sitting", "place", "not"}),
    "shrink": frozenset({"shrinks", "shrinking", "shrink", "contracts", "contracting", "deflates", "deflating",
                         "smaller", "tinier"}),
    "grow": frozenset({"grows", "growing", "grow", "expands", "expanding", "swells", "swelling", "enlarges",
                       "enlarging", "bigger", "larger"}),
    "left": frozenset({"left", "leftwards", "leftward"}),
    "right": frozenset({"right", "rightwards", "rightward"}),
    "up": frozenset({"up", "upwards", "upward", "top", "rises", "rising", "climbs", "climbing"}),
    "down": frozenset({"down", "downwards", "downward", "bottom", "falls", "falling", "drops", "dropping",
                       "sinks", "sinking"}),
}


def motion_from_caption(text: str) -> Optional[str]:
    """The motion class a caption asks for, by keywords (None if it names none)."""
    words = set(tokenize(text))
    for motion, keys in MOTION_KEYWORDS.items():
        if words & keys:
            return motion
    return None


# ---------------------------------------------------------------------------------------------
# Vocabulary

_PUNCT = re.compile(r"[^\w\s]|_")


def tokenize(text: str) -> List[str]:
    """Word-level tokens: lowercase, punctuation deleted ("Counter-clockwise!" -> ["counterclockwise"])."""
    return _PUNCT.sub("", text.lower()).split()


class Vocab:
    """Word <-> id table. Ids 0..3 are <pad>, <unk>, <bos>, <eos>; words follow in sorted order."""

    SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
    PAD, UNK, BOS, EOS = range(4)

    def __init__(self, words: Iterable[str]):
        self.itos: List[str] = list(self.SPECIALS) + sorted(set(words) - set(self.SPECIALS))
        self.stoi: Dict[str, int] = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: str) -> bool:
        return word in self.stoi

    def unknown(self, text: str) -> List[str]:
        """Words of `text` that map to <unk>."""
        return [w for w in tokenize(text) if w not in self.stoi]

    def encode(self, text: str, length: Optional[int] = None, bos_eos: bool = False) -> torch.Tensor:
        """Token ids [L] (long); with `length`, truncated or right-padded with <pad> to that length."""
        ids = [self.stoi.get(w, self.UNK) for w in tokenize(text)]
        if bos_eos:
            ids = [self.BOS] + ids + [self.EOS]
        if length is not None:
            ids = ids[:length] + [self.PAD] * max(0, length - len(ids))
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.itos[int(i)] for i in ids if int(i) != self.PAD)

    def to_list(self) -> List[str]:
        """JSON-friendly form (store it next to a trained model); `Vocab.from_list` restores it."""
        return list(self.itos)

    @classmethod
    def from_list(cls, itos: Sequence[str]) -> "Vocab":
        vocab = cls(())
        vocab.itos = list(itos)
        vocab.stoi = {w: i for i, w in enumerate(vocab.itos)}
        return vocab


def build_vocab(captions: Optional[Iterable[str]] = None, min_count: int = 1) -> Vocab:
    """Vocabulary of the words of `captions` (default: every train caption, `caption_space("train")`)."""
    counts: Dict[str, int] = {}
    for text in caption_space("train") if captions is None else captions:
        for w in tokenize(text):
            counts[w] = counts.get(w, 0) + 1
    return Vocab(w for w, c in counts.items() if c >= min_count)


# ---------------------------------------------------------------------------------------------
# Clips


def make_clip(seed: int, index: int, frames: int = 8, size: int = 32, canvas: int = 256, split: str = "train",
              motion: Optional[str] = None, motions: Sequence[str] = MOTIONS, kind: Optional[str] = None,
              quality: int = 1, stroke_px: Tuple[float, float] = (0.7, 1.6)) -> dict:
    """Clip `index` of the data set `seed` (deterministic).

    The motion is motions[index % len(motions)] unless given (so any run of consecutive indices is
    balanced); the drawing, motion parameters and placement come from clip_generator(seed, index),
    the caption from its own stream, so the train and held-out captions of a clip share its frames.
    Returns a dict: frames [K, 3, size, size] float32 in 0..1 (black strokes on white), caption,
    motion, label (index in MOTIONS), points [K, N, 2] (canvas pixels), style (PathStyle), canvas,
    kind, subject, num_strokes, amplitude, speed, cycles.
    """
    if motion is None:
        motion = motions[index % len(motions)]
    rng = _Rng(clip_generator(seed, index))
    kind = rng.choice(KINDS) if kind is None else kind
    sketch = random_sketch(rng, canvas, kind=kind, width_range=(stroke_px[0] / size, stroke_px[1] / size))
    points, prm = _move(sketch, motion, frames, rng, None, None, place=True, margin=0.03)
    images = rasterize(points, sketch.style, (sketch.width, sketch.height), (size, size), quality=quality)
    crng = _Rng(clip_generator(seed, index, stream=1))
    subject = crng.choice(_KIND_SUBJECTS.get(kind, SUBJECTS))
    return dict(frames=images.permute(0, 3, 1, 2).contiguous(), caption=caption(motion, crng, split, subject),
                motion=motion, label=MOTIONS.index(motion), points=points, style=sketch.style,
                canvas=(sketch.width, sketch.height), kind=kind, subject=subject, num_strokes=sketch.num_paths,
                amplitude=prm["amplitude"], speed=prm["speed"], cycles=prm["cycles"])


class MotionClipDataset(Dataset):
    """`length` clips of `make_clip(seed, index, ...)`; item i is the same whatever the worker or order.

    Items: {"frames": [K, 3, size, size], "caption": str, "label": int} plus "tokens" [max_tokens]
    when a Vocab is given; all collate with the default collate function.
    """

    def __init__(self, length: int = 10000, seed: int = 0, frames: int = 8, size: int = 32, split: str = "train",
                 vocab: Optional[Vocab] = None, max_tokens: int = 16, **clip_kwargs):
        self.length, self.seed, self.frames, self.size, self.split = int(length), int(seed), frames, size, split
        self.vocab, self.max_tokens, self.clip_kwargs = vocab, max_tokens, clip_kwargs

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        clip = make_clip(self.seed, index, frames=self.frames, size=self.size, split=self.split, **self.clip_kwargs)
        item = {"frames": clip["frames"], "caption": clip["caption"], "label": clip["label"]}
        if self.vocab is not None:
            item["tokens"] = self.vocab.encode(clip["caption"], self.max_tokens)
        return item


# ---------------------------------------------------------------------------------------------
# Motion measures and classification
#
# Both measures return: dx, dy (net centroid displacement first -> last frame, fraction of the
# canvas width / height), rotation (net, degrees, positive = clockwise on screen), scale (net
# ratio), x_range, y_range (extent of the centroid's path over the clip, fractions),
# rotation_range (degrees), deform (non-rigid change; units depend on `source`), source.


def _similarity_fit(p: torch.Tensor, q: torch.Tensor):
    """Least-squares similarity p -> q for [..., N, 2]: (rotation rad, scale, relative rms residual)."""
    pc, qc = p - p.mean(-2, keepdim=True), q - q.mean(-2, keepdim=True)
    a = (pc * qc).sum((-2, -1))
    b = (pc[..., 0] * qc[..., 1] - pc[..., 1] * qc[..., 0]).sum(-1)
    norm = (pc * pc).sum((-2, -1)).clamp_min(1e-12)
    theta = torch.atan2(b, a)
    scale = torch.sqrt(a * a + b * b) / norm
    cos, sin = torch.cos(theta)[..., None], torch.sin(theta)[..., None]
    rot = torch.stack([pc[..., 0] * cos - pc[..., 1] * sin, pc[..., 0] * sin + pc[..., 1] * cos], -1)
    resid = (qc - scale[..., None, None] * rot).pow(2).sum(-1).mean(-1).sqrt()
    return theta, scale, resid / (norm / p.shape[-2]).sqrt()


def measure_motion(points: Union[torch.Tensor, SketchAnimation], canvas: Optional[Size] = None) -> dict:
    """Motion of control points [K, N, 2] (or a SketchAnimation) on a canvas (side or (w, h)).

    Net rotation and scale are the least-squares similarity fit frame 0 -> last frame (the
    rotation is unwrapped along the clip, so it may exceed 180 deg); deform = the largest rms
    residual of the fit frame 0 -> frame k, relative to the drawing's rms radius.
    """
    if isinstance(points, SketchAnimation):
        canvas = (points.width, points.height) if canvas is None else canvas
        points = points.points
    if canvas is None:
        raise ValueError("measure_motion needs the canvas size")
    W, H = _wh(canvas)
    pts = points.detach().double()
    K = pts.shape[0]
    centroid = pts.mean(1)  # [K, 2]
    step_theta = _similarity_fit(pts[:-1], pts[1:])[0] if K > 1 else pts.new_zeros(0)
    theta = torch.cat([pts.new_zeros(1), torch.cumsum(step_theta, 0)])
    _, scale, resid = _similarity_fit(pts[:1].expand(K, -1, -1), pts)
    rel = (centroid - centroid[0]) / torch.tensor([W, H], dtype=pts.dtype)
    deg = torch.rad2deg(theta)
    return dict(dx=float(rel[-1, 0]), dy=float(rel[-1, 1]), rotation=float(deg[-1]), scale=float(scale[-1]),
                x_range=float(rel[:, 0].max() - rel[:, 0].min()), y_range=float(rel[:, 1].max() - rel[:, 1].min()),
                rotation_range=float(deg.max() - deg.min()), deform=float(resid.max()), source="points")


def _ink(frames: torch.Tensor) -> torch.Tensor:
    """[K, 3, H, W] (or [K, H, W, 3]) dark-on-light images -> ink density [K, H, W] in 0..1
    (darkness above the background level and its noise)."""
    f = frames.detach().float()
    if f.ndim != 4:
        raise ValueError(f"frames must be [K, 3, H, W], got {list(frames.shape)}")
    if f.shape[1] not in (1, 3) and f.shape[-1] in (1, 3):
        f = f.permute(0, 3, 1, 2)
    ink = (1.0 - f.mean(1)).clamp(0, 1)
    # Remove a grey or noisy background: most pixels are background, so the median is its level
    # and the median absolute deviation its noise; keep the darkness above level + 3 sigma.
    flat = ink.flatten(1)
    level = flat.median(1).values
    sigma = 1.4826 * (flat - level[:, None]).abs().median(1).values
    floor = (level + 3 * sigma)[:, None, None]
    return ((ink - floor) / (1 - floor).clamp_min(0.05)).clamp(0, 1)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(math.ceil(3 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=x.dtype) / sigma) ** 2)
    k = k / k.sum()
    y = F.conv2d(x[:, None], k.view(1, 1, 1, -1), padding=(0, r))
    return F.conv2d(y, k.view(1, 1, -1, 1), padding=(r, 0))[:, 0]


def _warp(src: torch.Tensor, c_src: torch.Tensor, c_dst: torch.Tensor, theta: torch.Tensor, scale: torch.Tensor):
    """Images [B, H, W] moved by the similarity (rotate theta, scale, about c_src, onto c_dst)."""
    B, H, W = src.shape
    cos, sin, inv = torch.cos(theta), torch.sin(theta), 1.0 / scale
    # Pixel-space inverse map: p = M q + b with M = R(-theta) / scale, b = c_src - M c_dst.
    m = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2) * inv[:, None, None]
    b = c_src - (m @ c_dst[..., None])[..., 0]
    # In grid_sample's normalised coordinates (align_corners=False): q = D u + e, D = diag(W/2, H/2), e = D 1.
    d = src.new_tensor([W / 2, H / 2])
    lin = m * d[None, None, :] / d[None, :, None]
    off = ((m @ d) + b - d) / d
    grid = F.affine_grid(torch.cat([lin, off[..., None]], -1), [B, 1, H, W], align_corners=False)
    return F.grid_sample(src[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    num = (a * b).sum((-2, -1))
    return num / ((a * a).sum((-2, -1)) * (b * b).sum((-2, -1))).sqrt().clamp_min(1e-12)


def _match_rotation(soft, centroid, spread, src: torch.Tensor, dst: torch.Tensor, center: torch.Tensor,
                    half_width: float) -> torch.Tensor:
    """For each pair (soft[src[i]] -> soft[dst[i]]): the rotation (rad) in center[i] +- half_width (deg)
    that best maps one onto the other after matching centroids and spread. Normalised
    cross-correlation on a 5 deg grid, then a 1 deg grid around the best, then a parabola."""
    n = src.shape[0]

    def scores(angles: torch.Tensor) -> torch.Tensor:  # angles [n, A] -> [n, A]
        A = angles.shape[1]
        rep = lambda x: x.repeat_interleave(A, 0)  # noqa: E731
        warped = _warp(rep(soft[src]), rep(centroid[src]), rep(centroid[dst]), angles.reshape(-1),
                       rep(spread[dst] / spread[src]))
        return _cosine(warped, rep(soft[dst])).view(n, A)

    coarse = center[:, None] + torch.deg2rad(torch.arange(-half_width, half_width + 1e-6, 5.0))[None, :]
    best = scores(coarse).argmax(1)
    fine = coarse.gather(1, best[:, None]) + torch.deg2rad(torch.arange(-5.0, 5.0 + 1e-6, 1.0))[None, :]
    score = scores(fine)
    best = score.argmax(1)
    A = fine.shape[1]
    s0, s1, s2 = (score.gather(1, i[:, None])[:, 0]
                  for i in ((best - 1).clamp(0, A - 1), best, (best + 1).clamp(max=A - 1)))
    curv = s0 - 2 * s1 + s2
    inner = (best > 0) & (best < A - 1) & (curv < 0)
    safe = torch.where(inner, curv, -torch.ones_like(curv))
    offset = torch.where(inner, 0.5 * (s0 - s2) / safe, torch.zeros_like(curv))
    return fine.gather(1, best[:, None])[:, 0] + offset.clamp(-1, 1) * math.radians(1.0)


def measure_motion_from_frames(frames: torch.Tensor, max_step_deg: float = 45.0, analysis_size: int = 32) -> dict:
    """Motion estimated from the pixels of a clip [K, 3, H, W] (dark strokes on a light background).

    Frames larger than ~1.5 x analysis_size are average-pooled by an integer factor first.
    Centroid and spread are the ink-weighted centroid and the root of the second moments' trace
    (scale = spread ratio). Rotation: for each pair of consecutive frames, the angle in
    +-max_step_deg that best maps the (blurred) ink of frame k onto frame k+1 after matching
    centroids and spread, summed along the clip; then the net rotation is re-matched directly
    from the first to the last frame (within 25 deg of the sum) and the drift of the sum is
    spread linearly over the clip. deform = the largest 1 - correlation between frame k and
    frame 0 moved by the fitted motion.
    """
    ink = _ink(frames)
    factor = max(1, int(min(ink.shape[-2:]) / analysis_size + 0.25))
    if factor > 1:
        ink = F.avg_pool2d(ink[:, None], factor, ceil_mode=True)[:, 0]
    K, H, W = ink.shape
    ys, xs = torch.meshgrid(torch.arange(H, dtype=ink.dtype) + 0.5, torch.arange(W, dtype=ink.dtype) + 0.5,
                            indexing="ij")
    mass = ink.sum((1, 2)).clamp_min(1e-6)
    cx, cy = (ink * xs).sum((1, 2)) / mass, (ink * ys).sum((1, 2)) / mass
    var = (ink * ((xs - cx[:, None, None]) ** 2 + (ys - cy[:, None, None]) ** 2)).sum((1, 2)) / mass
    spread = var.clamp_min(1e-6).sqrt()
    centroid = torch.stack([cx, cy], -1)
    soft = _blur(ink, max(0.6, min(H, W) / 48))

    theta = ink.new_zeros(K)
    if K > 1:
        idx = torch.arange(K)
        step = _match_rotation(soft, centroid, spread, idx[:-1], idx[1:], ink.new_zeros(K - 1), max_step_deg)
        theta = torch.cat([ink.new_zeros(1), torch.cumsum(step, 0)])
        net = _match_rotation(soft, centroid, spread, idx[:1], idx[-1:], theta[-1:], 25.0)[0]
        theta = theta + (net - theta[-1]) * idx.to(theta.dtype) / (K - 1)
    moved = _warp(soft[:1].expand(K, -1, -1), centroid[:1].expand(K, -1), centroid, theta, spread / spread[0])
    deform = (1 - _cosine(moved, soft)).max()

    rel = (centroid - centroid[0]) / torch.tensor([W, H], dtype=ink.dtype)
    deg = torch.rad2deg(theta)
    return dict(dx=float(rel[-1, 0]), dy=float(rel[-1, 1]), rotation=float(deg[-1]),
                scale=float(spread[-1] / spread[0]),
                x_range=float(rel[:, 0].max() - rel[:, 0].min()), y_range=float(rel[:, 1].max() - rel[:, 1].min()),
                rotation_range=float(deg.max() - deg.min()), deform=float(deform), source="frames")


#: reference magnitudes of classify_motion: a score of 1 = a clearly visible motion of that class.
REFERENCE = dict(translate=0.15, rotate=30.0, scale=math.log(1.3), bounce=0.10, sway=24.0,
                 wave={"points": 0.12, "frames": 0.06})


def motion_scores(measure: dict) -> Dict[str, float]:
    """Score of every class but "still" (>= 1: clearly that motion), from a measure dict."""
    dx, dy, rot = measure["dx"], measure["dy"], measure["rotation"]
    scores = {m: 0.0 for m in MOTIONS if m != "still"}
    t = REFERENCE["translate"]
    if abs(dx) >= abs(dy):
        scores["right" if dx > 0 else "left"] = abs(dx) / t
    else:
        scores["down" if dy > 0 else "up"] = abs(dy) / t
    scores["clockwise" if rot > 0 else "counterclockwise"] = abs(rot) / REFERENCE["rotate"]
    log_scale = math.log(max(measure["scale"], 1e-6))
    scores["grow" if log_scale > 0 else "shrink"] = abs(log_scale) / REFERENCE["scale"]
    # Periodic motions: excursion beyond the net displacement (0 for a monotonic motion).
    scores["bounce"] = max(0.0, measure["y_range"] - abs(dy)) / REFERENCE["bounce"]
    scores["sway"] = max(0.0, measure["rotation_range"] - abs(rot)) / REFERENCE["sway"]
    scores["wave"] = measure["deform"] / REFERENCE["wave"][measure.get("source", "points")]
    return scores


def classify_motion(measure: dict, threshold: float = 0.5) -> str:
    """The motion class of a measure dict: the best-scoring class, or "still" below `threshold`.

    The deformation (wave) is not trusted next to a clear net translation, rotation or scaling:
    resampling a moved drawing also changes its pixels (e.g. fixed stroke widths under scaling).
    """
    scores = motion_scores(measure)
    if max(scores[m] for m in DIRECTIONAL) >= threshold:
        scores["wave"] = 0.0
    best = max(scores, key=scores.get)
    return best if scores[best] >= threshold else "still"
