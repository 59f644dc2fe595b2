"""Audio in media files: mp4/mkv round trips (duration, sample count, alignment), wav round trips,
resampling and downmixing with the note, and the one-line errors (no audio, corrupt, too long, failed writes)."""
import wave as wavfile

import av
import numpy as np
import pytest
import torch

from lumina_video.audio import media
from lumina_video.audio.media import (
    CorruptAudioError,
    NoAudioStreamError,
    audio_duration,
    read_audio,
    video_duration,
    write_video_with_audio,
    write_wav,
)

SR, FPS, FRAMES = 16000, 16, 48
N = FRAMES * SR // FPS  # 3 s


def clicks(n: int = N, seed: int = 0) -> np.ndarray:
    """Bursts of noise at irregular times (a signal whose alignment is unambiguous)."""
    rng = np.random.default_rng(seed)
    x = np.zeros(n, np.float32)
    for start in (1000, 9000, 14500, 23000, 30100, 41000):
        if start + 400 <= n:
            x[start:start + 400] = rng.uniform(-0.5, 0.5, 400)
    return x


def lag(got: np.ndarray, ref: np.ndarray) -> int:
    """The shift d that best aligns got[d:] with ref (cross-correlation peak)."""
    cc = np.correlate(got[: len(ref) + 2000], ref, mode="full")
    return int(np.argmax(cc)) - (len(ref) - 1)


def frames(n: int = FRAMES, size: int = 32) -> np.ndarray:
    return np.stack([np.full((size, size, 3), 8 * i % 256, np.uint8) for i in range(n)])


def write_pcm(path, samples: np.ndarray, rate: int) -> None:
    """A wav of int16 samples (N, C), written with the stdlib (the fixture does not use the code under test)."""
    with wavfile.open(str(path), "wb") as w:
        w.setnchannels(samples.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("av")
    out = {}
    for suffix in ("mp4", "mkv"):
        out[suffix] = folder / f"clip.{suffix}"
        write_video_with_audio(out[suffix], frames(), FPS, clicks())
    return out


@pytest.mark.parametrize("suffix", ["mp4", "mkv"])
def test_video_with_audio_round_trip(clip_files, suffix):
    path = clip_files[suffix]
    clip = read_audio(path)
    assert clip.wave.dtype == np.float32 and clip.wave.ndim == 1
    assert clip.sample_rate == SR and clip.source_rate == SR and not clip.resampled and clip.note() is None
    assert abs(clip.num_samples - N) <= SR // FPS  # within one video frame
    assert clip.duration == pytest.approx(3.0, abs=1 / FPS)
    assert video_duration(path) == pytest.approx(FRAMES / FPS, abs=1 / FPS)
    assert audio_duration(path) == pytest.approx(3.0, abs=1 / FPS)
    assert lag(clip.wave, clicks()) == 0  # priming dropped: sample 0 is sample 0
    ref = clicks()
    n = min(len(ref), clip.num_samples)
    assert np.corrcoef(clip.wave[:n], ref[:n])[0, 1] > 0.9  # AAC keeps the waveform


def test_mp4_reads_back_exactly_the_written_sample_count(clip_files):
    assert read_audio(clip_files["mp4"]).num_samples == N  # the mp4 records the duration: padding is cut


def test_wav_round_trip_within_half_a_step(tmp_path):
    x = 0.9 * np.sin(2 * np.pi * 523.25 * np.arange(SR) / SR).astype(np.float32)
    write_wav(tmp_path / "a.wav", x)
    write_wav(tmp_path / "b.wav", torch.from_numpy(x))  # a torch tensor writes the same file
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    with wavfile.open(str(tmp_path / "a.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, SR, SR)
    clip = read_audio(tmp_path / "a.wav")
    assert not clip.resampled and clip.num_samples == SR
    assert np.max(np.abs(clip.wave - x)) <= 0.5 / 32768 + 1e-9


def test_full_scale_is_clipped_not_wrapped(tmp_path):
    write_wav(tmp_path / "a.wav", np.array([1.5, 1.0, -1.0, -2.0], np.float32))
    with wavfile.open(str(tmp_path / "a.wav")) as w:
        assert np.frombuffer(w.readframes(4), "<i2").tolist() == [32767, 32767, -32768, -32768]


def test_stereo_44k_wav_is_resampled_and_averaged_with_a_note(tmp_path):
    t = np.arange(44100) / 44100
    left = np.round(16384 * np.sin(2 * np.pi * 440 * t))  # amplitude 0.5 on the left, silence on the right
    write_pcm(tmp_path / "s.wav", np.stack([left, np.zeros_like(left)], 1), 44100)
    clip = read_audio(tmp_path / "s.wav")
    assert clip.resampled and clip.source_rate == 44100 and clip.sample_rate == SR and clip.source_channels == 2
    assert "44100 Hz to 16000 Hz" in clip.note() and "2 channels" in clip.note()
    assert abs(clip.num_samples - SR) <= 1
    spectrum = np.abs(np.fft.rfft(clip.wave[:SR]))
    assert np.argmax(spectrum) * SR / (2 * (len(spectrum) - 1)) == pytest.approx(440, abs=1)
    assert np.max(np.abs(clip.wave[2000:-2000])) == pytest.approx(0.25, abs=0.01)  # the mean of the channels


def test_identical_stereo_channels_give_the_mono_signal(tmp_path):
    x = np.round(8000 * np.sin(2 * np.pi * 880 * np.arange(SR) / SR))
    write_pcm(tmp_path / "d.wav", np.stack([x, x], 1), SR)
    clip = read_audio(tmp_path / "d.wav")
    assert not clip.resampled and clip.note() == "2 channels averaged to mono"
    np.testing.assert_allclose(clip.wave, x / 32768, atol=1e-6)


def test_webm_opus_audio_is_read_and_resampled(tmp_path):
    path = tmp_path / "a.webm"
    with av.open(str(path), "w", format="webm") as c:
        stream = c.add_stream("libopus", rate=48000)
        stream.layout = "mono"
        x = (0.3 * np.sin(2 * np.pi * 659.26 * np.arange(48000) / 48000)).astype(np.float32)
        for i in range(0, len(x), 960):
            frame = av.AudioFrame.from_ndarray(x[None, i:i + 960].copy(), format="flt", layout="mono")
            frame.sample_rate, frame.pts = 48000, i
            c.mux(stream.encode(frame))
        c.mux(stream.encode())
    clip = read_audio(path)
    assert clip.resampled and clip.source_rate == 48000
    assert abs(clip.duration - 1.0) < 0.05


def test_video_without_audio(tmp_path):
    from lumina_video.data.video_io import write_video

    write_video(tmp_path / "silent.mp4", frames(8), FPS)
    with pytest.raises(NoAudioStreamError, match="silent.mp4 has no audio stream"):
        read_audio(tmp_path / "silent.mp4")
    assert issubclass(NoAudioStreamError, ValueError)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_file_one_line_error_and_no_file_left(clip_files, tmp_path, damage):
    data = clip_files["mp4"].read_bytes()
    body = {"truncated": data[: len(data) // 2], "garbage": bytes(range(256)) * 40, "empty": b""}[damage]
    (tmp_path / "bad.mp4").write_bytes(body)
    with pytest.raises(CorruptAudioError) as info:
        read_audio(tmp_path / "bad.mp4")
    assert "\n" not in str(info.value) and "bad.mp4" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4"]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such media file"):
        read_audio(tmp_path / "nope.wav")


def test_too_long_is_refused_naming_both_numbers(tmp_path, clip_files):
    write_wav(tmp_path / "long.wav", clicks())
    with pytest.raises(ValueError, match=r"3\.00 s long, longer than the limit of 2\.5 s"):
        read_audio(tmp_path / "long.wav", max_seconds=2.5)
    assert read_audio(tmp_path / "long.wav", max_seconds=3).num_samples == N  # exactly at the limit is fine
    # the mkv records no stream duration: decoding stops a second past the limit
    with pytest.raises(ValueError, match=r"at least 2\.\d\d s long, longer than the limit of 1 s"):
        read_audio(clip_files["mkv"], max_seconds=1)


def test_failed_write_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "clip.mp4"
    write_video_with_audio(path, frames(16), FPS, clicks(SR))
    good = path.read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(media, "_encode_audio", broken)  # fails after the video stream was written
    with pytest.raises(RuntimeError, match="disk full"):
        write_video_with_audio(path, frames(16), FPS, clicks(SR))
    monkeypatch.setattr(media, "pcm16", broken)
    with pytest.raises(RuntimeError):
        write_wav(tmp_path / "new.wav", clicks())
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


@pytest.mark.parametrize("frames_, wave_, name, match", [
    (frames(4, 31), clicks(SR), "a.mp4", "even width and height"),
    (frames(4), clicks(SR), "a.avi", "unknown suffix"),
    (frames(4), np.full(10, np.nan, np.float32), "a.mp4", "non-finite"),
    (frames(4), np.zeros((2, 10), np.float32), "a.mp4", "mono waveform"),
    (frames(4).astype(np.float32), clicks(SR), "a.mp4", "uint8"),
])
def test_bad_inputs_one_line_errors(tmp_path, frames_, wave_, name, match):
    with pytest.raises(ValueError, match=match):
        write_video_with_audio(tmp_path / name, frames_, FPS, wave_)
    assert not any(tmp_path.iterdir())
