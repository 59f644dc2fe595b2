"""Log-mel spectrograms at AudioLDM's settings: frame counts, librosa's filterbank and STFT, pure tones,
silence."""
import math

import librosa
import numpy as np
import pytest
import torch

from lumina_video.audio import AUDIOLDM, MelSpectrogram, mel_filterbank, mel_spectrogram

SR = 16000


def tone(hz: float, seconds: float = 1.0, amplitude: float = 0.5) -> torch.Tensor:
    return amplitude * torch.sin(2 * math.pi * hz * torch.arange(int(seconds * SR), dtype=torch.float64) / SR)


@pytest.mark.parametrize("samples,frames", [(4 * SR, 400), (4 * SR + 159, 400), (4 * SR + 160, 401), (1600, 10)])
def test_frame_count_is_samples_floor_hop(samples, frames):
    mel = mel_spectrogram(torch.randn(samples) * 0.1)
    assert mel.shape == (frames, 64) and AUDIOLDM.frames(samples) == frames
    assert AUDIOLDM.frames_per_second == 100


def test_batch_dimensions_are_kept():
    x = torch.randn(2, 3, SR) * 0.1
    mel = mel_spectrogram(x)
    assert mel.shape == (2, 3, 100, 64)
    torch.testing.assert_close(mel[1, 2], mel_spectrogram(x[1, 2]))


def test_filterbank_matches_librosa():
    ours = mel_filterbank().numpy()
    ref = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=64, fmin=0, fmax=8000)
    assert ours.shape == ref.shape == (64, 513)
    assert np.max(np.abs(ours - ref)) < 1e-6


def test_log_mel_matches_librosa_stft_with_the_same_padding():
    """log(max(M |STFT|, 1e-5)) with librosa's STFT of the reflect-padded signal, not centred."""
    rng = np.random.default_rng(0)
    x = (0.2 * rng.standard_normal(2 * SR)).astype(np.float32)
    pad = (1024 - 160) // 2
    spec = np.abs(librosa.stft(np.pad(x, pad, mode="reflect"), n_fft=1024, hop_length=160, win_length=1024,
                               window="hann", center=False))
    ref = np.log(np.maximum(librosa.filters.mel(sr=SR, n_fft=1024, n_mels=64, fmin=0, fmax=8000) @ spec, 1e-5)).T
    ours = mel_spectrogram(torch.from_numpy(x)).numpy()
    assert ours.shape == ref.shape == (200, 64)
    assert np.max(np.abs(ours - ref)) < 1e-3


def test_pure_tone_peaks_at_the_nearest_centre():
    centres = librosa.mel_frequencies(66, fmin=0, fmax=8000)[1:-1]  # the 64 filters' centre frequencies
    rng = np.random.default_rng(1)
    ks = rng.choice(np.arange(2, 62), 12, replace=False)
    offsets = rng.uniform(-0.3, 0.3, len(ks))  # a fraction of the spacing to the next centre, in mels
    lo, hi = librosa.hz_to_mel(centres[ks]), librosa.hz_to_mel(centres[ks + 1])
    mels = lo + offsets * (hi - lo)
    freqs = librosa.mel_to_hz(mels)
    mel = mel_spectrogram(torch.stack([tone(f) for f in freqs]).float())  # (12, 100, 64)
    peaks = mel[:, 5:-5].mean(1).argmax(-1).numpy()
    nearest = np.abs(centres[None] - freqs[:, None]).argmin(-1)
    assert peaks.tolist() == nearest.tolist()


def test_silence_is_the_clamp_everywhere():
    mel = mel_spectrogram(torch.zeros(SR))
    torch.testing.assert_close(mel, torch.full((100, 64), math.log(1e-5)), rtol=0, atol=1e-5)


def test_module_has_no_state_dict_entries():
    module = MelSpectrogram()
    assert len(module.state_dict()) == 0 and module.filters.shape == (64, 513)
