"""Time-aware values (REFERENCE.md §3).

A value is either a constant or `(v0, (th1, v1), (th2, v2), ...)`: start from v0 and, walking the
pairs in order, take vk while t >= thk; stop at the first threshold not reached. t is the model's time
after the shift, 0 = noise, 1 = data. Example: guidance (20, (0.2, 0)) is 20 until t reaches 0.2, then 0.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._checks import is_int

# Patch combinations as the official presets write them: "{pt}x{p}".
PATCH_NAMES = {"1x2": (1, 2), "2x2": (2, 2), "2x4": (2, 4)}


def parse_patch(value) -> tuple[int, int]:
    """"2x4" or (2, 4) -> (pt, p) = (2, 4)."""
    if isinstance(value, str):
        parts = value.lower().split("x")
        if len(parts) == 2 and all(s.strip().isdigit() for s in parts):
            return (int(parts[0]), int(parts[1]))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (int(value[0]), int(value[1]))
    raise ValueError(f"bad patch combination {value!r}; accepted: strings 'PTxP' such as "
                     f"{', '.join(repr(k) for k in PATCH_NAMES)}, or a (pt, p) pair")


def patch_name(patch: tuple[int, int]) -> str:
    return f"{patch[0]}x{patch[1]}"


@dataclass(frozen=True)
class TimeAware:
    """A value that changes at given model times: `initial`, then each (threshold, value) in turn."""

    initial: Any
    switches: tuple[tuple[float, Any], ...] = ()

    def __post_init__(self):
        last = -1.0
        for pair in self.switches:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise ValueError(f"a switch must be a (threshold, value) pair, got {pair!r}")
            th = pair[0]
            if not isinstance(th, (int, float)) or not 0.0 <= th <= 1.0:
                raise ValueError(f"switch thresholds are model times in [0, 1], got {th!r}")
            if th < last:
                raise ValueError(f"switch thresholds must be non-decreasing, got {[p[0] for p in self.switches]}")
            last = th

    def __call__(self, t: float):
        value = self.initial
        for th, v in self.switches:
            if t >= th:
                value = v
            else:
                break
        return value

    def values(self) -> list:
        return [self.initial] + [v for _, v in self.switches]

    @classmethod
    def parse(cls, spec, convert: Callable[[Any], Any] = lambda v: v, what: str = "value") -> TimeAware:
        """From a constant, `(v0, (th, v), ...)`, or an existing TimeAware; `convert` checks each value."""
        if isinstance(spec, TimeAware):
            return spec
        try:
            if isinstance(spec, (list, tuple)) and not _is_atom(spec):
                if not spec:
                    raise ValueError("empty")
                pairs = []
                for pair in spec[1:]:
                    if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                        raise ValueError(f"{pair!r} is not a (threshold, value) pair")
                    pairs.append((float(pair[0]), convert(pair[1])))
                return cls(convert(spec[0]), tuple(pairs))
            return cls(convert(spec))
        except (ValueError, TypeError) as e:
            raise ValueError(
                f"malformed time-aware {what} {spec!r}: {e}. Accepted: a constant, or "
                f"(v0, (t1, v1), (t2, v2), ...) with thresholds in [0, 1]"
            ) from None

    def to_official(self, convert: Callable[[Any], Any] = lambda v: v):
        if not self.switches:
            return convert(self.initial)
        return [convert(self.initial)] + [[th, convert(v)] for th, v in self.switches]


def _is_atom(spec) -> bool:
    """A (pt, p) pair of ints is one patch value, not a schedule."""
    return len(spec) == 2 and all(is_int(v) for v in spec)
