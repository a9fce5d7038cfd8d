"""A styled path in document coordinates, as the walk emits it (sketch point layout)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from ..sketch import Gradient
from .geometry import Point2


@dataclass
class RawPath:
    points: List[Point2]  # document (root viewport px) coordinates, sketch layout
    closed: bool
    stroke_rgb: Optional[Tuple[float, float, float]]  # None = no stroke
    stroke_opacity: float
    stroke_width: float  # document px, 0 = no stroke
    fill_rgb: Optional[Tuple[float, float, float]]  # None = no fill
    fill_opacity: float
    group: int = 0
    rule: str = "nonzero"
    linecap: str = "butt"  # SVG's stroke-linecap
    linejoin: str = "miter"  # stroke-linejoin: miter, round or bevel (miter-clip and arcs are drawn as miter)
    miterlimit: float = 4.0
    fill_paint: Optional[Gradient] = None  # gradient in document coordinates (fill_rgb is its mean colour)
    stroke_paint: Optional[Gradient] = None
