"""Multi-scale Next-DiT model, and the V2A (video-to-audio) Next-DiT built from its parts."""
from .config import NextDiTConfig
from .flops import PEAK_BF16_TFLOPS, flops_per_item, peak_bf16_flops, train_flops_per_item, v2a_flops_per_item
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
from .v2a import V2ANextDiT
from .v2a_config import V2AConfig
from .v2a_presets import V2A_PRESETS, build_v2a_model

__all__ = [
    "MultiScaleNextDiT", "NextDiTConfig", "MultiScaleNextDiT_2B_GQA", "MultiScaleNextDiT_4B_GQA",
    "MultiScaleNextDiT_Small", "MultiScaleNextDiT_Tiny", "PRESETS", "build_model", "load_state_dict_checked",
    "clean_state_dict", "count_params", "patch_key", "flops_per_item", "train_flops_per_item",
    "peak_bf16_flops", "PEAK_BF16_TFLOPS", "V2ANextDiT", "V2AConfig", "V2A_PRESETS", "build_v2a_model",
    "v2a_flops_per_item",
]
