"""The V2A pipeline's voicing gate (pipeline/v2a_gate.py): its gain on known voicing curves, its checks, and the
bundled model: a still video's soundtrack is silenced whole, a moving one's is left as it was."""
import numpy as np
import pytest
import torch

from lumina_video.pipeline.v2a import LuminaV2APipeline
from lumina_video.pipeline.v2a_gate import check_gate, gate_gain

RATE = 25.0
TIMES = np.arange(20) / RATE  # 20 sync frames, 0 .. 0.76 s


def test_gain_opens_around_voiced_frames_with_a_one_frame_ramp():
    v = torch.zeros(1, 20)
    v[0, 10] = 0.9  # one voiced frame at 0.4 s
    gain = gate_gain(v, TIMES, 0.5, samples=16000, sample_rate=20000, hold=0.08)[0]  # 0 .. 0.8 s
    t = np.arange(16000) / 20000
    # open from frame 8 (0.32 s) to frame 12 (0.48 s): 0.08 s either side; ramps over the frame before and after
    assert np.all(gain[(t >= 0.32) & (t <= 0.48)] == 1)
    assert np.all(gain[t <= 0.28] == 0) and np.all(gain[(t >= 0.52) & (t <= 0.76)] == 0)
    assert gain[np.searchsorted(t, 0.30)] == pytest.approx(0.5, abs=1e-3)  # halfway up the 40 ms ramp
    assert gain[np.searchsorted(t, 0.50)] == pytest.approx(0.5, abs=1e-3)
    assert np.all(gain[t > 0.76] == 0)  # held after the last frame


def test_gain_is_all_or_nothing_for_clips_on_one_side_and_a_short_dip_does_not_close_it():
    quiet = gate_gain(torch.full((1, 20), 0.2), TIMES, 0.5, 800, 1000)
    loud = gate_gain(torch.full((1, 20), 0.99), TIMES, 0.5, 800, 1000)
    assert quiet.dtype == np.float32 and quiet.shape == (1, 800)
    assert np.all(quiet == 0) and np.all(loud == 1)
    dip = torch.full((2, 20), 0.99)
    dip[0, 5:8] = 0.01  # 120 ms below the threshold: inside the 0.25 s hold
    dip[1, 2:18] = 0.01  # 640 ms: closes in the middle
    gain = gate_gain(dip, TIMES, 0.5, 800, 1000)
    assert np.all(gain[0] == 1)
    assert gain[1, 400] == 0 and gain[1, 0] == 1 and gain[1, 790] == 1


def test_check_gate_names_what_is_accepted():
    assert check_gate(0) == 0.0 and check_gate(0.5) == 0.5
    for bad in (-0.1, 1, 1.5, "0.5", None, float("nan")):
        with pytest.raises(ValueError, match=r"voicing_gate must be a number in \[0, 1\)"):
            check_gate(bad)


@pytest.fixture(scope="module")
def pipe():
    return LuminaV2APipeline.from_pretrained()  # the bundled model: it has the harmonic head


def _sliding(n: int = 24, size: int = 128, still: bool = False) -> np.ndarray:
    """(n, size, size, 3) uint8: a red square on grey, sliding right by 3 px a frame (or still)."""
    frames = np.full((n, size, size, 3), 128, np.uint8)
    for i in range(n):
        x = 20 + (0 if still else 3 * i)
        frames[i, 50:80, x:x + 30] = (220, 30, 30)
    return frames


def test_bundled_model_gates_a_still_video_to_silence_and_leaves_a_moving_one(pipe):
    assert pipe.defaults["voicing_gate"] == 0.5
    kw = dict(fps=16, seed=3, num_inference_steps=4, progress=False)
    for still in (True, False):
        video = _sliding(still=still)
        gated = pipe(video, **kw)
        raw = pipe(video, voicing_gate=0, **kw)
        assert raw.gated is None and gated.audio.shape == raw.audio.shape == (1, 24000)
        if still:
            assert gated.gated == [1.0] and not gated.audio.any()
        else:
            assert gated.gated == [0.0]
            np.testing.assert_array_equal(gated.audio, raw.audio)
    with pytest.raises(ValueError, match="voicing_gate"):
        pipe(_sliding(), voicing_gate=2, **kw)
