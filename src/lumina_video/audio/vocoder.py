"""Vocoders: log-mel (B, T, n_mels) -> waveform (B, T x hop) at the mel's sample rate.

`Vocoder` wraps transformers' `SpeechT5HifiGan` (the class of AudioLDM's HiFi-GAN: transposed
convolutions whose upsample rates multiply to the hop, 5 x 4 x 2 x 2 x 2 = 160). The released kernels
(16, 16, 8, 4, 4) are not twice their rates, so the network emits a few samples more than T x 160
(T x 160 + 32 for AudioLDM's); they are at the end and are cut, so every vocoder here returns exactly
T x hop samples. Like `AudioVAE`, it is differentiable (no `torch.no_grad` inside; `.model` is the
network): inference callers wrap it in `torch.no_grad()`.

`GriffinLim` needs no weights:
  1. mel magnitude M = exp(mel) (B, n_mels, T); linear magnitude S = max(F^+ M, 0) with F^+ the
     Moore-Penrose pseudo-inverse of the mel filterbank F (n_mels, n_fft/2 + 1); the minimum-norm
     least-squares spectrum has small negative lobes, clamped at 0.
  2. Fast Griffin-Lim (Perraudin, Balazs & Sondergaard 2013) recovers a phase: with P_C1 the
     projection onto consistent spectrograms (STFT of the inverse STFT) and P_C2 the one onto the
     magnitude S (keep the phase, set |.| = S),
         c_n = P_C1(P_C2(t_{n-1})),   t_n = c_n + alpha (c_n - c_{n-1}),   alpha = momentum (0.99),
     from a random phase drawn by a generator seeded with `seed` (the same output every call, the
     same phase field for every item of a batch).
     With `refine` (the default) the magnitude is not kept at the pseudo-inverse: after each projection
     it is the magnitude |c_n| of the consistent spectrogram moved one multiplicative step towards the
     mel (the KL-NMF / Richardson-Lucy update for F S = M with F fixed, S >= 0),
         S <- S * F^T (M / (F S)) / F^T 1,
     so the magnitude the phase is fitted to is one whose mel is the given mel rather than the
     smooth minimum-norm spectrum. Measured on tone bursts at 523.25 / 880 Hz (the clip of
     tests/test_audio_models.py, `bench/audio_speed.py --quality`): spectral convergence of the output's
     mel 0.040 (plain: 0.149), worst pitch error 7 cents (plain: 19); over six random burst clips
     12 cents (plain: 23). It costs a third more time (real-time factor 0.07 vs 0.05 on one CPU thread).
  3. Framing as mel.py: mel frame t covers samples [160 t - 432, 160 t + 592) of the clip (reflect
     padding by (n_fft - hop) / 2), i.e. it is centred on sample 160 t + 80. The STFTs here use
     torch's centred frames (a frame centred on sample 160 j of the working signal u) with one extra
     frame at each end, u[k] = x[k - 80]: frame j = t + 1 is mel frame t, and the two extra frames
     take the magnitudes of the first and last mel frame. The output is x = u[80 : 80 + 160 T].
  4. Edges (`edge` frames, default 8): the mel's reflect padding makes mel frame t and the clip
     reflected about its first sample x[-n] = x[n] have the same magnitudes, frame -t-1 mirroring frame
     t; the first frames' windows reach 432 samples before sample 0, which the working signal above
     cannot reproduce (torch's padding reflects u about u[0], 80 samples earlier). Fitted there
     anyway, they come out 0.2-0.4 (natural log) off the given mel and the level dips for 20-40 ms and
     then rises: a spurious onset at ~50 ms on every clip that starts sounding (measured: 34 of the
     34 false onsets of Griffin-Lim on the true mel of 50 synth-av clips). So the mel is extended by
     `edge` mirrored frames at each end, [mel[K-1], ..., mel[0], mel, mel[T-1], ..., mel[T-K]], the
     phase is recovered for T + 2K frames, and the middle T x hop samples are returned. At the end the
     mirror is off by up to one frame (the clip length need not be a multiple of the hop); only the
     last 30 ms are affected.
  Onsets: peak-picked onsets of the output are within about 15 ms of the true attacks, but phase
  recovery from 64 ms windows spreads some energy up to ~40 ms before an attack (pre-echo), so
  onsets backtracked to the preceding energy minimum (librosa's `backtrack=True`) come out 10-45 ms
  early (median -19 ms refined, -34 ms plain, over six random burst clips); an original clip
  backtracks to within 10 ms.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn

from .. import files
from .._checks import integer, number, positive_int
from .mel import AUDIOLDM, MelConfig, mel_filterbank
from .vae import resolve_folder

WEIGHTS_FILES = ("model.safetensors", "pytorch_model.bin")
GRIFFIN_LIM = "griffin-lim"


def tiny_vocoder_config(channels: int = 64, upsample_rates=(5, 4, 2, 2, 2), n_mels: int = 64,
                        sample_rate: int = 16000) -> dict:
    """A SpeechT5HifiGan config with AudioLDM's upsampling (5 x 4 x 2 x 2 x 2 = 160) and few channels
    (64 -> 32 -> ... -> 2), kernels twice the rates, one resblock kernel: trains on a CPU."""
    return dict(model_in_dim=n_mels, sampling_rate=sample_rate, upsample_initial_channel=channels,
                upsample_rates=list(upsample_rates), upsample_kernel_sizes=[2 * r for r in upsample_rates],
                resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]], normalize_before=False)


def audioldm_vocoder_config() -> dict:
    """AudioLDM's released HiFi-GAN config (vocoder/config.json): 1024 initial channels, rates
    (5, 4, 2, 2, 2), kernels (16, 16, 8, 4, 4), resblocks (3, 7, 11) x dilations (1, 3, 5)."""
    return dict(model_in_dim=64, sampling_rate=16000, upsample_initial_channel=1024,
                upsample_rates=[5, 4, 2, 2, 2], upsample_kernel_sizes=[16, 16, 8, 4, 4],
                resblock_kernel_sizes=[3, 7, 11], resblock_dilation_sizes=[[1, 3, 5]] * 3,
                normalize_before=False)


def _check_mel(mel: torch.Tensor, n_mels: int) -> None:
    if mel.dim() not in (2, 3) or mel.shape[-1] != n_mels or mel.shape[-2] == 0:
        raise ValueError(f"mel has shape {tuple(mel.shape)}; expected (B, T, {n_mels}) or (T, {n_mels}) log-mel")


def check_vocoder_config(config: dict, where: str) -> None:
    """One-line ValueError unless `config` is a SpeechT5HifiGan config."""
    kind = config.get("model_type")
    if kind != "speecht5_hifigan":
        found = kind or config.get("_class_name") or "no model_type"
        raise ValueError(f"{where} is not a SpeechT5HifiGan folder (config.json says {found})")


class Vocoder(nn.Module):
    """A SpeechT5HifiGan (`.model`): log-mel (B, T, n_mels) -> waveform (B, T x hop); (T, n) -> (T x hop,)."""

    def __init__(self, model, mel: MelConfig = AUDIOLDM):
        super().__init__()
        c = model.config
        hop = math.prod(c.upsample_rates)
        if (c.model_in_dim, hop, c.sampling_rate) != (mel.n_mels, mel.hop_length, mel.sample_rate):
            raise ValueError(f"the vocoder takes {c.model_in_dim} mel bins at hop {hop} and {c.sampling_rate} Hz; "
                             f"the mel config has {mel.n_mels} bins, hop {mel.hop_length}, {mel.sample_rate} Hz")
        self.model = model
        self.mel_config = mel

    @property
    def sample_rate(self) -> int:
        return self.mel_config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.mel_config.hop_length

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        _check_mel(mel, self.mel_config.n_mels)
        p = next(self.model.parameters())
        wave = self.model(mel.to(device=p.device, dtype=p.dtype)).float()
        return wave[..., : mel.shape[-2] * self.hop_length]  # drop the tail of the odd transposed kernels

    @classmethod
    def from_config(cls, config: dict, mel: MelConfig = AUDIOLDM) -> Vocoder:
        """A randomly initialised vocoder of a SpeechT5HifiGan config (`tiny_vocoder_config()`)."""
        from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

        return cls(SpeechT5HifiGan(SpeechT5HifiGanConfig(**config)), mel)

    @classmethod
    def from_pretrained(cls, folder, dtype: torch.dtype | None = None, device="cpu",
                        mel: MelConfig = AUDIOLDM) -> Vocoder:
        """From a transformers SpeechT5HifiGan folder (config.json + model.safetensors), e.g. AudioLDM's
        `vocoder/`; a folder holding `vocoder/` is accepted too."""
        from transformers import SpeechT5HifiGan

        folder = resolve_folder(folder, "vocoder")
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{folder}/config.json is not a readable JSON config: {e}") from e
        check_vocoder_config(config, str(folder))
        if not any((folder / n).is_file() for n in WEIGHTS_FILES):
            raise FileNotFoundError(f"{folder} has no weights: expected {WEIGHTS_FILES[0]}")
        model = SpeechT5HifiGan.from_pretrained(str(folder), local_files_only=True)
        return cls(model.to(device=device, dtype=dtype).eval(), mel)

    def save_pretrained(self, folder) -> None:
        """Write the transformers folder (config.json + model.safetensors), whole or not at all."""
        with files.atomic_dir(folder) as tmp:
            self.model.save_pretrained(tmp)


class GriffinLim(nn.Module):
    """Log-mel (B, T, n_mels) -> waveform (B, T x hop) without weights (module docstring); (T, n) -> (T x hop,).

    `refine=False` keeps the pseudo-inverse magnitude fixed (plain fast Griffin-Lim); `n_iter` iterations,
    `momentum` alpha, `seed` for the initial phase, `edge` mirrored frames at each end (0: none)."""

    def __init__(self, mel: MelConfig = AUDIOLDM, n_iter: int = 32, momentum: float = 0.99, seed: int = 0,
                 refine: bool = True, edge: int = 8):
        super().__init__()
        self.mel_config = mel
        self.n_iter = positive_int(n_iter, "n_iter")
        self.edge = integer(edge, "edge", 0)
        self.momentum = number(momentum, "momentum", 0, 1)
        self.seed = integer(seed, "seed", 0)
        self.refine = bool(refine)
        if (mel.n_fft - mel.hop_length) % 2 or mel.hop_length % 2:
            raise ValueError(f"Griffin-Lim needs an even hop and n_fft - hop, got {mel.n_fft} and {mel.hop_length}")
        filters = mel_filterbank(mel)                                            # (n_mels, bins)
        self.register_buffer("window", torch.hann_window(mel.win_length), persistent=False)
        self.register_buffer("filters", filters, persistent=False)
        self.register_buffer("inverse", torch.linalg.pinv(filters.double()).float(), persistent=False)
        self.register_buffer("column_sums", filters.sum(0).clamp(min=1e-8)[:, None], persistent=False)

    @property
    def sample_rate(self) -> int:
        return self.mel_config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.mel_config.hop_length

    def magnitude(self, mel: torch.Tensor) -> torch.Tensor:
        """Linear magnitude (B, n_fft/2 + 1, T) = max(F^+ exp(mel), 0) of a log-mel (B, T, n_mels)."""
        return torch.clamp(torch.matmul(self.inverse, torch.exp(mel.float()).transpose(-1, -2)), min=0.0)

    def mel_step(self, mag: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """One multiplicative step towards F S = M: S <- S * F^T(M / F S) / F^T 1 (B, bins, T)."""
        ratio = target / torch.matmul(self.filters, mag).clamp(min=1e-12)
        return mag * torch.matmul(self.filters.T, ratio) / self.column_sums

    def _stft(self, x: torch.Tensor) -> torch.Tensor:
        c = self.mel_config
        return torch.stft(x, c.n_fft, hop_length=c.hop_length, win_length=c.win_length, window=self.window,
                          center=True, pad_mode="reflect", return_complex=True)

    def _istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        c = self.mel_config
        return torch.istft(spec, c.n_fft, hop_length=c.hop_length, win_length=c.win_length, window=self.window,
                           center=True, length=length)

    def _initial_angles(self, batch: int, bins: int, frames: int) -> torch.Tensor:
        """e^(i phi) (B, bins, frames), phi uniform in [0, 2 pi) from `seed`, the same for every item (so a
        batch gives what single calls give)."""
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        phase = torch.rand((bins, frames), generator=gen).to(self.window.device) * (2 * math.pi)
        return torch.polar(torch.ones_like(phase), phase).expand(batch, bins, frames)

    def mirrored(self, mel: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(mel (B, T + 2K, n_mels) with K = min(edge, T) mirrored frames at each end, K)."""
        k = min(self.edge, mel.shape[1])
        if k == 0:
            return mel, 0
        return torch.cat([mel[:, :k].flip(1), mel, mel[:, -k:].flip(1)], dim=1), k

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        _check_mel(mel, self.mel_config.n_mels)
        single = mel.dim() == 2
        mel = (mel[None] if single else mel).to(self.window.device).float()
        frames, hop = mel.shape[1], self.hop_length
        mel, k = self.mirrored(mel)
        wave = self._phase(mel)[..., k * hop: (k + frames) * hop]
        return wave[0] if single else wave

    def _phase(self, mel: torch.Tensor) -> torch.Tensor:
        """Steps 1-3 of the module docstring: log-mel (B, T, n_mels) -> waveform (B, T x hop)."""
        frames, hop = mel.shape[1], self.hop_length
        target = torch.exp(mel).transpose(-1, -2)                   # M (B, n_mels, T)
        mag = self.magnitude(mel)                                   # S (B, bins, T)
        edges = lambda s: torch.cat([s[..., :1], s, s[..., -1:]], dim=-1)  # (B, bins, T + 2): u's frames
        length = hop * (frames + 1)                                 # u[0 : hop (T + 1)]
        angles, previous = self._initial_angles(mel.shape[0], mag.shape[1], frames + 2), None
        for _ in range(self.n_iter):
            rebuilt = self._stft(self._istft(edges(mag) * angles, length))   # c_n
            step = rebuilt if previous is None else rebuilt + self.momentum * (rebuilt - previous)  # t_n
            angles, previous = step / step.abs().clamp(min=1e-8), rebuilt
            if self.refine:
                mag = self.mel_step(rebuilt.abs()[..., 1:-1], target)
        return self._istft(edges(mag) * angles, length)[..., hop // 2: hop // 2 + frames * hop]


def load_vocoder(spec, device="cpu", dtype: torch.dtype | None = None, mel: MelConfig = AUDIOLDM) -> nn.Module:
    """"griffin-lim" -> GriffinLim(); a folder (a SpeechT5HifiGan folder, or one holding `vocoder/`) -> Vocoder."""
    if str(spec) == GRIFFIN_LIM:
        return GriffinLim(mel).to(device)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"vocoder {spec!r} is neither {GRIFFIN_LIM!r} nor an existing folder")
    return Vocoder.from_pretrained(path, dtype=dtype, device=device, mel=mel)
