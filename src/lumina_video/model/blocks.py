"""Transformer block (sandwich norm, adaLN scale + gate) and the per-patch final layer (docs/REFERENCE.md §1)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Attention


def ffn_hidden_dim(dim: int, multiple_of: int, ffn_dim_multiplier: float | None) -> int:
    """h = int(2 * 4 * dim / 3), times the multiplier if any, rounded up to `multiple_of` (2304 -> 6144)."""
    h = int(2 * 4 * dim / 3)
    if ffn_dim_multiplier:
        h = int(ffn_dim_multiplier * h)
    return multiple_of * ((h + multiple_of - 1) // multiple_of)


def per_token(modulation: torch.Tensor) -> torch.Tensor:
    """adaLN values of a per-item condition (B, k) as (B, 1, k), broadcast over tokens; per-token (B, L, k) as is."""
    return modulation[:, None] if modulation.dim() == 2 else modulation


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight [* scale], the statistic in fp32.

    `scale` (optional, broadcast against x, e.g. adaLN's (B, 1, dim) 1 + s) multiplies the result.
    - fp32 x and weight: torch's `rms_norm` (the formula as written), then `* scale`.
    - half-precision x and weight of the same dtype: mean(x^2) summed in fp32 from the squares in x's
      dtype (rounding of the squares is unbiased: the mean's relative error is ~2^-9 / sqrt(dim)), the
      factor rsqrt(.) per row cast to x's dtype, then x * factor * (weight * scale): four passes over x,
      no fp32 copy of it (torch's composite rms_norm makes two), the (1 + s) product folded into the weight.
    - mixed dtypes (training's bf16 autocast over fp32 weights): the unfused formula, promoted to fp32."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x, scale: torch.Tensor | None = None):
        if x.dtype == self.weight.dtype == torch.float32:
            out = F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        elif x.dtype == self.weight.dtype:
            mean_sq = torch.sum(x.square(), dim=-1, keepdim=True, dtype=torch.float32) / x.shape[-1]
            weight = self.weight if scale is None else self.weight * scale
            return (x * torch.rsqrt(mean_sq + self.eps).to(x.dtype)).mul_(weight)
        else:
            xf = x.float()
            out = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight
        return out if scale is None else out * scale


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x):
        return self.w2(nn.functional.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    """One Next-DiT block: sandwich-normed attention and SwiGLU FFN, each scaled and gated by adaLN.

    dim:                width of the token stream.
    n_heads, n_kv_heads: query heads and key/value heads (grouped-query attention).
    multiple_of, ffn_dim_multiplier: FFN width rule (`ffn_hidden_dim`).
    norm_eps:           epsilon of the five RMSNorms.
    qk_norm:            LayerNorm on queries and keys.
    cap_feat_dim:       width of the caption features the attention reads.
    cond_dim:           width of the conditioning vector c (min(dim, 1024)).
    """

    def __init__(self, dim: int, n_heads: int, n_kv_heads: int, multiple_of: int,
                 ffn_dim_multiplier: float | None, norm_eps: float, qk_norm: bool, cap_feat_dim: int,
                 cond_dim: int):
        super().__init__()
        self.attention = Attention(dim, n_heads, n_kv_heads, cap_feat_dim, qk_norm)
        self.feed_forward = FeedForward(dim, ffn_hidden_dim(dim, multiple_of, ffn_dim_multiplier))
        self.attention_norm1 = RMSNorm(dim, norm_eps)
        self.attention_norm2 = RMSNorm(dim, norm_eps)
        self.ffn_norm1 = RMSNorm(dim, norm_eps)
        self.ffn_norm2 = RMSNorm(dim, norm_eps)
        self.attention_y_norm = RMSNorm(cap_feat_dim, norm_eps)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 4 * dim))

    def caption_kv(self, cap_feats: torch.Tensor, cap_freqs: torch.Tensor | None = None) -> tuple:
        """This block's caption keys and values (B, S, n_kv_heads, head_dim) of cap_feats (B, S, cap_feat_dim):
        a function of the caption alone, so a sampler may compute them once per generation."""
        return self.attention.caption_kv(self.attention_y_norm(cap_feats), cap_freqs)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor | None, freqs: torch.Tensor, cap_feats: torch.Tensor,
                cap_mask: torch.Tensor, c: torch.Tensor, cap_freqs: torch.Tensor | None = None,
                cap_kv: tuple | None = None) -> torch.Tensor:
        """x (B, L, dim), x_mask (B, L) bool or None (all real), freqs (B, L, head_dim/2) complex RoPE
        factors, cap_feats (B, S, cap_feat_dim), cap_mask (B, S) bool, c (B, cond_dim) per item or
        (B, L, cond_dim) per token (adaLN with a per-token condition), cap_freqs (B, S, head_dim/2) complex
        rotations of the caption keys or None (none), cap_kv: `caption_kv(cap_feats, cap_freqs)` computed
        beforehand or None -> (B, L, dim).

        x += tanh(g_msa) * norm2(attn(norm1(x) * (1 + s_msa)))
        x += tanh(g_mlp) * norm2(ffn(norm1(x) * (1 + s_mlp)))"""
        scale_msa, gate_msa, scale_mlp, gate_mlp = per_token(self.adaLN_modulation(c)).chunk(4, dim=-1)
        if cap_kv is None:
            cap_kv = self.caption_kv(cap_feats, cap_freqs)
        h = self.attention(self.attention_norm1(x, 1 + scale_msa), x_mask, freqs, None, cap_mask, y_kv=cap_kv)
        x = torch.addcmul(x, torch.tanh(gate_msa), self.attention_norm2(h))
        h = self.feed_forward(self.ffn_norm1(x, 1 + scale_mlp))
        return torch.addcmul(x, torch.tanh(gate_mlp), self.ffn_norm2(h))


class FinalLayer(nn.Module):
    """LayerNorm (no affine) times (1 + scale), then a linear projection to patch pixels."""

    def __init__(self, dim: int, out_dim: int, cond_dim: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, out_dim)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, dim))

    def forward(self, x, c):  # (B, L, dim), (B, cond_dim) or (B, L, cond_dim) -> (B, L, out_dim)
        scale = per_token(self.adaLN_modulation(c))
        return self.linear(self.norm_final(x) * (1 + scale))
