"""Multi-scale Next-DiT model."""
from .nextdit import MultiScaleNextDiT, load_state_dict_checked, clean_state_dict, count_params, patch_key
from .presets import (
    PRESETS,
    MultiScaleNextDiT_2B_GQA,
    MultiScaleNextDiT_4B_GQA,
    MultiScaleNextDiT_Small,
    MultiScaleNextDiT_Tiny,
    build_model,
)

__all__ = [
    "MultiScaleNextDiT", "MultiScaleNextDiT_2B_GQA", "MultiScaleNextDiT_4B_GQA", "MultiScaleNextDiT_Small",
    "MultiScaleNextDiT_Tiny", "PRESETS", "build_model", "load_state_dict_checked", "clean_state_dict",
    "count_params", "patch_key",
]
