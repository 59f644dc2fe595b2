"""Train a small audio VAE (diffusers' `AutoencoderKL` over log-mel spectrograms, AudioLDM's shape rules)
on the one training loop (loop.py), for V2A models that cannot use AudioLDM's released VAE.

    lumina-video train-audio-vae configs/demo_audio_vae.yaml [key=value ...]

On log-mel segments m (B, T, 64) of the training clips (audio_data.py):
    z ~ q(z | m) (reparameterised),  m' = decode(z)
    loss = mean|m' - m| + kl_weight * KL(q(z | m) || N(0, I))       (L1 a mean over mel values, KL a sum
                                                                     over an item's latents, batch mean)
The EMA warms up as the video VAE's: decay min(ema_decay, (1 + step) / (10 + step)). At the end the EMA
weights go to RUN/final (an AutoencoderKL folder) with `scaling_factor` = 1 / std of the training
latents (so a diffusion model sees unit-variance latents), and RUN/final_report.json: the held-out clips'
log-mel L1 and the onset F1 of the round trip wave -> mel -> VAE -> mel -> Griffin-Lim -> wave against
the onsets of the original wave (+-25 ms).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import files
from ..audio.mel import MelSpectrogram
from ..audio.onsets import detect_onsets, onset_scores
from ..audio.vae import AudioVAE, tiny_audio_vae_config
from ..audio.vocoder import GriffinLim
from ..configs import ConfigError, at_least_one, load_yaml
from .audio_data import AudioClips, AudioDataConfig, check_audio_data
from .command import add_training_arguments, run_training_command
from .ema import EMA
from .loop import (
    Stage,
    TrainState,
    apply_hyperparameters,
    run_one_process,
)


@dataclass
class AudioVAEArchConfig:
    """`tiny_audio_vae_config` of audio/vae.py: 3 down blocks (4x in time and mel), 8 latent channels."""
    block_out_channels: list[int] = field(default_factory=lambda: [16, 32, 32])
    layers_per_block: int = 1
    latent_channels: int = 8
    norm_num_groups: int = 8


@dataclass
class AudioVAETrainConfig:
    run_dir: str = "runs/audio_vae"
    seed: int = 0
    data: AudioDataConfig = field(default_factory=AudioDataConfig)
    arch: AudioVAEArchConfig = field(default_factory=AudioVAEArchConfig)
    batch_size: int = 8
    steps: int = 2000
    lr: float = 3e-4
    kl_weight: float = 1e-6
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    checkpoint_every: int = 250
    keep_last: int = 2
    log_every: int = 25


def load_audio_vae_config(path=None, overrides=()) -> AudioVAETrainConfig:
    cfg = load_yaml(AudioVAETrainConfig, path, overrides)
    check_audio_vae_config(cfg)
    return cfg


def check_audio_vae_config(cfg: AudioVAETrainConfig) -> None:
    """Read-only checks; ConfigError names the key."""
    check_audio_data(cfg.data)
    at_least_one(cfg, ("steps", "batch_size", "checkpoint_every", "keep_last", "log_every"))
    if len(cfg.arch.block_out_channels) != 3:
        raise ConfigError("config key 'arch.block_out_channels' needs 3 entries (3 down blocks: 4x, as AudioLDM's VAE)")
    if any(c % cfg.arch.norm_num_groups for c in cfg.arch.block_out_channels):
        raise ConfigError(f"config key 'arch.block_out_channels' {cfg.arch.block_out_channels} must be multiples of "
                          f"arch.norm_num_groups={cfg.arch.norm_num_groups}")


class AudioVAEFamily:
    """The audio VAE as a model family of the one loop: one stage, one batch per step."""

    def __init__(self, cfg: AudioVAETrainConfig, clips: AudioClips):
        self.cfg, self.clips = cfg, clips
        self.stages = [Stage("audio-vae", cfg.steps, cfg.lr)]
        self.mel = MelSpectrogram()
        self.vae = AudioVAE.from_config(tiny_audio_vae_config(**vars(cfg.arch)))
        self.module = self.vae.model.train()  # the nn.Module the loop checks checkpoints against
        self.ema = EMA(self.vae.model, cfg.ema_decay)
        self.optimizer = torch.optim.AdamW(self.vae.model.parameters(), **self.hyperparameters())
        self.report: dict = {}

    def data_report(self) -> str:
        return self.clips.report()

    def hyperparameters(self) -> dict:
        return dict(lr=self.cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)

    def start_stage(self, index: int, stage: Stage, state: TrainState, optimizer_state: dict | None) -> None:
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)
            apply_hyperparameters(self.optimizer, **self.hyperparameters())

    def forward_backward(self, state: TrainState) -> dict:
        with torch.no_grad():
            mel = self.mel(self.clips.batch(state.step, self.cfg.batch_size))       # (B, T, 64)
        recon, posterior = self.vae(mel)
        l1 = (recon - mel).abs().mean()
        kl = posterior.kl().mean()
        loss = l1 + self.cfg.kl_weight * kl
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(self.vae.model.parameters(), self.cfg.grad_clip))
        return {"loss": loss.item(), "loss/l1": l1.item(), "loss/kl": kl.item(), "grad_norm": gnorm,
                "samples": mel.shape[0]}

    def update(self, state: TrainState) -> None:
        self.optimizer.step()
        self.ema.update(self.vae.model, decay=min(self.cfg.ema_decay, (1 + state.step) / (10 + state.step)))

    def data_position(self) -> dict:
        return {}  # batches are keyed by step (audio_data.py)

    def payload(self) -> dict:
        return dict(model={k: v.detach().contiguous() for k, v in self.vae.model.state_dict().items()},
                    ema=self.ema.full_state_dict(), optimizer=self.optimizer.state_dict())

    def load_payload(self, loaded: dict) -> None:
        self.vae.model.load_state_dict(loaded["model"])
        self.ema.load_full_state_dict(loaded["ema"])

    def export(self, run_dir: Path) -> Path:
        averaged = self.ema.full_state_dict()
        with torch.no_grad():
            for name, p in self.vae.model.named_parameters():
                p.copy_(averaged[name])
        self.vae.model.eval()
        self.vae.set_scaling_factor(latent_scale(self.vae, self.mel, self.clips))
        self.vae.save_pretrained(run_dir / "final")
        griffin_lim = GriffinLim()

        def through_vae(m):
            out = self.vae.decode(self.vae.encode(m))
            return out, griffin_lim(out)

        self.report = round_trip_report(self.clips, self.mel, through_vae)
        files.write_json(run_dir / "final_report.json", self.report)
        return run_dir / "final"


@torch.no_grad()
def latent_scale(vae: AudioVAE, mel: MelSpectrogram, clips: AudioClips, batches: int = 4) -> float:
    """1 / std of the (unscaled) latents of a few training batches."""
    z = torch.cat([vae.posterior(mel(clips.batch(-1 - i, 8))).mode() for i in range(batches)])
    return float(1.0 / z.float().std().clamp(min=1e-6))


@torch.no_grad()
def round_trip_report(clips: AudioClips, mel: MelSpectrogram, reconstruct, window: float = 0.025) -> dict:
    """Held-out clips: `reconstruct(mel) -> (mel', wave')`; the log-mel L1 of mel' against mel, and the
    onset F1 of wave' against the original wave's onsets (+-window)."""
    per_clip = []
    for name, wave in clips.held_out():
        m = mel(wave[None])
        out, est = reconstruct(m)
        scores = onset_scores(detect_onsets(wave.numpy()), detect_onsets(est[0].numpy()), window)
        per_clip.append({"clip": name, "log_mel_l1": round(float((out - m).abs().mean()), 4),
                         "onset_f1": round(scores.f1, 4)})
    mean = (lambda k: round(sum(c[k] for c in per_clip) / len(per_clip), 4) if per_clip else None)
    return {"holdout": per_clip, "mean_log_mel_l1": mean("log_mel_l1"), "mean_onset_f1": mean("onset_f1"),
            "onset_window_s": window}


def train_audio_vae(cfg: AudioVAETrainConfig, progress: bool = True, stop_at: int | None = None) -> dict:
    """Run (or resume) an audio VAE training; returns a summary (with the report when finished)."""
    torch.manual_seed(cfg.seed)
    family = AudioVAEFamily(cfg, AudioClips(cfg.data, cfg.seed))
    return run_one_process(family, cfg, stop_at, progress, "train-audio-vae")


def add_cli_arguments(p: argparse.ArgumentParser) -> None:
    add_training_arguments(p, "YAML config (see AudioVAETrainConfig)", "steps=500 data.manifest=FILE")


def audio_done_line(name: str):
    """The summary line of an audio trainer's finished run (its held-out report)."""
    return lambda out: (f"{name}: {out['step']} steps -> {out['run_dir']}/final; held-out log-mel L1 "
                        f"{out['mean_log_mel_l1']}, round-trip onset F1 {out['mean_onset_f1']} (+-25 ms)")


def cli_main(args) -> int:
    return run_training_command("train-audio-vae", train_audio_vae, load_audio_vae_config(args.config, args.overrides),
                                args, audio_done_line("train-audio-vae"))
