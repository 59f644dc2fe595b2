"""Ground-truth ceilings of the sound paths a V2A model generates through: each synth-av clip's exact sound
sent through a path and scored with `lumina-video eval-audio`'s metrics (eval/audio_sync.score_wave,
aggregated by eval/audio_metrics.aggregate, onsets pooled over clips), so a generated soundtrack's number
can be read against what the path itself allows.

Paths (rows of the table are metrics, columns are paths):
    truth           the rendered wav itself
    gl-edge0        log-mel -> Griffin-Lim without mirrored edges (edge=0; otherwise the defaults)
    gl              log-mel -> Griffin-Lim (the defaults of audio/vocoder.py)
    gl-N            log-mel -> Griffin-Lim with N iterations (--gl-iters)
    vae-gl          log-mel -> audio VAE (--audio-vae) -> Griffin-Lim (defaults)
    vocoder         log-mel -> a SpeechT5HifiGan vocoder folder (--vocoder)
    vae-vocoder     log-mel -> audio VAE -> that vocoder
The visual side (optical flow, for DeSync and AV-Align) is computed once per clip. --png writes a figure of
one clip per path: the log-mel spectrogram, and the onset envelope with the impact times and the detected
onsets marked.

    python bench/audio_ceiling.py [--data runs/audio_ceiling/data] [--n 50] [--audio-vae DIR] [--vocoder DIR]
                                  [--gl-iters 64 128] [--png docs/audio_ceiling.png [--png-clip K] [--png-only]]

The dataset is made with `lumina-video synth-av`'s make_dataset (seed 0, 64 px, 2-4 s, its default share of
two-object and still clips) unless --data already holds it (an existing item is not rendered again).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lumina_video.audio.media import read_audio
from lumina_video.audio.mel import MelSpectrogram
from lumina_video.audio.vae import AudioVAE
from lumina_video.audio.vocoder import GriffinLim, Vocoder
from lumina_video.data.synthetic_av import make_dataset
from lumina_video.data.video_io import read_video
from lumina_video.eval import audio_metrics as am
from lumina_video.eval import audio_sync as sync

ROWS = ("onset_f1_frame", "onset_precision_frame", "onset_recall_frame", "onset_f1_25ms",
        "onset_median_abs_error_ms", "desync_vs_ceiling_ms", "av_align_change", "pitch_accuracy",
        "pitch_median_abs_cents", "timbre_accuracy", "silence_rate", "loudness_spearman_set", "lsd_db")


def mel_path(mel: MelSpectrogram, decode, vae: AudioVAE | None = None):
    """wave (N,) -> wave: log-mel, optionally through the VAE (cropped to a multiple of its downsampling),
    then `decode` (log-mel (1, T, 64) -> (1, T x 160))."""
    @torch.no_grad()
    def run(wave: np.ndarray) -> np.ndarray:
        m = mel(torch.as_tensor(np.asarray(wave, np.float32))[None])
        if vae is not None:
            m = m[:, : m.shape[1] - m.shape[1] % vae.downsample]
            m = vae.decode(vae.encode(m))
        return decode(m)[0].numpy()
    return run


def build_paths(args) -> dict:
    """{name: wave -> wave} of the paths asked for (module docstring)."""
    mel = MelSpectrogram()
    gl = GriffinLim()
    paths = {"truth": lambda w: np.asarray(w), "gl-edge0": mel_path(mel, GriffinLim(edge=0)), "gl": mel_path(mel, gl)}
    for n in args.gl_iters:
        paths[f"gl-{n}"] = mel_path(mel, GriffinLim(n_iter=n))
    vae = AudioVAE.from_pretrained(args.audio_vae).eval() if args.audio_vae else None
    voc = Vocoder.from_pretrained(args.vocoder).eval() if args.vocoder else None
    if vae is not None:
        paths["vae-gl"] = mel_path(mel, gl, vae)
    if voc is not None:
        paths["vocoder"] = mel_path(mel, voc)
    if vae is not None and voc is not None:
        paths["vae-vocoder"] = mel_path(mel, voc, vae)
    return paths


def score_all(root: Path, records: list[dict], paths: dict) -> tuple[list[dict], dict]:
    """(entries {"scores": {path: score_wave}}, seconds spent in each path)."""
    entries, spent = [], dict.fromkeys(paths, 0.0)
    for rec in records:
        truth = read_audio(root / rec["audio_path"]).wave
        frames, fps = read_video(root / rec["path"])
        visual = sync.visual_events(frames, float(fps), len(truth) / am.SAMPLE_RATE)
        facts = sync.clip_facts(rec)
        scores = {}
        for name, path in paths.items():
            t0 = time.perf_counter()
            wave = path(truth)
            spent[name] += time.perf_counter() - t0
            wave = wave[: len(truth)] if len(wave) >= len(truth) else np.pad(wave, (0, len(truth) - len(wave)))
            scores[name] = sync.score_wave(wave, visual, facts, truth)
        base = scores["truth"]["desync"]
        for s in scores.values():
            s["desync_vs_ceiling"] = None if base is None or s["desync"] is None else s["desync"] - base
        entries.append({"record": rec["path"], "scores": scores})
    return entries, spent


def table(metrics: dict, names: list[str], spent: dict, seconds: float) -> str:
    """Markdown: a metric per row, a path per column, then the real-time factor of each path."""
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key in ROWS:
        row = metrics[key]
        cells = ["-" if row[n] is None else (f"{row[n]:.3f}" if row["unit"] == "" else f"{row[n]:.1f}")
                 for n in names]
        lines.append(f"| {row['label']}{' (' + row['unit'] + ')' if row['unit'] else ''} | " + " | ".join(cells) + " |")
    lines.append("| real-time factor (s per s of audio, 1 thread) | "
                 + " | ".join("-" if n == "truth" else f"{spent[n] / seconds:.3f}" for n in names) + " |")
    return "\n".join(lines)


def figure(root: Path, record: dict, paths: dict, out) -> None:
    """One column per path: log-mel (time x mel) over the onset envelope with impacts (dashed) and onsets (red
    dots), and in grey the envelope and onsets (crosses) of the detector without its band floor."""
    from lumina_video.files import pyplot, save_figure

    plt = pyplot()
    truth = read_audio(root / record["audio_path"]).wave
    mel = MelSpectrogram()
    impacts = [e["time"] for e in record["impacts"]]
    fig, axes = plt.subplots(2, len(paths), figsize=(3.2 * len(paths), 4.6), sharex=True, squeeze=False)
    for j, (name, path) in enumerate(paths.items()):
        wave = path(truth)
        m = mel(torch.as_tensor(np.asarray(wave, np.float32))).numpy()
        env, onsets = am.onset_envelope(wave), am.detect_onsets(wave)
        bare = am.OnsetSettings(floor_db=None)
        env0, onsets0 = am.onset_envelope(wave, settings=bare), am.detect_onsets(wave, settings=bare)
        seconds = len(wave) / am.SAMPLE_RATE
        axes[0, j].imshow(m.T, origin="lower", aspect="auto", extent=(0, seconds, 0, m.shape[1]), cmap="magma")
        axes[0, j].set_title(name, fontsize=9)
        t = np.arange(len(env)) * am.HOP / am.SAMPLE_RATE
        axes[1, j].plot(t, env0, lw=0.6, color="grey")
        axes[1, j].plot(onsets0, np.full(len(onsets0), env0.max() * 1.12), "x", ms=4, color="grey")
        axes[1, j].plot(t, env, lw=0.8)
        axes[1, j].axhline(am.ONSET.delta_db, color="grey", lw=0.5)
        axes[1, j].plot(onsets, np.full(len(onsets), env.max() * 1.05), "o", ms=3, color="red")
        for ax in axes[:, j]:
            for x in impacts:
                ax.axvline(x, color="cyan" if ax is axes[0, j] else "green", ls="--", lw=0.7)
        axes[1, j].set_xlabel("s")
    axes[0, 0].set_ylabel("mel bin")
    axes[1, 0].set_ylabel("onset strength (dB)")
    fig.suptitle(f"{record['path']}: {record['caption']} (impacts dashed, detected onsets red; grey: the "
                 "detector without its -52 dB band floor)", fontsize=9)
    save_figure(fig, out, dpi=80)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="runs/audio_ceiling/data", help="synth-av folder (made if missing)")
    ap.add_argument("--n", type=int, default=50, help="clips")
    ap.add_argument("--size", type=int, default=64, help="frame side of the clips made")
    ap.add_argument("--audio-vae", default=None, help="AutoencoderKL folder (train-audio-vae's RUN/final)")
    ap.add_argument("--vocoder", default=None, help="SpeechT5HifiGan folder (train-vocoder's RUN/final)")
    ap.add_argument("--gl-iters", type=int, nargs="*", default=[], help="extra Griffin-Lim iteration counts")
    ap.add_argument("--png", default=None, help="write the spectrogram / onset figure of --png-clip here")
    ap.add_argument("--png-clip", type=int, default=0, help="index of the clip in the figure")
    ap.add_argument("--png-only", action="store_true", help="only the figure (no scoring)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = Path(args.data)
    _, info = make_dataset(root, args.n, size=args.size, seed=0)
    records = info["records"]
    paths = build_paths(args)
    if args.png_only:
        figure(root, records[args.png_clip], paths, args.png or "audio_ceiling.png")
        return 0
    t0 = time.perf_counter()
    entries, spent = score_all(root, records, paths)
    metrics = am.aggregate(entries, conditions=tuple(paths))
    seconds = sum(r["duration"] for r in records)
    print("python bench/audio_ceiling.py " + " ".join(sys.argv[1:] if argv is None else argv))
    print(f"{len(records)} clips ({seconds:.0f} s of audio, {sum(len(r['impacts']) for r in records)} impacts), "
          f"scored in {time.perf_counter() - t0:.0f} s\n")
    print(table(metrics, list(paths), spent, seconds))
    if args.png:
        figure(root, records[args.png_clip], paths, args.png)
        print(f"\nfigure: {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
