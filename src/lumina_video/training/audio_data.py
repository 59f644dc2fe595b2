"""Training data of the audio models (the audio VAE and the vocoder): clips of a manifest, read once
as 16 kHz mono, cut into random segments.

    records: every manifest record with an `audio_path` (else its `path`, a video with an audio track)
    held out: the last `holdout` usable records (in manifest order), for the final report
    batch at step s: `batch_size` segments of `segment_seconds`, item i from the clip and offset drawn by
                     the generator seeded with (seed, "audio", s, i): no data position to checkpoint, so
                     a resumed run draws exactly what an uninterrupted one would

A record whose audio cannot be read is skipped and counted (the summary says how many and why).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._checks import short_reason
from ..audio.media import SAMPLE_RATE, read_audio
from ..configs import ConfigError
from .data import stable_seed


@dataclass
class AudioDataConfig:
    manifest: str = ""                # JSON Lines; records with audio_path (or path with an audio track)
    segment_seconds: float = 1.28     # training segment (128 mel frames: a multiple of the VAE's 4x)
    holdout: int = 4                  # records kept out of training, for the final report
    max_seconds: float = 30.0         # longer clips are refused (one line naming both durations)


def check_audio_data(cfg: AudioDataConfig, key: str = "data") -> None:
    """Read-only checks of the data section."""
    if not cfg.manifest or not Path(cfg.manifest).is_file():
        raise ConfigError(f"config key '{key}.manifest': {cfg.manifest!r} does not exist "
                          "(make one with `lumina-video synth-av`)")
    frames = cfg.segment_seconds * 100
    if cfg.segment_seconds <= 0 or abs(frames - round(frames)) > 1e-6 or round(frames) % 4:
        raise ConfigError(f"config key '{key}.segment_seconds' must give a multiple of 4 mel frames at 100 "
                          f"frames/s (e.g. 0.64, 1.28), got {cfg.segment_seconds}")
    if cfg.holdout < 0:
        raise ConfigError(f"config key '{key}.holdout' must be >= 0, got {cfg.holdout}")


def read_records(path) -> list[dict]:
    """The JSON objects of a JSON Lines file (any record type: audio-only records need no video fields);
    a bad line raises ValueError naming the file and line."""
    records = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{lineno}: a record must be a JSON object")
        records.append(record)
    return records


class AudioClips:
    """The clips of a manifest in memory, split into training and held-out clips."""

    def __init__(self, cfg: AudioDataConfig, seed: int):
        self.cfg, self.seed = cfg, seed
        self.segment = round(cfg.segment_seconds * SAMPLE_RATE)
        self.skipped: Counter = Counter()
        clips, names = [], []
        root = Path(cfg.manifest).parent
        for record in read_records(cfg.manifest):
            wave = self._read(root, record)
            if wave is not None:
                clips.append(wave)
                names.append(record.get("audio_path") or record.get("path"))
        n_held = min(cfg.holdout, max(0, len(clips) - 1))
        self.train = clips[: len(clips) - n_held]
        self.held, self.held_names = clips[len(clips) - n_held:], names[len(clips) - n_held:]
        if not self.train:
            raise ConfigError(f"{cfg.manifest}: no readable audio clip to train on ({self.report()})")

    def _read(self, root: Path, record: dict) -> np.ndarray | None:
        name = record.get("audio_path") or record.get("path")
        if not name:
            self.skipped["no audio_path or path"] += 1
            return None
        try:
            wave = read_audio(root / name, max_seconds=self.cfg.max_seconds).wave
        except (ValueError, FileNotFoundError) as e:
            self.skipped[short_reason(e).split(":")[0][:60]] += 1
            return None
        if len(wave) < self.segment:  # pad short clips with silence so every clip gives a full segment
            wave = np.pad(wave, (0, self.segment - len(wave)))
        return wave.astype(np.float32)

    def report(self) -> str:
        kept = f"{len(getattr(self, 'train', []))} training and {len(getattr(self, 'held', []))} held-out clips"
        if not self.skipped:
            return kept
        return kept + "; skipped " + ", ".join(f"{n} ({why})" for why, n in sorted(self.skipped.items()))

    def batch(self, step: int, batch_size: int) -> torch.Tensor:
        """(batch_size, segment) waveforms of training step `step` (see the module docstring)."""
        out = []
        for i in range(batch_size):
            g = torch.Generator().manual_seed(stable_seed(self.seed, "audio", step, i))
            clip = self.train[int(torch.randint(len(self.train), (1,), generator=g))]
            start = int(torch.randint(len(clip) - self.segment + 1, (1,), generator=g))
            out.append(torch.from_numpy(clip[start:start + self.segment]))
        return torch.stack(out)

    def held_out(self) -> list[tuple[str, torch.Tensor]]:
        """(name, whole waveform cut to a multiple of 4 mel frames) of every held-out clip."""
        hop4 = 4 * 160
        return [(n, torch.from_numpy(w[: len(w) // hop4 * hop4])) for n, w in zip(self.held_names, self.held)]
