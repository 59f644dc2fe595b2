"""Multi-scale Next-DiT: one transformer backbone shared by several patch sizes (REFERENCE.md §1).

velocity = model(x, t, cap_feats, cap_mask, motion_score, patch_size, f_patch_size)

The model is pure: no guidance, schedules or distribution code here.
"""
from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import torch
from torch import nn

from .. import files
from .blocks import FinalLayer, TransformerBlock
from .embed import (TimestepEmbedder, caption_embedder, check_divisible, masked_mean, patchify,
                    token_grid, unpatchify)
from .rope import DEFAULT_AXES_LENS, RoPE3D

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
METADATA_KEYS = {"format_version", "torch_dtype", "converted_from"}  # in config.json, not constructor args


def patch_key(patch_size: int, f_patch_size: int) -> str:
    """Module-dict key of a patch shape, spatial first: (pt=1, p=2) -> "2-1"."""
    return f"{patch_size}-{f_patch_size}"


class MultiScaleNextDiT(nn.Module):
    def __init__(
        self,
        all_patch_size=(2, 2, 4),
        all_f_patch_size=(1, 2, 2),
        in_channels: int = 16,
        dim: int = 2304,
        n_layers: int = 24,
        n_heads: int = 16,
        n_kv_heads: int | None = 8,
        multiple_of: int = 256,
        ffn_dim_multiplier: float | None = None,
        norm_eps: float = 1e-5,
        qk_norm: bool = True,
        cap_feat_dim: int = 2304,
        rope_theta: float = 256.0,
        t_scale: float = 1000.0,
        motion_scale: float = 20.0,
        axes_lens=DEFAULT_AXES_LENS,
    ):
        super().__init__()
        all_patch_size, all_f_patch_size = list(all_patch_size), list(all_f_patch_size)
        if len(all_patch_size) != len(all_f_patch_size) or not all_patch_size:
            raise ValueError(
                f"all_patch_size {all_patch_size} and all_f_patch_size {all_f_patch_size} must be "
                f"non-empty lists of the same length (one spatial and one temporal size per patch shape)"
            )
        n_kv_heads = n_kv_heads or n_heads
        self.config = dict(
            all_patch_size=all_patch_size, all_f_patch_size=all_f_patch_size, in_channels=in_channels,
            dim=dim, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv_heads, multiple_of=multiple_of,
            ffn_dim_multiplier=ffn_dim_multiplier, norm_eps=norm_eps, qk_norm=qk_norm,
            cap_feat_dim=cap_feat_dim, rope_theta=rope_theta, t_scale=t_scale, motion_scale=motion_scale,
            axes_lens=list(axes_lens),
        )
        self.in_channels = in_channels
        self.t_scale = t_scale
        self.motion_scale = motion_scale
        cond_dim = min(dim, 1024)
        self.patch_shapes = [(pt, p) for p, pt in zip(all_patch_size, all_f_patch_size)]

        self.all_x_embedder = nn.ModuleDict()
        self.all_final_layer = nn.ModuleDict()
        for pt, p in self.patch_shapes:
            width = pt * p * p * in_channels
            self.all_x_embedder[patch_key(p, pt)] = nn.Linear(width, dim)
            self.all_final_layer[patch_key(p, pt)] = FinalLayer(dim, width, cond_dim)

        self.t_embedder = TimestepEmbedder(cond_dim)
        self.motion_embedder = TimestepEmbedder(cond_dim)
        self.cap_embedder = caption_embedder(cap_feat_dim, cond_dim, eps=1e-5)
        self.layers = nn.ModuleList(
            TransformerBlock(dim, n_heads, n_kv_heads, multiple_of, ffn_dim_multiplier, norm_eps, qk_norm,
                             cap_feat_dim, cond_dim)
            for _ in range(n_layers)
        )
        self.pad_token = nn.Parameter(torch.empty(dim))  # in the official state dict, unused in forward
        self.rope = RoPE3D(dim // n_heads, rope_theta, axes_lens)
        self.initialize_weights()

    # ------------------------------------------------------------------------------------------
    def initialize_weights(self):
        """Training-from-scratch initialisation (REFERENCE.md §1), all in one place."""
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

    def patch_keys(self) -> list[str]:
        return list(self.all_x_embedder.keys())

    def has_patch(self, patch_size: int, f_patch_size: int) -> bool:
        return patch_key(patch_size, f_patch_size) in self.all_x_embedder

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

    def forward(self, x, t, cap_feats, cap_mask, motion_score=None, patch_size: int = 2, f_patch_size: int = 1):
        """x: (B, C, F, H, W) tensor, or a list of (C, F, H, W) items of different sizes.
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
        c = self._condition(t.to(device), cap_feats, cap_mask, None if motion_score is None else motion_score.to(device))

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
        cfg = dict(self.config, format_version=FORMAT_VERSION, torch_dtype=str(dtype or self.dtype).replace("torch.", ""))
        files.write_json(folder / CONFIG_NAME, cfg)

    @classmethod
    def from_config(cls, config: dict, device="cpu") -> "MultiScaleNextDiT":
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
        unknown = sorted(set(config) - accepted - METADATA_KEYS)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; accepted: {sorted(accepted)}")
        cfg = {k: v for k, v in config.items() if k in accepted}
        with torch.device(device):
            return cls(**cfg)

    @classmethod
    def from_pretrained(cls, folder, dtype: torch.dtype | None = None, device="cpu") -> "MultiScaleNextDiT":
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
            "state dict does not match the model (the official key names of REFERENCE.md §1 are accepted, "
            "optionally with `_orig_mod.` or `module.` inside):"
            + show("missing", missing) + show("unexpected", unexpected) + show("mis-shaped", misshaped)
        )
    model.load_state_dict(sd, strict=True, assign=assign)


def count_params(model: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in model.parameters())
