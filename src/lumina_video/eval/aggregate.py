"""VBench's aggregation of its 16 dimensions into Quality, Semantic and Total scores.

For each dimension d with raw score s_d in [0, 1]:
    n_d = w_d * (s_d - min_d) / (max_d - min_d)          (not clipped, as in VBench)
    Quality  = sum_{d in 7 quality dims}  n_d / sum w_d    (= / 6.5: dynamic degree weighs 0.5)
    Semantic = sum_{d in 9 semantic dims} n_d / sum w_d    (= / 9)
    Total    = (4 * Quality + 1 * Semantic) / 5

Scores can come from this package or from elsewhere (e.g. a full VBench run). A dimension that is
not given is listed as missing; Quality / Semantic / Total are only produced when all of their
dimensions are given. Over the given dimensions only, `quality_partial` / `semantic_partial` are
reported under their own names: they are not VBench's numbers.
"""
from __future__ import annotations

from .._checks import number

QUALITY_DIMS: tuple[str, ...] = (
    "subject consistency", "background consistency", "temporal flickering", "motion smoothness",
    "dynamic degree", "aesthetic quality", "imaging quality",
)
SEMANTIC_DIMS: tuple[str, ...] = (
    "object class", "multiple objects", "human action", "color", "spatial relationship", "scene",
    "appearance style", "temporal style", "overall consistency",
)
ALL_DIMS = QUALITY_DIMS + SEMANTIC_DIMS

# (min, max) used to normalise each raw score (fractions), VBench's constants.
NORMALIZATION: dict[str, tuple[float, float]] = {
    "subject consistency": (0.1462, 1.0),
    "background consistency": (0.2615, 1.0),
    "temporal flickering": (0.6293, 1.0),
    "motion smoothness": (0.706, 0.9975),
    "scene": (0.0, 0.8222),
    "appearance style": (0.0009, 0.2855),
    "temporal style": (0.0, 0.364),
    "overall consistency": (0.0, 0.364),
}
WEIGHTS: dict[str, float] = {"dynamic degree": 0.5}
QUALITY_WEIGHT, SEMANTIC_WEIGHT = 4.0, 1.0
SCALES = {"fraction": 1.0, "percent": 100.0}


def dimension_name(name: str) -> str:
    """Canonical dimension name: lower case, words separated by spaces ("dynamic_degree" -> "dynamic degree")."""
    canon = " ".join(str(name).replace("_", " ").replace("-", " ").lower().split())
    if canon not in ALL_DIMS:
        raise ValueError(f"unknown VBench dimension {name!r}; accepted (spaces or underscores): {list(ALL_DIMS)}")
    return canon


def normalized_score(dim: str, fraction: float) -> float:
    """Weighted normalised score w_d (s - min_d) / (max_d - min_d) of a raw score given as a fraction."""
    lo, hi = NORMALIZATION.get(dim, (0.0, 1.0))
    return WEIGHTS.get(dim, 1.0) * (fraction - lo) / (hi - lo)


def _as_fractions(scores: dict, scale: str) -> dict[str, float]:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {list(SCALES)} (how the scores are given), got {scale!r}")
    unit = SCALES[scale]
    out = {}
    for name, value in scores.items():
        dim = dimension_name(name)
        if dim in out:
            raise ValueError(f"dimension {dim!r} given twice (as {name!r} and another spelling)")
        value = number(value, f"score of {dim!r}")
        if not 0.0 <= value <= unit:
            hint = " (did you mean scale='percent'?)" if scale == "fraction" and value <= 100 else ""
            raise ValueError(f"score of {dim!r} = {value} is outside [0, {unit:g}] for scale={scale!r}{hint}")
        out[dim] = float(value) / unit
    return out


def _group_score(normalized: dict[str, float], dims: tuple[str, ...]) -> float | None:
    """Sum of weighted normalised scores / sum of weights, over those of `dims` present; None if none."""
    present = [d for d in dims if d in normalized]
    if not present:
        return None
    return sum(normalized[d] for d in present) / sum(WEIGHTS.get(d, 1.0) for d in present)


def vbench_scores(scores: dict, *, scale: str) -> dict:
    """Aggregate per-dimension scores the way VBench does.

    scores: {dimension: raw score}; names as in VBench, with spaces or underscores.
    scale:  "fraction" (scores in [0, 1]) or "percent" (in [0, 100]). Results use the same scale.

    Returns {"scale", "quality", "semantic", "total" (None unless every dimension they need is
    given), "quality_partial", "semantic_partial" (over the given dimensions only; None if none),
    "normalized" (weighted normalised score per given dimension, fraction), "given", "missing"}.
    """
    fractions = _as_fractions(scores, scale)
    normalized = {d: normalized_score(d, fractions[d]) for d in ALL_DIMS if d in fractions}
    unit = SCALES[scale]
    quality_missing = [d for d in QUALITY_DIMS if d not in normalized]
    semantic_missing = [d for d in SEMANTIC_DIMS if d not in normalized]
    q_part = _group_score(normalized, QUALITY_DIMS)
    s_part = _group_score(normalized, SEMANTIC_DIMS)
    quality = None if quality_missing else q_part
    semantic = None if semantic_missing else s_part
    total = None
    if quality is not None and semantic is not None:
        total = (QUALITY_WEIGHT * quality + SEMANTIC_WEIGHT * semantic) / (QUALITY_WEIGHT + SEMANTIC_WEIGHT)

    def scaled(x):
        return None if x is None else x * unit

    return {
        "scale": scale,
        "quality": scaled(quality),
        "semantic": scaled(semantic),
        "total": scaled(total),
        "quality_partial": scaled(q_part),
        "semantic_partial": scaled(s_part),
        "normalized": normalized,
        "given": [d for d in ALL_DIMS if d in normalized],
        "missing": quality_missing + semantic_missing,
    }
