"""Frames on a time grid: resampling a video's decoded frames to a fixed rate by their timestamps.

A video file gives frames and their presentation times (seconds from the clip's start); the rate in
a container's header is neither needed nor trusted, so variable-frame-rate clips, 10 / 16 / 24 / 30 fps
clips and odd timestamps all go through the same rule. The caller reads the file (`data.video_io`,
PyAV) and passes arrays; this module only does arithmetic on times.

    grid        t_k = k / rate,  k = 0 .. floor(duration * rate) - 1
    duration    given, or times[-1] + dt, dt = median(diff(times)) (the last frame is shown for one
                typical interval; the median ignores the odd long or short gap of a VFR clip)
    nearest     frame'_k = frames[i_k],  i_k = max{i : times[i] <= t_k}  (the latest frame at or before
                t_k: what a video player shows at t_k); a t_k before the first timestamp shows frame 0
    linear      frame'_k = (1 - w) frames[i_k] + w frames[i_k + 1],  w = (t_k - times[i_k]) /
                (times[i_k + 1] - times[i_k]), clipped to [0, 1]; float output (a blend, for features)

`align_to_times` is the same nearest-previous lookup for any array on a time axis, e.g. sync features
at 24 or 25 per second looked up at the audio latent times (k / 25 s), so every rate meets another by
timestamp, never by index arithmetic. `frame_times(n, fps)` gives the times of a constant-rate clip.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _checks

MODES = ("nearest", "linear")
# t_k = k / rate is counted up to floor(duration * rate + EPS): a duration of 2 s at 25 per second gives 50
# samples even when the duration arrives as 1.9999999999 from timestamp arithmetic
EPS = 1e-6
# a frame whose time equals t_k up to rounding (1 ns) counts as "at or before" t_k
TIME_TOL = 1e-9


def frame_times(n: int, fps: float, start: float = 0.0) -> np.ndarray:
    """(n,) float64 times start + i / fps of a constant-rate clip of n frames."""
    _checks.positive_int(n, "n")
    fps = _checks.positive_number(fps, "fps")
    return start + np.arange(n, dtype=np.float64) / fps


def check_times(times, n: int | None = None, what: str = "times") -> np.ndarray:
    """`times` as a (N,) float64 array after checking it is 1-D, non-empty, finite and strictly
    increasing (and of length `n` when given); one-line ValueError otherwise."""
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D array of seconds, got shape {tuple(t.shape)}")
    if n is not None and t.size != n:
        raise ValueError(f"{what} has {t.size} entries for {n} frames; give one time per frame")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{what} must be finite seconds")
    if t.size > 1 and not np.all(np.diff(t) > 0):
        i = int(np.argmin(np.diff(t)))
        raise ValueError(f"{what} must be strictly increasing, got {t[i]:g} then {t[i + 1]:g} at index {i}")
    return t


def clip_duration(times: np.ndarray, duration: float | None = None) -> float:
    """`duration` (checked > 0), or the default: last time + the median frame interval. A single time
    with no duration is a still image: it has no frame interval, so ValueError."""
    if duration is not None:
        return _checks.positive_number(duration, "duration")
    if times.size < 2:
        raise ValueError("a single frame (a still image) has no frame interval; pass duration=SECONDS")
    return float(times[-1] + np.median(np.diff(times)))


def grid_times(rate: float, duration: float, max_seconds: float | None = None) -> np.ndarray:
    """(K,) float64 times k / rate for k = 0 .. floor(duration * rate) - 1; ValueError when the duration
    is over `max_seconds` or too short for one sample."""
    rate = _checks.positive_number(rate, "rate")
    duration = _checks.positive_number(duration, "duration")
    if max_seconds is not None and duration > _checks.positive_number(max_seconds, "max_seconds") + EPS:
        raise ValueError(f"the clip lasts {duration:.3f} s, over the limit of {max_seconds:g} s; cut it first")
    count = math.floor(duration * rate + EPS)
    if count < 1:
        raise ValueError(f"a clip of {duration:g} s is shorter than one sample at {rate:g} per second")
    return np.arange(count, dtype=np.float64) / rate


def previous_index(times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(K,) int64 i_k = max{i : times[i] <= targets[k]}, 0 where a target precedes times[0]."""
    idx = np.searchsorted(times, targets + TIME_TOL, side="right") - 1  # a target equal to a time picks it
    return np.clip(idx, 0, times.size - 1).astype(np.int64)


def _check_frames(frames) -> tuple[int, ...]:
    shape = tuple(frames.shape)
    if len(shape) != 4 or shape[-1] != 3 or shape[0] == 0:
        raise ValueError(f"frames must be (F, H, W, 3) RGB with F >= 1, got shape {shape}")
    return shape


def _linear(frames, times: np.ndarray, targets: np.ndarray, idx: np.ndarray):
    """The blend of the frames either side of each target (module docstring), float32 (or the tensor's
    float dtype for a torch input)."""
    nxt = np.minimum(idx + 1, times.size - 1)
    gap = np.where(nxt > idx, times[nxt] - times[idx], 1.0)
    w = np.clip((targets - times[idx]) / gap, 0.0, 1.0)  # (K,)
    if isinstance(frames, np.ndarray):
        a, b = frames[idx].astype(np.float32), frames[nxt].astype(np.float32)
        return a + w.astype(np.float32)[:, None, None, None] * (b - a)
    import torch

    a, b = frames[idx].float(), frames[nxt].float()
    wt = torch.as_tensor(w, dtype=a.dtype, device=a.device)[:, None, None, None]
    return a + wt * (b - a)


def resample_by_time(frames, times, rate: float, duration: float | None = None, mode: str = "nearest",
                     max_seconds: float | None = None):
    """(frames (F, H, W, 3) array or tensor, times (F,) s) -> (frames (K, H, W, 3), times (K,) float64)
    on the grid t_k = k / rate (module docstring). "nearest" keeps the dtype (the latest frame at or
    before t_k); "linear" blends neighbours into floats. A NumPy array or a torch tensor comes back as
    the same kind. ValueError (one line) for no frames, times that do not increase, a still image without
    `duration`, a duration over `max_seconds`, or an unknown mode."""
    _check_frames(frames)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    t = check_times(times, n=frames.shape[0])
    targets = grid_times(rate, clip_duration(t, duration), max_seconds)
    idx = previous_index(t, targets)
    if mode == "linear":
        return _linear(frames, t, targets, idx), targets
    return frames[idx], targets


def align_to_times(values, times, targets):
    """values (N, ...) with times (N,) s -> values (K, ...) at `targets` (K,) s, nearest-previous (each
    target takes the latest value at or before it, the first value before times[0]). The same kind
    (NumPy or torch) comes back; gradients flow through a torch gather."""
    t = check_times(times, n=values.shape[0])
    k = np.asarray(targets, dtype=np.float64)
    if k.ndim != 1 or not np.all(np.isfinite(k)):
        raise ValueError(f"targets must be a 1-D array of finite seconds, got shape {tuple(k.shape)}")
    idx = previous_index(t, k)
    if isinstance(values, np.ndarray):
        return values[idx]
    import torch

    return values.index_select(0, torch.as_tensor(idx, device=values.device))
