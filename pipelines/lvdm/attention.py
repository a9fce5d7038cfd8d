"""Attention blocks of the LVDM UNet: spatial and temporal transformers with the official parameter names.

Attention runs through `torch.nn.functional.scaled_dot_product_attention` (memory-efficient / flash kernels where
the device has them). The one exception is relative-position attention (VideoCrafter1, Make-Your-Video temporal
layers): its value term needs the attention probabilities themselves, which SDPA does not return, so it is computed
explicitly; those sequences are the frames (16-24 long), so the explicit form costs little.
"""
from __future__ import annotations

import math
import types

import torch
import torch.nn.functional as F
from torch import nn

TORCH_OPS = types.SimpleNamespace(Linear=nn.Linear, Conv1d=nn.Conv1d, Conv2d=nn.Conv2d, Conv3d=nn.Conv3d,
                                  GroupNorm=nn.GroupNorm, LayerNorm=nn.LayerNorm)


def factory(dtype=None, device=None) -> dict:
    return {"dtype": dtype, "device": device}


class RelativePosition(nn.Module):
    """Learned embeddings of the clipped offset j - i (table [2 * max + 1, head width])."""

    def __init__(self, num_units: int, max_relative_position: int, dtype=None, device=None):
        super().__init__()
        self.max_relative_position = max_relative_position
        self.embeddings_table = nn.Parameter(torch.empty(2 * max_relative_position + 1, num_units, dtype=dtype,
                                                         device=device))
        if self.embeddings_table.device.type != "meta":
            nn.init.xavier_uniform_(self.embeddings_table)

    def forward(self, length_q: int, length_k: int, like: torch.Tensor) -> torch.Tensor:
        # A plain Parameter (not a ComfyUI op): ComfyUI's low-VRAM mode may leave it on the offload device.
        table = self.embeddings_table.to(device=like.device, dtype=like.dtype)
        offsets = torch.arange(length_k, device=like.device)[None, :] - torch.arange(length_q, device=like.device)[:, None]
        index = offsets.clamp(-self.max_relative_position, self.max_relative_position) + self.max_relative_position
        return table[index]                                  # [Lq, Lk, d]


class CrossAttention(nn.Module):
    """Multi-head attention with the official names (`to_q`, `to_k`, `to_v`, `to_out.0`, `to_k_ip`, ...).

    `image_cross_attention` (DynamiCrafter): the context is 77 text tokens then image tokens; the image tokens get
    their own keys/values and softmax with the same queries, and the two results add, the image one gated by
    `tanh(alpha) + 1` when the gate is learnable (256). `truncate_text_context`: DynamiCrafter keeps only the first 77
    context tokens when the layer has no image branch.
    """

    def __init__(self, query_dim, context_dim=None, heads=8, dim_head=64, relative_position=False,
                 temporal_length=None, image_cross_attention=False, image_cross_attention_scale_learnable=False,
                 truncate_text_context=False, text_context_len=77, operations=TORCH_OPS, dtype=None, device=None):
        super().__init__()
        inner = heads * dim_head
        context_dim = context_dim or query_dim
        kw = factory(dtype, device)
        self.heads, self.dim_head = heads, dim_head
        self.scale = dim_head ** -0.5
        self.to_q = operations.Linear(query_dim, inner, bias=False, **kw)
        self.to_k = operations.Linear(context_dim, inner, bias=False, **kw)
        self.to_v = operations.Linear(context_dim, inner, bias=False, **kw)
        self.to_out = nn.Sequential(operations.Linear(inner, query_dim, **kw), nn.Dropout(0.0))
        self.relative_position = relative_position
        if relative_position:
            self.relative_position_k = RelativePosition(dim_head, temporal_length, **kw)
            self.relative_position_v = RelativePosition(dim_head, temporal_length, **kw)
        self.image_cross_attention = image_cross_attention
        self.learnable_gate = image_cross_attention and image_cross_attention_scale_learnable
        self.truncate_text_context = truncate_text_context
        self.text_context_len = text_context_len
        if image_cross_attention:
            self.to_k_ip = operations.Linear(context_dim, inner, bias=False, **kw)
            self.to_v_ip = operations.Linear(context_dim, inner, bias=False, **kw)
            if self.learnable_gate:
                self.alpha = nn.Parameter(torch.zeros((), **kw))

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.heads, self.dim_head).transpose(1, 2)

    def _merge(self, t: torch.Tensor) -> torch.Tensor:
        b, h, n, d = t.shape
        return t.transpose(1, 2).reshape(b, n, h * d)

    def split_context(self, x, context):
        """(keys/values source, image tokens or None): self-attention, DynamiCrafter's text | image split, or its
        77-token truncation."""
        if context is None:
            return x, None
        if self.image_cross_attention:
            return context[:, :self.text_context_len], context[:, self.text_context_len:]
        if self.truncate_text_context:
            return context[:, :self.text_context_len], None
        return context, None

    def forward(self, x, context=None, mask=None):
        q = self.to_q(x)
        context, image_context = self.split_context(x, context)
        q, k, v = self._heads(q), self._heads(self.to_k(context)), self._heads(self.to_v(context))

        if self.relative_position:
            out = self._relative_attention(q, k, v, mask)
        else:
            attn_mask = None if mask is None else mask.to(torch.bool)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = self._merge(out)

        if image_context is not None:
            k_ip, v_ip = self._heads(self.to_k_ip(image_context)), self._heads(self.to_v_ip(image_context))
            out_ip = self._merge(F.scaled_dot_product_attention(q, k_ip, v_ip))
            if self.learnable_gate:
                out_ip = out_ip * (torch.tanh(self.alpha.to(device=out_ip.device, dtype=out_ip.dtype)) + 1)
            out = out + out_ip
        return self.to_out(out)

    def _relative_attention(self, q, k, v, mask):
        lq, lk = q.shape[2], k.shape[2]
        e_k = self.relative_position_k(lq, lk, q)                          # [lq, lk, d]
        e_v = self.relative_position_v(lq, lk, q)
        sim = (q @ k.transpose(-1, -2) + torch.einsum("bhid,ijd->bhij", q, e_k)) * self.scale
        if mask is not None:
            sim = sim.masked_fill(~mask.to(torch.bool), -torch.finfo(sim.dtype).max)
        probs = sim.softmax(dim=-1)
        return probs @ v + torch.einsum("bhij,ijd->bhid", probs, e_v)


class GEGLU(nn.Module):
    def __init__(self, dim_in, dim_out, operations=TORCH_OPS, dtype=None, device=None):
        super().__init__()
        self.proj = operations.Linear(dim_in, dim_out * 2, **factory(dtype, device))

    def forward(self, x):
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4, operations=TORCH_OPS, dtype=None, device=None):
        super().__init__()
        inner = int(dim * mult)
        self.net = nn.Sequential(GEGLU(dim, inner, operations, dtype, device), nn.Dropout(0.0),
                                 operations.Linear(inner, dim, **factory(dtype, device)))

    def forward(self, x):
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """attn1 (self) -> attn2 (cross, or self when context is None) -> GEGLU feed-forward, pre-LayerNorm."""

    def __init__(self, dim, n_heads, d_head, context_dim=None, attn1_kwargs=None, attn2_kwargs=None,
                 operations=TORCH_OPS, dtype=None, device=None):
        super().__init__()
        kw = factory(dtype, device)
        self.attn1 = CrossAttention(dim, None, n_heads, d_head, operations=operations, **(attn1_kwargs or {}), **kw)
        self.ff = FeedForward(dim, operations=operations, **kw)
        self.attn2 = CrossAttention(dim, context_dim, n_heads, d_head, operations=operations, **(attn2_kwargs or {}),
                                    **kw)
        self.norm1 = operations.LayerNorm(dim, **kw)
        self.norm2 = operations.LayerNorm(dim, **kw)
        self.norm3 = operations.LayerNorm(dim, **kw)

    def forward(self, x, context=None, mask=None):
        x = self.attn1(self.norm1(x), mask=mask) + x
        x = self.attn2(self.norm2(x), context=context, mask=mask) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """Per-frame transformer over the h*w tokens, cross-attending to the (per-frame) context."""

    def __init__(self, in_channels, n_heads, d_head, depth=1, context_dim=None, use_linear=True,
                 image_cross_attention=False, image_cross_attention_scale_learnable=False,
                 truncate_text_context=False, text_context_len=77, operations=TORCH_OPS, dtype=None, device=None):
        super().__init__()
        kw = factory(dtype, device)
        inner = n_heads * d_head
        self.use_linear = use_linear
        self.norm = operations.GroupNorm(32, in_channels, eps=1e-6, affine=True, **kw)
        if use_linear:
            self.proj_in = operations.Linear(in_channels, inner, **kw)
        else:
            self.proj_in = operations.Conv2d(in_channels, inner, kernel_size=1, **kw)
        cross = dict(image_cross_attention=image_cross_attention,
                     image_cross_attention_scale_learnable=image_cross_attention_scale_learnable,
                     truncate_text_context=truncate_text_context, text_context_len=text_context_len)
        self.transformer_blocks = nn.ModuleList([
            BasicTransformerBlock(inner, n_heads, d_head, context_dim=context_dim, attn2_kwargs=cross,
                                  operations=operations, **kw) for _ in range(depth)])
        if use_linear:
            self.proj_out = operations.Linear(inner, in_channels, **kw)
        else:
            self.proj_out = operations.Conv2d(inner, in_channels, kernel_size=1, **kw)

    def forward(self, x, context=None):
        b, c, h, w = x.shape
        x_in = x
        x = self.norm(x)
        if not self.use_linear:
            x = self.proj_in(x)
        x = x.flatten(2).transpose(1, 2)
        if self.use_linear:
            x = self.proj_in(x)
        for block in self.transformer_blocks:
            x = block(x, context=context)
        if self.use_linear:
            x = self.proj_out(x)
        x = x.transpose(1, 2).reshape(b, -1, h, w)
        if not self.use_linear:
            x = self.proj_out(x)
        return x + x_in


def temporal_mask(frames: int, causal: bool, window: int, device=None) -> torch.Tensor | None:
    """The official temporal masks: lower-triangular (VideoCrafter/DynamiCrafter `use_causal_attention`) or
    Make-Your-Video's sliding causal window (frame i attends to frames i-window+1 .. i)."""
    if not causal:
        return None
    i = torch.arange(frames, device=device)[:, None]
    j = torch.arange(frames, device=device)[None, :]
    allowed = j <= i
    if window:
        allowed = allowed & (j > i - window)
    return allowed


class TemporalTransformer(nn.Module):
    """Transformer along the frame axis at every spatial position: batch = b*h*w, sequence = frames.

    Both attn1 and attn2 are temporal self-attention in every published checkpoint (`temporal_selfatt_only`); the
    optional causal mask applies to both, as in the official code.
    """

    def __init__(self, in_channels, n_heads, d_head, depth=1, use_linear=False, relative_position=False,
                 temporal_length=16, causal_attention=False, causal_window=0, operations=TORCH_OPS, dtype=None,
                 device=None):
        super().__init__()
        kw = factory(dtype, device)
        inner = n_heads * d_head
        self.use_linear = use_linear
        self.causal_attention, self.causal_window = causal_attention, causal_window
        self.norm = operations.GroupNorm(32, in_channels, eps=1e-6, affine=True, **kw)
        if use_linear:
            self.proj_in = operations.Linear(in_channels, inner, **kw)
            self.proj_out = operations.Linear(inner, in_channels, **kw)
        else:
            self.proj_in = operations.Conv1d(in_channels, inner, kernel_size=1, **kw)
            self.proj_out = operations.Conv1d(inner, in_channels, kernel_size=1, **kw)
        attn = dict(relative_position=relative_position, temporal_length=temporal_length)
        self.transformer_blocks = nn.ModuleList([
            BasicTransformerBlock(inner, n_heads, d_head, context_dim=None, attn1_kwargs=attn, attn2_kwargs=attn,
                                  operations=operations, **kw) for _ in range(depth)])

    def forward(self, x):
        b, c, t, h, w = x.shape
        x_in = x
        x = self.norm(x)
        x = x.permute(0, 3, 4, 1, 2).reshape(b * h * w, c, t)          # (b h w) c t
        if self.use_linear:
            x = self.proj_in(x.transpose(1, 2))
        else:
            x = self.proj_in(x).transpose(1, 2)
        mask = temporal_mask(t, self.causal_attention, self.causal_window, x.device)
        for block in self.transformer_blocks:
            x = block(x, mask=mask)
        if self.use_linear:
            x = self.proj_out(x).transpose(1, 2)
        else:
            x = self.proj_out(x.transpose(1, 2))
        x = x.reshape(b, h, w, c, t).permute(0, 3, 4, 1, 2)
        return x + x_in


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: int = 10000) -> torch.Tensor:
    """Sinusoidal embedding, [cos | sin] (cos first, as the official `timestep_embedding`)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb
