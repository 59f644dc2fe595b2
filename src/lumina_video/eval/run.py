"""`lumina-video eval VIDEOS... [--prompts FILE | --manifest FILE] --out REPORT_DIR`, and the same
from Python: `evaluate(videos, prompts=None, manifest=None, out_dir=None) -> report dict`.

Every video is decoded with `lumina_video.data.video_io.read_video` and scored on the VBench-style
dimensions (metrics.py); videos whose prompt is in the synthetic vocabulary (or whose manifest
record carries the attributes) also get attribute checks (attributes.py). A video that cannot be
read or scored is listed with the reason and the others are scored.

Exit status of the command, so that scripts can tell: 0 when every video was scored; 1 when some
(or all) could not be, after writing the report that lists them (--allow-failures: 0 as long as one
video was scored); 2 for bad input (no videos, a missing prompts file or manifest).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..data.manifest import read_manifest
from ..data.video_io import check_frames, read_video
from . import metrics
from .aggregate import vbench_scores
from .attributes import check_attributes, expected_from_prompt, objects_in_prompt, summarize_checks
from .report import DIMENSION_KIND, write_report

DIMENSIONS: tuple[str, ...] = tuple(DIMENSION_KIND)  # the VBench dimensions computed here
MIN_FRAMES = 3  # motion smoothness rebuilds an odd frame from two neighbours


def score_video(frames: np.ndarray, fps: float) -> dict:
    """{"scores": {dimension: value}, "dynamic_degree": per-pair details} for one clip.
    Dynamic degree's value is a bool (the set score is the fraction of dynamic videos)."""
    check_frames(frames, MIN_FRAMES, what=f"video ({len(frames)} frames)")
    dd = metrics.dynamic_degree(frames, fps)
    scores = {
        "subject_consistency": metrics.subject_consistency(frames),
        "background_consistency": metrics.background_consistency(frames),
        "temporal_flickering": metrics.temporal_flickering(frames),
        "motion_smoothness": metrics.motion_smoothness(frames),
        "dynamic_degree": dd.dynamic,
    }
    return {"scores": scores, "dynamic_degree": dd.to_dict()}


# ---------------------------------------------------------------------------------------------
# Inputs: videos, prompts, manifests
# ---------------------------------------------------------------------------------------------


def load_prompts(path, videos: list[str]) -> list[str | None]:
    """Prompts for `videos` from a file: .txt, one prompt per line in the order of the videos; or
    .json, a list in that order or an object {video file name or path: prompt}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such prompts file: {path}")
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            return [data.get(v, data.get(Path(v).name)) for v in videos]
        if not isinstance(data, list):
            raise ValueError(f"{path}: a prompts JSON must be a list or an object {{video: prompt}}")
        prompts = data
    else:
        prompts = path.read_text(encoding="utf-8").rstrip("\n").split("\n")
    if len(prompts) != len(videos):
        raise ValueError(f"{path}: {len(prompts)} prompts for {len(videos)} videos; give one per video, in order")
    return [p if p is None else str(p) for p in prompts]


def manifest_items(path, videos: list[str]) -> tuple[list[dict], list[dict]]:
    """Items (video, prompt, record) from a manifest: every video record, or only those of `videos`
    (matched by resolved path, then by file name). Returns (items, skipped still-image records)."""
    records = read_manifest(path)
    clips = [r for r in records if r["type"] == "video"]
    images = [{"path": r["path"], "reason": "still image, not a video"} for r in records if r["type"] != "video"]
    if not videos:
        return [{"video": r["path"], "prompt": r["caption"], "record": r} for r in clips], images
    by_path = {str(Path(r["path"]).resolve()): r for r in clips}
    by_name = {Path(r["path"]).name: r for r in clips}
    items = []
    for v in videos:
        r = by_path.get(str(Path(v).resolve()), by_name.get(Path(v).name))
        items.append({"video": v, "prompt": r["caption"] if r else None, "record": r})
    return items, []


def expectation(prompt: str | None, record: dict | None) -> tuple[dict | None, str | None]:
    """(expected attributes, None) or (None, why the video gets no attribute check)."""
    if record is not None and record.get("objects"):
        return None, "several objects (attribute checks handle one)"
    if record is not None and record.get("color") and record.get("shape"):
        return record, None
    if not prompt:
        return None, "no prompt"
    if objects_in_prompt(prompt) > 1:
        return None, "several objects in the prompt (attribute checks handle one)"
    expected = expected_from_prompt(prompt)
    return (expected, None) if expected else (None, "prompt outside the synthetic vocabulary")


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


def evaluate_one(video: str, prompt: str | None = None, record: dict | None = None) -> dict:
    """Read and score one video; failures are returned as {"error": reason}, never raised."""
    entry = {"video": str(video), "prompt": prompt, "error": None}
    if Path(video).is_file() and Path(video).stat().st_size == 0:
        entry["error"] = "empty: the file has 0 bytes"
        return entry
    try:
        frames, fps = read_video(video)
    except (OSError, ValueError, RuntimeError) as e:
        entry["error"] = f"unreadable: {e}"
        return entry
    entry.update(frames=int(len(frames)), height=int(frames.shape[1]), width=int(frames.shape[2]), fps=float(fps))
    if len(frames) == 0:
        entry["error"] = "empty: no frames"
        return entry
    try:
        entry.update(score_video(frames, fps))
    except ValueError as e:
        entry["error"] = f"cannot score: {e}"
        return entry
    expected, why_not = expectation(prompt, record)
    entry["attributes"] = check_attributes(frames, expected) if expected else None
    entry["attributes_skipped"] = why_not
    return entry


def set_dimensions(entries: list[dict]) -> dict:
    """Mean of each dimension over the scored videos (dynamic degree: fraction of dynamic videos)."""
    scored = [e for e in entries if not e["error"]]
    return {d: (float(np.mean([float(e["scores"][d]) for e in scored])) if scored else None) for d in DIMENSIONS}


def evaluate(videos=(), prompts=None, *, manifest=None, out_dir=None, progress: bool = True) -> dict:
    """Score videos and the set; with `out_dir`, also write report.json, report.md and the charts.

    videos:   paths (may be empty with a manifest: then every video record of it).
    prompts:  None, a list aligned with `videos`, or a dict {video path or file name: prompt}.
    manifest: a JSONL manifest (lumina_video.data.manifest) whose records give prompts and, for
              synthetic clips, the ground-truth attributes. Not together with `prompts`.
    """
    videos = [str(v) for v in videos]
    if manifest is not None and prompts is not None:
        raise ValueError("give prompts or a manifest, not both")
    skipped = []
    if manifest is not None:
        items, skipped = manifest_items(manifest, videos)
    else:
        if not videos:
            raise ValueError("no videos to evaluate: give video paths, or a manifest")
        if isinstance(prompts, dict):
            prompts = [prompts.get(v, prompts.get(Path(v).name)) for v in videos]
        elif prompts is not None and len(prompts) != len(videos):
            raise ValueError(f"{len(prompts)} prompts for {len(videos)} videos; give one per video, in order")
        items = [{"video": v, "prompt": None if prompts is None else prompts[i], "record": None}
                 for i, v in enumerate(videos)]
    entries = []
    bar = tqdm(items, desc="eval", unit="video", disable=not progress)
    for item in bar:
        entries.append(evaluate_one(item["video"], item["prompt"], item["record"]))
        bar.set_postfix(failed=sum(bool(e["error"]) for e in entries), refresh=False)
    dims = set_dimensions(entries)
    checks = [e["attributes"] for e in entries if e.get("attributes")]
    report = {
        "counts": {"videos": len(entries), "scored": sum(not e["error"] for e in entries),
                   "failed": sum(bool(e["error"]) for e in entries), "skipped": len(skipped)},
        "dimensions": dims,
        "dimension_kind": dict(DIMENSION_KIND),
        "vbench": vbench_scores({d: v for d, v in dims.items() if v is not None}, scale="fraction"),
        "attributes": summarize_checks(checks) if checks else None,
        "videos": entries,
        "skipped": skipped,
    }
    if out_dir is not None:
        report["files"] = write_report(report, out_dir)
    return report


def summary_line(report: dict) -> str:
    c, agg = report["counts"], report["vbench"]
    text = f"scored {c['scored']} of {c['videos']} videos ({c['failed']} failed"
    text += f", {c['skipped']} skipped)" if c["skipped"] else ")"
    if agg["quality_partial"] is not None:
        text += f"; quality over {len(agg['given'])} of 7 quality dimensions {100 * agg['quality_partial']:.2f}%"
    if report["attributes"]:
        acc = report["attributes"]["accuracy"]
        text += "; attributes " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in acc.items() if v is not None)
    return text


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def add_cli_arguments(parser) -> None:
    parser.add_argument("videos", nargs="*", help="video files (with --manifest: optional, default all its videos)")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--prompts",
                     help="prompts: .txt one per line in the order of VIDEOS, or .json list / {video: prompt}")
    src.add_argument("--manifest", help="JSONL manifest giving prompts (and synthetic ground truth)")
    parser.add_argument("--out", required=True, help="report folder (report.json, report.md, *.png)")
    parser.add_argument("--allow-failures", action="store_true",
                        help="exit 0 when some videos could not be scored (default: exit 1; they are in the report)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def exit_status(counts: dict, allow_failures: bool = False) -> int:
    """0 when every video was scored (or, with allow_failures, at least one), else 1 (module docstring)."""
    if not counts["scored"]:
        return 1
    return 0 if allow_failures or not counts["failed"] else 1


def cli_main(args) -> int:
    prompts = load_prompts(args.prompts, args.videos) if args.prompts else None
    report = evaluate(args.videos, prompts, manifest=args.manifest, out_dir=args.out, progress=not args.no_progress)
    print(summary_line(report))
    print(f"report: {report['files']['markdown']}")
    status = exit_status(report["counts"], args.allow_failures)
    if status:
        failed = report["counts"]["failed"]
        print(f"lumina-video eval: {failed} of {report['counts']['videos']} videos could not be scored (listed in "
              f"the report); exit status 1 (--allow-failures: 0 when any was scored)", file=sys.stderr)
    return status
