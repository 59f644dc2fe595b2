"""Train a small vocoder (transformers' `SpeechT5HifiGan`, the class of AudioLDM's HiFi-GAN) on the one
training loop (loop.py): log-mel (B, T, 64) -> waveform (B, 160 T) at 16 kHz.

    lumina-video train-vocoder configs/demo_vocoder.yaml [key=value ...]

The loss has no discriminator (HiFi-GAN's adversarial and feature-matching terms are left out: on the
synthetic sounds, tones and clicks, the spectral terms below are what the timing and pitch metrics
need, and they train in minutes on a CPU). With x the target wave, x' = G(mel(x)):
    loss = mel_weight * mean|mel(x') - mel(x)|                                    HiFi-GAN's mel term
         + sum over STFT resolutions r of  ||S_r(x') - S_r(x)||_F / ||S_r(x)||_F   spectral convergence
                                        +  mean|log S_r(x') - log S_r(x)|          log magnitude
with S_r the STFT magnitude at (n_fft, hop) = (512, 64), (1024, 128), (2048, 256) (a multi-resolution STFT
loss, as Parallel WaveGAN's). RUN/final is a SpeechT5HifiGan folder of the EMA weights; RUN/final_report.json
holds the held-out clips' log-mel L1 and the onset F1 of wave -> mel -> vocoder -> wave (+-25 ms).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import files
from ..audio.mel import MelSpectrogram
from ..audio.vocoder import Vocoder, tiny_vocoder_config
from ..configs import ConfigError, at_least_one, load_yaml
from .audio_data import AudioClips, AudioDataConfig, check_audio_data
from .audio_vae_trainer import audio_done_line, round_trip_report
from .command import add_training_arguments, run_training_command
from .ema import EMA
from .loop import Stage, TrainState, apply_hyperparameters, run_one_process

RESOLUTIONS = ((512, 64), (1024, 128), (2048, 256))


@dataclass
class VocoderArchConfig:
    """`tiny_vocoder_config` of audio/vocoder.py: AudioLDM's upsampling 5 x 4 x 2 x 2 x 2 = 160."""
    channels: int = 64
    upsample_rates: list[int] = field(default_factory=lambda: [5, 4, 2, 2, 2])


@dataclass
class VocoderTrainConfig:
    run_dir: str = "runs/vocoder"
    seed: int = 0
    data: AudioDataConfig = field(default_factory=lambda: AudioDataConfig(segment_seconds=0.64))
    arch: VocoderArchConfig = field(default_factory=VocoderArchConfig)
    batch_size: int = 8
    steps: int = 3000
    lr: float = 2e-4
    mel_weight: float = 45.0
    grad_clip: float = 10.0
    ema_decay: float = 0.999
    checkpoint_every: int = 250
    keep_last: int = 2
    log_every: int = 25


def load_vocoder_config(path=None, overrides=()) -> VocoderTrainConfig:
    cfg = load_yaml(VocoderTrainConfig, path, overrides)
    check_vocoder_train_config(cfg)
    return cfg


def check_vocoder_train_config(cfg: VocoderTrainConfig) -> None:
    check_audio_data(cfg.data)
    at_least_one(cfg, ("steps", "batch_size", "checkpoint_every", "keep_last", "log_every"))
    hop = 1
    for r in cfg.arch.upsample_rates:
        hop *= r
    if cfg.arch.channels % 2 ** len(cfg.arch.upsample_rates):
        raise ConfigError(f"config key 'arch.channels' must be a multiple of 2^{len(cfg.arch.upsample_rates)} (each "
                          f"upsampling stage halves the channels), got {cfg.arch.channels}")
    if hop != 160:
        raise ConfigError(f"config key 'arch.upsample_rates' {cfg.arch.upsample_rates} must multiply to the mel hop "
                          f"160, got {hop}")


def stft_magnitude(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, device=x.device)
    return torch.stft(x, n_fft, hop_length=hop, window=window, return_complex=True).abs().clamp(min=1e-7)


def multi_resolution_stft_loss(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1, summed over RESOLUTIONS (module docstring)."""
    total = estimate.new_zeros(())
    for n_fft, hop in RESOLUTIONS:
        a, b = stft_magnitude(estimate, n_fft, hop), stft_magnitude(target, n_fft, hop)
        total = total + torch.linalg.norm(a - b) / torch.linalg.norm(b).clamp(min=1e-7)
        total = total + (a.log() - b.log()).abs().mean()
    return total


class VocoderFamily:
    """The vocoder as a model family of the one loop: one stage, one batch of segments per step."""

    def __init__(self, cfg: VocoderTrainConfig, clips: AudioClips):
        self.cfg, self.clips = cfg, clips
        self.stages = [Stage("vocoder", cfg.steps, cfg.lr)]
        self.mel = MelSpectrogram()
        self.vocoder = Vocoder.from_config(tiny_vocoder_config(cfg.arch.channels, tuple(cfg.arch.upsample_rates)))
        self.module = self.vocoder.model.train()
        self.ema = EMA(self.module, cfg.ema_decay)
        self.optimizer = torch.optim.AdamW(self.module.parameters(), **self.hyperparameters())
        self.report: dict = {}

    def data_report(self) -> str:
        return self.clips.report()

    def hyperparameters(self) -> dict:
        return dict(lr=self.cfg.lr, betas=(0.8, 0.99), weight_decay=0.0)  # HiFi-GAN's betas

    def start_stage(self, index: int, stage: Stage, state: TrainState, optimizer_state: dict | None) -> None:
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)
            apply_hyperparameters(self.optimizer, **self.hyperparameters())

    def forward_backward(self, state: TrainState) -> dict:
        wave = self.clips.batch(state.step, self.cfg.batch_size)                 # (B, N)
        with torch.no_grad():
            mel = self.mel(wave)                                                  # (B, N / 160, 64)
        estimate = self.vocoder(mel)                                              # (B, N)
        mel_l1 = (self.mel(estimate) - mel).abs().mean()
        stft = multi_resolution_stft_loss(estimate, wave)
        loss = self.cfg.mel_weight * mel_l1 + stft
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.cfg.grad_clip))
        return {"loss": loss.item(), "loss/mel_l1": mel_l1.item(), "loss/stft": stft.item(), "grad_norm": gnorm,
                "samples": wave.shape[0]}

    def update(self, state: TrainState) -> None:
        self.optimizer.step()
        self.ema.update(self.module, decay=min(self.cfg.ema_decay, (1 + state.step) / (10 + state.step)))

    def data_position(self) -> dict:
        return {}

    def payload(self) -> dict:
        return dict(model={k: v.detach().contiguous() for k, v in self.module.state_dict().items()},
                    ema=self.ema.full_state_dict(), optimizer=self.optimizer.state_dict())

    def load_payload(self, loaded: dict) -> None:
        self.module.load_state_dict(loaded["model"])
        self.ema.load_full_state_dict(loaded["ema"])

    def export(self, run_dir: Path) -> Path:
        averaged = self.ema.full_state_dict()
        with torch.no_grad():
            for name, p in self.module.named_parameters():
                p.copy_(averaged[name])
        self.module.eval()
        self.vocoder.save_pretrained(run_dir / "final")
        def through_vocoder(m):
            wave = self.vocoder(m)
            return self.mel(wave), wave

        self.report = round_trip_report(self.clips, self.mel, through_vocoder)
        files.write_json(run_dir / "final_report.json", self.report)
        return run_dir / "final"


def train_vocoder(cfg: VocoderTrainConfig, progress: bool = True, stop_at: int | None = None) -> dict:
    """Run (or resume) a vocoder training; returns a summary (with the report when finished)."""
    torch.manual_seed(cfg.seed)
    family = VocoderFamily(cfg, AudioClips(cfg.data, cfg.seed))
    return run_one_process(family, cfg, stop_at, progress, "train-vocoder")


def add_cli_arguments(p: argparse.ArgumentParser) -> None:
    add_training_arguments(p, "YAML config (see VocoderTrainConfig)", "steps=500 data.manifest=FILE")


def cli_main(args) -> int:
    return run_training_command("train-vocoder", train_vocoder, load_vocoder_config(args.config, args.overrides),
                                args, audio_done_line("train-vocoder"))
