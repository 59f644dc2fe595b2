"""A step cache that knows the sampling schedule: skip a prompt's model call at an Euler step while the
estimated change of its velocity stays under a threshold (EasyCache's runtime rule, applied to the guided
velocity), and forecast the velocity of a skipped step from the computed ones.

For each prompt i, after a step m computed by the model (velocity v_m at input x_m) and an earlier
computed step j of the same stage, the transformation rate is
    k_i = ||v_m - v_j|| / ||x_m - x_j||                      (per prompt, norms over all latent dims)
At each later step n the estimated relative change of the velocity since m is accumulated,
    e_n = e_{n-1} + k_i ||x_n - x_{n-1}|| / ||v_m||,         e_m = 0
and while e_n < threshold x stage_scale[patch] the model is not called at n; otherwise it runs and e
resets to 0. The velocity used at a skipped step n (time t_n), from the prompt's last two computed
steps (t_0, v_0), (t_1, v_1) of the same stage and settings:
    forecast "linear" (default):  v_1 + (t_n - t_1) (v_1 - v_0) / (t_1 - t_0)   (first order in t)
    forecast "reuse":             v_1                                           (EasyCache; also "linear"
                                                                                 with one computed step)
Rules that make it safe on a multi-scale, guidance-switching schedule:
  - a stage is a run of steps with the same (patch, guided?) pair; at every stage switch the cached
    velocities, inputs and errors are dropped and the first step of the stage is computed; with
    forced=1 (default) the rate k is carried over from the previous stage, rescaled by |v_new| / |v_old|
    (k / |v| kept), so the second step may be skipped (forecast: v_1, no slope yet); with forced=2 the
    second step is computed too (the rate then comes from the stage's own two steps);
  - a change of any other setting the velocity depends on inside a stage (guidance scale, motion
    score, and when guided the negative motion score, e.g. the released presets' negative motion
    switch at t = 0.05) forces one computed step; the rate is kept but no rate or slope is measured
    across it;
  - stage_scale (default STAGE_SCALE: 2x4 -> 0) sets the threshold per patch; 0 never skips there;
  - the last step is always computed;
  - a cached tensor is only used for an input of its own shape (else the state is dropped);
  - threshold 0 never skips: each step makes the very call `sample` makes without a cache, so the
    output is bit-identical.
Decisions are per prompt (a batch runs the model on the prompts that need it), so a batch still
equals single runs. Why the velocity, EasyCache's rate, the linear forecast and the defaults: measured
on the bundled demo model, README "Step cache".
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from .._checks import is_number
from .schedule import patch_name

# The threshold `auto` stands for (bench/step_cache.py on the bundled demo model; README "Step cache").
# A model folder may set its own in model_index.json's defaults as "step_cache_auto".
AUTO_THRESHOLD = 0.3
# The threshold's factor per patch by default: the coarsest stage (2x4, the cheapest: 18% of the demo's
# FLOPs, at the highest noise, where a reused velocity moves the whole video) always computes.
STAGE_SCALE = {"2x4": 0.0}
OFF_WORDS = ("off", "none", "no", "false")
EPS = 1e-12
FORECASTS = ("linear", "reuse")


def parse_step_cache(value, auto: float = AUTO_THRESHOLD) -> float | None:
    """None / "off" -> None (no cache); "auto" -> `auto`; a number >= 0 (or its text) -> that threshold."""
    if value is None or value is False or (isinstance(value, str) and value.strip().lower() in OFF_WORDS):
        return None
    if isinstance(value, str) and value.strip().lower() == "auto":
        value = auto
    elif isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if not is_number(value) or value != value or value < 0 or value == float("inf"):
        raise ValueError(f"step cache must be 'off', 'auto' or a threshold >= 0 (e.g. 0.1), got {value!r}")
    return float(value)


class CacheEvent(NamedTuple):
    """What the cache did at one step: the prompts computed, and for each reused prompt the step and
    stage its velocity was computed at."""

    step: int
    stage: tuple  # ((pt, p), guided)
    computed: tuple[int, ...]
    reused: tuple[tuple[int, int, tuple], ...]  # (prompt, source step, source stage)


def _norms(t: torch.Tensor) -> torch.Tensor:
    """Per-item L2 norm over all but the first dim, in fp32: (B, ...) -> (B,)."""
    return torch.linalg.vector_norm(t.float().flatten(1), dim=1)


class StepCache:
    """The schedule-aware velocity cache of one sampling run (module docstring). `events` records
    every step's decisions; `begin(plan)` (called by `sample`) clears everything for a new run.
    `forecast`: "linear" (extrapolate from the last two computed velocities) or "reuse" (the last one);
    `forced`: computed steps at the start of a stage (1: the rate is carried over from the previous
    stage, rescaled by the velocity norms); `stage_scale`: {patch name: factor} multiplying the
    threshold per patch (default 1)."""

    FORECAST, FORCED = "linear", 1

    def __init__(self, threshold: float, forecast: str = FORECAST, forced: int = FORCED, stage_scale=None):
        if not is_number(threshold) or threshold < 0:
            raise ValueError(f"step cache threshold must be a number >= 0, got {threshold!r}")
        if forecast not in FORECASTS or forced not in (1, 2):
            raise ValueError(f"step cache forecast must be one of {FORECASTS} and forced 1 or 2, got "
                             f"{forecast!r}, {forced!r}")
        self.threshold, self.forecast, self.forced = float(threshold), forecast, forced
        self.stage_scale = dict(STAGE_SCALE if stage_scale is None else stage_scale)
        self.events: list[CacheEvent] = []
        self._last, self._carry, self._v = -1, None, None
        self._reset(None)

    def begin(self, plan) -> None:
        """Start a run over the steps `plan` (solver.step_plan)."""
        self.events, self._last, self._carry, self._v = [], plan[-1].index if plan else -1, None, None
        self._reset(None)

    def _reset(self, stage) -> None:
        if self._v is not None:  # (k, |v|) handed to the next stage
            self._carry = (self._k.clone(), _norms(self._v))
        self._stage, self._settings, self._v = stage, None, None
        self._src: list[tuple[int, tuple] | None] = []

    def _threshold(self, step) -> float:
        """The threshold at `step`'s patch: threshold x stage_scale (a scale of 0 never reuses, even at inf)."""
        scale = self.stage_scale.get(patch_name(step.patch), 1.0)
        return self.threshold * scale if scale else 0.0

    def velocity(self, step, x: torch.Tensor, compute: Callable) -> torch.Tensor:
        """The velocity (B, ...) at `step` for latent `x`: `compute(None)` for all prompts, `compute(rows)`
        for the prompts in the index tensor `rows`, the cached (forecast) velocity for the others."""
        stage = (tuple(step.patch), step.guidance != 0)
        if self._v is None or stage != self._stage or self._v.shape != x.shape:
            self._reset(stage)
        settings = (step.guidance, step.motion, step.neg_motion) if stage[1] else (step.motion,)
        refresh = self._v is not None and settings != self._settings
        rows, estimate = self._rows_to_compute(step, x, refresh)
        if bool(rows.all()):
            v = compute(None)
        else:
            v = self._forecast(step.t)
            if bool(rows.any()):
                index = rows.nonzero().flatten()
                v[index] = compute(index).to(v.dtype)
        if v.shape != x.shape:
            raise RuntimeError(f"the velocity has shape {tuple(v.shape)} for a latent of shape {tuple(x.shape)}")
        self._record(step, stage, rows)
        self._update(step, x, v, rows, estimate, refresh, settings)
        return v

    def _forecast(self, t: float) -> torch.Tensor:
        """Each prompt's velocity at t: v1 + (t - t1) (v1 - v0) / (t1 - t0) from its last two computed
        steps of this stage and settings (`linear`, where it has two), else its last computed v1."""
        v = self._v.clone()
        if self.forecast == "linear" and bool((self._n >= 2).any()):
            slope = (t - self._t1) / (self._t1 - self._t0).clamp_min(EPS)  # (B,)
            slope = torch.where(self._n >= 2, slope, torch.zeros_like(slope)).view(-1, *[1] * (v.dim() - 1))
            v = v + slope * (self._v - self._v0)
        return v

    def _rows_to_compute(self, step, x: torch.Tensor, refresh: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows: bool (B,), the accumulated estimate e (B,)): compute where forced or e >= threshold."""
        b = x.shape[0]
        if self.threshold <= 0 or step.index == self._last or self._v is None or refresh:
            return torch.ones(b, dtype=torch.bool), torch.zeros(b)
        moved = _norms(x - self._x_prev) / _norms(self._v).clamp_min(EPS)
        estimate = self._err + self._k * moved  # NaN while a prompt's rate is unknown: computed
        return ~(estimate < self._threshold(step)), estimate

    def _start(self, step, x, v) -> None:
        """The state after a stage's first (computed) step: the rate unknown, or carried over."""
        b = x.shape[0]
        self._k = torch.full((b,), float("nan"))
        if self.forced == 1 and self._carry is not None and self._carry[0].shape[0] == b:
            k, norm = self._carry
            self._k = k * _norms(v) / norm.clamp_min(EPS)
        self._x_src, self._src, self._n = x.clone(), [None] * b, torch.zeros(b, dtype=torch.long)
        self._v, self._v0 = v.clone(), v.clone()
        self._t1, self._t0 = torch.full((b,), step.t), torch.full((b,), step.t)

    def _update(self, step, x, v, rows, estimate, refresh: bool, settings) -> None:
        b = x.shape[0]
        if self._v is None:
            self._start(step, x, v)
        elif not refresh:  # a rate from two computed steps of the same stage and settings
            rate = _norms(v - self._v) / _norms(x - self._x_src).clamp_min(EPS)
            self._k = torch.where(rows, rate, self._k)
        if refresh:
            self._n = torch.zeros_like(self._n)
        self._n = self._n + rows.long()
        self._err = torch.where(rows, torch.zeros(b), estimate)
        self._v0[rows], self._t0[rows] = self._v[rows], self._t1[rows]
        self._v[rows], self._t1[rows], self._x_src[rows] = v[rows], step.t, x[rows]
        for i in rows.nonzero().flatten().tolist():
            self._src[i] = (step.index, self._stage)
        self._x_prev, self._settings = x, settings

    def _record(self, step, stage, rows) -> None:
        computed = tuple(rows.nonzero().flatten().tolist())
        reused = tuple((i, *self._src[i]) for i in (~rows).nonzero().flatten().tolist())
        self.events.append(CacheEvent(step.index, stage, computed, reused))

    def reused_steps(self) -> int:
        """(step, prompt) pairs whose velocity was reused in the last run."""
        return sum(len(e.reused) for e in self.events)
