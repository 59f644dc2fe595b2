"""`lumina-video eval-audio-prompts` (eval/audio_prompts.py, audio_prompts_report.py) and eval-audio's
spectrogram figure (eval/audio_figures.py): the prompt set, the checks on sound rendered by the synthetic AV
dataset (known answers), the tallies, the command end to end on tiny random pipelines."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lumina_video.cli import main
from lumina_video.data import synthetic_av, vocab
from lumina_video.eval import audio_prompts as ap
from lumina_video.eval.audio_prompts_report import summarize, tally
from lumina_video.eval.audio_run import evaluate_audio, spectrum_clips


def spread(counter: Counter, keys) -> int:
    values = [counter[k] for k in keys]
    return max(values) - min(values)


def test_prompt_set_is_balanced_and_parses_back():
    for n in (1, 4, 7, 8, 18, 25, 40, 61):
        prompts = ap.prompt_set(n)
        assert len(prompts) == n
        assert spread(Counter(p["color"] for p in prompts), vocab.COLORS) <= 1
        assert spread(Counter(p["shape"] for p in prompts), vocab.SHAPES) <= 1
        still = sum(p["direction"] is None for p in prompts)
        assert 4 * still >= n
        if n - still >= len(vocab.DIRECTIONS):
            assert spread(Counter(p["direction"] for p in prompts if p["direction"]), vocab.DIRECTIONS) <= 1
        for p in prompts:
            parsed = vocab.parse_caption(p["prompt"])
            assert (parsed["color"], parsed["shape"], parsed["direction"]) == (p["color"], p["shape"], p["direction"])
            assert parsed["speed"] is None and parsed["background"] is None
    forty = ap.prompt_set(40)
    assert sum(p["direction"] is None for p in forty) == 10
    assert {p["color"] for p in forty if p["direction"] is None} == set(vocab.COLORS)  # still prompts of every colour
    assert len({(p["color"], p["shape"]) for p in forty}) == 18
    assert ap.prompt_set(8) == forty[:8]  # a prefix of a larger set
    with pytest.raises(ValueError):
        ap.prompt_set(0)


def synth_av_clip(motion: str) -> tuple[dict, np.ndarray]:
    """The first one-object synth-av clip (seed 0, 64 px, 1 s) of `motion`: its record and exact sound."""
    for i in range(200):
        record, wave = synthetic_av.build_item(0, i, 64, 16, (16, 16), 0.5, 0.0, set())
        if record["objects"][0]["motion"] == motion:
            return record, wave
    raise AssertionError(f"no {motion} clip")


def test_checks_on_the_datasets_own_sound():
    """A synth-av clip's rendered sound passes the pitch check of its own caption's colour and fails another's;
    a still clip's sound is silent, a moving one's is not."""
    record, wave = synth_av_clip("slide")
    parsed = vocab.parse_caption(record["caption"])
    prompt = {"color": parsed["color"], "shape": parsed["shape"], "direction": parsed["direction"]}
    own = ap.score_soundtrack(wave, prompt, 64)
    assert own["pitch"] is True and own["timbre"] is True and own["silence"] is None
    other = next(c for c in vocab.COLORS if abs(np.log2(ap.sound.NOTES[c] / ap.sound.NOTES[prompt["color"]])) > 0.1)
    wrong = ap.score_soundtrack(wave, {**prompt, "color": other}, 64)
    assert wrong["pitch"] is False and abs(wrong["notes"]["cents"]) > 150

    still_record, still_wave = synth_av_clip("still")
    parsed_still = vocab.parse_caption(still_record["caption"])
    still = {k: parsed_still[k] for k in ("color", "shape", "direction")}
    assert ap.score_soundtrack(still_wave, still, 64)["silence"] is True
    loud = ap.score_soundtrack(wave, still, 64)
    assert loud["silence"] is False and loud["pitch"] is None and loud["levels"]["max_dbfs"] > -40
    # the command's ceiling renders the prompt's sound the same way
    assert ap.score_soundtrack(ap.reference_sound(prompt, 64, 1.0, 0), prompt, 64)["pitch"] is True


def test_tallies_known_counts():
    assert tally([True, False, None, True]) == {"n": 3, "passed": 2, "rate": 2 / 3}
    assert tally([None]) == {"n": 0, "passed": 0, "rate": None}

    def row(colour, direction, pitch, silent, video_colour):
        checks = {"pitch": pitch, "timbre": None if pitch is None else True, "silence": silent, "notes": None}
        return {"color": colour, "direction": direction, "same_colour": False, "video": {"color": video_colour,
                "motion": True}, "scores": {"value": checks, "ceiling": checks, "shuffled": None}}

    rows = [row("red", "up", True, None, True), row("red", "left", False, None, False),
            row("blue", None, None, True, True), row("blue", "down", True, None, True)]
    s = summarize(rows, ("value", "ceiling", "shuffled"))
    assert (s["moving"], s["still"]) == (3, 1)
    assert s["checks"]["value"]["pitch"] == {"n": 3, "passed": 2, "rate": 2 / 3}
    assert s["checks"]["value"]["silence"] == {"n": 1, "passed": 1, "rate": 1.0}
    assert s["checks"]["shuffled"]["pitch"]["n"] == 0
    assert s["pitch_video_colour_right"] == {"n": 2, "passed": 2, "rate": 1.0}
    assert s["by_colour"]["red"]["value"]["pitch"]["passed"] == 1 and s["by_colour"]["red"]["video_color"]["n"] == 2
    assert set(s["by_colour"]) == {"red", "blue"}


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    from lumina_video.testing import make_tiny_pipeline
    from lumina_video.testing_v2a import make_tiny_v2a_pipeline

    root = tmp_path_factory.mktemp("pipes")
    make_tiny_pipeline(root / "t2v", seed=0)
    make_tiny_v2a_pipeline(root / "v2a", seed=0, vocoder="griffin-lim")
    return root / "t2v", root / "v2a"


def test_command_end_to_end_on_tiny_pipelines(tiny_folders, tmp_path, capsys, single_thread):
    t2v, v2a = tiny_folders
    out = tmp_path / "r"
    rc = main(["eval-audio-prompts", "--v2a", str(v2a), "--model", str(t2v), "--out", str(out), "--n", "5",
               "--steps", "2", "--v2a-steps", "2", "--device", "cpu", "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "5 prompts (3 moving, 2 still)" in text and "report:" in text
    rep = json.loads((out / "report.json").read_text())
    assert [p["prompt"] for p in rep["prompts"]] == [p["prompt"] for p in ap.prompt_set(5)]
    assert [p["seed"] for p in rep["prompts"]] == [0, 1, 2, 3, 4]
    assert sorted(p["shuffled_from"] for p in rep["prompts"]) == list(range(5))
    assert all(p["shuffled_from"] != k for k, p in enumerate(rep["prompts"]))
    ceiling = rep["summary"]["checks"]["ceiling"]
    assert ceiling["pitch"] == {"n": 3, "passed": 3, "rate": 1.0} and ceiling["silence"]["rate"] == 1.0
    assert rep["settings"]["clip"] == {"frames": 8, "fps": 8.0, "seconds": 1.0, "height": 32, "width": 32}
    from lumina_video.audio.media import read_audio

    clip = read_audio(out / rep["prompts"][0]["video_file"])  # the mp4 carries the soundtrack
    assert abs(len(clip.wave) - 16000) < 2048
    md = (out / "report.md").read_text()
    assert "| pitch | moving prompts" in md and "## Per colour" in md and "a red circle staying still" in md


def test_clip_length_is_checked_against_the_v2a_limit(tiny_folders):
    from lumina_video.pipeline import LuminaVideoPipeline
    from lumina_video.pipeline.v2a import LuminaV2APipeline

    t2v, v2a = LuminaVideoPipeline.from_pretrained(tiny_folders[0]), LuminaV2APipeline.from_pretrained(tiny_folders[1])
    assert ap.check_clip_length(t2v, v2a, None)["seconds"] == 1.0
    v2a.defaults["max_seconds"] = 0.5
    with pytest.raises(ValueError, match="8-frame clips at 8 fps do not fit the V2A pipeline: .*limit of 0.5 s"):
        ap.check_clip_length(t2v, v2a, None)


def test_eval_audio_writes_the_spectrogram_figure(tmp_path):
    manifest, _ = synthetic_av.make_dataset(tmp_path / "av", 3, size=64, seed=1, min_seconds=1.0, max_seconds=1.0,
                                            two_object_prob=0.0, still_prob=0.3)
    report = evaluate_audio([], manifest, out_dir=tmp_path / "report", progress=False)
    png = Path(report["files"]["spectrograms"])
    assert png.name == "spectrograms.png" and png.read_bytes()[:4] == b"\x89PNG"
    records = [json.loads(x) for x in manifest.read_text().splitlines()]
    pairs = [(r["path"], r) for r in records]
    audio = [{"wave": np.zeros(100), "truth": None} for _ in records]
    picked = spectrum_clips(pairs, audio, list(range(len(records))), n=2)
    with_impacts = [Path(r["path"]).stem for r in records if r["impacts"]]
    assert [c["name"] for c in picked][:len(with_impacts[:2])] == with_impacts[:2]
    assert set(picked[0]["waves"]) == {"input", "ground truth"}
