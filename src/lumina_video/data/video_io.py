"""The package's one video reader and writer (PyAV), plus images (Pillow) and resizing (OpenCV).

Frames are uint8 RGB arrays shaped (T, H, W, 3) (`check_frames` validates a clip); an image is (H, W, 3).

Frame times. Source frame i has time tau_i = (pts_i - pts_0) * time_base (its presentation time
relative to the first frame; i / fps when pts are missing). Sampling at a target rate r from a start
time s wants the times t_k = s + k / r, k = 0..n-1, and takes for each the source frame nearest in
time (a tie goes to the later frame). A target time is covered by the clip when
t <= tau_last + 1 / (2 fps), i.e. the last frame is still the nearest one within half a frame period.

Errors. A file that does not exist raises FileNotFoundError; one that cannot be decoded raises
`CorruptMediaError`; a clip too short for the frames asked of it raises `VideoTooShortError`; a suffix
that is not a known video/image format raises `UnsupportedMediaError` (from `check_supported`). The
last three are ValueErrors; `failure_reason` names each for the skip counters of callers.

Odd sizes. H.264 in yuv420p stores chroma at half resolution, so `write_video` needs an even width
and height: an odd size raises ValueError (nothing is cropped or padded behind the caller's back;
use `resize_cover_crop` to a bucket, whose sides are multiples of 32).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image, ImageOps

from .._checks import number, positive_int, positive_number
from ..files import atomic_path

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
# Containers `write_video` can produce, by file suffix (PyAV would guess from the suffix, but the
# atomic temp file has none, so the format is named explicitly).
_WRITE_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


class CorruptMediaError(ValueError):
    """A media file exists but cannot be decoded (truncated, not a video/image, bad stream)."""


class VideoTooShortError(ValueError):
    """The clip has fewer seconds than the frames asked of it need."""


class UnsupportedMediaError(ValueError):
    """The file's suffix is not a video or image format this package reads for that media type."""


def check_supported(path, media: str) -> None:
    """Raise UnsupportedMediaError unless `path` has a suffix of `media` ("video" or "image")."""
    suffixes = {"video": VIDEO_SUFFIXES, "image": IMAGE_SUFFIXES}[media]
    if Path(path).suffix.lower() not in suffixes:
        raise UnsupportedMediaError(f"{path}: not a supported {media} file; accepted suffixes: {list(suffixes)}")


def failure_reason(exc: BaseException) -> str:
    """A short reason for a media failure, for skip counters: missing, unsupported, too_short, corrupt.
    (Quote the exception itself with `lumina_video._checks.short_reason`.)"""
    if isinstance(exc, FileNotFoundError):
        return "missing"
    if isinstance(exc, UnsupportedMediaError):
        return "unsupported"
    if isinstance(exc, VideoTooShortError):
        return "too_short"
    if isinstance(exc, (CorruptMediaError, av.error.FFmpegError, OSError)):
        return "corrupt"
    return "error"


def check_frames(frames, min_frames: int = 1, what: str = "frames") -> np.ndarray:
    """Validate a clip: a uint8 numpy array (T, H, W, 3), RGB, with at least `min_frames` frames."""
    if not isinstance(frames, np.ndarray):
        raise ValueError(f"{what} must be a numpy array (T, H, W, 3) uint8, got {type(frames).__name__}")
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{what} must be uint8 of shape (T, H, W, 3) RGB, got {frames.dtype} {frames.shape}")
    if frames.shape[0] < min_frames:
        raise ValueError(f"{what}: need at least {min_frames} frames, got {frames.shape[0]}")
    return frames


def _check_exists(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such media file: {path}")
    return path


def _open(path):
    path = _check_exists(path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise CorruptMediaError(f"cannot open {path} as a video: {e}") from e
    if not container.streams.video:
        container.close()
        raise CorruptMediaError(f"{path} has no video stream")
    return container


def _stream_fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or float(rate) <= 0:
        raise CorruptMediaError("video stream has no frame rate")
    return float(rate)


def probe_video(path) -> dict:
    """{fps, frames, duration, width, height} from the container (no decoding).

    `frames` comes from the stream header, or, when the header has none, from counting packets;
    `duration` = frames / fps (the span the frames cover, which is what frame sampling uses).
    """
    container = _open(path)
    try:
        stream = container.streams.video[0]
        fps = _stream_fps(stream)
        frames = int(stream.frames or 0)
        if frames <= 0:
            frames = sum(1 for p in container.demux(stream) if p.size > 0)
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
    except av.error.FFmpegError as e:
        raise CorruptMediaError(f"cannot probe {path}: {e}") from e
    finally:
        container.close()
    if frames <= 0 or width <= 0 or height <= 0:
        raise CorruptMediaError(f"{path}: empty video stream ({frames} frames, {width}x{height})")
    return {"fps": fps, "frames": frames, "duration": frames / fps, "width": width, "height": height}


def _decoded_frames(container, stream, fps: float, seek_to: float = 0.0):
    """Yield (time in seconds from the stream start, av.VideoFrame), in presentation order.

    With `seek_to` > 0 (and a known stream start) decoding starts at the keyframe before that time.
    """
    t0 = stream.start_time
    if seek_to > 0 and t0 is not None and stream.time_base:
        container.seek(int(t0 + seek_to / stream.time_base), stream=stream, backward=True, any_frame=False)
    for i, frame in enumerate(container.decode(stream)):
        if frame.pts is None or frame.time_base is None:
            t = i / fps
        else:
            t0 = frame.pts if t0 is None else t0
            t = float((frame.pts - t0) * frame.time_base)
        yield t, frame


def frames_at_times(path, times) -> tuple[np.ndarray, int]:
    """Nearest source frame to each target time (seconds, ascending): (frames (K, H, W, 3), K) for the
    first K times that the clip covers (K <= len(times); see the module docstring)."""
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or len(times) == 0 or np.any(np.diff(times) < 0) or times[0] < 0:
        raise ValueError(f"target times must be a non-empty ascending list of seconds >= 0, got {times}")
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = _stream_fps(stream)
        half = 0.5 / fps
        picked: list[np.ndarray | None] = [None] * len(times)
        best = np.full(len(times), np.inf)  # distance of the frame picked so far
        last_t = -np.inf
        seek_to = times[0] - 1.0 if times[0] > 2.0 else 0.0  # long clips: skip to the start time
        for t, frame in _decoded_frames(container, stream, fps, seek_to):
            last_t = t
            if t < times[0] - 2 * half:
                continue
            # frames that are at least as near as the current pick (>= : ties go to the later frame)
            dist = np.abs(times - t)
            take = (dist <= best + 1e-9) & (dist <= half + 1e-9)
            if take.any():
                rgb = frame.to_ndarray(format="rgb24")
                for k in np.flatnonzero(take):
                    picked[k], best[k] = rgb, dist[k]
            if t > times[-1] + half:
                break
    except av.error.FFmpegError as e:
        raise CorruptMediaError(f"cannot decode {path}: {e}") from e
    finally:
        container.close()
    if last_t == -np.inf:
        raise CorruptMediaError(f"{path}: no decodable frames")
    covered = int(np.searchsorted(times, last_t + half + 1e-9, side="right"))
    got = picked[:covered]
    if any(f is None for f in got):  # a gap in the timestamps (variable frame rate): nearest so far
        raise CorruptMediaError(f"{path}: frames missing around the requested times (irregular timestamps)")
    if not got:
        return np.zeros((0, 0, 0, 3), np.uint8), 0
    return np.stack(got), covered


def sample_frames(path, fps: float, num_frames: int, start: float = 0.0, pad: bool = False) -> np.ndarray:
    """(num_frames, H, W, 3) uint8: the source frames nearest to start + k / fps, k = 0..num_frames-1.

    A clip too short for all of them raises VideoTooShortError, or with `pad` repeats its last frame.
    """
    positive_number(fps, "fps")
    positive_int(num_frames, "num_frames")
    number(start, "start", 0)
    times = start + np.arange(num_frames) / fps
    frames, covered = frames_at_times(path, times)
    if covered < num_frames:
        if not pad or covered == 0:
            raise VideoTooShortError(
                f"{path}: {num_frames} frames at {fps:g} fps from {start:g} s need "
                f"{times[-1]:.3f} s of video; the clip covers only {covered} of those times")
        frames = np.concatenate([frames, np.repeat(frames[-1:], num_frames - covered, axis=0)])
    return frames


def read_video(path) -> tuple[np.ndarray, float]:
    """Every frame: ((T, H, W, 3) uint8 RGB, fps)."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = _stream_fps(stream)
        frames = [f.to_ndarray(format="rgb24") for _, f in _decoded_frames(container, stream, fps)]
    except av.error.FFmpegError as e:
        raise CorruptMediaError(f"cannot decode {path}: {e}") from e
    finally:
        container.close()
    if not frames:
        raise CorruptMediaError(f"{path}: no decodable frames")
    return np.stack(frames), fps


def _fps_fraction(fps: float) -> Fraction:
    if not fps or fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return Fraction(fps).limit_denominator(1001)  # 23.976 -> 24000/1001


def write_video(path, frames: np.ndarray, fps: float, crf: int = 18) -> None:
    """Write (T, H, W, 3) uint8 RGB as H.264 yuv420p (`crf`: 0 lossless .. 51 worst), atomically.

    The suffix picks the container (.mp4/.m4v, .mov, .mkv). Width and height must be even.
    The file is not bit-reproducible: libx264 here now and then encodes the same frames differently
    (seen on small clips even with one encoder thread), by up to ~20 grey levels after decoding.
    Compare rendered frames, not files, when exact equality matters.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 (T, H, W, 3) with T >= 1, got {frames.dtype} {frames.shape}")
    _, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"H.264 yuv420p needs an even width and height, got {w}x{h}; "
                         "resize or crop first (e.g. resize_cover_crop to a bucket)")
    path = Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot write video {path}: unknown suffix; accepted: {sorted(_WRITE_FORMATS)}")
    rate = _fps_fraction(fps)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format=fmt) as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = {"crf": str(int(crf))}
            for rgb in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)


def read_image(path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; EXIF orientation applied, alpha dropped, greyscale expanded."""
    path = _check_exists(path)
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, SyntaxError, ValueError) as e:  # PIL.UnidentifiedImageError is an OSError
        raise CorruptMediaError(f"cannot read image {path}: {e}") from e


def write_image(path, image: np.ndarray) -> None:
    """Write (H, W, 3) uint8 RGB atomically; the suffix picks the format (.png, .jpg, ...)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot write image {path}: unknown suffix")
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format=fmt)


def resize_cover_crop(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize so the frame covers (height, width) keeping its aspect ratio, then centre-crop.

    frames: (T, H, W, 3) or (H, W, 3) uint8 -> same rank with (height, width). Scale
    s = max(height / H, width / W); area averaging when shrinking, bilinear when enlarging.
    """
    frames = np.asarray(frames)
    single = frames.ndim == 3
    batch = frames[None] if single else frames
    if batch.ndim != 4 or height < 1 or width < 1:
        raise ValueError(f"need frames (T, H, W, C) or (H, W, C) and a positive size, "
                         f"got {frames.shape}, {height}x{width}")
    _, h, w, _ = batch.shape
    s = max(height / h, width / w)
    rh, rw = max(height, round(h * s)), max(width, round(w * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    top, left = (rh - height) // 2, (rw - width) // 2
    out = np.empty((len(batch), height, width, batch.shape[-1]), dtype=batch.dtype)
    for i, f in enumerate(batch):
        r = f if (rh, rw) == (h, w) else cv2.resize(f, (rw, rh), interpolation=interp)
        out[i] = r.reshape(rh, rw, -1)[top:top + height, left:left + width]
    return out[0] if single else out
