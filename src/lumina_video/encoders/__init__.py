"""Frozen encoders around the denoiser: the text encoder (prompts -> cap_feats, cap_mask) and the
video VAE (pixels <-> latents)."""
from .text import (
    DEFAULT_SYSTEM_PROMPT,
    RELEASED_SYSTEM_PROMPT,
    SHORT_SYSTEM_PROMPT,
    PromptTruncatedWarning,
    TextEncoder,
    TextEncoderSettings,
    minilm_path,
)
from .vae import LATENT_SCALE, VideoVAE, tiny_config

__all__ = ["TextEncoder", "TextEncoderSettings", "PromptTruncatedWarning", "DEFAULT_SYSTEM_PROMPT",
           "RELEASED_SYSTEM_PROMPT", "SHORT_SYSTEM_PROMPT", "minilm_path", "VideoVAE", "LATENT_SCALE", "tiny_config"]
