"""Shared presentation for evaluation reports: number formatting, the attribute list and figures.

    pct(0.9512)        -> "95.12"   (a fraction shown as a percentage; "-" for None)
    pct(0.9512, 1)     -> "95.1"
    num(0.12345, 3)    -> "0.123"   ("-" for None)
    plt = pyplot()                  matplotlib.pyplot on the non-interactive Agg backend (lumina_video.files)
    save_figure(fig, path)          PNG, written atomically (lumina_video.files)
"""
from __future__ import annotations

from ..files import pyplot, save_figure  # noqa: F401  (the figure helpers, re-exported for the reports)

# The attribute checks, in the order reports show them (eval/attributes.py computes them).
ATTRIBUTES: tuple[str, ...] = ("color", "shape", "motion", "direction", "speed")


def pct(x: float | None, digits: int = 2) -> str:
    """A fraction as a percentage with `digits` decimals, "-" for None."""
    return "-" if x is None else f"{100 * x:.{digits}f}"


def num(x: float | None, digits: int = 2) -> str:
    """A number with `digits` decimals, "-" for None."""
    return "-" if x is None else f"{x:.{digits}f}"
