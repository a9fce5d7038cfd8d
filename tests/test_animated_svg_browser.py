"""The animated SVG (SMIL) written by VP_SaveAnimatedSVG really plays in a browser (Debian Chromium).

The document's timeline is paused and set to chosen times, so the check is deterministic:
each frame time must show that frame's drawing, and the loop must come back to frame 0.
"""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from browser import launch
from pipelines.motion import procedural_motion
from pipelines.sketch import Sketch, make_style
from pipelines.svg_export import animated_svg

pytestmark = pytest.mark.browser


def sketch():
    pts = torch.tensor([[40.0, 60.0], [60.0, 20.0], [100.0, 20.0], [120.0, 60.0],
                        [40.0, 100.0], [70.0, 110.0], [90.0, 110.0], [120.0, 100.0]])
    return Sketch(pts, make_style([1, 1], [False, False], stroke_width=4.0), 160, 160)


def snapshot(page, seconds: float) -> np.ndarray:
    page.evaluate(f"(() => {{ const s = document.querySelector('svg'); s.pauseAnimations(); s.setCurrentTime({seconds}); }})()")
    page.wait_for_timeout(50)
    png = page.locator("svg").screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32) / 255


@pytest.mark.parametrize("interpolation", ["discrete", "linear"])
def test_animated_svg_plays_in_chromium(tmp_path, interpolation):
    from playwright.sync_api import sync_playwright

    anim = procedural_motion(sketch(), "spin", frames=4, fps=4.0)  # quarter turns, 1 s loop
    path = tmp_path / "anim.svg"
    path.write_text(animated_svg(anim, interpolation=interpolation), encoding="utf-8")
    with sync_playwright() as pw:
        context = launch(pw)
        try:
            page = context.new_page()
            page.goto(path.as_uri())
            frames = [snapshot(page, k / 4 + 0.01) for k in range(4)]
            loop = snapshot(page, 1.0 + 0.01)
        finally:
            context.close()
    for img in frames:
        assert (img < 0.5).mean() > 0.01, "a frame shows no drawing"
    for k in range(1, 4):
        assert np.abs(frames[k] - frames[0]).mean() > 0.01, f"frame {k} looks like frame 0: not animating"
    assert np.abs(loop - frames[0]).mean() < np.abs(frames[1] - frames[0]).mean() / 4, "does not loop"


@pytest.mark.parametrize("interpolation", ["linear", "spline"])
def test_chromium_interpolates_the_values_smil_says(tmp_path, interpolation):
    """Chromium's animated `d` (getComputedStyle) between keyframes, at set times, against SMIL's value-at-time
    rules (tests/test_sketch_inbetween.smil_value) on our document, and for linear against our own interpolation."""
    import re

    from playwright.sync_api import sync_playwright
    from test_sketch_inbetween import _animate, smil_value

    from pipelines.interpolation.sketch_inbetween import evaluate
    from pipelines.sketch import SketchAnimation

    g = torch.Generator().manual_seed(0)
    anim = SketchAnimation(torch.rand(8, 4, 2, generator=g) * 100 + 20, make_style([1], [False], stroke_width=3.0),
                           160, 160, 8.0)  # 8 keyframes, 1 s loop
    doc = animated_svg(anim, interpolation=interpolation)
    path = tmp_path / "anim.svg"
    path.write_text(doc, encoding="utf-8")
    times = [0.03, 0.0625, 0.3, 0.61, 0.97, 1.2]
    with sync_playwright() as pw:
        context = launch(pw)
        try:
            page = context.new_page()
            page.goto(path.as_uri())
            shown = [page.evaluate(f"(() => {{ const s = document.querySelector('svg'); s.pauseAnimations(); "
                                   f"s.setCurrentTime({t}); return getComputedStyle(document.querySelector('path')).d; }})()")
                     for t in times]
        finally:
            context.close()
    animate = _animate(doc)
    written = torch.round(anim.points.double() * 100) / 100
    for t, d in zip(times, shown):
        got = np.array([float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", d)])
        assert np.abs(got - smil_value(animate, t)).max() < 1e-3, (t, d)
        if interpolation == "linear":
            ours = evaluate(written, torch.tensor([t * 8.0], dtype=torch.float64), "linear", True)[0]
            assert np.abs(got - ours.reshape(-1).numpy()).max() < 1e-3, (t, d)
