"""LVDM UNet configurations: the official constructor flags, the published variants, and detection from keys.

The three official repositories (VideoCrafter, DynamiCrafter, Make-Your-Video) share one `UNetModel` whose flags
differ per checkpoint. `UNetConfig` holds those flags under the official names; `detect_unet_config` rebuilds them
from a checkpoint's key names and shapes alone (never from a file name), so tiny test models and real files go
through the same code.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

UNET_PREFIX = "model.diffusion_model."


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """Constructor flags of the official `openaimodel3d.UNetModel` (names as in the official yaml files).

    `temporal_conv_layout` says which repository's `TemporalConvBlock` the checkpoint stores: "conv4" (VideoCrafter /
    DynamiCrafter: conv1..conv4, all (3,1,1)) or "myv" (Make-Your-Video tempspatial_aware: conv.0..conv.3 + conv_last,
    replicate padding). `truncate_text_context` reproduces DynamiCrafter's CrossAttention, which keeps only the first
    77 context tokens when it has no image branch (VideoCrafter and Make-Your-Video use the whole context).
    `causal_window` is Make-Your-Video's sliding causal window (16 frames); VideoCrafter/DynamiCrafter use a plain
    lower-triangular mask when `use_causal_attention` is set (no published checkpoint does).
    """

    in_channels: int = 4
    out_channels: int = 4
    model_channels: int = 320
    attention_resolutions: tuple = (4, 2, 1)
    num_res_blocks: int = 2
    channel_mult: tuple = (1, 2, 4, 4)
    dropout: float = 0.0
    num_head_channels: int = 64
    transformer_depth: int = 1
    context_dim: int = 1024
    use_linear: bool = True
    temporal_conv: bool = True
    tempspatial_aware: bool = False
    temporal_attention: bool = True
    temporal_selfatt_only: bool = True
    use_relative_position: bool = False
    use_causal_attention: bool = False
    causal_window: int = 0
    temporal_length: int = 16
    addition_attention: bool = True
    image_cross_attention: bool = False
    image_cross_attention_scale_learnable: bool = False
    fs_condition: bool = False        # DynamiCrafter frame stride / VideoCrafter2 fps (the same `fps_embedding`)
    default_fs: int = 16              # DynamiCrafter: default_fs from the yaml; VideoCrafter2: fps defaults to 16
    temporal_conv_layout: str = "conv4"
    truncate_text_context: bool = False
    text_context_len: int = 77
    image_tokens_per_frame: int = 16

    def replace(self, **changes) -> UNetConfig:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One published checkpoint family with the official sampling settings of its inference config/script."""

    name: str
    title: str
    family: str                     # "videocrafter" | "dynamicrafter" | "makeyourvideo"
    unet: UNetConfig
    parameterization: str           # "eps" | "v"
    zero_terminal_snr: bool
    resolution: tuple               # (height, width) in pixels, official inference size
    frames: int = 16
    default_fs: int | None = None   # frame stride (DC) / fps (VC2) the official script passes
    cfg: float = 7.5
    guidance_rescale: float = 0.0
    timestep_spacing: str = "uniform"
    scale_kind: str = "none"        # "none" | "videocrafter" (use_scale) | "dynamicrafter" (use_dynamic_rescale)
    base_scale: float = 0.7
    needs_image: bool = False
    needs_end_image: bool = False
    has_resampler: bool = False
    manifest: str | None = None     # ../shared/checkpoint-manifests/<manifest>.txt
    url: str = ""
    file_size_gb: float = 0.0
    vram_note: str = ""             # GPU memory the official README reports for its own code (fp16/fp32 mix)

    @property
    def latent_concat_channels(self) -> int:
        return self.unet.in_channels - self.unet.out_channels


_DC = UNetConfig(in_channels=8, dropout=0.1, image_cross_attention=True, fs_condition=True,
                 truncate_text_context=True)

VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("videocrafter1_512", "VideoCrafter1 text-to-video 512", "videocrafter",
            UNetConfig(temporal_conv=False, use_relative_position=True), "eps", False, (320, 512),
            default_fs=None, cfg=12.0, manifest="vc1_512",
            url="https://huggingface.co/VideoCrafter/Text2Video-512/blob/main/model.ckpt", file_size_gb=5.5),
    Variant("videocrafter2_512", "VideoCrafter2 text-to-video 512", "videocrafter",
            UNetConfig(fs_condition=True, default_fs=16), "eps", False, (320, 512), default_fs=28, cfg=12.0,
            scale_kind="videocrafter", manifest="vc2_512",
            url="https://huggingface.co/VideoCrafter/VideoCrafter2/blob/main/model.ckpt", file_size_gb=5.5),
    Variant("dynamicrafter_256", "DynamiCrafter image-to-video 256", "dynamicrafter",
            _DC.replace(image_cross_attention_scale_learnable=True, default_fs=3), "eps", False, (256, 256),
            default_fs=3, cfg=7.5, needs_image=True, has_resampler=True, manifest="dc256",
            url="https://huggingface.co/Doubiiu/DynamiCrafter/blob/main/model.ckpt", file_size_gb=10.4, vram_note="11.9 GB at 256x256 (official README, RTX 4090)"),
    Variant("dynamicrafter_512", "DynamiCrafter image-to-video 512", "dynamicrafter",
            _DC.replace(default_fs=24), "v", True, (320, 512), default_fs=24, cfg=7.5, guidance_rescale=0.7,
            timestep_spacing="uniform_trailing", scale_kind="dynamicrafter", base_scale=0.7, needs_image=True,
            has_resampler=True, manifest="dc512",
            url="https://huggingface.co/Doubiiu/DynamiCrafter_512/blob/main/model.ckpt", file_size_gb=10.4, vram_note="12.8 GB at 320x512 (official README, RTX 4090)"),
    Variant("dynamicrafter_1024", "DynamiCrafter image-to-video 1024", "dynamicrafter",
            _DC.replace(default_fs=10), "v", True, (576, 1024), default_fs=10, cfg=7.5, guidance_rescale=0.7,
            timestep_spacing="uniform_trailing", scale_kind="dynamicrafter", base_scale=0.3, needs_image=True,
            has_resampler=True, manifest="dc1024",
            url="https://huggingface.co/Doubiiu/DynamiCrafter_1024/blob/main/model.ckpt", file_size_gb=10.4, vram_note="18.3 GB at 576x1024 (official README, RTX 4090)"),
    Variant("dynamicrafter_512_interp", "DynamiCrafter 512 frame interpolation / looping", "dynamicrafter",
            _DC.replace(default_fs=24), "v", True, (320, 512), default_fs=5, cfg=7.5, guidance_rescale=0.7,
            timestep_spacing="uniform_trailing", scale_kind="dynamicrafter", base_scale=0.7, needs_image=True,
            needs_end_image=True, has_resampler=True, manifest="dc512",
            url="https://huggingface.co/Doubiiu/DynamiCrafter_512_Interp/blob/main/model.ckpt", file_size_gb=10.4, vram_note="12.8 GB at 320x512 (official README, RTX 4090)"),
    Variant("makeyourvideo_256", "Make-Your-Video depth-guided 256", "makeyourvideo",
            UNetConfig(in_channels=5, tempspatial_aware=True, use_relative_position=True, use_causal_attention=True,
                       causal_window=16, addition_attention=False, temporal_conv_layout="myv"),
            "eps", False, (256, 256), default_fs=None, cfg=7.5, manifest="myv256",
            url="https://huggingface.co/Doubiiu/Make-Your-Video/blob/main/model.ckpt", file_size_gb=5.8, vram_note="20 GB peak at 256x256 (official README, A100)"),
)}

# Variants that share one key layout: detection gives the first; the others are chosen by the user (or by the
# file's own `scale_arr`, whose tail is the config's base_scale: 0.3 only in DynamiCrafter 1024).
SAME_KEYS = {"dynamicrafter_512": ("dynamicrafter_512", "dynamicrafter_1024", "dynamicrafter_512_interp")}


class UnknownCheckpointError(ValueError):
    """The keys do not describe any supported LVDM UNet."""


def supported_summary() -> str:
    return ", ".join(v.title for v in VARIANTS.values())


def _shape(sd: Mapping, key: str) -> tuple:
    t = sd[key]
    return tuple(t.shape) if hasattr(t, "shape") else tuple(t)


def unet_keys(sd: Mapping, prefix: str = UNET_PREFIX) -> dict:
    """The UNet's tensors (or shapes) without the prefix; DynamiCrafter 256's `framestride_embed` renamed."""
    out = {}
    for k, v in sd.items():
        if k.startswith(prefix):
            name = k[len(prefix):]
            if name.startswith("framestride_embed."):
                name = "fps_embedding." + name[len("framestride_embed."):]
            out[name] = v
    return out


def detect_unet_config(sd: Mapping, prefix: str = UNET_PREFIX) -> UNetConfig:
    """Rebuild the UNet flags from key names and shapes (values may be tensors or shape tuples)."""
    u = unet_keys(sd, prefix)
    if "input_blocks.0.0.weight" not in u or "out.2.weight" not in u:
        found = sorted({k.split(".")[0] for k in sd})[:12]
        raise UnknownCheckpointError(
            f"no LVDM UNet under '{prefix}' (top-level names found: {', '.join(found) or 'none'}); "
            f"supported: {supported_summary()}")
    model_channels, in_channels = _shape(u, "input_blocks.0.0.weight")[:2]
    out_channels = _shape(u, "out.2.weight")[0]

    # Walk the input blocks: ResBlocks (in_layers.2), Downsample (op), transformers at index 1 / 2.
    n_input = 1 + max(int(m.group(1)) for k in u if (m := re.match(r"input_blocks\.(\d+)\.", k)))
    levels, current, attn_ds, ds = [], [], set(), 1
    for i in range(1, n_input):
        if f"input_blocks.{i}.0.op.weight" in u:
            levels.append(current)
            current = []
            ds *= 2
            continue
        current.append(_shape(u, f"input_blocks.{i}.0.in_layers.2.weight")[0])
        if f"input_blocks.{i}.1.norm.weight" in u:
            attn_ds.add(ds)
    levels.append(current)
    num_res_blocks = len(levels[0])
    if any(len(lv) != num_res_blocks for lv in levels) or any(len(set(lv)) != 1 for lv in levels):
        raise UnknownCheckpointError("irregular UNet input blocks: not an LVDM openaimodel3d UNet")
    channel_mult = tuple(lv[0] // model_channels for lv in levels)

    first_attn = next(k for k in u if ".transformer_blocks.0.attn2.to_k.weight" in k and ".1.transformer" in k)
    context_dim = _shape(u, first_attn)[1]
    depth = 1 + max(int(m.group(1)) for k in u
                    if (m := re.match(r"input_blocks\.\d+\.1\.transformer_blocks\.(\d+)\.", k)))
    use_linear = len(_shape(u, first_attn.replace("transformer_blocks.0.attn2.to_k.weight", "proj_in.weight"))) == 2

    temporal_attention = any(re.match(r"input_blocks\.\d+\.2\.transformer_blocks\.", k) for k in u)
    addition_attention = "init_attn.0.norm.weight" in u
    rel = [k for k in u if k.endswith("attn1.relative_position_k.embeddings_table")]
    use_relative_position = bool(rel)
    temporal_length = 16
    head = None
    if rel:
        rows, head = _shape(u, rel[0])
        temporal_length = (rows - 1) // 2
    if addition_attention:  # init_attn: n_heads = 8 hard-coded, d_head = num_head_channels
        head = _shape(u, "init_attn.0.proj_in.weight")[0] // 8
    if head is None:
        raise UnknownCheckpointError("cannot infer the attention head width (no init_attn and no relative position)")

    temporal_conv = any(".temopral_conv." in k for k in u)
    myv_conv = any(".temopral_conv.conv_last." in k for k in u)
    image_cross = any(k.endswith("attn2.to_k_ip.weight") for k in u)
    learnable = any(k.endswith("attn2.alpha") for k in u)
    fs_condition = "fps_embedding.0.weight" in u
    in_ch = int(in_channels)
    family = "dynamicrafter" if image_cross else ("makeyourvideo" if myv_conv else "videocrafter")
    return UNetConfig(
        in_channels=in_ch, out_channels=int(out_channels), model_channels=int(model_channels),
        attention_resolutions=tuple(sorted(attn_ds, reverse=True)), num_res_blocks=num_res_blocks,
        channel_mult=channel_mult, dropout=0.1 if family == "dynamicrafter" else 0.0, num_head_channels=int(head),
        transformer_depth=depth, context_dim=int(context_dim), use_linear=use_linear, temporal_conv=temporal_conv,
        tempspatial_aware=myv_conv, temporal_attention=temporal_attention,
        use_relative_position=use_relative_position,
        # Make-Your-Video is the only causal family; its mask is not stored, the flag comes with the layout.
        use_causal_attention=myv_conv, causal_window=16 if myv_conv else 0, temporal_length=int(temporal_length),
        addition_attention=addition_attention, image_cross_attention=image_cross,
        image_cross_attention_scale_learnable=learnable, fs_condition=fs_condition,
        default_fs=(3 if learnable else 24) if image_cross else 16,
        temporal_conv_layout="myv" if myv_conv else "conv4", truncate_text_context=image_cross)


def detect_variant(sd: Mapping, prefix: str = UNET_PREFIX) -> tuple[Variant, UNetConfig]:
    """The published variant a checkpoint belongs to, and its exact UNet config (sizes from the keys)."""
    cfg = detect_unet_config(sd, prefix)
    if cfg.image_cross_attention:
        name = "dynamicrafter_256" if cfg.image_cross_attention_scale_learnable else "dynamicrafter_512"
        if name == "dynamicrafter_512" and "scale_arr" in sd:
            tail = sd["scale_arr"]
            if hasattr(tail, "reshape") and float(tail.reshape(-1)[-1]) < 0.5:
                name = "dynamicrafter_1024"
    elif cfg.temporal_conv_layout == "myv":
        name = "makeyourvideo_256"
    elif cfg.fs_condition:
        name = "videocrafter2_512"
    elif cfg.use_relative_position:
        name = "videocrafter1_512"
    else:
        raise UnknownCheckpointError(
            f"an LVDM-like UNet with {cfg.in_channels} input channels but none of the features of a supported "
            f"variant; supported: {supported_summary()}")
    variant = VARIANTS[name]
    if cfg.in_channels != variant.unet.in_channels:
        raise UnknownCheckpointError(
            f"found a {variant.family} layout with {cfg.in_channels} input channels; {variant.title} has "
            f"{variant.unet.in_channels}. Supported: {supported_summary()}")
    return variant, cfg.replace(default_fs=variant.unet.default_fs)


def variant_for(sd: Mapping, requested: str = "auto", prefix: str = UNET_PREFIX) -> tuple[Variant, UNetConfig]:
    """`detect_variant`, with the user's choice among variants that share a key layout."""
    variant, cfg = detect_variant(sd, prefix)
    if requested in ("", "auto", None):
        return variant, cfg
    if requested not in VARIANTS:
        raise ValueError(f"unknown variant '{requested}'; choose one of: auto, {', '.join(VARIANTS)}")
    group = next((g for g in SAME_KEYS.values() if variant.name in g), (variant.name,))
    if requested not in group:
        raise UnknownCheckpointError(
            f"this file is a {variant.title} checkpoint; it cannot run as {VARIANTS[requested].title}")
    chosen = VARIANTS[requested]
    return chosen, cfg.replace(default_fs=chosen.unet.default_fs)


def tiny_config(variant: str, **overrides) -> UNetConfig:
    """The golden-fixture sizes (model_channels 32, two levels, 8-wide heads, context 64) with a variant's flags."""
    base = VARIANTS[variant].unet
    small = dict(model_channels=32, attention_resolutions=(1, 2), num_res_blocks=1, channel_mult=(1, 2),
                 num_head_channels=8, context_dim=64)
    small.update(overrides)
    small["attention_resolutions"] = tuple(sorted(small["attention_resolutions"], reverse=True))
    return base.replace(**small)


def shapes_from_manifest(lines: Sequence[str]) -> dict:
    """`key [d0, d1]` lines -> {key: shape tuple}."""
    out = {}
    for line in lines:
        line = line.strip()
        if not line:
            continue
        key, _, shape = line.partition(" ")
        dims = shape.strip()[1:-1].strip()
        out[key] = tuple(int(d) for d in dims.split(",")) if dims else ()
    return out
