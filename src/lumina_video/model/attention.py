"""Attention: self-attention over an item's own tokens plus gated text cross-attention (docs/REFERENCE.md §1).

The cross-attention branch (one query shared with the self-attention, LayerNorm on its keys, a tanh gate
per head, zero-initialised by the models) is also the V2A model's co-attention over [video ; text] keys,
whose video keys are rotated by their time on the audio timeline (`y_freqs`).

Kernels:
- `sdpa_attention`: torch's scaled_dot_product_attention with a key-padding mask (CPU and GPU, default).
- `varlen_attention`: packs the real tokens of a padded batch and calls a variable-length kernel
  (flash-attention's `flash_attn_varlen_func` when it is installed and tensors are half precision
  on CUDA). Items of a ragged batch never see each other with either kernel.
GQA: query head h uses kv head h // (n_heads / n_kv_heads) (contiguous groups). SDPA reads the shared
kv heads in place (`enable_gqa=True`) where torch's kernel for the device and mask does so without a
copy: on the CPU always (its flash kernel takes any mask), on CUDA without a mask (the flash kernel;
with a mask only the math kernel takes GQA, so the kv heads are repeated and the memory-efficient
kernel runs instead); elsewhere, or on a torch without `enable_gqa`, the kv heads are repeated.

Caption keys/values (`Attention.caption_kv`) do not depend on the image tokens, the time or the patch
size: a caller may compute them once per caption and pass them to `forward` as `y_kv`
(`MultiScaleNextDiT.caption_cache`).

The kernel is chosen per model, not per process: each `Attention` has a `backend` ("auto":
flash-attention when usable, else SDPA; "sdpa" or "flash" force one), which
`MultiScaleNextDiT.set_attention_backend` sets for all its blocks.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .rope import apply_rope

try:  # optional dependency, never required
    from flash_attn import flash_attn_varlen_func as _flash_varlen
except Exception:  # pragma: no cover - depends on the environment
    _flash_varlen = None

BACKENDS = ("auto", "sdpa", "flash")


def flash_available() -> bool:
    """Whether flash-attention's varlen kernel could be imported."""
    return _flash_varlen is not None


def _repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, Hkv, S, D) -> (B, Hkv*n_rep, S, D), each kv head repeated for its contiguous query group."""
    return x if n_rep == 1 else x.repeat_interleave(n_rep, dim=1)


def _sdpa_has_gqa() -> bool:
    import inspect

    try:
        return "enable_gqa" in inspect.signature(F.scaled_dot_product_attention).parameters
    except (TypeError, ValueError):  # a builtin without a signature: ask the docstring
        return "enable_gqa" in (F.scaled_dot_product_attention.__doc__ or "")


SDPA_GQA = _sdpa_has_gqa()


def gqa_in_place(q: torch.Tensor, masked: bool) -> bool:
    """Whether SDPA reads shared kv heads without copying them for queries `q` (see the module docstring)."""
    return SDPA_GQA and (q.device.type == "cpu" or (q.is_cuda and not masked))


def sdpa_attention(q, k, v, key_mask=None):
    """q (B, L, Hq, D), k/v (B, S, Hkv, D), key_mask (B, S) bool or None -> (B, L, Hq, D)."""
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, L, D)
    n_rep = q.shape[1] // k.shape[1]
    mask = None if key_mask is None else key_mask[:, None, None, :]
    scale = 1.0 / math.sqrt(q.shape[-1])
    if n_rep > 1 and gqa_in_place(q, mask is not None):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=True)
    else:
        k, v = _repeat_kv(k, n_rep), _repeat_kv(v, n_rep)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    return out.transpose(1, 2)


def varlen_attention(q, k, v, q_mask, k_mask, kernel):
    """Packed attention through a flash-attn style varlen `kernel`.

    q (B, L, Hq, D), k/v (B, S, Hkv, D); q_mask (B, L), k_mask (B, S) bool (True = real token).
    Returns (B, L, Hq, D) with zeros at padded query positions.
    """
    b, n, hq, d = q.shape
    q_lens = q_mask.sum(1, dtype=torch.int32)
    k_lens = k_mask.sum(1, dtype=torch.int32)
    cu_q = F.pad(torch.cumsum(q_lens, 0, dtype=torch.int32), (1, 0))
    cu_k = F.pad(torch.cumsum(k_lens, 0, dtype=torch.int32), (1, 0))
    q_idx = q_mask.reshape(-1).nonzero().squeeze(1)
    k_idx = k_mask.reshape(-1).nonzero().squeeze(1)
    out = kernel(
        q.reshape(b * n, hq, d)[q_idx],
        k.reshape(-1, *k.shape[2:])[k_idx],
        v.reshape(-1, *v.shape[2:])[k_idx],
        cu_seqlens_q=cu_q,
        cu_seqlens_k=cu_k,
        max_seqlen_q=int(q_lens.max()),
        max_seqlen_k=int(k_lens.max()),
        softmax_scale=1.0 / math.sqrt(d),
    )
    full = q.new_zeros(b * n, hq, d)
    full[q_idx] = out.to(q.dtype)
    return full.reshape(b, n, hq, d)


def use_flash(q: torch.Tensor, backend: str = "auto") -> bool:
    """Whether `backend` runs flash-attention for queries `q`; "flash" where it cannot is a RuntimeError."""
    if backend == "sdpa":
        return False
    usable = flash_available() and q.is_cuda and q.dtype in (torch.float16, torch.bfloat16)
    if backend == "flash" and not usable:
        raise RuntimeError(
            "attention backend 'flash' was requested but needs flash-attn installed and half-precision "
            "CUDA tensors; use model.set_attention_backend('auto') or ('sdpa')"
        )
    return usable


def attend(q, k, v, q_mask, k_mask, backend: str = "auto"):
    """Dispatch to the kernel `backend` picks. Masks are (B, L) / (B, S) bool, or None meaning all real."""
    if use_flash(q, backend):
        q_mask = q_mask if q_mask is not None else q.new_ones(q.shape[:2], dtype=torch.bool)
        k_mask = k_mask if k_mask is not None else k.new_ones(k.shape[:2], dtype=torch.bool)
        return varlen_attention(q, k, v, q_mask, k_mask, _flash_varlen)
    return sdpa_attention(q, k, v, k_mask)


class Attention(nn.Module):
    """Self-attention with 3D RoPE plus gated cross-attention to the caption, sharing one query."""

    def __init__(self, dim: int, n_heads: int, n_kv_heads: int, cap_feat_dim: int, qk_norm: bool):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim {dim} must be divisible by n_heads {n_heads}")
        if n_heads % n_kv_heads:
            raise ValueError(f"n_heads {n_heads} must be a multiple of n_kv_heads {n_kv_heads}")
        self.n_heads, self.n_kv_heads = n_heads, n_kv_heads
        self.backend = "auto"  # the kernel; MultiScaleNextDiT.set_attention_backend sets it per model
        # The self-attention's kernel, `attend(q, k, v, q_mask, k_mask, backend)` when None. The seam for
        # distribution applied from outside the model (lumina_video.parallel's Ulysses kernel sets it).
        self.self_kernel = None
        self.head_dim = dim // n_heads
        kv_width = n_kv_heads * self.head_dim
        self.wq = nn.Linear(dim, n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(dim, kv_width, bias=False)
        self.wv = nn.Linear(dim, kv_width, bias=False)
        self.wk_y = nn.Linear(cap_feat_dim, kv_width, bias=False)
        self.wv_y = nn.Linear(cap_feat_dim, kv_width, bias=False)
        self.gate = nn.Parameter(torch.zeros(n_heads))
        self.wo = nn.Linear(n_heads * self.head_dim, dim, bias=False)
        # LayerNorm over the whole projected width, before the split into heads.
        norm = (lambda n: nn.LayerNorm(n)) if qk_norm else (lambda n: nn.Identity())
        self.q_norm = norm(n_heads * self.head_dim)
        self.k_norm = norm(kv_width)
        self.ky_norm = norm(kv_width)

    def caption_kv(self, y, y_freqs=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The cross-attention keys and values (B, S, Hkv, head_dim) of y (B, S, cap_feat_dim), keys rotated
        by `y_freqs` when given (see `forward`). They depend on y alone: cacheable across sampler steps."""
        b, s, _ = y.shape
        ky = self.ky_norm(self.wk_y(y)).view(b, s, self.n_kv_heads, self.head_dim)
        vy = self.wv_y(y).view(b, s, self.n_kv_heads, self.head_dim)
        if y_freqs is not None:
            ky = apply_rope(ky, y_freqs)
        return ky, vy

    def forward(self, x, x_mask, freqs, y, y_mask, y_freqs=None, y_kv=None):
        """x (B, L, dim), x_mask (B, L) bool or None, freqs (B, L, head_dim/2) complex,
        y (B, S, cap_feat_dim), y_mask (B, S) bool, y_freqs (B, S, head_dim/2) complex or None -> (B, L, dim).

        `y_freqs`: rotations of the cross-attention keys (the V2A model's video frames on the audio
        timeline; identity, 1 + 0j, for keys without position); None = no rotation (the video model's text).
        `y_kv`: `caption_kv(y, y_freqs)` computed beforehand (then y may be None), or None to compute it."""
        b, n, _ = x.shape
        hd = self.head_dim
        q = self.q_norm(self.wq(x)).view(b, n, self.n_heads, hd)
        k = self.k_norm(self.wk(x)).view(b, n, self.n_kv_heads, hd)
        v = self.wv(x).view(b, n, self.n_kv_heads, hd)
        q, k = apply_rope(q, freqs), apply_rope(k, freqs)

        out = (self.self_kernel or attend)(q, k, v, x_mask, x_mask, self.backend)  # (B, L, Hq, hd)

        ky, vy = self.caption_kv(y, y_freqs) if y_kv is None else y_kv
        out_y = attend(q, ky, vy, x_mask, y_mask, self.backend)  # text: no RoPE on keys
        out = out + out_y * torch.tanh(self.gate).to(out_y.dtype).view(1, 1, -1, 1)
        return self.wo(out.flatten(2))
