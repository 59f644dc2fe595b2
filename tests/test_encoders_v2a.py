"""The V2A visual encoders: frames resampled by timestamp (clips.py), CLIP-V frame features (visual.py) and the
sync encoder interface with its small trainable encoder (sync.py)."""
import json

import numpy as np
import pytest
import torch

from lumina_video.encoders.clips import align_to_times, frame_times, resample_by_time
from lumina_video.encoders.sync import (
    SmallSyncConfig,
    SmallSyncEncoder,
    SyncEncoder,
    segments_to_timeline,
)
from lumina_video.encoders.visual import CLIPFrameEncoder, tiny_clip_vision_config

SMALL = SmallSyncConfig(rate=25.0, size=32, channels=(8, 16, 16), width=24, dim=16)


def index_frames(n: int, h: int = 4, w: int = 4) -> np.ndarray:
    """(n, h, w, 3) uint8 frames whose every pixel is the frame's index (n <= 256)."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, h, w, 3)).copy()


def one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text and text
    return text


# ---------------------------------------------------------------------------------------------
# clips.py: resampling by timestamp
def test_nearest_previous_on_uneven_timestamps():
    """A variable-frame-rate clip: every output frame is the latest input frame at or before k / rate,
    checked against a brute-force scan of the timestamps."""
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.uniform(0.005, 0.12, size=60)) - 0.005  # gaps from 5 to 120 ms
    out, grid = resample_by_time(index_frames(60), times, rate=25, duration=float(times[-1] + 0.05))
    assert np.allclose(grid, np.arange(len(grid)) / 25)
    expected = [max([i for i, t in enumerate(times) if t <= tk] or [0]) for tk in grid]
    assert out[:, 0, 0, 0].tolist() == expected


@pytest.mark.parametrize("fps", [10, 16, 24, 30])
def test_constant_rates_land_on_the_same_grid(fps):
    """2 s at 10 / 16 / 24 / 30 fps: the default duration is 2 s, so 50 frames at k / 25 each, and frame k is
    input frame floor(k fps / 25) (the one showing then)."""
    n = 2 * fps
    out, grid = resample_by_time(index_frames(n), frame_times(n, fps), rate=25)
    assert np.allclose(grid, np.arange(50) / 25)
    assert out[:, 0, 0, 0].tolist() == [int(np.floor(k * fps / 25 + 1e-9)) for k in range(50)]


def test_never_assumes_a_frame_rate():
    """Only the timestamps matter: a 10 fps clip with each frame repeated three times at 30 fps times gives the
    same frames; stretching every time, the duration and the period by 2 gives the same frames; dropping
    frames (a VFR stream holding the last picture) shows the held frame."""
    frames = index_frames(20)
    ref, _ = resample_by_time(frames, frame_times(20, 10), rate=25)
    tripled, _ = resample_by_time(np.repeat(frames, 3, axis=0), frame_times(60, 30), rate=25)
    assert np.array_equal(ref, tripled)
    slow, slow_grid = resample_by_time(frames, frame_times(20, 10) * 2, rate=12.5, duration=4.0)
    assert np.array_equal(ref, slow) and np.allclose(slow_grid, np.arange(50) / 12.5)
    keep = np.array([i for i in range(20) if i % 4 != 3])  # every 4th frame missing
    held, _ = resample_by_time(frames[keep], frame_times(20, 10)[keep], rate=25, duration=2.0)
    showing = [max(i for i in keep if i / 10 <= k / 25 + 1e-9) for k in range(50)]
    assert held[:, 0, 0, 0].tolist() == showing


def test_default_duration_and_still_images():
    """Default duration = last time + median interval (robust to one long gap); a still image needs a
    duration and then repeats."""
    times = np.array([0.0, 0.1, 0.2, 0.3, 1.0])  # median interval 0.1 -> 1.1 s -> 27 frames at 25 per second
    out, grid = resample_by_time(index_frames(5), times, rate=25)
    assert len(grid) == 27 and out[-1, 0, 0, 0] == 4 and out[24, 0, 0, 0] == 3
    still, still_grid = resample_by_time(index_frames(1), [0.0], rate=8, duration=1.0)
    assert still.shape == (8, 4, 4, 3) and np.allclose(still_grid, np.arange(8) / 8)


def test_refusals_are_one_line_errors():
    frames = index_frames(10)
    cases = [
        (np.zeros((0, 4, 4, 3), np.uint8), np.zeros(0), {}, "F >= 1"),
        (frames, np.r_[0.0, 0.1, 0.1, np.arange(3, 10) / 10], {}, "strictly increasing"),
        (frames, np.arange(10)[::-1] / 10, {}, "strictly increasing"),
        (index_frames(1), [0.0], {}, "still image"),
        (frames, frame_times(10, 1), {"max_seconds": 8}, "over the limit"),
        (frames, frame_times(9, 10), {}, "one time per frame"),
        (frames[..., :2], frame_times(10, 10), {}, "(F, H, W, 3)"),
        (frames, frame_times(10, 10), {"mode": "cubic"}, "mode"),
        (frames, frame_times(10, 10), {"duration": 0.01}, "shorter than one sample"),
    ]
    for f, t, kw, words in cases:
        with pytest.raises(ValueError) as e:
            resample_by_time(f, t, rate=25, **kw)
        assert words in one_line(e), (words, str(e.value))
    out, _ = resample_by_time(frames, frame_times(10, 1), rate=2, max_seconds=10)  # 10 s within 10 s
    assert len(out) == 20


def test_linear_blends_neighbours_and_torch_round_trip():
    """mode="linear" is np.interp of the frame values over the timestamps; a torch tensor comes back a tensor."""
    times = frame_times(30, 30)
    frames = index_frames(30).astype(np.float32) * 2
    out, grid = resample_by_time(frames, times, rate=25, mode="linear")
    assert np.allclose(out[:, 0, 0, 0], np.interp(grid, times, frames[:, 0, 0, 0]), atol=1e-4)
    tensor_out, _ = resample_by_time(torch.from_numpy(index_frames(30)), times, rate=25)
    numpy_out, _ = resample_by_time(index_frames(30), times, rate=25)
    assert isinstance(tensor_out, torch.Tensor) and np.array_equal(tensor_out.numpy(), numpy_out)


def test_align_to_times_upsamples_by_timestamp_with_gradients():
    """Features at 24 per second looked up at the audio latent times k / 25: index floor(k 24 / 25);
    gradients reach the looked-up features."""
    feats = torch.randn(48, 5, requires_grad=True)
    targets = np.arange(50) / 25
    out = align_to_times(feats, frame_times(48, 24), targets)
    idx = [int(np.floor(k * 24 / 25 + 1e-9)) for k in range(50)]
    assert torch.equal(out, feats.detach()[idx])
    out.sum().backward()
    assert feats.grad.sum().item() == pytest.approx(50 * 5)
    assert np.array_equal(align_to_times(np.arange(3), [0.5, 1.0, 2.0], [0.0, 0.99, 1.0, 5.0]), [0, 0, 1, 2])


# ---------------------------------------------------------------------------------------------
# visual.py: CLIP-V
@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    enc = CLIPFrameEncoder.from_config(tiny_clip_vision_config(), with_projection=True, seed=0)
    folder = tmp_path_factory.mktemp("clip") / "clip_vision"
    enc.save_pretrained(folder)
    return enc, folder


def random_frames(n: int, h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def test_clip_round_trip_and_shapes(clip_folder):
    enc, folder = clip_folder
    loaded = CLIPFrameEncoder.from_pretrained(folder)
    frames = random_frames(5)
    pooled, tokens = loaded.encode(frames, tokens=True)
    assert loaded.with_projection and loaded.dim == 16 and pooled.shape == (5, 16)
    assert tokens.shape == (5, loaded.num_tokens, 32) and loaded.num_tokens == 17
    assert torch.allclose(pooled, enc.encode(frames), atol=1e-6)
    unit = loaded.encode(frames, normalize=True)
    assert torch.allclose(unit.norm(dim=-1), torch.ones(5), atol=1e-5)


def test_clip_batch_equals_single(clip_folder):
    enc, _ = clip_folder
    frames = random_frames(6, seed=1)
    batch = enc.encode(frames, batch_size=6)
    singles = torch.cat([enc.encode(frames[i:i + 1]) for i in range(6)])
    assert torch.allclose(batch, singles, atol=1e-5)


def test_clip_default_processor_when_folder_has_none(clip_folder, tmp_path):
    """Without preprocessor_config.json the processor comes from the model's image size with CLIP's
    constants: here the same as the saved one, so the same features."""
    enc, folder = clip_folder
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((folder / name).read_bytes())
    loaded = CLIPFrameEncoder.from_pretrained(bare)
    frames = random_frames(3, seed=2)
    assert loaded.pixel_values(frames).shape == (3, 3, 32, 32)
    assert torch.allclose(loaded.encode(frames), enc.encode(frames), atol=1e-6)


def test_clip_vision_model_without_projection_and_full_clip_folder(tmp_path):
    """A CLIPVisionModel folder gives pooled hidden states (dim = hidden); a full CLIPModel folder gives its
    image embeddings, equal to CLIPModel.get_image_features."""
    from transformers import CLIPConfig, CLIPModel

    plain = CLIPFrameEncoder.from_config(tiny_clip_vision_config(), with_projection=False)
    plain.save_pretrained(tmp_path / "plain")
    loaded = CLIPFrameEncoder.from_pretrained(tmp_path / "plain")
    assert not loaded.with_projection and loaded.dim == 32
    frames = random_frames(2, seed=3)
    assert torch.allclose(loaded.encode(frames), plain.encode(frames), atol=1e-6)
    with pytest.raises(ValueError) as e:
        CLIPFrameEncoder.from_pretrained(tmp_path / "plain", with_projection=True)
    assert "lacks" in one_line(e)

    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, vocab_size=99)
    full = CLIPModel(CLIPConfig(vision_config=tiny_clip_vision_config().to_dict(), text_config=text,
                                projection_dim=24)).eval()
    full.save_pretrained(tmp_path / "full")
    enc = CLIPFrameEncoder.from_pretrained(tmp_path / "full")
    pixels = enc.pixel_values(frames)
    with torch.no_grad():
        want = full.get_image_features(pixel_values=pixels)
    want = getattr(want, "pooler_output", want)  # a tensor in transformers 4, an output object in 5
    assert enc.dim == 24 and torch.allclose(enc.encode(frames), want, atol=1e-5)


def test_clip_refuses_other_folders(tmp_path, clip_folder):
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError) as e:
        CLIPFrameEncoder.from_pretrained(tmp_path / "bert")
    assert "not a CLIP vision model" in one_line(e)
    with pytest.raises(FileNotFoundError) as e:
        CLIPFrameEncoder.from_pretrained(tmp_path / "missing")
    one_line(e)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError) as e:
        CLIPFrameEncoder.from_pretrained(tmp_path / "empty")
    assert "config.json" in one_line(e)
    with pytest.raises(ValueError) as e:
        clip_folder[0].encode(np.zeros((2, 8, 8, 3), np.float32))
    assert "uint8" in one_line(e)


def test_clip_encode_video_on_its_time_grid(clip_folder):
    """2 s at 30 fps -> 16 features at k / 8, each the features of the frame showing then."""
    enc, _ = clip_folder
    frames = random_frames(60, h=24, w=30, seed=4)
    feats, times = enc.encode_video(frames, frame_times(60, 30))
    assert feats.shape == (16, 16) and np.allclose(times, np.arange(16) / 8)
    idx = [int(np.floor(k * 30 / 8 + 1e-9)) for k in range(16)]
    assert torch.allclose(feats, enc.encode(frames[idx]), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# sync.py: the interface and the small trainable encoder
def render(times, x_of_t, size: int = 32, side: int = 6) -> np.ndarray:
    """(N, size, size, 3) uint8: a white square of `side` px, left edge at x_of_t(t) px, on black."""
    frames = np.zeros((len(times), size, size, 3), np.uint8)
    for i, t in enumerate(times):
        x = int(round(x_of_t(t)))
        frames[i, size // 2 - side // 2: size // 2 + side // 2, max(x, 0): max(x + side, 0)] = 255
    return frames


def moving(t):
    return 2 + 12 * t  # 12 px per second, left to right


@pytest.fixture(scope="module")
def small():
    return SmallSyncEncoder.from_config(SMALL, seed=0).eval()


@pytest.mark.parametrize("fps", [10, 16, 30])
def test_sync_features_same_count_and_times_at_any_fps(small, fps):
    """2 s clips of any size at 10 / 16 / 30 fps: 50 features at k / 25 each (the default config too)."""
    times = frame_times(2 * fps, fps)
    feats, ftimes = small.encode(render(times, moving, size=48), times)
    assert feats.shape == (50, SMALL.dim) and np.allclose(ftimes, np.arange(50) / 25)
    default = SmallSyncEncoder()
    feats, ftimes = default.encode(render(times, moving, size=40)[:, :, :30], times)
    assert feats.shape == (50, 128) and np.allclose(ftimes, np.arange(50) / 25)
    assert isinstance(small, SyncEncoder) and small.rate == 25.0


def test_sync_features_depend_on_timestamps_not_frame_counts(small):
    """The same scene rendered at 50 fps and at 25 fps: nearest-previous resampling picks the same pictures,
    so the features are the same."""
    t25, t50 = frame_times(50, 25), frame_times(100, 50)
    with torch.no_grad():
        a, _ = small.encode(render(t25, moving), t25)
        b, _ = small.encode(render(t50, moving), t50)
    assert torch.allclose(a, b, atol=1e-6)


def feature_change(small, x_a, x_b, times):
    with torch.no_grad():
        a, _ = small.encode(render(times, x_a), times)
        b, _ = small.encode(render(times, x_b), times)
    return (a - b).abs().amax(dim=1)  # (N,)


def test_motion_impulse_changes_features_only_within_the_receptive_field(small):
    """A square that jumps 8 px right at frames 24 and 25 (t = 0.96 s) and comes back: features k change
    exactly when frames [k - before, k + after] include frame 24 or 25 (before, after = 5, 4 frames at
    25 per second: 0.2 s and 0.16 s), and not elsewhere."""
    before, after = small.receptive_field()
    assert (before, after) == (5, 4)
    times = frame_times(50, 25)
    jump = lambda t: 10 + (8 if 24 <= round(t * 25) <= 25 else 0)
    change = feature_change(small, lambda t: 10, jump, times)
    inside = np.arange(24 - after, 25 + before + 1)
    outside = np.setdiff1d(np.arange(50), inside)
    assert change[outside].max().item() < 1e-6
    assert change[inside].min().item() > 1e-6 and change[24].item() > 100 * max(change[outside].max().item(), 1e-9)


def test_direction_change_at_tau_is_seen_from_tau_minus_the_lookahead(small):
    """Two squares identical up to tau = 1 s (frame 25); then one reverses. Features before 25 + 1 - after
    are the same, the ones from the first differing frame onward differ."""
    _, after = small.receptive_field()
    times = frame_times(50, 25)
    reverse = lambda t: moving(min(t, 1.0)) - 12 * max(t - 1.0, 0.0)
    change = feature_change(small, moving, reverse, times)
    first = 26  # frame 25 is at tau itself, identical; frame 26 is the first that differs
    assert change[: first - after].max().item() < 1e-6
    assert change[first:].min().item() > 1e-6


def test_sync_save_load_round_trip_and_errors(small, tmp_path):
    small.save_pretrained(tmp_path / "sync")
    config = json.loads((tmp_path / "sync" / "config.json").read_text())
    assert config["_class_name"] == "SmallSyncEncoder" and config["channels"] == [8, 16, 16]
    loaded = SmallSyncEncoder.from_pretrained(tmp_path / "sync")
    times = frame_times(40, 20)
    frames = render(times, moving)
    with torch.no_grad():
        assert torch.equal(loaded.encode(frames, times)[0], small.encode(frames, times)[0])
    with pytest.raises(FileNotFoundError) as e:
        SmallSyncEncoder.from_pretrained(tmp_path / "none")
    one_line(e)
    config["dim"] = 8
    (tmp_path / "sync" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as e:
        SmallSyncEncoder.from_pretrained(tmp_path / "sync")
    assert "does not fit" in one_line(e)
    config["_class_name"] = "Other"
    (tmp_path / "sync" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as e:
        SmallSyncEncoder.from_pretrained(tmp_path / "sync")
    assert "not a SmallSyncEncoder folder" in one_line(e)


def test_sync_config_checks():
    for bad, words in [({"kernel": 4}, "odd"), ({"size": 30}, "multiple"), ({"channels": []}, "channels"),
                       ({"grey": 1}, "grey"), ({"rate": 0}, "rate")]:
        with pytest.raises(ValueError) as e:
            SmallSyncConfig(**bad)
        assert words in one_line(e)
    with pytest.raises(ValueError) as e:
        SmallSyncConfig.from_dict({"widht": 3})
    assert "widht" in one_line(e)
    state = torch.random.get_rng_state()
    a, b = (SmallSyncEncoder.from_config(SMALL.__dict__, seed=3).state_dict() for _ in range(2))
    assert all(torch.equal(a[k], b[k]) for k in a) and torch.equal(state, torch.random.get_rng_state())
    grey = SmallSyncEncoder(SmallSyncConfig(size=16, channels=(4, 8), width=8, dim=8, grey=True))
    feats, _ = grey.encode(render(frame_times(10, 10), moving), frame_times(10, 10))
    assert feats.shape == (25, 8)


def test_sync_encoder_trains(small):
    """Differentiable end to end: every weight gets a gradient, and 40 Adam steps on one clip teach a linear
    read-out to mark the frames where the square reverses (the loss falls to under a third)."""
    enc = SmallSyncEncoder.from_config(SMALL, seed=0)
    head = torch.nn.Linear(SMALL.dim, 1)
    times = frame_times(50, 25)
    bounce = lambda t: moving(min(t, 1.0)) - 12 * max(t - 1.0, 0.0)
    x, _ = enc.prepare(render(times, bounce), times)
    target = torch.zeros(1, 50)
    target[0, 25:28] = 1.0
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=3e-3)
    losses = []
    for step in range(40):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(enc(x[None]))[..., 0], target)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 3


def test_segments_to_timeline_averages_overlaps():
    """Synchformer's layout (25 fps, 16-frame segments every 8 frames, 8 tokens of 2 frames): 24 segments of
    8 s give 100 slots at 2 g / 25 s; a token valued by its slot comes back as that value, and gradients
    split over the two tokens of an overlapped slot."""
    s, t = 24, 8
    slot = torch.arange(s)[:, None] * 4 + torch.arange(t)[None]  # (S, T)
    tokens = slot[..., None].float().repeat(1, 1, 3).requires_grad_(True)
    feats, times = segments_to_timeline(tokens, fps=25, step=8, frames_per_token=2)
    assert feats.shape == (100, 3) and torch.equal(feats[:, 0], torch.arange(100).float())
    assert np.allclose(times, np.arange(100) * 2 / 25)
    feats.sum().backward()
    assert tokens.grad[0, 0, 0].item() == 1.0 and tokens.grad[0, 4, 0].item() == 0.5
    with pytest.raises(ValueError) as e:
        segments_to_timeline(tokens.detach(), fps=25, step=32, frames_per_token=2)
    assert "gaps" in one_line(e)


def test_a_plugged_in_encoder_satisfies_the_interface():
    """Anything with dim, rate and encode(frames, times, ...) is a SyncEncoder; an object without is not."""

    class Constant:
        dim, rate = 4, 10.0

        def encode(self, frames, times, duration=None, max_seconds=None):
            grid, grid_times = resample_by_time(frames, times, self.rate, duration, max_seconds=max_seconds)
            return torch.zeros(len(grid), self.dim), grid_times

    assert isinstance(Constant(), SyncEncoder) and not isinstance(object(), SyncEncoder)
    feats, times = Constant().encode(index_frames(16), frame_times(16, 16))
    assert feats.shape == (10, 4) and np.allclose(times, np.arange(10) / 10)
