"""Generative in-betweening with DynamiCrafter: one interpolation clip per pair of consecutive keyframes, joined.

Each segment is what VP_CLIPContextEncoder -> VP_DynamiCrafterConditioning (with end_image) -> SamplerCustom would
make for that pair (the same helpers of lvdm_nodes build it), sampled with comfy.sample.sample_custom; the joining
rule (shared keyframes kept once) is pipelines/lvdm/keyframes.py."""
from __future__ import annotations

import comfy.model_management as mm
import comfy.sample
import comfy.utils
import torch
from comfy_api.latest import io

from ..pipelines.lvdm import keyframes as kf
from ..pipelines.lvdm.clip_context import PREPROCESS_MODES
from ..pipelines.lvdm.config import VARIANTS
from .common import check_inputs, ensure_inputs
from .lvdm_sampling_nodes import PassProgress
from .lvdm_nodes import (
    FIT_MODES,
    SIZE_MULTIPLE,
    Resampler,
    _check_size,
    _empty_latent,
    dynamicrafter_conditions,
    encode_frames,
    image_context,
    image_context_tokens,
)

NODE = "VP_DynamiCrafterKeyframes"
CATEGORY = "VideoPriors/lvdm"
INTERP = VARIANTS["dynamicrafter_512_interp"]
MAX_FRAMES = 256
SEED_RANGE = 1 << 64
# (name, type, minimum, maximum) of the per-segment list widgets
LISTS = (("frames", int, 2, MAX_FRAMES), ("cfg", float, 0.0, 100.0), ("frame_stride", int, 1, 1000))


def interp_model_problem(variant) -> str | None:
    """Why `variant` (config.Variant or None) cannot in-between keyframes, or None."""
    expected = (f"the {INTERP.title} model ({INTERP.name}: {INTERP.url}), loaded with VP_LoadLVDMCheckpoint and "
                f"variant '{INTERP.name}' (its keys are those of DynamiCrafter 512, so 'auto' cannot tell them apart)")
    if variant is None:
        return f"the model is not an LVDM model; expected {expected}"
    if not variant.needs_end_image:
        return f"the model is {variant.title} ({variant.name}), which has no end-frame condition; expected {expected}"
    return None


class DynamiCrafterKeyframes(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=NODE,
            display_name="DynamiCrafter Keyframe In-betweening",
            category=CATEGORY,
            description="Generates the frames between consecutive keyframes with the DynamiCrafter 512 "
                        "interpolation model: K keyframes make K - 1 segments, each a clip from keyframe i (its "
                        "first frame) to keyframe i + 1 (its last), built as VP_CLIPContextEncoder + "
                        "VP_DynamiCrafterConditioning with end_image and sampled with the given SAMPLER and SIGMAS "
                        "(official: VP_LVDMOfficialDDIM eta 1 + VP_LVDMScheduler 50 steps, model through "
                        "VP_LVDMRescaleCFG 0.7). The segments are joined with every shared keyframe kept once (the "
                        "earlier segment's last frame): sum(frames) - (K - 2) frames, keyframe j at "
                        "sum(frames_i - 1, i < j). Frames, cfg and frame stride take one value for all segments "
                        "or a comma-separated list with one per segment. Segment i's noise comes from seed + i. "
                        "Decode the LATENT with core VAEDecode.",
            inputs=[
                io.Model.Input("model", tooltip="DynamiCrafter 512 interpolation (VP_LoadLVDMCheckpoint, variant "
                                                "dynamicrafter_512_interp), e.g. through VP_LVDMRescaleCFG."),
                io.Conditioning.Input("positive", tooltip="The prompt of every segment without a line in prompts."),
                io.Conditioning.Input("negative"),
                io.ClipVision.Input("clip_vision"),
                Resampler.Input("resampler"),
                io.Vae.Input("vae", tooltip="Encodes the keyframes (the start / end frame condition)."),
                io.Image.Input("keyframes", tooltip="K >= 2 keyframes in order (an IMAGE batch, e.g. core "
                                                    "ImageBatch of several LoadImage)."),
                io.Sampler.Input("sampler", tooltip="e.g. VP_LVDMOfficialDDIM (the official DDIM, eta 1)."),
                io.Sigmas.Input("sigmas", tooltip="e.g. VP_LVDMScheduler (official: 50 steps); the same for every "
                                                  "segment."),
                io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff, control_after_generate=True,
                             tooltip="Segment i's noise comes from seed + i."),
                io.String.Input("frames", default=str(INTERP.frames),
                                tooltip="Frames per segment, keyframes included (at least 2; 16 = what the model "
                                        "was trained on): one value, or one per segment ('16, 12, 16')."),
                io.String.Input("cfg", default=str(INTERP.cfg),
                                tooltip="Guidance per segment (official 7.5): one value, or one per segment."),
                io.String.Input("frame_stride", default=str(INTERP.default_fs),
                                tooltip="The fs condition per segment (official interpolation: 5; smaller = "
                                        "larger motion): one value, or one per segment."),
                io.Int.Input("width", default=INTERP.resolution[1], min=SIZE_MULTIPLE, max=4096, step=SIZE_MULTIPLE),
                io.Int.Input("height", default=INTERP.resolution[0], min=SIZE_MULTIPLE, max=4096,
                             step=SIZE_MULTIPLE),
                io.Combo.Input("fit", options=FIT_MODES, default="center crop",
                               tooltip="How the keyframes are brought to width x height."),
                io.Combo.Input("preprocess", options=list(PREPROCESS_MODES), default="official",
                               tooltip="The CLIP image preprocessing (as VP_CLIPContextEncoder)."),
                io.Clip.Input("clip", optional=True, tooltip="Encodes the prompts lines (needed only with them)."),
                io.String.Input("prompts", default="", multiline=True, optional=True,
                                tooltip="Optional: one prompt line for all segments, or one line per segment "
                                        "(empty lines are skipped). Empty = the positive input."),
            ],
            outputs=[io.Latent.Output(display_name="latent",
                                      tooltip="The joined clip, frames in the batch dimension (core VAEDecode).")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, frames=None, cfg=None, frame_stride=None, fit=None, preprocess=None,
                        input_types=None):
        values = {"frames": frames, "cfg": cfg, "frame_stride": frame_stride}
        checked = check_inputs(cls, dict(values, fit=fit, preprocess=preprocess), input_types)
        if checked is not True:
            return checked
        for name, kind, lo, hi in LISTS:
            if isinstance(values[name], str):  # None: linked, checked at run time
                try:
                    kf.parse_values(values[name], name, kind, lo, hi)
                except ValueError as e:
                    return str(e)
        return True

    @classmethod
    def execute(cls, model, positive, negative, clip_vision, resampler, vae, keyframes, sampler, sigmas, seed,
                frames, cfg, frame_stride, width, height, fit, preprocess, clip=None, prompts=""):
        from ..pipelines.lvdm.comfy_model import interp_concat_latent, lvdm_variant

        # ---- every check before any encoding or sampling --------------------------------------------------------
        ensure_inputs(cls, seed=seed, width=width, height=height, fit=fit, preprocess=preprocess)
        _check_size(NODE, width, height)
        problem = interp_model_problem(lvdm_variant(model))
        if problem:
            raise ValueError(f"{NODE}: {problem}")
        if not torch.is_tensor(keyframes) or keyframes.ndim != 4 or keyframes.shape[0] < 2:
            count = keyframes.shape[0] if torch.is_tensor(keyframes) and keyframes.ndim == 4 else 0
            raise ValueError(f"{NODE}: in-betweening needs at least 2 keyframes (an IMAGE batch, e.g. core "
                             f"ImageBatch of two LoadImage); got {count}")
        segments = keyframes.shape[0] - 1
        settings = {}
        for name, kind, lo, hi in LISTS:
            try:
                settings[name] = kf.per_segment(kf.parse_values({"frames": frames, "cfg": cfg,
                                                                 "frame_stride": frame_stride}[name],
                                                                name, kind, lo, hi), segments, name)
            except ValueError as e:
                raise ValueError(f"{NODE}: {e}") from None
        try:
            lines = kf.per_segment_lines(prompts, segments, "prompts")
        except ValueError as e:
            raise ValueError(f"{NODE}: {e}") from None
        if lines is not None and clip is None:
            raise ValueError(f"{NODE}: prompts are given but no clip to encode them: connect the loader's CLIP "
                             "(or clear prompts to use the positive input)")
        if sigmas is None or len(sigmas) < 2:
            raise ValueError(f"{NODE}: sigmas must hold at least 2 values (e.g. VP_LVDMScheduler)")

        # ---- conditions: the text of each segment, every keyframe's image tokens and latent --------------------
        if lines is None:
            texts = [positive] * segments
        else:
            encoded = {line: clip.encode_from_tokens_scheduled(clip.tokenize(line)) for line in set(lines)}
            texts = [encoded[line] for line in lines]
        # One keyframe at a time, exactly as VP_CLIPContextEncoder and VP_DynamiCrafterConditioning encode it: a
        # segment is then bit for bit the two-node graph for its pair (batched encoding differs by float rounding).
        contexts = [image_context(image_context_tokens(NODE, clip_vision, resampler, keyframes[i:i + 1], preprocess,
                                                       width, height, fit), 0, preprocess)
                    for i in range(segments + 1)]
        latents = torch.cat([encode_frames(vae, keyframes[i:i + 1], width, height, fit) for i in range(segments + 1)])

        # ---- segment by segment, one progress bar over all of them --------------------------------------------
        progress = PassProgress(model, len(sigmas) - 1, segments, cls.hidden.unique_id if cls.hidden else None)
        quiet = not comfy.utils.PROGRESS_BAR_ENABLED
        clips = []
        for i in range(segments):
            mm.throw_exception_if_processing_interrupted()
            n = settings["frames"][i]
            concat = interp_concat_latent(latents[i:i + 1], latents[i + 1:i + 2], n)
            pos, neg, _image_only = dynamicrafter_conditions(texts[i], negative, contexts[i],
                                                             concat, n, settings["frame_stride"][i])
            latent = comfy.sample.fix_empty_latent_channels(model, _empty_latent(1, n, width, height)["samples"])
            segment_seed = (seed + i) % SEED_RANGE
            noise = comfy.sample.prepare_noise(latent, segment_seed)

            samples = comfy.sample.sample_custom(model, noise, settings["cfg"][i], sampler, sigmas, pos, neg, latent,
                                                 callback=progress.callback(i), disable_pbar=quiet, seed=segment_seed)
            clips.append(samples.to(mm.intermediate_device()))
        return io.NodeOutput({"samples": kf.join_segments(clips)})


KEYFRAME_NODES = [DynamiCrafterKeyframes]
