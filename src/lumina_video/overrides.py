"""User-level sampling knobs (the ones `LuminaVideoPipeline.__call__` and `lumina-video generate`
expose) applied over a `SamplingConfig`.

    guidance_scale s, guidance_cutoff c   -> guidance   = (s, (c, 0))      s until t reaches c, then 0
    motion_score m                        -> motion     = m
    negative_motion_score n, switch w     -> neg_motion = (n, (w, m))      n until t reaches w, then m
    multiscale on / off                   -> patch      = a multi-scale schedule / "1x2"

A knob left as None keeps the base config's value; a motion score < 0 means "no motion condition". The negative motion returns to the positive
motion score after its switch time, as in the released presets (2, then 6 = motion after t = 0.05)
and the paper's Table 3 ("2 then 8" with motion 8).
"""
from __future__ import annotations

from .sampling import PRESETS, SamplingConfig, TimeAware

SINGLE_SCALE = TimeAware((1, 2))
FALLBACK_MULTISCALE = "f24F96R960-MultiScale"  # its schedule is used when the base has no multi-scale twin


def _cutoff(value: TimeAware) -> float | None:
    """The time a guidance of the form (s, (c, 0)) is cut off at, else None."""
    if len(value.switches) == 1 and value.switches[0][1] == 0:
        return value.switches[0][0]
    return None


def multiscale_schedule(base: SamplingConfig) -> TimeAware:
    """The patch schedule of the released preset that equals `base` but for its patch schedule."""
    if base.is_multiscale():
        return base.patch
    for d in PRESETS.values():
        cand = SamplingConfig.from_official(d)
        if cand.is_multiscale() and cand.replace(patch=base.patch) == base:
            return cand.patch
    return SamplingConfig.preset(FALLBACK_MULTISCALE).patch


def apply_overrides(base: SamplingConfig, *, steps=None, shift=None, guidance_scale=None, guidance_cutoff=None,
                    motion_score=None, negative_motion_score=None, negative_motion_switch=None,
                    multiscale=None, renorm=None) -> SamplingConfig:
    """`base` with the given knobs changed (None = keep). Invalid values raise ValueError."""
    changes = {}
    if steps is not None:
        changes["steps"] = steps
    if shift is not None:
        changes["shift"] = shift
    if renorm is not None:
        changes["renorm"] = renorm
    if guidance_scale is not None or guidance_cutoff is not None:
        s = base.guidance.initial if guidance_scale is None else guidance_scale
        c = _cutoff(base.guidance) if guidance_cutoff is None else guidance_cutoff
        if not isinstance(s, (int, float)) or isinstance(s, bool) or s < 0:
            raise ValueError(f"guidance_scale must be a number >= 0, got {s!r}")
        if c is not None and (not isinstance(c, (int, float)) or not 0.0 <= c <= 1.0):
            raise ValueError(f"guidance_cutoff is a model time in [0, 1] (1 = never cut off), got {c!r}")
        changes["guidance"] = (float(s), (float(c), 0.0)) if c is not None and c < 1.0 else float(s)
    if motion_score is not None or negative_motion_score is not None or negative_motion_switch is not None:
        m = base.motion.initial if motion_score is None else motion_score
        n = base.neg_motion.initial if negative_motion_score is None else negative_motion_score
        w = base.neg_motion.switches[0][0] if negative_motion_switch is None and base.neg_motion.switches \
            else negative_motion_switch
        if w is not None and (not isinstance(w, (int, float)) or not 0.0 <= w <= 1.0):
            raise ValueError(f"negative_motion_switch is a model time in [0, 1], got {w!r}")
        changes["motion"] = m
        changes["neg_motion"] = (n, (float(w), m)) if w is not None and w < 1.0 else n
    if multiscale is not None:
        changes["patch"] = multiscale_schedule(base) if multiscale else SINGLE_SCALE
    return base.replace(**changes) if changes else base
