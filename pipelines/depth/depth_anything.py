"""Depth-Anything-V2 Small / Base / Large (relative inverse depth) on transformers' DepthAnythingForDepthEstimation.

Two file layouts are accepted, both as plain state dicts (file reading and detection dispatch live elsewhere):
  original     depth_anything_v2_vit{s,b,l}.pth        `pretrained.*` (DINOv2, fused qkv) + `depth_head.*`
  transformers Depth-Anything-V2-{Small,Base,Large}-hf  `backbone.*` / `neck.*` / `head.*`, 4.x attention names
Both are renamed to the names the transformers 5.x model holds in memory (`attention.{q,k,v,o}_proj`) and assigned
strictly to a model built on the meta device from a config derived from the tensor shapes (never from the hub).

The official forward differs from transformers' in one place, the position-embedding resize (see
`_original_interpolate_pos_encoding`); everything else (block order, layer norm on every tapped block, DPT neck with
`size=` fusion upsampling, head upsampling to 14*patches, final ReLU) is the same computation.
Metric variants (depth_anything_v2_metric_*) have identical keys but a Sigmoid*max_depth head: refused by file name.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from transformers import (
    DepthAnythingConfig,
    DepthAnythingForDepthEstimation,
    Dinov2Config,
)

KIND_PREFIX = "depth_anything_v2"
ENCODERS = ("vits", "vitb", "vitl")
EMBED_DIMS = {"vits": 384, "vitb": 768, "vitl": 1024}
NUM_HEADS = {"vits": 6, "vitb": 12, "vitl": 16}
# 0-based DINOv2 block indices whose (normed) outputs feed the DPT head (official `intermediate_layer_idx`)
INTERMEDIATE_LAYERS = {"vits": (2, 5, 8, 11), "vitb": (2, 5, 8, 11), "vitl": (4, 11, 17, 23)}
PATCH_SIZE = 14
INTERPOLATE_OFFSET = 0.1  # official DINOv2 builder default for Depth-Anything-V2
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# fingerprints (every checkpoint of the layout has them; none of the other depth layouts has all of them)
_ORIGINAL_MARKERS = ("pretrained.pos_embed", "pretrained.blocks.0.attn.qkv.weight", "depth_head.scratch.output_conv1.weight")
_TRANSFORMERS_MARKERS = ("backbone.embeddings.position_embeddings", "neck.fusion_stage.layers.0.projection.weight",
                         "head.conv1.weight")


def matches_original(keys: Iterable[str]) -> bool:
    """True for the official `depth_anything_v2_vit*.pth` layout (names without prefix)."""
    keys = set(keys)
    return all(k in keys for k in _ORIGINAL_MARKERS)


def matches_transformers(keys: Iterable[str]) -> bool:
    """True for DepthAnythingForDepthEstimation names (4.x file names or 5.x in-memory names)."""
    keys = set(keys)
    return all(k in keys for k in _TRANSFORMERS_MARKERS)


def is_metric_name(filename: str) -> bool:
    return "metric" in os.path.basename(str(filename)).lower()


def refuse_if_metric(filename: str) -> None:
    """Metric checkpoints cannot be told from their keys; their head is Sigmoid*max_depth, not ReLU: refuse them."""
    if is_metric_name(filename):
        raise ValueError(
            f"{filename}: looks like a Depth-Anything-V2 *metric* depth checkpoint (its keys equal the relative "
            "model's, but its head is Sigmoid x max_depth and it outputs metres). Only the relative models "
            "(depth_anything_v2_vits/vitb/vitl.pth, Depth-Anything-V2-Small/Base/Large-hf) are supported.")


def _embed_dim(sd: Mapping[str, torch.Tensor]) -> int:
    for key in ("pretrained.cls_token", "backbone.embeddings.cls_token"):
        if key in sd:
            return int(sd[key].shape[-1])
    raise ValueError("not a Depth-Anything-V2 state dict: no pretrained.cls_token / backbone.embeddings.cls_token")


def encoder_of(sd: Mapping[str, torch.Tensor], encoder: str | None = None) -> str:
    """"vits" / "vitb" / "vitl" from the embedding width (384 / 768 / 1024), or the given override (reduced models)."""
    if encoder is not None:
        if encoder not in ENCODERS:
            raise ValueError(f"unknown Depth-Anything-V2 encoder {encoder!r}; expected one of {ENCODERS}")
        return encoder
    dim = _embed_dim(sd)
    for name, width in EMBED_DIMS.items():
        if width == dim:
            return name
    raise ValueError(f"Depth-Anything-V2 embedding width {dim} is none of {EMBED_DIMS} (vitg has no released "
                     "relative checkpoint); pass the encoder explicitly for a reduced model")


# ---- original names -> transformers 5.x in-memory names ------------------------------------------------------------

_BLOCK_PARTS = {  # DINOv2 block part -> Dinov2Layer part (tensor suffix kept)
    "norm1": "norm1", "norm2": "norm2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2", "attn.proj": "attention.o_proj",
}
_LAYER_SCALE = {"ls1.gamma": "layer_scale1.lambda1", "ls2.gamma": "layer_scale2.lambda1"}
_FIXED = {
    "pretrained.cls_token": "backbone.embeddings.cls_token",
    "pretrained.mask_token": "backbone.embeddings.mask_token",
    "pretrained.pos_embed": "backbone.embeddings.position_embeddings",
    "pretrained.patch_embed.proj.weight": "backbone.embeddings.patch_embeddings.projection.weight",
    "pretrained.patch_embed.proj.bias": "backbone.embeddings.patch_embeddings.projection.bias",
    "pretrained.norm.weight": "backbone.layernorm.weight",
    "pretrained.norm.bias": "backbone.layernorm.bias",
    "depth_head.scratch.output_conv1.weight": "head.conv1.weight",
    "depth_head.scratch.output_conv1.bias": "head.conv1.bias",
    "depth_head.scratch.output_conv2.0.weight": "head.conv2.weight",
    "depth_head.scratch.output_conv2.0.bias": "head.conv2.bias",
    "depth_head.scratch.output_conv2.2.weight": "head.conv3.weight",
    "depth_head.scratch.output_conv2.2.bias": "head.conv3.bias",
}
_RE_BLOCK = re.compile(r"pretrained\.blocks\.(\d+)\.(.+)$")
_RE_PROJECT = re.compile(r"depth_head\.(projects|resize_layers)\.([0-3])\.(weight|bias)$")
_RE_LAYER_RN = re.compile(r"depth_head\.scratch\.layer([1-4])_rn\.weight$")
_RE_REFINE = re.compile(r"depth_head\.scratch\.refinenet([1-4])\.(out_conv|resConfUnit[12]\.conv[12])\.(weight|bias)$")


def _rename_original(key: str) -> str | list[str] | None:
    """The 5.x name of one original key, three names for a fused qkv, None if the key has no place."""
    if key in _FIXED:
        return _FIXED[key]
    if m := _RE_BLOCK.match(key):
        block, rest = m.groups()
        prefix = f"backbone.encoder.layer.{block}."
        if rest in _LAYER_SCALE:
            return prefix + _LAYER_SCALE[rest]
        part, _, kind = rest.rpartition(".")
        if kind not in ("weight", "bias"):
            return None
        if part == "attn.qkv":
            return [f"{prefix}attention.{p}_proj.{kind}" for p in "qkv"]
        return f"{prefix}{_BLOCK_PARTS[part]}.{kind}" if part in _BLOCK_PARTS else None
    if m := _RE_PROJECT.match(key):
        group, i, kind = m.groups()
        if group == "resize_layers" and i == "2":
            return None  # an Identity upstream: a tensor here is a foreign layout
        return f"neck.reassemble_stage.layers.{i}.{'projection' if group == 'projects' else 'resize'}.{kind}"
    if m := _RE_LAYER_RN.match(key):
        return f"neck.convs.{int(m.group(1)) - 1}.weight"
    if m := _RE_REFINE.match(key):
        n, part, kind = m.groups()
        # refinenet4 (deepest, one input) runs first: transformers' fusion layer 0
        layer = f"neck.fusion_stage.layers.{4 - int(n)}."
        if part == "out_conv":
            return f"{layer}projection.{kind}"
        unit, conv = part[len("resConfUnit")], part[-1]
        return f"{layer}residual_layer{unit}.convolution{conv}.{kind}"
    return None


def to_transformers(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original `depth_anything_v2_vit*.pth` names -> transformers 5.x in-memory names (qkv split in q, k, v).

    Every key must have a place and every place must be filled: otherwise ValueError listing the keys.
    """
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in sd.items():
        new = _rename_original(key)
        if new is None:
            unknown.append(key)
        elif isinstance(new, list):
            if value.shape[0] % 3:
                raise ValueError(f"{key}: fused qkv of shape {list(value.shape)} is not divisible in three")
            # clone: independent tensors rather than views into the fused storage
            for name, part in zip(new, value.chunk(3, dim=0)):
                out[name] = part.clone()
        else:
            out[new] = value
    if unknown:
        raise ValueError(f"Depth-Anything-V2: {len(unknown)} key(s) of the original layout have no place in the "
                         f"model: {sorted(unknown)}")
    check_layout(out)
    return out


_HF4_TO_5 = (("attention.attention.query.", "attention.q_proj."), ("attention.attention.key.", "attention.k_proj."),
             ("attention.attention.value.", "attention.v_proj."), ("attention.output.dense.", "attention.o_proj."))
_RE_HF_LAYER = re.compile(r"(backbone\.encoder\.layer\.\d+\.)(.+)$")


def hf_file_to_runtime(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hub file names (transformers 4.x attention names) -> 5.x in-memory names; 5.x names pass unchanged.

    (transformers 5 does this rename itself inside from_pretrained; we assign tensors directly, so we do it here.)
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        new = key
        if m := _RE_HF_LAYER.match(key):
            for old, repl in _HF4_TO_5:
                if m.group(2).startswith(old):
                    new = m.group(1) + repl + m.group(2)[len(old):]
                    break
        if new in out:
            raise ValueError(f"Depth-Anything-V2: {key} and another key both give {new}")
        out[new] = value
    check_layout(out)
    return out


# ---- config ---------------------------------------------------------------------------------------------------------

def _num_layers(sd_tf: Mapping[str, torch.Tensor]) -> int:
    idx = {int(m.group(1)) for k in sd_tf if (m := re.match(r"backbone\.encoder\.layer\.(\d+)\.", k))}
    if not idx:
        raise ValueError("Depth-Anything-V2: no backbone.encoder.layer.* keys")
    return max(idx) + 1


def _shape(sd: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in sd:
        raise ValueError(f"Depth-Anything-V2: missing key {key}")
    return tuple(sd[key].shape)


def config_from_state_dict(sd_tf: Mapping[str, torch.Tensor], num_heads: int | None = None,
                           out_indices: Iterable[int] | None = None) -> DepthAnythingConfig:
    """Relative-depth DepthAnythingConfig from the 5.x-named tensors' shapes.

    num_heads / out_indices (0-based block indices, official `intermediate_layer_idx`) default to the released
    encoder's values; reduced models must pass them.
    """
    dim = _embed_dim(sd_tf)
    layers = _num_layers(sd_tf)
    encoder = None
    if num_heads is None or out_indices is None:
        encoder = encoder_of(sd_tf)
    heads = NUM_HEADS[encoder] if num_heads is None else int(num_heads)
    taps = list(INTERMEDIATE_LAYERS[encoder] if out_indices is None else out_indices)
    if dim % heads:
        raise ValueError(f"Depth-Anything-V2: width {dim} is not divisible by {heads} heads")
    if len(taps) != 4 or not all(0 <= i < layers for i in taps) or taps != sorted(set(taps)):
        raise ValueError(f"Depth-Anything-V2: intermediate layers {taps} must be 4 increasing indices below {layers}")
    patch = _shape(sd_tf, "backbone.embeddings.patch_embeddings.projection.weight")
    positions = _shape(sd_tf, "backbone.embeddings.position_embeddings")[1] - 1
    grid = math.isqrt(positions)
    if grid * grid != positions or patch[2] != patch[3]:
        raise ValueError(f"Depth-Anything-V2: position embeddings for {positions} patches / patch {patch} are not square")
    mlp = _shape(sd_tf, "backbone.encoder.layer.0.mlp.fc1.weight")[0]
    if mlp % dim:
        raise ValueError(f"Depth-Anything-V2: MLP width {mlp} is not a multiple of {dim}")
    factors = (4, 2, 1, 0.5)  # official DPTHead: ConvTranspose k4 s4, ConvTranspose k2 s2, Identity, Conv s2
    for i, kernel in ((0, 4), (1, 2), (3, 3)):
        got = _shape(sd_tf, f"neck.reassemble_stage.layers.{i}.resize.weight")[-1]
        if got != kernel:
            raise ValueError(f"Depth-Anything-V2: neck.reassemble_stage.layers.{i}.resize.weight has kernel {got}, "
                             f"expected {kernel}")
    backbone = Dinov2Config(
        hidden_size=dim, num_hidden_layers=layers, num_attention_heads=heads, mlp_ratio=mlp // dim,
        image_size=grid * patch[2], patch_size=patch[2], layer_norm_eps=1e-6, qkv_bias=True, use_mask_token=True,
        out_indices=[i + 1 for i in taps],  # transformers counts the embedding output as stage 0
        reshape_hidden_states=False, apply_layernorm=True)
    config = DepthAnythingConfig(
        backbone_config=backbone, patch_size=patch[2], reassemble_hidden_size=dim, reassemble_factors=list(factors),
        neck_hidden_sizes=[_shape(sd_tf, f"neck.reassemble_stage.layers.{i}.projection.weight")[0] for i in range(4)],
        fusion_hidden_size=_shape(sd_tf, "neck.convs.0.weight")[0],
        head_hidden_size=_shape(sd_tf, "head.conv2.weight")[0],
        # relative model; max_depth must be a number (5.x multiplies by it even for ReLU heads)
        depth_estimation_type="relative", max_depth=1)
    return config


def hf_config_overrides(config: Mapping) -> dict:
    """num_heads / out_indices (0-based) from a hub config.json dict, for `build` (needed for non-standard sizes)."""
    if config.get("depth_estimation_type", "relative") != "relative":
        raise ValueError(f"Depth-Anything config.json says depth_estimation_type="
                         f"{config.get('depth_estimation_type')!r}: only relative models are supported")
    backbone = config.get("backbone_config") or {}
    out: dict = {}
    if "num_attention_heads" in backbone:
        out["num_heads"] = int(backbone["num_attention_heads"])
    if backbone.get("out_indices"):
        out["out_indices"] = [int(i) - 1 for i in backbone["out_indices"]]
    return out


# ---- model ----------------------------------------------------------------------------------------------------------

def _meta_model(config: DepthAnythingConfig) -> DepthAnythingForDepthEstimation:
    with torch.device("meta"):
        return DepthAnythingForDepthEstimation(config)


def check_layout(sd_tf: Mapping[str, torch.Tensor], model: torch.nn.Module | None = None) -> None:
    """Raise ValueError naming every missing, unexpected or wrongly shaped key (5.x names)."""
    if model is None:
        # head count and taps change no name or shape: any valid values do for the comparison
        layers = _num_layers(sd_tf)
        model = _meta_model(config_from_state_dict(sd_tf, num_heads=1, out_indices=range(max(layers - 4, 0), layers)))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(sd_tf))
    unexpected = sorted(set(sd_tf) - set(expected))
    wrong = sorted(f"{k} {list(sd_tf[k].shape)} (expected {list(expected[k])})"
                   for k in set(expected) & set(sd_tf) if tuple(sd_tf[k].shape) != expected[k])
    if missing or unexpected or wrong:
        parts = [f"{name}: {items}" for name, items in
                 (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if items]
        raise ValueError("Depth-Anything-V2 state dict does not fit the model; " + "; ".join(parts))


def _original_interpolate_pos_encoding(self, embeddings: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Official DINOv2 resize: bicubic with scale_factor=((h+0.1)/37, (w+0.1)/37), no antialias, in float32.

    Hand-written because transformers resizes with size=(h, w), which samples other source positions (F.interpolate
    maps output to input coordinates by the given scale factor, not by the size ratio); on the golden fixture that
    alone moves the depth by 0.82.
    """
    num_patches = embeddings.shape[1] - 1
    pos = self.position_embeddings
    num_positions = pos.shape[1] - 1
    if num_patches == num_positions and height == width:
        return pos
    grid = math.isqrt(num_positions)
    dim = embeddings.shape[-1]
    patch = self.patch_embeddings.patch_size[0]
    h0, w0 = height // patch + INTERPOLATE_OFFSET, width // patch + INTERPOLATE_OFFSET
    patch_pos = pos[:, 1:].float().reshape(1, grid, grid, dim).permute(0, 3, 1, 2)
    patch_pos = F.interpolate(patch_pos, scale_factor=(h0 / grid, w0 / grid), mode="bicubic", antialias=False)
    if patch_pos.shape[-2:] != (height // patch, width // patch):
        raise RuntimeError(f"position-embedding resize gave {tuple(patch_pos.shape[-2:])} for a "
                           f"{height // patch}x{width // patch} patch grid")
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, -1, dim).to(pos.dtype)
    return torch.cat((pos[:, :1], patch_pos), dim=1)


class _OriginalPosEmbeddings:
    """Mixin placed before transformers' Dinov2Embeddings class on the built instance (same parameters)."""
    interpolate_pos_encoding = _original_interpolate_pos_encoding


def _use_original_pos_resize(model: DepthAnythingForDepthEstimation) -> None:
    emb = model.backbone.embeddings
    if not isinstance(emb, _OriginalPosEmbeddings):
        emb.__class__ = type("OriginalPosDinov2Embeddings", (_OriginalPosEmbeddings, type(emb)), {})


def to_runtime(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Either layout -> 5.x in-memory names (checked)."""
    keys = sd.keys()
    if matches_original(keys):
        return to_transformers(sd)
    if matches_transformers(keys):
        return hf_file_to_runtime(sd)
    raise ValueError("not a Depth-Anything-V2 state dict (neither the original pretrained.*/depth_head.* layout nor "
                     "the transformers backbone.*/neck.*/head.* layout)")


def build(sd: Mapping[str, torch.Tensor], dtype: torch.dtype = torch.float32, num_heads: int | None = None,
          out_indices: Iterable[int] | None = None, attn_implementation: str = "sdpa") -> DepthAnythingForDepthEstimation:
    """A ready (eval, no grad) relative-depth model from an original or transformers state dict; strict."""
    sd_tf = to_runtime(sd)
    config = config_from_state_dict(sd_tf, num_heads=num_heads, out_indices=out_indices)
    model = _meta_model(config)
    check_layout(sd_tf, model)
    model.load_state_dict({k: v.to(dtype) for k, v in sd_tf.items()}, strict=True, assign=True)
    _use_original_pos_resize(model)
    # "eager" is the official arithmetic (q*scale @ k^T, softmax, @ v; 0.0 on the fixture); "sdpa" (default:
    # fused, far less memory at 518 px) differs by ~3e-6. The DPT head has no attention, only the backbone.
    if attn_implementation not in ("eager", "sdpa"):
        raise ValueError(f"attn_implementation must be 'eager' or 'sdpa', got {attn_implementation!r}")
    model.backbone.set_attn_implementation(attn_implementation)
    return model.eval().requires_grad_(False)


# ---- pre / post processing ------------------------------------------------------------------------------------------

def network_size(height: int, width: int, input_size: int = 518) -> tuple[int, int]:
    """Official Resize(keep_aspect_ratio, lower_bound, ensure_multiple_of=14): the shorter side reaches input_size."""
    scale_h, scale_w = input_size / height, input_size / width
    scale = max(scale_h, scale_w)

    def multiple(x: float) -> int:
        y = round(x / PATCH_SIZE) * PATCH_SIZE  # Python round = numpy's round-half-even
        return math.ceil(x / PATCH_SIZE) * PATCH_SIZE if y < input_size else y

    return multiple(scale * height), multiple(scale * width)


def preprocess(frames: torch.Tensor, input_size: int = 518) -> torch.Tensor:
    """ComfyUI IMAGE [N, H, W, 3] RGB in [0, 1] -> normalised network input [N, 3, h, w] (float32).

    Official image2tensor resizes with cv2.INTER_CUBIC (a=-0.75, half-pixel centres, no antialiasing, no clamping);
    torch bicubic with align_corners=False and antialias=False is the same kernel.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [N, H, W, 3] RGB, got {list(frames.shape)}")
    h, w = network_size(int(frames.shape[1]), int(frames.shape[2]), input_size)
    x = frames.permute(0, 3, 1, 2).float()
    if (h, w) != tuple(x.shape[-2:]):
        x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False, antialias=False)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


@torch.no_grad()
def predict(model: DepthAnythingForDepthEstimation, x: torch.Tensor) -> torch.Tensor:
    """[N, 3, h, w] -> [N, h, w] float32 relative inverse depth at network resolution (>= 0)."""
    param = next(model.parameters())
    return model(pixel_values=x.to(device=param.device, dtype=param.dtype)).predicted_depth.float()


def postprocess(depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[N, h, w] -> [N, H, W] as the official infer_image (bilinear, align_corners=True)."""
    return F.interpolate(depth[:, None].float(), size=tuple(size), mode="bilinear", align_corners=True)[:, 0]
