"""The sampler: Euler on the shifted grid with motion-aware guidance and a patch-size schedule.

    grid t_0 = 0 < t_1 < ... < t_N = 1   (linspace shifted by `shift`, t = 0 noise, REFERENCE.md §2)
    x_{k+1} = x_k + (t_{k+1} - t_k) * v(x_k, t_k)             (N Euler steps, no extra final step)
    v = pos + s(t) * (pos - neg), renormalised               (REFERENCE.md §3; neg skipped when s(t) == 0)
    pos = model(x, t, prompt, motion(t), P(t)),  neg = model(x, t, negative prompt, neg_motion(t), P(t))

An optional step cache (step_cache.py) supplies v for some (step, prompt) pairs instead of the model,
and an optional ForwardCounts (forwards.py) counts the model calls actually made.

The model is called with its patch sizes by keyword (`patch_size=p, f_patch_size=pt`): the schedule
writes a patch as (pt, p), temporal first, while the model's signature is spatial first.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from ..flow import shifted_grid
from ..model.embed import check_divisible
from .config import SamplingConfig
from .forwards import ForwardCounts
from .guidance import guide
from .schedule import patch_name
from .step_cache import StepCache


class Step(NamedTuple):
    """One Euler step of a sampling run: from model time `t` to `t_next`, with the settings at `t`."""

    index: int
    t: float
    t_next: float
    patch: tuple[int, int]  # (pt, p)
    guidance: float  # 0: the negative branch is skipped
    motion: float | None  # positive-branch motion score (None: no motion condition)
    neg_motion: float | None  # negative-branch motion score

    @property
    def dt(self) -> float:
        return self.t_next - self.t


def step_plan(config: SamplingConfig) -> list[Step]:
    """The N Euler steps of `config`: the shifted grid and each time-aware setting evaluated at t."""
    grid = shifted_grid(config.steps, config.shift).tolist()
    return [Step(k, t, grid[k + 1], config.patch(t), config.guidance(t), config.motion(t), config.neg_motion(t))
            for k, t in enumerate(grid[:-1])]


def check_sampling_inputs(model, noise, cap_feats, cap_mask, config: SamplingConfig) -> None:
    """Raise ValueError unless `sample` can run: a 5-D latent, 2B caption rows (B without guidance),
    and every patch of the schedule present in the model and dividing the latent."""
    if noise.dim() != 5:
        raise ValueError(f"noise has shape {tuple(noise.shape)}; expected (B, C, F, H, W)")
    b = noise.shape[0]
    needs_negative = config.is_guided()
    rows = cap_feats.shape[0]
    if rows != 2 * b and not (rows == b and not needs_negative):
        raise ValueError(
            f"cap_feats has {rows} rows for a batch of {b}: expected {2 * b} (rows [0:{b}] the prompts, "
            f"[{b}:{2 * b}] the negative prompts)" + ("" if needs_negative else f", or {b} without guidance")
        )
    if cap_mask.shape[0] != rows:
        raise ValueError(f"cap_mask has {cap_mask.shape[0]} rows but cap_feats has {rows}")
    for pt, p in config.patch_shapes():
        if hasattr(model, "has_patch") and not model.has_patch(patch_size=p, f_patch_size=pt):
            have = getattr(model, "patch_shapes", "?")
            raise ValueError(f"the sampling schedule uses patch {patch_name((pt, p))} (pt={pt}, p={p}) "
                             f"which the model does not have; it has (pt, p) = {have}")
        check_divisible(tuple(noise.shape[1:]), pt, p, what=f"the latent for patch {patch_name((pt, p))}")


def _motion_tensor(value, n, device):
    return torch.full((n,), -1.0 if value is None else float(value), device=device)


def velocity(model, x: torch.Tensor, step: Step, cap_feats: torch.Tensor, cap_mask: torch.Tensor,
             renorm: float | None, model_dtype: torch.dtype) -> torch.Tensor:
    """The (guided) velocity at `step` for the fp32 latent `x` of B items, in fp32: the prompts' branch
    alone when the step's guidance is 0, else both branches in one batch of 2B and `guide`."""
    b, device = x.shape[0], x.device
    pt, p = step.patch
    if step.guidance == 0:
        t = torch.full((b,), step.t, device=device)
        motion = _motion_tensor(step.motion, b, device)
        return model(x.to(model_dtype), t, cap_feats[:b], cap_mask[:b], motion,
                     patch_size=p, f_patch_size=pt).float()
    both = torch.cat([x, x]).to(model_dtype)
    t = torch.full((2 * b,), step.t, device=device)
    motion = torch.cat([_motion_tensor(step.motion, b, device), _motion_tensor(step.neg_motion, b, device)])
    out = model(both, t, cap_feats, cap_mask, motion, patch_size=p, f_patch_size=pt)
    pos, neg = out.float().chunk(2)
    return guide(pos, neg, step.guidance, renorm)


def _caption_rows(cap_feats, cap_mask, rows: torch.Tensor | None, b: int) -> tuple:
    """The caption rows of the prompts `rows` (None: all): [rows] then [B + rows] when the negative
    prompts are there."""
    if rows is None:
        return cap_feats, cap_mask
    select = torch.cat([rows, rows + b]) if cap_feats.shape[0] == 2 * b else rows
    return cap_feats[select], cap_mask[select]


def _step_velocity(model, x, step: Step, cap_feats, cap_mask, config: SamplingConfig, model_dtype,
                   step_cache: StepCache | None, counts: ForwardCounts | None) -> torch.Tensor:
    """The velocity of step `step`: the model on every prompt, or the step cache's choice of prompts."""
    b, computed = x.shape[0], [0]

    def compute(rows):
        xs = x if rows is None else x[rows]
        feats, mask = _caption_rows(cap_feats, cap_mask, rows, b)
        computed[0] += xs.shape[0]
        if counts is not None:
            counts.add_call(step.patch, xs.shape[0] * (1 if step.guidance == 0 else 2))
        return velocity(model, xs, step, feats, mask, config.renorm, model_dtype)

    v = compute(None) if step_cache is None else step_cache.velocity(step, x, compute)
    if counts is not None:
        counts.add_reused(step.patch, b - computed[0])
    return v


@torch.no_grad()
def sample(model, noise: torch.Tensor, cap_feats: torch.Tensor, cap_mask: torch.Tensor,
           config: SamplingConfig, progress: bool = False,
           callback: Callable[[int, float, torch.Tensor], None] | None = None,
           step_cache: StepCache | None = None, counts: ForwardCounts | None = None) -> torch.Tensor:
    """Integrate from noise (t = 0) to data (t = 1). Returns the final latent (fp32, noise's shape).

    cap_feats / cap_mask rows [0:B] hold the prompts and [B:2B] the negative prompts (the negative
    rows may be left out when the guidance scale is 0 throughout). `callback(step, t, x)` runs after
    every step. `step_cache` (sampling/step_cache.py): reuse velocities across steps; None or a
    threshold of 0 gives the uncached result bit for bit. `counts` (sampling/forwards.py) is filled
    with the model calls and rows run per patch.
    """
    check_sampling_inputs(model, noise, cap_feats, cap_mask, config)
    model_dtype = getattr(model, "dtype", noise.dtype)
    x = noise.float()
    plan = step_plan(config)
    if step_cache is not None:
        step_cache.begin(plan)
    for step in tqdm(plan, desc="denoising", disable=not progress, leave=False):
        x = x + step.dt * _step_velocity(model, x, step, cap_feats, cap_mask, config, model_dtype, step_cache, counts)
        if callback is not None:
            callback(step.index, step.t, x)
    return x
