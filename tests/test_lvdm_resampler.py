"""DynamiCrafter image_proj_model: golden output of the official Resampler, and the real checkpoint's keys/shapes."""
import os

import pytest
import torch
from safetensors.torch import load_file
from shared_data import require_shared, root_or_placeholder  # noqa: F401 (fixture)

from pipelines.lvdm.checkpoint import PREFIXES, read_checkpoint, split_components
from pipelines.lvdm.config import shapes_from_manifest
from pipelines.lvdm.resampler import Resampler

pytestmark = pytest.mark.usefixtures("require_shared")

GOLDEN = root_or_placeholder("golden", "dc_resampler")
MANIFESTS = root_or_placeholder("checkpoint-manifests")
TINY = dict(dim=32, depth=4, dim_head=24, heads=2, num_queries=16, embedding_dim=64, output_dim=64, ff_mult=4,
            video_length=16)
REAL = dict(dim=1024, depth=4, dim_head=64, heads=12, num_queries=16, embedding_dim=1280, output_dim=1024,
            ff_mult=4, video_length=16)


def _golden_model():
    raw = read_checkpoint(os.path.join(GOLDEN, "weights.safetensors"))
    parts, schedule, ignored = split_components(raw.tensors)
    assert not ignored and not schedule and len(parts["resampler"]) == 51
    model = Resampler(**TINY).eval()
    model.load_state_dict(parts["resampler"], strict=True)
    return model


def test_matches_official_output():
    torch.manual_seed(0)
    model = _golden_model()
    io = load_file(os.path.join(GOLDEN, "io.safetensors"))
    with torch.no_grad():
        out = model(io["x"])
    assert out.shape == io["out"].shape == (1, 256, 64)
    assert torch.allclose(out, io["out"], atol=1e-4, rtol=0)


def test_batch_rows_are_independent():
    model = _golden_model()
    x = torch.randn(2, 257, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        both = model(x)
        one = model(x[1:])
    assert torch.allclose(both[1:], one, atol=1e-5)


def test_takes_comfy_like_operations():
    made = []

    class Ops:
        class Linear(torch.nn.Linear):
            def __init__(self, *a, **k):
                super().__init__(*a, **k)
                made.append("Linear")

        class LayerNorm(torch.nn.LayerNorm):
            def __init__(self, *a, **k):
                super().__init__(*a, **k)
                made.append("LayerNorm")

    model = Resampler(**TINY, operations=Ops, dtype=torch.float64)
    assert made.count("Linear") == 2 + 4 * 5 and made.count("LayerNorm") == 1 + 4 * 3
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert model(torch.randn(1, 5, 64, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize("manifest", ["dc256", "dc512", "dc1024"])
def test_real_config_has_checkpoint_keys_and_shapes(manifest):
    with open(os.path.join(MANIFESTS, manifest + ".txt")) as f:
        shapes = shapes_from_manifest(f)
    prefix = PREFIXES["resampler"]
    want = {k[len(prefix):]: v for k, v in shapes.items() if k.startswith(prefix)}
    assert len(want) == 51
    model = Resampler(**REAL, device="meta")
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == want
