"""Measure a trained pipeline against the paper's claims (issue 7) and write the README results tables.

Experiments (see lumina_video/eval/demo.py): attribute accuracy on held-out (colour, shape) pairs;
motion control (a motion score sweep and the paper's Table 3 positive / negative pairs); multi-scale
vs single-scale inference (Table 2: time and the same metrics); quality next to ground-truth clips.
Writes REPORT_DIR/results.json (every number, every video), results.md (tables to paste), three PNG
charts, and prints PASS / FAIL for each claim.

    python bench/demo_results.py --model src/lumina_video/demo_model --out runs/demo/results \
        [--manifest runs/demo/data/manifest.jsonl] [--quick] [--seeds N] [--steps N]

Motion scores: 0 to the top of the training range, the 95th percentile of the --manifest's video
motion scores; without a manifest 0 to 8, the paper's scale (Table 3 uses 2, 4 and 8).
Torch runs on 1 thread by default: on a shared 2-core machine, 2 threads competing with another job
were 10-30x slower (threads spin-waiting for a core); use --threads to change it.
"""
from __future__ import annotations

import argparse
import functools
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from lumina_video.data.manifest import read_manifest
from lumina_video.eval import demo
from lumina_video.eval.demo_report import write_results

FULL = dict(prompts=None, seeds=3, motion_prompts=16, motion_seeds=1, levels=5)  # None: every held-out prompt
QUICK = dict(prompts=5, seeds=1, motion_prompts=2, motion_seeds=1, levels=3, steps=10)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="pipeline folder (e.g. src/lumina_video/demo_model)")
    ap.add_argument("--out", required=True, help="report folder")
    ap.add_argument("--holdout", default=demo.DEFAULT_HOLDOUT, help="held-out (colour, shape) pairs, comma separated")
    ap.add_argument("--manifest", help="training manifest with motion scores: the sweep spans its range")
    ap.add_argument("--motion-max", type=float, help="top motion score of the sweep (overrides --manifest)")
    ap.add_argument("--quick", action="store_true", help="smoke run: " + ", ".join(f"{k} {v}" for k, v in QUICK.items()))
    ap.add_argument("--seeds", type=int, help=f"seeds per held-out prompt (default {FULL['seeds']})")
    ap.add_argument("--prompts", type=int, help="held-out prompts used (default all: pairs x 5 motions)")
    ap.add_argument("--motion-prompts", type=int,
                    help=f"moving prompts in the motion experiments (default {FULL['motion_prompts']})")
    ap.add_argument("--motion-seeds", type=int,
                    help=f"seeds per prompt in the motion experiments (default {FULL['motion_seeds']})")
    ap.add_argument("--levels", type=int, help=f"motion scores in the sweep (default {FULL['levels']})")
    ap.add_argument("--size", type=int, help="video height and width in px (default: the model's)")
    ap.add_argument("--no-pairs", action="store_true", help="skip the Table 3 positive / negative pairs (to tune faster)")
    ap.add_argument("--steps", type=int, help="Euler steps (default: the model's)")
    ap.add_argument("--sampling", help="sampling to use instead of the model's default: a preset name or an "
                    "official-format JSON dict, e.g. '{\"P\": [\"2x4\", [0.2, \"2x2\"], [0.5, \"1x2\"]], "
                    "\"step\": 31, \"ts\": 4, \"cfg\": 4, \"motion\": 2, \"negMotion\": 0.5}' (to tune it)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--workers", type=int, default=1,
                    help="generating processes, one torch thread each (default 1; e.g. 2 on an idle 2-core machine)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("seeds", "prompts", "motion_prompts", "motion_seeds", "steps", "threads", "workers"):
        v = getattr(args, key)
        if v is not None and v < 1:
            ap.error(f"--{key.replace('_', '-')} must be >= 1, got {v}")
    return args


def motion_range(args) -> tuple[float, str]:
    if args.motion_max is not None:
        return args.motion_max, "--motion-max"
    if args.manifest:
        top = demo.manifest_motion_max(read_manifest(args.manifest))
        return top, "95th percentile of the training manifest's video motion scores"
    return demo.PAPER_MOTION_MAX, "the paper's scale; no training manifest given"


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    sampling = None
    if args.sampling:
        sampling = json.loads(args.sampling) if args.sampling.lstrip().startswith("{") else args.sampling
    pipe = demo.load_pipeline(args.model, sampling, args.size)
    motion_max, motion_source = motion_range(args)
    prompts = demo.heldout_prompts(args.holdout)
    moving = [p for p in prompts if p["direction"] is not None][: args.motion_prompts]
    prompts = prompts[: args.prompts] if args.prompts else prompts
    seeds, motion_seeds = list(range(args.seeds)), list(range(args.motion_seeds))
    levels, pairs = demo.motion_levels(motion_max, args.levels), demo.motion_pairs(motion_max)
    if args.no_pairs:
        pairs = []
    jobs = demo.plan_jobs(prompts, seeds, moving, motion_seeds, levels, pairs)

    if args.workers == 1:  # warm-up: the first call at a new shape is slow (workers warm up themselves)
        for multiscale in (True, False):
            pipe(prompts[0]["prompt"], seed=0, steps=args.steps, multiscale=multiscale, progress=False)
    records, generated = demo.run_jobs(pipe, jobs, args.steps, progress=not args.no_progress, workers=args.workers,
                                       load=functools.partial(demo.load_pipeline, args.model, sampling, args.size))
    h, w, f, fps = (pipe.defaults[k] for k in ("height", "width", "num_frames", "fps"))
    records += [demo.ground_truth_record(p["prompt"], s, h, w, f, fps) for p in prompts for s in seeds]

    default = pipe.resolve_sampling(steps=args.steps)
    summary = demo.summarize(records, "multi" if default.is_multiscale() else "single", pairs)
    checks = demo.must_show(summary)
    setup = {
        "command": "python bench/demo_results.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "model": str(args.model), "holdout": [f"{c} {s}" for c, s in demo.parse_pairs(args.holdout)],
        "n_prompts": len(prompts), "n_seeds": len(seeds), "n_motion_prompts": len(moving),
        "n_motion_seeds": len(motion_seeds), "motion_levels": levels, "motion_max": motion_max,
        "motion_max_source": motion_source, "steps": default.steps, "size": [f, h, w], "fps": fps,
        "default_sampling": default.to_official(),
        "multiscale_schedule": pipe.resolve_sampling(steps=args.steps, multiscale=True).to_official()["P"],
        "guided": any(v != 0 for v in default.guidance.values()),
        "videos_generated": generated, "jobs": len(jobs), "threads": torch.get_num_threads(),
        "workers": args.workers, "sampling_override": sampling is not None,
        "device": f"CPU ({platform.machine()}, {_cores()} cores)",
        "torch": torch.__version__, "runtime_s": time.perf_counter() - start,
    }
    results = {"setup": setup, "checks": checks, "summary": summary, "records": records}
    files = write_results(results, args.out)
    print(summary_text(checks, setup, files))
    return 0


def _cores() -> int:
    import os

    return os.cpu_count() or 1


def summary_text(checks: list[dict], setup: dict, files: dict) -> str:
    lines = [f"\n{setup['videos_generated']} videos generated in {setup['runtime_s']:.0f} s ({setup['steps']} steps)"]
    for c in checks:
        v = "n/a" if c["value"] is None else f"{c['value']:.3f}"
        lines.append(f"  {'PASS' if c['passed'] else 'FAIL'}  {c['what']}: {v} (must be {c['op']} {c['threshold']:g})")
    lines.append(f"tables: {files['markdown']}; numbers: {files['json']}; charts: {Path(files['motion_chart']).parent}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
