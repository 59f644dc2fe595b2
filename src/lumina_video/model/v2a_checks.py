"""Input checks of `V2ANextDiT.forward`: one-line ValueErrors saying what was given and what is accepted."""
from __future__ import annotations

import torch

from .v2a_config import V2AConfig


def _check_latent(cfg: V2AConfig, x: torch.Tensor) -> None:
    if x.dim() != 4 or x.shape[1] != cfg.in_channels:
        raise ValueError(f"x has shape {tuple(x.shape)}; expected (B, C={cfg.in_channels}, T, M) audio latents")
    _, _, n_t, n_m = x.shape
    bad = []
    if n_t % cfg.patch_time or n_t == 0:
        bad.append(f"time {n_t} is not a positive multiple of the time patch {cfg.patch_time}")
    if n_m % cfg.patch_freq or n_m == 0:
        bad.append(f"mel size {n_m} is not a positive multiple of the frequency patch {cfg.patch_freq}")
    if bad:
        raise ValueError(f"latent of shape (B, C, T, M) = {tuple(x.shape)}: " + "; ".join(bad))


def _check_features(name: str, feats: torch.Tensor, b: int, width: int, width_key: str) -> None:
    if feats.dim() != 3 or feats.shape[0] != b or feats.shape[2] != width or feats.shape[1] == 0:
        raise ValueError(f"{name} has shape {tuple(feats.shape)}; expected (B={b}, N >= 1, {width_key}={width})")


def _check_mask(name: str, mask, feats: torch.Tensor, need_real: bool = True) -> None:
    if mask is None:
        return
    if tuple(mask.shape) != tuple(feats.shape[:2]):
        raise ValueError(f"{name} has shape {tuple(mask.shape)}; expected {tuple(feats.shape[:2])}")
    if need_real and not bool((mask != 0).any(dim=1).all()):
        raise ValueError(f"every row of {name} needs at least one real entry (1); got an all-zero row")


def check_v2a_inputs(cfg: V2AConfig, x, t, visual, visual_mask, text, text_mask, sync, sync_mask, drops: dict):
    """Shapes and widths of the forward inputs (times are checked by `batch_times`)."""
    _check_latent(cfg, x)
    b = x.shape[0]
    if tuple(t.shape) != (b,):
        raise ValueError(f"t has shape {tuple(t.shape)}; expected ({b},) for a batch of {b}")
    _check_features("visual", visual, b, cfg.visual_feat_dim, "visual_feat_dim")
    _check_features("text", text, b, cfg.text_feat_dim, "text_feat_dim")
    _check_features("sync", sync, b, cfg.sync_width,
                    "sync_feat_dim + sync_timbre_dim" if cfg.sync_timbre_dim else "sync_feat_dim")
    _check_mask("visual_mask", visual_mask, visual)
    if text_mask is None:
        raise ValueError("text_mask is required: (B, L) with 1 for real text tokens")
    _check_mask("text_mask", text_mask, text)
    _check_mask("sync_mask", sync_mask, sync)
    for name, flag in drops.items():
        if flag is not None and tuple(flag.shape) != (b,):
            raise ValueError(f"{name} has shape {tuple(flag.shape)}; expected ({b},) bool, True = condition absent")
