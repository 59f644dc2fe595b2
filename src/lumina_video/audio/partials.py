"""The power of a harmonic series' partials in a power spectrum: what eval-audio's timbre check
(eval/audio_metrics.harmonic_profile) and the V2A harmonic head's training targets
(training/v2a_data.audio_harmonics) both read.

    P_k(t) = sum of power[b, t] over the bins b with |hz_b - k f0_t| <= max(3% of k f0_t, 2 bins)

The +-3% band (at least +-2 bins) takes a partial's energy wherever the window, or a mel round trip, spread it
(the largest bin alone undercounted it: docs/RESULTS.md).
"""
from __future__ import annotations

import numpy as np


def partial_powers(power: np.ndarray, hz: np.ndarray, f0: np.ndarray, n_harmonics: int) -> np.ndarray:
    """power (bins, T) |STFT|^2, hz (bins,) the bins' frequencies (evenly spaced), f0 (T,) Hz ->
    (T, n_harmonics) P_k of harmonics k = 1..n (module docstring)."""
    hz, f0 = np.asarray(hz, np.float64), np.asarray(f0, np.float64)
    min_width = 2 * (hz[1] - hz[0])
    out = np.zeros((len(f0), n_harmonics))
    for k in range(1, n_harmonics + 1):
        near = np.abs(hz[None, :] - k * f0[:, None]) <= np.maximum(0.03 * k * f0, min_width)[:, None]  # (T, bins)
        out[:, k - 1] = (power.T * near).sum(1)
    return out
