"""`lumina-video eval-audio-prompts --out DIR [--v2a PIPE]`: does the soundtrack a V2A pipeline makes for a
GENERATED video sound like the prompt? Text -> video (the bundled demo model, or --model) -> audio (the bundled
V2A demo model, or --v2a) -> scored against what the prompt names, with eval-audio's rules (audio_metrics.py).

Prompts (`prompt_set`): N captions of the synthetic vocabulary the demo model was trained on
(`data.vocab.caption`, no speed word, no background: "a red circle moving to the right", "a blue square
staying still"). Prompt k stays still when k % 4 == 0 (ceil(N / 4) of them), else moves in the next of right,
left, up, down in turn; its colour is the least used so far (ties: the least used among prompts of its kind,
still or moving, then vocabulary order), its shape likewise (ties: the least used with that colour, then
with its kind). So the colour, shape and direction counts differ by at most one, for any N.

Prompt k's video is generated with seed S + k, and its soundtrack with seed S + k from the frames and their
times i / fps (the V2A pipeline gets the prompt as its text condition only with --v2a-prompt: by default the
colour has to come through the pixels). Checks of one soundtrack against the prompt's object (its note
`sound.NOTES[colour]`, its timbre `sound.TIMBRES[shape]`, sounding unless still):
    pitch     moving prompts: `audio_metrics.notes`, eval-audio's pitch rule (median pyin f0 within
              PITCH_TOLERANCE = 50 cents of the note)
    timbre    moving prompts: the same call's timbre (the nearest harmonic template) against the shape's
    silence   still prompts: `audio_metrics.silence`, eval-audio's rule (no 10 ms window above -40 dBFS)
for three soundtracks of each prompt:
    value     the V2A soundtrack of the prompt's generated video
    ceiling   the synthetic AV dataset's exact sound of the prompt (`synthetic_av.render_sound`: the object
              sliding at the default speed word, or, still, the noise floor alone): the checks' own ceiling
    shuffled  the V2A soundtrack of another prompt's video (eval-audio's seeded `derangement`), the chance
              level; it is not 0, as a partner can name the same colour (`same_colour` counts those pairs)
The frames are checked too (eval/attributes.py: colour, moving or still), so that a wrong pitch for a video
of the wrong colour can be told from the V2A model's own errors ("pitch | video colour right").

Clip length: the demo model makes 16 frames at 8 fps (2.0 s at 128 px). The V2A demo is trained on 2 s
windows of 2-4 s synth-av clips at 16 fps and 128 px: the length fits (checked against the V2A pipeline's
limits before anything runs), but the frame rate is half the training one (its encoders place frames on
their grids by timestamp, so each frame is held for two 16 fps steps).

Files in DIR, each written atomically: clips/NNN.mp4 (the generated frames with the V2A soundtrack),
clips/NNN.wav, report.json (settings, every prompt's checks, the tallies), report.md (counts and rates per
check and per colour). Tallies and tables: audio_prompts_report.py.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .._checks import positive_int
from ..data import sound, vocab
from ..data.synthetic_av import render_sound, word_speed
from . import audio_metrics as am
from .attributes import check_attributes
from .audio_prompts_report import summarize, write_report
from .audio_run import derangement, fit_length

STILL_EVERY = 4  # prompt k stays still when k % STILL_EVERY == 0
CONDITIONS = ("value", "ceiling", "shuffled")


# ---------------------------------------------------------------------------------------------
# Prompts and what they name
# ---------------------------------------------------------------------------------------------


def prompt_set(n: int) -> list[dict]:
    """n prompts {"prompt", "color", "shape", "direction" (None: still)}, balanced (module docstring)."""
    positive_int(n, "n")
    directions, used, out = list(vocab.DIRECTIONS), Counter(), []
    for k in range(n):
        kind = "still" if k % STILL_EVERY == 0 else "moving"
        direction = None if kind == "still" else directions[(k - k // STILL_EVERY - 1) % len(directions)]
        colour = min(vocab.COLORS, key=lambda c: (used["colour", c], used[kind, c]))
        shape = min(vocab.SHAPES, key=lambda s: (used["shape", s], used["pair", colour, s], used[kind, s]))
        for key in (("colour", colour), (kind, colour), ("shape", shape), ("pair", colour, shape), (kind, shape)):
            used[key] += 1
        out.append({"prompt": vocab.caption(colour, shape, direction), "color": colour, "shape": shape,
                    "direction": direction})
    return out


def prompt_object(p: dict, size: int) -> dict:
    """The synthetic AV object a prompt names: note and timbre from colour and shape, sliding at the default
    speed word towards its direction (px/s on a `size`-pixel frame), or still."""
    dx, dy = vocab.DIRECTIONS[p["direction"]] if p["direction"] else (0, 0)
    v = 0.0 if p["direction"] is None else word_speed(vocab.DEFAULT_SPEED, size)
    return {"colour": p["color"], "shape": p["shape"], "motion": "still" if p["direction"] is None else "slide",
            "note_hz": sound.NOTES[p["color"]], "timbre": sound.TIMBRES[p["shape"]], "object_size": size // 4,
            "start_x": size / 2, "start_y": size / 2, "velocity_x": dx * v, "velocity_y": dy * v}


def reference_sound(p: dict, size: int, seconds: float, seed) -> np.ndarray:
    """(round(seconds * 16000),) the dataset's exact sound of the prompt (`prompt_object`), noise from `seed`."""
    return render_sound([prompt_object(p, size)], size, seconds, np.random.default_rng(seed))[0]


def score_soundtrack(wave: np.ndarray, p: dict, size: int = 128) -> dict:
    """eval-audio's pitch, timbre and silence checks of one soundtrack against the prompt (module docstring):
    {"pitch", "timbre", "silence": True / False, None where the check does not apply, "notes", "levels"}."""
    obj = prompt_object(p, size)
    notes = am.notes(wave, [obj])                              # None for a still prompt
    quiet = am.silence(wave) if obj["motion"] == "still" else None
    return {"pitch": None if notes is None else bool(notes["pitch_ok"]),
            "timbre": None if notes is None else bool(notes["timbre_ok"]),
            "silence": None if quiet is None else bool(quiet["silent"]), "notes": notes, "levels": quiet}


def check_video(frames: np.ndarray, p: dict) -> dict:
    """The generated frames against the prompt (eval/attributes.py): {"color", "motion": True / False / None
    (not measurable), "measured_color", "error"}."""
    try:
        checked = check_attributes(frames, {k: p[k] for k in ("color", "shape", "direction")} | {"speed": None})
    except ValueError as e:
        return {"color": None, "motion": None, "measured_color": None, "error": f"cannot score: {e}"}
    return {"color": bool(checked["correct"]["color"]), "motion": bool(checked["correct"]["motion"]),
            "measured_color": checked["measured"]["color"], "error": None}


# ---------------------------------------------------------------------------------------------
# Generating
# ---------------------------------------------------------------------------------------------


def load_pipelines(model, v2a_dir, device: str):
    """(text-to-video pipeline in `lumina-video generate`'s dtypes, V2A pipeline in fp32), on `device`."""
    import torch

    from ..devices import generation_dtypes
    from ..pipeline import LuminaVideoPipeline
    from ..pipeline.v2a import LuminaV2APipeline

    if v2a_dir is not None and not Path(v2a_dir).is_dir():
        raise FileNotFoundError(f"no V2A pipeline folder at {v2a_dir}")
    t2v = LuminaVideoPipeline.from_pretrained(model, dtype={**generation_dtypes(device), "default": torch.float32})
    return t2v.to(device), LuminaV2APipeline.from_pretrained(v2a_dir).to(device)  # None: the bundled one


def check_clip_length(t2v, v2a, v2a_steps) -> dict:
    """The clip the text-to-video model makes ({"frames", "fps", "seconds", "height", "width"}) after the
    V2A pipeline's own checks of that length (nothing computed) and of its sample rate (16 kHz, the metrics')."""
    from ..pipeline.v2a import video_items

    d = t2v.defaults
    frames, fps, height, width = int(d["num_frames"]), float(d["fps"]), int(d["height"]), int(d["width"])
    if v2a.sample_rate != am.SAMPLE_RATE:
        raise ValueError(f"the V2A pipeline makes {v2a.sample_rate} Hz audio; the checks need {am.SAMPLE_RATE} Hz")
    items = video_items(np.zeros((frames, 2, 2, 3), np.uint8), fps=fps)
    steps = v2a.defaults["num_inference_steps"] if v2a_steps is None else v2a_steps
    try:
        v2a.check_inputs(items, [None], [frames / fps], steps, v2a.defaults["guidance_scale"])
    except ValueError as e:
        raise ValueError(f"the text-to-video model's {frames}-frame clips at {fps:g} fps do not fit the V2A "
                         f"pipeline: {e}") from None
    return {"frames": frames, "fps": fps, "seconds": frames / fps, "height": height, "width": width}


def generate_one(t2v, v2a, p: dict, seed: int, fps: float, steps=None, v2a_steps=None,
                 v2a_prompt: bool = False) -> tuple[np.ndarray, np.ndarray, dict]:
    """(frames (F, H, W, 3) uint8, wave (N,) float32, timings) of one prompt: video seed `seed`, audio seed `seed`."""
    t0 = time.perf_counter()
    frames = t2v(p["prompt"], seed=seed, steps=steps, progress=False).frames[0]
    t1 = time.perf_counter()
    out = v2a(frames, p["prompt"] if v2a_prompt else None, fps=fps, seed=seed, num_inference_steps=v2a_steps,
              progress=False)
    return frames, out.audio[0], {"t2v_s": t1 - t0, "v2a_s": time.perf_counter() - t1}


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def evaluate_prompts(v2a_dir, out_dir, *, n: int = 40, model=None, seed: int = 0, steps=None, v2a_steps=None,
                     v2a_prompt: bool = False, device: str | None = None, progress: bool = True) -> dict:
    """Generate, add sound, check and report (module docstring); returns the report dict (report.json)."""
    from ..audio.media import write_video_with_audio, write_wav
    from ..devices import default_device

    prompts, device = prompt_set(n), device or default_device()
    t2v, v2a = load_pipelines(model, v2a_dir, device)
    clip = check_clip_length(t2v, v2a, v2a_steps)
    clips_dir = Path(out_dir) / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)
    rows, waves = [], []
    for k, p in enumerate(tqdm(prompts, desc="text -> video -> audio", unit="prompt", disable=not progress)):
        frames, wave, timings = generate_one(t2v, v2a, p, seed + k, clip["fps"], steps, v2a_steps, v2a_prompt)
        name = f"{k:03d}"
        write_video_with_audio(clips_dir / f"{name}.mp4", frames, clip["fps"], wave, v2a.sample_rate)
        write_wav(clips_dir / f"{name}.wav", wave, v2a.sample_rate)
        rows.append({**p, "seed": seed + k, "video_file": f"clips/{name}.mp4", "timings": timings,
                     "video": check_video(frames, p)})
        waves.append(wave)
    score_all(rows, waves, clip, seed, progress)
    report = {"settings": run_settings(model, v2a_dir, t2v, v2a, clip, n, seed, steps, v2a_steps, v2a_prompt, device),
              "summary": summarize(rows, CONDITIONS), "prompts": rows}
    report["files"] = write_report(report, out_dir)
    return report


def score_all(rows: list[dict], waves: list[np.ndarray], clip: dict, seed: int, progress: bool) -> None:
    """Add each row's "scores" {condition: checks} and "shuffled_from" (the partner prompt's index)."""
    partner = derangement(len(rows), seed)
    for k, row in enumerate(tqdm(rows, desc="checks", unit="prompt", disable=not progress)):
        t0 = time.perf_counter()
        truth = reference_sound(row, clip["height"], clip["seconds"], [seed, k])
        other = None if partner is None else fit_length(waves[partner[k]], len(waves[k]))
        row["shuffled_from"] = None if partner is None else partner[k]
        row["same_colour"] = None if partner is None else rows[partner[k]]["color"] == row["color"]
        row["scores"] = {"value": score_soundtrack(waves[k], row, clip["height"]),
                         "ceiling": score_soundtrack(truth, row, clip["height"]),
                         "shuffled": None if other is None else score_soundtrack(other, row, clip["height"])}
        row["timings"]["checks_s"] = time.perf_counter() - t0


def run_settings(model, v2a_dir, t2v, v2a, clip, n, seed, steps, v2a_steps, v2a_prompt, device) -> dict:
    from ..devices import dtypes_name

    sampling = t2v.default_sampling if steps is None else t2v.resolve_sampling(steps=steps)
    return {"model": "bundled demo model" if model is None else str(model),
            "v2a": "bundled V2A demo model" if v2a_dir is None else str(v2a_dir), "n": n, "seed": seed,
            "device": device, "t2v_dtype": dtypes_name({"transformer": t2v.transformer.dtype}),
            "t2v_sampling": sampling.to_official(), "clip": clip, "v2a_prompt": v2a_prompt,
            "v2a_steps": v2a.defaults["num_inference_steps"] if v2a_steps is None else v2a_steps,
            "v2a_guidance_scale": v2a.defaults["guidance_scale"], "still_every": STILL_EVERY,
            "pitch_tolerance_cents": am.PITCH_TOLERANCE, "silence_dbfs": am.SILENCE_DBFS,
            "sample_rate": v2a.sample_rate}


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def add_cli_arguments(parser) -> None:
    parser.add_argument("--v2a", metavar="DIR", default=None,
                        help="V2A pipeline folder (LuminaV2APipeline; default: the bundled V2A demo model)")
    parser.add_argument("--out", metavar="DIR", required=True, help="report folder (report.json, report.md, clips/)")
    parser.add_argument("--n", type=int, default=40, help="number of prompts (default 40; a quarter stay still)")
    parser.add_argument("--model", metavar="DIR", default=None,
                        help="text-to-video pipeline folder of the synthetic vocabulary (default: the bundled demo)")
    parser.add_argument("--seed", type=int, default=0, help="prompt k: video and audio seed SEED + k; the "
                        "shuffled control's seed (default 0)")
    parser.add_argument("--steps", type=int, default=None, help="text-to-video steps (default: the model's)")
    parser.add_argument("--v2a-steps", type=int, default=None, help="V2A Euler steps (default: the pipeline's)")
    parser.add_argument("--v2a-prompt", action="store_true",
                        help="give the V2A pipeline the prompt as its text condition (default: frames only)")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def cli_main(args) -> int:
    from .audio_prompts_report import summary_line

    t0 = time.perf_counter()
    report = evaluate_prompts(args.v2a, args.out, n=args.n, model=args.model, seed=args.seed, steps=args.steps,
                              v2a_steps=args.v2a_steps, v2a_prompt=args.v2a_prompt, device=args.device,
                              progress=not args.no_progress)
    print(summary_line(report))
    print(f"report: {report['files']['markdown']} ({time.perf_counter() - t0:.0f} s)")
    return 0
