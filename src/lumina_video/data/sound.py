"""The synthetic audio-visual dataset's sound (`synthetic_av`): mono 16 kHz, rendered from the same ground
truth as the frames (each object's speed at every sample, its impact times).

Notes and timbres. An object's colour sets its note (`NOTES`, C5 .. C6) and its shape its timbre:

    tone(t) = (1 / P) * sum_k a_k sin(2 pi k f t)       f = NOTES[colour], phase 0 at t = 0
    sine (circle): a_1 = 1;   odd (square): a_k = 1/k, k = 1, 3, 5, 7;   all (triangle): a_k = 1/k, k = 1..4
    P = max over t of |sum_k a_k sin(2 pi k t)|: every tone has unit peak.

Levels (dBFS of the peak, full scale = 1):
    hum     h(t) = HUM_PEAK * v(t) / v_ref * tone(t)    HUM_PEAK = -20 dBFS: an object moving at the fastest
            vocabulary speed v_ref hums at a -20 dBFS peak, at half that speed 6 dB lower; a still object is
            silent. v(t) is the speed in px/s at the sample's time (it jumps at an impact).
    strike  s(t) = STRIKE_PEAK * e(t - t_i) * tone(t - t_i) + BURST_PEAK * b(t - t_i) * u(t)
            STRIKE_PEAK = 12 dB above the -20 dBFS hum reference (-8 dBFS), whatever the hum's level at the
            time (a slow object strikes as loudly as a fast one); the envelope starts at the impact time t_i:
            e(tau) = tau / 5 ms for 0 <= tau < 5 ms, then 10^(-3 (tau - 5 ms) / 150 ms) (-60 dB after the
            150 ms decay, where it stops); the noise burst u ~ U(-1, 1) with b(tau) = 1 - tau / 10 ms for
            0 <= tau < 10 ms and BURST_PEAK = STRIKE_PEAK / 2. Before t_i (tau < 0) both are 0, so the first
            sample of a strike is the first sample after its impact time.
    floor   Gaussian white noise of RMS -60 dBFS over the whole clip.

Mixing. The sources (hum plus strikes of each object) are summed; when that sum's peak exceeds MIX_PEAK
(0.98) it is scaled by gain = MIX_PEAK / peak (recorded, so a consumer can undo it), then the noise floor is
added. One object never needs it (the dataset's fastest hum, at 2 v_ref, peaks at 0.2: 0.2 + 0.398 + 0.199
< 0.98); two objects striking within a few milliseconds of each other can. The result stays inside [-1, 1]
(the floor's peak is ~5e-3), so 16-bit PCM never clips.
"""
from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
NOTES: dict[str, float] = {"red": 523.25, "orange": 587.33, "yellow": 659.26, "green": 783.99, "blue": 880.00,
                           "purple": 1046.50}
TIMBRES: dict[str, str] = {"circle": "sine", "square": "odd", "triangle": "all"}
HARMONICS: dict[str, dict[int, float]] = {
    "sine": {1: 1.0},
    "odd": {1: 1.0, 3: 1 / 3, 5: 1 / 5, 7: 1 / 7},
    "all": {1: 1.0, 2: 1 / 2, 3: 1 / 3, 4: 1 / 4},
}
HUM_DBFS = -20.0
STRIKE_DB = 12.0
FLOOR_DBFS = -60.0
HUM_PEAK = 10 ** (HUM_DBFS / 20)  # 0.1
STRIKE_PEAK = 10 ** ((HUM_DBFS + STRIKE_DB) / 20)  # 0.398
BURST_PEAK = STRIKE_PEAK / 2
FLOOR_RMS = 10 ** (FLOOR_DBFS / 20)  # 1e-3
ATTACK_S, DECAY_S, BURST_S = 0.005, 0.150, 0.010
MIX_PEAK = 0.98


def _unit_peak(timbre: str) -> float:
    """P of the module docstring: the peak of the unnormalised harmonic sum over one period."""
    phase = np.arange(1 << 16) / (1 << 16)
    wave = sum(a * np.sin(2 * np.pi * k * phase) for k, a in HARMONICS[timbre].items())
    return float(np.abs(wave).max())


_PEAKS = {name: _unit_peak(name) for name in HARMONICS}


def tone(note_hz: float, timbre: str, t: np.ndarray) -> np.ndarray:
    """tone(t) of the module docstring at times t (seconds, any shape): unit peak, phase 0 at t = 0."""
    if timbre not in HARMONICS:
        raise ValueError(f"unknown timbre {timbre!r}; accepted: {list(HARMONICS)}")
    t = np.asarray(t, dtype=np.float64)
    wave = sum(a * np.sin(2 * np.pi * k * note_hz * t) for k, a in HARMONICS[timbre].items())
    return wave / _PEAKS[timbre]


def sample_times(n_samples: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(N,) float64 times n / sample_rate of the samples."""
    return np.arange(n_samples, dtype=np.float64) / sample_rate


def hum(note_hz: float, timbre: str, speed: np.ndarray, v_ref: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(N,) float64 h(t) = HUM_PEAK * speed / v_ref * tone(t); speed (N,) in px/s at the sample times."""
    speed = np.asarray(speed, dtype=np.float64)
    return HUM_PEAK * speed / v_ref * tone(note_hz, timbre, sample_times(len(speed), sample_rate))


def strike_envelope(tau: np.ndarray) -> np.ndarray:
    """e(tau) in [0, 1]: 0 before the impact, a linear 5 ms attack, a 150 ms decay to -60 dB, then 0."""
    tau = np.asarray(tau, dtype=np.float64)
    attack = tau / ATTACK_S
    decay = 10.0 ** (-3.0 * (tau - ATTACK_S) / DECAY_S)
    env = np.where(tau < ATTACK_S, attack, decay)
    return np.where((tau >= 0) & (tau < ATTACK_S + DECAY_S), env, 0.0)


def burst_envelope(tau: np.ndarray) -> np.ndarray:
    """b(tau): 1 - tau / 10 ms on [0, 10 ms), 0 elsewhere."""
    tau = np.asarray(tau, dtype=np.float64)
    return np.where((tau >= 0) & (tau < BURST_S), 1.0 - tau / BURST_S, 0.0)


def strike(note_hz: float, timbre: str, impact: float, n_samples: int, rng: np.random.Generator,
           sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(N,) float64 s(t) of one impact at `impact` seconds: the note and a noise burst, both starting there.

    Only the samples of the strike's 155 ms are computed; the burst's noise is drawn from `rng` (always
    the same number of values, so later draws do not depend on where the strike falls)."""
    out = np.zeros(n_samples)
    first = int(np.floor(impact * sample_rate)) + 1  # the first sample with tau > 0
    span = int(np.ceil((ATTACK_S + DECAY_S) * sample_rate)) + 1
    noise = rng.uniform(-1.0, 1.0, span)
    idx = np.arange(first, min(first + span, n_samples))
    if idx.size:
        tau = idx / sample_rate - impact
        out[idx] = (STRIKE_PEAK * strike_envelope(tau) * tone(note_hz, timbre, tau)
                    + BURST_PEAK * burst_envelope(tau) * noise[: idx.size])
    return out


def source(note_hz: float, timbre: str, speed: np.ndarray, impacts, v_ref: float, rng: np.random.Generator,
           sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(N,) one object's sound: its hum plus a strike at each of its impact times (seconds)."""
    wave = hum(note_hz, timbre, speed, v_ref, sample_rate)
    for t in impacts:
        wave += strike(note_hz, timbre, float(t), len(wave), rng, sample_rate)
    return wave


def mix(sources: list[np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """(wave (N,) float32, gain): the sources summed, scaled by gain = min(1, MIX_PEAK / peak), plus the
    -60 dBFS noise floor (drawn from `rng`)."""
    if not sources:
        raise ValueError("mix needs at least one source")
    total = np.sum(sources, axis=0)
    peak = float(np.abs(total).max())
    gain = 1.0 if peak <= MIX_PEAK else MIX_PEAK / peak
    wave = gain * total + FLOOR_RMS * rng.standard_normal(total.shape)
    return wave.astype(np.float32), gain


def dbfs(x) -> float:
    """Peak level of x in dBFS (-inf for silence)."""
    peak = float(np.abs(np.asarray(x)).max())
    return 20 * np.log10(peak) if peak > 0 else float("-inf")
