"""The V2A Next-DiT's architecture, stated once (Lumina-V2A, arXiv 2502.06782 appendix D, Figure 8).

`V2AConfig` holds the constructor arguments of `V2ANextDiT`; `to_dict()` is what `config.json` stores
and what the model registers with diffusers' `ConfigMixin`, `from_dict()` reads it back (metadata keys
and diffusers' "_" keys skipped, an unknown key is a ValueError). The defaults are the "V2A-L" size
over the audio VAE of `lumina_video.audio` (8 channels, 16 mel rows, 25 latent frames/s).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from .. import _checks
from .config import METADATA_KEYS

V2A_AXES_LENS = (2048, 64)  # RoPE limits in tokens: (time, frequency); 2048 tokens = 81.9 s at (1, 2)
LATENT_ROWS = 16  # mel rows of the audio VAE's latent (64 log-mel bands / 4), lowest frequency first
MEL_BANDS = 64  # log-mel bands of the audio path (audio/mel.py): the harmonic map's bands


@dataclass
class V2AConfig:
    """Architecture of a `V2ANextDiT`.

    in_channels:        audio VAE latent channels C (8).
    latent_rate:        audio latent frames per second (25 for the AudioLDM-shaped VAE: 100 mel frames/s / 4).
    patch_time, patch_freq: the patch (pt, pf) in latent frames x mel rows; tokens are time-major.
    dim, n_layers:      transformer width and depth.
    n_heads, n_kv_heads: query heads and key/value heads (None means n_heads); head_dim = dim / n_heads
                        must be divisible by 4 (2D RoPE: half the channels rotate with time, half with frequency).
    multiple_of, ffn_dim_multiplier, norm_eps, qk_norm: as in NextDiTConfig.
    visual_feat_dim:    width of the per-frame visual features (CLIP image embeddings).
    text_feat_dim:      width of the text token features (CLIP text encoder states).
    sync_feat_dim:      width of the high-frame-rate sync features (Synchformer: 768).
    rope_theta:         base of the RoPE frequencies (10000: time runs to hundreds of tokens).
    t_scale:            t in [0, 1] is multiplied by this before its sinusoidal embedding.
    axes_lens:          RoPE table limits in tokens (time, frequency).
    sync_envelope_bands: B > 0 adds the sync envelope head (model/v2a.py, step 1b): a linear map of each sync
                        feature to the sound it predicts at that time (onset strength, loudness and B log-mel
                        bands, lowest first), trained by the sync encoder's auxiliary target, whose bands are
                        added to the audio tokens of their frequency row. B must split evenly over the
                        LATENT_ROWS / patch_freq token rows. 0 (the default): no head.
    sync_harmonics:     K > 0 (>= 2; needs sync_envelope_bands = the 64 mel bands) adds the harmonic sync head
                        (model/v2a.py step 1c, model/v2a_harmonics.py): f0, voicing and the amplitudes of
                        harmonics 2..K predicted from the sync features and rendered to the 64 mel bands; that
                        map replaces the envelope head's bands as the tokens' per-row input. 0: none.
    sync_timbre_dim:    the sync features' last `sync_timbre_dim` channels are the sync encoder's colour-blind
                        timbre branch (encoders/sync.py): only the harmonic amplitudes read them; everything
                        else reads the first `sync_feat_dim`. The sync input is `sync_width` wide. 0: none.
    """

    in_channels: int = 8
    latent_rate: float = 25.0
    patch_time: int = 1
    patch_freq: int = 2
    dim: int = 1536
    n_layers: int = 24
    n_heads: int = 24
    n_kv_heads: int | None = 8
    multiple_of: int = 256
    ffn_dim_multiplier: float | None = None
    norm_eps: float = 1e-5
    qk_norm: bool = True
    visual_feat_dim: int = 1024
    text_feat_dim: int = 1024
    sync_feat_dim: int = 768
    rope_theta: float = 10000.0
    t_scale: float = 1000.0
    axes_lens: tuple[int, int] = V2A_AXES_LENS
    sync_envelope_bands: int = 0
    sync_harmonics: int = 0
    sync_timbre_dim: int = 0

    def __post_init__(self):
        self.axes_lens = tuple(self.axes_lens)
        for key in ("in_channels", "patch_time", "patch_freq", "dim", "n_layers", "n_heads", "multiple_of",
                    "visual_feat_dim", "text_feat_dim", "sync_feat_dim"):
            _checks.positive_int(getattr(self, key), key)
        _checks.positive_number(self.latent_rate, "latent_rate")
        self.n_kv_heads = self.n_heads if self.n_kv_heads is None else _checks.positive_int(self.n_kv_heads,
                                                                                              "n_kv_heads")
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 4:
            raise ValueError(f"dim {self.dim} / n_heads {self.n_heads} must be an integer head_dim divisible by 4 "
                             f"(2D RoPE over time and frequency)")
        _checks.non_negative_int(self.sync_envelope_bands, "sync_envelope_bands")
        if self.sync_envelope_bands and (LATENT_ROWS % self.patch_freq
                                         or self.sync_envelope_bands % (LATENT_ROWS // self.patch_freq)):
            raise ValueError(f"sync_envelope_bands {self.sync_envelope_bands} must split evenly over the "
                             f"{LATENT_ROWS} / patch_freq {self.patch_freq} token rows of the audio latent")
        _checks.non_negative_int(self.sync_harmonics, "sync_harmonics")
        _checks.non_negative_int(self.sync_timbre_dim, "sync_timbre_dim")
        if self.sync_harmonics and (self.sync_harmonics < 2 or self.sync_envelope_bands != MEL_BANDS):
            raise ValueError(f"sync_harmonics {self.sync_harmonics} needs K >= 2 and sync_envelope_bands = the "
                             f"{MEL_BANDS} mel bands (got {self.sync_envelope_bands})")
        if self.sync_timbre_dim and not self.sync_harmonics:
            raise ValueError("sync_timbre_dim > 0 needs the harmonic sync head (sync_harmonics > 0): only it reads "
                             "the timbre channels")
        if len(self.axes_lens) != 2:
            raise ValueError(f"axes_lens must be two token limits (time, frequency), got {list(self.axes_lens)}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def cond_dim(self) -> int:
        """Width of the conditioning vectors c (min(dim, 1024), as the video model)."""
        return min(self.dim, 1024)

    @property
    def token_rate(self) -> float:
        """Audio token columns per second: latent_rate / patch_time."""
        return self.latent_rate / self.patch_time

    def audio_tokens(self, seconds: float, mel_rows: int = 16) -> int:
        """Tokens of a clip of `seconds`: ceil(seconds * latent_rate / pt) columns x mel_rows / pf rows."""
        return math.ceil(seconds * self.token_rate - 1e-9) * (mel_rows // self.patch_freq)

    @property
    def envelope_rows(self) -> int:
        """Token rows of the latent (LATENT_ROWS / patch_freq): the sync envelope's bands are split over them."""
        return LATENT_ROWS // self.patch_freq

    @property
    def envelope_token_width(self) -> int:
        """Features the sync envelope gives each token: onset strength, loudness (and voicing, with the harmonic
        head) and its row's bands (of the harmonic map, with the harmonic head)."""
        if not self.sync_envelope_bands:
            return 0
        return 2 + bool(self.sync_harmonics) + self.sync_envelope_bands // self.envelope_rows

    @property
    def sync_width(self) -> int:
        """Channels of the sync input: sync_feat_dim, then the sync_timbre_dim timbre channels."""
        return self.sync_feat_dim + self.sync_timbre_dim

    @property
    def sync_head_width(self) -> int:
        """Channels of `forward(..., return_envelope=True)`'s head output: 2 + B, then with the harmonic head
        F0_BINS f0 logits, 1 voicing logit and K - 1 harmonic amplitudes (v2a_harmonics.split_outputs)."""
        from .v2a_harmonics import F0_BINS

        extra = F0_BINS + self.sync_harmonics if self.sync_harmonics else 0
        return 2 + self.sync_envelope_bands + extra if self.sync_envelope_bands else 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["axes_lens"] = list(d["axes_lens"])
        return d

    @classmethod
    def from_dict(cls, config) -> V2AConfig:
        """The config of a `to_dict()` / config.json dict (or `model.config`); unknown keys refused."""
        accepted = [f.name for f in fields(cls)]
        unknown = sorted(k for k in set(config) - set(accepted) - METADATA_KEYS if not k.startswith("_"))
        if unknown:
            raise ValueError(f"unknown V2A model config keys {unknown}; accepted: {sorted(accepted)}")
        return cls(**{k: v for k, v in config.items() if k in accepted})
