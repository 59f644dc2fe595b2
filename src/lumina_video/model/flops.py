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


def v2a_flops_per_item(config, latent_frames: int, mel_rows: int, visual_tokens: int, text_tokens: int) -> float:
    """Forward FLOPs of the V2A model (model/v2a.py) on one item, counted as `flops_per_item`.

    N = (latent_frames / pt) (mel_rows / pf) audio tokens in K = latent_frames / pt columns, S = Fv + L
    context keys (visual + text, projected to dim), kv = n_kv_heads head_dim, h the FFN width, D' = cond_dim:
        per block  2 N (2 dim^2 + 2 dim kv + 3 dim h)     [wq, wo, wk, wv, SwiGLU]
                   + 2 S dim 2 kv                          [wk_y, wv_y on the context]
                   + 4 N N dim + 4 N S dim                 [self- and co-attention: QK^T and AV]
                   + 2 N D' 4 dim                          [adaLN per token]
        once       4 N dim pt pf C + 2 N D' dim            [patch embedder, final linear, final adaLN]
                   + 2 Fv Dv dim + 2 L Dt dim              [visual and text projections]
                   + 2 K Ds D'                             [sync embedder per column]
                   + 2 K Ds (2 + B) + 2 N E dim            [sync envelope head and its token embedder,
                                                            when sync_envelope_bands B > 0; M' token rows,
                                                            E = envelope_token_width = 2 (+1) + B / M']
                   + 2 K Ds (G + 1) + 2 K Dt' (H - 1)      [harmonic head, sync_harmonics H > 0: f0 and voicing
                   + 2 K H B G                              logits, amplitudes from Dt' timbre channels, the
                                                            render (G = 74 f0 bins)]
    Not counted: the time and pooled embedders (per item), norms, RoPE, softmax, the sync interpolation.
    `config`: a V2AConfig or `model.config`."""
    from .v2a_config import V2AConfig

    cfg = V2AConfig.from_dict(config) if isinstance(config, dict) else config
    k = latent_frames // cfg.patch_time
    n, s, dim, dc = k * (mel_rows // cfg.patch_freq), visual_tokens + text_tokens, cfg.dim, cfg.cond_dim
    kv = cfg.n_kv_heads * cfg.head_dim
    h = ffn_hidden_dim(dim, cfg.multiple_of, cfg.ffn_dim_multiplier)
    block = (2 * n * (2 * dim * dim + 2 * dim * kv + 3 * dim * h) + 2 * s * dim * 2 * kv
             + 4 * n * n * dim + 4 * n * s * dim + 2 * n * dc * 4 * dim)
    once = (4 * n * dim * cfg.patch_time * cfg.patch_freq * cfg.in_channels + 2 * n * dc * dim
            + 2 * visual_tokens * cfg.visual_feat_dim * dim + 2 * text_tokens * cfg.text_feat_dim * dim
            + 2 * k * cfg.sync_feat_dim * dc)
    if cfg.sync_envelope_bands:
        once += 2 * k * cfg.sync_feat_dim * (2 + cfg.sync_envelope_bands) + 2 * n * cfg.envelope_token_width * dim
    if cfg.sync_harmonics:
        from .v2a_harmonics import F0_BINS

        harmonics, bands = cfg.sync_harmonics, cfg.sync_envelope_bands
        once += (2 * k * cfg.sync_feat_dim * (F0_BINS + 1) + 2 * k * (cfg.sync_timbre_dim or cfg.sync_feat_dim)
                 * (harmonics - 1) + 2 * k * harmonics * bands * F0_BINS)
    return float(cfg.n_layers * block + once)
