"""The inputs of LuminaV2APipeline (`__call__` step 1): videos as (frames, times) items, their durations, prompts."""
from __future__ import annotations

import numpy as np
import torch

from .._checks import is_number
from ..encoders.clips import check_times, clip_duration, frame_times

__all__ = ["video_items", "video_seconds", "prompt_list"]


def _as_frames(x) -> np.ndarray:
    """One video as (F, H, W, 3) uint8 NumPy; one-line ValueError for a still image, no frames or other arrays."""
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if arr.ndim == 3 and arr.shape[-1] == 3:
        raise ValueError(f"a still image {tuple(arr.shape)} is not a video; pass frames (F, H, W, 3) with times or fps")
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"a video must be uint8 frames (F, H, W, 3), got {arr.dtype} {tuple(arr.shape)}")
    if arr.shape[0] == 0:
        raise ValueError("the video has zero frames")
    return arr


def video_items(video, times=None, fps=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(frames (F, H, W, 3) uint8, times (F,) s)] per item. `video`: frames (F, H, W, 3), a batch
    (B, F, H, W, 3) or a list of videos, or the video pipeline's output (`.frames`); with `times` ((F,) or
    one per item) or `fps` (constant-rate times i / fps); a `.fps` attribute of `video` serves as fps."""
    if hasattr(video, "frames"):
        fps = getattr(video, "fps", None) if fps is None else fps
        video = video.frames
    if isinstance(video, (list, tuple)):
        clips = [_as_frames(v) for v in video]
    else:
        arr = video.detach().cpu().numpy() if isinstance(video, torch.Tensor) else np.asarray(video)
        clips = [_as_frames(v) for v in arr] if arr.ndim == 5 else [_as_frames(arr)]
    if not clips:
        raise ValueError("no videos given")
    if (times is None) == (fps is None):
        raise ValueError("give the frames' times (seconds) or their fps, exactly one of them")
    if times is None:
        return [(c, frame_times(len(c), fps)) for c in clips]
    per_item = times if isinstance(times, (list, tuple)) and np.ndim(times[0]) == 1 else [times] * len(clips)
    if len(per_item) != len(clips):
        raise ValueError(f"{len(per_item)} time arrays for {len(clips)} videos; give one per video")
    return [(c, check_times(t, n=len(c), what="times")) for c, t in zip(clips, per_item)]


def video_seconds(times: np.ndarray, seconds) -> float:
    """The clip's seconds (clips.clip_duration), or `seconds` when given (at most the clip's)."""
    if times.size < 2 and seconds is None:
        raise ValueError("a single frame (a still image) is not a video: it has no duration; pass seconds=")
    if seconds is None:
        return clip_duration(times)
    if not is_number(seconds) or seconds <= 0:
        raise ValueError(f"seconds must be a number > 0, got {seconds!r}")
    if times.size > 1 and seconds > clip_duration(times) + 1e-6:
        raise ValueError(f"seconds={seconds:g} is longer than the video ({clip_duration(times):.3f} s)")
    return float(seconds)


def prompt_list(prompt, batch: int) -> list[str | None]:
    prompts = [prompt] * batch if prompt is None or isinstance(prompt, str) else list(prompt)
    if len(prompts) != batch or any(p is not None and not isinstance(p, str) for p in prompts):
        raise ValueError(f"prompt must be None, a string or a list of {batch} strings/None, got {prompt!r}")
    return prompts
