"""Model size presets: each fixes dim, n_layers, n_heads and n_kv_heads and takes every other
constructor argument as a keyword, as the official factories do.

    MultiScaleNextDiT_Small(in_channels=16, cap_feat_dim=384)      # or build_model("Small", ...)

Naming a size field again is Python's own TypeError ("got multiple values for keyword argument");
to change the size, start from the table: `MultiScaleNextDiT(**{**PRESETS["Small"], "n_layers": 2})`.
"""
from __future__ import annotations

from .nextdit import MultiScaleNextDiT

PRESETS: dict[str, dict[str, int]] = {
    "2B_GQA": dict(dim=2304, n_layers=24, n_heads=16, n_kv_heads=8),  # the released model
    "4B_GQA": dict(dim=3072, n_layers=32, n_heads=24, n_kv_heads=8),  # named in the paper, never released
    "Small": dict(dim=256, n_layers=6, n_heads=4, n_kv_heads=2),  # CPU training, the bundled demo scale
    "Tiny": dict(dim=64, n_layers=2, n_heads=2, n_kv_heads=1),  # tests
}


def build_model(preset: str, **kwargs) -> MultiScaleNextDiT:
    """The model of size PRESETS[preset] with the other constructor arguments from `kwargs`."""
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; available: {', '.join(PRESETS)}")
    return MultiScaleNextDiT(**PRESETS[preset], **kwargs)


def MultiScaleNextDiT_2B_GQA(**kwargs) -> MultiScaleNextDiT:
    """The released 2B model: dim 2304, 24 layers, 16 heads, 8 kv heads."""
    return build_model("2B_GQA", **kwargs)


def MultiScaleNextDiT_4B_GQA(**kwargs) -> MultiScaleNextDiT:
    """The 4B size named in the paper (never released): dim 3072, 32 layers, 24 heads, 8 kv heads."""
    return build_model("4B_GQA", **kwargs)


def MultiScaleNextDiT_Small(**kwargs) -> MultiScaleNextDiT:
    """A small model for CPU training (the bundled demo scale): dim 256, 6 layers, 4 heads, 2 kv heads."""
    return build_model("Small", **kwargs)


def MultiScaleNextDiT_Tiny(**kwargs) -> MultiScaleNextDiT:
    """A tiny model for tests: dim 64, 2 layers, 2 heads, 1 kv head."""
    return build_model("Tiny", **kwargs)
