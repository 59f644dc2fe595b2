"""The Multi-scale Next-DiT's architecture, stated once (docs/REFERENCE.md §1).

`NextDiTConfig` holds the 16 constructor arguments under the checkpoint's own names; its defaults
are the released 2B model. `to_dict()` is what `config.json` stores and what the model registers
with diffusers' `ConfigMixin` once (so `model.config` shows it); `from_dict()` reads it back (file
metadata such as `format_version` and diffusers' private `_class_name` / `_diffusers_version` keys
are ignored, an unknown key is a ValueError).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .. import _checks
from .rope import DEFAULT_AXES_LENS

METADATA_KEYS = frozenset({"format_version", "torch_dtype", "converted_from"})  # in config.json only


@dataclass
class NextDiTConfig:
    """Architecture of a `MultiScaleNextDiT`; the defaults are the released 2B model.

    all_patch_size:     spatial patch size p of each patch shape, e.g. (2, 2, 4).
    all_f_patch_size:   temporal patch size pt of each patch shape, paired with all_patch_size by
                        position, e.g. (1, 2, 2) -> shapes (pt, p) = (1, 2), (2, 2), (2, 4).
    in_channels:        latent channels C of the input (16 for the CogVideoX VAE).
    dim:                transformer width.
    n_layers:           number of transformer blocks.
    n_heads:            query heads; head_dim = dim / n_heads must be divisible by 8 (3D RoPE).
    n_kv_heads:         key/value heads (grouped-query attention); None means n_heads.
    multiple_of:        the FFN width is rounded up to a multiple of this.
    ffn_dim_multiplier: optional factor on the FFN width int(8 dim / 3); None for none.
    norm_eps:           epsilon of the blocks' RMSNorms.
    qk_norm:            LayerNorm on queries and keys (over the whole projected width).
    cap_feat_dim:       width of the caption features (the text encoder's hidden size).
    rope_theta:         base of the 3D RoPE frequencies.
    t_scale:            the time t in [0, 1] is multiplied by this before its sinusoidal embedding.
    motion_scale:       the motion score is multiplied by this before its embedding.
    axes_lens:          RoPE table limits in tokens (frames, height, width); not an official name.
    """

    all_patch_size: tuple[int, ...] = (2, 2, 4)
    all_f_patch_size: tuple[int, ...] = (1, 2, 2)
    in_channels: int = 16
    dim: int = 2304
    n_layers: int = 24
    n_heads: int = 16
    n_kv_heads: int | None = 8
    multiple_of: int = 256
    ffn_dim_multiplier: float | None = None
    norm_eps: float = 1e-5
    qk_norm: bool = True
    cap_feat_dim: int = 2304
    rope_theta: float = 256.0
    t_scale: float = 1000.0
    motion_scale: float = 20.0
    axes_lens: tuple[int, int, int] = DEFAULT_AXES_LENS

    def __post_init__(self):
        self.all_patch_size, self.all_f_patch_size = tuple(self.all_patch_size), tuple(self.all_f_patch_size)
        self.axes_lens = tuple(self.axes_lens)
        if len(self.all_patch_size) != len(self.all_f_patch_size) or not self.all_patch_size:
            raise ValueError(
                f"all_patch_size {list(self.all_patch_size)} and all_f_patch_size {list(self.all_f_patch_size)} "
                f"must be non-empty lists of the same length (one spatial and one temporal size per patch shape)"
            )
        for p, pt in zip(self.all_patch_size, self.all_f_patch_size):
            _checks.positive_int(p, "all_patch_size entry")
            _checks.positive_int(pt, "all_f_patch_size entry")
        for key in ("in_channels", "dim", "n_layers", "n_heads", "multiple_of", "cap_feat_dim"):
            _checks.positive_int(getattr(self, key), key)
        self.n_kv_heads = self.n_heads if self.n_kv_heads is None else _checks.positive_int(self.n_kv_heads,
                                                                                              "n_kv_heads")

    @property
    def patch_shapes(self) -> list[tuple[int, int]]:
        """[(pt, p), ...], temporal first, in the order of the config."""
        return [(pt, p) for p, pt in zip(self.all_patch_size, self.all_f_patch_size)]

    def to_dict(self) -> dict:
        """The official names and values, sequences as lists (the body of config.json)."""
        d = asdict(self)
        for key in ("all_patch_size", "all_f_patch_size", "axes_lens"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, config) -> NextDiTConfig:
        """The config of a `to_dict()` / config.json dict (or `model.config`); metadata keys and keys
        starting with "_" (diffusers' own) are skipped, unknown keys refused."""
        accepted = [f.name for f in fields(cls)]
        unknown = sorted(k for k in set(config) - set(accepted) - METADATA_KEYS if not k.startswith("_"))
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; accepted: {sorted(accepted)}")
        return cls(**{k: v for k, v in config.items() if k in accepted})
