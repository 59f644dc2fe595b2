"""SamplingConfig: every setting of the sampler, typed and validated, convertible from and to the
official preset dictionaries (keys P, step, ts, renorm, cfg, motion, negMotion)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .._checks import is_int, is_number
from .schedule import TimeAware, parse_patch, patch_name

OFFICIAL_KEYS = ("P", "step", "ts", "renorm", "cfg", "motion", "negMotion")


def _number(v) -> float:
    if not is_number(v):
        raise ValueError(f"{v!r} is not a number")
    return float(v)


def _motion(v):
    """A motion value: a number (< 0 means no motion condition) or None (no condition)."""
    return None if v is None else _number(v)


@dataclass(frozen=True)
class SamplingConfig:
    """Settings of `sample()`.

    steps       number of Euler steps (the official `step` counts grid points: step = steps + 1)
    shift       time shift a of the grid, t' = t / (t + a - a t)
    guidance    guidance scale s (time-aware); 0 skips the negative branch
    renorm      cap ||guided|| at renorm * ||positive|| (None or <= 0: off)
    motion      positive-branch motion score (time-aware; None = no motion condition)
    neg_motion  negative-branch motion score (time-aware)
    patch       patch combination (pt, p) (time-aware): multi-scale inference when it changes
    """

    steps: int = 69
    shift: float = 24.0
    guidance: TimeAware = field(default_factory=lambda: TimeAware(20.0, ((0.2, 0.0),)))
    renorm: float | None = 2.0
    motion: TimeAware = field(default_factory=lambda: TimeAware(6.0))
    neg_motion: TimeAware = field(default_factory=lambda: TimeAware(2.0, ((0.05, 6.0),)))
    patch: TimeAware = field(default_factory=lambda: TimeAware((1, 2)))

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        if not is_int(self.steps) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer (Euler steps), got {self.steps!r}")
        if not is_number(self.shift) or self.shift <= 0:
            raise ValueError(f"shift must be a positive number, got {self.shift!r}")
        set_("shift", float(self.shift))
        if self.renorm is not None:
            try:
                r = _number(self.renorm)
            except ValueError:
                raise ValueError(f"renorm must be a number (<= 0 or None = off), got {self.renorm!r}") from None
            set_("renorm", r if r > 0 else None)
        set_("guidance", TimeAware.parse(self.guidance, _number, "guidance"))
        set_("motion", TimeAware.parse(self.motion, _motion, "motion"))
        set_("neg_motion", TimeAware.parse(self.neg_motion, _motion, "negative motion"))
        set_("patch", TimeAware.parse(self.patch, parse_patch, "patch combination"))
        if any(s < 0 for s in self.guidance.values()):
            raise ValueError(f"guidance scales must be >= 0, got {self.guidance.values()}")

    # -- conversions ---------------------------------------------------------------------------
    @classmethod
    def from_official(cls, d: dict) -> SamplingConfig:
        """From the official preset format, e.g. {"P": ("2x4", (0.03, "2x2")), "step": 70, "ts": 24, ...}."""
        if not isinstance(d, dict):
            raise ValueError(f"an official preset is a dict with keys {OFFICIAL_KEYS}, got {type(d).__name__}")
        unknown = sorted(set(d) - set(OFFICIAL_KEYS))
        missing = [k for k in ("P", "step", "ts") if k not in d]
        if unknown or missing:
            raise ValueError(
                f"malformed official preset: unknown keys {unknown}, missing keys {missing}; "
                f"accepted keys: {', '.join(OFFICIAL_KEYS)} (P, step and ts required)"
            )
        step = d["step"]
        if not is_int(step) or step < 2:
            raise ValueError(f"official 'step' counts grid points and must be an integer >= 2, got {step!r}")
        renorm = d.get("renorm")
        if renorm is not None and (not is_number(renorm)):
            raise ValueError(f"official 'renorm' must be a number (<= 0 or absent = off), got {renorm!r}")
        return cls(
            steps=step - 1,
            shift=d["ts"],
            guidance=d.get("cfg", 0.0),
            renorm=renorm,
            motion=d.get("motion"),
            neg_motion=d.get("negMotion", d.get("motion")),
            patch=d["P"],
        )

    def to_official(self) -> dict:
        return {
            "P": self.patch.to_official(patch_name),
            "step": self.steps + 1,
            "ts": self.shift,
            "renorm": self.renorm if self.renorm is not None else 0,
            "cfg": self.guidance.to_official(),
            "motion": self.motion.to_official(),
            "negMotion": self.neg_motion.to_official(),
        }

    @classmethod
    def preset(cls, name: str) -> SamplingConfig:
        from .presets import PRESETS

        if name not in PRESETS:
            raise ValueError(f"unknown sampling preset {name!r}; available: {', '.join(PRESETS)}")
        return cls.from_official(PRESETS[name])

    def replace(self, **changes) -> SamplingConfig:
        return dataclasses.replace(self, **changes)

    def patch_shapes(self) -> list[tuple[int, int]]:
        """Every (pt, p) the schedule can use, in order of first use."""
        return list(dict.fromkeys(self.patch.values()))

    def is_multiscale(self) -> bool:
        """Whether the patch schedule changes patch size (multi-scale inference)."""
        return len(self.patch_shapes()) > 1

    def is_guided(self) -> bool:
        """Whether any step uses guidance (a scale != 0), so the negative prompts are needed."""
        return any(s != 0 for s in self.guidance.values())


def sampling_to_json(config: SamplingConfig) -> dict:
    """`config` as plain JSON values for a record (time-aware values as [v0, [t1, v1], ...])."""
    return dict(steps=config.steps, shift=config.shift, renorm=config.renorm,
                guidance=config.guidance.to_official(), motion=config.motion.to_official(),
                neg_motion=config.neg_motion.to_official(), patch=config.patch.to_official(patch_name),
                multiscale=config.is_multiscale())
