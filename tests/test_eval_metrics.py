"""VBench-style metrics on constructed clips with known answers."""
import numpy as np
import pytest

from lumina_video.eval import metrics as M

BG = (110, 110, 110)
GREEN = (30, 190, 50)


def disc_clip(positions, size=64, radius=8, colour=GREEN, bg=BG):
    """An anti-aliased disc at the given (x, y) centre per frame, on a plain background. (T, S, S, 3)"""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    frames = []
    for cx, cy in positions:
        a = np.clip(radius + 0.5 - np.hypot(xx - cx, yy - cy), 0, 1)[..., None]  # coverage
        frames.append(np.rint(a * np.array(colour) + (1 - a) * np.array(bg)))
    return np.stack(frames).astype(np.uint8)


def moving(speed, frames=16, x0=12.0, y=32.0, **kw):
    return disc_clip([(x0 + speed * t, y) for t in range(frames)], **kw)


# --- temporal flickering -------------------------------------------------------------------


def test_temporal_flickering_hand_computed():
    # Three 1x2 frames, all channels equal. |f1 - f0| = (4, 8) -> 6; |f2 - f1| = (10, 0) -> 5.
    # mean over pairs = 5.5 -> (255 - 5.5) / 255.
    values = [(0, 100), (4, 108), (14, 108)]
    frames = np.stack([np.repeat(np.array(v, np.uint8)[None, :, None], 3, axis=2) for v in values])
    assert frames.shape == (3, 1, 2, 3)
    assert M.temporal_flickering(frames) == pytest.approx((255 - 5.5) / 255, abs=1e-7)


def test_temporal_flickering_no_uint8_wraparound():
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    frames[1] = 255  # 0 - 255 must be 255, not 1
    assert M.temporal_flickering(frames) == pytest.approx(0.0)
    assert M.temporal_flickering(np.full((5, 4, 4, 3), 77, np.uint8)) == 1.0


@pytest.mark.parametrize("bad, msg", [
    (np.zeros((4, 8, 8, 3), np.float32), "uint8"),
    (np.zeros((4, 8, 8), np.uint8), "uint8 of shape"),
    (np.zeros((1, 8, 8, 3), np.uint8), "at least 2 frames"),
    ([[0]], "numpy array"),
])
def test_bad_frames_are_rejected(bad, msg):
    with pytest.raises(ValueError, match=msg):
        M.temporal_flickering(bad)


# --- dynamic degree ------------------------------------------------------------------------


def test_static_clip_is_not_dynamic_and_fast_clip_is():
    static = M.dynamic_degree(moving(0.0), fps=8)
    fast = M.dynamic_degree(moving(2.5), fps=8)
    assert static.threshold == pytest.approx(6 * 64 / 256)
    assert static.interval == 1 and static.pairs_needed == 4 and static.sampled_frames == 16
    assert not static.dynamic and max(static.pair_scores) < 0.05
    assert fast.dynamic and min(fast.pair_scores) > static.threshold


def test_top_flow_statistic_measures_the_translation():
    # The disc covers ~5% of the frame, so the top-5% mean is the disc's displacement.
    result = M.dynamic_degree(moving(2.0), fps=8)
    assert np.median(result.pair_scores) == pytest.approx(2.0, abs=0.2)


def test_frame_sampling_follows_fps():
    # 0.75 px/frame is below the 1.5 px threshold per frame, but at 24 fps VBench samples every
    # round(24 / 8) = 3rd frame, so a sampled pair moves 2.25 px.
    clip = moving(0.75, frames=24)
    at8, at24 = M.dynamic_degree(clip, fps=8), M.dynamic_degree(clip, fps=24)
    assert (at8.interval, at24.interval) == (1, 3)
    assert at24.sampled_frames == 8 and at24.pairs_needed == 2
    assert not at8.dynamic and at24.dynamic


@pytest.mark.parametrize("moving_pairs, dynamic", [(3, False), (4, True)])
def test_count_rule(moving_pairs, dynamic):
    # 16 frames need round(4 * 16 / 16) = 4 moving pairs; the disc jumps 3 px in the first pairs only.
    xs = [12.0 + 3 * min(t, moving_pairs) for t in range(16)]
    result = M.dynamic_degree(disc_clip([(x, 32.0) for x in xs]), fps=8)
    assert sum(s > result.threshold for s in result.pair_scores) == moving_pairs
    assert result.dynamic is dynamic


def test_dynamic_degree_needs_fps():
    with pytest.raises(ValueError, match="fps"):
        M.dynamic_degree(moving(1.0), fps=0)


# --- motion smoothness ---------------------------------------------------------------------


def test_smooth_motion_beats_shuffled_and_dropped_frames():
    clip = moving(1.5, frames=17)
    smooth = M.motion_smoothness(clip)
    shuffled = M.motion_smoothness(clip[np.random.default_rng(0).permutation(len(clip))])
    dropped = M.motion_smoothness(np.delete(clip, np.arange(2, len(clip), 3), axis=0))  # every 3rd frame gone
    assert smooth > 0.999  # a pure translation is rebuilt almost exactly
    assert smooth > dropped > shuffled


def test_midpoint_frame_of_a_translation():
    clip = moving(2.0, frames=3)
    grey = M.flow_channel(clip)
    mid = M.midpoint_frame(clip[0], clip[2], grey[0], grey[2])
    error = np.abs(mid.astype(int) - clip[1].astype(int)).mean()
    naive = (clip[0].astype(int) + clip[2].astype(int)) // 2  # a cross-fade is much worse
    assert error < 0.2 and np.abs(naive - clip[1].astype(int)).mean() > 5 * error


def test_flow_channel_keeps_colour_contrast():
    # Green on grey has little luminance contrast; the principal colour axis keeps it.
    grey = M.flow_channel(moving(0.0, frames=2)).astype(int)
    assert abs(grey[0, 32, 12] - grey[0, 2, 2]) > 100


# --- consistency proxies --------------------------------------------------------------------


def test_vbench_consistency_formula():
    # t=1: cos to previous 1, to first 1 -> 1; t=2: 0 and 0 -> 0; mean 0.5.
    assert M.vbench_consistency(np.array([[1.0, 0], [2.0, 0], [0, 3.0]])) == pytest.approx(0.5)
    # Negative cosines count as 0; t=1: (0 + 0)/2, t=2: cos(prev)=0, cos(first)=1 -> 0.5; mean 0.25.
    assert M.vbench_consistency(np.array([[1.0, 0], [-1.0, 0], [1.0, 0]])) == pytest.approx(0.25)
    assert M.vbench_consistency(np.ones((1, 4))) == 1.0


def test_subject_consistency_ignores_position_but_not_appearance():
    steady = moving(1.5)
    recoloured = steady.copy()
    red = moving(1.5, colour=(220, 30, 30))
    recoloured[8:] = red[8:]  # the subject turns red half-way
    assert M.subject_consistency(steady) > 0.99
    assert M.subject_consistency(recoloured) < M.subject_consistency(steady) - 0.02


def test_background_consistency_ignores_the_object_but_not_background_change():
    steady = moving(2.0)
    darkened = moving(2.0)
    darkened[8:] = moving(2.0, bg=(60, 60, 60))[8:]  # the background changes half-way
    assert M.background_consistency(steady) > 0.999
    assert M.background_consistency(darkened) < M.background_consistency(steady) - 0.01
