"""Audio in media files (PyAV): the audio stream of a video (mp4, mov, mkv, webm) or a wav, read as
16 kHz mono; 16-bit PCM wav files; H.264 video with an AAC audio track.

Reading. `read_audio` decodes the first audio stream and converts it with PyAV's `AudioResampler` to
float32 at `sample_rate`, keeping the source's channels, then averages the channels:

    wave[n] = (1 / C) * sum_c x_c[n]          C source channels (a mono clip copied to stereo stays the same)

so the result is a float32 numpy array (N,) in [-1, 1] (16-bit PCM s reads as s / 32768). A clip whose
rate is not `sample_rate` comes back with `resampled=True` (and `note()` says from what). Codecs pad
their last frame (AAC to 1024 samples); when the container records the stream's duration, the
decoded samples are cut to round(duration x sample_rate) (an mp4 written here reads back exactly).
Encoder priming (AAC's leading 1024 samples) is dropped by the demuxer's edit list, so sample 0 of
the result is sample 0 of what was written.

Errors. A missing file: FileNotFoundError. A file PyAV cannot open or decode, or with no decodable
samples: `CorruptAudioError`. A file without an audio stream: `NoAudioStreamError`. A clip longer than
`max_seconds`: ValueError naming both durations. All are one line; the last three are ValueErrors.

Writing. `write_wav` writes 16-bit PCM mono (stdlib `wave`): s = clip(round(32768 x), -32768, 32767).
`write_video_with_audio` writes frames (F, H, W, 3) uint8 as H.264 yuv420p (even width and height)
plus the wave as AAC; the video lasts F / fps seconds and the audio N / sample_rate (the caller
makes them agree). Both are atomic (`lumina_video.files.atomic_path`): a failed write leaves the
previous file, or none.
"""
from __future__ import annotations

import math
import wave as wavfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .._checks import positive_int, positive_number, short_reason
from ..files import atomic_path

SAMPLE_RATE = 16000
# containers `write_video_with_audio` writes, by suffix (the atomic temp file has no suffix to guess from)
_WRITE_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_AAC_FRAME = 1024  # samples per AAC frame
_GRACE_SECONDS = 1.0  # decoding stops this far past `max_seconds` (codec padding is far shorter)


class CorruptAudioError(ValueError):
    """A media file exists but its audio cannot be opened or decoded."""


class NoAudioStreamError(ValueError):
    """A media file (e.g. a silent video) has no audio stream."""


@dataclass(frozen=True)
class AudioClip:
    """A decoded clip: `wave` float32 numpy (N,) mono in [-1, 1] at `sample_rate` Hz.

    `source_rate` and `source_channels` describe the stream as stored; `resampled` is True when
    `source_rate != sample_rate`; `duration` = N / sample_rate seconds."""

    wave: np.ndarray
    sample_rate: int
    source_rate: int
    source_channels: int
    resampled: bool

    @property
    def duration(self) -> float:
        return len(self.wave) / self.sample_rate

    @property
    def num_samples(self) -> int:
        return len(self.wave)

    def note(self) -> str | None:
        """One line for a CLI when the clip was converted ("resampled from 44100 Hz to 16000 Hz, 2 channels
        averaged to mono"), else None."""
        parts = []
        if self.resampled:
            parts.append(f"resampled from {self.source_rate} Hz to {self.sample_rate} Hz")
        if self.source_channels != 1:
            parts.append(f"{self.source_channels} channels averaged to mono")
        return ", ".join(parts) or None


# -- reading ---------------------------------------------------------------------------------------
def _reason(exc: BaseException) -> str:
    """FFmpeg's own words for a PyAV error ("Invalid data found when processing input"), else the first line."""
    return getattr(exc, "strerror", None) or short_reason(exc)


def _open_audio(path):
    """(container, first audio stream); the errors of the module docstring."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such media file: {path}")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, OSError) as e:
        raise CorruptAudioError(f"cannot open {path} as audio: {_reason(e)}") from e
    if not container.streams.audio:
        container.close()
        raise NoAudioStreamError(f"{path} has no audio stream")
    return container, container.streams.audio[0]


def _stream_seconds(container, stream) -> float | None:
    """The stream's duration from the container (no decoding), or None when it is not recorded."""
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and len(container.streams) == 1:
        return container.duration / av.time_base
    return None


def _too_long(path, seconds: float, limit: float, at_least: bool = False) -> ValueError:
    what = "at least " if at_least else ""
    return ValueError(f"{path} is {what}{seconds:.2f} s long, longer than the limit of {limit:g} s")


def _decode(container, stream, sample_rate: int, stop_after: int | None) -> tuple[np.ndarray, int, bool]:
    """(float32 (C, N) at sample_rate, source channels C, complete); gives up (complete=False) once more
    than `stop_after` samples are decoded."""
    resampler, chunks, total, channels = None, [], 0, 1
    for frame in container.decode(stream):
        if resampler is None:
            channels = len(frame.layout.channels)
            resampler = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=sample_rate)
        for out in resampler.resample(frame):
            chunks.append(out.to_ndarray())
            total += chunks[-1].shape[-1]
        if stop_after is not None and total > stop_after:
            return np.concatenate(chunks, axis=1), channels, False
    if resampler is not None:
        chunks.extend(out.to_ndarray() for out in resampler.resample(None))  # flush the resampler's delay
    return (np.concatenate(chunks, axis=1) if chunks else np.zeros((1, 0), np.float32)), channels, True


def _decode_checked(path, container, stream, sample_rate: int, stop_after: int | None):
    """`_decode` with PyAV's failures (a bad packet, a resampler refusing a changed layout) as CorruptAudioError."""
    try:
        return _decode(container, stream, sample_rate, stop_after)
    except (av.error.FFmpegError, ValueError) as e:
        raise CorruptAudioError(f"cannot decode the audio of {path}: {_reason(e)}") from e


def read_audio(path, sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None) -> AudioClip:
    """The first audio stream of `path` as an AudioClip: mono float32 at `sample_rate` (module docstring).

    `max_seconds`: refuse (ValueError) a clip longer than this, checked from the header before decoding
    when the container records a duration, and on the decoded samples in any case (decoding stops
    one second past the limit)."""
    positive_int(sample_rate, "sample_rate")
    if max_seconds is not None:
        positive_number(max_seconds, "max_seconds")
    limit = None if max_seconds is None else math.floor(max_seconds * sample_rate + 1e-6)
    container, stream = _open_audio(path)
    try:
        source_rate = int(stream.codec_context.sample_rate or stream.rate or 0)
        header = _stream_seconds(container, stream)
        if limit is not None and header is not None and round(header * sample_rate) > limit:
            raise _too_long(path, header, max_seconds)
        stop_after = None if limit is None else limit + int(_GRACE_SECONDS * sample_rate)
        planes, channels, complete = _decode_checked(path, container, stream, sample_rate, stop_after)
    finally:
        container.close()
    wave = planes.mean(axis=0, dtype=np.float64).astype(np.float32)
    if header is not None:
        wave = wave[: round(header * sample_rate)]  # drop the codec's padding of the last frame
    if len(wave) == 0:
        raise CorruptAudioError(f"{path}: no decodable audio samples")
    if limit is not None and len(wave) > limit:
        raise _too_long(path, len(wave) / sample_rate, max_seconds, at_least=not complete)
    return AudioClip(wave=wave, sample_rate=sample_rate, source_rate=source_rate or sample_rate,
                     source_channels=channels, resampled=bool(source_rate) and source_rate != sample_rate)


def audio_duration(path) -> float:
    """Seconds of the first audio stream: from the container when it records them, else by decoding."""
    container, stream = _open_audio(path)
    try:
        seconds = _stream_seconds(container, stream)
    finally:
        container.close()
    if seconds is not None:
        return seconds
    clip = read_audio(path)
    return clip.duration


def video_duration(path) -> float:
    """Seconds of the first video stream, frames / fps (frames from the header, else counted packets)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such media file: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise CorruptAudioError(f"{path} has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            frames = int(stream.frames or 0) or sum(1 for p in container.demux(stream) if p.size > 0)
    except av.error.FFmpegError as e:
        raise CorruptAudioError(f"cannot open {path} as a video: {_reason(e)}") from e
    if not rate or frames <= 0:
        raise CorruptAudioError(f"{path}: empty video stream or no frame rate")
    return frames / float(rate)


# -- writing ---------------------------------------------------------------------------------------
def _mono_wave(wave, what: str = "wave") -> np.ndarray:
    """A float numpy or torch 1-D waveform as finite float32 numpy (N,), N >= 1."""
    if hasattr(wave, "detach"):  # a torch tensor
        wave = wave.detach().cpu().float().numpy()
    wave = np.asarray(wave)
    if wave.ndim != 1 or len(wave) == 0 or not np.issubdtype(wave.dtype, np.floating):
        raise ValueError(f"{what} must be a non-empty float mono waveform (N,), got {wave.dtype} {wave.shape}")
    if not np.all(np.isfinite(wave)):
        raise ValueError(f"{what} has non-finite samples (NaN or inf)")
    return wave.astype(np.float32, copy=False)


def pcm16(wave) -> np.ndarray:
    """float (N,) in [-1, 1] -> int16 (N,): clip(round(32768 x), -32768, 32767) (what a reader's s / 32768
    inverts to within half a step)."""
    return np.clip(np.round(_mono_wave(wave).astype(np.float64) * 32768.0), -32768, 32767).astype("<i2")


def write_wav(path, wave, sample_rate: int = SAMPLE_RATE) -> None:
    """Write a mono float waveform (N,) (numpy or torch) as 16-bit PCM wav, atomically."""
    positive_int(sample_rate, "sample_rate")
    samples = pcm16(wave)
    with atomic_path(path) as tmp:
        with wavfile.open(str(tmp), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(sample_rate)
            w.writeframes(samples.tobytes())


def _check_video_frames(frames) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 (F, H, W, 3) with F >= 1, got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"H.264 yuv420p needs an even width and height, got {frames.shape[2]}x{frames.shape[1]}")
    return frames


def _add_streams(container, size: tuple[int, int], fps: float, sample_rate: int, crf: int, bit_rate: int):
    """(video, audio) streams; both exist before the first packet is muxed (the header names them)."""
    video = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
    video.height, video.width = size
    video.pix_fmt, video.options = "yuv420p", {"crf": str(int(crf))}
    audio = container.add_stream("aac", rate=sample_rate)
    audio.layout, audio.bit_rate = "mono", bit_rate
    return video, audio


def _encode_video(container, stream, frames: np.ndarray) -> None:
    for rgb in frames:
        container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")))
    container.mux(stream.encode())


def _encode_audio(container, stream, wave: np.ndarray, sample_rate: int) -> None:
    for start in range(0, len(wave), _AAC_FRAME):
        chunk = np.ascontiguousarray(wave[None, start:start + _AAC_FRAME])  # (1, <=1024) planar
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = sample_rate, start, Fraction(1, sample_rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


def write_video_with_audio(path, frames, fps: float, wave, sample_rate: int = SAMPLE_RATE, crf: int = 18,
                           audio_bit_rate: int = 96000) -> None:
    """Write frames (F, H, W, 3) uint8 RGB as H.264 yuv420p (`crf` 0 lossless .. 51 worst) and `wave`
    (N,) float mono as an AAC track at `sample_rate`, atomically; the suffix picks the container
    (.mp4/.m4v, .mov, .mkv)."""
    frames = _check_video_frames(frames)
    positive_number(fps, "fps")
    positive_int(sample_rate, "sample_rate")
    samples = np.clip(_mono_wave(wave), -1.0, 1.0)
    fmt = _WRITE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot write video {path}: unknown suffix; accepted: {sorted(_WRITE_FORMATS)}")
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format=fmt) as container:
            video, audio = _add_streams(container, frames.shape[1:3], fps, sample_rate, crf, audio_bit_rate)
            _encode_video(container, video, frames)  # the muxer interleaves the two streams by time
            _encode_audio(container, audio, samples, sample_rate)
