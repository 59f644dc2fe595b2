"""`evaluate` / `lumina-video eval`: reports every number, survives bad videos."""
import json

import numpy as np
import pytest

from lumina_video.cli import main
from lumina_video.data.synthetic import render_clip
from lumina_video.data.video_io import write_video
from lumina_video.eval.run import evaluate, load_prompts

FAST = {"background": "gray", "textured": False, "color": "orange", "shape": "square", "direction": "right",
        "speed": "quickly", "speed_px": 2.0, "object_size": 14, "start_x": 10.0, "start_y": 30.0}
STILL = {"background": "black", "textured": True, "color": "purple", "shape": "triangle", "direction": None,
         "speed": None, "speed_px": 0.0, "object_size": 18, "start_x": 32.0, "start_y": 30.0}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    paths = {"fast": d / "fast.mp4", "still": d / "still.mp4", "one_frame": d / "one_frame.mp4",
             "garbage": d / "garbage.mp4", "empty": d / "empty.mp4", "missing": d / "missing.mp4"}
    write_video(paths["fast"], render_clip(FAST, frames=16), fps=8)
    write_video(paths["still"], render_clip(STILL, frames=16, seed=2), fps=8)
    write_video(paths["one_frame"], render_clip(STILL, frames=1), fps=8)
    paths["garbage"].write_bytes(b"this is not a video" * 100)
    paths["empty"].write_bytes(b"")
    return {k: str(v) for k, v in paths.items()}


def test_bad_videos_are_reported_and_the_rest_scored(videos, tmp_path):
    order = ["garbage", "fast", "empty", "missing", "still", "one_frame"]
    prompts = ["a red circle moving up", "an orange square moving to the right quickly", "x", "y",
               "a purple triangle staying still", "a purple triangle staying still"]
    report = evaluate([videos[k] for k in order], prompts, out_dir=tmp_path / "rep", progress=False)
    by_name = {k: e for k, e in zip(order, report["videos"])}
    assert report["counts"] == {"videos": 6, "scored": 2, "failed": 4, "skipped": 0}
    for bad in ("garbage", "empty", "missing", "one_frame"):
        assert by_name[bad]["error"], bad
    assert "unreadable" in by_name["missing"]["error"] and "no such" in by_name["missing"]["error"]
    assert "unreadable" in by_name["garbage"]["error"] and "empty" in by_name["empty"]["error"]
    assert "cannot score" in by_name["one_frame"]["error"] and "at least 3 frames" in by_name["one_frame"]["error"]

    fast, still = by_name["fast"], by_name["still"]
    assert fast["scores"]["dynamic_degree"] is True and still["scores"]["dynamic_degree"] is False
    assert report["dimensions"]["dynamic_degree"] == 0.5  # one of the two scored videos
    for d in ("temporal_flickering", "motion_smoothness", "subject_consistency", "background_consistency"):
        assert 0.95 < report["dimensions"][d] <= 1.0
        assert report["dimensions"][d] == pytest.approx((fast["scores"][d] + still["scores"][d]) / 2)
    assert fast["attributes"]["correct"] == {"color": True, "shape": True, "motion": True, "direction": True,
                                             "speed": True}
    assert report["attributes"]["n"] == 2 and report["attributes"]["accuracy"]["color"] == 1.0
    assert report["vbench"]["total"] is None and "aesthetic quality" in report["vbench"]["missing"]

    # the files: every per-video number in the JSON, the failures in the Markdown, two charts
    saved = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert saved["videos"][1]["scores"] == pytest.approx(fast["scores"])
    assert saved["videos"][1]["dynamic_degree"]["pair_scores"] == pytest.approx(fast["dynamic_degree"]["pair_scores"])
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Not scored (4)" in md and "garbage.mp4" in md and "| fast.mp4 |" in md
    for png in ("dimensions.png", "motion.png"):
        assert (tmp_path / "rep" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_with_prompts_file(videos, tmp_path, capsys):
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"fast.mp4": "an orange square moving to the right quickly"}))
    rc = main(["eval", videos["fast"], videos["still"], "--prompts", str(prompts), "--out", str(tmp_path / "r"),
               "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "scored 2 of 2 videos" in out
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["videos"][1]["attributes"] is None and report["videos"][1]["attributes_skipped"] == "no prompt"
    assert report["attributes"]["n"] == 1


def test_prompt_file_errors(tmp_path, videos):
    txt = tmp_path / "p.txt"
    txt.write_text("one prompt\n")
    with pytest.raises(ValueError, match="1 prompts for 2 videos"):
        load_prompts(txt, [videos["fast"], videos["still"]])
    with pytest.raises(FileNotFoundError):
        load_prompts(tmp_path / "nope.txt", [videos["fast"]])
    assert main(["eval", "--out", str(tmp_path / "r")]) == 2  # nothing to evaluate: clear error, no traceback


def test_manifest_input(tmp_path):
    from lumina_video.data.synthetic import make_dataset

    manifest = make_dataset(tmp_path / "synth", n=6, image_fraction=0.34, static_fraction=0.0, seed=1)
    report = evaluate(manifest=manifest, progress=False)
    n_images = report["counts"]["skipped"]
    assert n_images >= 1 and report["counts"]["videos"] == 6 - n_images == report["counts"]["scored"]
    assert all(s["reason"] == "still image, not a video" for s in report["skipped"])
    assert report["attributes"]["n"] == report["counts"]["scored"]
    with pytest.raises(ValueError, match="not both"):
        evaluate(manifest=manifest, prompts=["x"], progress=False)


def test_static_and_fast_clip_agree_with_ground_truth_motion(videos):
    # dynamic degree's per-pair statistic is the object's displacement for the fast clip
    report = evaluate([videos["fast"]], progress=False)
    assert np.median(report["videos"][0]["dynamic_degree"]["pair_scores"]) == pytest.approx(2.0, abs=0.25)


def test_cli_exit_status_tells_scripts_about_failures(videos, tmp_path, capsys):
    """3 of 4 videos cannot be scored: exit 1 (the report is still written); --allow-failures: 0 when
    any video was scored; none scored: 1 either way."""
    some = [videos["fast"], videos["garbage"], videos["empty"], videos["missing"]]
    assert main(["eval", *some, "--out", str(tmp_path / "a"), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "scored 1 of 4 videos (3 failed)" in captured.out and (tmp_path / "a" / "report.json").is_file()
    assert "3 of 4 videos could not be scored" in captured.err and "exit status 1" in captured.err
    assert main(["eval", *some, "--out", str(tmp_path / "b"), "--no-progress", "--allow-failures"]) == 0
    assert main(["eval", videos["garbage"], "--out", str(tmp_path / "c"), "--no-progress", "--allow-failures"]) == 1
