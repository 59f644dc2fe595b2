"""Multi-scale Next-DiT model."""
from .config import NextDiTConfig
from .flops import PEAK_BF16_TFLOPS, flops_per_item, peak_bf16_flops, train_flops_per_item
from .folder import clean_state_dict, count_params, load_state_dict_checked
from .nextdit import MultiScaleNextDiT, patch_key
from .presets import (
    PRESETS,
    MultiScaleNextDiT_2B_GQA,
    MultiScaleNextDiT_4B_GQA,
    MultiScaleNextDiT_Small,
    MultiScaleNextDiT_Tiny,
    build_model,
)

__all__ = [
    "MultiScaleNextDiT", "NextDiTConfig", "MultiScaleNextDiT_2B_GQA", "MultiScaleNextDiT_4B_GQA",
    "MultiScaleNextDiT_Small", "MultiScaleNextDiT_Tiny", "PRESETS", "build_model", "load_state_dict_checked",
    "clean_state_dict", "count_params", "patch_key", "flops_per_item", "train_flops_per_item",
    "peak_bf16_flops", "PEAK_BF16_TFLOPS",
]
