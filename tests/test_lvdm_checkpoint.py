"""LVDM checkpoint loading: every layout written to disk and read through the real loader; every bad input refused
with a message naming the file; the convert script's round trip. UNets are the golden fixtures' weights (real key
names), the other components small random tensors under their real prefixes."""
import os
import sys
import types

import convert_lvdm_checkpoint
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from shared_data import require_shared, root_or_placeholder  # noqa: F401 (fixture)

from pipelines.lvdm.checkpoint import (
    SCHEDULE_KEYS,
    CheckpointError,
    UnsafeCheckpointError,
    load_lvdm_checkpoint,
    read_checkpoint,
    write_safetensors,
)

pytestmark = pytest.mark.usefixtures("require_shared")

GOLDEN = root_or_placeholder("golden")
UNET = "model.diffusion_model."


def _golden(name):
    return load_file(os.path.join(GOLDEN, name, "weights.safetensors"))


def _extras(dc: bool, tail: float = 0.7, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)
    sd = {
        "first_stage_model.encoder.conv_in.weight": r(8, 3, 3, 3),
        "first_stage_model.decoder.conv_out.bias": r(3),
        "first_stage_model.quant_conv.weight": r(8, 8, 1, 1),
        "cond_stage_model.model.token_embedding.weight": r(10, 8),
        "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight": r(24, 8),
        "cond_stage_model.model.logit_scale": torch.tensor(4.6),
        "betas": torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64).pow(2).float(),
        "alphas_cumprod": torch.linspace(0.999, 0.01, 1000),
        "scale_arr": torch.cat([torch.linspace(1, tail, 400), torch.full((1000,), tail)]),
        "logvar": torch.zeros(1000),
        "model_ema.num_updates": torch.tensor(7, dtype=torch.int64),
        "something_else.weight": r(2, 2),
    }
    if dc:
        sd.update(_golden("dc_resampler"))  # image_proj_model.* keys
        sd["embedder.model.visual.conv1.weight"] = r(16, 3, 14, 14)
        sd["embedder.model.visual.transformer.resblocks.0.attn.in_proj_weight"] = r(48, 16)
        sd["embedder.model.token_embedding.weight"] = r(10, 8)
    return sd


def _full(fixture: str, extras=True, **kw) -> dict:
    sd = dict(_golden(fixture))
    if extras:
        sd.update(_extras(fixture.startswith("dc"), **kw))
    return sd


def _fake_class(monkeypatch, path: str):
    """A class that pickles under the dotted name `path` (its module is registered for the save only)."""
    module, _, name = path.rpartition(".")
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        monkeypatch.setitem(sys.modules, ".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    cls = type(name, (), {"__module__": module, "__qualname__": name})
    setattr(sys.modules[module], name, cls)
    return cls


def _lightning(sd, monkeypatch):
    mc = _fake_class(monkeypatch, "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint")
    return {"epoch": 3, "global_step": 12000, "pytorch-lightning_version": "1.9.3", "state_dict": sd,
            "callbacks": {mc: {"best_model_score": np.float64(0.25), "dirpath": "/ckpt"}},
            "optimizer_states": [], "lr_schedulers": []}


def _write(tmp_path, layout, sd, monkeypatch, name="model"):
    if layout == "safetensors":
        path = tmp_path / f"{name}.safetensors"
        save_file(sd, str(path), metadata={"format": "pt"})
    elif layout == "plain":
        path = tmp_path / f"{name}.pth"
        torch.save(sd, path)
    elif layout == "state_dict":
        path = tmp_path / f"{name}.ckpt"
        torch.save(_lightning(sd, monkeypatch), path)
    elif layout == "deepspeed":
        path = tmp_path / f"{name}.ckpt"
        torch.save({"module": {"_forward_module." + k: v for k, v in sd.items()}, "ds_version": "0.9.5",
                    "global_steps": 5}, path)
    elif layout == "legacy":
        path = tmp_path / f"{name}.pt"
        torch.save({"state_dict": sd}, path, _use_new_zipfile_serialization=False)
    return str(path)


CASES = [("vc2_unet", "videocrafter2_512"), ("dc256_unet", "dynamicrafter_256"), ("myv_unet", "makeyourvideo_256")]


@pytest.mark.parametrize("layout", ["plain", "state_dict", "deepspeed", "safetensors", "legacy"])
@pytest.mark.parametrize("fixture,variant", CASES)
def test_layouts_load_with_every_component(tmp_path, monkeypatch, layout, fixture, variant):
    sd = _full(fixture)
    path = _write(tmp_path, layout, sd, monkeypatch)
    ck = load_lvdm_checkpoint(path)
    assert ck.variant.name == variant
    assert ck.layout == ("state_dict" if layout == "legacy" else layout)
    golden = _golden(fixture)
    assert set(ck.unet) == {k[len(UNET):] for k in golden}
    assert all(torch.equal(ck.unet[k[len(UNET):]], v) for k, v in golden.items())
    for name, prefix in [("vae", "first_stage_model."), ("text_encoder", "cond_stage_model.model."),
                         ("resampler", "image_proj_model."), ("clip_vision", "embedder.model.")]:
        want = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        got = getattr(ck, name)
        if want:
            assert set(got) == set(want) and all(torch.equal(got[k], v) for k, v in want.items()), name
        else:
            assert got is None, name
    assert set(ck.schedule) == {"betas", "alphas_cumprod", "scale_arr", "logvar"}
    assert torch.equal(ck.schedule["betas"], sd["betas"])
    assert {"model_ema.num_updates", "something_else.weight"} <= set(ck.ignored)
    assert ck.unet["input_blocks.0.0.weight"].dtype == torch.float16  # kept as stored


@pytest.mark.parametrize("layout", ["plain", "state_dict", "safetensors"])
def test_unet_alone_is_enough(tmp_path, monkeypatch, layout):
    path = _write(tmp_path, layout, _full("vc2_unet", extras=False), monkeypatch)
    ck = load_lvdm_checkpoint(path)
    assert ck.variant.name == "videocrafter2_512" and ck.components().keys() == {"unet"}
    assert ck.schedule == {} and ck.ignored == [] and ck.vae is None


@pytest.mark.parametrize("layout", ["state_dict", "safetensors"])
def test_framestride_embed_is_renamed(tmp_path, monkeypatch, layout):
    sd = {k.replace("fps_embedding", "framestride_embed"): v for k, v in _full("dc256_unet").items()}
    assert any("framestride_embed" in k for k in sd)
    ck = load_lvdm_checkpoint(_write(tmp_path, layout, sd, monkeypatch))
    assert ck.variant.name == "dynamicrafter_256"
    assert "fps_embedding.0.weight" in ck.unet and not any("framestride" in k for k in ck.unet)
    assert ck.unet_config.fs_condition


def test_deepspeed_prefix_is_removed_from_every_key(tmp_path, monkeypatch):
    raw = read_checkpoint(_write(tmp_path, "deepspeed", _full("dc256_unet"), monkeypatch))
    assert raw.layout == "deepspeed" and not any(k.startswith("_forward_module.") for k in raw.tensors)
    assert "image_proj_model.latents" in raw.tensors and "betas" in raw.tensors


def test_dynamicrafter_variant_from_scale_arr_and_choice(tmp_path, monkeypatch):
    dc512 = {k: v for k, v in _golden("dc256_unet").items() if not k.endswith(".alpha")}
    for tail, name in [(0.7, "dynamicrafter_512"), (0.3, "dynamicrafter_1024")]:
        sd = dict(dc512, **_extras(True, tail=tail))
        path = _write(tmp_path, "safetensors", sd, monkeypatch, name=f"dc{tail}")
        assert load_lvdm_checkpoint(path).variant.name == name
    ck = load_lvdm_checkpoint(path, variant="dynamicrafter_512_interp")
    assert ck.variant.name == "dynamicrafter_512_interp" and ck.unet_config.default_fs == 24
    with pytest.raises(CheckpointError, match=r"dc0\.3\.safetensors.*cannot run as VideoCrafter2"):
        load_lvdm_checkpoint(path, variant="videocrafter2_512")


def _mapped_file(address: int):
    """The file mapped at `address` in this process (Linux /proc/self/maps), or None for anonymous memory."""
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(maxsplit=5)
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if lo <= address < hi:
                return fields[5].strip() if len(fields) > 5 else None
    return None


@pytest.mark.parametrize("layout", ["state_dict", "safetensors"])
def test_keep_is_memory_mapped_and_dtype_casts_tensor_by_tensor(tmp_path, monkeypatch, layout):
    path = _write(tmp_path, layout, _full("dc256_unet"), monkeypatch)
    kept = load_lvdm_checkpoint(path)
    w = kept.unet["input_blocks.0.0.weight"]
    assert _mapped_file(w.data_ptr()) == os.path.realpath(path)  # a view of the file, not a copy
    for dtype, want in [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)]:
        ck = load_lvdm_checkpoint(path, dtype=dtype)
        for part in ck.components().values():
            assert all(t.dtype == want for t in part.values()), dtype
        assert torch.equal(ck.unet["input_blocks.0.0.weight"], w.to(want))
        if want != torch.float16:
            assert _mapped_file(ck.unet["input_blocks.0.0.weight"].data_ptr()) != os.path.realpath(path)
        assert all(t.dtype == torch.float32 for t in ck.schedule.values())  # schedules never cast
    assert read_checkpoint(path, dtype="bf16").tensors["model_ema.num_updates"].dtype == torch.int64
    with pytest.raises(ValueError, match="dtype must be one of"):
        load_lvdm_checkpoint(path, dtype="fp8")


def test_expect_family(tmp_path, monkeypatch):
    dc = _write(tmp_path, "safetensors", _full("dc256_unet"), monkeypatch, name="dynamicrafter")
    with pytest.raises(CheckpointError, match=r"'dynamicrafter\.safetensors' is a DynamiCrafter image-to-video 256 "
                                              r"checkpoint; this node needs a text-to-video"):
        load_lvdm_checkpoint(dc, expect_family="videocrafter")
    vc = _write(tmp_path, "safetensors", _full("vc2_unet"), monkeypatch, name="vc2")
    assert load_lvdm_checkpoint(vc, expect_family=("videocrafter",)).variant.family == "videocrafter"
    assert load_lvdm_checkpoint(dc, expect_family=["dynamicrafter", "videocrafter"]).variant.has_resampler


# ---- bad inputs --------------------------------------------------------------------------------------------------

def _stable_diffusion_like():
    g = torch.Generator().manual_seed(1)
    return {UNET + "input_blocks.0.0.weight": torch.randn(32, 4, 3, 3, generator=g),
            UNET + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": torch.randn(32, 64, generator=g),
            UNET + "input_blocks.1.1.proj_in.weight": torch.randn(32, 32, generator=g),
            UNET + "out.2.weight": torch.randn(4, 32, 3, 3, generator=g),
            "first_stage_model.encoder.conv_in.weight": torch.randn(8, 3, 3, 3, generator=g),
            "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": torch.randn(4, 4)}


def test_stable_diffusion_checkpoint_is_refused(tmp_path, monkeypatch):
    path = _write(tmp_path, "state_dict", _stable_diffusion_like(), monkeypatch, name="sd21")
    with pytest.raises(CheckpointError, match=r"'sd21\.ckpt' holds an image UNet without temporal layers"):
        load_lvdm_checkpoint(path)


@pytest.mark.parametrize("layout", ["state_dict", "safetensors"])
def test_truncated_file(tmp_path, monkeypatch, layout):
    path = _write(tmp_path, layout, _full("vc2_unet"), monkeypatch, name="cut")
    with open(path, "rb") as f:
        data = f.read()
    for n in (len(data) // 2, len(data) - 100):
        with open(path, "wb") as f:
            f.write(data[:n])
        with pytest.raises(CheckpointError, match=r"'cut\.\w+' is (a )?truncated"):
            load_lvdm_checkpoint(path)


def test_truncated_safetensors_header(tmp_path):
    path = tmp_path / "head.safetensors"
    save_file({"a": torch.zeros(4)}, str(path))
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(CheckpointError, match=r"'head\.safetensors' is a truncated safetensors file"):
        read_checkpoint(path)


def _leave_mark(path):
    with open(path, "w") as f:
        f.write("code from the checkpoint ran")
    return {}


class _Payload:
    def __init__(self, mark):
        self.mark = mark

    def __reduce__(self):
        return (_leave_mark, (self.mark,))


@pytest.mark.parametrize("legacy", [False, True])
def test_pickle_with_code_is_refused_and_never_runs(tmp_path, legacy):
    mark = tmp_path / "ran.txt"
    path = tmp_path / "evil.ckpt"
    sd = dict(_golden("vc2_unet"), payload=_Payload(str(mark)))
    torch.save({"state_dict": sd}, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(UnsafeCheckpointError, match=r"refused to load 'evil\.ckpt'.*_leave_mark"):
        load_lvdm_checkpoint(path)
    assert not mark.exists()


def test_omegaconf_hyper_parameters_are_refused_with_explanation(tmp_path, monkeypatch):
    cfg_cls = _fake_class(monkeypatch, "omegaconf.dictconfig.DictConfig")
    cfg = cfg_cls()
    cfg.__dict__["_content"] = {"base_learning_rate": 1e-5}
    path = tmp_path / "trained.ckpt"
    obj = _lightning(_full("vc2_unet"), monkeypatch)
    obj["hyper_parameters"] = {"cfg": cfg}
    torch.save(obj, path)
    with pytest.raises(UnsafeCheckpointError) as e:
        load_lvdm_checkpoint(path)
    msg = str(e.value)
    assert "'trained.ckpt'" in msg and "omegaconf.dictconfig.DictConfig" in msg and "hyper_parameters" in msg
    assert "convert_lvdm_checkpoint.py" in msg and "safetensors" in msg


def test_lightning_extras_load(tmp_path, monkeypatch):
    path = _write(tmp_path, "state_dict", _full("vc2_unet"), monkeypatch, name="lightning")
    assert load_lvdm_checkpoint(path).variant.name == "videocrafter2_512"


@pytest.mark.parametrize("content,pattern", [
    (b"", r"'bad\.ckpt' is empty \(0 bytes\)"),
    (b"hello, this is a text file\n", r"'bad\.ckpt' is not a model checkpoint: neither a safetensors"),
    (b"<!DOCTYPE html><html><body>Sign in</body></html>", r"'bad\.ckpt' is not a model checkpoint: an HTML"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 10\n", r"Git LFS pointer"),
    (os.urandom(4096), r"'bad\.ckpt' is not a model checkpoint|truncated"),
])
def test_non_checkpoints(tmp_path, content, pattern):
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content if not content.startswith(b"\x80") and content[8:9] != b"{" else b"x" + content)
    with pytest.raises(CheckpointError, match=pattern):
        load_lvdm_checkpoint(path)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torchscript_and_foreign_zip(tmp_path):
    import zipfile

    torch.jit.script(torch.nn.Linear(2, 2)).save(str(tmp_path / "scripted.pt"))
    with pytest.raises(CheckpointError, match=r"'scripted\.pt' is a TorchScript archive"):
        load_lvdm_checkpoint(tmp_path / "scripted.pt")
    with zipfile.ZipFile(tmp_path / "photos.ckpt", "w") as z:
        z.writestr("a.txt", "hello")
    with pytest.raises(CheckpointError, match=r"'photos\.ckpt' is a zip archive without a PyTorch checkpoint"):
        load_lvdm_checkpoint(tmp_path / "photos.ckpt")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_lvdm_checkpoint(tmp_path / "nope.ckpt")


def test_containers_without_a_unet(tmp_path, monkeypatch):
    cases = {
        "list.pt": ([torch.zeros(2)], r"'list\.pt' holds a list, not a state dict"),
        "meta.ckpt": ({"epoch": 1, "global_step": 2}, r"'meta\.ckpt' holds no tensors"),
        "vae.pt": ({"first_stage_model.encoder.conv_in.weight": torch.zeros(2)},
                   r"'vae\.pt' has no LVDM UNet .*VAE only"),
        "diffusers.pt": ({"down_blocks.0.resnets.0.conv1.weight": torch.zeros(2)}, r"diffusers UNet"),
    }
    for name, (obj, pattern) in cases.items():
        torch.save(obj, tmp_path / name)
        with pytest.raises(CheckpointError, match=pattern):
            load_lvdm_checkpoint(tmp_path / name)


# ---- convert script ----------------------------------------------------------------------------------------------

def test_convert_round_trip_keeps_names_and_values(tmp_path, monkeypatch, capsys):
    sd = {k.replace("fps_embedding", "framestride_embed"): v for k, v in _full("dc256_unet").items()}
    src = _write(tmp_path, "state_dict", sd, monkeypatch, name="model")
    assert convert_lvdm_checkpoint.main([src]) == 0
    out = str(tmp_path / "model.safetensors")
    assert "wrote" in capsys.readouterr().out
    back = load_file(out)                     # what the official code would read
    assert set(back) == set(sd)
    assert all(torch.equal(back[k], v) and back[k].dtype == v.dtype for k, v in sd.items())
    with safe_open(out, framework="pt") as f:
        meta = f.metadata()
    assert meta["lvdm_variant"] == "dynamicrafter_256" and meta["source_file"] == "model.ckpt"
    assert meta["source_layout"] == "state_dict" and meta["dtype"] == "keep"
    ck = load_lvdm_checkpoint(out)
    assert ck.variant.name == "dynamicrafter_256" and "fps_embedding.0.weight" in ck.unet


def test_convert_fp16_and_variant_choice(tmp_path, monkeypatch):
    dc512 = {k: v.float() for k, v in _golden("dc256_unet").items() if not k.endswith(".alpha")}
    sd = dict(dc512, **_extras(True))
    src = _write(tmp_path, "deepspeed", sd, monkeypatch, name="interp")
    dst = str(tmp_path / "interp_fp16.safetensors")
    assert convert_lvdm_checkpoint.main([src, dst, "--dtype", "fp16", "--variant", "dynamicrafter_512_interp"]) == 0
    back = load_file(dst)
    assert set(back) == set(sd)
    for k, v in sd.items():
        if k in SCHEDULE_KEYS or not v.is_floating_point():
            assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
        else:
            assert back[k].dtype == torch.float16 and torch.equal(back[k], v.half()), k
    assert load_lvdm_checkpoint(dst).variant.name == "dynamicrafter_512_interp"  # from the metadata
    assert load_lvdm_checkpoint(dst, variant="dynamicrafter_512").variant.name == "dynamicrafter_512"
    forged = str(tmp_path / "forged.safetensors")  # a recorded variant the keys do not allow is not used
    save_file(load_file(dst), forged, metadata={"lvdm_variant": "videocrafter2_512"})
    assert load_lvdm_checkpoint(forged).variant.name == "dynamicrafter_512"


def test_convert_refuses_what_the_loader_refuses(tmp_path, monkeypatch, capsys):
    path = _write(tmp_path, "state_dict", _stable_diffusion_like(), monkeypatch, name="sd15")
    assert convert_lvdm_checkpoint.main([path]) == 2
    assert "'sd15.ckpt' holds an image UNet" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "sd15.safetensors")


def test_write_safetensors_checks_what_it_writes(tmp_path):
    path = tmp_path / "x.safetensors"
    specs = [("a", torch.bfloat16, (2, 3)), ("b", torch.int64, ()), ("c", torch.float32, (0,))]
    vals = {"a": torch.randn(2, 3).bfloat16(), "b": torch.tensor(5), "c": torch.zeros(0)}
    write_safetensors(path, specs, vals.__getitem__, {"k": "v"})
    back = load_file(str(path))
    assert all(torch.equal(back[k], v) for k, v in vals.items())
    with pytest.raises(ValueError, match="announced"):
        write_safetensors(tmp_path / "y.safetensors", specs, lambda k: torch.zeros(1))
    assert not os.path.exists(tmp_path / "y.safetensors") and not os.path.exists(tmp_path / "y.safetensors.partial")


COMFY_REGISTERS = '''
import sys, types, numpy as np, torch
sys.path.insert(0, sys.argv[1])
from pipelines.lvdm.checkpoint import read_checkpoint
class ModelCheckpoint: pass
ModelCheckpoint.__module__ = "pytorch_lightning.callbacks.model_checkpoint"
from numpy.core.multiarray import scalar
from numpy.dtypes import Float64DType
from _codecs import encode
registered = [ModelCheckpoint, scalar, np.dtype, Float64DType, encode]
torch.serialization.add_safe_globals(registered)  # what ComfyUI's comfy/utils.py does at import
before = torch.serialization.get_safe_globals()
sd = read_checkpoint(sys.argv[2]).tensors
assert list(sd) == ["a"], list(sd)
after = torch.serialization.get_safe_globals()
assert len(after) == len(before) and all(any(a is b for b in before) for a in after), (before, after)  # restored
print("ok")
'''


@pytest.mark.parametrize("hash_seed", range(6))
def test_lightning_numpy_metadata_loads_beside_comfyui_registrations(tmp_path, monkeypatch, hash_seed):
    """ComfyUI registers the real numpy `scalar` / `dtype` as safe globals under the names our inert stand-ins use;
    torch keeps them in a set, so which one a name meant depended on the process's string hashes (a Lightning file
    with a numpy best_model_score failed about 7 times in 8). Each seed is a different hash order."""
    import subprocess

    path = tmp_path / "lightning.ckpt"
    torch.save(_lightning({"a": torch.zeros(2)}, monkeypatch), path)
    script = tmp_path / "load.py"
    script.write_text(COMFY_REGISTERS)
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed), OMP_NUM_THREADS="1")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, str(script), repo, str(path)], capture_output=True, text=True, env=env,
                         check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
