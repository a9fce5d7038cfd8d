"""Fuzz tier: a few hundred seeded hostile inputs (tests/svg_fuzz.py) must each load or raise SVGLoadError.

Never another exception, never an internal error, and every refusal says what is wrong. Each case's work is
bounded by the loader's limits (cases just under and just over them are included); load times are measured by
`python tests/svg_fuzz.py` and bench/bench_svg_limits.py, not asserted here.
"""
import logging
import math

import pytest
from svg_fuzz import cases

from pipelines.svg import SVGLoadError, load_svg_sketch

CASES = cases(n=300, seed=0)


def test_the_tier_is_a_few_hundred_distinct_cases():
    assert len(CASES) >= 300
    assert len({name for name, _, _ in CASES}) == len(CASES)
    kinds = {name.split("-", 1)[1].split("-")[0] for name, _, _ in CASES}
    assert {"truncated", "encoding", "nesting", "elements", "segments", "billion", "transform"} <= kinds


@pytest.mark.parametrize("name, source, options", CASES, ids=[c[0] for c in CASES])
def test_fuzz_case_loads_or_is_refused_cleanly(name, source, options, caplog):
    caplog.set_level(logging.ERROR, logger="VideoPriors")
    try:
        result = load_svg_sketch(source, **options)
    except SVGLoadError as exc:
        message = str(exc)
        assert len(message) > 10, message
        assert not message.startswith("internal error"), message  # a bug of ours, not a bad document
        return
    sketch = result.sketch
    assert sketch.num_paths >= 1
    assert all(math.isfinite(v) for v in sketch.points.flatten().tolist())
    assert sketch.width >= 1 and sketch.height >= 1
