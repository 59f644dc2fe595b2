"""Motion score (docs/REFERENCE.md §4): the mean optical-flow magnitude per component, in pixels.

Protocol, per clip:
    frames at t = 0.0, 0.5, ..., 4.0 s (the nearest source frame; as many as the clip covers, >= 2)
    portrait frames (H > W) transposed to landscape, then resized to 320 x 576 (H x W)
    flow F_k = flow(frame_k, frame_{k+1}), (320, 576, 2) = (u, v) per pixel
    score = mean over pairs k, pixels and both components of |F_k|   (not the vector magnitude)

So a clip translating by (dx, dy) pixels per 0.5 s in the 320 x 576 frame scores (|dx| + |dy|) / 2.

The official annotator uses a learned flow model (UniMatch GMFlow); here OpenCV's DIS flow is the
default `FlowBackend`. Any object with `flow(prev, next) -> (H, W, 2)` can be plugged in.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from tqdm.auto import tqdm

from .._checks import positive_int, positive_number, short_reason
from .manifest import read_manifest, write_manifest
from .video_io import VideoTooShortError, check_supported, failure_reason, frames_at_times

MOTION_TIMES = tuple(0.5 * k for k in range(9))  # 0.0 .. 4.0 s
MOTION_SIZE = (320, 576)  # (H, W) the flow is computed at


class FlowBackend(Protocol):
    def flow(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB or (H, W) uint8 grey, twice -> (H, W, 2) float32 flow (u = x, v = y)."""


_DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


def _grey(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)


@dataclass
class DISFlow:
    """OpenCV DIS optical flow, two-stage: a first estimate at 1/coarse_factor of the resolution
    initialises the full-resolution pass. That extends DIS's own pyramid, which alone underestimates
    displacements beyond roughly a tenth of the frame width (coarse_factor=1 turns the stage off).

    Defaults measured on translated textures at 320 x 576: within 3% of the true displacement up to
    about 64 px per pair, -10% at 96 px (see tests/test_data_motion.py).
    """
    preset: str = "medium"
    patch_size: int = 8
    patch_stride: int = 4
    coarse_factor: int = 4

    def _make(self, patch_size: int, patch_stride: int):
        if self.preset not in _DIS_PRESETS:
            raise ValueError(f"unknown DIS preset {self.preset!r}; accepted: {list(_DIS_PRESETS)}")
        dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[self.preset])
        dis.setPatchSize(patch_size)
        dis.setPatchStride(patch_stride)
        return dis

    def flow(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray:
        a, b = _grey(prev), _grey(next)
        h, w = a.shape
        init = None
        f = self.coarse_factor
        if f > 1 and min(h, w) // f >= 16:
            small = (w // f, h // f)
            coarse = self._make(8, 2).calc(cv2.resize(a, small, interpolation=cv2.INTER_AREA),
                                           cv2.resize(b, small, interpolation=cv2.INTER_AREA), None)
            init = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
            init *= np.float32([w / small[0], h / small[1]])  # coarse pixels -> full-size pixels
        return self._make(self.patch_size, self.patch_stride).calc(a, b, init)  # (H, W, 2)


def prepare_frames(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) -> (T, 320, 576, 3): portrait transposed to landscape, then resized (no crop)."""
    if frames.shape[1] > frames.shape[2]:
        frames = frames.transpose(0, 2, 1, 3)
    h, w = MOTION_SIZE
    interp = cv2.INTER_AREA if frames.shape[1] > h and frames.shape[2] > w else cv2.INTER_LINEAR
    return np.stack([cv2.resize(np.ascontiguousarray(f), (w, h), interpolation=interp) for f in frames])


def score_frames(frames: np.ndarray, backend: FlowBackend | None = None) -> float:
    """Motion score of frames already sampled every 0.5 s: mean |flow| over pairs, pixels, (u, v)."""
    if len(frames) < 2:
        raise ValueError(f"a motion score needs at least 2 frames, got {len(frames)}")
    backend = backend or DISFlow()
    frames = prepare_frames(frames)
    total = 0.0
    for prev, nxt in zip(frames[:-1], frames[1:]):
        flow = backend.flow(prev, nxt)  # (H, W, 2)
        total += float(np.abs(flow).mean())
    return total / (len(frames) - 1)


def motion_frames(path) -> np.ndarray:
    """The protocol's frames of one clip: (K, H, W, 3), 2 <= K <= 9."""
    check_supported(path, "video")
    frames, covered = frames_at_times(path, MOTION_TIMES)
    if covered < 2:
        raise VideoTooShortError(f"{path}: a motion score needs frames at 0.0 and 0.5 s; the clip is shorter")
    return frames


def motion_score(path, backend: FlowBackend | None = None) -> float:
    """The docs/REFERENCE.md §4 motion score of a video file, in pixels (see the module docstring)."""
    return score_frames(motion_frames(path), backend)


def clip_motion_score(frames: np.ndarray, fps: float, backend: FlowBackend | None = None) -> float:
    """The motion score of a clip in memory, (T, H, W, 3) uint8 at `fps`: the same protocol as
    `motion_score` on its file (the frame nearest each of 0.0, 0.5, ... 4.0 s that the clip covers,
    i.e. within half a frame of its last one). Used to measure generated clips."""
    positive_number(fps, "fps")
    last = (len(frames) - 1) / fps + 0.5 / fps
    picks = [min(int(np.floor(t * fps + 0.5)), len(frames) - 1) for t in MOTION_TIMES if t <= last + 1e-9]
    if len(picks) < 2:
        raise ValueError(f"a motion score needs frames at 0.0 and 0.5 s; a clip of {len(frames)} frames at "
                         f"{fps:g} fps is shorter")
    return score_frames(np.asarray(frames)[picks], backend)


# ---------------------------------------------------------------------------------------------
# Annotating a manifest: parallel, resumable, atomic.
# ---------------------------------------------------------------------------------------------

_WORKER_BACKEND: FlowBackend | None = None


def _init_worker(backend) -> None:
    global _WORKER_BACKEND
    cv2.setNumThreads(1)  # one process per core; no nested thread pools
    _WORKER_BACKEND = backend


def _score_path(path: str) -> tuple[str, float | None, str | None]:
    """(path, score, None) or (path, None, "reason: message"); never raises for a bad file."""
    try:
        return path, motion_score(path, _WORKER_BACKEND), None
    except Exception as e:  # noqa: BLE001 - one bad clip must not stop the run; the reason is recorded
        return path, None, f"{failure_reason(e)}: {short_reason(e)}"


def _has_score(rec: dict) -> bool:
    return rec.get("motion_score") is not None


def _merge_previous(records: list[dict], out) -> int:
    """Take scores for unscored records from an earlier (partial) output, matched by path."""
    if not Path(out).is_file():
        return 0
    done = {r["path"]: r["motion_score"] for r in read_manifest(out) if _has_score(r)}
    taken = 0
    for rec in records:
        if rec["type"] == "video" and not _has_score(rec) and rec["path"] in done:
            rec["motion_score"] = done[rec["path"]]
            rec.pop("motion_error", None)
            taken += 1
    return taken


class _Saver:
    """Writes the manifest every `every` clips or `seconds`, whichever comes first."""

    def __init__(self, out, records: list[dict], every: int, seconds: float):
        self.out, self.records, self.every, self.seconds = out, records, every, seconds
        self.pending, self.last = 0, time.monotonic()

    def tick(self) -> None:
        self.pending += 1
        if self.pending >= self.every or time.monotonic() - self.last >= self.seconds:
            self.save()

    def save(self) -> None:
        write_manifest(self.out, self.records)
        self.pending, self.last = 0, time.monotonic()


def _apply_result(recs: list[dict], score: float | None, error: str | None) -> None:
    """Store one clip's score (rounded to 4 decimals) or its error on every record of that path."""
    for rec in recs:
        if error is None:
            rec["motion_score"] = round(score, 4)
            rec.pop("motion_error", None)
        else:
            rec["motion_error"] = error


def _score_stats(videos: list[dict]) -> dict:
    scores = [r["motion_score"] for r in videos if _has_score(r)]
    if not scores:
        return {"score_mean": None, "score_min": None, "score_max": None}
    return {"score_mean": float(np.mean(scores)), "score_min": float(np.min(scores)),
            "score_max": float(np.max(scores))}


def annotate_manifest(manifest, out=None, *, workers: int = 1, backend: FlowBackend | None = None,
                      save_every: int = 50, save_seconds: float = 60.0, progress: bool = True) -> dict:
    """Score every video record of `manifest` lacking a `motion_score`; write all records to `out`
    (default: the manifest itself). Returns a summary dict.

    Resumable: records that already have a score (in the manifest, or in an earlier partial `out`)
    are kept, not recomputed. Progress is written atomically every `save_every` clips or
    `save_seconds`, so a killed run loses at most that much. Each distinct path is scored once. A clip
    that fails gets `motion_error` ("reason: message") and no score; the next run retries it.
    `workers` > 1 scores in that many processes (`backend` must then be picklable).
    """
    positive_int(workers, "workers")
    out = manifest if out is None else out
    records = read_manifest(manifest)
    same_file = Path(out).resolve() == Path(manifest).resolve()
    resumed = 0 if same_file else _merge_previous(records, out)
    videos = [r for r in records if r["type"] == "video"]
    kept = sum(_has_score(r) for r in videos) - resumed
    todo = sorted({r["path"] for r in videos if not _has_score(r)})
    by_path: dict[str, list[dict]] = {}
    for r in videos:
        by_path.setdefault(r["path"], []).append(r)

    failed: Counter = Counter()
    scored = 0
    start = time.monotonic()
    saver = _Saver(out, records, positive_int(save_every, "save_every"), save_seconds)
    results, pool = _results(todo, workers, backend)
    try:
        for path, score, error in tqdm(results, total=len(todo), desc="motion", unit="clip", disable=not progress):
            _apply_result(by_path[path], score, error)
            scored += error is None
            if error is not None:
                failed[error.split(":")[0]] += 1
            saver.tick()
    finally:  # keep what is done, also on Ctrl-C or a backend error
        if pool is not None:
            pool.terminate()
        saver.save()
    seconds = time.monotonic() - start
    return {
        "out": str(out), "videos": len(videos), "images": len(records) - len(videos),
        "kept": kept, "resumed": resumed, "scored": scored, "failed": dict(failed),
        "seconds": seconds, "clips_per_s": len(todo) / seconds if seconds > 0 and todo else 0.0,
        **_score_stats(videos),
    }


def _results(paths: list[str], workers: int, backend):
    """Iterator of _score_path results (in completion order) and the pool to close, if any."""
    if workers <= 1 or len(paths) <= 1:
        _init_worker(backend)
        return (_score_path(p) for p in paths), None
    import multiprocessing as mp

    pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(backend,))
    return pool.imap_unordered(_score_path, paths, chunksize=1), pool


def format_summary(s: dict) -> str:
    failed = ", ".join(f"{v} {k}" for k, v in sorted(s["failed"].items())) or "none"
    stats = ("" if s["score_mean"] is None else
             f"; scores mean {s['score_mean']:.3f}, min {s['score_min']:.3f}, max {s['score_max']:.3f}")
    return (f"motion: {s['videos']} videos ({s['kept']} already scored, {s['resumed']} resumed from the output), "
            f"{s['scored']} scored, failed: {failed}; {s['images']} images not scored; "
            f"{s['seconds']:.1f} s ({s['clips_per_s']:.2f} clips/s){stats} -> {s['out']}")


def add_cli_arguments(parser) -> None:
    parser.add_argument("manifest", help="JSON Lines manifest to annotate")
    parser.add_argument("--out", default=None, help="output manifest (default: update MANIFEST in place)")
    parser.add_argument("--workers", type=int, default=1, help="processes scoring clips in parallel")
    parser.add_argument("--save-every", type=int, default=50, help="write progress every N clips")
    parser.add_argument("--preset", default="medium", choices=sorted(_DIS_PRESETS), help="DIS flow preset")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def cli_main(args) -> int:
    summary = annotate_manifest(args.manifest, args.out, workers=args.workers, save_every=args.save_every,
                                backend=DISFlow(preset=args.preset), progress=not args.no_progress)
    print(format_summary(summary))
    return 0
