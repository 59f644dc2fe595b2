"""The voicing gate of LuminaV2APipeline (`__call__` step 7): silence where the video shows nothing that sounds.

A V2A model with the harmonic sync head (model/v2a.py, 1c) predicts from the sync features alone, per sync
frame k at time t_k, the probability v_k that the sound is on: its voicing, trained on whether the clip's own
sound is above the sounding level in that frame (training/v2a_data.audio_harmonics). The denoiser reads v_k
among its inputs, but nothing makes it obey it: the text or the CLIP features can make it hum over a still
video. The gate makes the soundtrack obey its own sync head:

    open_k   = max(v_j : |t_j - t_k| <= hold) >= threshold      (a dilation: a short dip never cuts a sound)
    gain(s)  = open_k linearly interpolated from the sync frame times to the sample times s / sample_rate
               (a ramp of one sync frame, 40 ms at 25 per second; held constant before t_0 and after t_last)
    wave     = gain * wave

`threshold` 0 turns the gate off; a model without the harmonic head has no voicing and is never gated.
"""
from __future__ import annotations

import numpy as np
import torch

from .._checks import is_number
from ..model.v2a_harmonics import split_outputs

GATE_HOLD_S = 0.25  # seconds either side a voiced frame keeps the gate open


def check_gate(threshold) -> float:
    """The gate threshold as a float in [0, 1); one-line ValueError otherwise."""
    if not is_number(threshold) or not 0 <= threshold < 1:
        raise ValueError(f"voicing_gate must be a number in [0, 1) (0: no gate), got {threshold!r}")
    return float(threshold)


def sync_voicing(transformer, sync: torch.Tensor) -> torch.Tensor | None:
    """sync features (B, Ns, Ds) -> the harmonic head's voicing probability (B, Ns) float32, or None when the
    model has no harmonic head."""
    cfg = transformer.cfg
    if not (cfg.sync_envelope_bands and cfg.sync_harmonics):
        return None
    heads = transformer.sync_heads(sync.to(transformer.device, transformer.dtype))
    parts = split_outputs(heads, cfg.sync_envelope_bands, cfg.sync_harmonics)
    return torch.sigmoid(parts["voicing_logit"].float())


def gate_gain(voicing: torch.Tensor, times, threshold: float, samples: int, sample_rate: int,
              hold: float = GATE_HOLD_S) -> np.ndarray:
    """voicing (B, Ns) at times (Ns,) s -> the gain (B, samples) float32 in [0, 1] of the module docstring."""
    v = voicing.detach().float().cpu().numpy()
    t = np.asarray(times.detach().cpu() if isinstance(times, torch.Tensor) else times, dtype=np.float64)
    near = np.abs(t[:, None] - t[None, :]) <= hold + 1e-9  # (Ns, Ns): frame j within `hold` of frame k
    opened = (np.where(near[None], v[:, None, :], 0.0).max(-1) >= threshold).astype(np.float64)  # (B, Ns)
    s = np.arange(samples) / sample_rate
    return np.stack([np.interp(s, t, row) for row in opened]).astype(np.float32)
