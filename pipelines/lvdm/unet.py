"""The LVDM 3-D UNet (official `lvdm/modules/networks/openaimodel3d.py` `UNetModel`), one implementation for
VideoCrafter1/2, DynamiCrafter (256/512/1024/interp) and Make-Your-Video.

Parameter names are exactly the official ones (so official checkpoints strict-load with no key conversion, including
the `temopral_conv` spelling). Layers are built through an `operations` namespace (Linear, Conv1d/2d/3d, GroupNorm,
LayerNorm) so ComfyUI's `comfy.ops` (weight casting, fp8, low-VRAM offload) apply; the default is plain torch.nn.
Frames travel in the batch dimension between layers ([(b t), c, h, w]); temporal layers fold them out.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import (
    TORCH_OPS,
    SpatialTransformer,
    TemporalTransformer,
    factory,
    timestep_embedding,
)
from .config import UNetConfig


def video_to_rows(video: torch.Tensor) -> torch.Tensor:
    """[B, C, T, h, w] -> [B*T, C, h, w]: frames in the batch dimension (the layout between layers and of LVDM
    LATENTs in ComfyUI)."""
    return video.transpose(1, 2).reshape(-1, video.shape[1], *video.shape[3:])


def rows_to_video(rows: torch.Tensor, frames: int) -> torch.Tensor:
    """[B*T, C, h, w] -> [B, C, T, h, w]."""
    return rows.reshape(-1, frames, *rows.shape[1:]).transpose(1, 2)


def group_norm32(operations, channels, dtype=None, device=None):
    """The official ResBlock/output GroupNorm (32 groups, eps 1e-5), always computed in float32."""
    class GroupNorm32(operations.GroupNorm):
        def forward(self, x):
            xf = x.float()
            if getattr(self, "comfy_cast_weights", False) or getattr(self, "weight_function", None) \
                    or getattr(self, "bias_function", None):
                return super().forward(xf).to(x.dtype)  # ComfyUI casts (and patches) weights to the input's dtype
            weight = None if self.weight is None else self.weight.float()
            bias = None if self.bias is None else self.bias.float()
            return F.group_norm(xf, self.num_groups, weight, bias, self.eps).to(x.dtype)
    GroupNorm32.__name__ = "GroupNorm32"
    return GroupNorm32(32, channels, **factory(dtype, device))


class TemporalConvBlock(nn.Module):
    """Residual stack of temporal convolutions inside a ResBlock.

    layout "conv4" (VideoCrafter, DynamiCrafter): conv1..conv4, each GroupNorm-SiLU-(Dropout)-Conv3d (3,1,1), zero
    padding. layout "myv" (Make-Your-Video, tempspatial_aware): conv.0 (3,1,1) replicate, conv.1 (1,3,3) zero pad,
    conv.2 / conv.3 (3,1,1) replicate, then conv_last (3,1,1) replicate.
    """

    def __init__(self, channels, layout="conv4", dropout=0.1, operations=TORCH_OPS, dtype=None, device=None):
        super().__init__()
        kw = factory(dtype, device)
        self.layout = layout

        def stage(kernel, padding, first=False, mode="zeros"):
            layers = [operations.GroupNorm(32, channels, **kw), nn.SiLU()]
            if not first:
                layers.append(nn.Dropout(dropout))
            layers.append(operations.Conv3d(channels, channels, kernel, padding=padding, padding_mode=mode, **kw))
            return nn.Sequential(*layers)

        t_kernel, t_pad = (3, 1, 1), (1, 0, 0)
        if layout == "conv4":
            self.conv1 = stage(t_kernel, t_pad, first=True)
            self.conv2 = stage(t_kernel, t_pad)
            self.conv3 = stage(t_kernel, t_pad)
            self.conv4 = stage(t_kernel, t_pad)
        elif layout == "myv":
            self.conv = nn.Sequential(stage(t_kernel, t_pad, first=True, mode="replicate"),
                                      stage((1, 3, 3), (0, 1, 1)),
                                      stage(t_kernel, t_pad, mode="replicate"),
                                      stage(t_kernel, t_pad, mode="replicate"))
            self.conv_last = stage(t_kernel, t_pad, mode="replicate")
        else:
            raise ValueError(f"unknown temporal conv layout '{layout}'")

    def forward(self, x):
        identity = x
        if self.layout == "conv4":
            x = self.conv4(self.conv3(self.conv2(self.conv1(x))))
        else:
            x = self.conv_last(self.conv(x))
        return identity + x


class ResBlock(nn.Module):
    def __init__(self, channels, emb_channels, out_channels=None, temporal_conv=False, temporal_layout="conv4",
                 operations=TORCH_OPS, dtype=None, device=None):
        super().__init__()
        kw = factory(dtype, device)
        out_channels = out_channels or channels
        self.in_layers = nn.Sequential(group_norm32(operations, channels, **kw), nn.SiLU(),
                                       operations.Conv2d(channels, out_channels, 3, padding=1, **kw))
        self.emb_layers = nn.Sequential(nn.SiLU(), operations.Linear(emb_channels, out_channels, **kw))
        self.out_layers = nn.Sequential(group_norm32(operations, out_channels, **kw), nn.SiLU(), nn.Dropout(0.0),
                                        operations.Conv2d(out_channels, out_channels, 3, padding=1, **kw))
        if out_channels == channels:
            self.skip_connection = nn.Identity()
        else:
            self.skip_connection = operations.Conv2d(channels, out_channels, 1, **kw)
        self.use_temporal_conv = temporal_conv
        if temporal_conv:
            self.temopral_conv = TemporalConvBlock(out_channels, temporal_layout, operations=operations, **kw)

    def forward(self, x, emb, frames):
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).to(h.dtype)[..., None, None]
        h = self.skip_connection(x) + self.out_layers(h)
        if self.use_temporal_conv:
            bt, c, hh, ww = h.shape
            h5 = h.view(bt // frames, frames, c, hh, ww).transpose(1, 2)
            h = self.temopral_conv(h5).transpose(1, 2).reshape(bt, c, hh, ww)
        return h


class Downsample(nn.Module):
    def __init__(self, channels, operations=TORCH_OPS, dtype=None, device=None):
        super().__init__()
        self.op = operations.Conv2d(channels, channels, 3, stride=2, padding=1, **factory(dtype, device))

    def forward(self, x):
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels, operations=TORCH_OPS, dtype=None, device=None):
        super().__init__()
        self.conv = operations.Conv2d(channels, channels, 3, padding=1, **factory(dtype, device))

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Block(nn.ModuleList):
    """One `input_blocks.i` / `middle_block` / `output_blocks.i` entry (the official TimestepEmbedSequential)."""

    def forward(self, x, emb, context, frames):
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb, frames)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            elif isinstance(layer, TemporalTransformer):
                bt, c, h, w = x.shape
                x5 = x.view(bt // frames, frames, c, h, w).transpose(1, 2)
                x = layer(x5).transpose(1, 2).reshape(bt, c, h, w)
            else:
                x = layer(x)
        return x


class UNetModel(nn.Module):
    """forward(x [B, C, T, H, W], timesteps [B], context [B, L, D], fs=None) -> [B, out_channels, T, H, W].

    `fs` is DynamiCrafter's frame stride or VideoCrafter2's fps (both feed `fps_embedding`); None -> the config's
    default. DynamiCrafter contexts of length 77 + T*16 carry 16 image tokens per frame (frame-major).
    """

    def __init__(self, config: UNetConfig, operations=None, dtype=None, device=None):
        super().__init__()
        ops = operations or TORCH_OPS
        kw = factory(dtype, device)
        self.config = cfg = config
        self.dtype = dtype or torch.float32
        mc = cfg.model_channels
        emb_dim = mc * 4
        self.time_embed = nn.Sequential(ops.Linear(mc, emb_dim, **kw), nn.SiLU(), ops.Linear(emb_dim, emb_dim, **kw))
        if cfg.fs_condition:
            self.fps_embedding = nn.Sequential(ops.Linear(mc, emb_dim, **kw), nn.SiLU(),
                                               ops.Linear(emb_dim, emb_dim, **kw))

        def res(ch, out):
            return ResBlock(ch, emb_dim, out, cfg.temporal_conv, cfg.temporal_conv_layout, ops, **kw)

        def spatial(ch):
            heads = ch // cfg.num_head_channels
            return SpatialTransformer(ch, heads, cfg.num_head_channels, cfg.transformer_depth, cfg.context_dim,
                                      cfg.use_linear, cfg.image_cross_attention,
                                      cfg.image_cross_attention_scale_learnable, cfg.truncate_text_context,
                                      cfg.text_context_len, ops, **kw)

        def temporal(ch, heads=None, use_linear=None, causal=None):
            heads = heads or ch // cfg.num_head_channels
            causal = cfg.use_causal_attention if causal is None else causal
            return TemporalTransformer(ch, heads, cfg.num_head_channels, cfg.transformer_depth,
                                       cfg.use_linear if use_linear is None else use_linear,
                                       cfg.use_relative_position, cfg.temporal_length, causal,
                                       cfg.causal_window if causal else 0, ops, **kw)

        self.input_blocks = nn.ModuleList([Block([ops.Conv2d(cfg.in_channels, mc, 3, padding=1, **kw)])])
        if cfg.addition_attention:
            # The official init_attn: 8 heads hard-coded, Conv1d projections (use_linear is not passed), not causal.
            self.init_attn = Block([temporal(mc, heads=8, use_linear=False, causal=False)])
        chans, ch, ds = [mc], mc, 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers = [res(ch, mult * mc)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers.append(spatial(ch))
                    if cfg.temporal_attention:
                        layers.append(temporal(ch))
                self.input_blocks.append(Block(layers))
                chans.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(Block([Downsample(ch, ops, **kw)]))
                chans.append(ch)
                ds *= 2
        middle = [res(ch, ch), spatial(ch)]
        if cfg.temporal_attention:
            middle.append(temporal(ch))
        middle.append(res(ch, ch))
        self.middle_block = Block(middle)
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(cfg.channel_mult))[::-1]:
            for i in range(cfg.num_res_blocks + 1):
                layers = [res(ch + chans.pop(), mult * mc)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers.append(spatial(ch))
                    if cfg.temporal_attention:
                        layers.append(temporal(ch))
                if level and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch, ops, **kw))
                    ds //= 2
                self.output_blocks.append(Block(layers))
        self.out = nn.Sequential(group_norm32(ops, ch, **kw), nn.SiLU(),
                                 ops.Conv2d(mc, cfg.out_channels, 3, padding=1, **kw))

    def frame_context(self, context: torch.Tensor, frames: int) -> torch.Tensor:
        """Per-frame cross-attention context [(b t), L, D]: text repeated per frame, and for DynamiCrafter's
        77 + T*16 layout each frame's own 16 image tokens."""
        n_text, per_frame = self.config.text_context_len, self.config.image_tokens_per_frame
        if self.config.image_cross_attention and context.shape[1] == n_text + frames * per_frame:
            b, _, d = context.shape
            text = context[:, :n_text].repeat_interleave(frames, dim=0)
            image = context[:, n_text:].reshape(b * frames, per_frame, d)
            return torch.cat([text, image], dim=1)
        return context.repeat_interleave(frames, dim=0)

    def forward(self, x, timesteps, context=None, fs=None, **kwargs):
        b, _, t, h, w = x.shape
        cfg = self.config
        dtype = x.dtype
        emb = self.time_embed(timestep_embedding(timesteps, cfg.model_channels).to(dtype))
        if cfg.fs_condition:
            if fs is None:
                fs = cfg.default_fs
            if not torch.is_tensor(fs):
                fs = torch.full((b,), int(fs), dtype=torch.long, device=x.device)
            fs = fs.reshape(-1).to(x.device)
            if fs.numel() == 1 and b > 1:
                fs = fs.expand(b)
            emb = emb + self.fps_embedding(timestep_embedding(fs, cfg.model_channels).to(dtype))
        emb = emb.repeat_interleave(t, dim=0)
        context = self.frame_context(context, t)

        hcur = video_to_rows(x)
        skips = []
        for index, block in enumerate(self.input_blocks):
            hcur = block(hcur, emb, context, t)
            if index == 0 and cfg.addition_attention:
                hcur = self.init_attn(hcur, emb, context, t)
            skips.append(hcur)
        hcur = self.middle_block(hcur, emb, context, t)
        for block in self.output_blocks:
            hcur = block(torch.cat([hcur, skips.pop()], dim=1), emb, context, t)
        return rows_to_video(self.out(hcur), t)
