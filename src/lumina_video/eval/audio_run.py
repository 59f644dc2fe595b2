"""`lumina-video eval-audio VIDEOS... --manifest MANIFEST --out DIR`, and the same from Python:
`evaluate_audio(videos, manifest, out_dir=None, reconstruct=None) -> report dict`.

Each input (an mp4 with an audio track, or a wav) is matched to its manifest record by file name (the
stem: `000012.wav` and `000012.mp4` both match `clips/000012.mp4`); with no inputs, every video record
of the manifest is scored with its own mp4's audio. The visual side always comes from frames: the
input's when it is a video, else the record's video.

Every metric is computed for several soundtracks of each clip, so that a number means something:
    value          the input's audio
    ceiling        the manifest's exact rendered sound (`audio_path`) scored the same way
    reconstructed  that sound through `reconstruct` (wave -> wave, e.g. mel -> VAE -> vocoder), if given
    shuffled       the input audio of another clip (a seeded derangement: order the clips at random,
                   each takes the audio of the next), trimmed or zero-padded to this clip's length
Metric functions: audio_metrics.py (onsets, pitch, timbre, silence, loudness, distances) and
audio_sync.py (DeSync, AV-Align). Set values (audio_metrics.AGGREGATES): onset precision / recall / F1
pool the counts of all clips; DeSync is the mean |offset| and AV-Align the mean, over clips with
impacts; pitch / timbre accuracy the fraction of single-source clips right; silence the fraction of
still clips silent; loudness the mean per-clip Spearman and the Spearman over moving clips of mean
level against mean speed; distances the mean over clips with a reference.

Bad input stops the run before anything is written, in one line: an input without an audio stream, an
input no record matches, records without `impacts` / `objects` (named). A file that cannot be
decoded is skipped and counted, like `lumina-video eval`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .._checks import short_reason
from ..audio.media import CorruptAudioError, NoAudioStreamError, read_audio
from ..data.manifest import read_manifest, resolve_path
from ..data.video_io import CorruptMediaError, read_video
from ..files import write_json, write_text
from . import audio_metrics as am
from . import audio_sync as sync
from .audio_figures import SPECTRA, spectrogram_chart
from .format import pyplot, save_figure

CONDITIONS = ("value", "ceiling", "reconstructed", "shuffled")
NEEDED = ("objects", "impacts")


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def check_records(records: list[dict]) -> None:
    """Every record to score must carry the synthetic AV fields the metrics need; name those that don't."""
    for key in NEEDED:
        bad = [Path(r["path"]).name for r in records if not isinstance(r.get(key), list)]
        if bad:
            shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise ValueError(f"{len(bad)} manifest records have no {key!r} list (the onset, sync, pitch and "
                             f"loudness metrics need them; a synth-av manifest has them): {shown}")


def match_inputs(videos: list[str], records: list[dict]) -> list[tuple[str, dict]]:
    """(input path, record) pairs: every video record's own mp4 without inputs, else by resolved path,
    then by stem. Unmatched or ambiguous inputs are an error."""
    clips = [r for r in records if r["type"] == "video"]
    if not videos:
        return [(r["path"], r) for r in clips]
    by_path = {str(Path(r["path"]).resolve()): r for r in clips}
    by_stem: dict[str, list[dict]] = {}
    for r in clips:
        by_stem.setdefault(Path(r["path"]).stem, []).append(r)
    pairs, unmatched = [], []
    for v in videos:
        rec = by_path.get(str(Path(v).resolve()))
        if rec is None:
            found = by_stem.get(Path(v).stem, [])
            if len(found) > 1:
                raise ValueError(f"{v}: {len(found)} manifest records share the name {Path(v).stem!r}; give paths")
            rec = found[0] if found else None
        if rec is None:
            unmatched.append(Path(v).name)
        pairs.append((v, rec))
    if unmatched:
        raise ValueError(f"no manifest record matches {len(unmatched)} inputs by file name: {', '.join(unmatched[:5])}")
    return pairs


def _read_wave(path) -> np.ndarray:
    try:
        return read_audio(path).wave
    except NoAudioStreamError:
        raise ValueError(f"{path} has no audio stream; eval-audio scores soundtracks: give videos with an "
                         "audio track, or wav files") from None


def load_audio(path: str, record: dict) -> dict:
    """{"wave", "truth" (or None)}; a file that cannot be decoded gives {"error": reason}."""
    try:
        truth = record.get("audio_path")
        return {"wave": _read_wave(path), "truth": _read_wave(truth) if truth and Path(truth).is_file() else None}
    except (CorruptAudioError, FileNotFoundError) as e:
        return {"error": f"unreadable: {short_reason(e)}"}


def load_frames(path: str, record: dict) -> tuple[np.ndarray, float]:
    """The clip's frames and fps: the input's own when it is a video, else the record's video."""
    return read_video(record["path"] if Path(path).suffix.lower() == ".wav" else path)


def derangement(n: int, seed: int) -> list[int] | None:
    """partner[i] != i for every clip: a random order, each clip taking the next one's audio."""
    if n < 2:
        return None
    order = np.random.default_rng(seed).permutation(n)
    partner = [0] * n
    for k, i in enumerate(order):
        partner[i] = int(order[(k + 1) % n])
    return partner


def fit_length(wave: np.ndarray, n: int) -> np.ndarray:
    return wave[:n] if len(wave) >= n else np.concatenate([wave, np.zeros(n - len(wave), wave.dtype)])


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


def score_clip(clip: dict, record: dict, other: np.ndarray | None, reconstruct=None) -> dict:
    """{condition: scores or None} for one clip ({"wave", "truth", "frames", "fps"}; `other`: the
    shuffled partner's audio)."""
    facts = sync.clip_facts(record)
    wave, truth = clip["wave"], clip["truth"]
    visual = sync.visual_events(clip["frames"], clip["fps"], len(wave) / am.SAMPLE_RATE)
    waves = {"value": wave, "ceiling": truth,
             "reconstructed": None if truth is None or reconstruct is None else np.asarray(reconstruct(truth)),
             "shuffled": None if other is None else fit_length(other, len(wave))}
    scores = {k: None if w is None else sync.score_wave(w, visual, facts, truth) for k, w in waves.items()}
    base = scores["ceiling"]["desync"] if scores["ceiling"] else None
    for s in scores.values():
        if s is not None:
            s["desync_vs_ceiling"] = None if base is None or s["desync"] is None else s["desync"] - base
    return scores


def _pairs(videos, manifest) -> list[tuple[str, dict]]:
    """Matched (input, record) pairs with `audio_path` resolved, records checked."""
    if manifest is None:
        raise ValueError("eval-audio needs --manifest: the impact times, notes and speeds come from it")
    pairs = match_inputs([str(v) for v in videos], read_manifest(manifest))
    if not pairs:
        raise ValueError(f"{manifest}: no video records to score")
    base = Path(manifest).resolve().parent
    for _, rec in pairs:  # read_manifest resolves `path`; `audio_path` is relative to the manifest too
        if rec.get("audio_path"):
            rec["audio_path"] = resolve_path(rec["audio_path"], base)
    check_records([r for _, r in pairs])
    return pairs


def evaluate_audio(videos=(), manifest=None, *, out_dir=None, reconstruct=None, seed: int = 0,
                   progress: bool = True) -> dict:
    """Score soundtracks against a synthetic AV manifest (module docstring); with `out_dir`, write
    report.json, report.md and the charts there. All audio is read first (so a missing audio stream
    stops the run before any scoring), frames one clip at a time."""
    pairs = _pairs(videos, manifest)
    audio = [load_audio(p, r) for p, r in tqdm(pairs, desc="read audio", unit="clip", disable=not progress)]
    ok = [i for i, a in enumerate(audio) if "error" not in a]
    partner = derangement(len(ok), seed)
    entries, failed = [], [{"input": pairs[i][0], "record": pairs[i][1]["path"], "error": a["error"]}
                           for i, a in enumerate(audio) if "error" in a]
    for k, i in enumerate(tqdm(ok, desc="eval-audio", unit="clip", disable=not progress)):
        (path, rec), other = pairs[i], None if partner is None else audio[ok[partner[k]]]["wave"]
        entry = {"input": path, "record": rec["path"], "error": None,
                 "shuffled_from": None if partner is None else pairs[ok[partner[k]]][0]}
        try:
            frames, fps = load_frames(path, rec)
        except (CorruptMediaError, FileNotFoundError) as e:
            failed.append({**entry, "error": f"unreadable: {short_reason(e)}"})
            continue
        entries.append({**entry, "scores": score_clip({**audio[i], "frames": frames, "fps": float(fps)}, rec,
                                                      other, reconstruct)})
    report = {"counts": {"clips": len(pairs), "scored": len(entries), "failed": len(failed)},
              "settings": settings(seed, reconstruct), "metrics": am.aggregate(entries),
              "clips": entries + failed}
    if out_dir is not None:
        report["files"] = write_report(report, out_dir, spectra=spectrum_clips(pairs, audio, ok))
    return report


def spectrum_clips(pairs, audio, ok: list[int], n: int = SPECTRA) -> list[dict]:
    """The spectrogram figure's clips: the first `n` readable ones, those with impacts first (input order
    otherwise), each with its input audio and the ground truth (None without `audio_path`)."""
    order = sorted(ok, key=lambda i: not pairs[i][1]["impacts"])[:n]
    return [{"name": Path(pairs[i][0]).stem, "impacts": [float(e["time"]) for e in pairs[i][1]["impacts"]],
             "waves": {"input": audio[i]["wave"], "ground truth": audio[i]["truth"]}} for i in order]


def settings(seed: int, reconstruct) -> dict:
    o = am.ONSET
    return {"sample_rate": am.SAMPLE_RATE, "shuffle_seed": seed, "reconstruct": None if reconstruct is None else
            getattr(reconstruct, "__name__", type(reconstruct).__name__),
            "onsets": {"n_fft": o.n_fft, "n_mels": o.n_mels, "hop": o.hop_length, "delta_db": o.delta_db,
                       "floor_db": o.floor_db, "backtrack": o.backtrack, "min_dbfs": o.min_dbfs},
            "pitch": {"fmin": am.PITCH_FMIN, "fmax": am.PITCH_FMAX, "tolerance_cents": am.PITCH_TOLERANCE},
            "silence_dbfs": am.SILENCE_DBFS, "desync_max_lag_s": sync.MAX_LAG}


# ---------------------------------------------------------------------------------------------
# Report: JSON (every number), Markdown (the tables), PNG charts
# ---------------------------------------------------------------------------------------------

FRACTIONS = ("onset_f1_frame", "onset_f1_25ms", "av_align", "av_align_change", "pitch_accuracy", "timbre_accuracy",
             "silence_rate")


def _cell(row: dict, condition: str) -> str:
    v = row.get(condition)
    if v is None:
        return "-"
    return f"{v:.3f} ({row['n'][condition]})" if row["unit"] == "" else f"{v:.1f} ({row['n'][condition]})"


def markdown_report(report: dict) -> str:
    """Tables people read: the set value of every metric for each soundtrack, then the clips not scored."""
    c = report["counts"]
    shown = [k for k in CONDITIONS if any(r.get(k) is not None for r in report["metrics"].values())]
    lines = [f"# Soundtrack evaluation ({c['scored']} of {c['clips']} clips scored)", "",
             "value: the input audio; ceiling: the manifest's rendered sound scored the same way; shuffled: each "
             "clip scored with another clip's input audio (seed "
             f"{report['settings']['shuffle_seed']}). Cells: set value (clips counted).", "",
             "| metric | unit | better | " + " | ".join(shown) + " |", "|---|---|---|" + "---:|" * len(shown)]
    for row in report["metrics"].values():
        cells = [row["label"], row["unit"] or "-", row["better"], *[_cell(row, k) for k in shown]]
        lines.append("| " + " | ".join(cells) + " |")
    failed = [e for e in report["clips"] if e.get("error")]
    if failed:
        lines += ["", f"## Not scored ({len(failed)})", "", "| input | reason |", "|---|---|"]
        lines += [f"| {e['input']} | {e['error']} |" for e in failed]
    return "\n".join(lines) + "\n"


def score_chart(report: dict, path) -> None:
    """Grouped bars of the [0, 1] metrics: value, ceiling, (reconstructed), shuffled."""
    plt = pyplot()
    keys = [k for k in FRACTIONS if any(report["metrics"][k].get(c) is not None for c in CONDITIONS)]
    conds = [c for c in CONDITIONS if any(report["metrics"][k].get(c) is not None for k in keys)]
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * max(1, len(keys)), 3.6))
    width = 0.8 / max(1, len(conds))
    for j, cond in enumerate(conds):
        ys = [report["metrics"][k].get(cond) or 0.0 for k in keys]
        ax.bar(np.arange(len(keys)) + (j - (len(conds) - 1) / 2) * width, ys, width, label=cond)
    ax.set_xticks(np.arange(len(keys)), [k.replace("_", "\n") for k in keys], fontsize=7)
    ax.set_ylim(0, 1.25)
    ax.legend(fontsize=7, ncol=len(conds), loc="upper center")
    ax.set_title(f"soundtrack metrics, {report['counts']['scored']} clips")
    save_figure(fig, path)
    plt.close(fig)


def timing_chart(report: dict, path) -> None:
    """Histogram of signed onset time errors (ms) of the matched pairs, value against ceiling."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    window = max((1000 * e["scores"]["value"]["onsets"]["frame"]["window"] for e in report["clips"]
                  if not e.get("error")), default=62.5)
    bins = np.linspace(-window, window, 26)
    for cond in ("ceiling", "value"):
        errs = [1000 * x for e in report["clips"] if not e.get("error") and e["scores"].get(cond)
                for x in e["scores"][cond]["onsets"]["errors"]]
        if errs:
            ax.hist(errs, bins=bins, alpha=0.6, label=f"{cond} ({len(errs)} pairs)")
    ax.axvline(0, color="grey", lw=1)
    ax.set_xlabel("detected onset - impact time (ms)")
    ax.set_ylabel("matched pairs")
    ax.legend(fontsize=7)
    save_figure(fig, path)
    plt.close(fig)


def write_report(report: dict, out_dir, spectra: list[dict] | None = None) -> dict:
    """report.json, report.md, scores.png, onset_timing.png and, given `spectra` (`spectrum_clips`),
    spectrograms.png (audio_figures.py) in `out_dir`, each written atomically."""
    out = Path(out_dir)
    paths = {"json": out / "report.json", "markdown": out / "report.md", "scores_chart": out / "scores.png",
             "timing_chart": out / "onset_timing.png"}
    if spectra:
        paths["spectrograms"] = out / "spectrograms.png"
        spectrogram_chart(spectra, paths["spectrograms"])
    score_chart(report, paths["scores_chart"])
    timing_chart(report, paths["timing_chart"])
    write_text(paths["markdown"], markdown_report(report))
    files = {k: str(v) for k, v in paths.items()}
    write_json(paths["json"], {**report, "files": files})
    return files


def summary_line(report: dict) -> str:
    c, m = report["counts"], report["metrics"]
    text = f"scored {c['scored']} of {c['clips']} clips ({c['failed']} unreadable)"
    for key, name in (("onset_f1_frame", "onset F1"), ("desync_abs_ms", "|DeSync| ms"), ("pitch_accuracy", "pitch"),
                      ("timbre_accuracy", "timbre")):
        row = m[key]
        if row["value"] is not None:
            ceiling = "-" if row["ceiling"] is None else f"{row['ceiling']:.3g}"
            shuffled = "-" if row["shuffled"] is None else f"{row['shuffled']:.3g}"
            text += f"; {name} {row['value']:.3g} (ceiling {ceiling}, shuffled {shuffled})"
    return text


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def add_cli_arguments(parser) -> None:
    parser.add_argument("videos", nargs="*", help="mp4s with an audio track, or wavs, matched to the manifest's "
                        "records by file name (default: every video record, with its own audio)")
    parser.add_argument("--manifest", required=True, help="synthetic AV manifest (lumina-video synth-av)")
    parser.add_argument("--out", required=True, help="report folder (report.json, report.md, *.png)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffled-audio control")
    parser.add_argument("--reconstruct", metavar="VOCODER", default=None,
                        help="also score the ground truth through mel -> [--audio-vae] -> VOCODER ('griffin-lim' or "
                             "a vocoder folder): the ceiling of a model that generates through that path")
    parser.add_argument("--audio-vae", metavar="DIR", default=None, help="audio VAE folder for --reconstruct")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def cli_main(args) -> int:
    if args.audio_vae and not args.reconstruct:
        raise ValueError("--audio-vae is used with --reconstruct VOCODER (e.g. --reconstruct griffin-lim)")
    reconstruct = None
    if args.reconstruct:
        from ..audio.roundtrip import RoundTrip

        reconstruct = RoundTrip(args.reconstruct, args.audio_vae)
    report = evaluate_audio(args.videos, args.manifest, out_dir=args.out, seed=args.seed, reconstruct=reconstruct,
                            progress=not args.no_progress)
    print(summary_line(report))
    print(f"report: {report['files']['markdown']}")
    return 0 if report["counts"]["scored"] else 1
