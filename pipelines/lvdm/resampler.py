"""DynamiCrafter's `image_proj_model`: a Perceiver resampler from CLIP image tokens to 16 query tokens per frame.

The module tree mirrors the official checkpoint so `state_dict()` keys are exactly the published names (without
the 'image_proj_model.' prefix): `latents`, `proj_in`, `proj_out`, `norm_out`, `layers.{i}.0.*` (attention:
norm1, norm2, to_q, to_kv, to_out) and `layers.{i}.1.{0,1,3}` (feed-forward: LayerNorm, Linear, GELU, Linear).

`operations` is any namespace with `.Linear` and `.LayerNorm` taking `dtype=`/`device=` (ComfyUI's `comfy.ops`
classes fit); the default builds plain torch.nn layers.
"""
from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

TORCH_OPS = types.SimpleNamespace(Linear=nn.Linear, LayerNorm=nn.LayerNorm)


class PerceiverAttention(nn.Module):
    """Latents attend to cat(image tokens, latents); keys and values come from both, queries from the latents."""

    def __init__(self, dim, dim_head, heads, operations, dtype=None, device=None):
        super().__init__()
        self.heads = heads
        self.dim_head = dim_head
        inner = dim_head * heads
        kw = dict(dtype=dtype, device=device)
        self.norm1 = operations.LayerNorm(dim, **kw)
        self.norm2 = operations.LayerNorm(dim, **kw)
        self.to_q = operations.Linear(dim, inner, bias=False, **kw)
        self.to_kv = operations.Linear(dim, inner * 2, bias=False, **kw)
        self.to_out = operations.Linear(inner, dim, bias=False, **kw)

    def forward(self, x, latents):
        x = self.norm1(x)
        latents = self.norm2(latents)
        b, n, _ = latents.shape
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat((x, latents), dim=1)).chunk(2, dim=-1)
        q, k, v = (t.reshape(b, t.shape[1], self.heads, self.dim_head).transpose(1, 2) for t in (q, k, v))
        # The official code scales q and k by dim_head**-0.25 each and takes the softmax in fp32: the same product
        # as SDPA's 1/sqrt(dim_head) (SDPA's kernels accumulate the softmax in fp32 for half inputs too).
        out = F.scaled_dot_product_attention(q, k, v, scale=self.dim_head ** -0.5)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class Resampler(nn.Module):
    """`Resampler(dim, depth, dim_head, heads, num_queries, embedding_dim, output_dim, ff_mult, video_length)`.

    forward(x [B, N, embedding_dim]) -> [B, num_queries * video_length, output_dim]; token f*num_queries+q belongs
    to frame f. Official DynamiCrafter: dim 1024, depth 4, dim_head 64, heads 12, num_queries 16,
    embedding_dim 1280, output_dim 1024, ff_mult 4, video_length 16.
    """

    def __init__(self, dim=1024, depth=4, dim_head=64, heads=12, num_queries=16, embedding_dim=1280,
                 output_dim=1024, ff_mult=4, video_length=16, operations=None, dtype=None, device=None):
        super().__init__()
        ops = operations or TORCH_OPS
        kw = dict(dtype=dtype, device=device)
        self.num_queries = num_queries
        self.video_length = video_length
        total = num_queries * (video_length or 1)
        self.latents = nn.Parameter(torch.randn(1, total, dim, **kw) / dim ** 0.5)
        self.proj_in = ops.Linear(embedding_dim, dim, **kw)
        self.proj_out = ops.Linear(dim, output_dim, **kw)
        self.norm_out = ops.LayerNorm(output_dim, **kw)
        inner_ff = int(dim * ff_mult)
        self.layers = nn.ModuleList([
            nn.ModuleList([
                PerceiverAttention(dim, dim_head, heads, ops, **kw),
                nn.Sequential(ops.LayerNorm(dim, **kw), ops.Linear(dim, inner_ff, bias=False, **kw), nn.GELU(),
                              ops.Linear(inner_ff, dim, bias=False, **kw)),
            ]) for _ in range(depth)])

    def forward(self, x):
        x = self.proj_in(x)
        latents = self.latents.to(dtype=x.dtype, device=x.device).expand(x.shape[0], -1, -1)
        for attn, ff in self.layers:
            latents = attn(x, latents) + latents
            latents = ff(latents) + latents
        return self.norm_out(self.proj_out(latents))
