"""`lumina-video demo results` (lumina_video.demo.run) and lumina_video.demo.experiments: held-out
prompts, the experiment plan, the summaries and must-show checks on given numbers, ground-truth clips,
and a --quick run end to end on a random-weight tiny pipeline (its videos are noise: only plumbing and
shapes are checked)."""
import json

import numpy as np
import pytest

from lumina_video.cli import main as cli_main
from lumina_video.data import vocab
from lumina_video.data.synthetic import parse_pairs, stays_inside
from lumina_video.demo import experiments as demo
from lumina_video.demo import run
from lumina_video.demo.report import markdown_results, time_aware_text
from lumina_video.eval.run import DIMENSIONS

PAIRS = [("red", "triangle"), ("green", "circle"), ("blue", "square"), ("orange", "circle")]


# ---------------------------------------------------------------------------------------------
# Prompts and plan
# ---------------------------------------------------------------------------------------------


def test_heldout_prompts_cover_every_pair_and_motion_and_parse_back():
    assert parse_pairs(demo.HOLDOUT) == PAIRS  # the recipe's held-out pairs, written once
    prompts = demo.heldout_prompts(demo.HOLDOUT)
    assert len(prompts) == 4 * 5
    assert len({p["prompt"] for p in prompts}) == 20
    for pair in PAIRS:
        mine = [p for p in prompts if (p["color"], p["shape"]) == pair]
        assert len(mine) == 5 and {p["direction"] for p in mine} == set(demo.MOTIONS)
    for p in prompts:  # the attribute checker reads back what was asked
        parsed = vocab.parse_caption(p["prompt"])
        assert (parsed["color"], parsed["shape"], parsed["direction"]) == (p["color"], p["shape"], p["direction"])
    assert "an orange circle" in " ".join(p["prompt"] for p in prompts)
    first = prompts[:4]  # any prefix is spread: the first four are four pairs and four directions
    assert {(p["color"], p["shape"]) for p in first} == set(PAIRS)
    assert len({p["direction"] for p in first}) == 4
    assert demo.heldout_prompts(PAIRS) == prompts


def test_cli_prints_the_holdout_pairs_for_the_recipe(capsys):
    assert cli_main(["demo", "holdout"]) == 0
    assert capsys.readouterr().out == demo.HOLDOUT + "\n"


@pytest.mark.parametrize("bad", ["pink triangle", "red hexagon", "red", ""])
def test_heldout_prompts_reject_pairs_outside_the_vocabulary(bad):
    with pytest.raises(ValueError):
        demo.heldout_prompts(bad)


def test_motion_levels_and_pairs_follow_the_paper_scale():
    assert demo.motion_levels(8.0, 5) == [0.0, 2.0, 4.0, 6.0, 8.0]
    rows = demo.motion_pairs(8.0)
    assert [(r["label"], r["pos"], r["neg"], r["switch"]) for r in rows] == [
        ("4/4", 4, 4, None), ("8/8", 8, 8, None), ("4/2", 4, 2, None), ("8/2", 8, 2, None),
        ("4/2→4", 4, 2, 0.05), ("8/2→8", 8, 2, 0.05)]
    assert {r["label"] for r in rows} == set(demo.PAPER_TABLE3)
    small = demo.motion_pairs(2.0)  # a model trained on scores up to 2: everything x 1/4
    assert [(r["pos"], r["neg"]) for r in small] == [(1, 1), (2, 2), (1, 0.5), (2, 0.5), (1, 0.5), (2, 0.5)]
    with pytest.raises(ValueError):
        demo.motion_levels(0.0, 5)


def test_manifest_motion_max_is_a_quantile_of_video_scores():
    recs = [{"type": "video", "motion_score": float(v)} for v in range(101)]
    recs += [{"type": "image", "motion_score": 1000.0}, {"type": "video", "motion_score": None}]
    assert demo.manifest_motion_max(recs) == 95.0
    assert demo.manifest_motion_max(recs, 0.5) == 50.0
    with pytest.raises(ValueError, match="lumina-video motion"):
        demo.manifest_motion_max([{"type": "video"}])


def test_plan_interleaves_the_arms_and_sets_the_motion_knobs():
    prompts = demo.heldout_prompts(PAIRS)[:3]
    moving = [p for p in prompts if p["direction"]][:2]
    levels, pairs = [0.0, 4.0, 8.0], demo.motion_pairs(8.0)
    jobs = demo.plan_jobs(prompts, [0, 1], moving, [5], levels, pairs)
    held = [j for j in jobs if j.part == "heldout"]
    assert len(held) == 3 * 2 * 2
    assert [j.multiscale for j in held[:4]] == [True, False, True, False]
    assert all(j.overrides() == {"multiscale": j.multiscale} for j in held)
    sweep = [j for j in jobs if j.part == "sweep"]
    assert len(sweep) == 2 * 3 and all(j.seed == 5 for j in sweep)
    assert all(j.motion_score == j.negative_motion_score and j.negative_motion_switch == 1.0 for j in sweep)
    table = {j.label: j for j in jobs if j.part == "pairs"}
    row = table["8/2→8"]
    assert (row.motion_score, row.negative_motion_score, row.negative_motion_switch) == (8, 2, 0.05)
    assert table["4/2"].negative_motion_switch == 1.0


# ---------------------------------------------------------------------------------------------
# Summaries and must-show checks on given numbers
# ---------------------------------------------------------------------------------------------


def record(part, label, i, *, color=True, direction=True, speed=1.0, dynamic=False, denoise=1.0, motion=None,
           measured_motion=0.5):
    correct = {"color": color, "shape": True, "motion": True, "direction": direction, "speed": True}
    return {"part": part, "label": label, "prompt": f"prompt {i}", "seed": 0, "motion_score": motion, "error": None,
            "measured_motion": measured_motion,
            "timings": {"denoise_s": denoise}, "scores": {**{d: 0.9 for d in DIMENSIONS}, "dynamic_degree": dynamic},
            "attributes": {"correct": correct, "requested_speed_px": 0.0, "measured": {"speed_px": speed}}}


def records_for(color_ok=9, direction_ok=8, multi_time=0.25, single_colour_ok=None, sweep_sign=1.0, speed_sign=1.0):
    """10 held-out prompts x 2 arms, a 3-level sweep over 4 prompts, one ground-truth clip."""
    recs = []
    single_colour_ok = color_ok if single_colour_ok is None else single_colour_ok
    for i in range(10):
        recs.append(record("heldout", "multi", i, color=i < color_ok, direction=i < direction_ok, denoise=multi_time))
        recs.append(record("heldout", "single", i, color=i < single_colour_ok, direction=i < direction_ok, denoise=1.0))
    for i in range(4):
        for m in (0.0, 4.0, 8.0):
            recs.append(record("sweep", f"{m:g}", i, motion=m, speed=1.0 + speed_sign * m + 0.1 * i, dynamic=m >= 4,
                               measured_motion=4.0 + sweep_sign * 0.5 * m + 0.05 * i))
    recs.append(record("ground_truth", "", 0))
    return recs


def verdicts(recs, arm="multi"):
    return {c["name"]: c["passed"] for c in demo.must_show(demo.summarize(recs, arm, demo.motion_pairs(8.0)))}


def test_summary_numbers_from_known_records():
    s = demo.summarize(records_for(color_ok=9, direction_ok=8, multi_time=0.25), "multi", demo.motion_pairs(8.0))
    assert s["heldout"]["n"] == 10 and s["heldout"]["accuracy"]["color"] == 0.9
    assert s["heldout"]["accuracy"]["direction"] == 0.8
    assert s["ablation"]["time_ratio"] == 0.25 and s["ablation"]["time_ratio_median_pair"] == 0.25
    assert s["ablation"]["multi"]["denoise_s_total"] == 2.5
    assert s["ablation"]["accuracy_diff_points"] == {"color": 0.0, "shape": 0.0, "direction": 0.0}
    sw = s["sweep"]
    assert sw["n"] == 12 and [g["motion_score"] for g in sw["levels"]] == [0.0, 4.0, 8.0]
    assert [g["dynamic_degree"] for g in sw["levels"]] == [0.0, 1.0, 1.0]
    assert sw["levels"][1]["speed_mean"] == pytest.approx(5.15)
    assert sw["levels"][2]["motion_mean"] == pytest.approx(8.075) and sw["levels"][2]["motion_sd"] > 0
    for rho in (sw["spearman_motion"], sw["spearman_speed"]):
        assert rho["of_means"] == pytest.approx(1.0) and rho["per_prompt_median"] == pytest.approx(1.0)
        assert rho["per_prompt_n"] == 4
        assert 0.8 < rho["pooled"] < 1.0  # ties within a level: not perfect when pooled
    assert s["quality"]["n_generated"] == 10 and s["quality"]["n_ground_truth"] == 1
    assert all(r["n"] == 0 for r in s["pairs"])  # no Table 3 records given


def test_must_show_passes_on_the_thresholds_and_fails_beyond():
    assert verdicts(records_for()) == {k: True for k in demo.THRESHOLDS}
    assert verdicts(records_for(color_ok=8))["color_accuracy"] is False  # 80% < 90%
    assert verdicts(records_for(direction_ok=7))["direction_accuracy"] is False  # 70% < 80%
    assert verdicts(records_for(multi_time=0.5))["time_ratio"] is False  # 0.5 > 0.45
    assert verdicts(records_for(sweep_sign=-1.0))["motion_spearman"] is False  # more motion when asked for less
    # the claim reads the measured motion score, not the object's speed
    assert verdicts(records_for(speed_sign=-1.0))["motion_spearman"] is True
    gap = verdicts(records_for(color_ok=9, single_colour_ok=10))  # 10 points apart
    assert gap["accuracy_gap"] is False and gap["color_accuracy"] is True


def test_accuracy_gap_of_exactly_five_points_passes():
    recs = []
    for i in range(20):
        recs.append(record("heldout", "multi", i, color=i < 19))
        recs.append(record("heldout", "single", i, color=True))
    checks = {c["name"]: c for c in demo.must_show(demo.summarize(recs, "single", []))}
    assert checks["accuracy_gap"]["value"] == pytest.approx(5.0) and checks["accuracy_gap"]["passed"]
    assert checks["color_accuracy"]["value"] == 1.0  # the default arm here is single-scale
    assert checks["motion_spearman"]["value"] is None and not checks["motion_spearman"]["passed"]  # not measured


def test_errored_records_are_listed_and_left_out():
    recs = records_for()
    recs[0] = {**recs[0], "error": "cannot score: too short", "scores": None, "attributes": None}
    s = demo.summarize(recs, "multi", [])
    assert s["heldout"]["n"] == 9 and s["ablation"]["n"] == 9
    assert s["errors"] == [{"part": "heldout", "prompt": "prompt 0", "seed": 0, "error": "cannot score: too short"}]


def test_time_aware_text():
    assert time_aware_text(6.0) == "6"
    assert time_aware_text([2.0, [0.05, 6.0]]) == "2, 6 from t = 0.05"
    assert time_aware_text(["2x4", [0.03, "2x2"], [0.125, "1x2"]]) == "2x4, 2x2 from t = 0.03, 1x2 from t = 0.125"


# ---------------------------------------------------------------------------------------------
# Ground truth
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", [*vocab.DIRECTIONS, None])
def test_ground_truth_clips_pass_the_attribute_checks(direction):
    prompt = vocab.caption("blue", "square", direction)
    rec = demo.ground_truth_record(prompt, seed=3, height=64, width=64, frames=16, fps=8.0)
    assert all(v in (True, None) for v in rec["attributes"]["correct"].values()), rec["attributes"]
    want = 0.0 if direction is None else 1.0  # "steadily" = 1 px/frame at 64 px
    assert rec["attributes"]["measured"]["speed_px"] == pytest.approx(want, abs=0.15)
    again = demo.ground_truth_record(prompt, seed=3, height=64, width=64, frames=16, fps=8.0)
    assert again["scores"] == rec["scores"]  # deterministic


def test_ground_truth_objects_stay_inside_the_frame():
    rng = np.random.default_rng(0)
    for _ in range(50):
        direction = str(rng.choice(list(vocab.DIRECTIONS)))
        exp = {"color": "red", "shape": "circle", "direction": direction, "speed": "quickly"}
        attrs = demo.ground_truth_attrs(exp, 32, 8, rng)
        assert stays_inside(attrs, 32, 8)
    with pytest.raises(ValueError, match="travel"):
        demo.ground_truth_attrs({**exp, "speed": "quickly"}, 32, 40, rng)
    with pytest.raises(ValueError, match="square"):
        demo.ground_truth_record("a red circle staying still", 0, 32, 64, 8, 8.0)


# ---------------------------------------------------------------------------------------------
# End to end on the tiny pipeline
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from lumina_video.testing import make_tiny_pipeline

    folder = tmp_path_factory.mktemp("tiny") / "pipe"
    make_tiny_pipeline(folder, model_size="Tiny")
    return folder


def test_quick_run_end_to_end(tiny_folder, tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["--model", str(tiny_folder), "--out", str(out), "--quick", "--steps", "2", "--no-progress"]
    assert cli_main(["demo", "results", *argv]) == 0
    for name in ("results.json", "results.md", "motion_sweep.png", "motion_pairs.png", "multiscale.png"):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.glob(".*.tmp"))
    res = json.loads((out / "results.json").read_text())
    setup, recs = res["setup"], res["records"]
    assert setup["command"] == "lumina-video demo results " + " ".join(argv)
    assert setup["steps"] == 2 and setup["motion_levels"] == [0.0, 4.0, 8.0]
    # 5 prompts x 1 seed x 2 arms, 2 prompts x 3 levels, 2 prompts x 6 rows; 4/4 and 8/8 reuse sweep videos
    assert setup["jobs"] == 10 + 6 + 12 and setup["videos_generated"] == 28 - 4
    parts = [r["part"] for r in recs]
    assert parts.count("heldout") == 10 and parts.count("ground_truth") == 5
    held = [r for r in recs if r["part"] == "heldout"]
    assert {r["sampling"]["P"] if isinstance(r["sampling"]["P"], str) else "multi" for r in held} == {"1x2", "multi"}
    assert all(r["sampling"]["step"] == 3 for r in recs if r["part"] != "ground_truth")  # 2 Euler steps
    same = {r["label"]: r for r in recs if r["part"] in ("sweep", "pairs") and r["prompt"] == recs[10]["prompt"]}
    assert same["4/4"]["timings"] == same["4"]["timings"]  # the cached video
    assert same["8/2→8"]["sampling"]["negMotion"] == [2.0, [0.05, 8.0]]
    assert [c["name"] for c in res["checks"]] == list(demo.THRESHOLDS)
    assert all(isinstance(c["passed"], bool) for c in res["checks"])
    # the saved summary is what the records give
    pairs = demo.motion_pairs(setup["motion_max"])
    assert json.loads(json.dumps(demo.summarize(recs, res["summary"]["heldout"]["arm"], pairs))) == res["summary"]
    md = (out / "results.md").read_text()
    assert setup["command"] in md and md == markdown_results(res)
    for heading in ("Claims", "Attribute accuracy", "motion score sweep", "Table 3", "Table 2", "ground truth"):
        assert heading in md
    printed = capsys.readouterr().out
    assert printed.count("PASS") + printed.count("FAIL") == len(demo.THRESHOLDS)


def test_motion_range_from_options_and_manifest(tmp_path):
    from lumina_video.data.manifest import write_manifest

    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, [{"path": f"v{i}.mp4", "caption": "c", "type": "video", "motion_score": i / 10}
                              for i in range(21)])
    base = ["--model", "m", "--out", "o"]
    assert run.motion_range(run.parse_args(base)) == (8.0, "the paper's scale; no training manifest given")
    top, source = run.motion_range(run.parse_args(base + ["--manifest", str(manifest)]))
    assert top == pytest.approx(1.9) and "95th percentile" in source
    assert run.motion_range(run.parse_args(base + ["--manifest", str(manifest), "--motion-max", "3"]))[0] == 3.0
    quick = run.parse_args(base + ["--quick", "--seeds", "2"])
    assert (quick.seeds, quick.steps, quick.levels) == (2, 10, 3)  # explicit options win over --quick
    with pytest.raises(SystemExit):
        run.parse_args(base + ["--seeds", "0"])


def test_parallel_workers_give_the_same_records(tiny_folder):
    """Two worker processes produce exactly the records one process does (same videos, same scores),
    in job order; only the timings differ."""
    import functools

    pipe = demo.load_pipeline(tiny_folder)
    prompts = demo.heldout_prompts(PAIRS)[:2]
    jobs = demo.plan_jobs(prompts, [0], [], [], [0.0, 1.0], [])
    one, n1 = demo.run_jobs(pipe, jobs, steps=2, progress=False)
    two, n2 = demo.run_jobs(pipe, jobs, steps=2, progress=False, workers=2,
                            load=functools.partial(demo.load_pipeline, tiny_folder))
    assert n1 == n2 == 4
    strip = lambda rs: [{k: v for k, v in r.items() if k != "timings"} for r in rs]  # noqa: E731
    assert strip(one) == strip(two)
    with pytest.raises(ValueError, match="load"):
        demo.run_jobs(pipe, jobs, steps=2, progress=False, workers=2)


def test_load_pipeline_with_other_sampling(tiny_folder):
    pipe = demo.load_pipeline(tiny_folder, {"P": "1x2", "step": 6, "ts": 2.0, "cfg": 3.0})
    assert pipe.default_sampling.steps == 5 and pipe.default_sampling.shift == 2.0
    assert not pipe.default_sampling.is_multiscale()
    assert demo.load_pipeline(tiny_folder, "f16F64R512-MultiScale").default_sampling.is_multiscale()
