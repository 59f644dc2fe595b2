"""Encoders around the denoisers: the text encoder (prompts -> cap_feats, cap_mask), the video VAE
(pixels <-> latents), and for video-to-audio the CLIP-V frame encoder (visual.py), the sync encoder
interface and a small trainable one (sync.py), and timestamp resampling (clips.py)."""
from .clips import align_to_times, frame_times, resample_by_time
from .sync import SmallSyncConfig, SmallSyncEncoder, SyncEncoder, segments_to_timeline
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
from .visual import CLIPFrameEncoder, tiny_clip_vision_config

__all__ = ["TextEncoder", "TextEncoderSettings", "PromptTruncatedWarning", "DEFAULT_SYSTEM_PROMPT",
           "RELEASED_SYSTEM_PROMPT", "SHORT_SYSTEM_PROMPT", "minilm_path", "VideoVAE", "LATENT_SCALE", "tiny_config",
           "CLIPFrameEncoder", "tiny_clip_vision_config", "SyncEncoder", "SmallSyncEncoder", "SmallSyncConfig",
           "segments_to_timeline", "resample_by_time", "align_to_times", "frame_times"]
