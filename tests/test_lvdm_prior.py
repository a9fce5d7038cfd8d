"""The LVDM family as a video prior (VP_VideoPriorFromModel) and in VP_SampleVideo, with tiny official-layout
checkpoints (tests/lvdm_tiny.py) loaded by the real VP_LoadLVDMCheckpoint.

* SDS: the gradient equals w(t) (eps_hat - eps) computed from the raw UNet on the official schedule, for
  VideoCrafter2 (eps) and DynamiCrafter 512 (v, zero terminal SNR); a short LiveSketch run with VideoCrafter2
  through the in-process executor (the graph of scripts/build_workflows.py livesketch_videocrafter2).
* VP_SampleVideo: the official DDIM (pipelines.lvdm.ddim.ddim_sample) on the exact schedule of the variant, on the
  raw UNet with conditions built from the CONDITIONING; compared with a direct ddim_sample call whose conditions
  are built by hand (text[:77] + image tokens, the concat latent, fs).
"""
from __future__ import annotations

import inspect
import os
import sys

import lvdm_tiny
import pytest
import torch

SIZE = 64      # pixels (latent 8x8)
FRAMES = 16    # DynamiCrafter's per-frame image tokens need 16
LATENT = SIZE // 8


class Env:
    pass


def _call(mapping, name, *args):
    cls = mapping[name]
    if hasattr(cls, "execute"):
        return cls.execute(*args).result
    return getattr(cls(), cls.FUNCTION)(*args)


@pytest.fixture(scope="module")
def lvdm(comfy_inproc):
    """Tiny VideoCrafter2 and DynamiCrafter 512 through the pack's nodes, under inference mode as the executor
    runs them; DynamiCrafter conditioned on a random start image by VP_DynamiCrafterConditioning."""
    ns = lvdm_tiny.substitution(comfy_inproc.base_dir)
    ns["apply"]()
    lvdm_tiny.install_checkpoints(comfy_inproc.base_dir)
    mapping = comfy_inproc.nodes.NODE_CLASS_MAPPINGS
    env = Env()
    env.comfy = comfy_inproc
    env.mapping = mapping
    with torch.inference_mode():
        vc = _call(mapping, "VP_LoadLVDMCheckpoint", "videocrafter2_512.ckpt", "auto", "fp32")
        env.vc_model, env.vc_vae = vc[0], vc[2]
        env.vc_pos = _call(mapping, "CLIPTextEncode", vc[1], "a bird flies")[0]
        env.vc_neg = _call(mapping, "CLIPTextEncode", vc[1], "blurry")[0]
        dc = _call(mapping, "VP_LoadLVDMCheckpoint", "dynamicrafter_512.ckpt", "auto", "fp32")
        env.dc_model, env.dc_vae = dc[0], dc[2]
        pos = _call(mapping, "CLIPTextEncode", dc[1], "a cat turns its head")[0]
        neg = _call(mapping, "CLIPTextEncode", dc[1], "")[0]
        env.dc_text_pos, env.dc_text_neg = pos, neg
        env.image = torch.rand(1, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(1))
        env.ctx = _call(mapping, "VP_CLIPContextEncoder", dc[3], dc[4], env.image, "official", SIZE, SIZE,
                        "center crop")[0]
        out = _call(mapping, "VP_DynamiCrafterConditioning", pos, neg, env.ctx, env.dc_vae, env.image, SIZE, SIZE,
                    FRAMES, 24, "center crop", 1)
        env.dc_pos, env.dc_neg = out[0], out[1]
    yield env
    ns["undo"]()


def make_prior(model, vae):
    from pipelines.priors.comfy_prior import ComfyVideoPrior

    with torch.inference_mode():  # as VP_VideoPriorFromModel runs
        prior = ComfyVideoPrior(model, vae)
    prior.load()
    return prior


def _frames(k, size=SIZE, seed=0):
    return torch.rand(k, 3, size, size, generator=torch.Generator().manual_seed(seed))


def to_video(rows: torch.Tensor, frames: int) -> torch.Tensor:
    """[B*T, C, h, w] (frames in batch) -> [B, C, T, h, w]."""
    return rows.reshape(-1, frames, *rows.shape[1:]).transpose(1, 2)


def to_rows(video: torch.Tensor) -> torch.Tensor:
    return video.transpose(1, 2).reshape(-1, video.shape[1], *video.shape[3:])


# --- hand-built official conditions ---------------------------------------------------------------------------------

def vc_conds(env, frames):
    """VideoCrafter2: context = the 77 text tokens, fs = the official fps 28 (no concat)."""
    return ({"context": env.vc_pos[0][0], "fs": 28}, {"context": env.vc_neg[0][0], "fs": 28}, None)


def dc_conds(env, frames):
    """DynamiCrafter: context = cat(text[:77], image tokens), concat = the start latent (x0.18215) on every frame,
    fs = 24; uncond = empty text + grey-image tokens; image-only = empty text + the image tokens."""
    base = env.dc_model.model
    concat = base.process_latent_in(env.dc_pos[0][1]["concat_latent_image"]).repeat(frames, 1, 1, 1)
    concat = to_video(concat, frames)

    def cond(text, tokens):
        return {"context": torch.cat([text[0][0][:, :77], tokens], dim=1), "concat": concat, "fs": 24}

    return (cond(env.dc_text_pos, env.ctx["cond"]), cond(env.dc_text_neg, env.ctx["uncond"]),
            cond(env.dc_text_neg, env.ctx["cond"]))


def raw_model_fn(model):
    dm = model.model.diffusion_model

    def model_fn(x, t, c):
        if c.get("concat") is not None:
            x = torch.cat([x, c["concat"].to(x)], dim=1)
        return dm(x, t, context=c["context"], fs=torch.tensor([c["fs"]])).float()

    return model_fn


# --- SDS --------------------------------------------------------------------------------------------------------------

def _direct_sds_gradient(model, conds, latents_rows, noise_rows, t, guidance, frames):
    """w(t) (eps_hat - eps) from the raw UNet on the official schedule (alphas_cumprod[999] = 0 for zero-SNR)."""
    from pipelines.lvdm.schedule import TrainingSchedule

    variant = model.model.variant
    abar = float(TrainingSchedule.for_variant(variant).alphas_cumprod.double()[t])
    x0, eps = to_video(latents_rows, frames), to_video(noise_rows, frames)
    x_t = abar ** 0.5 * x0 + (1 - abar) ** 0.5 * eps
    model_fn = raw_model_fn(model)
    tt = torch.tensor([t])
    with torch.no_grad():
        c, u = model_fn(x_t, tt, conds[0]), model_fn(x_t, tt, conds[1])
    out = u + guidance * (c - u)
    eps_hat = out if variant.parameterization == "eps" else abar ** 0.5 * out + (1 - abar) ** 0.5 * x_t
    return to_rows((1 - abar) * (eps_hat - eps))


CASES = {"vc": vc_conds, "dc": dc_conds}


# DynamiCrafter with 16 frames (16 image tokens per frame, the official layout) and with 8 (every frame sees all
# the tokens, the official behaviour for other lengths): the raw UNet is given the same 256 tokens in both paths.
@pytest.mark.parametrize("key,frames,t", [("vc", 8, 120), ("vc", 8, 948), ("dc", FRAMES, 120), ("dc", 8, 948)],
                         ids=["videocrafter2-120", "videocrafter2-948", "dynamicrafter_512-120",
                              "dynamicrafter_512-948"])
def test_sds_gradient_is_w_times_eps_hat_minus_eps_from_the_raw_unet(lvdm, key, frames, t):
    from pipelines.priors.base import sds_gradient

    make_conds = CASES[key]
    model, vae = getattr(lvdm, f"{key}_model"), getattr(lvdm, f"{key}_vae")
    prior = make_prior(model, vae)
    assert prior.lvdm_variant.name == model.model.variant.name
    assert (prior.num_frames, prior.height, prior.width) == (16, 320, 512)  # the official clip
    embeds = prior.embeds_from_conditioning(getattr(lvdm, f"{key}_pos"), getattr(lvdm, f"{key}_neg"))
    pixels = _frames(frames, seed=t).requires_grad_(True)
    with torch.enable_grad():
        latents = prior.encode_frames(pixels)
        assert latents.shape == (frames, 4, LATENT, LATENT) and latents.requires_grad  # frames in the batch
        noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(t))
        grad = sds_gradient(prior, latents, embeds, 7.5, t, noise)
        expected = _direct_sds_gradient(model, make_conds(lvdm, frames), latents.detach(), noise, t, 7.5, frames)
        assert torch.isfinite(grad).all() and grad.abs().max() > 1e-3
        torch.testing.assert_close(grad, expected, rtol=2e-4, atol=1e-4)  # |grad| up to ~5 at t=948
        latents.backward(gradient=grad)
    assert pixels.grad is not None and torch.isfinite(pixels.grad).all() and pixels.grad.abs().max() > 0


def test_dynamicrafter_terminal_step_is_capped_like_comfyui(lvdm):
    """t = 999 of the zero-SNR schedule: official x_t = eps and eps_hat = x_t, so the SDS gradient is 0; ComfyUI
    caps alphas_cumprod[999] at 4.9e-8 (sigma 4518), which leaves a residue of order sqrt(4.9e-8) * v."""
    from pipelines.priors.base import sds_gradient

    prior = make_prior(lvdm.dc_model, lvdm.dc_vae)
    embeds = prior.embeds_from_conditioning(lvdm.dc_pos, lvdm.dc_neg)
    with torch.no_grad():
        latents = prior.encode_frames(_frames(8, seed=5))
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(5))
    grad = sds_gradient(prior, latents, embeds, 7.5, 999, noise)
    expected = _direct_sds_gradient(lvdm.dc_model, dc_conds(lvdm, 8), latents, noise, 999, 7.5, 8)
    assert float(expected.abs().max()) == 0.0
    assert prior.sigma(999) == pytest.approx(4518.6, rel=1e-3)
    assert 0 < float(grad.abs().max()) < 1e-2


def test_frame_count_of_the_conditioning_follows_the_clip(lvdm):
    """The DynamiCrafter conditioning says 16 frames; a clip of 8 runs as one 8-frame video (every frame sees all
    image tokens, the official behaviour for other lengths)."""
    prior = make_prior(lvdm.dc_model, lvdm.dc_vae)
    embeds = prior.embeds_from_conditioning(lvdm.dc_pos, lvdm.dc_neg)
    x = torch.randn(8, 4, LATENT, LATENT, generator=torch.Generator().manual_seed(2))
    eps = prior.predict_noise(x, 300, embeds, 5.0)
    assert eps.shape == x.shape and torch.isfinite(eps).all()
    assert lvdm.dc_pos[0][1]["num_video_frames"] == FRAMES  # the user's conditioning is untouched


def test_dynamicrafter_prior_needs_the_image_conditioning(lvdm):
    from pipelines.priors.comfy_prior import ConditioningMissingError

    prior = make_prior(lvdm.dc_model, lvdm.dc_vae)
    with pytest.raises(ConditioningMissingError, match="VP_DynamiCrafterConditioning"):
        prior.embeds_from_conditioning(lvdm.dc_text_pos, lvdm.dc_text_neg)
    with pytest.raises(ConditioningMissingError, match="negative"):
        prior.embeds_from_conditioning(lvdm.dc_pos, lvdm.dc_text_neg)


def _build_workflows():
    """scripts/build_workflows.py as a module (it puts the repo first on sys.path: restored here, so ComfyUI's
    top-level modules keep winning)."""
    saved = list(sys.path)
    try:
        import build_workflows
    finally:
        sys.path[:] = saved
    return build_workflows


def node_error(executor) -> str:
    for event, data in executor.status_messages:
        if event == "execution_error":
            return f"{data.get('node_type')}: {data.get('exception_message')}"
    return ""


def test_livesketch_with_videocrafter2_runs_in_process(lvdm):
    from comfy_runtime import workflow_to_prompt

    info = lvdm.comfy.object_info()
    workflow = _build_workflows().livesketch_videocrafter2(info)
    prompt = workflow_to_prompt(workflow, info)
    types = {n["class_type"]: n for n in prompt.values()}
    assert types["VP_LoadLVDMCheckpoint"]["inputs"]["ckpt_name"] == "videocrafter2_512.ckpt"
    assert types["VP_SketchMotionModel"]["inputs"]["frames"] == 16
    assert types["VP_AnimateSketch"]["inputs"]["render_size"] == 256
    types["VP_LoadLVDMCheckpoint"]["inputs"]["weight_dtype"] = "fp32"
    types["VP_SketchMotionModel"]["inputs"].update(frames=8, hidden=16)
    types["VP_AnimateSketch"]["inputs"].update(iterations=2, fused=True, render_size=SIZE, preview_every=1)
    executor = lvdm.comfy.run(prompt)
    assert executor.success, node_error(executor)
    kinds = lvdm_tiny.files_by_kind(executor.history_result["outputs"])
    assert {".svg", ".webp", ".mp4"} <= set(kinds), kinds
    from test_comfy_integration import check_image_file

    item = kinds[".webp"]
    with open(os.path.join(lvdm.comfy.base_dir, "output", item["subfolder"], item["filename"]), "rb") as f:
        # the 8 keyframes x 3 (VP_InterpolateSketch), rasterized from the vectors at the 256 canvas
        check_image_file(f.read(), frames=24, size=(256, 256))


# --- VP_SampleVideo: the official DDIM on the raw UNet ----------------------------------------------------------------

def direct_ddim(model, conds, *, steps, eta, cfg, rescale, seed, frames, cfg_img=None):
    """pipelines.lvdm.ddim.ddim_sample on the raw UNet with hand-built conditions, the variant's exact schedule and
    spacing, x_T then the eta noise from one CPU generator."""
    from pipelines.lvdm.ddim import ddim_sample
    from pipelines.lvdm.schedule import DDIMSchedule, TrainingSchedule

    variant = model.model.variant
    schedule = DDIMSchedule.make(TrainingSchedule.for_variant(variant), steps, variant.timestep_spacing, eta=eta)
    gen = torch.Generator().manual_seed(seed)
    x_T = torch.randn((1, 4, frames, LATENT, LATENT), generator=gen)
    cond, uncond, image_only = conds
    with torch.no_grad():
        return ddim_sample(raw_model_fn(model), x_T, schedule, cond, uncond=uncond, cfg_scale=cfg,
                           guidance_rescale=rescale, cond_img_only=image_only if cfg_img else None, cfg_img=cfg_img,
                           generator=gen)


def managed_prior(env, key):
    with torch.inference_mode():
        return _call(env.mapping, "VP_VideoPriorFromModel", getattr(env, f"{key}_model"), getattr(env, f"{key}_vae"))[0]


def sample_node(env, prior, *, steps, eta, guidance, seed, frames=0, size=0, positive=None, negative=None,
                image_guidance=0.0, guidance_rescale=-1.0, preview=False):
    node = env.mapping["VP_SampleVideo"]
    with torch.inference_mode():
        return node.execute(prior, "ignored", "ignored", steps, eta, guidance, seed, frames, size, size, preview,
                            positive, negative, image_guidance, guidance_rescale).result[0]


SAMPLE_CASES = {
    # DynamiCrafter 512 (v, zero-SNR, uniform_trailing, dynamic rescale): plain CFG + the official rescale 0.7
    "dynamicrafter_cfg_rescale": {"key": "dc", "steps": 3, "eta": 1.0, "guidance": 7.5, "image_guidance": 0.0,
                                  "guidance_rescale": -1.0, "rescale": 0.7, "frames": FRAMES, "seed": 11},
    # ... and the multi-condition text / image CFG (three calls per step), eta 0, no rescale
    "dynamicrafter_multicond": {"key": "dc", "steps": 4, "eta": 0.0, "guidance": 5.0, "image_guidance": 2.5,
                                "guidance_rescale": 0.0, "rescale": 0.0, "frames": FRAMES, "seed": 12},
    # VideoCrafter2 (eps, uniform spacing, scale_arr), text only, 8 frames from the widget
    "videocrafter2_scale_arr": {"key": "vc", "steps": 4, "eta": 1.0, "guidance": 12.0, "image_guidance": 0.0,
                                "guidance_rescale": -1.0, "rescale": 0.0, "frames": 8, "seed": 13},
}


@pytest.mark.parametrize("case", list(SAMPLE_CASES))
def test_sample_video_is_the_official_ddim_on_the_raw_unet(lvdm, case, monkeypatch):
    c = SAMPLE_CASES[case]
    key = c["key"]
    model = getattr(lvdm, f"{key}_model")
    make_conds = vc_conds if key == "vc" else dc_conds
    ref = direct_ddim(model, make_conds(lvdm, c["frames"]), steps=c["steps"], eta=c["eta"], cfg=c["guidance"],
                      rescale=c["rescale"], seed=c["seed"], frames=c["frames"],
                      cfg_img=c["image_guidance"] or None)
    assert torch.isfinite(ref).all()
    prior = managed_prior(lvdm, key)
    # The node's final latents, seen where it decodes them (the real SD VAE decoder is slow on CPU: decoded for
    # real in the 8-frame case only).
    decode = case == "videocrafter2_scale_arr"
    seen, real_decode = [], prior.prior.decode_latents

    def recording_decode(latents):
        seen.append(latents.clone())
        return real_decode(latents) if decode else torch.zeros(latents.shape[0], 3, SIZE, SIZE)

    monkeypatch.setattr(prior.prior, "decode_latents", recording_decode)
    positive, negative = getattr(lvdm, f"{key}_pos"), getattr(lvdm, f"{key}_neg")
    # DynamiCrafter: 0 = the conditioning's 16 frames and its image's size; VideoCrafter2: 0 = 16 x 320x512
    widget_frames, size = (c["frames"], SIZE) if key == "vc" else (0, 0)
    images = sample_node(lvdm, prior, steps=c["steps"], eta=c["eta"], guidance=c["guidance"], seed=c["seed"],
                         frames=widget_frames, size=size, positive=positive, negative=negative,
                         image_guidance=c["image_guidance"], guidance_rescale=c["guidance_rescale"])
    assert len(seen) == 1 and seen[0].shape == (c["frames"], 4, LATENT, LATENT)  # frames in the batch
    torch.testing.assert_close(seen[0], to_rows(ref), atol=1e-4, rtol=0)
    assert images.shape == (c["frames"], SIZE, SIZE, 3)
    if decode:  # IMAGE frames in the batch = the VAE's decoding of the official result
        with torch.inference_mode():
            expected = real_decode(to_rows(ref)).permute(0, 2, 3, 1)
        torch.testing.assert_close(images, expected, atol=1e-4, rtol=0)


def test_sample_video_settings_change_the_result(lvdm):
    """The rescale, the image guidance and the seed all reach the sampler (a test that cannot pass vacuously)."""
    prior = managed_prior(lvdm, "dc")
    module = inspect.getmodule(lvdm.mapping["VP_SampleVideo"])

    def run(**kw):
        args = {"steps": 2, "eta": 0.0, "guidance": 7.5, "seed": 0, "image_guidance": 0.0, "guidance_rescale": -1.0}
        args.update(kw)
        with torch.inference_mode():
            plan = module.plan_lvdm_sampling(prior.prior, lvdm.dc_pos, lvdm.dc_neg, **args)
            return module.sample_lvdm(prior.prior, plan)

    base = run()
    for other in (run(guidance_rescale=0.0), run(image_guidance=3.0), run(seed=1)):
        assert (other - base).abs().max() > 1e-3


def test_sample_video_lvdm_errors(lvdm):
    prior = managed_prior(lvdm, "vc")
    with pytest.raises(ValueError, match="CONDITIONING"):
        sample_node(lvdm, prior, steps=2, eta=0.0, guidance=7.5, seed=0)
    with pytest.raises(ValueError, match="negative"):
        sample_node(lvdm, prior, steps=2, eta=0.0, guidance=7.5, seed=0, positive=lvdm.vc_pos)
    with pytest.raises(ValueError, match="image_guidance"):
        sample_node(lvdm, prior, steps=2, eta=0.0, guidance=7.5, seed=0, positive=lvdm.vc_pos,
                    negative=lvdm.vc_neg, image_guidance=2.0)
    dc = managed_prior(lvdm, "dc")
    with pytest.raises(ValueError, match="VP_DynamiCrafterConditioning"):
        sample_node(lvdm, dc, steps=2, eta=0.0, guidance=7.5, seed=0, positive=lvdm.dc_text_pos,
                    negative=lvdm.dc_text_neg)


def test_sample_video_graph_with_dynamicrafter_in_process(lvdm):
    from test_sampling import ProgressRecorder

    prompt = lvdm_tiny.dynamicrafter_conditioning_nodes(SIZE, 8)
    prompt.update({
        "7": {"class_type": "VP_VideoPriorFromModel", "inputs": {"model": ["1", 0], "vae": ["1", 2]}},
        "8": {"class_type": "VP_SampleVideo", "inputs": {
            "prior": ["7", 0], "prompt": "", "negative_prompt": "", "steps": 2, "eta": 1.0, "guidance": 7.5,
            "seed": 5, "frames": 0, "width": 0, "height": 0, "preview": True, "positive": ["6", 0],
            "negative": ["6", 1], "image_guidance": 1.5, "guidance_rescale": -1.0}},
        "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}},
    })
    with ProgressRecorder() as rec:
        executor = lvdm.comfy.run(prompt)
    assert executor.success, node_error(executor)
    assert len(executor.history_result["outputs"]["9"]["images"]) == 8  # the conditioning's frames
    ours = [u for u in rec.updates if u[3] == "8"]
    assert [u[:2] for u in ours] == [(1, 2), (2, 2)]  # uniform_trailing: exactly 2 steps
    kind, image, _ = ours[-1][2]
    assert kind == "JPEG" and image.width == 6 * image.height  # 6 preview frames of the clip


def test_sample_video_refuses_step_counts_the_official_uniform_spacing_cannot_run(lvdm):
    prior = managed_prior(lvdm, "vc")  # VideoCrafter2: 'uniform' spacing; 3 steps -> timesteps 1, 334, 667, 1000
    with pytest.raises(ValueError, match="use e.g. 4 steps"):
        sample_node(lvdm, prior, steps=3, eta=0.0, guidance=7.5, seed=0, frames=8, size=SIZE, positive=lvdm.vc_pos,
                    negative=lvdm.vc_neg)


def test_sample_video_keeps_refusing_other_comfyui_models(lvdm):
    """A ComfyUI model that is not LVDM (Wan...) still gets the KSampler advice, CONDITIONING or not."""
    from types import SimpleNamespace

    wan_like = SimpleNamespace(prior=SimpleNamespace(name="ComfyUI WAN21_T2V", lvdm_variant=None,
                                                     embeds_from_conditioning=lambda *a: None))
    for positive in (None, lvdm.vc_pos):
        with pytest.raises(ValueError, match="sample it with core KSampler"):
            sample_node(lvdm, wan_like, steps=2, eta=0.0, guidance=7.5, seed=0, positive=positive,
                        negative=positive)


def test_sample_video_lvdm_is_interrupted_within_one_step(lvdm):
    import comfy.model_management as mm
    from test_sampling import ProgressRecorder

    prompt = {
        "1": {"class_type": "VP_LoadLVDMCheckpoint", "inputs": {"ckpt_name": "videocrafter2_512.ckpt",
                                                                 "variant": "auto", "weight_dtype": "fp32"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a bird flies"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "7": {"class_type": "VP_VideoPriorFromModel", "inputs": {"model": ["1", 0], "vae": ["1", 2]}},
        "8": {"class_type": "VP_SampleVideo", "inputs": {
            "prior": ["7", 0], "prompt": "", "negative_prompt": "", "steps": 50, "eta": 1.0, "guidance": 12.0,
            "seed": 0, "frames": 8, "width": SIZE, "height": SIZE, "preview": False, "positive": ["2", 0],
            "negative": ["3", 0]}},
        "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}},
    }

    def interrupt(step):
        if step == 2:
            mm.interrupt_current_processing(True)

    with ProgressRecorder(interrupt) as rec:
        executor = lvdm.comfy.run(prompt)
    events = [m[0] for m in executor.status_messages]
    assert "execution_interrupted" in events, executor.status_messages
    ours = [u for u in rec.updates if u[3] == "8"]
    assert max(u[0] for u in ours) == 2 and {u[1] for u in ours} == {50}
    assert not mm.processing_interrupted()
