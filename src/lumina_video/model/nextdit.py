"""Multi-scale Next-DiT: one transformer backbone shared by several patch sizes (docs/REFERENCE.md §1).

velocity = model(x, t, cap_feats, cap_mask, motion_score, patch_size, f_patch_size)

The model is pure: no guidance, schedules or distribution code here.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from .. import files
from .attention import BACKENDS, Attention
from .blocks import FinalLayer, TransformerBlock
from .config import METADATA_KEYS, NextDiTConfig
from .embed import TimestepEmbedder, caption_embedder, check_divisible, masked_mean, patchify, token_grid, unpatchify
from .rope import RoPE3D

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
__all__ = ["MultiScaleNextDiT", "NextDiTConfig", "METADATA_KEYS", "patch_key", "clean_state_dict",
           "load_state_dict_checked", "count_params"]


def patch_key(patch_size: int, f_patch_size: int) -> str:
    """Module-dict key of a patch shape, spatial first: (pt=1, p=2) -> "2-1"."""
    return f"{patch_size}-{f_patch_size}"


def _resolve_config(config, fields: dict) -> NextDiTConfig:
    """A NextDiTConfig from a config object, a config dict and/or keyword fields (keywords win)."""
    if config is None:
        return NextDiTConfig(**fields)
    if isinstance(config, dict):
        config = NextDiTConfig.from_dict(config)
    if not isinstance(config, NextDiTConfig):
        raise TypeError(f"config must be a NextDiTConfig or a dict, got {type(config).__name__}; "
                        f"pass the architecture's fields by keyword")
    return replace(config, **fields) if fields else config


class MultiScaleNextDiT(nn.Module):
    """One transformer backbone shared by several patch shapes (docs/REFERENCE.md §1).

    Built from a `NextDiTConfig` (or its dict, e.g. a config.json) or from its fields as keywords:
    `MultiScaleNextDiT(config)`, `MultiScaleNextDiT(dim=256, n_layers=6, ...)`, or both (keywords
    replace the config's fields). The arguments, all documented on `NextDiTConfig`:

        all_patch_size, all_f_patch_size   spatial and temporal patch sizes, one pair per patch shape
        in_channels, dim, n_layers         latent channels, width, depth
        n_heads, n_kv_heads                query and key/value heads (grouped-query attention)
        multiple_of, ffn_dim_multiplier    FFN width rounding and factor
        norm_eps, qk_norm                  RMSNorm epsilon; LayerNorm on queries and keys
        cap_feat_dim                       width of the caption features
        rope_theta, axes_lens              3D RoPE base and table limits
        t_scale, motion_scale              factors on t and on the motion score before embedding

    `attention_backend` ("auto", "sdpa" or "flash") picks the attention kernel of this model only
    (see `set_attention_backend`); it is not part of the config. `model.config` is the config as a
    dict with the official names.
    """

    def __init__(self, config: NextDiTConfig | dict | None = None, *, attention_backend: str = "auto", **fields):
        super().__init__()
        cfg = _resolve_config(config, fields)
        self.config = cfg.to_dict()
        self.in_channels = cfg.in_channels
        self.t_scale = cfg.t_scale
        self.motion_scale = cfg.motion_scale
        self.patch_shapes = cfg.patch_shapes
        cond_dim = min(cfg.dim, 1024)

        self.all_x_embedder = nn.ModuleDict()
        self.all_final_layer = nn.ModuleDict()
        for pt, p in self.patch_shapes:
            width = pt * p * p * cfg.in_channels
            self.all_x_embedder[patch_key(p, pt)] = nn.Linear(width, cfg.dim)
            self.all_final_layer[patch_key(p, pt)] = FinalLayer(cfg.dim, width, cond_dim)

        self.t_embedder = TimestepEmbedder(cond_dim)
        self.motion_embedder = TimestepEmbedder(cond_dim)
        self.cap_embedder = caption_embedder(cfg.cap_feat_dim, cond_dim, eps=1e-5)
        self.layers = nn.ModuleList(
            TransformerBlock(cfg.dim, cfg.n_heads, cfg.n_kv_heads, cfg.multiple_of, cfg.ffn_dim_multiplier,
                             cfg.norm_eps, cfg.qk_norm, cfg.cap_feat_dim, cond_dim)
            for _ in range(cfg.n_layers)
        )
        self.pad_token = nn.Parameter(torch.empty(cfg.dim))  # in the official state dict, unused in forward
        self.rope = RoPE3D(cfg.dim // cfg.n_heads, cfg.rope_theta, cfg.axes_lens)
        self.set_attention_backend(attention_backend)
        self.initialize_weights()

    # ------------------------------------------------------------------------------------------
    def initialize_weights(self):
        """Training-from-scratch initialisation (docs/REFERENCE.md §1), all in one place."""
        if self.pad_token.is_meta:
            return
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.pad_token, std=0.02)
        for emb in (self.t_embedder, self.motion_embedder):
            nn.init.normal_(emb.mlp[0].weight, std=0.02)
            nn.init.normal_(emb.mlp[2].weight, std=0.02)
        nn.init.zeros_(self.motion_embedder.mlp[2].weight)
        nn.init.zeros_(self.motion_embedder.mlp[2].bias)
        nn.init.zeros_(self.cap_embedder[1].weight)
        nn.init.zeros_(self.cap_embedder[1].bias)
        for block in self.layers:
            nn.init.zeros_(block.adaLN_modulation[1].weight)
            nn.init.zeros_(block.adaLN_modulation[1].bias)
            nn.init.zeros_(block.attention.gate)
        for final in self.all_final_layer.values():
            for lin in (final.adaLN_modulation[1], final.linear):
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)

    @property
    def dtype(self) -> torch.dtype:
        return self.pad_token.dtype

    @property
    def device(self) -> torch.device:
        return self.pad_token.device

    def has_patch(self, patch_size: int, f_patch_size: int) -> bool:
        """Whether the model has the patch shape (pt=f_patch_size, p=patch_size); keywords welcome."""
        return patch_key(patch_size, f_patch_size) in self.all_x_embedder

    def set_attention_backend(self, backend: str) -> None:
        """Attention kernel of every block of this model: "auto" (flash-attention when it is installed
        and the tensors are half precision on CUDA, else SDPA), "sdpa" or "flash" (an error when unusable)."""
        if backend not in BACKENDS:
            raise ValueError(f"attention_backend must be one of {list(BACKENDS)}, got {backend!r}")
        self.attention_backend = backend
        for module in self.modules():
            if isinstance(module, Attention):
                module.backend = backend

    # ------------------------------------------------------------------------------------------
    def _check_inputs(self, items, t, cap_feats, cap_mask, motion_score, patch_size, f_patch_size):
        key = patch_key(patch_size, f_patch_size)
        if key not in self.all_x_embedder:
            have = ", ".join(f"(pt={pt}, p={p})" for pt, p in self.patch_shapes)
            raise ValueError(
                f"this model has no patch shape (pt={f_patch_size}, p={patch_size}); it has {have}"
            )
        b = len(items)
        for i, shape in enumerate(items):
            if len(shape) != 4 or shape[0] != self.in_channels:
                raise ValueError(
                    f"item {i} has shape {tuple(shape)}; expected (C, F, H, W) with C = {self.in_channels}"
                )
            check_divisible(shape, f_patch_size, patch_size, what=f"item {i}")
            self.rope.check_grid(token_grid(shape, f_patch_size, patch_size))
        for name, v, want in (("t", t, (b,)), ("motion_score", motion_score, (b,))):
            if v is not None and tuple(v.shape) != want:
                raise ValueError(f"{name} has shape {tuple(v.shape)}; expected {want} for a batch of {b}")
        if cap_feats.dim() != 3 or cap_feats.shape[0] != b or cap_feats.shape[2] != self.config["cap_feat_dim"]:
            raise ValueError(
                f"cap_feats has shape {tuple(cap_feats.shape)}; expected (B={b}, L, "
                f"cap_feat_dim={self.config['cap_feat_dim']})"
            )
        if tuple(cap_mask.shape) != tuple(cap_feats.shape[:2]):
            raise ValueError(f"cap_mask has shape {tuple(cap_mask.shape)}; expected {tuple(cap_feats.shape[:2])}")
        if not bool((cap_mask != 0).any(dim=1).all()):
            raise ValueError("every row of cap_mask needs at least one real token (1); got an all-zero row")

    def _condition(self, t, cap_feats, cap_mask, motion_score):
        """c = t_emb + pooled caption emb + motion emb (zero where the motion score is absent, < 0)."""
        c = self.t_embedder(t * self.t_scale)
        c = c + self.cap_embedder(masked_mean(cap_feats, cap_mask))
        if motion_score is not None:
            m = motion_score.to(torch.float32) * self.motion_scale
            present = m >= 0
            if bool(present.any()):
                emb = self.motion_embedder(m)
                c = c + torch.where(present[:, None], emb, torch.zeros_like(emb))
        return c

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor], t: torch.Tensor, cap_feats: torch.Tensor,
                cap_mask: torch.Tensor, motion_score: torch.Tensor | None = None, patch_size: int = 2,
                f_patch_size: int = 1) -> torch.Tensor | list[torch.Tensor]:
        """The velocity at x for the patch shape (pt=f_patch_size, p=patch_size).

        x: (B, C, F, H, W) tensor, or a list of (C, F, H, W) items of different sizes.
        t, motion_score: (B,) (motion < 0 or None = no motion condition). cap_feats (B, L, cap_feat_dim),
        cap_mask (B, L), 1 = real token. Returns the velocity in the same form and shapes as x."""
        is_list = isinstance(x, (list, tuple))
        shapes = [tuple(item.shape) for item in x] if is_list else [tuple(x.shape[1:])] * x.shape[0]
        if not is_list and x.dim() != 5:
            raise ValueError(f"x has shape {tuple(x.shape)}; expected (B, C, F, H, W) or a list of (C, F, H, W)")
        self._check_inputs(shapes, t, cap_feats, cap_mask, motion_score, patch_size, f_patch_size)
        key = patch_key(patch_size, f_patch_size)
        pt, p = f_patch_size, patch_size
        dtype, device = self.dtype, self.device
        out_dtype = x[0].dtype if is_list else x.dtype
        cap_feats = cap_feats.to(dtype)
        cap_mask = cap_mask.to(torch.bool)

        # 1-2. patchify (a uniform list is batched as a tensor) and embed
        uniform = len(set(shapes)) == 1
        if uniform:
            xb = torch.stack(list(x)) if is_list else x
            tokens = patchify(xb.to(dtype), pt, p)  # (B, N, pt*p*p*C)
            grid = token_grid(shapes[0], pt, p)
            freqs = self.rope.grid_freqs(grid, device)[None].expand(len(shapes), -1, -1)
            x_mask = None
        else:
            seqs = [patchify(item[None].to(dtype), pt, p)[0] for item in x]
            lens = [s.shape[0] for s in seqs]
            n_max = max(lens)
            tokens = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)  # (B, Nmax, patch)
            x_mask = torch.arange(n_max, device=device)[None] < torch.tensor(lens, device=device)[:, None]
            freqs = torch.ones(len(shapes), n_max, self.rope.head_dim // 2, dtype=torch.complex64, device=device)
            for i, shape in enumerate(shapes):
                freqs[i, : lens[i]] = self.rope.grid_freqs(token_grid(shape, pt, p), device)
        h = self.all_x_embedder[key](tokens)  # (B, N, dim)

        # 3-6. condition
        motion = None if motion_score is None else motion_score.to(device)
        c = self._condition(t.to(device), cap_feats, cap_mask, motion)

        # 7. blocks, final layer, unpatchify
        for layer in self.layers:
            h = layer(h, x_mask, freqs, cap_feats, cap_mask, c)
        out = self.all_final_layer[key](h, c)  # (B, N, pt*p*p*C)
        if uniform:
            out = unpatchify(out, shapes[0], pt, p).to(out_dtype)
            return list(out.unbind(0)) if is_list else out
        return [unpatchify(out[i : i + 1, : lens[i]], shapes[i], pt, p)[0].to(out_dtype) for i in range(len(shapes))]

    # ------------------------------------------------------------------------------------------
    # This project's folder format: config.json + model.safetensors (official key names).
    def save_pretrained(self, folder, dtype: torch.dtype | None = None) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        sd = {k: (v.to(dtype) if dtype is not None else v).detach().contiguous() for k, v in self.state_dict().items()}
        files.save_safetensors(sd, folder / WEIGHTS_NAME)
        stored = str(dtype or self.dtype).removeprefix("torch.")
        cfg = dict(self.config, format_version=FORMAT_VERSION, torch_dtype=stored)
        files.write_json(folder / CONFIG_NAME, cfg)

    @classmethod
    def from_config(cls, config: dict, device="cpu") -> MultiScaleNextDiT:
        """A freshly initialised model of a config dict (config.json: metadata keys skipped), built on `device`."""
        cfg = NextDiTConfig.from_dict(config)
        with torch.device(device):
            return cls(cfg)

    @classmethod
    def from_pretrained(cls, folder, dtype: torch.dtype | None = None, device="cpu") -> MultiScaleNextDiT:
        folder = Path(folder)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (folder / name).is_file():
                raise FileNotFoundError(
                    f"{folder} is not a MultiScaleNextDiT folder: {name} is missing (expected {CONFIG_NAME} "
                    f"and {WEIGHTS_NAME}; convert an official checkpoint with `lumina-video convert`)"
                )
        config = json.loads((folder / CONFIG_NAME).read_text())
        version = config.get("format_version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise ValueError(f"{folder}: format_version {version} is newer than this package reads ({FORMAT_VERSION})")
        model = cls.from_config(config, device="meta")
        sd = files.load_safetensors(folder / WEIGHTS_NAME, device=str(device))
        load_state_dict_checked(model, sd, assign=True)
        if dtype is not None:
            model.to(dtype)
        return model.eval()


def clean_state_dict(sd: dict) -> dict:
    """Strip compile wrappers (`_orig_mod.`) and DDP/FSDP prefixes (`module.`) from key names."""
    out = {}
    for k, v in sd.items():
        k = k.replace("_orig_mod.", "")
        if k.startswith("module."):
            k = k[len("module."):]
        out[k] = v
    return out


def load_state_dict_checked(model: nn.Module, sd: dict, assign: bool = False) -> None:
    """Strict load with one clear error listing missing, unexpected and mis-shaped keys."""
    sd = clean_state_dict(sd)
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    misshaped = [
        f"{k}: file {tuple(sd[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or misshaped:

        def show(title, items):
            if not items:
                return ""
            more = f" ... and {len(items) - 8} more" if len(items) > 8 else ""
            return f"\n  {title} ({len(items)}): " + ", ".join(items[:8]) + more

        raise ValueError(
            "state dict does not match the model (the official key names of docs/REFERENCE.md §1 are accepted, "
            "optionally with `_orig_mod.` or `module.` inside):"
            + show("missing", missing) + show("unexpected", unexpected) + show("mis-shaped", misshaped)
        )
    model.load_state_dict(sd, strict=True, assign=assign)


def count_params(model: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in model.parameters())
