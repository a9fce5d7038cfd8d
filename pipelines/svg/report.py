"""The unsupported-feature report: per feature, how many elements it affected; one warning each."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from typing import Dict, List

# feature -> what happens instead (the warning text)
FEATURES = {
    "filter": "drawn without the filter",
    "mask": "drawn unmasked",
    "clip-path": "drawn unclipped (only a single plain <rect> in userSpaceOnUse units clips)",
    "marker": "markers not drawn (content too large, nested in a marker, or over the marker budget)",
    "pattern": "pattern paint drawn as flat grey",
    "stroke-linejoin": "miter-clip / arcs joins (SVG 2) drawn as miter joins",
    "group opacity": "opacity of a group applied to each of its paths separately (overlaps differ)",
    "vector-effect": "non-scaling-stroke ignored (the stroke scales with the transform)",
    "paint-order": "drawn fill first, then stroke",
    "mix-blend-mode": "drawn with normal blending",
    "dashes": "too many dashes: drawn as a solid stroke",
    "invalid transform": "attribute ignored",
    "animation": "SMIL animation ignored: the document's static state is drawn",
    "unknown element": "not drawn (not an SVG element; browsers do not draw it either)",
    "viewport clip": "more than 16 differently rotated clips in effect: this viewport is not clipped",
    "background-color": "the root's background colour is not drawn (the sketch has no background path)",
    "non-uniform stroke": "stroke under a skew or non-uniform scale drawn with a uniform width (sqrt|det| of the "
                          "transform)",
}



class Report:
    """Counts, per unsupported feature, the elements it affected; one warning per feature."""

    def __init__(self):
        self.counts: Counter = Counter()
        self._seen: Dict[str, set] = {}

    def add(self, feature: str, elem: ET.Element, instance: int = 0) -> None:
        key = (id(elem), instance)
        seen = self._seen.setdefault(feature, set())
        if key not in seen:
            seen.add(key)
            self.counts[feature] += 1

    def warnings(self) -> List[str]:
        out = []
        for feature, n in self.counts.items():
            if feature.startswith("<"):
                what = f"not drawn ({feature[1:-1]} is not supported)"
            else:
                what = FEATURES.get(feature, "not supported")
            out.append(f"unsupported {feature}: {n} element(s) affected, {what}")
        return out
