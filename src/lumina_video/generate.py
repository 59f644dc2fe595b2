"""`lumina-video generate PROMPT [options]`: write NAME.mp4 and NAME.json per prompt.

NAME.json records the prompt, negative prompt, seed, size, fps, every sampling setting, the model
folder, device and the seconds spent on text encoding, denoising and decoding. Both files are
written to a temporary name and renamed, so a failed or killed run never leaves half a file.
"""
from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16"}


def add_cli_arguments(p: argparse.ArgumentParser) -> None:
    from .sampling import PRESETS

    p.add_argument("prompt", nargs="?", help="the text of the video (or use --prompts FILE)")
    p.add_argument("--prompts", metavar="FILE", help="a text file with one prompt per line (blank lines skipped)")
    p.add_argument("--negative-prompt", default="", help="negative prompt (default: empty)")
    p.add_argument("--model", metavar="DIR", help="pipeline folder (default: $LUMINA_VIDEO_MODEL or the bundled demo model)")
    p.add_argument("--out", metavar="DIR", default="outputs", help="output folder (default: outputs)")
    p.add_argument("--name", help="output name without suffix (several prompts: NAME-000, NAME-001, ...); "
                                  "default: the prompt's words and the seed")
    g = p.add_argument_group("video (defaults: the model's)")
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
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=0, help="noise seed; prompt i uses seed + i (default 0)")
    r.add_argument("--batch-size", type=int, default=1, help="prompts per forward pass (same videos up to float rounding)")
    r.add_argument("--device", help="cuda, cpu, ... (default: cuda if available)")
    r.add_argument("--dtype", choices=sorted(DTYPES), help="weights of transformer and text encoder "
                                                           "(default: float32 on CPU, bfloat16 on CUDA)")
    r.add_argument("--offload", action="store_true", help="model CPU offload: each part on the device only while used")


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


def resolve_model_dir(model: str | None) -> Path:
    from .pipeline import DEFAULT_MODEL_DIR, check_pipeline_folder

    if model is None:
        folder = Path(os.environ.get("LUMINA_VIDEO_MODEL") or DEFAULT_MODEL_DIR)
        if not folder.exists():
            raise FileNotFoundError(
                f"no --model given and the default model folder {folder} does not exist (the bundled demo "
                f"model is not installed). Pass --model DIR with a pipeline folder; make a random-weight test "
                f"one with `python -m lumina_video.testing DIR`; or build the released model: `lumina-video "
                f"convert` the official checkpoint, then LuminaVideoPipeline.from_components(converted_dir, "
                f"cogvideox_2b_vae_dir, gemma_2_2b_dir).save_pretrained(DIR)"
            )
    else:
        folder = Path(model)
    return check_pipeline_folder(folder)


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


def cli_main(args) -> int:
    import torch

    from . import __version__
    from . import files
    from .data.video_io import write_video
    from .pipeline import LuminaVideoPipeline

    prompts = read_prompts(args.prompt, args.prompts)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.fps is not None and args.fps <= 0:
        raise ValueError(f"--fps must be > 0, got {args.fps}")
    model_dir = resolve_model_dir(args.model)
    out_dir = Path(args.out)
    check_writable(out_dir)
    names = output_names(prompts, args.seed, args.name)

    import transformers

    transformers.utils.logging.disable_progress_bar()  # our own progress bar is the one that matters
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype_name = DTYPES[args.dtype] if args.dtype else ("bfloat16" if torch.device(device).type == "cuda" else "float32")
    t0 = time.perf_counter()
    pipe = LuminaVideoPipeline.from_pretrained(model_dir, dtype=getattr(torch, dtype_name))
    pipe = pipe.enable_model_cpu_offload(device) if args.offload else pipe.to(device)
    load_s = time.perf_counter() - t0
    fps = args.fps or float(pipe.defaults["fps"])
    knobs = dict(preset=args.preset, steps=args.steps, shift=args.shift, guidance_scale=args.guidance_scale,
                 guidance_cutoff=args.guidance_cutoff, motion_score=args.motion_score,
                 negative_motion_score=args.negative_motion_score,
                 negative_motion_switch=args.negative_motion_switch, multiscale=args.multiscale)
    size = dict(height=args.height, width=args.width, num_frames=args.num_frames)
    # Check every setting before the first video (nothing is written if one is wrong).
    config = pipe.resolve_sampling(**knobs)
    size = {k: (pipe.defaults[k] if v is None else v) for k, v in size.items()}
    pipe.latent_shape(1, size["height"], size["width"], size["num_frames"], config)

    print(f"model {model_dir} on {device} ({dtype_name}{', offload' if args.offload else ''}), loaded in {load_s:.1f}s; "
          f"{len(prompts)} prompt(s), {size['num_frames']} frames {size['height']}x{size['width']} at {fps:g} fps")
    totals = dict(text_s=0.0, denoise_s=0.0, decode_s=0.0, write_s=0.0)
    for start in range(0, len(prompts), args.batch_size):
        batch = prompts[start: start + args.batch_size]
        out = pipe(batch, args.negative_prompt, **size, **knobs, seed=args.seed + start, progress=True)
        per_item = {k: v / len(batch) for k, v in out.timings.items()}
        for i, prompt in enumerate(batch):
            t_w = time.perf_counter()
            name = names[start + i]
            write_video(out_dir / f"{name}.mp4", out.frames[i], fps)
            timings = dict(per_item, write_s=time.perf_counter() - t_w)
            record = dict(
                prompt=prompt, negative_prompt=args.negative_prompt, seed=out.seeds[i], **size, fps=fps,
                video=f"{name}.mp4", model=str(model_dir), preset=args.preset,
                sampling=_readable(out.sampling), sampling_official=out.sampling.to_official(),
                device=device, dtype=dtype_name, offload=bool(args.offload), batch_size=len(batch),
                timings=timings, lumina_video_version=__version__,
            )
            files.write_json(out_dir / f"{name}.json", record)
            for k in totals:
                totals[k] += timings[k]
            print(f"wrote {out_dir / name}.mp4 (+ .json)  text {timings['text_s']:.2f}s  denoise "
                  f"{timings['denoise_s']:.2f}s  decode {timings['decode_s']:.2f}s")
    print(f"done: {len(prompts)} video(s) in {out_dir}; total text {totals['text_s']:.2f}s, denoise "
          f"{totals['denoise_s']:.2f}s, decode {totals['decode_s']:.2f}s, write {totals['write_s']:.2f}s")
    return 0


def _readable(config) -> dict:
    """The SamplingConfig as plain JSON values (time-aware values as [v0, [t1, v1], ...])."""
    from .sampling.schedule import patch_name

    return dict(steps=config.steps, shift=config.shift, renorm=config.renorm,
                guidance=config.guidance.to_official(), motion=config.motion.to_official(),
                neg_motion=config.neg_motion.to_official(), patch=config.patch.to_official(patch_name),
                multiscale=config.is_multiscale())
