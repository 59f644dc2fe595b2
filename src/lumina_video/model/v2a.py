"""Lumina-V2A: a Next-DiT that generates a soundtrack for a silent video (arXiv 2502.06782, appendix D,
Figure 8; never released, so the details below are this project's choices).

velocity = model(x, t, visual, visual_times, text, text_mask, sync, sync_times, ...)

Pure like the video model (no guidance, schedules or distribution here), built from the video model's
parts (`TransformerBlock`, `Attention`, `RoPE`, `TimestepEmbedder`, `caption_embedder`, `patchify`):

1. Tokens. The audio VAE latent x (B, C, T, M) (25 latent frames/s x 16 mel rows) is cut into
   (pt, pf) = (patch_time, patch_freq) patches (presets: (1, 2), one token column per 40 ms, the
   resolution of an onset), tokens time-major: token k M' + m is column k, mel row band m (M' = M / pf),
   seen by `patchify` as the video grid (F, H, W) = (T, M, 1). 2D RoPE over (time index, frequency index),
   half the head channels each (`RoPE` with two axes).
1b. Sync envelope (config `sync_envelope_bands` B > 0; off by default). A linear head maps each sync feature
   to the sound it predicts at that time, e(tau) = (onset strength, loudness, B log-mel bands low to high), the
   sync encoder's auxiliary target in training (`forward(..., return_envelope=True)` also returns it, from
   the sync features before any drop). Interpolated to the token column times, cut into the M' token rows
   (B / M' bands each), each token gets E_e([onset, loudness, its row's bands]) (zero-initialised linear)
   added to its embedding. The head's output is detached there: the denoiser reads it but does not train
   it, so the head stays a predictor of the sound (it generalises to unseen (colour, shape) pairs where the
   denoiser, fed the sync features alone, learnt each pair's note) and the band conditioning is aligned
   with the latent's frequency rows.
1c. Harmonic sync head (config `sync_harmonics` K > 0, with 1b; model/v2a_harmonics.py). Two more linear
   heads: f0 logits over 74 fundamental bins and a voicing logit from the sync features, the amplitudes of
   harmonics 2..K (sigmoid) from the sync features' last `sync_timbre_dim` channels only (the sync encoder's
   colour-blind branch). Their rule-made log-mel map v sum_g p(g) sum_k r_k^2 T(k f_g) replaces the envelope
   head's bands as each token row's input, with the voicing beside onset strength and loudness: a note from
   the colour and overtones from the shape compose for pairs never heard together. Detached as in 1b.
2. Context. Visual frame features (B, Fv, Dv) and text features (B, L, Dt) are each LayerNorm + Linear
   projected to `dim` and concatenated [visual ; text] as the keys/values of each block's gated
   cross-attention branch (the video model's caption branch: one query shared with self-attention,
   LayerNorm on q and k, tanh gate per head, zero-initialised): the paper's co-attention. Visual keys are
   rotated by their time on the audio timeline, text keys are not (model/v2a_timeline.py).
3. Conditioning. c_global = t_emb + E_v(mean visual) + E_t(mean text) (B, D'); the sync features are
   linearly interpolated to the token column times and embedded, c_token = c_global + E_s(sync(tau_k))
   (B, N, D'), which drives the adaLN scale and gate of every block and the final layer per token.
4. Absent conditions. `drop_visual`, `drop_text`, `drop_sync` (B,) bool replace that item's raw features
   by a learned empty embedding (one vector per modality, repeated over the sequence; masks and times
   kept), so classifier-free guidance can drop each independently.
Initialisation (one place, `initialize_weights`): Xavier linears, the pooled/sync embedders, every adaLN,
the co-attention gates and the final layer zero (at init the model is t-conditioned self-attention only
and outputs zero velocity).
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from pathlib import Path

import torch
from diffusers import ConfigMixin, ModelMixin
from torch import nn

from .. import files
from .attention import BACKENDS, Attention
from .blocks import FinalLayer, TransformerBlock
from .embed import TimestepEmbedder, caption_embedder, masked_mean, patchify, unpatchify
from .folder import (
    CONFIG_NAME,
    FORMAT_VERSION,
    WEIGHTS_NAME,
    check_loading_kwargs,
    load_state_dict_checked,
    loading_device,
    loading_dtype,
    save_model_folder,
)
from .rope import RoPE
from .v2a_checks import check_v2a_inputs
from .v2a_config import V2AConfig
from .v2a_harmonics import F0_BINS, harmonic_map, render_table, split_outputs
from .v2a_timeline import batch_times, check_sync_order, timeline_position, token_times, upsample_by_time

__all__ = ["V2ANextDiT", "V2AConfig"]


def _resolve_config(config, fields: dict) -> V2AConfig:
    """A V2AConfig from a config object, a config dict and/or keyword fields (keywords win)."""
    if config is None:
        return V2AConfig(**fields)
    if isinstance(config, dict):
        config = V2AConfig.from_dict(config)
    if not isinstance(config, V2AConfig):
        raise TypeError(f"config must be a V2AConfig or a dict, got {type(config).__name__}")
    return replace(config, **fields) if fields else config


def _substitute(feats: torch.Tensor, empty: torch.Tensor, drop: torch.Tensor | None) -> torch.Tensor:
    """feats (B, S, D) with the rows of dropped items (drop (B,) True) replaced by `empty` (D,)."""
    if drop is None:
        return feats
    return torch.where(drop.to(feats.device, torch.bool)[:, None, None], empty.to(feats.dtype).expand_as(feats), feats)


def _mask(mask: torch.Tensor | None, feats: torch.Tensor, device) -> torch.Tensor:
    """A (B, S) bool mask, all True when None."""
    if mask is None:
        return torch.ones(feats.shape[:2], dtype=torch.bool, device=device)
    return mask.to(device, torch.bool)


def config_file_dict(config, torch_dtype: str) -> dict:
    """The body of a V2A model folder's config.json: the fields, diffusers' class keys, our metadata."""
    import diffusers

    return dict(_class_name="V2ANextDiT", _diffusers_version=diffusers.__version__,
                **V2AConfig.from_dict(config).to_dict(), format_version=FORMAT_VERSION, torch_dtype=torch_dtype)


class V2ANextDiT(ModelMixin, ConfigMixin):
    """The V2A denoiser (see the module docstring); built from a `V2AConfig`, its dict or its fields."""

    config_name = CONFIG_NAME
    _no_split_modules = ["TransformerBlock"]
    _repeated_blocks = ["TransformerBlock"]
    _skip_layerwise_casting_patterns = ["x_embedder", "norm"]

    def __init__(self, config: V2AConfig | dict | None = None, *, attention_backend: str = "auto", **fields):
        super().__init__()
        cfg = _resolve_config(config, fields)
        self.register_to_config(**cfg.to_dict())
        self.cfg = cfg
        d, dc = cfg.dim, cfg.cond_dim
        width = cfg.patch_time * cfg.patch_freq * cfg.in_channels
        self.x_embedder = nn.Linear(width, d)
        self.t_embedder = TimestepEmbedder(dc)
        self.visual_embedder = caption_embedder(cfg.visual_feat_dim, dc, eps=1e-5)  # pooled -> c
        self.text_embedder = caption_embedder(cfg.text_feat_dim, dc, eps=1e-5)
        self.sync_embedder = caption_embedder(cfg.sync_feat_dim, dc, eps=1e-5)  # per token -> c
        self.visual_proj = caption_embedder(cfg.visual_feat_dim, d, eps=1e-5)  # tokens -> keys/values
        self.text_proj = caption_embedder(cfg.text_feat_dim, d, eps=1e-5)
        self.empty_visual = nn.Parameter(torch.empty(cfg.visual_feat_dim))
        self.empty_text = nn.Parameter(torch.empty(cfg.text_feat_dim))
        self.empty_sync = nn.Parameter(torch.empty(cfg.sync_feat_dim))
        if cfg.sync_envelope_bands:
            self.sync_envelope = nn.Linear(cfg.sync_feat_dim, 2 + cfg.sync_envelope_bands)  # sync -> sound
            self.envelope_embedder = nn.Linear(cfg.envelope_token_width, d)  # a token's envelope -> embedding
        if cfg.sync_harmonics:
            self.sync_pitch = nn.Linear(cfg.sync_feat_dim, F0_BINS + 1)  # sync -> f0 logits, voicing logit
            self.sync_timbre = nn.Linear(cfg.sync_timbre_dim or cfg.sync_feat_dim, cfg.sync_harmonics - 1)
        self._tables: dict = {}  # device -> the harmonic render table (v2a_harmonics.render_table), built on use
        self.layers = nn.ModuleList(
            TransformerBlock(d, cfg.n_heads, cfg.n_kv_heads, cfg.multiple_of, cfg.ffn_dim_multiplier,
                             cfg.norm_eps, cfg.qk_norm, d, dc)
            for _ in range(cfg.n_layers)
        )
        self.final_layer = FinalLayer(d, width, dc)
        half = cfg.head_dim // 2
        self.rope = RoPE(cfg.head_dim, cfg.rope_theta, (half, cfg.head_dim - half), cfg.axes_lens,
                         ("time", "frequency"), "(time, frequency)")
        self.set_attention_backend(attention_backend)
        self.initialize_weights()

    def initialize_weights(self):
        """Training-from-scratch initialisation, all in one place (see the module docstring)."""
        if self.x_embedder.weight.is_meta:
            return
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for p in (self.empty_visual, self.empty_text, self.empty_sync):
            nn.init.normal_(p, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        zero = [emb[1] for emb in (self.visual_embedder, self.text_embedder, self.sync_embedder)]
        zero += [block.adaLN_modulation[1] for block in self.layers]
        zero += [self.final_layer.adaLN_modulation[1], self.final_layer.linear]
        if self.cfg.sync_envelope_bands:
            zero.append(self.envelope_embedder)  # a start from a model without the head is the same function
        for lin in zero:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        for block in self.layers:
            nn.init.zeros_(block.attention.gate)

    @property
    def dtype(self) -> torch.dtype:
        return self.x_embedder.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.x_embedder.weight.device

    def set_attention_backend(self, backend: str) -> None:
        """Attention kernel of every block: "auto", "sdpa" or "flash" (as MultiScaleNextDiT's)."""
        if backend not in BACKENDS:
            raise ValueError(f"attention_backend must be one of {list(BACKENDS)}, got {backend!r}")
        self.attention_backend = backend
        for module in self.modules():
            if isinstance(module, Attention):
                module.backend = backend

    # ------------------------------------------------------------------------------------------
    def audio_freqs(self, n_cols: int, n_rows: int) -> torch.Tensor:
        """(n_cols * n_rows, head_dim/2) complex: the 2D rotations of the audio tokens, time-major."""
        return self.rope.grid_freqs((n_cols, n_rows), self.device)

    def context_freqs(self, visual_times: torch.Tensor, text_len: int) -> torch.Tensor:
        """visual_times (B, Fv) seconds -> (B, Fv + L, head_dim/2) complex: visual keys at their time on the
        audio timeline (frequency position 0), text keys unrotated (1 + 0j)."""
        cfg = self.cfg
        pos_t = timeline_position(visual_times, cfg.patch_time, cfg.latent_rate)  # (B, Fv)
        visual = self.rope.point_freqs(torch.stack([pos_t, torch.zeros_like(pos_t)], dim=-1))
        text = torch.ones(*visual.shape[:1], text_len, visual.shape[-1], dtype=visual.dtype, device=visual.device)
        return torch.cat([visual, text], dim=1)

    def conditions(self, t, visual, visual_mask, text, text_mask, sync, sync_times, sync_mask, n_cols: int,
                   n_rows: int) -> torch.Tensor:
        """The per-token condition c_token (B, n_cols * n_rows, D') = c_global + E_s(sync at tau_k)
        (features already substituted for dropped items)."""
        cfg = self.cfg
        c = self.t_embedder(t * cfg.t_scale, self.dtype)  # (B, D')
        c = c + self.visual_embedder(masked_mean(visual, visual_mask))
        c = c + self.text_embedder(masked_mean(text, text_mask))
        tau = token_times(n_cols, cfg.patch_time, cfg.latent_rate, self.device)  # (n_cols,)
        s = upsample_by_time(sync, sync_times, sync_mask, tau)  # (B, n_cols, Ds)
        c_col = c[:, None] + self.sync_embedder(s)  # (B, n_cols, D')
        return c_col.repeat_interleave(n_rows, dim=1)  # token k * n_rows + m takes column k's condition

    def sync_heads(self, sync: torch.Tensor) -> torch.Tensor:
        """The sync heads of the whole sync input (..., sync_width) -> (..., sync_head_width): the envelope
        (onset strength, loudness, B bands), then with the harmonic head f0 logits, voicing logit and the
        harmonic amplitudes in [0, 1] (v2a_harmonics.split_outputs names them)."""
        cfg = self.cfg
        main = sync[..., :cfg.sync_feat_dim]
        out = [self.sync_envelope(main)]
        if cfg.sync_harmonics:
            timbre = sync[..., cfg.sync_feat_dim:] if cfg.sync_timbre_dim else main
            out += [self.sync_pitch(main), torch.sigmoid(self.sync_timbre(timbre))]
        return torch.cat(out, dim=-1)

    def harmonic_table(self) -> torch.Tensor:
        """(K, 64, F0_BINS) render table of the harmonic head on the model's device, built once per device."""
        if self.device not in self._tables:
            self._tables[self.device] = render_table(self.cfg.sync_harmonics).to(self.device)
        return self._tables[self.device]

    def envelope_tokens(self, sync, sync_times, sync_mask, n_cols: int, n_rows: int) -> torch.Tensor:
        """E_e of each token's sync envelope (module docstring, 1b, 1c) (B, n_cols * n_rows, dim), time-major."""
        cfg = self.cfg
        if n_rows != cfg.envelope_rows:
            raise ValueError(f"the sync envelope head splits its {cfg.sync_envelope_bands} bands over "
                             f"{cfg.envelope_rows} token rows; this latent has {n_rows} (mel rows / patch_freq)")
        tau = token_times(n_cols, cfg.patch_time, cfg.latent_rate, self.device)
        e = self.sync_heads(upsample_by_time(sync, sync_times, sync_mask, tau)).detach()  # (B, n_cols, head width)
        parts = split_outputs(e, cfg.sync_envelope_bands, cfg.sync_harmonics)
        whole, bands = parts["envelope"][..., :2], parts["envelope"][..., 2:]  # onset strength, loudness; bands
        if cfg.sync_harmonics:
            bands = harmonic_map(parts["f0_logits"], parts["voicing_logit"], parts["ratios"],
                                 self.harmonic_table()).to(e.dtype)
            whole = torch.cat([whole, torch.sigmoid(parts["voicing_logit"])[..., None]], dim=-1)
        bands = bands.unflatten(-1, (n_rows, -1))  # (B, n_cols, n_rows, B / n_rows), lowest row first
        whole = whole[..., None, :].expand(-1, -1, n_rows, -1)  # the same for every row
        return self.envelope_embedder(torch.cat([whole, bands], dim=-1).flatten(1, 2))

    def denoise_tokens(self, h, freqs, ctx, ctx_mask, ctx_freqs, c) -> torch.Tensor:
        """Blocks and final layer: h (B, N, dim), freqs (B, N, hd/2), ctx (B, S, dim), ctx_mask (B, S),
        ctx_freqs (B, S, hd/2), c (B, D') per item or (B, N, D') per token -> (B, N, pt pf C)."""
        for layer in self.layers:
            h = layer(h, None, freqs, ctx, ctx_mask, c, ctx_freqs)
        return self.final_layer(h, c)

    def forward(self, x: torch.Tensor, t: torch.Tensor, visual: torch.Tensor, visual_times, text: torch.Tensor,
                text_mask: torch.Tensor, sync: torch.Tensor, sync_times, visual_mask: torch.Tensor | None = None,
                sync_mask: torch.Tensor | None = None, drop_visual: torch.Tensor | None = None,
                drop_text: torch.Tensor | None = None, drop_sync: torch.Tensor | None = None,
                return_envelope: bool = False):
        """The velocity at x (B, C, T, M), same shape. t (B,); visual (B, Fv, Dv) frame features at
        visual_times (Fv,) or (B, Fv) seconds, visual_mask (B, Fv) (None: all real); text (B, L, Dt),
        text_mask (B, L); sync (B, Ns, Ds) at sync_times (Ns,) or (B, Ns), sync_mask (B, Ns); drop_* (B,)
        bool: True = that condition is absent (its learned empty embedding is used). `return_envelope`
        (a model with the sync envelope head): (velocity, the sync heads' outputs of the given sync features
        (B, Ns, sync_head_width), before any drop: `sync_heads`), for their training targets."""
        cfg, dtype, device = self.cfg, self.dtype, self.device
        check_v2a_inputs(cfg, x, t, visual, visual_mask, text, text_mask, sync, sync_mask,
                         dict(drop_visual=drop_visual, drop_text=drop_text, drop_sync=drop_sync))
        b, _, n_t, n_m = x.shape
        pt, pf = cfg.patch_time, cfg.patch_freq
        n_cols, n_rows = n_t // pt, n_m // pf
        self.rope.check_grid((n_cols, n_rows))
        v_times = batch_times(visual_times, b, visual.shape[1], "visual_times", device)
        s_times = batch_times(sync_times, b, sync.shape[1], "sync_times", device)
        v_mask = _mask(visual_mask, visual, device)
        s_mask = _mask(sync_mask, sync, device)
        t_mask = text_mask.to(device, torch.bool)
        check_sync_order(s_times, s_mask)
        visual = _substitute(visual.to(device, dtype), self.empty_visual, drop_visual)
        text = _substitute(text.to(device, dtype), self.empty_text, drop_text)
        if return_envelope and not cfg.sync_envelope_bands:
            raise ValueError("return_envelope needs a model with the sync envelope head (sync_envelope_bands > 0)")
        sync = sync.to(device, dtype)
        envelope = self.sync_heads(sync) if return_envelope else None  # (B, Ns, head width), before any drop
        timbre = sync[..., cfg.sync_feat_dim:]  # (B, Ns, sync_timbre_dim); zero for a dropped item
        sync = _substitute(sync[..., :cfg.sync_feat_dim], self.empty_sync, drop_sync)

        h = self.x_embedder(patchify(x.to(dtype)[..., None], pt, (pf, 1)))  # (B, N, dim), N = n_cols n_rows
        if cfg.sync_envelope_bands:
            if cfg.sync_timbre_dim:
                timbre = _substitute(timbre, timbre.new_zeros(timbre.shape[-1]), drop_sync)
                sync_heads_in = torch.cat([sync, timbre], dim=-1)
            else:
                sync_heads_in = sync
            h = h + self.envelope_tokens(sync_heads_in, s_times, s_mask, n_cols, n_rows)
        freqs = self.audio_freqs(n_cols, n_rows)[None].expand(b, -1, -1)
        ctx = torch.cat([self.visual_proj(visual), self.text_proj(text)], dim=1)  # (B, Fv + L, dim)
        ctx_mask = torch.cat([v_mask, t_mask], dim=1)
        ctx_freqs = self.context_freqs(v_times, text.shape[1])
        c = self.conditions(t.to(device), visual, v_mask, text, t_mask, sync, s_times, s_mask, n_cols, n_rows)
        out = self.denoise_tokens(h, freqs, ctx, ctx_mask, ctx_freqs, c)  # (B, N, pt pf C)
        velocity = unpatchify(out, (cfg.in_channels, n_t, n_m, 1), pt, (pf, 1))[..., 0].to(x.dtype)
        return (velocity, envelope) if return_envelope else velocity

    # ------------------------------------------------------------------------------------------
    # The folder format of model/folder.py: config.json + model.safetensors.
    def save_pretrained(self, folder, dtype: torch.dtype | None = None) -> None:
        """Write config.json and model.safetensors (in `dtype`, default the model's)."""
        save_model_folder(self, folder, dtype, config_file_dict)

    @classmethod
    def from_config(cls, config=None, device=None, return_unused_kwargs: bool = False, **kwargs):
        """A freshly initialised model of a config (dict, `model.config` or V2AConfig) on `device` (e.g. "meta")."""
        cfg = config if isinstance(config, V2AConfig) else V2AConfig.from_dict(config or {})
        with torch.device(device) if device is not None else contextlib.nullcontext():
            model = cls(cfg, **kwargs)
        return (model, {}) if return_unused_kwargs else model

    @classmethod
    def from_pretrained(cls, folder, dtype: torch.dtype | None = None, device="cpu", **kwargs) -> V2ANextDiT:
        """Load a folder written by `save_pretrained`; `dtype` None keeps the stored dtype. diffusers'
        `torch_dtype`, `device_map` (one device) and `subfolder` keywords are accepted."""
        dtype = loading_dtype(dtype, kwargs)
        subfolder = kwargs.pop("subfolder", None)
        local = Path(folder) / subfolder if subfolder else Path(folder)
        device = loading_device(device, kwargs)
        check_loading_kwargs(kwargs)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (local / name).is_file():
                raise FileNotFoundError(f"{local} is not a V2ANextDiT folder: {name} is missing "
                                        f"(expected {CONFIG_NAME} and {WEIGHTS_NAME})")
        config = json.loads((local / CONFIG_NAME).read_text())
        version = config.get("format_version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise ValueError(f"{local}: format_version {version} is newer than this package reads ({FORMAT_VERSION})")
        model = cls.from_config(config, device="meta")
        load_state_dict_checked(model, files.load_safetensors(local / WEIGHTS_NAME, device=str(device)), assign=True)
        model.rope._cache.clear()
        if dtype is not None:
            nn.Module.to(model, dtype)
        return model.eval()
