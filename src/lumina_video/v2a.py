"""`lumina-video v2a VIDEO [VIDEO ...] --out DIR`: a soundtrack for each silent video with a LuminaV2APipeline.

For each VIDEO (stem NAME) it writes, atomically:
    DIR/NAME.mp4    the input's frames (re-encoded H.264 at the input's frame rate) with an AAC track
    DIR/NAME.wav    the generated audio, 16-bit PCM mono at the pipeline's sample rate (16 kHz)
    DIR/NAME.json   every setting (model, prompt, seed, steps, guidance scale, duration, fps, frames) and timings
Video i uses seed S + i (`--seed S`; without one a random S is drawn and recorded). The text condition is
`--prompt` for every video, or each video's caption from `--captions MANIFEST` (synth-av's manifest), or none.
Every input is read and checked (suffix, decodable, duration within the model's limits, output names free
unless --overwrite) before any audio is generated, so a bad input leaves nothing behind. The frames are read
with PyAV (data/video_io.py) and handed to the pipeline with their times i / fps.
"""
from __future__ import annotations

import argparse
import secrets
import time
from pathlib import Path

from . import __version__, files

MODEL_HELP = ("a V2A pipeline folder (LuminaV2APipeline.save_pretrained; default: the bundled V2A demo model, "
              "lumina_video/demo_v2a_model; `python -m lumina_video.testing_v2a DIR` writes a random-weight tiny one)")
SUFFIXES = (".mp4", ".wav", ".json")


def add_cli_arguments(p: argparse.ArgumentParser) -> None:
    p.description = __doc__.split("\n\n")[0]
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="silent video files (.mp4, .mov, .mkv, ...)")
    p.add_argument("--out", metavar="DIR", required=True, help="output folder")
    p.add_argument("--prompt", default=None, help="a text condition for every video (default: none, dropped)")
    p.add_argument("--captions", metavar="MANIFEST", default=None,
                   help="each video's own caption as its text condition: a JSON Lines manifest (synth-av's) whose "
                        "records name the video as `path` (relative to the manifest's folder) with a `caption`")
    p.add_argument("--seed", type=int, default=None, help="seed of video 0 (video i: seed + i; default: random)")
    p.add_argument("--steps", type=int, default=None, help="Euler steps (default: the model's)")
    p.add_argument("--guidance-scale", type=float, default=None, help="CFG scale s of v_c + s (v_c - v_u); 0 = off")
    p.add_argument("--voicing-gate", type=float, default=None, metavar="P",
                   help="silence where the sync head's voicing stays below P (default: the model's; 0 = no gate)")
    p.add_argument("--model", metavar="DIR", default=None, help=MODEL_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--overwrite", action="store_true", help="replace existing NAME.mp4/.wav/.json")


def output_paths(out_dir: Path, videos: list[Path], overwrite: bool) -> list[dict]:
    """{suffix: path} per video (DIR/NAME.mp4, .wav, .json); ValueError for two videos of one NAME or, without
    `overwrite`, an output that exists."""
    names = [v.stem for v in videos]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"several videos are named {dupes[0]!r}; their outputs would collide: rename one")
    paths = [{s: out_dir / f"{n}{s}" for s in SUFFIXES} for n in names]
    taken = [str(p) for d in paths for p in d.values() if p.exists()]
    if taken and not overwrite:
        raise ValueError(f"{taken[0]} exists; pass --overwrite to replace it")
    return paths


def read_inputs(paths: list[Path]) -> list[tuple]:
    """[(frames (F, H, W, 3) uint8, fps)] of each video; one-line errors for a missing, image, or corrupt file."""
    from .data.video_io import check_supported, read_video

    clips = []
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"no such video file: {path}")
        check_supported(path, "video")
        clips.append(read_video(path))
    return clips


def check_clip(pipe, path: Path, frames, fps: float, steps, scale) -> float:
    """The clip's duration after the pipeline's own checks (nothing computed) and the writer's (H.264 yuv420p
    needs an even width and height); the message names the file."""
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"{path}: H.264 needs an even width and height, got {frames.shape[2]}x{frames.shape[1]}")
    from .pipeline.v2a import video_items, video_seconds

    try:
        items = video_items(frames, fps=fps)
        seconds = [video_seconds(items[0][1], None)]
        pipe.check_inputs(items, [None], seconds, steps, scale)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return seconds[0]


def read_captions(manifest, videos: list[Path]) -> list[str]:
    """The caption of each video from a manifest (data/manifest.py: `path` relative to its folder, `caption`);
    one-line errors for a missing or invalid manifest or a video it does not list."""
    from .data.manifest import read_manifest

    try:
        by_file = {Path(rec["path"]).resolve(): rec["caption"] for rec in read_manifest(manifest)}
    except (FileNotFoundError, ValueError) as e:
        raise type(e)(f"--captions: {e}") from None
    missing = [v for v in videos if v.resolve() not in by_file]
    if missing:
        raise ValueError(f"--captions: {manifest} has no record for {missing[0]}")
    return [by_file[v.resolve()] for v in videos]


def settings_record(args, path: Path, model: Path, seed: int, frames, fps: float, out) -> dict:
    return {"lumina_video_version": __version__, "video": str(path), "model": str(model), "prompt": out["prompt"],
            "seed": seed, "num_inference_steps": out["steps"], "guidance_scale": out["scale"],
            "seconds": out["seconds"], "fps": fps, "frames": int(len(frames)),
            "size": [int(frames.shape[2]), int(frames.shape[1])], "sample_rate": out["sample_rate"],
            "samples": out["samples"], "voicing_gate": out["gate"], "gated": out["gated"], "timings": out["timings"]}


def cli_main(args) -> int:
    from .audio import write_video_with_audio, write_wav
    from .generate import audio_model_dir, check_writable
    from .pipeline.v2a import LuminaV2APipeline
    from .pipeline.v2a_gate import check_gate

    videos, out_dir = [Path(v) for v in args.videos], Path(args.out)
    model = audio_model_dir(args.model)  # the bundled one by default; not installed: from_pretrained says so
    pipe = LuminaV2APipeline.from_pretrained(model)
    steps = pipe.defaults["num_inference_steps"] if args.steps is None else args.steps
    scale = pipe.defaults["guidance_scale"] if args.guidance_scale is None else args.guidance_scale
    gate = check_gate(pipe.defaults["voicing_gate"] if args.voicing_gate is None else args.voicing_gate)
    if args.captions and args.prompt is not None:
        raise ValueError("give --prompt (one text for every video) or --captions (each video's own), not both")
    prompts = read_captions(args.captions, videos) if args.captions else [args.prompt] * len(videos)
    clips = read_inputs(videos)
    for path, (frames, fps) in zip(videos, clips):
        check_clip(pipe, path, frames, fps, steps, scale)
    check_writable(out_dir)
    targets = output_paths(out_dir, videos, args.overwrite)
    seed = secrets.randbelow(2**31) if args.seed is None else args.seed
    for i, (path, (frames, fps), dest, prompt) in enumerate(zip(videos, clips, targets, prompts)):
        t0 = time.perf_counter()
        out = pipe(frames, prompt, fps=fps, seed=seed + i, num_inference_steps=steps, guidance_scale=scale,
                   voicing_gate=gate, progress=not args.no_progress)
        wave = out.audio[0]
        write_wav(dest[".wav"], wave, out.sample_rate)
        write_video_with_audio(dest[".mp4"], frames, fps, wave, out.sample_rate)
        timings = dict(out.timings, total_s=time.perf_counter() - t0)
        record = dict(prompt=prompt, steps=steps, scale=scale, seconds=out.seconds[0], sample_rate=out.sample_rate,
                      samples=int(len(wave)), timings=timings, gate=gate, gated=out.gated and out.gated[0])
        files.write_json(dest[".json"], settings_record(args, path, model, seed + i, frames, fps, record))
        print(f"{dest['.mp4']}  ({out.seconds[0]:.2f} s, seed {seed + i}, {timings['total_s']:.1f} s)")
    return 0
