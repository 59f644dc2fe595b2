"""Attribute checks recover the synthetic generator's ground truth from pixels."""
import numpy as np
import pytest

from lumina_video.data.manifest import read_manifest
from lumina_video.data.synthetic import make_dataset, render_clip
from lumina_video.data.video_io import read_video
from lumina_video.eval import attributes as A


@pytest.fixture(scope="module")
def synthetic_checks(tmp_path_factory):
    """Attribute checks of 60 ground-truth clips, through an H.264 round trip (make_dataset, read_video)."""
    out = tmp_path_factory.mktemp("synth")
    records = read_manifest(make_dataset(out, n=60, size=64, frames=16, fps=8, seed=3, image_fraction=0.0,
                                         static_fraction=0.2))
    return [A.check_attributes(read_video(r["path"])[0], r) for r in records]


def test_ground_truth_clips_reach_95_percent(synthetic_checks):
    summary = A.summarize_checks(synthetic_checks)
    assert summary["n"] == 60
    assert summary["checked"]["direction"] == summary["checked"]["speed"] > 30  # the moving ones
    for name in ("color", "direction", "speed", "motion"):
        assert summary["accuracy"][name] >= 0.95, (name, summary)
    assert summary["accuracy"]["shape"] >= 0.9
    assert summary["spearman_motion"] > 0.9


def test_measured_speed_matches_requested(synthetic_checks):
    moving = [c for c in synthetic_checks if c["expected"]["direction"]]
    err = [abs(c["measured"]["speed_px"] - c["requested_speed_px"]) for c in moving]
    assert np.median(err) < 0.05


def test_scaled_frame_and_speed_words():
    # 128 px frames: the vocabulary's speeds double; "quickly" = 4 px/frame, moving left.
    attrs = {"background": "white", "textured": True, "color": "blue", "shape": "square", "direction": "left",
             "speed": "quickly", "speed_px": 4.0, "object_size": 30, "start_x": 100.0, "start_y": 60.0}
    m = A.measure_attributes(render_clip(attrs, size=128, frames=12, seed=1))
    assert (m["color"], m["shape"], m["direction"], m["speed"]) == ("blue", "square", "left", "quickly")
    assert m["velocity"] == pytest.approx([-4.0, 0.0], abs=0.05)
    assert A.requested_speed_px({"direction": "up", "speed": "slowly"}, 128, 128) == 1.0


def test_still_object_and_empty_clip():
    attrs = {"background": "black", "textured": False, "color": "red", "shape": "circle", "direction": None,
             "speed": None, "speed_px": 0.0, "object_size": 16, "start_x": 30.0, "start_y": 30.0}
    check = A.check_attributes(render_clip(attrs, frames=8), A.expected_from_prompt("a red circle staying still"))
    assert check["measured"]["moving"] is False and check["measured"]["speed_px"] < 0.05
    assert check["correct"] == {"color": True, "shape": True, "motion": True, "direction": None, "speed": None}
    empty = np.full((8, 64, 64, 3), 110, np.uint8)  # nothing but background
    check = A.check_attributes(empty, A.expected_from_prompt("a red circle moving up"))
    assert check["measured"]["color"] is None and check["measured"]["frames_with_object"] == 0
    assert not any(check["correct"].values())


def test_prompts_outside_the_vocabulary_and_with_two_objects():
    assert A.expected_from_prompt("a cat playing piano") is None
    assert A.expected_from_prompt("An orange square moving up")["color"] == "orange"
    assert A.objects_in_prompt("a red circle moving up and a blue square staying still") == 2
    assert A.objects_in_prompt("a red circle moving up quickly on a gray background") == 1


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, 40).astype(float)  # many ties, like requested speeds
    b = a + rng.normal(0, 0.7, 40)
    assert A.spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)
    assert A.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert A.spearman([1, 1, 1], [1, 2, 3]) is None
    assert list(A.rank([10, 20, 20, 5])) == [2.0, 3.5, 3.5, 1.0]


def test_speed_is_checked_only_when_the_prompt_names_one():
    from lumina_video.data.synthetic import render_clip
    from lumina_video.eval.attributes import check_attributes, expected_from_prompt

    attrs = dict(background="black", textured=False, color="red", shape="square", direction="right",
                 speed_px=2.0, object_size=20, start_x=15, start_y=32)
    frames = render_clip(attrs, size=64, frames=12)
    unnamed = check_attributes(frames, expected_from_prompt("a red square moving to the right"))
    named = check_attributes(frames, expected_from_prompt("a red square moving to the right quickly"))
    assert unnamed["correct"]["speed"] is None and unnamed["correct"]["direction"] is True
    assert named["correct"]["speed"] is True
