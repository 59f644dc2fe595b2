"""Validation of single values, with one message style: "KEY must be WHAT, got VALUE".

    positive_int(v, "steps")          an int >= 1 (a bool is not an int here)
    non_negative_int(v, "seed")       an int >= 0
    integer(v, "layer", lo, hi)       an int in [lo, hi] (either bound optional)
    number(v, "shift", lo, hi)        a finite int or float in [lo, hi]; `lo_open` makes it (lo, hi]
    positive_number(v, "fps")         a finite number > 0
    probability(v, "dropout")         a finite number in [0, 1]

Each returns the value (a float for the number checks) and raises ValueError otherwise. The
predicates `is_int` and `is_number` serve callers that word their own message, and
`short_reason(exc)` is the one way to quote an exception in a one-line message or a skip record.
"""
from __future__ import annotations

import math
from numbers import Real


def is_int(value) -> bool:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """True for a real number (int, float, numpy scalar) that is not a bool."""
    return isinstance(value, Real) and not isinstance(value, bool)


def _bounds(lo, hi, lo_open: bool = False) -> str:
    low = None if lo is None else f"{'>' if lo_open else '>='} {lo:g}"
    if hi is None:
        return "" if low is None else f" {low}"
    if lo is None:
        return f" <= {hi:g}"
    return f" in {'(' if lo_open else '['}{lo:g}, {hi:g}]"


def integer(value, key: str, lo: int | None = None, hi: int | None = None) -> int:
    """`value` if it is an int in [lo, hi]; ValueError naming `key` and the accepted range otherwise."""
    if not is_int(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{key} must be an integer{_bounds(lo, hi)}, got {value!r}")
    return value


def positive_int(value, key: str) -> int:
    """`value` if it is an int >= 1; ValueError "KEY must be a positive integer, got VALUE" otherwise."""
    if not is_int(value) or value < 1:
        raise ValueError(f"{key} must be a positive integer, got {value!r}")
    return value


def non_negative_int(value, key: str) -> int:
    """`value` if it is an int >= 0; ValueError naming `key` otherwise."""
    if not is_int(value) or value < 0:
        raise ValueError(f"{key} must be an integer >= 0, got {value!r}")
    return value


def number(value, key: str, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> float:
    """float(value) if it is a finite number in [lo, hi] ((lo, hi] with `lo_open`); ValueError otherwise."""
    ok = is_number(value) and math.isfinite(value)
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value <= hi
    if not ok:
        raise ValueError(f"{key} must be a finite number{_bounds(lo, hi, lo_open)}, got {value!r}")
    return float(value)


def positive_number(value, key: str) -> float:
    """float(value) if it is a finite number > 0; ValueError naming `key` otherwise."""
    return number(value, key, 0, lo_open=True)


def probability(value, key: str) -> float:
    """float(value) if it is a finite number in [0, 1]; ValueError naming `key` otherwise."""
    return number(value, key, 0, 1)


def short_reason(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when the message is empty."""
    text = str(exc)
    return text.splitlines()[0] if text.strip() else type(exc).__name__
