"""The harmonic sync head of the V2A model (model/v2a.py, step 1c): a note and a timbre predicted from the
video, rendered to the log-mel bands the audio tokens are aligned with.

Why. The sync envelope head (1b) predicts the log-mel bands directly from the sync features; its fundamental
generalises to unseen (colour, shape) pairs but its harmonics follow the pair seen in training (one linear
map cannot compose a colour's note with a shape's overtones it never heard together). This head predicts
the two factors apart, as an additive synthesiser is parametrised (f0, harmonic amplitudes, voicing; the
DDSP family's harmonic synthesiser), and builds their spectrum by rule, so any note composes with any timbre:

    p(g)      softmax over F0_BINS fundamental bins, g -> f_g = F0_MIN 2^(g / BINS_PER_OCTAVE) Hz (250 Hz ..
              ~2.1 kHz, 50 cents a bin)                               from the sync features (the colour)
    v         sigmoid voicing: the probability that the frame sounds a note   from the sync features
    r_k       sigmoid amplitude of harmonic k relative to the fundamental, k = 2..K
                                                                      from the timbre channels only
    E_b       = sum_g p(g) sum_{k=1..K} r_k^2 T_b(k f_g)              r_1 = 1; T_b the mel band b's triangle
                                                                      (librosa's Slaney filterbank,
                                                                      audio/mel.py's), scaled to peak 1
    map_b     = v 2/3 (log10(1e-3 + E_b) + 3)                         in [0, 2]: 0 silence, 2 a whole partial
                                                                      (about a standardised band's range)

The voicing scales the log map, not the energy: a frame voiced with probability 5% gets 5% of the map. (Scaling
the energy gave it 57% of the map's height, log10(1e-3 + 0.05) being well above the floor's, so still clips
whose voicing was a few per cent read as a quiet note, and the denoiser hummed on them.)

The timbre channels are the sync encoder's colour-blind branch (encoders/sync.py, `timbre_dim`), so the
amplitudes cannot be read off the colour. Training targets come from the clip's own sound (no labels,
training/v2a_data.audio_harmonics): its f0 per latent frame (librosa.yin), whether the frame is a voiced
note, and the harmonic amplitudes at that f0.
"""
from __future__ import annotations

import math

import torch

F0_MIN, F0_MAX = 250.0, 2100.0  # Hz: an octave beyond the synthetic world's notes either side, as eval-audio
BINS_PER_OCTAVE = 24
F0_BINS = int(math.floor(BINS_PER_OCTAVE * math.log2(F0_MAX / F0_MIN))) + 1  # 74
MAP_FLOOR = 1e-3
# the audio path's log-mel (audio/mel.py's AudioLDM settings; the model package does not import it, and
# tests/test_v2a_harmonics.py checks that librosa's filterbank of these is that module's)
SAMPLE_RATE, N_FFT, N_MELS, F_MAX = 16000, 1024, 64, 8000.0


def f0_grid(bins: int = F0_BINS) -> torch.Tensor:
    """(bins,) float64 Hz of the fundamental bins."""
    return F0_MIN * 2.0 ** (torch.arange(bins, dtype=torch.float64) / BINS_PER_OCTAVE)


def f0_bin(hz: torch.Tensor) -> torch.Tensor:
    """The nearest bin of each f0 in Hz (clamped to the grid), long."""
    g = torch.round(BINS_PER_OCTAVE * torch.log2(torch.as_tensor(hz, dtype=torch.float64).clamp(min=1e-6) / F0_MIN))
    return g.clamp(0, F0_BINS - 1).long()


def mel_triangles() -> torch.Tensor:
    """(N_MELS, N_FFT / 2 + 1) float64: librosa's Slaney mel filterbank of the audio path's settings."""
    import librosa

    return torch.from_numpy(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=0.0, fmax=F_MAX,
                                                dtype="float64"))


def render_table(n_harmonics: int) -> torch.Tensor:
    """(K, N_MELS, F0_BINS) float32: T_b(k f_g), mel band b's triangle at harmonic k of bin g (zero above the
    Nyquist frequency), every band scaled to peak 1 so each partial weighs the same wherever it falls."""
    fb = mel_triangles()  # (M, bins)
    fb = fb / fb.amax(dim=1, keepdim=True).clamp(min=1e-12)
    hz = torch.linspace(0, SAMPLE_RATE / 2, fb.shape[1], dtype=torch.float64)
    step = float(hz[1] - hz[0])
    out = torch.zeros(n_harmonics, fb.shape[0], F0_BINS, dtype=torch.float64)
    for k in range(1, n_harmonics + 1):
        f = k * f0_grid()  # (G,)
        pos = f / step
        lo = pos.floor().long().clamp(max=fb.shape[1] - 2)
        frac = pos - lo
        val = fb[:, lo] * (1 - frac) + fb[:, lo + 1] * frac  # linear interpolation between FFT bins
        out[k - 1] = torch.where(f < SAMPLE_RATE / 2, val, torch.zeros_like(val))
    return out.float()


def harmonic_map(f0_logits: torch.Tensor, voicing_logit: torch.Tensor, ratios: torch.Tensor,
                 table: torch.Tensor) -> torch.Tensor:
    """f0_logits (..., G), voicing_logit (...), ratios (..., K - 1) in [0, 1], table (K, M, G) -> map (..., M)
    (module docstring)."""
    p = torch.softmax(f0_logits.float(), dim=-1)
    w = torch.cat([torch.ones_like(ratios[..., :1]), ratios.float()], dim=-1) ** 2  # (..., K)
    energy = torch.einsum("...g,...k,kmg->...m", p, w, table.to(p.device))
    voiced = (torch.log10(MAP_FLOOR + energy) - math.log10(MAP_FLOOR)) * (2 / 3)
    return torch.sigmoid(voicing_logit.float())[..., None] * voiced


def split_outputs(e: torch.Tensor, bands: int, n_harmonics: int) -> dict:
    """The concatenated sync head outputs (..., 2 + B [+ G + 1 + K - 1]) -> named parts: envelope (..., 2 + B)
    and, with harmonics, f0_logits (..., G), voicing_logit (...), ratios (..., K - 1)."""
    out = {"envelope": e[..., :2 + bands]}
    if n_harmonics:
        rest = e[..., 2 + bands:]
        if rest.shape[-1] != F0_BINS + n_harmonics:
            raise ValueError(f"sync head outputs have {e.shape[-1]} channels, expected 2 + {bands} + {F0_BINS} + "
                             f"{n_harmonics}")
        out.update(f0_logits=rest[..., :F0_BINS], voicing_logit=rest[..., F0_BINS],
                   ratios=rest[..., F0_BINS + 1:])
    return out
