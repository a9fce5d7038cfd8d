"""Vector sketch types shared by every stage.

A sketch is a list of paths made of cubic Bezier segments. All control points of
all paths live in one float tensor so a model can move them; per-path style lives in
small tensors beside it. Conventions: pixel (i, j) covers [i, i+1] x [j, j+1] (as SVG
and diffvg); stroke width is SVG's full width (diffvg's Path.stroke_width is half of it).

Point layout of one path with S segments:
- open path: 3*S + 1 points  [p0, c1, c2, p1, c1, c2, p2, ...]
- closed path: 3*S points, the last segment returns to the path's first point.

Fill groups (as diffvg's ShapeGroup): paths with the same `fill_group` id are contiguous and are
filled together as one shape, with the winding number accumulated over all their edges under the
group's `fill_rule` ("nonzero" or "evenodd"). An SVG `<path>` with several subpaths becomes one
group of several paths. Every path of a group is filled as if closed (SVG closes an open subpath's
fill with a straight line); `closed` only decides whether the stroke has a closing segment. A
group's fill colour, fill opacity and fill rule are those of its first path. Paint order: a
group's fill, then the strokes of its paths in order. `None` means "each path its own group" and
"nonzero" for every path, so code that builds one-path shapes need not care.

Stroke caps and joins (SVG `stroke-linecap`, `stroke-linejoin`, `stroke-miterlimit`), optional per
path: `None` means round caps and round joins (diffvg's strokes, which LiveSketch uses) and a miter
limit of 4 (SVG's default, used only by miter joins).

Gradient paints (SVG linearGradient / radialGradient), optional per path: `fill_paint[p]` /
`stroke_paint[p]` is a `Gradient` or None (flat `fill_color` / `stroke_color`). A path with a gradient
still has a flat colour (the mean of its stops), used by code that needs one colour per path.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import List, Optional, Tuple

import torch


FILL_RULES = ("nonzero", "evenodd")
LINECAPS = ("butt", "round", "square")
LINEJOINS = ("miter", "round", "bevel")
DEFAULT_MITERLIMIT = 4.0
SPREADS = ("pad", "reflect", "repeat")
Affine = Tuple[float, float, float, float, float, float]  # SVG matrix(a b c d e f): x' = a x + c y + e


def affine_multiply(m: Affine, n: Affine) -> Affine:
    """m . n (n applied first)."""
    a, b, c, d, e, f = m
    a2, b2, c2, d2, e2, f2 = n
    return (a * a2 + c * b2, b * a2 + d * b2, a * c2 + c * d2, b * c2 + d * d2, a * e2 + c * f2 + e,
            b * e2 + d * f2 + f)


def affine_invert(m: Affine) -> Optional[Affine]:
    """The inverse of m, or None if it is singular or not finite."""
    a, b, c, d, e, f = m
    det = a * d - b * c
    if det == 0 or not math.isfinite(det):
        return None
    return (d / det, -b / det, -c / det, a / det, (c * f - d * e) / det, (b * e - a * f) / det)


@dataclass(frozen=True)
class Gradient:
    """An SVG gradient paint resolved to canvas coordinates.

    matrix maps gradient space (where x1..y2 or cx..fr are given) to canvas pixels; it already holds
    gradientTransform, objectBoundingBox units and every transform down to the canvas. Stops: offsets
    non-decreasing in [0, 1], colours RGB in 0..1, opacities in 0..1 (they multiply the layer's alpha).
    Radial: the colour at t is on the circle interpolated from the focal circle (fx, fy, fr) at t = 0 to
    (cx, cy, r) at t = 1, the focal point lying inside the end circle (SVG 1.1's clamping).
    """

    kind: str  # "linear" | "radial"
    offsets: Tuple[float, ...]
    colors: Tuple[Tuple[float, float, float], ...]
    opacities: Tuple[float, ...]
    spread: str = "pad"
    matrix: Affine = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
    x1: float = 0.0
    y1: float = 0.0
    x2: float = 1.0
    y2: float = 0.0
    cx: float = 0.5
    cy: float = 0.5
    r: float = 0.5
    fx: float = 0.5
    fy: float = 0.5
    fr: float = 0.0

    def __post_init__(self):
        if self.kind not in ("linear", "radial"):
            raise ValueError(f"gradient kind must be 'linear' or 'radial', got {self.kind!r}")
        if self.spread not in SPREADS:
            raise ValueError(f"gradient spread must be one of {SPREADS}, got {self.spread!r}")
        n = len(self.offsets)
        if n == 0 or len(self.colors) != n or len(self.opacities) != n:
            raise ValueError("a gradient needs as many offsets, colours and opacities, at least one")
        if any(b < a for a, b in zip(self.offsets, self.offsets[1:])):
            raise ValueError("gradient stop offsets must be non-decreasing")
        if len(self.matrix) != 6:
            raise ValueError("gradient matrix must have 6 entries")

    def mean_color(self) -> Tuple[float, float, float]:
        return tuple(sum(c[i] for c in self.colors) / len(self.colors) for i in range(3))

    def transformed(self, m: Affine) -> "Gradient":
        """The same gradient after the affine m (applied after self.matrix)."""
        return replace(self, matrix=affine_multiply(m, self.matrix))


@dataclass
class PathStyle:
    """Per-path attributes that are not control points."""

    num_segments: List[int]
    closed: List[bool]
    stroke_width: torch.Tensor  # [P] full width in canvas pixels (0 = no stroke)
    stroke_color: torch.Tensor  # [P, 3] in 0..1
    stroke_opacity: torch.Tensor  # [P] in 0..1
    fill_color: torch.Tensor  # [P, 3] in 0..1
    fill_opacity: torch.Tensor  # [P] in 0..1; 0 means no fill
    fill_rule: Optional[List[str]] = None  # [P] "nonzero" | "evenodd"; None = all nonzero
    fill_group: Optional[List[int]] = None  # [P] fill group id; None = each path its own group
    stroke_linecap: Optional[List[str]] = None  # [P] "butt" | "round" | "square"; None = all round
    stroke_linejoin: Optional[List[str]] = None  # [P] "miter" | "round" | "bevel"; None = all round
    stroke_miterlimit: Optional[List[float]] = None  # [P] >= 1; None = all 4 (SVG's default)
    fill_paint: Optional[List[Optional[Gradient]]] = None  # [P] gradient or None (flat); None = all flat
    stroke_paint: Optional[List[Optional[Gradient]]] = None  # [P] gradient or None (flat); None = all flat

    def __post_init__(self):
        p = len(self.num_segments)
        if len(self.closed) != p:
            raise ValueError(f"closed has {len(self.closed)} entries for {p} paths")
        if self.fill_group is not None:
            if len(self.fill_group) != p:
                raise ValueError(f"fill_group has {len(self.fill_group)} entries for {p} paths")
            seen = set()
            for i, g in enumerate(self.fill_group):
                if i and g == self.fill_group[i - 1]:
                    continue
                if g in seen:
                    raise ValueError("the paths of a fill group must be contiguous")
                seen.add(g)
        for name, allowed in (("fill_rule", FILL_RULES), ("stroke_linecap", LINECAPS), ("stroke_linejoin", LINEJOINS)):
            values = getattr(self, name)
            if values is not None and (len(values) != p or any(v not in allowed for v in values)):
                raise ValueError(f"{name} must list one of {allowed} per path")
        if self.stroke_miterlimit is not None:
            limits = [float(v) for v in self.stroke_miterlimit]
            if len(limits) != p or not all(1.0 <= v < float("inf") for v in limits):
                raise ValueError("stroke_miterlimit must list one finite value >= 1 per path")
            self.stroke_miterlimit = limits
        for name in ("fill_paint", "stroke_paint"):
            values = getattr(self, name)
            if values is not None and (len(values) != p or any(
                    v is not None and not isinstance(v, Gradient) for v in values)):
                raise ValueError(f"{name} must list a Gradient or None per path")

    @property
    def num_paths(self) -> int:
        return len(self.num_segments)

    def _resolved(self, values: Optional[list], default) -> list:
        return list(values) if values is not None else [default] * self.num_paths

    def rules(self) -> List[str]:
        """Fill rule of every path (resolved default: nonzero)."""
        return self._resolved(self.fill_rule, "nonzero")

    def linecaps(self) -> List[str]:
        """Stroke cap of every path (resolved default: round)."""
        return self._resolved(self.stroke_linecap, "round")

    def linejoins(self) -> List[str]:
        """Stroke join of every path (resolved default: round)."""
        return self._resolved(self.stroke_linejoin, "round")

    def miterlimits(self) -> List[float]:
        """Miter limit of every path (resolved default: 4)."""
        return self._resolved(self.stroke_miterlimit, DEFAULT_MITERLIMIT)

    def has_gradients(self) -> bool:
        return any(g is not None for paints in (self.fill_paint, self.stroke_paint) for g in (paints or ()))

    def groups(self) -> List[int]:
        """Fill group of every path, renumbered 0..G-1 in order (resolved default)."""
        if self.fill_group is None:
            return list(range(self.num_paths))
        out, g = [], -1
        for i, gid in enumerate(self.fill_group):
            if i == 0 or gid != self.fill_group[i - 1]:
                g += 1
            out.append(g)
        return out

    def group_bounds(self) -> List[int]:
        """First path of every fill group, then the number of paths: group g is paths [b[g], b[g + 1])."""
        if self.fill_group is None:
            return list(range(self.num_paths + 1))
        g = self.fill_group
        return [i for i in range(len(g)) if i == 0 or g[i] != g[i - 1]] + [len(g)]

    def points_per_path(self) -> List[int]:
        return [3 * s + (0 if c else 1) for s, c in zip(self.num_segments, self.closed)]

    def path_offsets(self) -> List[int]:
        offs, acc = [], 0
        for n in self.points_per_path():
            offs.append(acc)
            acc += n
        return offs

    def segment_index(self, device=None) -> torch.Tensor:
        """[S_total, 4] indices into the point tensor of each cubic segment's 4 points."""
        rows = []
        for off, n, s, closed in zip(self.path_offsets(), self.points_per_path(), self.num_segments, self.closed):
            for k in range(s):
                base = off + 3 * k
                idx = [base, base + 1, base + 2, base + 3]
                if closed and k == s - 1:
                    idx[3] = off  # wrap to the first point
                rows.append(idx)
        if not rows:
            return torch.zeros(0, 4, dtype=torch.long, device=device)
        return torch.tensor(rows, dtype=torch.long, device=device)

    def segment_path(self, device=None) -> torch.Tensor:
        """[S_total] path index of each segment."""
        return torch.repeat_interleave(
            torch.arange(self.num_paths, device=device),
            torch.tensor(self.num_segments, dtype=torch.long, device=device),
        ) if self.num_paths else torch.zeros(0, dtype=torch.long, device=device)

    def select(self, keep: List[int]) -> "PathStyle":
        """The paths `keep`, in that order (every field is per path: tensors indexed, lists picked)."""
        idx = torch.tensor(keep, dtype=torch.long)

        def pick(value):
            if value is None:
                return None
            return value[idx] if torch.is_tensor(value) else [value[i] for i in keep]

        return PathStyle(**{f.name: pick(getattr(self, f.name)) for f in fields(self)})

    def to(self, device) -> "PathStyle":
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if torch.is_tensor(getattr(self, f.name))})


@dataclass
class Sketch:
    """VP_SKETCH: one vector sketch. points: [N, 2] float, canvas pixel coordinates."""

    points: torch.Tensor
    style: PathStyle
    width: int
    height: int

    def __post_init__(self):
        expected = sum(self.style.points_per_path())
        if self.points.ndim != 2 or self.points.shape[-1] != 2 or self.points.shape[0] != expected:
            raise ValueError(f"Sketch points must be [{expected}, 2], got {list(self.points.shape)}")

    @property
    def num_paths(self) -> int:
        return self.style.num_paths

    @property
    def num_points(self) -> int:
        return int(self.points.shape[0])

    def centroid(self) -> torch.Tensor:
        return self.points.mean(dim=0) if self.num_points else torch.zeros(2)

    def as_animation(self, frames: int = 1, fps: float = 8.0) -> "SketchAnimation":
        return SketchAnimation(self.points.unsqueeze(0).expand(frames, -1, -1).clone(), self.style, self.width, self.height, fps)


@dataclass
class SketchAnimation:
    """VP_SKETCH_ANIMATION: K frames of the same paths. points: [K, N, 2]."""

    points: torch.Tensor
    style: PathStyle
    width: int
    height: int
    fps: float = 8.0

    def __post_init__(self):
        expected = sum(self.style.points_per_path())
        if self.points.ndim != 3 or self.points.shape[-1] != 2 or self.points.shape[1] != expected:
            raise ValueError(f"Animation points must be [K, {expected}, 2], got {list(self.points.shape)}")

    @property
    def num_frames(self) -> int:
        return int(self.points.shape[0])

    def frame(self, k: int) -> Sketch:
        return Sketch(self.points[k], self.style, self.width, self.height)


def make_style(num_segments, closed, stroke_width=1.5, stroke_color=(0.0, 0.0, 0.0), stroke_opacity=1.0,
               fill_color=(0.0, 0.0, 0.0), fill_opacity=0.0) -> PathStyle:
    """Uniform style for P paths (convenience for code-built sketches and tests)."""
    p = len(num_segments)
    return PathStyle(
        num_segments=list(num_segments),
        closed=list(closed),
        stroke_width=torch.full((p,), float(stroke_width)),
        stroke_color=torch.tensor([list(stroke_color)] * p, dtype=torch.float32).reshape(p, 3),
        stroke_opacity=torch.full((p,), float(stroke_opacity)),
        fill_color=torch.tensor([list(fill_color)] * p, dtype=torch.float32).reshape(p, 3),
        fill_opacity=torch.full((p,), float(fill_opacity)),
    )
