"""Does the V2A model's sync envelope head see each impact? And are the soundtrack's missed onsets the ones it
did not see?

For every impact of the synth-av clips of each manifest given, the head's predicted onset strength (the first
output of `V2ANextDiT.sync_heads`, in the training target's standard units) is read within +-2 sync frames
(+-80 ms) of the impact; an impact is *seen* when it reaches `--threshold` (2: the strikes the denoiser plays).
With `--audio DIR` (NAME.wav soundtracks of the first manifest's clips, e.g. the recipe's heldout_audio/), each
impact is also *heard* when eval-audio's onset detector finds an onset within one video frame of it, and the
table splits the heard share by seen / not seen. A head that sees the impacts of training clips but not of new
clips has learnt its training clips (a sync encoder trained too long on too few of them).

    python bench/v2a_impacts.py runs/v2a_demo/data/heldout.jsonl runs/v2a_demo/data/manifest.jsonl \\
        [--model DIR | --checkpoint RUN/checkpoints/step_N] [--n 300] [--audio RUN/heldout_audio]
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from lumina_video.data.video_io import read_video
from lumina_video.encoders.clips import frame_times
from lumina_video.pipeline.v2a import LuminaV2APipeline
from lumina_video.training.audio_data import read_records

sys.path.insert(0, str(Path(__file__).parent))
from v2a_probe import load_checkpoint  # noqa: E402  (a sibling script)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("manifests", nargs="+", help="synth-av manifest.jsonl / heldout.jsonl files")
    ap.add_argument("--model", default=None, help="a V2A pipeline folder (default: the bundled one)")
    ap.add_argument("--checkpoint", default=None, help="a train-v2a checkpoint folder (its EMA weights)")
    ap.add_argument("--n", type=int, default=300, help="clips per manifest (the first N)")
    ap.add_argument("--threshold", type=float, default=2.0)
    ap.add_argument("--audio", default=None, help="soundtracks NAME.wav of the first manifest's clips")
    ap.add_argument("--threads", type=int, default=1)
    return ap.parse_args(argv)


def impact_readings(pipe, manifest: Path, n: int) -> list[dict]:
    """[{clip, time, kind, peak}] for each impact of the first n clips: peak = the head's largest predicted onset
    strength within +-2 sync frames."""
    out = []
    for r in read_records(manifest)[:n]:
        if not r.get("impacts"):
            continue
        frames, fps = read_video(manifest.parent / r["path"])
        with torch.no_grad():
            sync, times = pipe.sync_encoder.encode(frames, frame_times(len(frames), fps), duration=r["duration"])
            onset = pipe.transformer.sync_heads(sync.float())[:, 0].numpy()
        moving = sum(o["motion"] != "still" for o in r["objects"])
        for imp in r["impacts"]:
            k = int(np.searchsorted(np.asarray(times), imp["time"]))
            out.append(dict(clip=Path(r["path"]).stem, time=imp["time"],
                            kind=f"{moving} moving, {r['objects'][imp['object']]['motion']}",
                            peak=float(onset[max(k - 2, 0):k + 3].max())))
    return out


def heard(readings: list[dict], audio: Path) -> None:
    """Adds `heard` (an onset within one frame of the impact in the clip's soundtrack) where it can be scored."""
    import soundfile as sf

    from lumina_video.eval.audio_metrics import detect_onsets, scorable_until

    onsets = {}
    for r in readings:
        if r["clip"] not in onsets:
            wave = sf.read(audio / f"{r['clip']}.wav", dtype="float32")[0]
            onsets[r["clip"]] = (detect_onsets(wave), scorable_until(len(wave)))
        est, until = onsets[r["clip"]]
        if r["time"] <= until:
            r["heard"] = bool(np.any(np.abs(est - r["time"]) <= 1 / 16))


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    pipe = LuminaV2APipeline.from_pretrained(args.model) if args.model else LuminaV2APipeline.from_pretrained()
    if args.checkpoint:
        load_checkpoint(pipe, Path(args.checkpoint))
    pipe.transformer.float(), pipe.sync_encoder.float()
    print(f"impacts seen: the head's onset strength >= {args.threshold:g} within +-80 ms\n")
    print("| manifest | clips' kind | impacts | seen |")
    print("|---|---|---:|---:|")
    first = None
    for m in args.manifests:
        readings = impact_readings(pipe, Path(m), args.n)
        first = readings if first is None else first
        groups = defaultdict(list)
        for r in readings:
            groups[r["kind"]].append(r["peak"] >= args.threshold)
            groups["all"].append(r["peak"] >= args.threshold)
        for kind in sorted(groups, key=lambda k: (k == "all", k)):
            print(f"| {m} | {kind} | {len(groups[kind])} | {np.mean(groups[kind]):.3f} |")
    if args.audio:
        heard(first, Path(args.audio))
        scored = [r for r in first if "heard" in r]
        print(f"\nsoundtracks of {args.manifests[0]} ({args.audio}): onset recall at +-1 frame by the head's reading\n")
        print("| impacts | count | heard |")
        print("|---|---:|---:|")
        for name, keep in (("seen", True), ("not seen", False)):
            sub = [r["heard"] for r in scored if (r["peak"] >= args.threshold) == keep]
            print(f"| {name} | {len(sub)} | {np.mean(sub) if sub else float('nan'):.3f} |")
        print(f"| all | {len(scored)} | {np.mean([r['heard'] for r in scored]):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
