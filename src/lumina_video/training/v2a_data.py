"""Training items of the V2A model: synth-av style records (a video `path`, its `audio_path` wav, a `caption`)
turned once, at start, into what the frozen encoders give, kept in memory.

Per clip (duration D s, padded to n = max(window, ceil(D)) whole seconds):
    wave      read_audio(audio_path or path), 16 kHz mono, zero-padded to n s
    latent    AudioVAE.encode(log-mel(wave)[:100 n])                      # (C, 25 n, M) scaled latents
    frames    data.video_io.read_video(path) (PyAV) at times i / fps
    visual    CLIPFrameEncoder.encode_video(frames, times, rate, duration=n)  # (rate n, Dv) at k / rate s
    sync_in   SmallSyncEncoder.prepare(frames, times, duration=n)        # (25 n, C, S, S) at k / 25 s
              (a frozen sync encoder's features (25 n, Ds) are computed here instead)
    masks     a visual / sync step at or after D is padding (False): it shows the clip's last frame
    text      TextEncoder.encode(all captions)                             # (L, Dt) + mask, one L for all

Windows. A training item is `window` whole seconds starting at a whole second `offset`: whole seconds put
every grid on integers (25 latents, `rate` CLIP frames and 25 sync frames per second), so a window is a
slice of each pre-extracted array, and its times start again at 0 (k / rate within the window).
Clips shorter than the window are padded (silent audio, masked frames), not skipped.
Timbre swaps (`swaps`, V2ATrainConfig.timbre_swap). A clip of one moving object of a synth-av dataset (its
folder's synth_av.json gives the seed) also keeps, per other shape, the latents and harmonic targets of its
sound rendered again with that shape's timbre (`synthetic_av.resound`: the same strikes, note, levels and
noise). A swapped window takes those as its audio, and the sync timbre channels of a donor clip of that
shape (`timbre_sync`; the trainer runs the sync encoder's colour-blind branch on them), so the overtones
follow the timbre channels and contradict the frames the other conditions see. A clip whose sound does not
render again to its wav (within 2 LSB) gets no swaps; `report` counts them.
Records that cannot be read are skipped and counted. The VAE encodes the whole clip once, so a window's
latents at its edges see the neighbouring audio (the VAE's receptive field), a small, documented difference
from encoding the window alone.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._checks import short_reason
from ..audio.media import SAMPLE_RATE, read_audio
from ..audio.mel import MelSpectrogram
from ..audio.partials import partial_powers
from ..configs import ConfigError
from ..data.video_io import read_video
from ..data.vocab import SHAPES
from ..encoders.clips import frame_times
from .audio_data import read_records


@dataclass
class V2ADataConfig:
    manifest: str = ""               # JSON Lines with path (video), audio_path (wav) and caption
    window_seconds: int = 2          # training window, whole seconds (see the module docstring)
    clip_rate: float = 8.0           # CLIP frame features per second
    max_seconds: float = 30.0        # longer clips are refused (skipped and counted)
    max_clips: int = 0               # use only the first N readable records (0: all)


def check_v2a_data(cfg: V2ADataConfig, key: str = "data") -> None:
    """Read-only checks of the data section."""
    if not cfg.manifest or not Path(cfg.manifest).is_file():
        raise ConfigError(f"config key '{key}.manifest': {cfg.manifest!r} does not exist "
                          "(make one with `lumina-video synth-av`)")
    if cfg.window_seconds < 1:
        raise ConfigError(f"config key '{key}.window_seconds' must be a whole number of seconds >= 1, "
                          f"got {cfg.window_seconds}")
    if cfg.clip_rate <= 0 or abs(cfg.clip_rate - round(cfg.clip_rate)) > 1e-9:
        raise ConfigError(f"config key '{key}.clip_rate' must be a whole number of frames per second, "
                          f"got {cfg.clip_rate}")
    if cfg.max_clips < 0:
        raise ConfigError(f"config key '{key}.max_clips' must be >= 0, got {cfg.max_clips}")


@dataclass
class Encoders:
    """The encoders items are made with: frozen vae, clip and text; sync trained when `train_sync`."""
    vae: object
    clip: object
    text: object
    sync: torch.nn.Module
    train_sync: bool = True


@dataclass
class Clip:
    """One clip's pre-extracted arrays (module docstring); `seconds` = n, `record` the manifest record."""
    record: dict
    seconds: int
    latent: torch.Tensor         # (C, 25 n, M)
    visual: torch.Tensor         # (rate n, Dv)
    visual_mask: torch.Tensor    # (rate n,) bool
    sync: torch.Tensor           # (25 n, C, S, S) prepared frames (float16), or (25 n, Ds) frozen features
    sync_mask: torch.Tensor      # (25 n,) bool
    text: torch.Tensor           # (L, Dt)
    text_mask: torch.Tensor      # (L,) bool
    envelope: torch.Tensor | None = None  # (25 n, 2 + M) onset strength, loudness, log-mel bands; standardised
    harmonics: torch.Tensor | None = None  # (25 n, 3 + K - 1) sounding, harmonic weight, f0 Hz, amplitudes 2..K
    shape: str | None = None     # the shape of a clip's only object (timbre swaps' donors)
    swaps: dict | None = None    # {other shape: (latent, harmonics)} of a one-moving-object clip (module docstring)


class V2AClips:
    """Every usable clip of a manifest, pre-extracted (module docstring)."""

    def __init__(self, cfg: V2ADataConfig, encoders: Encoders, harmonics: int = 0, swaps: bool = False):
        self.cfg, self.enc, self.n_harmonics = cfg, encoders, harmonics
        self.skipped: Counter = Counter()
        self.unswappable = 0
        self.mel = MelSpectrogram()
        root = Path(cfg.manifest).parent
        self.synth_seed = synth_seed(root) if swaps else None
        raw = []
        for record in read_records(cfg.manifest):
            if cfg.max_clips and len(raw) >= cfg.max_clips:
                break
            item = self._read(root, record)
            if item is not None:
                raw.append(item)
        if not raw:
            raise ConfigError(f"{cfg.manifest}: no readable clip to train on ({self.report()})")
        with torch.no_grad():
            text, mask = encoders.text.encode([r["caption"] or "" for r, *_ in raw], device="cpu")
        self.clips = [self._extract(*item, text[i].float(), mask[i].bool()) for i, item in enumerate(raw)]
        standardise_envelopes(self.clips)
        self.donors = {s: [i for i, c in enumerate(self.clips) if c.shape == s] for s in SHAPES}
        self.swappable = [i for i, c in enumerate(self.clips) if c.swaps]

    def _read(self, root: Path, record: dict):
        """(record, wave, frames, frame times) or None (counted) when a file is missing or unreadable."""
        try:
            wave = read_audio(root / (record.get("audio_path") or record["path"]),
                              max_seconds=self.cfg.max_seconds).wave
            frames, fps = read_video(root / record["path"])
        except (KeyError, ValueError, FileNotFoundError) as e:
            self.skipped[short_reason(e).split(":")[0][:60]] += 1
            return None
        return record, wave, frames, frame_times(len(frames), fps)

    @torch.no_grad()
    def _extract(self, record, wave, frames, times, text, text_mask) -> Clip:
        enc, rate = self.enc, round(self.cfg.clip_rate)
        duration = min(len(wave) / SAMPLE_RATE, len(frames) / _fps(times))
        n = max(self.cfg.window_seconds, math.ceil(duration - 1e-6))
        wave, mel, latent, harmonics = self._sound(wave, n)
        envelope = audio_envelope(mel[0], latent.shape[1])  # (25 n, 2 + 64)
        visual, v_times = enc.clip.encode_video(frames, times, rate=rate, duration=n)  # (rate n, Dv)
        sync_in, s_times = enc.sync.prepare(frames, times, duration=n)  # (25 n, C, S, S)
        # frames kept in float16 (half the memory), or the frozen encoder's features
        sync = sync_in.half().cpu() if enc.train_sync else enc.sync(sync_in[None])[0].float().cpu()
        objects = record.get("objects") or []
        shape = objects[0].get("shape") if len(objects) == 1 else None
        swaps = None
        if self.synth_seed is not None and shape in SHAPES and objects[0].get("motion") != "still":
            swaps = self._swaps(record, wave, n)
        return Clip(record, n, latent, visual.float().cpu(), torch.from_numpy(v_times < duration),
                    sync, torch.from_numpy(s_times < duration), text, text_mask, envelope, harmonics, shape, swaps)

    def _sound(self, wave: np.ndarray, n: int) -> tuple:
        """(wave zero-padded to n s, its log-mel (1, 100 n, 64), latent (C, 25 n, M), harmonic targets
        (25 n, 3 + K - 1) or None): what a clip's sound, or its timbre swap's, is turned into."""
        wave = np.pad(wave, (0, max(0, n * SAMPLE_RATE - len(wave))))[: n * SAMPLE_RATE]
        mel = self.mel(torch.from_numpy(wave.astype(np.float32))[None])[:, : n * 100]
        latent = self.enc.vae.encode(mel)[0].float().cpu()
        harmonics = audio_harmonics(wave, latent.shape[1], self.n_harmonics, self.mel) if self.n_harmonics else None
        return wave, mel, latent, harmonics

    def _swaps(self, record: dict, wave: np.ndarray, n: int) -> dict | None:
        """{other shape: (latent, harmonics)} of the clip's sound (`wave`, padded to n s) with that shape's
        timbre (module docstring); None (counted) when its sound does not render again to its wav."""
        from ..data.synthetic_av import resound

        try:
            again = np.pad(resound(record, self.synth_seed), (0, n * SAMPLE_RATE))[: n * SAMPLE_RATE]
        except (KeyError, TypeError, ValueError):
            again = None
        if again is None or np.abs(again - wave).max() > 2 / 32768:
            self.unswappable += 1
            return None
        return {other: self._sound(resound(record, self.synth_seed, other), n)[2:]
                for other in SHAPES if other != record["objects"][0]["shape"]}

    def report(self) -> str:
        kept = f"{len(getattr(self, 'clips', []))} clips"
        if self.synth_seed is not None:
            kept += f" ({len(getattr(self, 'swappable', []))} with timbre swaps, {self.unswappable} not rendered again)"
        if not self.skipped:
            return kept
        return kept + "; skipped " + ", ".join(f"{n} ({why})" for why, n in sorted(self.skipped.items()))

    def __len__(self) -> int:
        return len(self.clips)

    def offsets(self, index: int) -> int:
        """The number of whole-second window starts of clip `index`."""
        return self.clips[index].seconds - self.cfg.window_seconds + 1

    def draw_swap(self, index: int, g: torch.Generator, p: float, sync_dropped: bool) -> tuple | None:
        """(shape, donor clip, donor offset) of a timbre swap of clip `index` with probability p, or None (no
        swaps, a dropped sync condition, no donor); draws the same four numbers from `g` either way."""
        u, pick, donor_pick, donor_offset = torch.rand(4, generator=g).tolist()
        clip = self.clips[index]
        if u >= p or sync_dropped or not clip.swaps:
            return None
        shapes = sorted(clip.swaps)
        shape = shapes[min(int(pick * len(shapes)), len(shapes) - 1)]
        donors = self.donors[shape]
        if not donors:
            return None
        d = donors[min(int(donor_pick * len(donors)), len(donors) - 1)]
        return shape, d, min(int(donor_offset * self.offsets(d)), self.offsets(d) - 1)

    def window(self, index: int, offset: int = 0, visual_from: int | None = None,
               swap: tuple[str, int, int] | None = None) -> dict:
        """The window [offset, offset + window) s of clip `index` as the model's keyword inputs of one item
        (no batch dim) plus `latent`; `visual_from` takes the visual and sync inputs of another clip (the
        shuffled-video control); `swap` = (shape, donor clip, donor offset) takes the audio of the clip's timbre
        swap to that shape and the donor window's sync input as `timbre_sync` (module docstring)."""
        c, w, rate = self.clips[index], self.cfg.window_seconds, round(self.cfg.clip_rate)
        v = self.clips[index if visual_from is None else visual_from]
        if offset + w > min(c.seconds, v.seconds):
            raise ValueError(f"window at {offset} s does not fit clip {index} ({c.seconds} s)")
        lat = c.latent.shape[1] // c.seconds  # latents per second (25)
        sps = v.sync.shape[0] // v.seconds   # sync frames per second (25)
        vis, syn = slice(offset * rate, (offset + w) * rate), slice(offset * sps, (offset + w) * sps)
        latent, harmonics = c.latent, c.harmonics
        extra = {}
        if swap is not None:
            shape, donor, d_offset = swap
            if not c.swaps or shape not in c.swaps or self.clips[donor].shape != shape:
                raise ValueError(f"clip {index} has no timbre swap to {shape!r} with donor clip {donor}")
            latent, harmonics = c.swaps[shape]
            d = self.clips[donor]
            extra["timbre_sync"] = d.sync[d_offset * sps:(d_offset + w) * sps]
        if harmonics is not None:
            extra["harmonics"] = harmonics[offset * lat:(offset + w) * lat]
        return dict(**extra, latent=latent[:, offset * lat:(offset + w) * lat],
                    envelope=c.envelope[offset * lat:(offset + w) * lat], visual=v.visual[vis],
                    visual_mask=v.visual_mask[vis], visual_times=torch.arange(w * rate) / rate,
                    sync=v.sync[syn], sync_mask=v.sync_mask[syn], sync_times=torch.arange(w * sps) / sps,
                    text=c.text, text_mask=c.text_mask)


def audio_envelope(mel: torch.Tensor, frames: int) -> torch.Tensor:
    """Log-mel (100 n, M) -> (frames, 2 + M) per latent frame (4 mel frames): the onset strength (the largest
    spectral flux, sum over bands of the rise of the log-mel, of its mel frames), the loudness (mean log-mel) and
    the M bands' mean log-mel. What the sync encoder's auxiliary head predicts from the video alone
    (V2ATrainConfig.sync_target, sync_target_weight)."""
    hop = mel.shape[0] // frames
    rise = torch.clamp(mel[1:] - mel[:-1], min=0).sum(-1)
    flux = torch.cat([rise.new_zeros(1), rise])[: frames * hop].view(frames, hop).amax(-1)
    bands = mel[: frames * hop].reshape(frames, hop, -1).mean(1)  # (frames, M)
    return torch.cat([flux[:, None], bands.mean(-1, keepdim=True), bands], dim=-1).float().cpu()


def synth_seed(root: Path) -> int:
    """The seed of the synth-av dataset in `root` (its synth_av.json), for timbre swaps; ConfigError without one."""
    import json

    try:
        return int(json.loads((root / "synth_av.json").read_text())["seed"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"timbre swaps need a synth-av dataset: {root / 'synth_av.json'} is missing or has no "
                          "seed (make the data with `lumina-video synth-av`, or set timbre_swap: 0)") from None


SOUNDING_DBFS = -50.0  # a latent frame whose RMS is above this sounds (the synthetic floor is -60 dBFS)
HARMONIC_SHARE = 0.8   # ... and is one note when its harmonics of f0 hold at least this share of its power


def audio_harmonics(wave: np.ndarray, frames: int, n_harmonics: int, mel: MelSpectrogram) -> torch.Tensor:
    """The harmonic head's targets per latent frame (model/v2a_harmonics.py), from the sound alone:
    (frames, 3 + K - 1) = (sounding 0/1, harmonic weight 0/1, f0 Hz, amplitudes of harmonics 2..K relative
    to the fundamental, clipped to [0, 1]).

    f0: the median over the frame's 4 STFT frames of librosa.yin (frame 1024, hop 160, 250-2100 Hz). The
    power spectrum is the frame's mean |STFT|^2 (the log-mel's STFT); harmonic k's amplitude the root of the
    power within +-3% (>= +-2 bins) of k f0 (audio/partials.py, as eval-audio's harmonic profile). Sounding: RMS above
    SOUNDING_DBFS; harmonic weight: sounding and harmonics 1..K hold at least HARMONIC_SHARE of the power from
    200 Hz up (a two-note mixture or a noise burst does not; its f0 and amplitudes are not trained)."""
    import librosa

    from ..model.v2a_harmonics import F0_MAX, F0_MIN

    cfg = mel.cfg
    power = mel.magnitude(torch.from_numpy(wave.astype(np.float32))).double().pow(2).numpy()  # (bins, T)
    hop = power.shape[-1] // frames
    power = power[:, : frames * hop].reshape(power.shape[0], frames, hop).mean(-1)  # (bins, frames)
    f0 = librosa.yin(np.asarray(wave, np.float32), fmin=F0_MIN, fmax=F0_MAX, sr=cfg.sample_rate,
                     frame_length=cfg.n_fft, hop_length=cfg.hop_length)
    f0 = np.pad(f0, (0, max(0, frames * hop - len(f0))), mode="edge")[: frames * hop]
    f0 = np.median(f0.reshape(frames, hop), axis=1)  # (frames,)
    samples = len(wave) // frames
    rms = np.sqrt(np.mean(np.asarray(wave[: frames * samples], np.float64).reshape(frames, samples) ** 2, axis=1))
    sounding = 20 * np.log10(np.maximum(rms, 1e-12)) > SOUNDING_DBFS
    hz = np.arange(power.shape[0]) * cfg.sample_rate / cfg.n_fft
    amps = partial_powers(power, hz, f0, n_harmonics)  # (frames, K)
    total = power[hz >= 200].sum(0)
    share = amps.sum(1) / np.maximum(total, 1e-20)
    ratios = np.clip(np.sqrt(amps[:, 1:] / np.maximum(amps[:, :1], 1e-20)), 0, 1)
    weight = sounding & (share >= HARMONIC_SHARE)
    out = np.concatenate([sounding[:, None], weight[:, None], f0[:, None], ratios], axis=1)
    return torch.from_numpy(out).float()


def standardise_envelopes(clips: list[Clip]) -> None:
    """Each envelope channel to zero mean, unit variance over every clip's frames (in place)."""
    every = torch.cat([c.envelope for c in clips])
    mean, std = every.mean(0), every.std(0, unbiased=False).clamp(min=1e-3)
    for c in clips:
        c.envelope = (c.envelope - mean) / std


def _fps(times: np.ndarray) -> float:
    """The frame rate of constant-rate frame times (1 frame: 1 / s)."""
    return 1.0 / float(np.median(np.diff(times))) if len(times) > 1 else 1.0


def collate(items: list[dict]) -> dict:
    """Stack the items' tensors along a new batch dim (times (B, K))."""
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}
