"""`lumina-video generate PROMPT [options]`: write NAME.mp4 and NAME.json per prompt.

NAME.json records the prompt, negative prompt, seed, size, fps, every sampling setting, the model
folder, device, dtype, the step cache's threshold (null: off), the transformer's forward passes per
patch (`forwards`: model calls and rows, a guided call of B prompts being 1 call of 2B rows;
sampling/forwards.py) and the seconds spent on text encoding, denoising and decoding. Both files are
written to a temporary name and renamed, so a failed or killed run never leaves half a file.
`write_generation` writes the pair; the web server (serve/) uses it too.

Seeds: as in the Python API (`pipe(..., seed=None)`), no --seed means a random seed; it is drawn
once, printed, put in the file names and recorded in NAME.json, so a run can be repeated with
--seed S. Prompt i of a run uses seed S + i.
Existing files are never replaced silently: NAME.mp4 or NAME.json already there gives NAME-1
(NAME-2, ...) and says so, unless --overwrite.
Before any compute: the pipeline's `check_inputs`, then info.py's guard rails: prompts outside the
model's vocabulary and sizes far above the trained ones get a warning, a request over the device's
memory is refused.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sys
import tempfile
import time
from pathlib import Path

from .info import resolve_model_dir

MODEL_HELP = "pipeline folder (default: $LUMINA_VIDEO_MODEL or the bundled demo model)"
SEED_HELP = ("noise seed; prompt i uses seed + i (default: a random seed, as in the Python API, printed and "
             "recorded in NAME.json so that --seed repeats the run)")
MAX_SEED = 2**63 - 1  # the largest seed torch takes (as serve); a drawn one is below 2**31, as the pipeline draws

__all__ = ["MODEL_HELP", "add_cli_arguments", "add_device_arguments", "add_run_arguments", "check_writable",
           "cli_main", "free_names", "load_pipeline", "output_names", "read_prompts", "resolve_model_dir",
           "set_threads", "slug", "warn", "write_generation", "check_settings"]


def add_cli_arguments(p: argparse.ArgumentParser) -> None:
    from .sampling import PRESETS

    p.add_argument("prompt", nargs="?", help="the text of the video (or use --prompts FILE)")
    p.add_argument("--prompts", metavar="FILE", help="a text file with one prompt per line (blank lines skipped)")
    p.add_argument("--negative-prompt", default="", help="negative prompt (default: empty)")
    p.add_argument("--model", metavar="DIR", help=MODEL_HELP)
    p.add_argument("--out", metavar="DIR", default="outputs", help="output folder (default: outputs)")
    p.add_argument("--name", help="output name without suffix (several prompts: NAME-000, NAME-001, ...); "
                                  "default: the prompt's words and the seed")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing NAME.mp4 / NAME.json (default: write NAME-1, NAME-2, ... instead)")
    g = p.add_argument_group("video (defaults: the model's; `lumina-video info` lists them)")
    g.add_argument("--height", type=int)
    g.add_argument("--width", type=int)
    g.add_argument("--num-frames", type=int, help="1, 8m or 8m + 1 frames (8m for multi-scale)")
    g.add_argument("--fps", type=float, help="frame rate of the written file")
    s = p.add_argument_group("sampling (defaults: the model's; --preset replaces them)")
    s.add_argument("--preset", choices=sorted(PRESETS), help="a released sampling preset")
    s.add_argument("--steps", type=int, help="Euler steps")
    s.add_argument("--shift", type=float, help="time shift of the sampling grid")
    s.add_argument("--guidance-scale", type=float, help="classifier-free guidance scale (0 = off)")
    s.add_argument("--guidance-cutoff", type=float, help="model time after which guidance is 0 (1 = never)")
    s.add_argument("--motion-score", type=float, help="motion score of the prompt branch (< 0: no motion condition)")
    s.add_argument("--negative-motion-score", type=float, help="motion score of the negative branch")
    s.add_argument("--negative-motion-switch", type=float,
                   help="model time after which the negative branch uses the prompt's motion score")
    ms = s.add_mutually_exclusive_group()
    ms.add_argument("--multiscale", dest="multiscale", action="store_true", default=None,
                    help="multi-scale patch schedule (coarse patches first)")
    ms.add_argument("--single-scale", dest="multiscale", action="store_false", help="finest patch only")
    s.add_argument("--step-cache", metavar="off|auto|THRESH",
                   help="reuse the velocity across steps while its estimated relative change stays under THRESH "
                        "(auto: the model's recommended threshold; default: off; README 'Step cache')")
    a = p.add_argument_group("sound (Lumina-V2A)")
    a.add_argument("--audio", action="store_true",
                   help="add a soundtrack to each video with a V2A pipeline: NAME.mp4 gets an AAC track, "
                        "NAME.wav beside it")
    a.add_argument("--audio-model", metavar="DIR", help="V2A pipeline folder for --audio (default: the bundled V2A "
                   "demo model, lumina_video/demo_v2a_model)")
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=None, help=SEED_HELP)
    r.add_argument("--batch-size", type=int, default=1,
                   help="prompts per forward pass (same videos up to float rounding)")
    add_run_arguments(r)
    r.add_argument("--save-frames", action="store_true",
                   help="also write NAME.npz: the decoded frames, uint8 (T, H, W, 3), lossless (the mp4 is H.264)")
    r.add_argument("--parallel", choices=("none", "cfg", "sp", "cfg+sp"), default="none",
                   help="under torchrun --nproc_per_node N: the guidance branches on 2 processes (cfg), Ulysses "
                        "sequence parallelism over N (sp), or both (cfg+sp, 2 x N/2); rank 0 writes the files")


def add_device_arguments(group) -> None:
    """--device, --dtype and --offload, read by `load_pipeline` (generate and serve)."""
    from .devices import DTYPES

    group.add_argument("--device", help="cpu, cuda, cuda:N, mps (default: cuda if available, else cpu)")
    group.add_argument("--dtype", choices=sorted(DTYPES), help="compute dtype of transformer and text encoder (the "
                       "VAE then fp32); default: every part bf16 on CPUs with native bf16 (AMX / AVX512-BF16), "
                       "transformer and text encoder bf16 on CUDA, else fp32 (`lumina-video info`: this machine's)")
    group.add_argument("--offload", action="store_true",
                       help="model CPU offload: each part on the device only while used")


def add_run_arguments(group) -> None:
    """`add_device_arguments` plus --threads and --no-progress (generate and serve)."""
    add_device_arguments(group)
    group.add_argument("--threads", type=int, metavar="N", help="CPU threads of torch (default: torch's choice)")
    group.add_argument("--no-progress", action="store_true", help="no progress bars")
    group.add_argument("--compile", action="store_true",
                       help="torch.compile the transformer's blocks (the first video compiles: slower; later ones "
                            "reuse the graphs)")


def set_threads(threads: int | None) -> None:
    """torch.set_num_threads(threads) when given; ValueError unless it is >= 1."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def warn(command: str, message: str) -> None:
    """One warning line on stderr, in the CLI's error format: `lumina-video COMMAND: warning: ...`."""
    from tqdm.auto import tqdm

    tqdm.write(f"lumina-video {command}: warning: {message}", file=sys.stderr)


def read_prompts(prompt: str | None, prompts_file: str | None) -> list[str]:
    if prompt is None and prompts_file is None:
        raise ValueError("give a PROMPT or --prompts FILE")
    prompts = []
    if prompt is not None:
        if not prompt.strip():
            raise ValueError("the prompt is empty; describe the video to generate")
        prompts.append(prompt)
    if prompts_file is not None:
        path = Path(prompts_file)
        if not path.is_file():
            raise FileNotFoundError(f"prompts file {path} does not exist")
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        found = [line for line in lines if line]
        if not found:
            raise ValueError(f"prompts file {path} has no prompts (one per line; blank lines are skipped)")
        prompts += found
    return prompts


def check_writable(out_dir: Path) -> None:
    """Create `out_dir` and prove a file can be made in it, before any work is done."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise PermissionError(f"cannot write to the output folder {out_dir}: {e.strerror or e}") from None


def slug(text: str, limit: int = 48) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (s[:limit].rstrip("-") or "video")


def output_names(prompts: list[str], seed: int, name: str | None) -> list[str]:
    if name is not None:
        if not name or "/" in name or name in (".", "..") or (os.sep in name):
            raise ValueError(f"--name must be a plain file name without a folder or suffix, got {name!r}")
        return [name] if len(prompts) == 1 else [f"{name}-{i:03d}" for i in range(len(prompts))]
    names = [f"{slug(p)}-s{seed + i}" for i, p in enumerate(prompts)]
    seen: dict[str, int] = {}
    for i, n in enumerate(names):  # the same prompt twice: keep both
        if n in seen:
            names[i] = f"{n}-{i:03d}"
        seen[n] = i
    return names


def write_generation(folder, name: str, output, index: int, *, prompt: str, negative_prompt: str, fps: float,
                     save_frames: bool = False, **context) -> tuple[Path, Path, dict]:
    """Write video `index` of a pipeline output ("np" frames) as folder/NAME.mp4 and its record as
    folder/NAME.json (with `save_frames`, the frames themselves too, losslessly, as folder/NAME.npz with one
    array `frames`); return (video path, record path, record). The record: prompt, negative prompt,
    seed, size, fps, the file name, `context` (model, device, ... as the caller names them), every
    sampling setting, and this video's timings: its share of the batch's, plus the seconds of writing."""
    import numpy as np

    from . import __version__, files
    from .data import video_io
    from .sampling import sampling_to_json

    folder, frames = Path(folder), output.frames[index]
    t0 = time.perf_counter()
    video_io.write_video(folder / f"{name}.mp4", frames, fps)
    if save_frames:
        with files.atomic_path(folder / f"{name}.npz") as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, frames=frames)
        context["frames"] = f"{name}.npz"
    timings = {k: v / len(output.frames) for k, v in output.timings.items()}
    timings["write_s"] = time.perf_counter() - t0
    num_frames, height, width = (int(n) for n in frames.shape[:3])
    seed = None if output.seeds is None else output.seeds[index]
    context.setdefault("dtype", output.dtype)
    record = dict(prompt=prompt, negative_prompt=negative_prompt, seed=seed, height=height, width=width,
                  num_frames=num_frames, fps=fps, video=f"{name}.mp4", **context,
                  sampling=sampling_to_json(output.sampling), step_cache=output.step_cache,
                  forwards=output.forwards,
                  sampling_official=output.sampling.to_official(), timings=timings,
                  lumina_video_version=__version__)
    files.write_json(folder / f"{name}.json", record)
    return folder / f"{name}.mp4", folder / f"{name}.json", record


def free_names(out_dir: Path, names: list[str], overwrite: bool) -> tuple[list[str], list[str]]:
    """(names, notes): with `overwrite`, `names` as they are (a note for each one replaced); else each name
    whose NAME.mp4 or NAME.json exists becomes the first free NAME-k (k = 1, 2, ...), with a note."""
    taken = lambda n: (out_dir / f"{n}.mp4").exists() or (out_dir / f"{n}.json").exists()  # noqa: E731
    chosen, notes = [], []
    for name in names:
        if overwrite or not taken(name):
            if taken(name):
                notes.append(f"replacing {out_dir / name}.mp4 (--overwrite)")
            chosen.append(name)
            continue
        k = 1
        while taken(f"{name}-{k}") or f"{name}-{k}" in chosen or f"{name}-{k}" in names:
            k += 1
        chosen.append(f"{name}-{k}")
        notes.append(f"{out_dir / name}.mp4 exists: writing {name}-{k}.mp4 instead (--overwrite replaces it)")
    return chosen, notes


def load_pipeline(args, model_dir: Path):
    """(pipeline, device, dtype name): the folder's pipeline on --device (default: cuda when available,
    checked by devices.check_device), each part in its dtype: --dtype for the transformer and text encoder
    (the VAE fp32), default `devices.generation_dtypes(device)`; with --offload's model CPU offload and
    --compile's compiled blocks. The name is `devices.dtypes_name` of the parts' dtypes ("bf16", or
    "transformer bf16, text_encoder fp32, vae fp32" when they differ)."""
    import torch

    from .devices import check_device, dtypes_name, generation_dtypes, parse_dtype
    from .pipeline import LuminaVideoPipeline

    device = check_device(args.device)
    chosen = parse_dtype(args.dtype) if args.dtype else None
    parts = generation_dtypes(device) if chosen is None else \
        dict(transformer=chosen, text_encoder=chosen, vae=torch.float32)
    pipe = LuminaVideoPipeline.from_pretrained(model_dir, dtype={**parts, "default": torch.float32})
    pipe = pipe.enable_model_cpu_offload(device) if args.offload else pipe.to(device)
    if getattr(args, "compile", False):
        pipe.compile_transformer()
    ran = dict(transformer=pipe.transformer.dtype, text_encoder=pipe.text_encoder.dtype, vae=pipe.vae.dtype)
    return pipe, device, dtypes_name(ran)


def _check_args(args) -> tuple[list[str], Path, Path]:
    """(prompts, model folder, output folder), or the first error; nothing is loaded."""
    from .devices import check_device

    prompts = read_prompts(args.prompt, args.prompts)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.fps is not None and args.fps <= 0:
        raise ValueError(f"--fps must be > 0, got {args.fps}")
    if args.seed is not None and not 0 <= args.seed <= MAX_SEED - len(prompts):
        raise ValueError(f"--seed must be 0 to {MAX_SEED - len(prompts)} (prompt i uses seed + i), got {args.seed}")
    set_threads(args.threads)
    check_device(args.device)
    model_dir = resolve_model_dir(args.model)
    out_dir = Path(args.out)
    check_writable(out_dir)
    return prompts, model_dir, out_dir


def check_settings(pipe, args, prompts: list[str], device) -> tuple:
    """(sampling config, height, width, num_frames) after every check, before any compute: the
    pipeline's `check_inputs`, then the guard rails (warnings on stderr, ValueError over memory)."""
    from . import info
    from .sampling import SamplingKnobs

    config = pipe.resolve_sampling(args.preset, SamplingKnobs.from_object(args))
    height, width, num_frames = pipe.resolve_size(args.height, args.width, args.num_frames)
    pipe.check_inputs(prompts, args.negative_prompt, height, width, num_frames, config)
    pipe.resolve_step_cache(getattr(args, "step_cache", None))  # a bad --step-cache fails before any compute
    batch = min(args.batch_size, len(prompts))
    info.check_memory(pipe, device, batch, height, width, num_frames, config.is_guided())
    for message in info.size_warnings(pipe.defaults, height, width, num_frames) + \
            info.prompt_warnings(prompts, pipe.defaults):
        warn("generate", message)
    return config, height, width, num_frames


def audio_model_dir(audio_model: str | None) -> Path:
    """--audio-model DIR, else the bundled V2A demo model's folder (pipeline/v2a.py DEFAULT_V2A_MODEL_DIR)."""
    from .pipeline.v2a import DEFAULT_V2A_MODEL_DIR

    return Path(audio_model) if audio_model else DEFAULT_V2A_MODEL_DIR


def load_audio_pipeline(args, device, seconds: float):
    """The V2A pipeline of --audio-model (default: the bundled one) on `device`, after checking the video fits its
    length limit; FileNotFoundError (one line, saying how to install it) when the bundled one is not installed."""
    from .pipeline.v2a import LuminaV2APipeline

    try:
        v2a = LuminaV2APipeline.from_pretrained(audio_model_dir(args.audio_model)).to(device)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"--audio: {e}{'' if args.audio_model else ' (--audio-model DIR)'}") from None
    limit = float(v2a.defaults.get("max_seconds", float("inf")))
    if seconds > limit:
        raise ValueError(f"--audio: the video lasts {seconds:g} s, over the V2A model's limit of {limit:g} s")
    return v2a


def add_soundtracks(v2a, out, prompts: list[str], names: list[str], out_dir: Path, fps: float, seed: int,
                    progress: bool, audio_model: str) -> None:
    """Replace each NAME.mp4 of the batch by the same frames with a generated AAC track; write NAME.wav; add
    the soundtrack's settings and timings to NAME.json."""
    from . import files
    from .audio.media import write_video_with_audio, write_wav

    sound = v2a(out.frames, prompts, fps=fps, seed=seed, progress=progress)
    for i, name in enumerate(names):
        write_video_with_audio(out_dir / f"{name}.mp4", out.frames[i], fps, sound.audio[i], sound.sample_rate)
        write_wav(out_dir / f"{name}.wav", sound.audio[i], sound.sample_rate)
        record_path = out_dir / f"{name}.json"
        record = json.loads(record_path.read_text())
        seed_i = None if sound.seeds is None else sound.seeds[i]
        record["audio"] = dict(model=audio_model, wav=f"{name}.wav", seed=seed_i, sample_rate=sound.sample_rate,
                               seconds=sound.seconds[i], timings={k: v / len(names) for k, v in sound.timings.items()})
        files.write_json(record_path, record)


def cli_main(args) -> int:
    from tqdm.auto import tqdm

    prompts, model_dir, out_dir = _check_args(args)
    seed = secrets.randbelow(2**31) if args.seed is None else args.seed
    names, notes = free_names(out_dir, output_names(prompts, seed, args.name), args.overwrite)
    from .parallel import start_parallel

    run = start_parallel(getattr(args, "parallel", "none"), quiet_others=True)  # before loading: the CUDA device
    t0 = time.perf_counter()
    pipe, device, dtype = load_pipeline(args, model_dir)
    run.apply(pipe)
    load_s = time.perf_counter() - t0
    fps = args.fps or float(pipe.defaults["fps"])
    config, height, width, num_frames = check_settings(pipe, args, prompts, device)  # nothing is written if wrong
    v2a = load_audio_pipeline(args, device, num_frames / fps) if args.audio else None
    seed_note = f"seed {seed}" + (" (random; --seed repeats it)" if args.seed is None else "")
    print(f"model {model_dir} on {device} ({dtype}{', offload' if args.offload else ''}), loaded in "
          f"{load_s:.1f}s; {len(prompts)} prompt(s), {num_frames} frames {height}x{width} at {fps:g} fps, {seed_note}")
    for note in notes:
        print(note)
    context = dict(model=str(model_dir), preset=args.preset, device=device, dtype=dtype, compile=bool(args.compile),
                   offload=bool(args.offload), parallel=f"{run.mode} x {run.world}" if run.world > 1 else "none")
    totals = dict(text_s=0.0, denoise_s=0.0, decode_s=0.0, write_s=0.0)
    bar = tqdm(total=len(prompts), desc="prompt", unit="prompt", disable=args.no_progress or len(prompts) < 2,
               bar_format="{desc} {n_fmt}/{total_fmt} |{bar}| [{elapsed}<{remaining}]")
    for start in range(0, len(prompts), args.batch_size):
        batch = prompts[start: start + args.batch_size]
        out = pipe(batch, args.negative_prompt, height, width, num_frames, preset=config, seed=seed + start,
                   progress=not args.no_progress and run.is_main, step_cache=args.step_cache,
                   output_type="np" if run.is_main else "latent")  # the other ranks only help denoising
        if not run.is_main:
            continue
        for i, prompt in enumerate(batch):
            _, _, record = write_generation(out_dir, names[start + i], out, i, prompt=prompt,
                                            negative_prompt=args.negative_prompt, fps=fps, **context,
                                            batch_size=len(batch), save_frames=args.save_frames)
            timings = record["timings"]
            totals = {k: totals[k] + timings[k] for k in totals}
            bar.write(f"wrote {out_dir / names[start + i]}.mp4 (+ .json)  seed {record['seed']}  text "
                      f"{timings['text_s']:.2f}s  denoise {timings['denoise_s']:.2f}s  "
                      f"decode {timings['decode_s']:.2f}s")
        if v2a is not None:
            add_soundtracks(v2a, out, batch, names[start: start + len(batch)], out_dir, fps, seed + start,
                            not args.no_progress, str(audio_model_dir(args.audio_model)))
        bar.update(len(batch))
    bar.close()
    print(f"done: {len(prompts)} video(s) in {out_dir}; total text {totals['text_s']:.2f}s, denoise "
          f"{totals['denoise_s']:.2f}s, decode {totals['decode_s']:.2f}s, write {totals['write_s']:.2f}s")
    run.close()
    return 0
