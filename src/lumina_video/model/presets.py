"""Model size presets. Each fixes the size and takes every other constructor argument as a keyword,
as the official factories do."""
from __future__ import annotations

from .nextdit import MultiScaleNextDiT


def _factory(name, doc, **size):
    def build(**kwargs):
        clash = set(size) & set(kwargs)
        if clash:
            raise TypeError(f"{name} fixes {sorted(clash)}; build MultiScaleNextDiT directly to change them")
        return MultiScaleNextDiT(**size, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = doc
    build.size = dict(size)
    return build


MultiScaleNextDiT_2B_GQA = _factory(
    "MultiScaleNextDiT_2B_GQA", "The released 2B model: dim 2304, 24 layers, 16 heads, 8 kv heads.",
    dim=2304, n_layers=24, n_heads=16, n_kv_heads=8,
)
MultiScaleNextDiT_4B_GQA = _factory(
    "MultiScaleNextDiT_4B_GQA", "The 4B size named in the paper (never released): dim 3072, 32 layers.",
    dim=3072, n_layers=32, n_heads=24, n_kv_heads=8,
)
MultiScaleNextDiT_Small = _factory(
    "MultiScaleNextDiT_Small", "A small model for CPU training (the bundled demo scale).",
    dim=256, n_layers=6, n_heads=4, n_kv_heads=2,
)
MultiScaleNextDiT_Tiny = _factory(
    "MultiScaleNextDiT_Tiny", "A tiny model for tests.",
    dim=64, n_layers=2, n_heads=2, n_kv_heads=1,
)

PRESETS = {
    "2B_GQA": MultiScaleNextDiT_2B_GQA,
    "4B_GQA": MultiScaleNextDiT_4B_GQA,
    "Small": MultiScaleNextDiT_Small,
    "Tiny": MultiScaleNextDiT_Tiny,
}


def build_model(preset: str, **kwargs) -> MultiScaleNextDiT:
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; available: {', '.join(PRESETS)}")
    return PRESETS[preset](**kwargs)
