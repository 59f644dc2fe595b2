"""FLOPs of the Multi-scale Next-DiT, for throughput and MFU figures (counted like nanoGPT's
`estimate_mfu`: 2 FLOPs per multiply-add, matrix products only).

Forward FLOPs of one item with N image tokens and S caption tokens, kv = n_kv_heads * head_dim,
h = the FFN width, per block:
    2 N (dim^2 [wq] + 2 dim kv [wk, wv] + dim^2 [wo] + 3 dim h [SwiGLU w1, w3, w2])
    + 2 S cap_feat_dim 2 kv                    [wk_y, wv_y on the caption tokens]
    + 4 N N dim                                [self-attention: QK^T and AV]
    + 4 N S dim                                [caption attention: QK^T and AV]
times n_layers; with `patch` = (pt, p), plus 4 N dim pt p p C for the patch embedder and the final
linear. Not counted: the adaLN, time, motion and caption embedders (per item, not per token), norms,
RoPE and softmax. A training step costs 3 x forward (backward 2x); activation checkpointing's
recomputation is not counted, as usual for MFU.
"""
from __future__ import annotations

from .blocks import ffn_hidden_dim
from .config import NextDiTConfig

# Peak dense bf16 TFLOP/s of common GPUs, matched against torch.cuda.get_device_name.
PEAK_BF16_TFLOPS: dict[str, float] = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "4090": 165.0}


def flops_per_item(config: NextDiTConfig | dict, tokens: int, cap_len: int,
                   patch: tuple[int, int] | None = None) -> float:
    """Forward FLOPs of one item of `tokens` image tokens and `cap_len` caption tokens (see the module
    docstring); `patch` (pt, p) adds the patch embedder and final linear. `config`: a NextDiTConfig or
    `model.config`."""
    cfg = NextDiTConfig.from_dict(config) if isinstance(config, dict) else config
    n, s, dim = tokens, cap_len, cfg.dim
    kv = cfg.n_kv_heads * (dim // cfg.n_heads)
    h = ffn_hidden_dim(dim, cfg.multiple_of, cfg.ffn_dim_multiplier)
    linear = 2 * n * (2 * dim * dim + 2 * dim * kv + 3 * dim * h) + 2 * s * cfg.cap_feat_dim * 2 * kv
    attention = 4 * n * n * dim + 4 * n * s * dim
    total = cfg.n_layers * (linear + attention)
    if patch is not None:
        pt, p = patch
        total += 4 * n * dim * pt * p * p * cfg.in_channels
    return float(total)


def train_flops_per_item(config: NextDiTConfig | dict, tokens: int, cap_len: int,
                         patch: tuple[int, int] | None = None) -> float:
    """FLOPs of one training step on one item: 3 x `flops_per_item` (forward once, backward twice)."""
    return 3.0 * flops_per_item(config, tokens, cap_len, patch)


def peak_bf16_flops(device_name: str) -> float | None:
    """Peak dense bf16 FLOP/s of a GPU by its name (e.g. "NVIDIA H100 80GB HBM3"), None if unknown."""
    return next((tflops * 1e12 for key, tflops in PEAK_BF16_TFLOPS.items() if key in device_name), None)
