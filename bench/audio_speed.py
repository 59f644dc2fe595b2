"""Audio path speed: real-time factors (seconds of compute per second of audio; < 1 is faster than real time)
of the pieces of lumina_video.audio, and optionally the Griffin-Lim round-trip quality.

Rows: reading the AAC track of an mp4 (read_audio), the log-mel spectrogram, the tiny audio VAE's encode and
decode (tiny_audio_vae_config), Griffin-Lim (refined, the default, and plain), the tiny HiFi-GAN
(tiny_vocoder_config) and, randomly initialised at their released sizes (the weights do not change the
speed), AudioLDM's VAE (audioldm_vae_config, 55M parameters) and HiFi-GAN (audioldm_vocoder_config, 55M).
Each row is the median of --runs timed calls after one warm-up call, with the min-max spread; inference
runs under torch.no_grad with --threads torch threads (1 by default: the machine may be shared).

--quality adds the Griffin-Lim round trip of tone bursts at 523.25 / 880 Hz (the clip of
tests/test_audio_models.py): spectral convergence of the output's mel, onset F1 at +-25 ms with and
without backtracking (librosa onsets at hop 160, mir_eval matching), the median onset error, and the
worst pitch error in cents (YIN over each burst's steady part).

    python bench/audio_speed.py [--seconds 4] [--runs 5] [--threads 1] [--no-audioldm] [--quality]
"""
from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lumina_video.audio import (
    GriffinLim,
    MelSpectrogram,
    read_audio,
    write_video_with_audio,
)
from lumina_video.audio.vae import AudioVAE, audioldm_vae_config, tiny_audio_vae_config
from lumina_video.audio.vocoder import Vocoder, audioldm_vocoder_config, tiny_vocoder_config

SR = 16000
ONSETS = (0.3137, 0.8571, 1.5, 2.1234, 2.9, 3.4)
NOTES = (523.25, 880.0, 523.25, 880.0, 523.25, 880.0)


def tone_bursts(seconds: float) -> np.ndarray:
    """Strikes (5 ms attack, 150 ms decay, amplitude 0.5) at ONSETS, repeated every 4 s to fill `seconds`."""
    x = np.zeros(int(seconds * SR))
    for base in np.arange(0, seconds, 4.0):
        for t0, hz in zip(ONSETS, NOTES):
            i = int(round((base + t0) * SR))
            if i < len(x):
                t = np.arange(len(x) - i) / SR
                x[i:] += 0.5 * np.minimum(t / 0.005, 1) * np.exp(-t / 0.15) * np.sin(2 * math.pi * hz * t)
    return x.astype(np.float32)


def timed(fn, runs: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def params(module) -> str:
    return f"{sum(p.numel() for p in module.parameters()) / 1e6:.2f}M" if module is not None else "-"


def speed_rows(seconds: float, runs: int, audioldm: bool) -> list[tuple]:
    wave = torch.from_numpy(tone_bursts(seconds))[None]           # (1, N)
    mel_fn = MelSpectrogram()
    mel = mel_fn(wave)                                            # (1, T, 64)
    frames = mel.shape[1] - mel.shape[1] % 4
    mel4 = mel[:, :frames]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        write_video_with_audio(clip, np.zeros((int(seconds * 16), 32, 32, 3), np.uint8), 16, wave[0].numpy())
        rows.append(("read_audio (mp4, AAC)", None, timed(lambda: read_audio(clip), runs)))
    rows.append(("log-mel (mel.py)", None, timed(lambda: mel_fn(wave), runs)))
    vaes = [("tiny VAE", AudioVAE.from_config(tiny_audio_vae_config()), runs)]
    vocoders = [("tiny HiFi-GAN", Vocoder.from_config(tiny_vocoder_config()), runs)]
    if audioldm:
        vaes.append(("AudioLDM VAE", AudioVAE.from_config(audioldm_vae_config()), max(3, runs // 2)))
        vocoders.append(("AudioLDM HiFi-GAN", Vocoder.from_config(audioldm_vocoder_config()), max(3, runs // 2)))
    for name, vae, n in vaes:
        vae.eval()
        z = vae.encode(mel4)
        rows.append((f"{name} encode", vae, timed(lambda v=vae: v.encode(mel4), n)))
        rows.append((f"{name} decode", vae, timed(lambda v=vae, z=z: v.decode(z), n)))
    for name, refine in (("Griffin-Lim 32 it., refined", True), ("Griffin-Lim 32 it., plain", False)):
        gl = GriffinLim(refine=refine)
        rows.append((name, None, timed(lambda g=gl: g(mel), runs)))
    for name, voc, n in vocoders:
        voc.eval()
        rows.append((name, voc, timed(lambda v=voc: v(mel), n)))
    return rows


def print_speed(rows, seconds: float, threads: int) -> None:
    print(f"\nreal-time factor: seconds of compute per second of audio ({seconds:g} s clip, {threads} thread(s), CPU)")
    print(f"{'component':<30}{'params':>9}{'median':>10}{'min':>9}{'max':>9}{'runs':>6}")
    for name, module, times in rows:
        rtf = [t / seconds for t in times]
        print(f"{name:<30}{params(module):>9}{statistics.median(rtf):>10.4f}{min(rtf):>9.4f}{max(rtf):>9.4f}"
              f"{len(rtf):>6}")


def quality_rows() -> list[tuple]:
    import librosa
    import mir_eval

    x = tone_bursts(4.0)
    mel_fn = MelSpectrogram()
    mel = mel_fn(torch.from_numpy(x))
    onsets = np.array(ONSETS)
    rows = []
    for name, wave in (("original", x), ("Griffin-Lim refined", GriffinLim()(mel).numpy()),
                       ("Griffin-Lim plain", GriffinLim(refine=False)(mel).numpy())):
        a, b = torch.exp(mel), torch.exp(mel_fn(torch.from_numpy(wave)))
        sc = float(torch.linalg.norm(a - b) / torch.linalg.norm(a))
        scores = []
        for backtrack in (False, True):
            est = librosa.onset.onset_detect(y=wave, sr=SR, hop_length=160, backtrack=backtrack, units="time")
            pairs = mir_eval.util.match_events(onsets, est, 0.05)
            err = float(np.median([est[j] - onsets[i] for i, j in pairs])) if pairs else float("nan")
            scores += [mir_eval.onset.f_measure(onsets, est, window=0.025)[0], 1000 * err]
        cents = []
        for t0, hz in zip(ONSETS, NOTES):
            part = wave[int((t0 + 0.02) * SR):int((t0 + 0.2) * SR)]
            f0 = librosa.yin(part, fmin=300, fmax=1500, sr=SR, frame_length=1024, hop_length=160, center=False)
            cents.append(abs(1200 * math.log2(float(np.median(f0)) / hz)))
        rows.append((name, sc, *scores, max(cents)))
    return rows


def print_quality(rows) -> None:
    print("\nGriffin-Lim round trip of tone bursts (4 s, 6 strikes at 523.25 / 880 Hz)")
    print(f"{'wave':<22}{'mel SC':>8}{'F1 peak':>9}{'err ms':>8}{'F1 backtr.':>12}{'err ms':>8}{'max cents':>11}")
    for name, sc, f_peak, e_peak, f_back, e_back, cents in rows:
        print(f"{name:<22}{sc:>8.4f}{f_peak:>9.2f}{e_peak:>8.1f}{f_back:>12.2f}{e_back:>8.1f}{cents:>11.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0, help="clip length")
    ap.add_argument("--runs", type=int, default=5, help="timed calls per row (half, at least 3, for AudioLDM sizes)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--no-audioldm", action="store_true", help="skip the AudioLDM-size VAE and HiFi-GAN")
    ap.add_argument("--quality", action="store_true", help="also print the Griffin-Lim round-trip quality")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with torch.no_grad():
        print_speed(speed_rows(args.seconds, args.runs, not args.no_audioldm), args.seconds, args.threads)
        if args.quality:
            print_quality(quality_rows())


if __name__ == "__main__":
    main()
