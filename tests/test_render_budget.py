"""Memory estimates made before allocating: renders (pipelines/render_budget.py) and sampling
(pipelines/sampling.estimate_sampling_bytes), checked against measured peaks."""
from __future__ import annotations

import random

from dataclasses import replace

import pytest
import torch

from pipelines import render_budget as rb
from pipelines.priors.diffusers_prior import LiveTensorMemory
from pipelines.raster import rasterize
from pipelines.sketch import PathStyle
from pipelines.svg import load_svg_sketch


def _scene(kind: str, n: int, size: int = 128, seed: int = 0):
    rnd = random.Random(seed)
    u = rnd.uniform
    if kind == "lines":
        els = "".join(f'<line x1="{u(0, 100):.1f}" y1="{u(0, 100):.1f}" x2="{u(0, 100):.1f}" y2="{u(0, 100):.1f}" '
                      f'stroke="black" stroke-width="{u(0.2, 3):.1f}"/>' for _ in range(n))
    elif kind == "fills":
        els = "".join(f'<circle cx="{u(0, 100):.1f}" cy="{u(0, 100):.1f}" r="{u(2, 40):.1f}" fill="red" '
                      'fill-opacity="0.5"/>' for _ in range(n))
    elif kind == "rings":  # strokes drawn as outlines (the default miter joins at the arcs' joints)
        els = "".join(f'<circle cx="{u(20, 80):.1f}" cy="{u(20, 80):.1f}" r="{u(5, 60):.1f}" fill="none" '
                      f'stroke="black" stroke-width="{u(0.5, 4):.1f}"/>' for _ in range(n))
    else:
        els = "".join(f'<rect x="{u(0, 50):.1f}" y="{u(0, 50):.1f}" width="{u(2, 50):.1f}" height="30" fill="blue" '
                      f'fill-opacity="{u(0.3, 1):.2f}" stroke="black" stroke-width="2"/>' for _ in range(n))
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">{els}</svg>'
    return load_svg_sketch(svg, canvas_size=size, fit=False).sketch


def _animation(sketch, frames: int):
    shift = torch.linspace(0, 6, frames).view(-1, 1, 1) * torch.tensor([1.0, 0.5])
    return sketch.points.unsqueeze(0) + shift


@pytest.mark.parametrize("budget", [1 << 40, 4 << 20, 1 << 20, 1])
def test_bounded_render_equals_one_call_whatever_the_tiling(budget):
    """Frames, path groups (composited 'over') and row strips: the same pixels as one rasterize call
    (budget 1: every row of every path group of every frame on its own)."""
    s = _scene("mixed", 8 if budget == 1 else 40, size=96)
    pts = _animation(s, 2 if budget == 1 else 3)
    out = (64, 32) if budget == 1 else (160, 128)
    want = rasterize(pts, s.style, (96, 96), out, background=(0.9, 0.95, 1.0))
    got = rb.render_bounded(pts, s.style, (96, 96), out, background=(0.9, 0.95, 1.0), budget=budget)
    assert got.shape == want.shape
    assert (got - want).abs().max() < 1e-4


def test_bounded_render_splits_the_work_when_the_budget_is_small(monkeypatch):
    calls = []
    real = rb.raster.rasterize
    monkeypatch.setattr(rb.raster, "rasterize", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    s = _scene("lines", 200, size=128)
    rb.render_bounded(s.points, s.style, (128, 128), budget=1 << 40)
    assert len(calls) == 1
    calls.clear()
    rb.render_bounded(s.points, s.style, (128, 128), budget=1 << 20)
    assert len(calls) > 4 and all(c[1] < s.points.shape[0] for c in calls)


def test_fill_groups_are_never_split():
    style = PathStyle([1, 1, 1, 1], [True] * 4, torch.ones(4), torch.zeros(4, 3), torch.ones(4), torch.zeros(4, 3),
                      torch.ones(4), ["evenodd"] * 4, [0, 1, 1, 2])
    assert style.group_bounds() == [0, 1, 3, 4]  # the units render_bounded splits a render into
    assert replace(style, fill_group=None).group_bounds() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("kind,n,out", [("lines", 400, 256), ("lines", 150, 768), ("fills", 40, 256),
                                        ("fills", 15, 768), ("mixed", 60, 512), ("rings", 30, 768)])
def test_estimate_bounds_the_measured_peak(kind, n, out):
    s = _scene(kind, n, size=128)
    scale = out / 128
    style = rb.replace(s.style, stroke_width=s.style.stroke_width * scale)
    costs = rb._path_costs(s.points.unsqueeze(0) * scale, style, 1.0, max(4.0, out / rb.GRID))
    est = rb.estimate_tile_bytes(costs, slice(0, 1), slice(0, s.num_paths), 0, out, out)
    with torch.no_grad(), LiveTensorMemory() as mem:
        rasterize(s.points, s.style, (128, 128), (out, out))
    print(f"{kind} x{n} at {out}: measured {rb.gib(mem.peak)}, estimated {rb.gib(est)}")
    assert mem.peak <= est <= 8 * mem.peak


def test_bounded_render_peak_stays_near_its_budget():
    """A drawing whose single call would need several times the budget stays near the budget."""
    s = _scene("lines", 1500, size=256)
    costs = rb._path_costs(s.points.unsqueeze(0), s.style, 1.0, 4.0)
    whole = rb.estimate_tile_bytes(costs, slice(0, 1), slice(0, s.num_paths), 0, 256, 256)
    budget = 16 << 20
    assert whole > 4 * budget
    with torch.no_grad(), LiveTensorMemory() as mem:
        rb.render_bounded(s.points, s.style, (256, 256), budget=budget)
    print(f"1500 lines at 256: one call estimated {rb.gib(whole)}, bounded peak {rb.gib(mem.peak)}")
    assert mem.peak <= budget + rb.output_bytes(1, 256, 256, 4) * 4


# --- sampling ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def priors(tmp_path_factory):
    from pipelines.embedded.prior import load_embedded_prior
    from pipelines.priors.diffusers_prior import DiffusersVideoPrior
    from pipelines.priors.tiny_models import build_tiny_t2v_folder

    folder = str(tmp_path_factory.mktemp("tiny") / "t2v")
    build_tiny_t2v_folder(folder, seed=0)
    return {"embedded": load_embedded_prior(), "tiny": DiffusersVideoPrior.from_folder(folder)}


@pytest.mark.parametrize("name", ["embedded", "tiny"])
@pytest.mark.parametrize("frames,size", [(8, 64), (4, 128)])
def test_sampling_estimate_bounds_the_measured_peak(priors, name, frames, size):
    from pipelines.sampling import estimate_sampling_bytes, sample_video

    prior = priors[name]
    embeds = prior.encode_prompt("a cat", "")
    est = estimate_sampling_bytes(prior, embeds, frames, size, size)
    with torch.no_grad(), LiveTensorMemory() as mem:
        sample_video(prior, embeds, steps=1, guidance=5.0, num_frames=frames, height=size, width=size)
    print(f"{name} {frames}x{size}: measured {rb.gib(mem.peak)}, estimated {rb.gib(est)}")
    assert mem.peak <= est <= 4 * mem.peak


def test_sampling_estimate_of_the_issue_request(priors):
    """64 frames at 512 x 512 on the embedded prior: the figure the node refuses with on small machines."""
    from pipelines.sampling import estimate_sampling_bytes

    prior = priors["embedded"]
    est = estimate_sampling_bytes(prior, prior.encode_prompt("a cat", ""), 64, 512, 512)
    print(f"embedded, 64 frames at 512x512: estimated {rb.gib(est)}")
    assert est > 8 * 1024 ** 3


@pytest.mark.parametrize("quality", [2, 3])
def test_supersampled_tiles_equal_one_call(quality):
    """quality > 1: path groups are composited at the sampling resolution, then averaged."""
    s = _scene("mixed", 12, size=64)
    want = rasterize(s.points, s.style, (64, 64), (64, 48), quality=quality)
    got = rb.render_bounded(s.points, s.style, (64, 64), (64, 48), quality=quality, budget=256 << 10)
    assert (got - want).abs().max() < 1e-4


def test_empty_sketch_renders_the_background():
    style = PathStyle([], [], torch.zeros(0), torch.zeros(0, 3), torch.zeros(0), torch.zeros(0, 3), torch.zeros(0))
    out = rb.render_bounded(torch.zeros(2, 0, 2), style, (10, 10), (20, 12), background=(0.25, 0.5, 1.0))
    assert out.shape == (2, 12, 20, 3) and torch.allclose(out, torch.tensor([0.25, 0.5, 1.0]).expand_as(out))
