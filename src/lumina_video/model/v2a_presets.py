"""V2A model size presets (a table of their own; the video model's are in presets.py).

Each fixes dim, n_layers, n_heads and n_kv_heads; every other `V2AConfig` field is a keyword:

    build_v2a_model("V2A-S", visual_feat_dim=512, text_feat_dim=512)

The paper gives no size. "V2A-L" (dim 1536, 24 layers, 24 heads of 64, 8 kv heads; 0.80B parameters
with CLIP-L widths 1024/1024 and Synchformer's 768) sits between MMAudio-S (157M) and -L (1.03B), nearer
-L: its 2D (time x frequency) tokens make an 8 s clip 1600 tokens against MMAudio's 250 latent
frames, so the same width costs more per clip; at 0.80B an 8 s clip (1600 audio, 64 visual, 77 text
tokens) is 2.84 TFLOPs per forward pass, 7.2 ms on an H100 at 40% of 989 TFLOP/s bf16, 0.36 s for 25
guided steps (`v2a_flops_per_item`).
"V2A-S" (2.9M with 512/384/768-wide features) trains on a 2-core CPU; "V2A-Tiny" is for tests.
"""
from __future__ import annotations

from .v2a import V2ANextDiT

V2A_PRESETS: dict[str, dict[str, int]] = {
    "V2A-L": dict(dim=1536, n_layers=24, n_heads=24, n_kv_heads=8),  # full size, GPUs with real encoders
    "V2A-S": dict(dim=192, n_layers=4, n_heads=3, n_kv_heads=1),  # demo size, CPU training
    "V2A-Tiny": dict(dim=64, n_layers=2, n_heads=2, n_kv_heads=1),  # tests
}


def build_v2a_model(preset: str, **kwargs) -> V2ANextDiT:
    """The V2A model of size V2A_PRESETS[preset] with the other `V2AConfig` fields from `kwargs`."""
    if preset not in V2A_PRESETS:
        raise ValueError(f"unknown V2A model preset {preset!r}; available: {', '.join(V2A_PRESETS)}")
    return V2ANextDiT(**V2A_PRESETS[preset], **kwargs)
