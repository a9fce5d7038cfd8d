"""MiDaS v3 DPT-Hybrid (dpt_hybrid-midas-501f0c75.pt, the depth model Make-Your-Video runs) on transformers' DPT.

Two layouts are accepted: the original isl-org state dict (`pretrained.*`, `scratch.*`) and the transformers one
(Intel/dpt-hybrid-midas: `dpt.*`, `neck.*`, `head.*`). Everything here is a pure function on state dicts and
tensors; reading files and choosing the model kind is the caller's job.

Numerics follow the unmodified official code (isl-org/MiDaS `DPTDepthModel(backbone="vitb_rn50_384")`, as vendored
by Make-Your-Video): timm LayerNorm eps 1e-6 (the hub config says 1e-12), ViT taps taken before the final norm,
ReLU on the output (non_negative=True), and any input size that is a multiple of 32, square or not.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from transformers import BitConfig, DPTConfig, DPTForDepthEstimation
from transformers.modeling_outputs import DepthEstimatorOutput

KIND = "midas_dpt_hybrid"
NET_SIZE = 384  # MYV's prepare_midas_input resizes every frame to 384x384 (aspect not kept)
PATCH = 16  # BiT stem /4, then two stride-2 stages: one ViT token per 16x16 pixels
MULTIPLE = 32  # the neck's stride-2 conv and x2 upsamplings line up only for multiples of 32 (see predict)
LAYER_NORM_EPS = 1e-6  # timm ViT; transformers' DPTConfig default (and the Intel hub config) is 1e-12
HEAD_DIM = 64  # default rule for the head count: every published ViT-B/L has 64-dim heads (768 -> 12)
OFFICIAL_HOOKS = {12: (8, 11)}  # MiDaS DPT hooks table, "vitb_rn50_384": [0, 1, 8, 11] (0, 1 are ResNet stages)

# The timm ImageNet classifier: in the file (a strict load of the original needs it), never run by DPT, absent
# from transformers' DPTForDepthEstimation. The only keys dropped; every other key must map.
DROPPED = ("pretrained.model.head.weight", "pretrained.model.head.bias")

_ORIGINAL_FINGERPRINT = (
    "pretrained.model.patch_embed.backbone.stem.conv.weight",
    "pretrained.model.pos_embed",
    "pretrained.act_postprocess4.4.weight",
    "scratch.refinenet1.out_conv.weight",
    "scratch.output_conv.4.weight",
)
_TRANSFORMERS_FINGERPRINT = (
    "dpt.embeddings.backbone.bit.embedder.convolution.weight",
    "dpt.embeddings.position_embeddings",
    "neck.reassemble_stage.layers.3.resize.weight",
    "neck.fusion_stage.layers.0.projection.weight",
    "head.head.4.weight",
)

# Key rules as pairs of templates (original, transformers), usable both ways. Fields: {n} any index, {wb} weight or
# bias, {part} a BiT bottleneck parameter; the index shifts (refinenetN -> fusion layer 4-N, ...) are spelled out.
_FIELDS = {
    "n": r"\d+", "b": r"\d+", "wb": r"weight|bias", "qkv": r"query|key|value", "j": r"[12]", "c": r"[12]",
    "part": r"conv[123]\.weight|norm[123]\.(?:weight|bias)|downsample\.(?:conv\.weight|norm\.(?:weight|bias))",
}
_PAIRS: list[tuple[str, str]] = [
    ("pretrained.model.cls_token", "dpt.embeddings.cls_token"),
    ("pretrained.model.pos_embed", "dpt.embeddings.position_embeddings"),
    ("pretrained.model.patch_embed.proj.{wb}", "dpt.embeddings.projection.{wb}"),
    ("pretrained.model.patch_embed.backbone.stem.conv.weight", "dpt.embeddings.backbone.bit.embedder.convolution.weight"),
    ("pretrained.model.patch_embed.backbone.stem.norm.{wb}", "dpt.embeddings.backbone.bit.embedder.norm.{wb}"),
    ("pretrained.model.patch_embed.backbone.stages.{n}.blocks.{b}.{part}",
     "dpt.embeddings.backbone.bit.encoder.stages.{n}.layers.{b}.{part}"),
    ("pretrained.model.blocks.{n}.norm1.{wb}", "dpt.encoder.layer.{n}.layernorm_before.{wb}"),
    ("pretrained.model.blocks.{n}.norm2.{wb}", "dpt.encoder.layer.{n}.layernorm_after.{wb}"),
    # timm's fused qkv [3D, D] = query, key, value rows in that order
    ("pretrained.model.blocks.{n}.attn.qkv.{wb}", "dpt.encoder.layer.{n}.attention.attention.{qkv}.{wb}"),
    ("pretrained.model.blocks.{n}.attn.proj.{wb}", "dpt.encoder.layer.{n}.attention.output.dense.{wb}"),
    ("pretrained.model.blocks.{n}.mlp.fc1.{wb}", "dpt.encoder.layer.{n}.intermediate.dense.{wb}"),
    ("pretrained.model.blocks.{n}.mlp.fc2.{wb}", "dpt.encoder.layer.{n}.output.dense.{wb}"),
    ("pretrained.model.norm.{wb}", "dpt.layernorm.{wb}"),
    *[(f"pretrained.act_postprocess{k}.0.project.0.{{wb}}", f"neck.reassemble_stage.readout_projects.{k - 1}.0.{{wb}}")
      for k in (3, 4)],
    *[(f"pretrained.act_postprocess{k}.3.{{wb}}", f"neck.reassemble_stage.layers.{k - 1}.projection.{{wb}}")
      for k in (3, 4)],
    ("pretrained.act_postprocess4.4.{wb}", "neck.reassemble_stage.layers.3.resize.{wb}"),
    *[(f"scratch.layer{k}_rn.weight", f"neck.convs.{k - 1}.weight") for k in (1, 2, 3, 4)],
    *[(f"scratch.refinenet{k}.out_conv.{{wb}}", f"neck.fusion_stage.layers.{4 - k}.projection.{{wb}}")
      for k in (1, 2, 3, 4)],
    *[(f"scratch.refinenet{k}.resConfUnit{{j}}.conv{{c}}.{{wb}}",
       f"neck.fusion_stage.layers.{4 - k}.residual_layer{{j}}.convolution{{c}}.{{wb}}") for k in (1, 2, 3, 4)],
    *[(f"scratch.output_conv.{k}.{{wb}}", f"head.head.{k}.{{wb}}") for k in (0, 2, 4)],
]


def _pattern(template: str) -> re.Pattern:
    return re.compile(re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m[1]}>{_FIELDS[m[1]]})", re.escape(template)))


_RULES = [(_pattern(o), o, _pattern(t), t) for o, t in _PAIRS]


def matches_original(keys: Iterable[str]) -> bool:
    """True for the isl-org / Make-Your-Video layout (no prefix), by key names only."""
    keys = set(keys)
    return all(k in keys for k in _ORIGINAL_FINGERPRINT)


def matches_transformers(keys: Iterable[str]) -> bool:
    """True for the transformers DPTForDepthEstimation hybrid layout (Intel/dpt-hybrid-midas), by key names only."""
    keys = set(keys)
    return all(k in keys for k in _TRANSFORMERS_FINGERPRINT)


def rename(key: str) -> tuple[str, ...] | None:
    """Transformers name(s) of one original key: three for a fused qkv (query, key, value), () for a DROPPED key,
    None when no rule applies."""
    if key in DROPPED:
        return ()
    for orig, _, _, tf in _RULES:
        if m := orig.fullmatch(key):
            if "{qkv}" in tf:
                return tuple(tf.format(**m.groupdict(), qkv=part) for part in ("query", "key", "value"))
            return (tf.format(**m.groupdict()),)
    return None


def original_name(key: str) -> str | None:
    """The original key a transformers key comes from (query/key/value -> the fused qkv), None if none."""
    for _, orig, tf, _ in _RULES:
        if m := tf.fullmatch(key):
            return orig.format(**{k: v for k, v in m.groupdict().items() if k != "qkv"})
    return None


def to_transformers(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original MiDaS DPT-Hybrid state dict -> transformers names (qkv split into query/key/value).

    Only DROPPED is left out; unknown, missing or wrongly shaped keys raise ValueError naming the original keys."""
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in sd.items():
        names = rename(key)
        if names is None:
            unknown.append(key)
        elif len(names) == 3:
            if value.ndim == 0 or value.shape[0] % 3:
                raise ValueError(f"MiDaS DPT-Hybrid: {key} has shape {list(value.shape)}, not 3 x embed rows")
            for name, part in zip(names, value.chunk(3, dim=0)):
                out[name] = part
        elif names:
            out[names[0]] = value
    if unknown:
        raise ValueError(f"MiDaS DPT-Hybrid: {len(unknown)} key(s) with no transformers name: {sorted(unknown)}")
    check_state_dict(out, _shape_config(out), original_names=True)
    return out


def _shape_config(sd_tf: Mapping[str, torch.Tensor]) -> DPTConfig:
    """A config with the right parameter shapes: head count and ViT taps change no shape, so any valid ones do."""
    return config_from_state_dict(sd_tf, num_heads=1, vit_hooks=(0, max(_count(sd_tf, "dpt.encoder.layer") - 1, 0)))


def _require(sd: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in sd:
        raise ValueError(f"MiDaS DPT-Hybrid: missing key {key} (original name {original_name(key)}), "
                         "needed to read the model size")
    return sd[key]


def _count(sd: Mapping[str, torch.Tensor], prefix: str) -> int:
    """Number of consecutive integer children `prefix.N.` present (0, 1, ...)."""
    found = {int(m.group(1)) for k in sd if (m := re.match(re.escape(prefix) + r"\.(\d+)\.", k))}
    n = 0
    while n in found:
        n += 1
    return n


def config_from_state_dict(sd_tf: Mapping[str, torch.Tensor], num_heads: int | None = None,
                           vit_hooks: tuple[int, int] | None = None) -> DPTConfig:
    """A DPTConfig for a transformers-layout state dict, read from tensor shapes (no hub, no network).

    num_heads   not in any shape: default hidden_size // 64 (768 -> 12, the real file); the reduced golden
                fixture (64 dims, 4 heads) must pass 4.
    vit_hooks   the two ViT blocks the neck reads (MiDaS hooks[2:]); not in any shape either: default the
                official (8, 11) for 12 blocks; other depths must pass them (the fixture: (1, 3)).
    """
    pos = _require(sd_tf, "dpt.embeddings.position_embeddings")
    hidden = int(pos.shape[-1])
    grid = round((pos.shape[1] - 1) ** 0.5)
    if grid * grid != pos.shape[1] - 1:
        raise ValueError(f"MiDaS DPT-Hybrid: position_embeddings {list(pos.shape)} is not 1 + a square grid")
    depth = _count(sd_tf, "dpt.encoder.layer")
    if depth == 0:
        raise ValueError("MiDaS DPT-Hybrid: no dpt.encoder.layer.N.* keys")
    heads = num_heads if num_heads is not None else hidden // HEAD_DIM
    if heads <= 0 or hidden % heads:
        raise ValueError(f"MiDaS DPT-Hybrid: hidden size {hidden} is not divisible by {heads} heads")
    if vit_hooks is None:
        if depth not in OFFICIAL_HOOKS:
            raise ValueError(f"MiDaS DPT-Hybrid: {depth} ViT blocks (official: 12); pass vit_hooks")
        vit_hooks = OFFICIAL_HOOKS[depth]
    if len(vit_hooks) != 2 or not 0 <= vit_hooks[0] <= vit_hooks[1] < depth:
        raise ValueError(f"MiDaS DPT-Hybrid: vit_hooks {vit_hooks} out of range for {depth} blocks")

    stages = _count(sd_tf, "dpt.embeddings.backbone.bit.encoder.stages")
    if stages != 3:
        raise ValueError(f"MiDaS DPT-Hybrid: the ResNet backbone has {stages} stages, expected 3")
    bit_depths = [_count(sd_tf, f"dpt.embeddings.backbone.bit.encoder.stages.{s}.layers") for s in range(stages)]
    bit_widths = [int(_require(sd_tf, f"dpt.embeddings.backbone.bit.encoder.stages.{s}.layers.0.conv3.weight")
                      .shape[0]) for s in range(stages)]
    stem = int(_require(sd_tf, "dpt.embeddings.backbone.bit.embedder.convolution.weight").shape[0])
    neck = [int(_require(sd_tf, f"neck.convs.{i}.weight").shape[1]) for i in range(4)]
    fusion = int(_require(sd_tf, "neck.convs.0.weight").shape[0])
    backbone = BitConfig(
        global_padding="same", layer_type="bottleneck", embedding_dynamic_padding=True, num_groups=32,
        embedding_size=stem, depths=bit_depths, hidden_sizes=bit_widths,
        out_features=[f"stage{s + 1}" for s in range(stages)],
    )
    return DPTConfig(
        is_hybrid=True, backbone_config=backbone,
        hidden_size=hidden, num_hidden_layers=depth, num_attention_heads=heads,
        intermediate_size=int(_require(sd_tf, "dpt.encoder.layer.0.intermediate.dense.weight").shape[0]),
        qkv_bias="dpt.encoder.layer.0.attention.attention.query.bias" in sd_tf,
        layer_norm_eps=LAYER_NORM_EPS, image_size=grid * PATCH, patch_size=PATCH,
        backbone_featmap_shape=[1, int(_require(sd_tf, "dpt.embeddings.projection.weight").shape[1]), grid, grid],
        backbone_out_indices=[0, 1, *vit_hooks], neck_ignore_stages=[0, 1], readout_type="project",
        reassemble_factors=[1, 1, 1, 0.5], neck_hidden_sizes=neck, fusion_hidden_size=fusion,
        use_batch_norm_in_fusion_residual=False,
    )


def expected_shapes(config: DPTConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter name -> shape of MidasDPTForDepthEstimation(config), built on the meta device (no memory)."""
    with torch.device("meta"):
        model = MidasDPTForDepthEstimation(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_state_dict(sd_tf: Mapping[str, torch.Tensor], config: DPTConfig, original_names: bool = False) -> None:
    """Raise ValueError naming every missing, unexpected and wrongly shaped key of a transformers-layout dict
    (by their original names when original_names: the dict was converted from the original file)."""
    want = expected_shapes(config)

    def name(k: str) -> str:
        return f"{original_name(k) or k} (as {k})" if original_names else k

    missing = sorted({name(k) for k in set(want) - set(sd_tf)})
    unexpected = sorted(name(k) for k in set(sd_tf) - set(want))
    shapes = sorted(f"{name(k)}: {list(sd_tf[k].shape)} != {list(want[k])}" for k in set(want) & set(sd_tf)
                    if tuple(sd_tf[k].shape) != want[k])
    problems = [f"missing {missing}"] * bool(missing) + [f"unexpected {unexpected}"] * bool(unexpected) \
        + [f"wrong shape {shapes}"] * bool(shapes)
    if problems:
        raise ValueError("MiDaS DPT-Hybrid state dict does not fit the model: " + "; ".join(problems))


class MidasDPTForDepthEstimation(DPTForDepthEstimation):
    """DPTForDepthEstimation whose hybrid forward accepts any multiple-of-32 size, like MiDaS' forward_flex.

    Why the override: transformers' hybrid path rejects non-384 inputs (embeddings size guard) and reshapes the
    ViT tokens to a square grid in the reassemble stage. Here the same library modules run, with the guard lifted
    (the embeddings already resize the pos-embed grid bilinearly, as MiDaS does) and the real token grid passed to
    the neck. The final ViT LayerNorm is skipped: MiDaS reads block outputs before it and discards its output."""

    def forward(self, pixel_values: torch.Tensor, **kwargs) -> DepthEstimatorOutput:
        height, width = pixel_values.shape[-2:]
        emb = self.dpt.embeddings(pixel_values, interpolate_pos_encoding=True)
        taps = self.config.backbone_out_indices[2:]
        hidden, features = emb.last_hidden_states, list(emb.intermediate_activations)
        for i, layer in enumerate(self.dpt.encoder.layer[: max(taps) + 1]):
            hidden = layer(hidden)
            if i in taps:
                features.append(hidden)
        features = self.neck(features, height // PATCH, width // PATCH)
        return DepthEstimatorOutput(predicted_depth=self.head(features))


def build(sd: Mapping[str, torch.Tensor], dtype: torch.dtype = torch.float32, num_heads: int | None = None,
          vit_hooks: tuple[int, int] | None = None) -> MidasDPTForDepthEstimation:
    """Eval-mode model from a state dict in either layout, built on meta and filled strictly (tensors assigned)."""
    keys = list(sd)
    if matches_original(keys):
        sd_tf = to_transformers(sd)
    elif matches_transformers(keys):
        sd_tf = dict(sd)
        check_state_dict(sd_tf, _shape_config(sd_tf))
    else:
        raise ValueError("not a MiDaS DPT-Hybrid state dict (neither the original nor the transformers layout); "
                         f"first keys: {keys[:5]}")
    config = config_from_state_dict(sd_tf, num_heads=num_heads, vit_hooks=vit_hooks)
    # Eager attention is timm's own arithmetic (softmax(q k^T * scale) v): the golden depth matches bit for bit,
    # where SDPA differs by ~6e-6.
    config._attn_implementation = "eager"
    with torch.device("meta"):
        model = MidasDPTForDepthEstimation(config)
    model.load_state_dict({k: v.to(dtype) for k, v in sd_tf.items()}, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def hf_config_overrides(config_json: Mapping) -> dict:
    """build() keyword arguments from a transformers config.json (a folder's): the head count and ViT taps."""
    return {"num_heads": int(config_json["num_attention_heads"]),
            "vit_hooks": tuple(int(i) for i in config_json["backbone_out_indices"][2:])}


def preprocess(frames: torch.Tensor) -> torch.Tensor:
    """ComfyUI IMAGE [N, H, W, 3] in [0, 1] -> network input [N, 3, 384, 384], Make-Your-Video's recipe:
    (x - 0.5) * 2 at the frames' size, then bicubic to 384x384 (align_corners=False, no antialias, no clamp)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [N, H, W, 3], got {list(frames.shape)}")
    x = ((frames.float() - 0.5) * 2).permute(0, 3, 1, 2).contiguous()
    return F.interpolate(x, size=(NET_SIZE, NET_SIZE), mode="bicubic", align_corners=False)


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Relative inverse depth [N, h, w] (float32) at the input's resolution, the official `model(x)` (ReLU'd).

    h and w must be multiples of 32: the official code also accepts multiples of 16 by resizing each fusion
    output to the next skip's size, which transformers' fusion stage does not do (it would silently differ)."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"MiDaS input must be [N, 3, H, W], got {list(x.shape)}")
    if x.shape[-2] % MULTIPLE or x.shape[-1] % MULTIPLE:
        raise ValueError(f"MiDaS input size {list(x.shape[-2:])} is not a multiple of {MULTIPLE}")
    param = next(model.parameters())
    out = model(x.to(device=param.device, dtype=param.dtype)).predicted_depth
    return out.float()


def postprocess(depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[N, h, w] -> [N, H, W] at the frames' size: bicubic, align_corners=False (Make-Your-Video's get_batch_depth)."""
    return F.interpolate(depth.unsqueeze(1), size=tuple(size), mode="bicubic", align_corners=False).squeeze(1)
