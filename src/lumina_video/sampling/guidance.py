"""Classifier-free guidance with renormalisation (REFERENCE.md §3).

    out = pos + s * (pos - neg)                      (effective weight 1 + s), in fp32
    if r > 0 and ||out|| > r * ||pos||:  out *= r * ||pos|| / ||out||     (per sample, all dims)
"""
from __future__ import annotations

import torch


def guide(pos: torch.Tensor, neg: torch.Tensor, scale: float, renorm: float | None = None) -> torch.Tensor:
    pos, neg = pos.float(), neg.float()
    out = pos + scale * (pos - neg)
    if renorm is not None and renorm > 0:
        out = renormalize(out, pos, renorm)
    return out


def renormalize(out: torch.Tensor, pos: torch.Tensor, ratio: float) -> torch.Tensor:
    """Cap each sample's norm at `ratio` times the positive branch's norm."""
    dims = tuple(range(1, out.dim()))
    max_norm = ratio * torch.linalg.vector_norm(pos, dim=dims, keepdim=True)
    norm = torch.linalg.vector_norm(out, dim=dims, keepdim=True)
    factor = torch.where(norm > max_norm, max_norm / norm.clamp_min(1e-12), torch.ones_like(norm))
    return out * factor
