"""The sampler: Euler on the shifted grid with motion-aware guidance and a patch-size schedule.

    grid t_0 = 0 < t_1 < ... < t_N = 1   (linspace shifted by `shift`, t = 0 noise, REFERENCE.md §2)
    x_{k+1} = x_k + (t_{k+1} - t_k) * v(x_k, t_k)             (N Euler steps, no extra final step)
    v = pos + s(t) * (pos - neg), renormalised               (REFERENCE.md §3; neg skipped when s(t) == 0)
    pos = model(x, t, prompt, motion(t), P(t)),  neg = model(x, t, negative prompt, neg_motion(t), P(t))
"""
from __future__ import annotations

from typing import Callable

import torch
from tqdm.auto import tqdm

from ..flow import shifted_grid
from ..model.embed import check_divisible
from .config import SamplingConfig
from .guidance import guide
from .schedule import patch_name


def step_plan(config: SamplingConfig) -> list[dict]:
    """Per Euler step: t, dt, patch (pt, p), guidance scale, motion and negative motion."""
    grid = shifted_grid(config.steps, config.shift).tolist()
    plan = []
    for k in range(config.steps):
        t = grid[k]
        plan.append(dict(t=t, dt=grid[k + 1] - t, patch=config.patch(t), guidance=config.guidance(t),
                         motion=config.motion(t), neg_motion=config.neg_motion(t)))
    return plan


def check_sampling_inputs(model, noise, cap_feats, cap_mask, config: SamplingConfig) -> None:
    if noise.dim() != 5:
        raise ValueError(f"noise has shape {tuple(noise.shape)}; expected (B, C, F, H, W)")
    b = noise.shape[0]
    needs_negative = any(s != 0 for s in config.guidance.values())
    rows = cap_feats.shape[0]
    if rows != 2 * b and not (rows == b and not needs_negative):
        raise ValueError(
            f"cap_feats has {rows} rows for a batch of {b}: expected {2 * b} (rows [0:{b}] the prompts, "
            f"[{b}:{2 * b}] the negative prompts)" + ("" if needs_negative else f", or {b} without guidance")
        )
    if cap_mask.shape[0] != rows:
        raise ValueError(f"cap_mask has {cap_mask.shape[0]} rows but cap_feats has {rows}")
    for pt, p in config.patch_shapes():
        if hasattr(model, "has_patch") and not model.has_patch(p, pt):
            have = getattr(model, "patch_shapes", "?")
            raise ValueError(f"the sampling schedule uses patch {patch_name((pt, p))} (pt={pt}, p={p}) "
                             f"which the model does not have; it has (pt, p) = {have}")
        check_divisible(tuple(noise.shape[1:]), pt, p, what=f"the latent for patch {patch_name((pt, p))}")


def _motion_tensor(value, n, device):
    return torch.full((n,), -1.0 if value is None else float(value), device=device)


@torch.no_grad()
def sample(model, noise: torch.Tensor, cap_feats: torch.Tensor, cap_mask: torch.Tensor,
           config: SamplingConfig, progress: bool = False,
           callback: Callable[[int, float, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Integrate from noise (t = 0) to data (t = 1). Returns the final latent (fp32, noise's shape).

    cap_feats / cap_mask rows [0:B] hold the prompts and [B:2B] the negative prompts (the negative
    rows may be left out when the guidance scale is 0 throughout). `callback(step, t, x)` runs after
    every step.
    """
    check_sampling_inputs(model, noise, cap_feats, cap_mask, config)
    b = noise.shape[0]
    device = noise.device
    model_dtype = getattr(model, "dtype", noise.dtype)
    x = noise.float()
    plan = step_plan(config)
    for k, st in enumerate(tqdm(plan, desc="denoising", disable=not progress, leave=False)):
        pt, p = st["patch"]
        s = st["guidance"]
        if s == 0:
            v = model(x.to(model_dtype), torch.full((b,), st["t"], device=device), cap_feats[:b], cap_mask[:b],
                      _motion_tensor(st["motion"], b, device), p, pt).float()
        else:
            xx = torch.cat([x, x]).to(model_dtype)
            motion = torch.cat([_motion_tensor(st["motion"], b, device), _motion_tensor(st["neg_motion"], b, device)])
            out = model(xx, torch.full((2 * b,), st["t"], device=device), cap_feats, cap_mask, motion, p, pt)
            pos, neg = out.float().chunk(2)
            v = guide(pos, neg, s, config.renorm)
        x = x + st["dt"] * v
        if callback is not None:
            callback(k, st["t"], x)
    return x
