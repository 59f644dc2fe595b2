"""The V2A model's timeline: audio token times, video frames on the audio RoPE axis, sync upsampling.

Audio token column k (tokens are time-major: column k holds mel rows 0..M/pf-1) covers latent frames
[k pt, (k+1) pt) and sits at its centre, tau_k = (k + 0.5) pt / latent_rate seconds. A video frame at tau
seconds is placed at the fractional position tau latent_rate / pt - 0.5 of the same RoPE time axis, so a
frame at tau_k gets exactly the time rotation of column k (MMAudio's aligned RoPE); its frequency
position is 0, the identity rotation of the frequency channels (the rotation of mel row 0). Text keys get
no rotation at all (the identity on every channel).

Sync features (Synchformer, 24/s) are upsampled to the token times by linear interpolation in time,
f(tau) = f_lo + w (f_hi - f_lo), w = (tau - t_lo) / (t_hi - t_lo), between the two real features that
bracket tau, and held constant (the first or last feature) outside their span; a constant sequence
interpolates to exactly that constant. Padded sync entries (mask False) must follow the real ones.
"""
from __future__ import annotations

import torch


def token_times(n_cols: int, patch_time: int, latent_rate: float, device=None) -> torch.Tensor:
    """(n_cols,) float64 seconds: tau_k = (k + 0.5) pt / latent_rate."""
    return (torch.arange(n_cols, dtype=torch.float64, device=device) + 0.5) * patch_time / latent_rate


def timeline_position(times: torch.Tensor, patch_time: int, latent_rate: float) -> torch.Tensor:
    """Seconds -> fractional RoPE time position tau latent_rate / pt - 0.5 (float64; column k at tau_k -> k)."""
    return times.to(torch.float64) * latent_rate / patch_time - 0.5


def batch_times(times, b: int, n: int, name: str, device) -> torch.Tensor:
    """Times (n,) shared by the batch or (B, n) per item -> (B, n) float64; one-line ValueError otherwise."""
    times = torch.as_tensor(times, device=device)
    if tuple(times.shape) not in ((n,), (b, n)):
        raise ValueError(f"{name} has shape {tuple(times.shape)}; expected ({n},) or ({b}, {n}): one time in "
                         f"seconds per feature")
    times = times.to(torch.float64)
    if not bool(torch.isfinite(times).all()):
        raise ValueError(f"{name} must be finite seconds")
    return times.expand(b, n)


def check_sync_order(times: torch.Tensor, mask: torch.Tensor) -> None:
    """Real sync entries (mask True) first and in non-decreasing time; ValueError otherwise."""
    if bool((mask[:, 1:] & ~mask[:, :-1]).any()):
        raise ValueError("sync_mask must list the real sync features first and the padding after them")
    step = times[:, 1:] - times[:, :-1]
    if bool(((step < 0) & mask[:, 1:]).any()):
        raise ValueError("sync_times must be non-decreasing over the real sync features")


def upsample_by_time(feats: torch.Tensor, times: torch.Tensor, mask: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of feats (B, Ns, D) at times (B, Ns) (real where mask (B, Ns)) to query (Nq,)
    seconds -> (B, Nq, D) (see the module docstring; constant outside the real features' span)."""
    b, _, d = feats.shape
    inf = torch.full_like(times, float("inf"))
    t_real = torch.where(mask, times, inf).contiguous()  # (B, Ns), padding sorts last
    q = query.to(times)[None].expand(b, -1).contiguous()  # (B, Nq)
    last = (mask.sum(1, keepdim=True) - 1).clamp(min=0)  # (B, 1)
    idx = torch.searchsorted(t_real, q)  # first real entry at or after q
    hi = torch.minimum(idx, last)
    lo = (idx - 1).clamp(min=0).minimum(last)
    t_lo, t_hi = t_real.gather(1, lo), t_real.gather(1, hi)
    span = t_hi - t_lo
    w = torch.where(span > 0, (q - t_lo) / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(q))
    w = w.clamp(0, 1).to(feats.dtype)[..., None]  # (B, Nq, 1)
    f_lo = feats.gather(1, lo[..., None].expand(-1, -1, d))
    f_hi = feats.gather(1, hi[..., None].expand(-1, -1, d))
    return f_lo + w * (f_hi - f_lo)
