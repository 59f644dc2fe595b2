"""Video/image I/O: frame counts and sizes, nearest-frame fps resampling, resizing, errors."""
import numpy as np
import pytest

from lumina_video.data.video_io import (
    CorruptMediaError,
    VideoTooShortError,
    frames_at_times,
    probe_video,
    read_image,
    read_video,
    resize_cover_crop,
    sample_frames,
    write_image,
    write_video,
)

BITS, BLOCK = 8, 16


def encode_index(i: int, h: int = 32, w: int = BITS * BLOCK) -> np.ndarray:
    """A frame whose blocks spell the bits of i in black/white (survives lossy coding)."""
    f = np.zeros((h, w, 3), np.uint8)
    for b in range(BITS):
        if (i >> b) & 1:
            f[:, b * BLOCK:(b + 1) * BLOCK] = 255
    return f


def decode_index(f: np.ndarray) -> int:
    return sum(int(f[:, b * BLOCK + 4:(b + 1) * BLOCK - 4].mean() > 127) << b for b in range(BITS))


@pytest.fixture(scope="module")
def indexed_clip(tmp_path_factory):
    """120 frames at 24 fps (5 s), frame i showing i."""
    path = tmp_path_factory.mktemp("v") / "indexed.mp4"
    write_video(path, np.stack([encode_index(i) for i in range(120)]), fps=24)
    return path


def test_write_read_round_trip(indexed_clip):
    frames, fps = read_video(indexed_clip)
    assert frames.dtype == np.uint8 and frames.shape == (120, 32, 128, 3)
    assert fps == pytest.approx(24.0)
    assert [decode_index(f) for f in frames] == list(range(120))
    assert probe_video(indexed_clip) == {"fps": 24.0, "frames": 120, "duration": 5.0, "width": 128, "height": 32}


@pytest.mark.parametrize("fps,start", [(8, 0.0), (10, 0.0), (30, 0.5), (24, 1.0), (8, 3.3)])
def test_sample_frames_picks_nearest_source_frame(indexed_clip, fps, start):
    n = 9
    frames = sample_frames(indexed_clip, fps, n, start=start)
    assert frames.shape == (n, 32, 128, 3)
    # nearest source frame to start + k / fps, source frames at i / 24 (ties to the later frame)
    expected = [int(np.floor((start + k / fps) * 24 + 0.5 + 1e-9)) for k in range(n)]
    assert [decode_index(f) for f in frames] == expected


def test_sample_frames_frame_count_and_bucket_size(indexed_clip):
    frames = resize_cover_crop(sample_frames(indexed_clip, 8, 17), 64, 96)
    assert frames.shape == (17, 64, 96, 3) and frames.dtype == np.uint8


def test_too_short_clip_raises_or_pads(indexed_clip):
    # 41 frames at 8 fps need 5.0 s; the last source frame (4.958 s) covers times up to 4.979 s
    with pytest.raises(VideoTooShortError, match="covers only 40"):
        sample_frames(indexed_clip, 8, 41)
    padded = sample_frames(indexed_clip, 8, 41, pad=True)
    assert [decode_index(f) for f in padded[-2:]] == [117, 117]
    frames, covered = frames_at_times(indexed_clip, [0.0, 1.5, 3.0, 4.5, 6.0, 7.5])
    assert covered == 4 and [decode_index(f) for f in frames] == [0, 36, 72, 108]


def test_resize_cover_crop_keeps_centre():
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 30:50] = 200  # a central band, 20 of 80 columns
    out = resize_cover_crop(img, 64, 64)  # cover: scale 1.6 -> 64 x 128, crop columns 32..96
    assert out.shape == (64, 64, 3)
    cols = np.flatnonzero(out[32, :, 0] > 100)
    assert cols.min() == pytest.approx(16, abs=1) and cols.max() == pytest.approx(47, abs=1)
    portrait = resize_cover_crop(np.stack([img.transpose(1, 0, 2)] * 3), 32, 32)
    assert portrait.shape == (3, 32, 32, 3)


def test_image_round_trip_and_errors(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    write_image(tmp_path / "a.png", img)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), img)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(CorruptMediaError):
        read_image(tmp_path / "bad.png")
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "missing.png")


def test_video_errors(tmp_path, indexed_clip):
    with pytest.raises(FileNotFoundError):
        read_video(tmp_path / "missing.mp4")
    (tmp_path / "text.mp4").write_text("hello")
    with pytest.raises(CorruptMediaError):
        read_video(tmp_path / "text.mp4")
    data = indexed_clip.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptMediaError):
        sample_frames(tmp_path / "cut.mp4", 8, 4)
    with pytest.raises(ValueError, match="even width and height"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 33, 64, 3), np.uint8), 8)
    with pytest.raises(ValueError, match="unknown suffix"):
        write_video(tmp_path / "x.gif", np.zeros((2, 32, 64, 3), np.uint8), 8)
    assert not list(tmp_path.glob(".*.tmp"))  # failed writes leave no temp files
