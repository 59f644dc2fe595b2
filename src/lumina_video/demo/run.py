"""`lumina-video demo results`: measure a trained pipeline against the paper's claims and write the
README results tables.

Experiments (experiments.py): attribute accuracy on held-out (colour, shape) pairs; motion control (a
motion score sweep and the paper's Table 3 positive / negative pairs); multi-scale vs single-scale
inference (Table 2: time and the same metrics); quality next to ground-truth clips. Writes
OUT/results.json (every number, every video), results.md (tables to paste), three PNG charts
(report.py), and prints PASS / FAIL for each claim.

    lumina-video demo results --model src/lumina_video/demo_model --out runs/demo/results \\
        [--manifest runs/demo/data/manifest.jsonl] [--quick] [--seeds N] [--steps N]

Motion scores: 0 to the top of the training range, the 95th percentile of the --manifest's video
motion scores; without a manifest 0 to 8, the paper's scale (Table 3 uses 2, 4 and 8).
Torch runs on 1 thread by default: on a shared 2-core machine, 2 threads competing with another job
were 10-30x slower (threads spin-waiting for a core); use --threads to change it.
"""
from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import platform
import shlex
import time
from pathlib import Path

from . import experiments as ex

FULL = dict(prompts=None, seeds=3, motion_prompts=16, motion_seeds=1, levels=5)  # None: every held-out prompt
QUICK = dict(prompts=5, seeds=1, motion_prompts=2, motion_seeds=1, levels=3, steps=10)
COMMAND = "lumina-video demo results"


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_cli_arguments(parser) -> None:
    """The options of `lumina-video demo results`. Counts left unset take FULL's values, or QUICK's with --quick."""
    count = _positive_int
    parser.add_argument("--model", required=True, help="pipeline folder (e.g. src/lumina_video/demo_model)")
    parser.add_argument("--out", required=True, help="report folder")
    parser.add_argument("--holdout", default=ex.HOLDOUT,
                        help=f"held-out (colour, shape) pairs, comma separated (default {ex.HOLDOUT!r})")
    parser.add_argument("--manifest", help="training manifest with motion scores: the sweep spans its range")
    parser.add_argument("--motion-max", type=float, help="top motion score of the sweep (overrides --manifest)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: " + ", ".join(f"{k} {v}" for k, v in QUICK.items()))
    parser.add_argument("--seeds", type=count, help=f"seeds per held-out prompt (default {FULL['seeds']})")
    parser.add_argument("--prompts", type=count, help="held-out prompts used (default all: pairs x 5 motions)")
    parser.add_argument("--motion-prompts", type=count,
                        help=f"moving prompts in the motion experiments (default {FULL['motion_prompts']})")
    parser.add_argument("--motion-seeds", type=count,
                        help=f"seeds per prompt in the motion experiments (default {FULL['motion_seeds']})")
    parser.add_argument("--levels", type=int, help=f"motion scores in the sweep (default {FULL['levels']})")
    parser.add_argument("--size", type=int, help="video height and width in px (default: the model's)")
    parser.add_argument("--no-pairs", action="store_true",
                        help="skip the Table 3 positive / negative pairs (to tune faster)")
    parser.add_argument("--steps", type=count, help="Euler steps (default: the model's)")
    parser.add_argument("--sampling", help="sampling to use instead of the model's default: a preset name or an "
                        "official-format JSON dict, e.g. '{\"P\": [\"2x4\", [0.2, \"2x2\"], [0.5, \"1x2\"]], "
                        "\"step\": 31, \"ts\": 4, \"cfg\": 4, \"motion\": 2, \"negMotion\": 0.5}' (to tune it)")
    parser.add_argument("--threads", type=count, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--workers", type=count, default=1,
                        help="generating processes, one torch thread each (default 1; e.g. 2 on an idle 2-core "
                             "machine)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cli_arguments(parser)
    return parser


def with_presets(args) -> argparse.Namespace:
    """A copy of the parsed options whose unset counts take QUICK's values (--quick) or FULL's."""
    args = copy.copy(args)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def parse_args(argv) -> argparse.Namespace:
    """The options of `lumina-video demo results ARGV...`, presets applied (argparse exits on bad ones)."""
    return with_presets(_parser().parse_args(argv))


def command_line(args) -> str:
    """The command that repeats this run: `lumina-video demo results`, --model, --out and every option
    whose value differs from its default, in the order the options are defined."""
    defaults = vars(_parser().parse_args(["--model", "", "--out", ""]))
    words = COMMAND.split()
    for dest, default in defaults.items():
        value = getattr(args, dest)
        if value == default and dest not in ("model", "out"):
            continue
        flag = "--" + dest.replace("_", "-")
        words += [flag] if isinstance(value, bool) else [flag, str(value)]
    return shlex.join(words)


def motion_range(args) -> tuple[float, str]:
    """The top motion score of the sweep and where it comes from."""
    if args.motion_max is not None:
        return args.motion_max, "--motion-max"
    if args.manifest:
        from ..data.manifest import read_manifest

        top = ex.manifest_motion_max(read_manifest(args.manifest))
        return top, "95th percentile of the training manifest's video motion scores"
    return ex.PAPER_MOTION_MAX, "the paper's scale; no training manifest given"


def _sampling(text: str | None):
    """--sampling as given: None, an official-format dict (JSON) or a preset name."""
    if not text:
        return None
    return json.loads(text) if text.lstrip().startswith("{") else text


def plan(args, motion_max: float) -> dict:
    """The prompts, seeds, motion levels, Table 3 rows and the jobs of this run."""
    prompts = ex.heldout_prompts(args.holdout)
    moving = [p for p in prompts if p["direction"] is not None][: args.motion_prompts]
    prompts = prompts[: args.prompts] if args.prompts else prompts
    seeds, motion_seeds = list(range(args.seeds)), list(range(args.motion_seeds))
    levels = ex.motion_levels(motion_max, args.levels)
    pairs = [] if args.no_pairs else ex.motion_pairs(motion_max)
    jobs = ex.plan_jobs(prompts, seeds, moving, motion_seeds, levels, pairs)
    return {"prompts": prompts, "moving": moving, "seeds": seeds, "motion_seeds": motion_seeds, "levels": levels,
            "pairs": pairs, "jobs": jobs}


def generate(pipe, args, sampling, todo: dict) -> tuple[list[dict], int]:
    """Every job's record and the ground-truth records; returns (records, videos generated)."""
    if args.workers == 1:  # warm-up: the first call at a new shape is slow (workers warm up themselves)
        for multiscale in (True, False):
            pipe(todo["prompts"][0]["prompt"], seed=0, steps=args.steps, multiscale=multiscale, progress=False)
    load = functools.partial(ex.load_pipeline, args.model, sampling, args.size)
    records, generated = ex.run_jobs(pipe, todo["jobs"], args.steps, progress=not args.no_progress,
                                     workers=args.workers, load=load)
    h, w, f, fps = (pipe.defaults[k] for k in ("height", "width", "num_frames", "fps"))
    records += [ex.ground_truth_record(p["prompt"], s, h, w, f, fps) for p in todo["prompts"] for s in todo["seeds"]]
    return records, generated


def _setup(args, pipe, todo: dict, motion: tuple[float, str], extra: dict) -> dict:
    """What was measured and how: the `setup` part of results.json (the README's first paragraph)."""
    import torch

    default = pipe.resolve_sampling(steps=args.steps)
    h, w, f, fps = (pipe.defaults[k] for k in ("height", "width", "num_frames", "fps"))
    return {
        "command": extra["command"],
        "model": str(args.model), "holdout": [f"{c} {s}" for c, s in ex.parse_pairs(args.holdout)],
        "n_prompts": len(todo["prompts"]), "n_seeds": len(todo["seeds"]), "n_motion_prompts": len(todo["moving"]),
        "n_motion_seeds": len(todo["motion_seeds"]), "motion_levels": todo["levels"], "motion_max": motion[0],
        "motion_max_source": motion[1], "steps": default.steps, "size": [f, h, w], "fps": fps,
        "default_sampling": default.to_official(),
        "multiscale_schedule": pipe.resolve_sampling(steps=args.steps, multiscale=True).to_official()["P"],
        "guided": default.is_guided(),
        "videos_generated": extra["generated"], "jobs": len(todo["jobs"]), "threads": torch.get_num_threads(),
        "workers": args.workers, "sampling_override": extra["sampling"] is not None,
        "device": f"CPU ({platform.machine()}, {os.cpu_count() or 1} cores)",
        "torch": torch.__version__, "runtime_s": time.perf_counter() - extra["start"],
    }


def cli_main(args) -> int:
    """Run every experiment, write the report folder and print one PASS / FAIL line per claim."""
    import torch

    from .report import write_results

    command, args = command_line(args), with_presets(args)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    sampling = _sampling(args.sampling)
    pipe = ex.load_pipeline(args.model, sampling, args.size)
    motion = motion_range(args)
    todo = plan(args, motion[0])
    records, generated = generate(pipe, args, sampling, todo)
    default_arm = "multi" if pipe.resolve_sampling(steps=args.steps).is_multiscale() else "single"
    summary = ex.summarize(records, default_arm, todo["pairs"])
    checks = ex.must_show(summary)
    setup = _setup(args, pipe, todo, motion, {"command": command, "generated": generated, "sampling": sampling,
                                              "start": start})
    paths = write_results({"setup": setup, "checks": checks, "summary": summary, "records": records}, args.out)
    print(summary_text(checks, setup, paths))
    return 0


def summary_text(checks: list[dict], setup: dict, paths: dict) -> str:
    """The lines printed at the end: videos and time, one PASS / FAIL line per claim, where the files are."""
    lines = [f"\n{setup['videos_generated']} videos generated in {setup['runtime_s']:.0f} s ({setup['steps']} steps)"]
    for c in checks:
        v = "n/a" if c["value"] is None else f"{c['value']:.3f}"
        lines.append(f"  {'PASS' if c['passed'] else 'FAIL'}  {c['what']}: {v} (must be {c['op']} {c['threshold']:g})")
    lines.append(f"tables: {paths['markdown']}; numbers: {paths['json']}; charts: {Path(paths['motion_chart']).parent}")
    return "\n".join(lines)
