"""The LVDM nodes in the real ComfyUI (in-process PromptExecutor) with tiny checkpoints in the official layout
(tests/lvdm_tiny.py): loader -> core CLIP / VAE / CLIP_VISION -> CLIP context encoder -> DynamiCrafter / VideoCrafter
conditioning -> core KSampler or SamplerCustomAdvanced with the official DDIM -> core VAEDecode."""
from __future__ import annotations

import lvdm_tiny
import pytest
import torch

SIZE = 64      # pixels (latent 8x8)
FRAMES = 16    # DynamiCrafter's per-frame image tokens need 16


@pytest.fixture(scope="module")
def lvdm(comfy_inproc):
    ns = lvdm_tiny.substitution(comfy_inproc.base_dir)
    ns["apply"]()
    lvdm_tiny.install_checkpoints(comfy_inproc.base_dir)
    yield comfy_inproc
    ns["undo"]()


def outputs_of(executor, node_id):
    return executor.history_result["outputs"].get(node_id) if executor.history_result else None


def node_error(executor) -> str:
    for event, data in executor.status_messages:
        if event == "execution_error":
            return f"{data.get('node_type')}: {data.get('exception_message')}"
    return ""


def i2v_prompt(official: bool = False, end_image: bool = False, variant: str = "auto",
               ckpt: str = "dynamicrafter_512.ckpt", width: int = SIZE, height: int = SIZE) -> dict:
    p = lvdm_tiny.dynamicrafter_conditioning_nodes(width, FRAMES, ckpt, variant)
    p["5"]["inputs"].update(width=width, height=height)
    p["6"]["inputs"].update(width=width, height=height)
    p.update({
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["1", 2]}},
        "10": {"class_type": "PreviewImage", "inputs": {"images": ["9", 0]}},
    })
    if end_image:
        p["11"] = {"class_type": "EmptyImage", "inputs": {"width": 96, "height": 80, "batch_size": 1,
                                                          "color": 0x20C040}}
        p["6"]["inputs"]["end_image"] = ["11", 0]
    if official:
        p.update({
            "12": {"class_type": "VP_LVDMRescaleCFG", "inputs": {"model": ["1", 0], "multiplier": 0.7, "frames": 0}},
            "13": {"class_type": "CFGGuider", "inputs": {"model": ["12", 0], "positive": ["6", 0],
                                                         "negative": ["6", 1], "cfg": 7.5}},
            "14": {"class_type": "VP_LVDMOfficialDDIM", "inputs": {"eta": 1.0, "latent_scale": "auto"}},
            "15": {"class_type": "VP_LVDMScheduler", "inputs": {"model": ["1", 0], "steps": 3, "spacing": "auto",
                                                                "final": "zero"}},
            "16": {"class_type": "RandomNoise", "inputs": {"noise_seed": 1}},
            "8": {"class_type": "SamplerCustomAdvanced", "inputs": {
                "noise": ["16", 0], "guider": ["13", 0], "sampler": ["14", 0], "sigmas": ["15", 0],
                "latent_image": ["6", 2]}},
        })
    else:
        p["8"] = {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["6", 0], "negative": ["6", 1], "latent_image": ["6", 2], "seed": 0,
            "steps": 2, "cfg": 7.5, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}}
    return p


def t2v_prompt() -> dict:
    return {
        "1": {"class_type": "VP_LoadLVDMCheckpoint", "inputs": {"ckpt_name": "videocrafter2_512.ckpt",
                                                                 "variant": "auto", "weight_dtype": "fp32"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a bird flies"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "blurry"}},
        "6": {"class_type": "VP_VideoCrafterConditioning", "inputs": {
            "positive": ["2", 0], "negative": ["3", 0], "width": SIZE, "height": SIZE, "frames": 8, "fps": 28,
            "batch_size": 2}},
        "8": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["6", 0], "negative": ["6", 1], "latent_image": ["6", 2], "seed": 0,
            "steps": 2, "cfg": 12.0, "sampler_name": "ddim", "scheduler": "ddim_uniform", "denoise": 1.0}},
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["1", 2]}},
        "10": {"class_type": "PreviewImage", "inputs": {"images": ["9", 0]}},
    }


def test_loader_gives_core_model_clip_vae_clip_vision_and_resampler(lvdm):
    import comfy.clip_vision
    import comfy.model_patcher
    import comfy.sd

    node = lvdm.nodes.NODE_CLASS_MAPPINGS["VP_LoadLVDMCheckpoint"]
    with torch.inference_mode():
        model, clip, vae, clip_vision, resampler = node.execute("dynamicrafter_512.ckpt", "auto", "fp32").result
    assert isinstance(model, comfy.model_patcher.ModelPatcher) and type(model.model).__name__ == "LVDMModel"  # the pack's own copy
    assert model.model.variant.name == "dynamicrafter_512"
    assert isinstance(clip, comfy.sd.CLIP) and isinstance(vae, comfy.sd.VAE)
    assert isinstance(clip_vision, comfy.clip_vision.ClipVisionModel) and resampler is not None
    with torch.inference_mode():
        tokens = clip.encode_from_tokens(clip.tokenize("a cat"))
    assert tokens.shape == (1, 77, lvdm_tiny.WIDTH)
    # the text-to-video file has no image tower and no resampler
    with torch.inference_mode():
        out = node.execute("videocrafter2_512.ckpt", "auto", "auto").result
    assert out[0].model.variant.name == "videocrafter2_512" and out[3] is None and out[4] is None


def test_image_context_is_16_tokens_per_frame_and_grey_for_uncond(lvdm):
    mapping = lvdm.nodes.NODE_CLASS_MAPPINGS
    with torch.inference_mode():
        _, _, _, clip_vision, resampler = mapping["VP_LoadLVDMCheckpoint"].execute(
            "dynamicrafter_512.ckpt", "auto", "fp32").result
        img = torch.rand(1, 80, 96, 3, generator=torch.Generator().manual_seed(0))
        ctx = mapping["VP_CLIPContextEncoder"].execute(clip_vision, resampler, img, "official", SIZE, SIZE,
                                                       "center crop").result[0]
        grey = mapping["VP_CLIPContextEncoder"].execute(clip_vision, resampler, torch.full_like(img, 0.5),
                                                        "official", SIZE, SIZE, "center crop").result[0]
        core = mapping["VP_CLIPContextEncoder"].execute(clip_vision, resampler, img, "core center crop", SIZE, SIZE,
                                                        "center crop").result[0]
    assert ctx["cond"].shape == (1, 16 * 16, lvdm_tiny.WIDTH)
    # the unconditional tokens are those of a mid-grey frame (not zeros, not black)
    torch.testing.assert_close(ctx["uncond"], grey["cond"], atol=1e-5, rtol=0)
    assert ctx["uncond"].abs().max() > 0 and not torch.allclose(ctx["cond"], ctx["uncond"])
    assert not torch.allclose(core["cond"], ctx["cond"])  # the two preprocessings really differ


@pytest.mark.parametrize("official,end_image", [(False, False), (True, False), (True, True)])
def test_dynamicrafter_graphs_run(lvdm, official, end_image):
    variant = "dynamicrafter_512_interp" if end_image else "auto"
    executor = lvdm.run(i2v_prompt(official=official, end_image=end_image, variant=variant))
    assert executor.success, node_error(executor)
    images = outputs_of(executor, "10")["images"]
    assert len(images) == FRAMES


def test_dual_cfg_guider_gives_the_official_multi_condition_guidance(lvdm):
    """DualCFGGuider(positive, image_only, negative) = DynamiCrafter's multiple_cond_cfg:
    u + cfg_img (u_img - u) + cfg (c - u_img), checked on one denoising call against the three branches."""
    import comfy.samplers

    mapping = lvdm.nodes.NODE_CLASS_MAPPINGS
    with torch.inference_mode():
        model, clip, vae, cv, rs = mapping["VP_LoadLVDMCheckpoint"].execute("dynamicrafter_512.ckpt", "auto",
                                                                            "fp32").result
        encode = mapping["CLIPTextEncode"]
        pos = encode.execute(clip, "a cat")[0] if hasattr(encode, "execute") else encode().encode(clip, "a cat")[0]
        neg = encode.execute(clip, "")[0] if hasattr(encode, "execute") else encode().encode(clip, "")[0]
        img = torch.rand(1, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(2))
        ctx = mapping["VP_CLIPContextEncoder"].execute(cv, rs, img, "official", SIZE, SIZE, "center crop").result[0]
        pos, neg, latent, img_only = mapping["VP_DynamiCrafterConditioning"].execute(
            pos, neg, ctx, vae, img, SIZE, SIZE, FRAMES, 24, "center crop", 1).result
        x = torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(4))
        sigma = model.model.model_sampling.sigma(torch.tensor([600.0]))

        outs = {}
        for name, c1 in {"c": pos, "ui": img_only, "u": neg}.items():
            g = comfy.samplers.CFGGuider(model)
            g.set_conds(c1, c1)
            g.set_cfg(1.0)
            outs[name] = g.sample(x, torch.zeros_like(x), comfy.samplers.ksampler("euler"),
                                  torch.cat([sigma, torch.zeros(1)]), seed=0)
        dual = mapping["DualCFGGuider"]
        guider = (dual.execute(model, pos, img_only, neg, 7.5, 2.5, "regular")[0] if hasattr(dual, "execute")
                  else dual().get_guider(model, pos, img_only, neg, 7.5, 2.5, "regular")[0])
        out = guider.sample(x, torch.zeros_like(x), comfy.samplers.ksampler("euler"),
                            torch.cat([sigma, torch.zeros(1)]), seed=0)
    want = outs["u"] + 2.5 * (outs["ui"] - outs["u"]) + 7.5 * (outs["c"] - outs["ui"])
    torch.testing.assert_close(out, want, atol=5e-4, rtol=1e-3)  # batched vs separate calls, x7.5
    assert (outs["ui"] - outs["u"]).abs().max() > 1e-4  # the image tokens really differ between the branches


def test_videocrafter2_text_to_video_batch_of_two_clips(lvdm):
    executor = lvdm.run(t2v_prompt())
    assert executor.success, node_error(executor)
    assert len(outputs_of(executor, "10")["images"]) == 16  # 2 clips x 8 frames


def test_official_ddim_sampler_matches_the_pure_sampler(lvdm):
    """SamplerCustomAdvanced + VP_LVDMOfficialDDIM (eta 0, no CFG) = pipelines.lvdm.ddim.ddim_sample on the raw UNet
    at the same timesteps (ComfyUI's zero-SNR cap aside: DynamiCrafter 256, eps, uniform spacing)."""
    import comfy.sample
    import comfy.samplers

    from pipelines.lvdm.ddim import ddim_sample
    from pipelines.lvdm.schedule import DDIMSchedule, TrainingSchedule

    mapping = lvdm.nodes.NODE_CLASS_MAPPINGS
    lvdm_tiny.install_checkpoints(lvdm.base_dir, ("dynamicrafter_256",))
    with torch.inference_mode():
        model, clip, vae, cv, rs = mapping["VP_LoadLVDMCheckpoint"].execute("dynamicrafter_256.ckpt", "auto",
                                                                            "fp32").result
        pos = mapping["CLIPTextEncode"].execute(clip, "a cat")[0] if hasattr(mapping["CLIPTextEncode"], "execute") \
            else mapping["CLIPTextEncode"]().encode(clip, "a cat")[0]
        img = torch.rand(1, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(1))
        ctx = mapping["VP_CLIPContextEncoder"].execute(cv, rs, img, "official", SIZE, SIZE, "center crop").result[0]
        pos, neg, latent, _ = mapping["VP_DynamiCrafterConditioning"].execute(
            pos, pos, ctx, vae, img, SIZE, SIZE, FRAMES, 3, "center crop", 1).result
        sigmas = mapping["VP_LVDMScheduler"].execute(model, 4, "auto", "official").result[0]
        sampler = mapping["VP_LVDMOfficialDDIM"].execute(0.0, "auto").result[0]
        noise = torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(3))
        guider = comfy.samplers.CFGGuider(model)
        guider.set_conds(pos, neg)
        guider.set_cfg(1.0)
        out = guider.sample(noise, latent["samples"], sampler, sigmas, seed=0)

        # the same run with the pure official sampler on the raw UNet
        base = model.model
        train = TrainingSchedule.for_variant(base.variant)
        sched = DDIMSchedule.make(train, 4, "uniform", eta=0.0)
        text = pos[0][0][:, :77]
        context = torch.cat([text, ctx["cond"]], dim=1)
        concat = base.process_latent_in(pos[0][1]["concat_latent_image"]).repeat(FRAMES, 1, 1, 1)
        concat = concat.reshape(1, FRAMES, 4, 8, 8).transpose(1, 2)

        def model_fn(x, t, c):
            return base.diffusion_model(torch.cat([x, concat], dim=1), t, context=context, fs=torch.tensor([3]))

        x_t = noise.reshape(1, FRAMES, 4, 8, 8).transpose(1, 2)
        ref = ddim_sample(model_fn, x_t, sched, cond=None)
    # the guider returns process_latent_out(x) in ComfyUI's sigma scale: back to the official latent at t=0
    ours = base.process_latent_in(out).reshape(1, FRAMES, 4, 8, 8).transpose(1, 2) * train.alphas_cumprod[0].sqrt()
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)


def test_bad_files_are_refused_with_the_file_name_and_what_was_expected(lvdm):
    import pickle

    folder = lvdm.base_dir + "/models/checkpoints/"
    good = open(folder + "videocrafter2_512.ckpt", "rb").read()
    with open(folder + "broken_truncated.ckpt", "wb") as f:
        f.write(good[: len(good) // 3])

    class Evil:
        def __reduce__(self):
            return (print, ("never printed",))

    with open(folder + "broken_code.ckpt", "wb") as f:
        pickle.dump({"state_dict": {"x": Evil()}}, f)
    from safetensors.torch import save_file

    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3),
               "model.diffusion_model.out.2.weight": torch.zeros(4, 320, 3, 3),
               "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(8, 8)},
              folder + "broken_sd15.safetensors")
    for name, expected in [("broken_truncated.ckpt", "broken_truncated.ckpt"), ("broken_code.ckpt", "refuse"),
                           ("broken_sd15.safetensors", "without temporal layers")]:
        p = t2v_prompt()
        p["1"]["inputs"]["ckpt_name"] = name
        executor = lvdm.run(p)
        message = node_error(executor)
        assert not executor.success and message.startswith("VP_LoadLVDMCheckpoint"), message
        assert name in message and expected.lower() in message.lower(), message


def test_bad_inputs_fail_before_sampling_with_clear_messages(lvdm):
    executor = lvdm.run(i2v_prompt(width=96, height=SIZE))
    assert not executor.success and "multiples of 64" in node_error(executor)
    executor = lvdm.run(i2v_prompt(variant="videocrafter2_512"))
    assert not executor.success and "cannot run as" in node_error(executor)
    p = t2v_prompt()
    p["1"]["inputs"]["ckpt_name"] = "dynamicrafter_512.ckpt"  # needs an image latent: refused before sampling
    p["6"]["inputs"]["frames"] = 16
    p["6"]["inputs"]["batch_size"] = 1
    executor = lvdm.run(p)
    assert not executor.success and "concat_latent_image" in node_error(executor)
    # a core EmptyLatentImage whose size the UNet cannot halve: refused before the first step
    p = t2v_prompt()
    p["6"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 72, "height": 64, "batch_size": 8}}
    p["8"]["inputs"].update(positive=["2", 0], negative=["3", 0], latent_image=["6", 0])
    executor = lvdm.run(p)
    assert not executor.success and "multiple of 16 pixels" in node_error(executor), node_error(executor)


def test_loader_casts_to_the_chosen_weight_dtype(lvdm):
    """Another dtype than the file's is read tensor by tensor with the cast (the lean path); the model still runs."""
    node = lvdm.nodes.NODE_CLASS_MAPPINGS["VP_LoadLVDMCheckpoint"]
    with torch.inference_mode():
        model = node.execute("videocrafter2_512.ckpt", "auto", "bf16").result[0]
    dtypes = {p.dtype for p in model.model.diffusion_model.parameters()}
    assert dtypes == {torch.bfloat16}
    p = t2v_prompt()
    p["1"]["inputs"]["weight_dtype"] = "bf16"
    executor = lvdm.run(p)
    assert executor.success, node_error(executor)


def test_core_rescale_cfg_patches_the_lvdm_model(lvdm):
    """Core RescaleCFG works on the LVDM MODEL like on any core model (it takes the std per latent row, i.e. per
    frame here; VP_LVDMRescaleCFG is the official per-video one)."""
    p = i2v_prompt()
    p["12"] = {"class_type": "RescaleCFG", "inputs": {"model": ["1", 0], "multiplier": 0.7}}
    p["8"]["inputs"]["model"] = ["12", 0]
    executor = lvdm.run(p)
    assert executor.success, node_error(executor)


def test_official_ddim_starts_new_frames_from_pure_noise_beside_kept_frames(lvdm):
    """Windows keep earlier frames with a noise mask: the frames to generate are still empty, so the official DDIM
    starts them from pure noise (sqrt(1 + sigma^2) scaling), as on an empty latent."""
    import sys

    module = sys.modules[lvdm.nodes.NODE_CLASS_MAPPINGS["VP_LVDMOfficialDDIM"].__module__]
    starts = module.starts_from_noise
    latent = torch.zeros(6, 4, 8, 8)
    assert starts(None) and starts(latent)
    latent[:2] = 1.0                              # two kept frames from the previous window
    mask = torch.ones(6, 1, 8, 8)
    mask[:2] = 0
    assert not starts(latent) and starts(latent, mask)
    latent[4] = 0.5                               # a frame to generate that is not empty: img2img, no pure noise
    assert not starts(latent, mask)


def test_scheduler_refuses_official_uniform_steps_that_reach_past_the_schedule(lvdm):
    mapping = lvdm.nodes.NODE_CLASS_MAPPINGS
    model = mapping["VP_LoadLVDMCheckpoint"]().execute("videocrafter2_512.ckpt", "auto", "fp32").result[0]
    with pytest.raises(ValueError, match=r"VP_LVDMScheduler: .*'uniform'.*3 steps.*use e\.g\. \d+ steps"):
        mapping["VP_LVDMScheduler"].execute(model, 3, "uniform", "zero")
    assert len(mapping["VP_LVDMScheduler"].execute(model, 4, "uniform", "zero").result[0]) == 5
