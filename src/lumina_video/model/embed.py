"""Embedders (timestep, motion, caption) and patchify / unpatchify (docs/REFERENCE.md §1, forward steps 1-5)."""
from __future__ import annotations

import math

import torch
from torch import nn

FREQ_DIM = 256  # size of the sinusoidal features fed to the timestep / motion MLPs


def sinusoidal_features(t: torch.Tensor, dim: int = FREQ_DIM, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) -> (B, dim) fp32 features [cos(t * f_i), sin(t * f_i)], f_i = exp(-ln(max_period) i / (dim/2)).

    Cosines come first (the official ordering).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepEmbedder(nn.Module):
    """Scalar -> sinusoidal features -> Linear, SiLU, Linear. Used for both time and motion."""

    def __init__(self, hidden: int, freq_dim: int = FREQ_DIM):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:  # (B,) -> (B, hidden)
        """`dtype`: the compute dtype of the features (default: the first Linear's, which differs from
        the compute dtype only when its weights are stored in another one, as with layerwise casting)."""
        feats = sinusoidal_features(t, self.freq_dim).to(self.mlp[0].weight.dtype if dtype is None else dtype)
        return self.mlp(feats)


def caption_embedder(cap_feat_dim: int, hidden: int, eps: float) -> nn.Sequential:
    """Pooled caption -> LayerNorm -> Linear (keys `cap_embedder.0.*`, `cap_embedder.1.*`)."""
    return nn.Sequential(nn.LayerNorm(cap_feat_dim, eps=eps), nn.Linear(cap_feat_dim, hidden))


def masked_mean(cap_feats: torch.Tensor, cap_mask: torch.Tensor) -> torch.Tensor:
    """(B, L, D), (B, L) -> (B, D): mean over real tokens only."""
    m = cap_mask.to(cap_feats.dtype)[..., None]
    return (cap_feats * m).sum(dim=1) / m.sum(dim=1)


# ---------------------------------------------------------------------------------------------
# Patchify. A token's vector is ordered (pt, ph, pw, C) with C fastest; tokens ordered f, h, w.
# ---------------------------------------------------------------------------------------------


def token_grid(shape_cfhw, pt: int, p: int) -> tuple[int, int, int]:
    """Token grid (F', H', W') of a (C, F, H, W) item; an image (F == 1) counts as pt frames."""
    _, f, h, w = shape_cfhw
    f = pt if f == 1 else f
    return (f // pt, h // p, w // p)


def check_divisible(shape_cfhw, pt: int, p: int, what: str = "input") -> None:
    _, f, h, w = shape_cfhw
    bad = []
    if f != 1 and f % pt:
        bad.append(f"frames {f} not divisible by the temporal patch {pt} (or a single frame, an image)")
    if h % p:
        bad.append(f"height {h} not divisible by the spatial patch {p}")
    if w % p:
        bad.append(f"width {w} not divisible by the spatial patch {p}")
    if bad:
        raise ValueError(f"{what} of shape (C, F, H, W) = {tuple(shape_cfhw)}: " + "; ".join(bad))


def patchify(x: torch.Tensor, pt: int, p: int) -> torch.Tensor:
    """(B, C, F, H, W) -> (B, F/pt * H/p * W/p, pt*p*p*C). An image (F == 1) is repeated pt times."""
    b, c, f, h, w = x.shape
    if f == 1 and pt > 1:
        x = x.expand(b, c, pt, h, w)
        f = pt
    x = x.reshape(b, c, f // pt, pt, h // p, p, w // p, p)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # (B, F', H', W', pt, p, p, C)
    return x.reshape(b, (f // pt) * (h // p) * (w // p), pt * p * p * c)


def unpatchify(tokens: torch.Tensor, out_shape_cfhw, pt: int, p: int) -> torch.Tensor:
    """(B, N, pt*p*p*C) -> (B, C, F, H, W), the inverse of `patchify`; an image keeps its first frame."""
    c, f, h, w = out_shape_cfhw
    b = tokens.shape[0]
    fp = pt if f == 1 else f
    x = tokens.reshape(b, fp // pt, h // p, w // p, pt, p, p, c)
    x = x.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(b, c, fp, h, w)
    return x[:, :, :1] if f == 1 else x
