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


def _spatial(p) -> tuple[int, int]:
    """A spatial patch as (ph, pw): an int p is square (p, p)."""
    return (p, p) if isinstance(p, int) else (int(p[0]), int(p[1]))


def patchify(x: torch.Tensor, pt: int, p) -> torch.Tensor:
    """(B, C, F, H, W) -> (B, F/pt * H/ph * W/pw, pt*ph*pw*C), p = ph = pw or (ph, pw). An image (F == 1)
    is repeated pt times. The V2A model's audio latent (B, C, T, M) is patchified as (B, C, T, M, 1)."""
    b, c, f, h, w = x.shape
    ph, pw = _spatial(p)
    if f == 1 and pt > 1:
        x = x.expand(b, c, pt, h, w)
        f = pt
    x = x.reshape(b, c, f // pt, pt, h // ph, ph, w // pw, pw)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # (B, F', H', W', pt, ph, pw, C)
    return x.reshape(b, (f // pt) * (h // ph) * (w // pw), pt * ph * pw * c)


def unpatchify(tokens: torch.Tensor, out_shape_cfhw, pt: int, p) -> torch.Tensor:
    """(B, N, pt*ph*pw*C) -> (B, C, F, H, W), the inverse of `patchify`; an image keeps its first frame."""
    c, f, h, w = out_shape_cfhw
    ph, pw = _spatial(p)
    b = tokens.shape[0]
    fp = pt if f == 1 else f
    x = tokens.reshape(b, fp // pt, h // ph, w // pw, pt, ph, pw, c)
    x = x.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(b, c, fp, h, w)
    return x[:, :, :1] if f == 1 else x
