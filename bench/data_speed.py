"""Data path speed: clips per second for motion annotation and for dataset loading.

Two kinds of clip, rendered into a temporary folder first:
  synthetic   the synthetic dataset's defaults (64x64, 16 frames at 8 fps, H.264)
  real-like   a textured scene panning across 360x640 pixels, 4 s at 24 fps (96 frames, H.264)

Motion annotation runs `annotate_manifest` (the `lumina-video motion` command) with the default
DIS flow ("medium", two-stage) and the fastest preset, with 1 and 2 worker processes. Dataset loading
reads every item of a MediaDataset once (decode, fps resampling, cover-crop, to float pixels).
Rates include the start-up of the worker processes (about 0.3 s on an idle machine, seconds under
load), which weighs on short runs; use a larger --n for steady-state figures.

    python bench/data_speed.py [--n 24] [--workers 1 2]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from lumina_video.data.dataset import MediaDataset
from lumina_video.data.manifest import read_manifest, write_manifest
from lumina_video.data.motion import DISFlow, annotate_manifest
from lumina_video.data.synthetic import make_dataset
from lumina_video.data.video_io import write_video


def real_like_clips(folder: Path, n: int, h: int = 360, w: int = 640, frames: int = 96, fps: int = 24) -> Path:
    rng = np.random.default_rng(0)
    records = []
    for i in range(n):
        big = rng.uniform(0, 255, ((h + 200) // 8, (w + 200) // 8, 3)).astype(np.float32)
        big = cv2.resize(big, (w + 200, h + 200), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)
        vx, vy = rng.uniform(-1, 1, 2)
        clip = [cv2.warpAffine(big, np.float32([[1, 0, -(100 + k * vx)], [0, 1, -(100 + k * vy)]]), (w, h))
                for k in range(frames)]
        write_video(folder / f"real{i:03d}.mp4", np.stack(clip), fps)
        records.append({"path": str(folder / f"real{i:03d}.mp4"), "caption": "a textured pan", "type": "video",
                        "fps": float(fps), "duration": frames / fps, "width": w, "height": h})
    write_manifest(folder / "manifest.jsonl", records)
    return folder / "manifest.jsonl"


def motion_rate(manifest: Path, out: Path, workers: int, preset: str) -> float:
    backend = DISFlow(preset=preset, coarse_factor=4 if preset == "medium" else 1)
    summary = annotate_manifest(manifest, out, workers=workers, backend=backend, progress=False)
    assert summary["scored"] == summary["videos"], summary
    return summary["scored"] / summary["seconds"]


def loading_rate(manifest: Path, **kw) -> float:
    ds = MediaDataset(read_manifest(manifest), **kw)
    t0 = time.perf_counter()
    n = sum(ds[i] is not None for i in range(len(ds)))
    assert n == len(ds), ds.report()
    return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=24, help="clips of each kind")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synth = make_dataset(tmp / "synth", args.n, image_fraction=0.0, static_fraction=0.0)
        (tmp / "real").mkdir()
        real = real_like_clips(tmp / "real", args.n)
        rows = []
        for name, manifest in (("synthetic 64x64 16f@8", synth), ("real-like 360x640 96f@24", real)):
            for preset in ("medium", "ultrafast"):
                for w in args.workers:
                    rate = motion_rate(manifest, tmp / f"out-{name[:4]}-{preset}-{w}.jsonl", w, preset)
                    rows.append(("motion", name, f"DIS {preset}, {w} worker(s)", rate))
        loads = [
            ("synthetic 64x64 16f@8", synth, dict(size=64, fps=8, num_frames=13)),
            ("real-like 360x640 96f@24", real, dict(size=256, fps=8, num_frames=17)),
            ("real-like 360x640 96f@24", real, dict(size=512, fps=24, num_frames=49)),
        ]
        for name, manifest, kw in loads:
            rows.append(("load", name, f"size {kw['size']}, {kw['num_frames']} frames @ {kw['fps']} fps, 1 process",
                         loading_rate(manifest, **kw)))
    print(f"\n{'task':<8}{'clips':<27}{'setting':<40}{'clips/s':>9}")
    for task, name, setting, rate in rows:
        print(f"{task:<8}{name:<27}{setting:<40}{rate:>9.2f}")


if __name__ == "__main__":
    main()
