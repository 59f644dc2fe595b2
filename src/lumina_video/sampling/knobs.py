"""User-level sampling knobs (the ones `LuminaVideoPipeline.__call__`, `lumina-video generate` and the
web page expose) applied over a `SamplingConfig`.

    guidance_scale s, guidance_cutoff c   -> guidance   = (s, (c, 0))      s until t reaches c, then 0
    motion_score m                        -> motion     = m
    negative_motion_score n, switch w     -> neg_motion = (n, (w, m))      n until t reaches w, then m
    multiscale on / off                   -> patch      = a multi-scale schedule / "1x2"
    steps, shift, renorm                  -> the same fields

A knob left as None keeps the base config's value; a motion score < 0 means "no motion condition".
The negative motion returns to the positive motion score after its switch time, as in the released
presets (2, then 6 = motion after t = 0.05) and the paper's Table 3 ("2 then 8" with motion 8).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .._checks import is_number
from .config import SamplingConfig
from .presets import PRESETS
from .schedule import TimeAware

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


@dataclass(frozen=True)
class SamplingKnobs:
    """The user's sampling knobs; None keeps the base config's value (see the module docstring)."""

    steps: int | None = None
    shift: float | None = None
    guidance_scale: float | None = None
    guidance_cutoff: float | None = None
    motion_score: float | None = None
    negative_motion_score: float | None = None
    negative_motion_switch: float | None = None
    multiscale: bool | None = None
    renorm: float | None = None

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_object(cls, obj) -> SamplingKnobs:
        """The knobs read from the attributes of `obj` (e.g. argparse's namespace); absent ones are None."""
        return cls(**{name: getattr(obj, name, None) for name in cls.names()})

    def apply(self, base: SamplingConfig) -> SamplingConfig:
        """`base` with the given knobs changed. Invalid values raise ValueError."""
        same_name = {name: getattr(self, name) for name in ("steps", "shift", "renorm")}
        changes = {name: value for name, value in same_name.items() if value is not None}
        if self.guidance_scale is not None or self.guidance_cutoff is not None:
            changes["guidance"] = self._guidance(base)
        if self.motion_score is not None or self.negative_motion_score is not None \
                or self.negative_motion_switch is not None:
            changes["motion"], changes["neg_motion"] = self._motion(base)
        if self.multiscale is not None:
            changes["patch"] = multiscale_schedule(base) if self.multiscale else SINGLE_SCALE
        return base.replace(**changes) if changes else base

    def _guidance(self, base: SamplingConfig):
        s = base.guidance.initial if self.guidance_scale is None else self.guidance_scale
        c = _cutoff(base.guidance) if self.guidance_cutoff is None else self.guidance_cutoff
        if not is_number(s) or s < 0:
            raise ValueError(f"guidance_scale must be a number >= 0, got {s!r}")
        if c is not None and (not isinstance(c, (int, float)) or not 0.0 <= c <= 1.0):
            raise ValueError(f"guidance_cutoff is a model time in [0, 1] (1 = never cut off), got {c!r}")
        return (float(s), (float(c), 0.0)) if c is not None and c < 1.0 else float(s)

    def _motion(self, base: SamplingConfig):
        m = base.motion.initial if self.motion_score is None else self.motion_score
        n = base.neg_motion.initial if self.negative_motion_score is None else self.negative_motion_score
        w = self.negative_motion_switch
        if w is None and base.neg_motion.switches:
            w = base.neg_motion.switches[0][0]
        if w is not None and (not isinstance(w, (int, float)) or not 0.0 <= w <= 1.0):
            raise ValueError(f"negative_motion_switch is a model time in [0, 1], got {w!r}")
        return m, ((n, (float(w), m)) if w is not None and w < 1.0 else n)
