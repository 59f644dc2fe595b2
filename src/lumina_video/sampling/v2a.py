"""The V2A sampler: Euler on the project's shifted grid with classifier-free guidance over the conditions.

    grid t_0 = 0 < t_1 < ... < t_N = 1        flow.shifted_grid(N, shift) (t = 0 noise, t = 1 data)
    x_{k+1} = x_k + (t_{k+1} - t_k) v_k       N Euler steps from x_0 = noise
    v_k = guide(pos, neg, s)                  = pos + s (pos - neg) (sampling/guidance.py; effective weight
                                              1 + s, optional renorm); s = 0 skips the negative branch
    pos = model(x, t_k, conditions)           every condition present
    neg = model(x, t_k, conditions, drop_c)   the conditions named in `uncond` replaced by the model's
                                              learned empty embeddings (the drop flags trained with)

Both branches run as one batch of 2B. `conditions` holds the model's keyword inputs other than x and t
(visual, visual_times, text, text_mask, sync, sync_times and the optional masks), for B items; drop flags
passed in `conditions` (e.g. drop_text for a clip without caption) apply to both branches.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from ..flow import shifted_grid
from .guidance import guide

CONDITIONS = ("visual", "text", "sync")
_PER_ITEM = ("visual", "visual_mask", "text", "text_mask", "sync", "sync_mask", "drop_visual", "drop_text",
             "drop_sync")
_TIMES = ("visual_times", "sync_times")


def _doubled(conditions: dict, b: int, uncond: tuple[str, ...], device) -> dict:
    """The keyword inputs for the batch [pos ; neg] of 2B items."""
    out = {}
    for key, value in conditions.items():
        if value is None:
            out[key] = None
        elif key in _PER_ITEM or (key in _TIMES and value.dim() == 2):
            out[key] = torch.cat([value, value])
        else:
            out[key] = value  # shared (Fv,) / (Ns,) times
    for name in CONDITIONS:
        key = f"drop_{name}"
        given = conditions.get(key)
        base = torch.zeros(b, dtype=torch.bool, device=device) if given is None else given.to(device, torch.bool)
        neg = torch.ones_like(base) if name in uncond else base
        out[key] = torch.cat([base, neg])
    return out


def check_uncond(uncond) -> tuple[str, ...]:
    """The names of the conditions the negative branch drops; ValueError for an unknown one."""
    uncond = tuple(uncond)
    bad = [u for u in uncond if u not in CONDITIONS]
    if bad or not uncond:
        raise ValueError(f"uncond must name some of {list(CONDITIONS)}, got {list(uncond)}")
    return uncond


def v2a_velocity(model, x: torch.Tensor, t: float, conditions: dict, guidance: float,
                 uncond: tuple[str, ...], renorm: float | None = None) -> torch.Tensor:
    """The guided velocity (fp32, x's shape) at time t for the B latents x (B, C, T, M)."""
    b, dtype = x.shape[0], getattr(model, "dtype", x.dtype)
    if guidance == 0:
        tt = torch.full((b,), float(t), device=x.device)
        return model(x.to(dtype), tt, **conditions).float()
    both = _doubled(conditions, b, uncond, x.device)
    tt = torch.full((2 * b,), float(t), device=x.device)
    pos, neg = model(torch.cat([x, x]).to(dtype), tt, **both).float().chunk(2)
    return guide(pos, neg, guidance, renorm)


@torch.no_grad()
def sample_v2a(model, noise: torch.Tensor, conditions: dict, steps: int = 25, shift: float = 1.0,
               guidance: float = 0.0, uncond=CONDITIONS, renorm: float | None = None, progress: bool = False,
               callback: Callable[[int, float, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Integrate noise (B, C, T, M) at t = 0 to audio latents at t = 1 (fp32, noise's shape); see the module
    docstring. `callback(step, t, x)` runs after every step."""
    if noise.dim() != 4:
        raise ValueError(f"noise has shape {tuple(noise.shape)}; expected (B, C, T, M) audio latents")
    if guidance < 0:
        raise ValueError(f"guidance must be >= 0 (0: no guidance), got {guidance}")
    uncond = check_uncond(uncond)
    grid = shifted_grid(steps, shift).tolist()
    x = noise.float()
    for k in tqdm(range(steps), desc="denoising", disable=not progress, leave=False):
        x = x + (grid[k + 1] - grid[k]) * v2a_velocity(model, x, grid[k], conditions, guidance, uncond, renorm)
        if callback is not None:
            callback(k, grid[k], x)
    return x
