"""Multi-scale Next-DiT: one transformer backbone shared by several patch sizes (docs/REFERENCE.md §1).

velocity = model(x, t, cap_feats, cap_mask, motion_score, patch_size, f_patch_size)

The model is pure: no guidance, schedules or distribution code here. It is a diffusers model
(`ModelMixin`, `ConfigMixin`): its config is registered once, from `NextDiTConfig`, so diffusers'
machinery applies to it: `DiffusionPipeline` loading and offloading, `enable_group_offload`,
`enable_layerwise_casting` (e.g. fp8 storage), `compile_repeated_blocks`, `ModelMixin.save_pretrained`.
"""
from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from diffusers import ConfigMixin, ModelMixin
from torch import nn

from .. import files
from .attention import BACKENDS, Attention
from .blocks import FinalLayer, TransformerBlock
from .config import METADATA_KEYS, NextDiTConfig
from .embed import TimestepEmbedder, caption_embedder, check_divisible, masked_mean, patchify, token_grid, unpatchify
from .folder import (
    CONFIG_NAME,
    FORMAT_VERSION,
    WEIGHTS_NAME,
    check_loading_kwargs,
    clean_state_dict,
    count_params,
    is_diffusers_folder,
    load_state_dict_checked,
    loading_device,
    loading_dtype,
    save_model_folder,
)
from .rope import RoPE3D

__all__ = ["MultiScaleNextDiT", "NextDiTConfig", "METADATA_KEYS", "patch_key", "clean_state_dict",
           "load_state_dict_checked", "count_params", "CONFIG_NAME", "WEIGHTS_NAME", "FORMAT_VERSION",
           "config_file_dict"]


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


def config_file_dict(config, torch_dtype: str, **extra) -> dict:
    """The body of a model folder's config.json: the official fields, diffusers' class keys, our metadata."""
    import diffusers

    return dict(_class_name="MultiScaleNextDiT", _diffusers_version=diffusers.__version__,
                **NextDiTConfig.from_dict(config).to_dict(), format_version=FORMAT_VERSION, torch_dtype=torch_dtype,
                **extra)


class MultiScaleNextDiT(ModelMixin, ConfigMixin):
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
    (see `set_attention_backend`, which replaces diffusers' method of that name: this model has its
    own attention); it is not part of the config. `model.config` is the config registered with
    diffusers' ConfigMixin: a frozen dict of the official names, in NextDiTConfig's order.
    """

    config_name = CONFIG_NAME
    _no_split_modules = ["TransformerBlock"]  # device_map="auto" keeps a block on one device
    _repeated_blocks = ["TransformerBlock"]  # compile_repeated_blocks
    _skip_layerwise_casting_patterns = ["x_embedder", "norm"]  # patch embedders stay in the compute dtype

    def __init__(self, config: NextDiTConfig | dict | None = None, *, attention_backend: str = "auto", **fields):
        super().__init__()
        cfg = _resolve_config(config, fields)
        self.register_to_config(**cfg.to_dict())  # the one config: model.config, config.json
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

    @contextlib.contextmanager
    def caption_cache(self):
        """Within the block, every block's caption keys and values are computed once per caption tensor
        and reused by later forward passes (they depend on the caption alone, not on x, t or the patch).

        Entries are keyed by the caller's `cap_feats` tensor as passed (storage, offset, shape, strides,
        dtype, in-place version), so the sampler's guided batch (2B rows) and unguided batch (its first
        B rows, a view of the same storage) get separate entries, and a new prompt a new one; an entry
        holds its caption tensor, so its storage cannot be reused for another caption while cached.
        Leaving the block drops them all. Outputs are identical to running without the cache."""
        previous, self._caption_cache = self._caption_cache, {}
        try:
            yield self
        finally:
            self._caption_cache = previous

    _caption_cache: dict | None = None  # {caption key: (caption tensor, [(keys, values) per block])} when on
    _blocks_compiled = False  # compile_blocks has run

    def _caption_kvs(self, key, cap_feats: torch.Tensor) -> list:
        """Per block (keys, values) of the caption: cached under `key` in a caption_cache, else None each
        (each block computes its own)."""
        cache = self._caption_cache
        if cache is None:
            return [None] * len(self.layers)
        entry = cache.get(key[1:])
        if entry is None:
            kvs = [tuple(_not_a_view(t) for t in layer.caption_kv(cap_feats)) for layer in self.layers]
            entry = (key[0], kvs)
            cache[key[1:]] = entry
        return entry[1]

    def compile_blocks(self, **compile_kwargs) -> MultiScaleNextDiT:
        """torch.compile every TransformerBlock in place (diffusers' `compile_repeated_blocks`), by
        default with `dynamic=True`: one graph serves all token counts, so the patch-size stages of a
        multi-scale schedule do not each recompile. Returns the model."""
        compile_kwargs.setdefault("dynamic", True)
        self.compile_repeated_blocks(**compile_kwargs)
        self._blocks_compiled = True
        return self

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
        c = self.t_embedder(t * self.t_scale, self.dtype)
        c = c + self.cap_embedder(masked_mean(cap_feats, cap_mask))
        if motion_score is not None:
            m = motion_score.to(torch.float32) * self.motion_scale
            present = m >= 0
            if bool(present.any()):
                emb = self.motion_embedder(m, self.dtype)
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
        caption_key = _tensor_key(cap_feats)  # the caller's tensor, before any cast
        cap_feats = cap_feats.to(dtype)
        cap_mask = cap_mask.to(torch.bool)

        # 1-2. patchify (a uniform list is batched as a tensor) and embed
        uniform = len(set(shapes)) == 1
        if uniform:
            xb = torch.stack(list(x)) if is_list else x
            tokens = patchify(xb.to(dtype), pt, p)  # (B, N, pt*p*p*C)
            grid = token_grid(shapes[0], pt, p)
            freqs = self.rope.grid_freqs(grid, device)[None]  # (1, N, head_dim/2): broadcast over the batch
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

        # 7. blocks (caption keys/values from the cache when one is on), final layer, unpatchify
        kvs = self._caption_kvs(caption_key, cap_feats)
        if self._blocks_compiled:  # views as block inputs would add guards on their bases (and recompiles)
            h, freqs, cap_feats, cap_mask, c = (_not_a_view(v) for v in (h, freqs, cap_feats, cap_mask, c))
        for layer, kv in zip(self.layers, kvs):
            h = layer(h, x_mask, freqs, cap_feats, cap_mask, c, cap_kv=kv)
        out = self.all_final_layer[key](h, c)  # (B, N, pt*p*p*C)
        if uniform:
            out = unpatchify(out, shapes[0], pt, p).to(out_dtype)
            return list(out.unbind(0)) if is_list else out
        return [unpatchify(out[i : i + 1, : lens[i]], shapes[i], pt, p)[0].to(out_dtype) for i in range(len(shapes))]

    # ------------------------------------------------------------------------------------------
    # This project's folder format (model/folder.py): config.json + model.safetensors (official key names).
    def save_pretrained(self, folder, dtype: torch.dtype | None = None) -> None:
        """Write config.json and model.safetensors (in `dtype`, default the model's). For diffusers'
        own format (shards, variants), call `diffusers.ModelMixin.save_pretrained(model, folder)`."""
        save_model_folder(self, folder, dtype, config_file_dict)

    @classmethod
    def from_config(cls, config=None, device=None, return_unused_kwargs: bool = False, **kwargs):
        """A freshly initialised model of a config: a config.json dict (metadata and "_" keys skipped,
        unknown keys refused), `model.config` or a NextDiTConfig, built on `device` (e.g. "meta"; None:
        torch's default, so diffusers' empty-weights loading applies). Keywords replace config fields,
        as in diffusers' `from_config`; `attention_backend` picks the kernel."""
        cfg = config if isinstance(config, NextDiTConfig) else NextDiTConfig.from_dict(config or {})
        with torch.device(device) if device is not None else contextlib.nullcontext():
            model = cls(cfg, **kwargs)
        return (model, {}) if return_unused_kwargs else model

    @classmethod
    def from_pretrained(cls, folder, dtype: torch.dtype | None = None, device="cpu", **kwargs) -> MultiScaleNextDiT:
        """Load a model folder: this project's (config.json + model.safetensors, as `save_pretrained` and
        `lumina-video convert` write; `subfolder=` as in diffusers), or else a diffusers one (local
        or a hub id), which `ModelMixin.from_pretrained` loads with all its options (variant, device_map,
        quantization_config, ...). `dtype`: the weights' dtype; None keeps the stored dtype. diffusers'
        `torch_dtype` and `device_map` keywords are accepted with diffusers' meaning (torch_dtype=None:
        float32), so DiffusionPipeline.from_pretrained can load this class as a pipeline component."""
        dtype = loading_dtype(dtype, kwargs)
        subfolder = kwargs.pop("subfolder", None)
        local = Path(folder) / subfolder if subfolder else Path(folder)
        if is_diffusers_folder(local) or (not local.exists() and _is_hub_id(folder)):
            model = super().from_pretrained(folder, subfolder=subfolder, torch_dtype=dtype, **kwargs)
            return model if "device_map" in kwargs else model.to(device)
        device = loading_device(device, kwargs)
        check_loading_kwargs(kwargs)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (local / name).is_file():
                raise FileNotFoundError(
                    f"{local} is not a MultiScaleNextDiT folder: {name} is missing (expected {CONFIG_NAME} "
                    f"and {WEIGHTS_NAME}; convert an official checkpoint with `lumina-video convert`)"
                )
        config = json.loads((local / CONFIG_NAME).read_text())
        version = config.get("format_version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise ValueError(f"{local}: format_version {version} is newer than this package reads ({FORMAT_VERSION})")
        model = cls.from_config(config, device="meta")
        load_state_dict_checked(model, files.load_safetensors(local / WEIGHTS_NAME, device=str(device)), assign=True)
        if dtype is not None:
            nn.Module.to(model, dtype)  # nn.Module's: diffusers 0.42's to() warns about float32 modules it lacks
        return model.eval()


def _not_a_view(t: torch.Tensor | None) -> torch.Tensor | None:
    """t, or a copy of it when t is a view (its own storage, so torch.compile guards t alone)."""
    return t.clone() if t is not None and t._base is not None else t


def _tensor_key(t: torch.Tensor) -> tuple:
    """(t, and what identifies its values while t is alive): storage address, offset, shape, strides,
    dtype, device and in-place version (views share their base's version counter)."""
    try:
        version = t._version
    except RuntimeError:  # an inference-mode tensor has no version counter (and cannot be changed in place)
        version = -1
    return (t, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype,
            str(t.device), version)


def _is_hub_id(name) -> bool:
    """"owner/name": a Hugging Face hub id (diffusers downloads it, or reads its cache offline)."""
    parts = str(name).split("/")
    return len(parts) == 2 and all(parts) and not str(name).startswith((".", "~"))
