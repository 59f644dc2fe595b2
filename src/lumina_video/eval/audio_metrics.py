"""Soundtrack metrics of one clip, on numpy arrays (no files): onsets against known impact times,
pitch and timbre of each object, silence of still clips, loudness against speed, and spectral
distances to a reference wave. Waves are float mono (N,) in [-1, 1] at 16 kHz unless told otherwise.

Levels. dBFS here is 20 log10(RMS) with a full-scale amplitude of 1 (a full-scale square wave is
0 dBFS, a full-scale sine -3 dBFS); RMS windows are 10 ms (160 samples, one mel hop), not overlapping.

Onsets (`OnsetSettings`, measured on synthetic strikes over a hum, tests/test_eval_audio.py):
    envelope  librosa.onset.onset_strength: mean over 64 mel bands (0-8 kHz) of the positive change of
              the log-power mel spectrum (dB) from one frame to the next; n_fft 512 (32 ms, centred),
              hop 160 (100 frames/s); each band's power floored at `floor_db` (-52 dB, 3 dB under the
              -60 dBFS noise floor's level per band) first: phase reconstruction dips the noise floor for
              ~50 ms after a strike's burst, and its recovery was a second onset (docs/RESULTS.md: onset
              precision of Griffin-Lim on the true mel 0.88 -> 1.00, the true wav's unchanged)
    peaks     librosa.onset.onset_detect with normalize=False and delta 3 dB over the local mean
              (librosa's other peak-picking defaults: 30 ms pre-max, 100 ms averaging, 30 ms wait), so
              the threshold is absolute: steady hums and the -60 dBFS noise floor (flux ~1-3 dB) give
              no onsets, strikes (6-25 dB) do. A normalised envelope instead turns noise into onsets.
    loudness  an onset is kept only when some 10 ms window in [t - 10 ms, t + 50 ms] reaches -40 dBFS
    edge      onsets in the last n_fft / sr (32 ms) are dropped: the zero padding after the clip's
              last sample is itself a broadband step (`scorable_until` and `onset_scores` then leave
              unmatched events of the blind end out of the counts)
    backtrack off by default (a setting). On 90 strikes of 24 test clips, backtracking (librosa's
              onset_backtrack to the previous minimum of the envelope) put onsets 16 ms early (sd
              8.5 ms, 12% beyond 25 ms); without it they lie 3.1 ms late (sd 3.3 ms, all within 25 ms).
Matching (`onset_scores`): mir_eval.util.match_events, a maximum bipartite matching of estimated to
reference times with |est - ref| <= window; precision = matched / estimated, recall = matched /
reference, F1 their harmonic mean, at window 1 / fps and at 25 ms.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio.partials import partial_powers

SAMPLE_RATE = 16000
HOP = 160  # samples: one mel hop, 10 ms
SILENCE_DBFS = -40.0
FLOOR_DB = -120.0  # the level of an all-zero window


@dataclass(frozen=True)
class OnsetSettings:
    n_fft: int = 512
    n_mels: int = 64
    fmax: float = 8000.0
    hop_length: int = HOP
    delta_db: float = 3.0
    floor_db: float | None = -52.0
    backtrack: bool = False
    min_dbfs: float = SILENCE_DBFS


ONSET = OnsetSettings()


# ---------------------------------------------------------------------------------------------
# Levels
# ---------------------------------------------------------------------------------------------


def window_dbfs(wave: np.ndarray, window: int = HOP) -> np.ndarray:
    """(N,) -> (N // window,) 20 log10 RMS of consecutive windows (FLOOR_DB for silence)."""
    n = len(wave) // window
    frames = np.asarray(wave[: n * window], np.float64).reshape(n, window)
    rms = np.sqrt((frames**2).mean(axis=1))
    return 20 * np.log10(np.maximum(rms, 10 ** (FLOOR_DB / 20)))


def silence(wave: np.ndarray, threshold_dbfs: float = SILENCE_DBFS) -> dict:
    """A still clip should be silent: an event is any 10 ms RMS window above `threshold_dbfs`.
    {"silent": no event, "max_dbfs": loudest window, "events": windows above the threshold}."""
    levels = window_dbfs(wave)
    top = float(levels.max()) if len(levels) else FLOOR_DB
    events = int((levels > threshold_dbfs).sum())
    return {"silent": events == 0, "max_dbfs": top, "events": events}


# ---------------------------------------------------------------------------------------------
# Onsets
# ---------------------------------------------------------------------------------------------


def onset_envelope(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, settings: OnsetSettings = ONSET) -> np.ndarray:
    """librosa onset strength (dB of positive log-mel flux, bands floored at `floor_db`) at frames k hop / sr."""
    import librosa

    s = settings
    power = librosa.feature.melspectrogram(y=np.asarray(wave, np.float32), sr=sample_rate, n_fft=s.n_fft,
                                           hop_length=s.hop_length, n_mels=s.n_mels, fmax=s.fmax)
    db = librosa.power_to_db(power)                                   # (n_mels, frames), librosa's top_db 80
    if s.floor_db is not None:
        db = np.maximum(db, s.floor_db)
    return librosa.onset.onset_strength(S=db, sr=sample_rate, hop_length=s.hop_length, n_fft=s.n_fft)


def detect_onsets(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, settings: OnsetSettings = ONSET) -> np.ndarray:
    """Onset times in seconds (ascending) with the module docstring's settings."""
    import librosa

    env = onset_envelope(wave, sample_rate, settings)
    frames = librosa.onset.onset_detect(onset_envelope=env, sr=sample_rate, hop_length=settings.hop_length,
                                        normalize=False, delta=settings.delta_db, units="frames")
    if settings.backtrack and len(frames):
        frames = librosa.onset.onset_backtrack(frames, env)
    times = frames * settings.hop_length / sample_rate
    times = times[times < (len(wave) - settings.n_fft) / sample_rate]
    return _loud_enough(times, wave, sample_rate, settings.min_dbfs)


def scorable_until(num_samples: int, sample_rate: int = SAMPLE_RATE, settings: OnsetSettings = ONSET) -> float:
    """The time (s) after which detection is blind: `detect_onsets` drops the last n_fft samples, and
    an onset is found up to ~15 ms after its impact."""
    return (num_samples - settings.n_fft) / sample_rate - 0.02


def _loud_enough(times: np.ndarray, wave: np.ndarray, sample_rate: int, min_dbfs: float) -> np.ndarray:
    """The onsets around which some 10 ms window in [t - 10 ms, t + 50 ms] reaches `min_dbfs`."""
    window = sample_rate // 100
    levels = window_dbfs(wave, window)
    keep = []
    for t in times:
        k = int(t * sample_rate) // window
        keep.append(len(levels) > 0 and levels[max(k - 1, 0):k + 5].max(initial=FLOOR_DB) >= min_dbfs)
    return np.asarray(times[np.asarray(keep, bool)] if len(times) else times, np.float64)


def prf(matched: int, estimated: int, reference: int) -> dict:
    """Precision, recall and F1 from counts; None where the denominator is 0."""
    p = matched / estimated if estimated else None
    r = matched / reference if reference else None
    f = None if p is None or r is None else (0.0 if p + r == 0 else 2 * p * r / (p + r))
    return {"precision": p, "recall": r, "f1": f}


def onset_scores(estimated, reference, fps: float, until: float | None = None) -> dict:
    """Onset detection against the impact times at +-1 frame and +-25 ms. Events after `until` (s;
    `scorable_until`, where detection is blind) count only when matched: an unmatched impact or
    onset there is left out of the counts, not scored as a miss or a false alarm.

    {"frame": {precision, recall, f1, matched, estimated, reference, window}, "25ms": {...},
     "errors": signed est - ref of the pairs matched at +-1 frame (s), "median_abs_error": s or None}."""
    import mir_eval

    est, ref = np.sort(np.asarray(estimated, float)), np.sort(np.asarray(reference, float))
    until = np.inf if until is None else until
    out = {}
    for name, window in (("frame", 1.0 / fps), ("25ms", 0.025)):
        pairs = mir_eval.util.match_events(ref, est, window) if len(ref) and len(est) else []
        used_ref, used_est = {i for i, _ in pairs}, {j for _, j in pairs}
        n_est = len(pairs) + sum(int(t < until) for j, t in enumerate(est) if j not in used_est)
        n_ref = len(pairs) + sum(int(t < until) for i, t in enumerate(ref) if i not in used_ref)
        out[name] = {**prf(len(pairs), n_est, n_ref), "matched": len(pairs), "estimated": n_est,
                     "reference": n_ref, "window": window}
        if name == "frame":
            out["errors"] = [float(est[j] - ref[i]) for i, j in pairs]
    out["median_abs_error"] = float(np.median(np.abs(out["errors"]))) if out["errors"] else None
    return out


# ---------------------------------------------------------------------------------------------
# Loudness against speed
# ---------------------------------------------------------------------------------------------


def frame_dbfs(wave: np.ndarray, fps: float, num_frames: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(num_frames,) dBFS of the RMS over one frame period centred on each frame time k / fps."""
    half, out = int(round(sample_rate / fps / 2)), np.full(num_frames, FLOOR_DB)
    for k in range(num_frames):
        c = int(round(k * sample_rate / fps))
        seg = np.asarray(wave[max(c - half, 0):c + half], np.float64)
        if len(seg):
            out[k] = 20 * np.log10(max(np.sqrt((seg**2).mean()), 10 ** (FLOOR_DB / 20)))
    return out


def strike_free(num_frames: int, fps: float, impacts, after: float = 0.2) -> np.ndarray:
    """(num_frames,) bool: frame times not within [t - 1 frame, t + 200 ms] of any impact t."""
    t = np.arange(num_frames)[:, None] / fps
    hits = np.asarray(impacts, float)[None, :]
    return ~((t >= hits - 1.0 / fps) & (t <= hits + after)).any(axis=1)


def loudness_speed(wave: np.ndarray, speed: np.ndarray, fps: float, impacts=(), sample_rate: int = SAMPLE_RATE):
    """Spearman rank correlation of per-frame level (dBFS) with the sounding speed (px/s), over the
    frames away from strikes. `speed` (num_frames,) is sqrt(sum_j speed_j^2) over the clip's objects
    (their hums add in power). {"spearman": rho or None (speed constant or < 3 frames), "frames": n,
    "mean_dbfs": mean level of those frames, "mean_speed": px/s}."""
    from scipy.stats import spearmanr

    speed = np.asarray(speed, float)
    level = frame_dbfs(wave, fps, len(speed), sample_rate)
    ok = strike_free(len(speed), fps, impacts)
    s, lv = speed[ok], level[ok]
    out = {"frames": int(ok.sum()), "mean_dbfs": float(lv.mean()) if len(lv) else None,
           "mean_speed": float(s.mean()) if len(s) else None, "spearman": None}
    if len(s) >= 3 and np.ptp(s) > 1e-6 * max(1.0, float(np.abs(s).max())) and np.ptp(lv) > 0:
        out["spearman"] = float(spearmanr(lv, s).statistic)
    return out


# ---------------------------------------------------------------------------------------------
# Distances to a reference wave
# ---------------------------------------------------------------------------------------------


def spectral_distances(wave: np.ndarray, reference: np.ndarray) -> dict:
    """log-mel L1 and log-spectral distance of `wave` to `reference` (both 16 kHz), over their common
    length, with lumina_video.audio.mel (AudioLDM settings):

        logmel_l1 = mean_{t, m} | logmel(x)[t, m] - logmel(y)[t, m] |            (natural-log units)
        lsd       = mean_t sqrt( mean_f ( 20 log10 |X|_{f,t} - 20 log10 |Y|_{f,t} )^2 )   (dB)

    |X| the STFT magnitude (n_fft 1024, hop 160) clamped at 1e-5 like the mel spectrogram."""
    import torch

    from ..audio.mel import AUDIOLDM, MelSpectrogram

    n = min(len(wave), len(reference))
    if n < AUDIOLDM.n_fft:
        raise ValueError(f"spectral distances need at least {AUDIOLDM.n_fft} common samples, got {n}")
    mel = MelSpectrogram(AUDIOLDM)
    x = torch.as_tensor(np.stack([wave[:n], reference[:n]]), dtype=torch.float32)
    with torch.no_grad():
        logmel = mel(x)                                                   # (2, frames, 64)
        mag = mel.magnitude(x).clamp(min=AUDIOLDM.clamp)                  # (2, bins, frames)
    l1 = float((logmel[0] - logmel[1]).abs().mean())
    db = 20 * torch.log10(mag)
    lsd = float(((db[0] - db[1]) ** 2).mean(dim=0).sqrt().mean())
    return {"logmel_l1": l1, "lsd": lsd}


# ---------------------------------------------------------------------------------------------
# Pitch and timbre of each sounding object
# ---------------------------------------------------------------------------------------------

PITCH_FMIN, PITCH_FMAX = 250.0, 2100.0  # Hz: an octave beyond the vocabulary (C5 .. C6) either side
PITCH_FRAME = 1024  # samples (64 ms): pyin's frame, and the STFT's for the harmonic profile
PITCH_TOLERANCE = 50.0  # cents
# relative amplitudes of harmonics 2..5 to the fundamental, per timbre of the sound rules
TIMBRE_TEMPLATES = {"sine": (0.0, 0.0, 0.0, 0.0), "odd": (0.0, 1 / 3, 0.0, 1 / 5), "all": (1 / 2, 1 / 3, 1 / 4, 0.0)}


def pitch_track(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """(frame times s, f0 Hz with NaN where unvoiced) from librosa.pyin (frame 1024, hop 160, centred,
    f0 searched in [250, 2100] Hz)."""
    import librosa

    f0, voiced, _ = librosa.pyin(np.asarray(wave, np.float32), fmin=PITCH_FMIN, fmax=PITCH_FMAX, sr=sample_rate,
                                 frame_length=PITCH_FRAME, hop_length=HOP)
    f0 = np.where(voiced, f0, np.nan)
    return np.arange(len(f0)) * HOP / sample_rate, f0


def sounding(objects: list[dict]) -> list[int]:
    """Indices of the objects that make sound (every motion but "still")."""
    return [j for j, ob in enumerate(objects) if ob.get("motion") != "still"]


def cents(f: float, ref: float) -> float:
    return float(1200 * np.log2(f / ref))


def harmonic_profile(wave: np.ndarray, f0: float, frames: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(4,) amplitudes of harmonics 2..5 relative to the fundamental: harmonic k's is the root of the STFT power
    (n_fft 1024, hop 160, averaged over `frames`) summed within +-3% of k f0 (>= +-2 bins): audio/partials.py."""
    import librosa

    power = np.abs(librosa.stft(np.asarray(wave, np.float32), n_fft=PITCH_FRAME, hop_length=HOP)) ** 2  # (bins, T)
    n = min(power.shape[1], len(frames))
    spec = power[:, :n][:, frames[:n]].mean(axis=1)
    hz = np.arange(len(spec)) * sample_rate / PITCH_FRAME
    amps = np.sqrt(partial_powers(spec[:, None], hz, np.array([f0]), 5)[0])  # harmonics 1..5
    return amps[1:] / max(amps[0], 1e-12)


def classify_timbre(profile: np.ndarray) -> str:
    """The timbre whose template (TIMBRE_TEMPLATES) is nearest to the profile (Euclidean)."""
    return min(TIMBRE_TEMPLATES, key=lambda name: float(np.linalg.norm(profile - np.asarray(TIMBRE_TEMPLATES[name]))))


def notes(wave: np.ndarray, objects: list[dict], sample_rate: int = SAMPLE_RATE) -> dict | None:
    """Pitch and timbre of the one sounding object of a clip (None for a clip with 0 or 2 sources).

    f0 = median pyin f0 over the voiced frames, correct within 50 cents of the object's note_hz; the
    timbre is `classify_timbre` of `harmonic_profile` at that f0, correct when it is the object's.
    No voiced frame: f0 None, both wrong. Clips with two sounding objects are not scored: pyin gives one
    f0 per frame, and on two-note mixtures (even in windows 30-70 ms after one object's strikes) it
    locked onto a common subharmonic: 0 of 14 ground-truth objects right, on two-object clips made
    with tests/test_eval_audio.py's builder; a number there would measure the estimator."""
    src = sounding(objects)
    if len(src) != 1:
        return None
    ob = objects[src[0]]
    _, f0 = pitch_track(wave, sample_rate)
    voiced = np.isfinite(f0)
    out = {"object": src[0], "note_hz": float(ob["note_hz"]), "timbre_expected": ob.get("timbre"),
           "voiced": int(voiced.sum()), "f0": None, "cents": None, "pitch_ok": False, "timbre": None,
           "profile": None, "timbre_ok": False if ob.get("timbre") else None}
    if voiced.any():
        est = float(np.median(f0[voiced]))
        profile = harmonic_profile(wave, est, voiced, sample_rate)
        out.update(f0=est, cents=cents(est, ob["note_hz"]), profile=[float(p) for p in profile],
                   timbre=classify_timbre(profile))
        out["pitch_ok"] = abs(out["cents"]) <= PITCH_TOLERANCE
        out["timbre_ok"] = None if not ob.get("timbre") else out["timbre"] == ob["timbre"]
    return out


# ---------------------------------------------------------------------------------------------
# Set values: one number per metric from the per-clip scores of one condition
# ---------------------------------------------------------------------------------------------


def _values(scores: list[dict], get) -> list:
    return [v for v in map(get, scores) if v is not None]


def _pooled_onsets(window: str, field: str):
    def f(scores):
        parts = [s["onsets"][window] for s in scores]
        return prf(*(sum(p[k] for p in parts) for k in ("matched", "estimated", "reference")))[field], len(parts)
    return f


def _set_spearman(scores: list[dict]):
    from scipy.stats import spearmanr

    pts = _values(scores, lambda s: s["loudness"] and s["loudness"]["mean_dbfs"] is not None and
                  (s["loudness"]["mean_dbfs"], s["loudness"]["mean_speed"]) or None)
    if len(pts) < 3 or min(np.ptp(np.asarray(pts), axis=0)) == 0:
        return None, len(pts)
    return float(spearmanr(*zip(*pts)).statistic), len(pts)


def _summary(get, how: str = "mean", scale: float = 1.0):
    """Set value of a per-clip number: its mean, mean of |x| ("abs") or median of |x| ("median")."""
    def f(scores):
        xs = np.asarray([float(x) for x in _values(scores, get)])
        if len(xs) == 0:
            return None, 0
        value = np.mean(xs) if how == "mean" else np.mean(np.abs(xs)) if how == "abs" else np.median(np.abs(xs))
        return scale * float(value), len(xs)
    return f


def _pooled_errors(scores: list[dict]):
    errors = [e for s in scores for e in s["onsets"]["errors"]]
    return (1000 * float(np.median(np.abs(errors))) if errors else None), len(errors)


def _field(*path):
    """Getter of s[path[0]][path[1]]...; None where a level is None."""
    def get(s):
        for key in path:
            s = None if s is None else s[key]
        return s
    return get


_F, _S = _field, _summary
# key: (label, unit, better, set value of a list of per-clip scores -> (value, clips or pairs counted))
AGGREGATES = {
    "onset_f1_frame": ("onset F1, +-1 frame", "", "higher", _pooled_onsets("frame", "f1")),
    "onset_precision_frame": ("onset precision, +-1 frame", "", "higher", _pooled_onsets("frame", "precision")),
    "onset_recall_frame": ("onset recall, +-1 frame", "", "higher", _pooled_onsets("frame", "recall")),
    "onset_f1_25ms": ("onset F1, +-25 ms", "", "higher", _pooled_onsets("25ms", "f1")),
    "onset_median_abs_error_ms": ("median onset |time error| (pairs at +-1 frame)", "ms", "lower", _pooled_errors),
    "desync_abs_ms": ("DeSync |offset|", "ms", "lower", _S(_F("desync"), "abs", 1000)),
    "desync_vs_ceiling_ms": ("DeSync |offset - truth's|", "ms", "lower", _S(_F("desync_vs_ceiling"), "abs", 1000)),
    "av_align": ("AV-Align (paper's ratio, flow-magnitude peaks)", "", "higher", _S(_F("av_align", "av_align"))),
    "av_align_iou": ("AV-Align, the reference script's IoU", "", "higher", _S(_F("av_align", "iou"))),
    "av_align_change": ("AV-Align, motion-change peaks (ours)", "", "higher", _S(_F("av_align", "change", "av_align"))),
    "pitch_accuracy": ("pitch within 50 cents (single-source clips)", "", "higher", _S(_F("notes", "pitch_ok"))),
    "pitch_median_abs_cents": ("median |pitch error|", "cents", "lower", _S(_F("notes", "cents"), "median")),
    "timbre_accuracy": ("timbre right (single-source clips)", "", "higher", _S(_F("notes", "timbre_ok"))),
    "silence_rate": ("still clips silent (no 10 ms above -40 dBFS)", "", "higher", _S(_F("silence", "silent"))),
    "loudness_spearman_clip": ("loudness vs speed, Spearman per clip", "", "higher", _S(_F("loudness", "spearman"))),
    "loudness_spearman_set": ("loudness vs speed, Spearman over clips", "", "higher", _set_spearman),
    "logmel_l1": ("log-mel L1 to the reference", "", "lower", _S(_F("distance", "logmel_l1"))),
    "lsd_db": ("log-spectral distance to the reference", "dB", "lower", _S(_F("distance", "lsd"))),
}


def aggregate(entries: list[dict], conditions=("value", "ceiling", "reconstructed", "shuffled")) -> dict:
    """{metric: {"label", "unit", "better", condition: set value or None, "n": {condition: clips}}} over
    the scored entries ({"scores": {condition: per-clip scores or None}})."""
    out = {}
    for key, (label, unit, better, fn) in AGGREGATES.items():
        row = {"label": label, "unit": unit, "better": better, "n": {}}
        for c in conditions:
            scores = [e["scores"][c] for e in entries if e["scores"].get(c) is not None]
            value, n = fn(scores) if scores else (None, 0)
            row[c], row["n"][c] = value, n
        out[key] = row
    return out
