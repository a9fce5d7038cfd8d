"""Backend B: ComfyUI's own models as a prior (pipelines/priors/comfy_prior.py, VP_VideoPriorFromModel).

Tiny models, built here with ComfyUI's own classes, saved under the names of the real files and
loaded by the real core loaders (UNETLoader, VAELoader, CLIPLoader type "wan", CLIPTextEncode):

* diffusion model: comfy.ldm.wan.model.WanModel, dim 128 (one 128-d head, what model_detection
  derives from head.modulation), one block, ffn 64, text_dim 4096 (fixed by WanModel; detection
  does not read it) -> models/diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors, detected as
  WAN21_T2V (flow matching, CONST, shift 8);
* VAE: comfy.ldm.wan.vae.WanVAE with dim 8 (sd.py reads dim from decoder.head.0.gamma; z_dim,
  dim_mult and the temporal downsampling are fixed, so time compression 4 and space 8 are the
  real ones) -> models/vae/wan_2.1_vae.safetensors;
* text encoder: comfy.text_encoders.t5.T5 in the UMT5 layout with 24 blocks and d_model 4096 (what
  detect_te_model checks for T5-XXL and the 4096-d conditioning WanModel takes) but 1 head of 8,
  d_ff 8 and a 53-piece sentencepiece vocabulary trained here, with its spiece_model tensor ->
  models/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors (6 M parameters instead of 5.7 B).
  THE ONE SUBSTITUTION: ComfyUI builds UMT5 from the fixed file
  comfy/text_encoders/umt5_config_xxl.json, which no loader option changes. The tests replace
  `comfy.text_encoders.wan.UMT5XXlModel` by the identical SDClipModel/T5 construction pointing
  at the tiny config (TINY_UMT5_SOURCE): in-process with monkeypatch, in the server through a
  test-only custom node that does the same at startup. Detection, the "wan" recipe, the
  tokenizer, CLIPTextEncode and the CONDITIONING format are all core.
* eps and v prediction: the same tiny model re-parameterised by core node ModelSamplingDiscrete
  (sampling "eps" / "v_prediction": discrete VP schedule). Random weights: this checks the
  parameterisation math, not sample quality.
"""
from __future__ import annotations

import io
import json
import math
import os
import random

import pytest
import torch

from comfy_env import STALL_TIMEOUT
from comfy_runtime import REPO, load_workflow, workflow_to_prompt

WAN_UNET = "wan2.1_t2v_1.3B_fp16.safetensors"
WAN_VAE = "wan_2.1_vae.safetensors"
WAN_TE = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
TINY_UMT5_CONFIG = "tiny_umt5_config.json"  # written into the base dir, next to models/
WAN_WORKFLOW = os.path.join(REPO, "workflows", "livesketch_wan.json")

TINY_UMT5 = {"d_ff": 8, "d_kv": 8, "d_model": 4096, "dense_act_fn": "gelu_pytorch_tanh", "is_gated_act": True,
             "layer_norm_epsilon": 1e-6, "model_type": "umt5", "num_heads": 1, "num_layers": 24,
             "relative_attention_num_buckets": 32, "pad_token_id": 0, "eos_token_id": 1, "vocab_size": 64}

# Identical to comfy.text_encoders.wan.UMT5XXlModel except for the config file it reads.
TINY_UMT5_SOURCE = '''
import comfy.text_encoders.t5
from comfy import sd1_clip


class TinyUMT5XXlModel(sd1_clip.SDClipModel):
    def __init__(self, device="cpu", layer="last", layer_idx=None, dtype=None, model_options={}):
        super().__init__(device=device, layer=layer, layer_idx=layer_idx, textmodel_json_config=CONFIG_PATH,
                         dtype=dtype, special_tokens={"end": 1, "pad": 0}, model_class=comfy.text_encoders.t5.T5,
                         enable_attention_masks=True, zero_out_masked=True, model_options=model_options)
'''


# --- tiny models -----------------------------------------------------------------------------------

def _init_params(module: torch.nn.Module, gen: torch.Generator) -> None:
    """ComfyUI's ops skip initialisation: fill weights ~ N(0, 1/fan_in), norm gains 1, biases 0."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p[0].numel()))
            elif name.endswith("gamma") or ("norm" in name and name.endswith("weight")):
                p.fill_(1.0)
            else:
                p.zero_()


def _tiny_spiece_model(vocab: int = 64) -> bytes:
    import sentencepiece as spm

    words = ("a cat sways its tail and turns its head the dog runs jumps sketch line drawing animation moves "
             "slowly quickly wagging black white blurry low quality static").split()
    rnd = random.Random(0)
    lines = [" ".join(rnd.choice(words) for _ in range(8)) for _ in range(300)]
    buf = io.BytesIO()
    # UMT5's ids: pad 0, eos 1, unk 2, no bos (comfy.text_encoders.wan special_tokens).
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buf, vocab_size=vocab, pad_id=0,
                                   eos_id=1, unk_id=2, bos_id=-1, model_type="unigram", minloglevel=2,
                                   hard_vocab_limit=False)
    return buf.getvalue()


def install_tiny_wan_models(base_dir: str, seed: int = 0) -> str:
    """Tiny Wan 2.1 T2V diffusion model, VAE and UMT5 under the real file names; returns the UMT5 config path."""
    import sentencepiece as spm
    from safetensors.torch import save_file

    import comfy.ldm.wan.model
    import comfy.ldm.wan.vae
    import comfy.ops
    import comfy.text_encoders.t5

    config_path = os.path.join(base_dir, TINY_UMT5_CONFIG)
    models = os.path.join(base_dir, "models")
    if os.path.isfile(config_path) and os.path.isfile(os.path.join(models, "text_encoders", WAN_TE)):
        return config_path
    gen = torch.Generator().manual_seed(seed)
    ops = comfy.ops.disable_weight_init

    def save(folder: str, name: str, module: torch.nn.Module, extra: dict | None = None) -> None:
        _init_params(module, gen)
        sd = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
        sd.update(extra or {})
        os.makedirs(os.path.join(models, folder), exist_ok=True)
        save_file(sd, os.path.join(models, folder, name))

    save("diffusion_models", WAN_UNET, comfy.ldm.wan.model.WanModel(
        model_type="t2v", dim=128, ffn_dim=64, num_heads=1, num_layers=1, in_dim=16, out_dim=16, text_dim=4096,
        dtype=torch.float32, operations=ops))
    save("vae", WAN_VAE, comfy.ldm.wan.vae.WanVAE(dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                                 attn_scales=[], temperal_downsample=[False, True, True]))
    proto = _tiny_spiece_model()
    config = dict(TINY_UMT5, vocab_size=spm.SentencePieceProcessor(model_proto=proto).get_piece_size())
    save("text_encoders", WAN_TE, comfy.text_encoders.t5.T5(config, dtype=torch.float32, device="cpu", operations=ops),
         {"spiece_model": torch.frombuffer(bytearray(proto), dtype=torch.uint8)})
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(config, f)
    return config_path


def tiny_umt5_class(config_path: str):
    namespace = {"CONFIG_PATH": config_path}
    exec(compile(TINY_UMT5_SOURCE, "<tiny umt5>", "exec"), namespace)
    return namespace["TinyUMT5XXlModel"]


def install_tiny_umt5_custom_node(base_dir: str, config_path: str) -> None:
    """For a server subprocess: a test-only custom node that applies the same substitution at startup."""
    folder = os.path.join(base_dir, "custom_nodes", "vp_test_tiny_umt5")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "__init__.py"), "w", encoding="utf-8") as f:
        f.write(f'"""Test only (VideoPriors tests/test_comfy_prior.py): tiny UMT5 config for CLIPLoader type wan."""\n'
                f"CONFIG_PATH = {config_path!r}\n{TINY_UMT5_SOURCE}\n"
                "import comfy.text_encoders.wan\n\ncomfy.text_encoders.wan.UMT5XXlModel = TinyUMT5XXlModel\n"
                "NODE_CLASS_MAPPINGS = {}\n")


# --- fixtures ---------------------------------------------------------------------------------------

class WanEnv:
    pass


@pytest.fixture(scope="module")
def wan(comfy_inproc):
    """The tiny Wan models loaded by the core loader nodes under inference mode, as the executor runs them."""
    import comfy.text_encoders.wan
    import nodes

    env = WanEnv()
    env.comfy = comfy_inproc
    env.config_path = install_tiny_wan_models(comfy_inproc.base_dir)
    mp = pytest.MonkeyPatch()
    mp.setattr(comfy.text_encoders.wan, "UMT5XXlModel", tiny_umt5_class(env.config_path))
    mapping = nodes.NODE_CLASS_MAPPINGS
    with torch.inference_mode():
        env.model = mapping["UNETLoader"]().load_unet(WAN_UNET, "default")[0]
        env.vae = mapping["VAELoader"]().load_vae(WAN_VAE)[0]
        clip = mapping["CLIPLoader"]().load_clip(WAN_TE, "wan")[0]
        env.positive = mapping["CLIPTextEncode"]().encode(clip, "a cat sways its tail")[0]
        env.negative = mapping["CLIPTextEncode"]().encode(clip, "blurry static")[0]
        sampling = mapping["ModelSamplingDiscrete"]()
        env.models = {"flow": env.model, "eps": sampling.patch(env.model, "eps", False)[0],
                      "v": sampling.patch(env.model, "v_prediction", False)[0]}
    yield env
    mp.undo()


def make_prior(env, kind):
    from pipelines.priors.comfy_prior import ComfyVideoPrior

    with torch.inference_mode():  # as VP_VideoPriorFromModel runs
        prior = ComfyVideoPrior(env.models[kind], env.vae)
    prior.load()
    return prior


def _frames(k=5, size=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(k, 3, size, size, generator=gen)


# --- the loaders and the schedule -----------------------------------------------------------------

def test_tiny_models_are_what_the_core_loaders_detect(wan):
    import comfy.model_sampling

    assert type(wan.model.model.model_config).__name__ == "WAN21_T2V"
    assert isinstance(wan.model.get_model_object("model_sampling"), comfy.model_sampling.CONST)
    assert isinstance(wan.models["eps"].get_model_object("model_sampling"), comfy.model_sampling.EPS)
    assert isinstance(wan.models["v"].get_model_object("model_sampling"), comfy.model_sampling.V_PREDICTION)
    assert type(wan.vae.first_stage_model).__module__ == "comfy.ldm.wan.vae" and wan.vae.latent_channels == 16
    cond = wan.positive[0][0]
    assert cond.shape == (1, 512, 4096) and torch.isfinite(cond).all()  # UMT5 pads to 512 tokens
    assert not torch.equal(cond, wan.negative[0][0])
    # ComfyUI loaded the weights under inference mode: the reason encode_frames needs care
    assert next(wan.vae.first_stage_model.parameters()).is_inference()


def test_schedule_maps_t_to_the_models_own_sigmas(wan):
    t = torch.arange(1000, dtype=torch.float64)
    # flow (Wan, shift 8): sigma of timestep (t + 1) / 1000 with the shift; x_t = (1 - s) x0 + s eps
    flow = make_prior(wan, "flow")
    u = (t + 1) / 1000
    s = 8 * u / (1 + 7 * u)
    assert torch.allclose(flow._sigmas.double(), s, atol=1e-5)
    assert torch.allclose(flow.alphas_cumprod().double(), (1 - s) ** 2 / ((1 - s) ** 2 + s ** 2), atol=1e-5)
    assert flow.sds_weight(999) == pytest.approx(1.0) and flow.sds_weight(0) < 1e-3
    # discrete VP (eps and v): the DDPM linear schedule of SD, abar_t exactly, timestep t exactly
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    abar = torch.cumprod(1 - betas, 0)
    for kind in ("eps", "v"):
        prior = make_prior(wan, kind)
        assert torch.allclose(prior.alphas_cumprod().double(), abar, rtol=1e-4)
        ms = prior.model_sampling
        assert float(ms.timestep(torch.tensor(prior.sigma(437)))) == 437
    x0, eps = torch.randn(4), torch.randn(4)
    assert torch.allclose(flow.add_noise(x0, eps, 500), (1 - flow.sigma(500)) * x0 + flow.sigma(500) * eps)


# --- gradients --------------------------------------------------------------------------------------

def _direct_sds_gradient(env, kind, latents, noise, t, guidance):
    """w(t) (eps_hat - eps) from the diffusion model itself and textbook formulas, one call per branch."""
    dm = env.model.model.diffusion_model
    cond, uncond = env.positive[0][0], env.negative[0][0]
    with torch.no_grad():
        if kind == "flow":  # rectified flow, Wan's shift 8: x_t = (1 - s) x0 + s eps, the model predicts eps - x0
            u = (t + 1) / 1000
            s = 8 * u / (1 + 7 * u)
            x_t = (1 - s) * latents + s * noise
            out = [dm(x_t, torch.tensor([s * 1000.0]), context=c) for c in (uncond, cond)]
            x0 = [x_t - s * o for o in out]
            x0_hat = x0[0] + guidance * (x0[1] - x0[0])
            eps_hat = (x_t - (1 - s) * x0_hat) / s
            w = s ** 2 / ((1 - s) ** 2 + s ** 2)
        else:  # DDPM: x_t = sqrt(abar) x0 + sqrt(1 - abar) eps; diffusers' epsilon / v conventions
            betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
            abar = float(torch.cumprod(1 - betas, 0)[t])
            x_t = abar ** 0.5 * latents + (1 - abar) ** 0.5 * noise
            out = [dm(x_t, torch.tensor([float(t)]), context=c) for c in (uncond, cond)]
            pred = out[0] + guidance * (out[1] - out[0])
            eps_hat = pred if kind == "eps" else abar ** 0.5 * pred + (1 - abar) ** 0.5 * x_t
            w = 1 - abar
    return w * (eps_hat - noise)


@pytest.mark.parametrize("kind", ["eps", "v", "flow"])
@pytest.mark.parametrize("t", [120, 640])
def test_sds_gradient_equals_w_times_eps_hat_minus_eps(wan, kind, t):
    from pipelines.priors.base import sds_gradient

    prior = make_prior(wan, kind)
    embeds = prior.embeds_from_conditioning(wan.positive, wan.negative)
    frames = _frames().requires_grad_(True)
    with torch.enable_grad():
        latents = prior.encode_frames(frames)
        assert latents.shape == (1, 16, 2, 8, 8) and latents.requires_grad
        noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(t))
        grad = sds_gradient(prior, latents, embeds, 7.5, t, noise)
        expected = _direct_sds_gradient(wan, kind, latents.detach(), noise, t, 7.5)
        assert torch.isfinite(grad).all() and grad.abs().max() > 0
        torch.testing.assert_close(grad, expected, rtol=2e-4, atol=2e-5)
        latents.backward(gradient=grad)  # what animate_sketch injects
    assert frames.grad is not None and torch.isfinite(frames.grad).all() and frames.grad.abs().max() > 0


def test_guidance_one_runs_the_conditional_branch_only(wan):
    prior = make_prior(wan, "flow")
    embeds = prior.embeds_from_conditioning(wan.positive, wan.negative)
    x = torch.randn(1, 16, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    calls = []
    options = prior._conds(embeds, x)[1]
    options["model_function_wrapper"] = lambda apply, args: (calls.append(args["input"].shape[0]),
                                                             apply(args["input"], args["timestep"], **args["c"]))[1]
    prior.predict_noise(x, 300, embeds, 1.0)
    prior.predict_noise(x, 300, embeds, 5.0)
    assert calls == [1, 2]  # one batched call for cond + uncond under CFG


def test_encoder_runs_on_aliases_of_the_inference_weights(wan):
    from torch.func import functional_call

    from pipelines.priors.comfy_prior import _Encoder

    prior = make_prior(wan, "flow")
    fsm = wan.vae.first_stage_model
    before = {n: p for n, p in fsm.named_parameters()}
    frames = _frames(seed=3)
    x = (frames * 2 - 1).permute(1, 0, 2, 3).unsqueeze(0).requires_grad_(True)
    with torch.enable_grad():
        with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward"):
            fsm.encode(x).sum().backward()  # the naive way fails
        f1 = frames.clone().requires_grad_(True)
        prior.encode_frames(f1).square().sum().backward()
        # reference: the same encoder on cloned (normal) weights
        f2 = frames.clone().requires_grad_(True)
        params = {f"m.{n}": p.clone() for n, p in fsm.named_parameters()}
        z = functional_call(_Encoder(fsm), params, ((f2 * 2 - 1).permute(1, 0, 2, 3).unsqueeze(0),))
        prior.latent_format.process_in(z.float()).square().sum().backward()
    torch.testing.assert_close(f1.grad, f2.grad)
    after = {n: p for n, p in fsm.named_parameters()}
    assert all(before[n] is after[n] and after[n].is_inference() for n in before)  # the module is untouched


def test_frame_count_and_conditioning_errors(wan):
    from pipelines.priors.comfy_prior import ConditioningMissingError

    prior = make_prior(wan, "flow")
    assert prior.time_compression == 4 and prior.spatial_compression == 8
    assert [k for k in range(1, 27) if prior.frame_count_ok(k)] == [1, 5, 9, 13, 17, 21, 25]
    with pytest.raises(ValueError, match=r"1 \+ 4\*n frames .*got 6"):
        prior.encode_frames(_frames(k=6))
    with pytest.raises(ValueError, match="multiple of 8"):
        prior.encode_frames(_frames(size=60))
    with pytest.raises(ConditioningMissingError, match="CONDITIONING"):
        prior.encode_prompt("a cat")
    with pytest.raises(ConditioningMissingError, match="negative CONDITIONING"):
        prior.embeds_from_conditioning(wan.positive, None)


def test_model_and_vae_must_belong_together(wan):
    from pipelines.priors.comfy_prior import ComfyVideoPrior

    class OtherVAE:
        first_stage_model = wan.vae.first_stage_model
        latent_channels = 48  # a Wan 2.2 VAE

    with pytest.raises(ValueError, match="48-channel latents but the model takes 16"):
        ComfyVideoPrior(wan.model, OtherVAE())


# --- the workflow -----------------------------------------------------------------------------------

def wan_prompt(info: dict, frames: int = 5) -> dict:
    prompt = workflow_to_prompt(load_workflow(WAN_WORKFLOW), info)
    for node in prompt.values():
        if node["class_type"] == "VP_SketchMotionModel":
            node["inputs"].update(frames=frames, hidden=16)
        if node["class_type"] == "VP_AnimateSketch":
            node["inputs"].update(iterations=2, render_size=64, preview_every=1)
    return prompt


def _node_error(executor, node_type):
    errors = [m[1] for m in executor.status_messages if m[0] == "execution_error"]
    assert errors, executor.status_messages
    assert errors[0]["node_type"] == node_type, errors[0]
    return errors[0]["exception_message"]


def _check_outputs(outputs: dict, fetch):
    from test_comfy_integration import check_image_file, check_svg_file, check_video_file

    kinds = {}
    for items in outputs.values():
        for item in [i for v in items.values() if isinstance(v, list) for i in v if isinstance(i, dict)]:
            if "filename" in item and item.get("type") == "output":
                kinds[os.path.splitext(item["filename"])[1]] = item
    assert {".svg", ".webp", ".mp4"} <= set(kinds), kinds
    check_svg_file(fetch(kinds[".svg"]), animated=True)
    # 5 keyframes x 3 (VP_InterpolateSketch, looping), rasterized from the vectors at the 256 canvas
    check_image_file(fetch(kinds[".webp"]), frames=15, size=(256, 256))
    check_video_file(fetch(kinds[".mp4"]), frames=15, size=(256, 256))


def test_wan_workflow_runs_in_process_with_tiny_models(wan):
    info = wan.comfy.object_info()
    assert "VP_VideoPriorFromModel" in info
    executor = wan.comfy.run(wan_prompt(info))
    assert executor.success, executor.status_messages
    outputs = executor.history_result["outputs"]

    def fetch(item):
        with open(os.path.join(wan.comfy.base_dir, item["type"], item["subfolder"], item["filename"]), "rb") as f:
            return f.read()

    _check_outputs(outputs, fetch)


def test_wan_workflow_errors_in_process(wan):
    info = wan.comfy.object_info()
    bad = wan_prompt(info, frames=6)
    executor = wan.comfy.run(bad)
    assert not executor.success
    msg = _node_error(executor, "VP_AnimateSketch")
    assert "1 + 4*n frames" in msg and "got 6" in msg

    missing = wan_prompt(info)
    guidance = next(k for k, v in missing.items() if v["class_type"] == "VP_SDSGuidance")
    del missing[guidance]["inputs"]["positive"], missing[guidance]["inputs"]["negative"]
    executor = wan.comfy.run(missing)
    msg = _node_error(executor, "VP_SDSGuidance")
    assert "positive CONDITIONING" in msg and "CLIPTextEncode" in msg


@pytest.mark.server
def test_wan_workflow_runs_through_the_server(tmp_path_factory, comfy_inproc):
    """The real server, started with the tiny models and the test-only UMT5 config custom node.

    comfy_inproc: building the tiny models imports ComfyUI's classes, which needs ComfyUI set up (--cpu).
    """
    from comfy_runtime import ComfyServer

    base = str(tmp_path_factory.mktemp("comfy-wan-server"))
    config_path = install_tiny_wan_models(base)
    install_tiny_umt5_custom_node(base, config_path)
    server = ComfyServer(base)
    server.start()
    try:
        info = server.object_info()
        assert WAN_TE in info["CLIPLoader"]["input"]["required"]["clip_name"][0]
        entry = server.run(wan_prompt(info), stall_timeout=STALL_TIMEOUT)
        assert entry["status"]["status_str"] == "success", entry["status"]
        _check_outputs(entry["outputs"], server.fetch)
    finally:
        server.stop()
