"""The demo model's results: a miniature of the paper's Tables 2 and 3, measured from pixels.

Four experiments on prompts the model never saw (held-out (colour, shape) pairs, `vocab.caption`):
 1. held-out   every pair x {right, left, up, down, still} x seeds, the model's default sampling;
               attribute accuracy (eval/attributes.py): colour, shape, moving/still, direction, speed word.
 2a. sweep     moving prompts x motion scores m_0 < ... < m_K with negative motion = positive;
               measured motion score (the training data's tool), object speed (px/frame) and VBench
               dynamic degree per level; rho = Spearman(requested m, measured motion score), pooled
               over every video of the sweep (and the same against the object's speed).
 2b. pairs     positive / negative motion pairs as in the paper's Table 3, scaled to the model's
               motion range: with hi the top level, (hi/2, hi/2), (hi, hi), (hi/2, hi/4), (hi, hi/4),
               (hi/2, hi/4 then hi/2 after t = 0.05), (hi, hi/4 then hi) (hi = 8 gives the paper's rows).
 3. ablation   the held-out prompts and seeds with multi-scale on and off (the pipeline's knob):
               time ratio = sum of multi-scale denoising times / sum of single-scale ones, and the
               accuracy difference (multi - single) per attribute, in points.
 4. quality    temporal flickering, motion smoothness (and the other dimensions) of the generated
               held-out clips next to ground-truth clips rendered for the same prompts
               (`synthetic.render_clip`, objects placed by the dataset's own rule), the ceiling a
               model of this data can reach.

Everything here is a pure function of per-video records except `run_job` (which generates), so
the summaries and the must-show checks can be tested on given numbers. `lumina-video demo results`
(run.py) drives them; report.py writes the tables and charts.
"""
from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass

import numpy as np

from ..data import vocab
from ..data.motion import clip_motion_score
from ..data.synthetic import draw_object_size, draw_start, parse_pairs, render_clip, speed_px
from ..eval.attributes import check_attributes, expected_from_prompt, spearman, summarize_checks
from ..eval.run import score_video, set_dimensions

# (colour, shape) pairs the demo model never sees in training (scripts/demo_recipe.sh keeps them out
# of its dataset with `lumina-video demo holdout`); the held-out experiment asks for them
HOLDOUT = "red triangle,green circle,blue square,orange circle"
MOTIONS: tuple[str | None, ...] = (*vocab.DIRECTIONS, None)  # None = "staying still"
PAPER_MOTION_MAX = 8.0  # the paper's Table 3 uses motion scores 2, 4 and 8
SWITCH_T = 0.05  # Table 3: the negative motion returns to the positive one after t = 0.05
PAPER_TABLE3 = {"4/4": 45.37, "8/8": 53.70, "4/2": 72.78, "8/2": 85.89, "4/2→4": 67.13, "8/2→8": 83.33}
PAPER_TIME_RATIO = 0.34  # Table 2, the combined multi-scale schedule


# ---------------------------------------------------------------------------------------------
# Prompts and jobs
# ---------------------------------------------------------------------------------------------


def heldout_prompts(pairs) -> list[dict]:
    """Every (colour, shape) pair x MOTIONS as {prompt, color, shape, direction}, ordered so that any
    prefix is spread over pairs and directions: item k*len(pairs) + i is pair i with MOTIONS[(i + k) % 5].
    `pairs`: [(colour, shape), ...] or the text "red triangle,green circle"."""
    pairs = parse_pairs(pairs) if isinstance(pairs, str) else [tuple(p) for p in pairs]
    if not pairs:
        raise ValueError("no held-out pairs given; e.g. --holdout 'red triangle,green circle'")
    out = []
    for k in range(len(MOTIONS)):
        for i, (color, shape) in enumerate(pairs):
            direction = MOTIONS[(i + k) % len(MOTIONS)]
            out.append({"prompt": vocab.caption(color, shape, direction), "color": color, "shape": shape,
                        "direction": direction})  # vocab.caption rejects words outside the vocabulary
    return out


@dataclass(frozen=True)
class Job:
    """One video to generate: prompt, seed and the pipeline knobs (None = the model's default)."""

    part: str
    prompt: str
    seed: int
    multiscale: bool | None = None
    motion_score: float | None = None
    negative_motion_score: float | None = None
    negative_motion_switch: float | None = None
    label: str = ""  # the row / level it belongs to

    def overrides(self) -> dict:
        keys = ("multiscale", "motion_score", "negative_motion_score", "negative_motion_switch")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


def motion_levels(motion_max: float, n: int) -> list[float]:
    """n equally spaced motion scores from 0 to motion_max (0, 2, 4, 6, 8 for 8 and 5)."""
    if n < 2 or motion_max <= 0:
        raise ValueError(f"a motion sweep needs >= 2 levels and a top score > 0, got {n} levels, top {motion_max}")
    return [round(float(v), 3) for v in np.linspace(0.0, motion_max, n)]


def motion_pairs(motion_max: float) -> list[dict]:
    """Table 3's positive / negative rows scaled by motion_max / 8: {label, pos, neg, switch}."""
    s = motion_max / PAPER_MOTION_MAX
    rows = []
    paper_rows = ((4, 4, None), (8, 8, None), (4, 2, None), (8, 2, None), (4, 2, SWITCH_T), (8, 2, SWITCH_T))
    for pos, neg, switch in paper_rows:
        label = f"{pos}/{neg}" + (f"→{pos}" if switch else "")
        rows.append({"label": label, "pos": round(pos * s, 3), "neg": round(neg * s, 3), "switch": switch})
    return rows


def manifest_motion_max(records, quantile: float = 0.95) -> float:
    """The top of the training motion range: the `quantile` of the video records' motion scores."""
    scores = [float(r["motion_score"]) for r in records
              if r.get("type") == "video" and r.get("motion_score") is not None]
    if not scores:
        raise ValueError("the manifest has no video records with a motion_score; score it first with "
                         "`lumina-video motion MANIFEST`, or give --motion-max")
    return round(float(np.quantile(scores, quantile)), 3)


def plan_jobs(prompts: list[dict], seeds: list[int], motion_prompts: list[dict], motion_seeds: list[int],
              levels: list[float], pairs: list[dict]) -> list[Job]:
    """All jobs, in run order. Held-out prompts run multi-scale and single-scale back to back, so
    that load from other processes falls on both arms alike."""
    jobs = [Job("heldout", p["prompt"], s, multiscale=ms, label="multi" if ms else "single")
            for p in prompts for s in seeds for ms in (True, False)]
    jobs += [Job("sweep", p["prompt"], s, motion_score=m, negative_motion_score=m, negative_motion_switch=1.0,
                 label=f"{m:g}") for p in motion_prompts for s in motion_seeds for m in levels]
    jobs += [Job("pairs", p["prompt"], s, motion_score=r["pos"], negative_motion_score=r["neg"],
                 negative_motion_switch=1.0 if r["switch"] is None else r["switch"], label=r["label"])
             for p in motion_prompts for s in motion_seeds for r in pairs]
    return jobs


# ---------------------------------------------------------------------------------------------
# Generating and scoring
# ---------------------------------------------------------------------------------------------


def score_clip(frames: np.ndarray, fps: float, prompt: str) -> dict:
    """VBench-style dimensions, attribute checks and the motion score (measured with the tool that
    scored the training data, `lumina-video motion`) of one clip (T, H, W, 3) uint8."""
    scored = score_video(frames, fps)
    return {"scores": scored["scores"], "dynamic_degree": scored["dynamic_degree"],
            "attributes": check_attributes(frames, expected_from_prompt(prompt)),
            "measured_motion": clip_motion_score(frames, fps)}


def run_job(pipe, job: Job, steps: int | None = None) -> dict:
    """Generate one video and score it. Returns the job's record (no frames); a clip that cannot be
    scored gets "error" and no scores."""
    out = pipe(job.prompt, seed=job.seed, steps=steps, progress=False, **job.overrides())
    record = {**asdict(job), "sampling": out.sampling.to_official(), "timings": dict(out.timings), "error": None}
    try:
        record.update(score_clip(out.frames[0], float(pipe.defaults["fps"]), job.prompt))
    except ValueError as e:
        record["error"] = f"cannot score: {e}"
    return record


def run_jobs(pipe, jobs: list[Job], steps: int | None = None, progress: bool = True, workers: int = 1,
             load=None) -> tuple[list[dict], int]:
    """Run every job, generating each distinct (prompt, seed, resolved sampling) once: a Table 3 row
    equal to a sweep level reuses that video. Returns (records in job order, videos generated).

    workers > 1: that many processes (one torch thread each) generate in parallel; `load()` builds
    each process's pipeline (a picklable callable, e.g. functools.partial of a loader). Every video
    is timed inside one process, so time ratios stay fair while the processes share the machine.
    """
    from tqdm.auto import tqdm

    keys = [(job.prompt, job.seed, pipe.resolve_sampling(steps=steps, **job.overrides())) for job in jobs]
    unique: dict = {}
    for key, job in zip(keys, jobs):
        unique.setdefault(key, job)
    bar = tqdm(total=len(unique), desc="demo results", unit="video", disable=not progress)
    done: dict = {}
    if workers <= 1:
        for key, job in unique.items():
            done[key] = run_job(pipe, job, steps)
            bar.update()
            bar.set_postfix(part=job.part, refresh=False)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        if load is None:
            raise ValueError("workers > 1 needs `load`, a picklable callable that builds the pipeline")
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                                 initargs=(load, steps)) as pool:
            futures = {pool.submit(_worker_run, job, steps): key for key, job in unique.items()}
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                bar.update()
    bar.close()
    records = [{**done[key], **asdict(job)} for key, job in zip(keys, jobs)]
    return records, len(unique)


_WORKER_PIPE = None


def load_pipeline(model, sampling=None, size: int | None = None):
    """The pipeline at `model` with `sampling` (a preset name, an official dict or None = the
    model's default) as its default sampling and `size` (px) as its default height and width.
    Module-level, so worker processes can call it."""
    from ..pipeline import LuminaVideoPipeline

    pipe = LuminaVideoPipeline.from_pretrained(model)
    if sampling is not None:
        pipe.default_sampling = pipe.resolve_sampling(sampling)
    if size is not None:
        pipe.defaults.update(height=int(size), width=int(size))
    return pipe


def _worker_init(load, steps) -> None:
    import torch

    global _WORKER_PIPE
    torch.set_num_threads(1)
    _WORKER_PIPE = load()
    for multiscale in (True, False):  # warm-up: the first call at a new shape is slow
        _WORKER_PIPE("a red circle", seed=0, steps=steps, multiscale=multiscale, progress=False)


def _worker_run(job: Job, steps: int | None) -> dict:
    return run_job(_WORKER_PIPE, job, steps)


def ground_truth_attrs(expected: dict, size: int, frames: int, rng: np.random.Generator) -> dict:
    """Synthetic-dataset attributes for one prompt: its colour, shape, direction and speed word (the
    default speed when the prompt names none); object size and start drawn with the dataset's own
    placement (`synthetic.draw_object_size`, `draw_start`, not rounded), then background and texture."""
    s = draw_object_size(rng, size)
    direction = expected["direction"]
    v = 0.0 if direction is None else speed_px(expected.get("speed") or vocab.DEFAULT_SPEED, size)
    travel = v * (frames - 1)
    if travel > size - s:
        raise ValueError(f"a {frames}-frame clip of size {size} cannot hold {travel:.1f} px of travel")
    background, textured = str(rng.choice(list(vocab.BACKGROUNDS))), bool(rng.random() < 0.5)
    start_x, start_y = draw_start(rng, size, s, direction, travel, decimals=None)
    return {"background": background, "textured": textured, "color": expected["color"], "shape": expected["shape"],
            "direction": direction, "speed": expected.get("speed"), "speed_px": v, "object_size": s,
            "start_x": start_x, "start_y": start_y}


def ground_truth_record(prompt: str, seed: int, height: int, width: int, frames: int, fps: float) -> dict:
    """Render and score the ground-truth clip of (prompt, seed); deterministic."""
    if height != width:
        raise ValueError(f"ground-truth clips are square; the model makes {height}x{width}")
    rng = np.random.default_rng([seed, zlib.crc32(prompt.encode())])
    attrs = ground_truth_attrs(expected_from_prompt(prompt), height, frames, rng)
    clip = render_clip(attrs, height, frames, seed=int(rng.integers(2**31)))
    return {"part": "ground_truth", "label": "", "prompt": prompt, "seed": seed, "error": None,
            **score_clip(clip, fps, prompt)}


# ---------------------------------------------------------------------------------------------
# Summaries (pure functions of records)
# ---------------------------------------------------------------------------------------------


def _ok(records: list[dict], part: str, label: str | None = None) -> list[dict]:
    return [r for r in records if r["part"] == part and not r.get("error") and (label is None or r["label"] == label)]


def _speed(r: dict) -> float:
    """Measured object speed in px/frame; 0 when no object was found."""
    return float(r["attributes"]["measured"]["speed_px"] or 0.0)


def _accuracy(records: list[dict]) -> dict:
    return summarize_checks([r["attributes"] for r in records]) if records else {"n": 0, "accuracy": {}, "checked": {}}


def _motion(r: dict) -> float:
    """Measured motion score (the training data's tool)."""
    return float(r["measured_motion"])


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    return (float(np.mean(values)), float(np.std(values))) if values else (None, None)


def _group(records: list[dict], label: str) -> dict:
    speed_mean, speed_sd = _mean_sd([_speed(r) for r in records])
    motion_mean, motion_sd = _mean_sd([_motion(r) for r in records])
    return {"label": label, "n": len(records), "speed_mean": speed_mean, "speed_sd": speed_sd,
            "motion_mean": motion_mean, "motion_sd": motion_sd,
            "dynamic_degree": (float(np.mean([bool(r["scores"]["dynamic_degree"]) for r in records]))
                               if records else None)}


def _rank_correlations(rows: list[dict], per_level: list[dict], measure, mean_key: str) -> dict:
    """Spearman of requested motion score vs a measure: pooled over every video, over the level
    means, and the median over (prompt, seed) sweeps."""
    pooled = spearman([r["motion_score"] for r in rows], [measure(r) for r in rows]) if len(rows) >= 2 else None
    means = [g for g in per_level if g["n"]]
    of_means = spearman([g["motion_score"] for g in means], [g[mean_key] for g in means]) if len(means) >= 2 else None
    per_prompt = []
    for key in sorted({(r["prompt"], r["seed"]) for r in rows}):
        mine = [r for r in rows if (r["prompt"], r["seed"]) == key]
        rho = spearman([r["motion_score"] for r in mine], [measure(r) for r in mine]) if len(mine) >= 2 else None
        if rho is not None:
            per_prompt.append(rho)
    return {"pooled": pooled, "of_means": of_means, "per_prompt_n": len(per_prompt),
            "per_prompt_median": float(np.median(per_prompt)) if per_prompt else None}


def sweep_summary(records: list[dict]) -> dict:
    """Per motion level: measured motion score, speed and dynamic degree; Spearman of the requested
    motion score vs the measured motion score (the must-show, pooled) and vs the object's speed."""
    rows = _ok(records, "sweep")
    levels = sorted({r["motion_score"] for r in rows})
    per_level = [{**_group([r for r in rows if r["motion_score"] == m], f"{m:g}"), "motion_score": m} for m in levels]
    return {"levels": per_level, "n": len(rows),
            "spearman_motion": _rank_correlations(rows, per_level, _motion, "motion_mean"),
            "spearman_speed": _rank_correlations(rows, per_level, _speed, "speed_mean")}


def pairs_summary(records: list[dict], pairs: list[dict]) -> list[dict]:
    """Per Table 3 row: requested values, measured speed, dynamic degree, the paper's figure."""
    return [{**row, **_group(_ok(records, "pairs", row["label"]), row["label"]),
             "paper_dynamic_degree": PAPER_TABLE3.get(row["label"])} for row in pairs]


def ablation_summary(records: list[dict]) -> dict:
    """Multi-scale vs single-scale over the (prompt, seed) pairs both arms scored."""
    arms = {a: {(r["prompt"], r["seed"]): r for r in _ok(records, "heldout", a)} for a in ("multi", "single")}
    both = sorted(set(arms["multi"]) & set(arms["single"]))
    out = {"n": len(both)}
    for a, by_key in arms.items():
        chosen = [by_key[k] for k in both]
        times = [r["timings"]["denoise_s"] for r in chosen]
        out[a] = {"denoise_s_total": float(np.sum(times)), "denoise_s_mean": float(np.mean(times)) if times else None,
                  "attributes": _accuracy(chosen), "dimensions": set_dimensions(chosen)}
    single_t = out["single"]["denoise_s_total"]
    out["time_ratio"] = out["multi"]["denoise_s_total"] / single_t if both and single_t > 0 else None
    pair_ratios = [arms["multi"][k]["timings"]["denoise_s"] / arms["single"][k]["timings"]["denoise_s"]
                   for k in both if arms["single"][k]["timings"]["denoise_s"] > 0]
    out["time_ratio_median_pair"] = float(np.median(pair_ratios)) if pair_ratios else None
    acc_m, acc_s = out["multi"]["attributes"]["accuracy"], out["single"]["attributes"]["accuracy"]
    out["accuracy_diff_points"] = {k: 100 * (acc_m[k] - acc_s[k]) for k in ("color", "shape", "direction")
                                   if acc_m.get(k) is not None and acc_s.get(k) is not None}
    return out


def summarize(records: list[dict], default_arm: str, pairs: list[dict]) -> dict:
    """Every set-level number. `default_arm`: "multi" or "single", whichever equals the model's
    default sampling (the held-out accuracy and the quality comparison use it)."""
    if default_arm not in ("multi", "single"):
        raise ValueError(f"default_arm must be 'multi' or 'single', got {default_arm!r}")
    gen = _ok(records, "heldout", default_arm)
    gt = _ok(records, "ground_truth")
    return {
        "heldout": {"arm": default_arm, **_accuracy(gen)},
        "sweep": sweep_summary(records),
        "pairs": pairs_summary(records, pairs),
        "ablation": ablation_summary(records),
        "quality": {"generated": set_dimensions(gen), "ground_truth": set_dimensions(gt), "n_generated": len(gen),
                    "n_ground_truth": len(gt), "ground_truth_attributes": _accuracy(gt)},
        "errors": [{"part": r["part"], "prompt": r["prompt"], "seed": r["seed"], "error": r["error"]}
                   for r in records if r.get("error")],
    }


# ---------------------------------------------------------------------------------------------
# Must-show checks: the acceptance thresholds of the demo model
# ---------------------------------------------------------------------------------------------

THRESHOLDS = {  # name: (description, comparison, threshold)
    "color_accuracy": ("colour accuracy on held-out prompts", ">=", 0.90),
    "direction_accuracy": ("direction accuracy on held-out prompts", ">=", 0.80),
    "motion_spearman": ("Spearman, requested vs measured motion score (pooled over the sweep)", ">=", 0.80),
    "time_ratio": ("multi-scale / single-scale denoising time", "<=", 0.45),
    "accuracy_gap": ("largest multi- vs single-scale accuracy gap (colour, shape, direction), points", "<=", 5.0),
}


EPS = 1e-9  # a value on the threshold passes despite rounding (19/20 vs 20/20 is 5.000000000000004 points)


def must_show(summary: dict) -> list[dict]:
    """THRESHOLDS against the summary: [{name, what, value, op, threshold, passed}].
    A value on the threshold passes; a value that could not be measured (None) fails."""
    acc = summary["heldout"].get("accuracy", {})
    diffs = summary["ablation"].get("accuracy_diff_points", {})
    values = {
        "color_accuracy": acc.get("color"),
        "direction_accuracy": acc.get("direction"),
        "motion_spearman": summary["sweep"].get("spearman_motion", {}).get("pooled"),
        "time_ratio": summary["ablation"].get("time_ratio"),
        "accuracy_gap": max((abs(d) for d in diffs.values()), default=None),
    }
    checks = []
    for name, (what, op, threshold) in THRESHOLDS.items():
        v = values[name]
        passed = v is not None and (v >= threshold - EPS if op == ">=" else v <= threshold + EPS)
        checks.append({"name": name, "what": what, "value": v, "op": op, "threshold": threshold,
                       "passed": bool(passed)})
    return checks
