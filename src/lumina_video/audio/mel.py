"""Log-mel spectrograms with `torch.stft`, with AudioLDM's settings by default, so that AudioLDM's
released audio VAE and HiFi-GAN vocoder fit these tensors.

    mel = log(max(M |STFT(x)|, 1e-5))          natural log of the magnitude mel spectrum
    x: mono waveform at 16 kHz; STFT: n_fft 1024, Hann window 1024, hop 160 (100 frames per second),
       the signal reflect-padded by (n_fft - hop) / 2 on each side and not centred, so that a clip of
       N samples gives exactly N // hop frames (4 s -> 400 frames)
    M: 64 triangular mel filters from 0 to 8 kHz on the Slaney mel scale (linear below 1 kHz,
       logarithmic above), each normalised to unit area ("slaney" norm): librosa's default filterbank

Shapes: a waveform (..., N) gives a mel spectrogram (..., N // hop, n_mels), time first.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 160
    n_mels: int = 64
    f_min: float = 0.0
    f_max: float = 8000.0
    clamp: float = 1e-5

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    def frames(self, samples: int) -> int:
        """Mel frames of a clip of `samples` samples."""
        return samples // self.hop_length


AUDIOLDM = MelConfig()

# the Slaney mel scale: linear up to 1 kHz (3 mels per 200 Hz), logarithmic above (27 mels per factor 6.4)
_LINEAR_HZ, _LINEAR_MEL, _LOG_STEP = 1000.0, 15.0, math.log(6.4) / 27.0


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    hz = torch.as_tensor(hz, dtype=torch.float64)
    linear = 3.0 * hz / 200.0
    log = _LINEAR_MEL + torch.log(torch.clamp(hz, min=_LINEAR_HZ) / _LINEAR_HZ) / _LOG_STEP
    return torch.where(hz >= _LINEAR_HZ, log, linear)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    mel = torch.as_tensor(mel, dtype=torch.float64)
    linear = 200.0 * mel / 3.0
    log = _LINEAR_HZ * torch.exp(_LOG_STEP * (mel - _LINEAR_MEL))
    return torch.where(mel >= _LINEAR_MEL, log, linear)


def mel_filterbank(cfg: MelConfig = AUDIOLDM) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) float32 weights: triangles between neighbouring mel points, area-normalised."""
    fft_hz = torch.linspace(0, cfg.sample_rate / 2, cfg.n_fft // 2 + 1, dtype=torch.float64)
    points = mel_to_hz(torch.linspace(float(hz_to_mel(cfg.f_min)), float(hz_to_mel(cfg.f_max)), cfg.n_mels + 2,
                                      dtype=torch.float64))
    widths = points[1:] - points[:-1]                     # (n_mels + 1,)
    ramps = points[:, None] - fft_hz[None, :]             # (n_mels + 2, bins)
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    weights *= (2.0 / (points[2:] - points[:-2]))[:, None]
    return weights.float()


class MelSpectrogram(torch.nn.Module):
    """waveform (..., N) -> log-mel (..., N // hop, n_mels); the window and filterbank are buffers
    (not saved in a state dict)."""

    def __init__(self, cfg: MelConfig = AUDIOLDM):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("window", torch.hann_window(cfg.win_length), persistent=False)
        self.register_buffer("filters", mel_filterbank(cfg), persistent=False)

    def magnitude(self, wave: torch.Tensor) -> torch.Tensor:
        """|STFT| (..., bins, frames) with the padding of the module docstring."""
        c = self.cfg
        pad = (c.n_fft - c.hop_length) // 2
        if wave.shape[-1] <= pad:
            raise ValueError(f"a waveform of {wave.shape[-1]} samples is too short for a mel spectrogram: it needs "
                             f"more than {pad} samples ({pad / c.sample_rate * 1000:.0f} ms)")
        lead = wave.shape[:-1]
        x = wave.reshape(-1, wave.shape[-1]).float()
        x = torch.nn.functional.pad(x[:, None], (pad, pad), mode="reflect")[:, 0]
        spec = torch.stft(x, c.n_fft, hop_length=c.hop_length, win_length=c.win_length, window=self.window,
                          center=False, return_complex=True)
        return spec.abs().reshape(*lead, spec.shape[-2], spec.shape[-1])

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        mel = torch.matmul(self.filters, self.magnitude(wave))          # (..., n_mels, frames)
        return torch.log(torch.clamp(mel, min=self.cfg.clamp)).transpose(-1, -2)


def mel_spectrogram(wave: torch.Tensor, cfg: MelConfig = AUDIOLDM) -> torch.Tensor:
    """The log-mel spectrogram (..., frames, n_mels) of a waveform (..., N)."""
    return MelSpectrogram(cfg).to(wave.device)(wave)
