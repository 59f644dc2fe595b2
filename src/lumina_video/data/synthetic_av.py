"""The synthetic audio-visual dataset (`lumina-video synth-av`): clips of the video dataset's objects
(`synthetic`, `vocab`) that slide, bounce or stay still, with a soundtrack rendered from the same ground
truth (`sound`), and exact impact times.

Geometry as in `synthetic` (pixels, x right, y down, an object's bounding box [c - s/2, c + s/2] for every
shape). The floor is the frame's bottom edge (y = size), the walls its left and right edges. Time t = k / fps
at frame k; a clip of F frames lasts T = F / fps and its sound T * 16000 samples. Speed words: a
`vocab.SPEEDS` word is its px per frame (`synthetic.speed_px`) at VOCAB_FPS = 8, the video dataset's and the
demo's frame rate, so "quickly" is as many px/s here as there (at 16 fps, half the px per frame); the
fastest word's speed is v_ref, which hums at -20 dBFS (`sound`). Motions:

    slide         the video dataset's straight line: a direction, a word whose path fits the frame for the whole
                  clip, a start from `synthetic.draw_start`; still: no motion, silent
    bounce_walls  horizontal at a word's speed |v|, reflected elastically by the walls: with W = size - s and
                  p(t) = p0 + |v| t (p0 = x0 - s/2 moving right, 2W - (x0 - s/2) left), q = p mod 2W,
                  x(t) = s/2 + (q if q <= W else 2W - q); impacts at p = mW, m >= 1
    bounce_floor  vertical under gravity g = GRAVITY * size px/s^2: the bottom edge's height above the floor is
                  h(t) = h_j + w_j (t - t_j) - g (t - t_j)^2 / 2 from contact to contact; from (h, w) at t the
                  next contact is at t + (w + u) / g, u = sqrt(w^2 + 2 g h), and it rebounds at e u (e ~
                  U(RESTITUTION)), or comes to rest if e u would rise less than REST_HOP of the frame. It starts
                  in flight, first hitting the floor at t1 with speed u1 ~ U(BOUNCE_SPEED) v_ref:
                  h0 = u1 t1 - g t1^2 / 2, upward speed w0 = g t1 - u1. A hop at 2 v_ref rises size / 8 and
                  lasts 1 s at any size; floor bounces reach 2 v_ref (a hum peak of -14 dBFS).
Bouncing objects are drawn (again, until so) with 1..MAX_IMPACTS impacts in [0, T), the first contact in
[MARGIN_S, T - MARGIN_S]. Objects pass through one another (only the floor and the walls collide).

Randomness: item i is drawn from default_rng([seed, i]), its sound's noise from default_rng([seed, i, 2]),
so a larger dataset extends a smaller one. Files: clips/NNNNNN.mp4 (H.264 + AAC), clips/NNNNNN.wav (the exact
sound, 16-bit PCM), clips/NNNNNN.json (the record, written last: an item whose three files exist and whose
record is the one this run computes is not rendered again), then synth_av.json, heldout.jsonl and last
manifest.jsonl. A clip with a held-out (colour, shape) pair in any of its objects goes to heldout.jsonl (with
`heldout: true`), the others to manifest.jsonl; no pair is held out unless asked (`--holdout`, as `synth`).
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np

from .._checks import is_int, number, positive_int, probability
from ..files import write_json
from . import sound, vocab
from .manifest import write_manifest
from .synthetic import draw_object_size, draw_start, render_clip, speed_px

FPS = 16
VOCAB_FPS = 8  # vocabulary speeds (px per frame) are read at the video dataset's 8 fps: the same px/s in both
GRAVITY = 1.0  # frame sides per s^2
RESTITUTION = (0.6, 0.85)
BOUNCE_SPEED = (1.0, 2.0)  # first floor contact's speed, in units of v_ref (a hop at 2 v_ref lasts 1 s)
REST_HOP = 1 / 64  # a rebound lower than this fraction of the frame comes to rest
MARGIN_S = 0.15
MAX_IMPACTS = 4
MOVING = ("slide", "bounce_floor", "bounce_walls")
SOURCE = "synthetic_av"


def word_speed(word: str, size: int) -> float:
    """A `vocab.SPEEDS` word in px/s on a `size`-pixel frame: its px per frame at VOCAB_FPS."""
    return speed_px(word, size) * VOCAB_FPS


def reference_speed(size: int) -> float:
    """v_ref: the fastest vocabulary speed in px/s, the speed that hums at -20 dBFS."""
    return word_speed(max(vocab.SPEEDS, key=vocab.SPEEDS.get), size)


def rest_speed(size: int) -> float:
    """sqrt(2 g REST_HOP size) px/s: a floor rebound slower than this (one that would rise less than
    REST_HOP of the frame, 2 px at 128 px, too little to see) comes to rest instead."""
    return math.sqrt(2 * GRAVITY * size * REST_HOP * size)


def _floor_flights(obj: dict, size: int, duration: float) -> tuple[list[float], np.ndarray]:
    """(impact times in [0, duration), segments (J, 4) rows (start, h, w, g)); stops after MAX_IMPACTS + 1."""
    g, r = obj["gravity"], obj["object_size"] / 2
    t, h, w = 0.0, size - (obj["start_y"] + r), -obj["velocity_y"]  # height and upward speed
    segments, impacts = [(0.0, h, w, g)], []
    while len(impacts) <= MAX_IMPACTS:
        u = math.sqrt(w * w + 2 * g * max(h, 0.0))
        t += (w + u) / g
        if t >= duration:
            break
        impacts.append(t)
        h, w = 0.0, obj["restitution"] * u
        if w < obj["rest_speed"]:
            segments.append((t, 0.0, 0.0, 0.0))  # at rest on the floor
            break
        segments.append((t, h, w, g))
    return impacts, np.array(segments)


def _walls(obj: dict, size: int):
    """(p0, W, |v|) of the unfolded wall motion (module docstring)."""
    u, v, width = obj["start_x"] - obj["object_size"] / 2, obj["velocity_x"], size - obj["object_size"]
    return (u if v > 0 else 2 * width - u), width, abs(v)


def state(obj: dict, size: int, t, duration: float) -> tuple[np.ndarray, ...]:
    """(x, y, vx, vy) of the object's centre at times t (seconds, (N,)), px and px/s; right-continuous at
    impacts (the velocity just after)."""
    t = np.asarray(t, dtype=np.float64)
    motion = obj["motion"]
    if motion in ("slide", "still"):
        vx, vy = obj["velocity_x"], obj["velocity_y"]
        return obj["start_x"] + vx * t, obj["start_y"] + vy * t, np.full_like(t, vx), np.full_like(t, vy)
    if motion == "bounce_walls":
        p0, width, v = _walls(obj, size)
        q = np.mod(p0 + v * t, 2 * width)
        x = obj["object_size"] / 2 + np.where(q <= width, q, 2 * width - q)
        return x, np.full_like(t, obj["start_y"]), np.where(q < width, v, -v), np.zeros_like(t)
    if motion == "bounce_floor":
        _, seg = _floor_flights(obj, size, duration)
        j = np.searchsorted(seg[:, 0], t, side="right") - 1
        dt = t - seg[j, 0]
        h = np.maximum(seg[j, 1] + seg[j, 2] * dt - seg[j, 3] * dt**2 / 2, 0.0)
        y = size - obj["object_size"] / 2 - h
        return np.full_like(t, obj["start_x"]), y, np.zeros_like(t), -(seg[j, 2] - seg[j, 3] * dt)
    raise ValueError(f"unknown motion {motion!r}; accepted: {[*MOVING, 'still']}")


def impact_times(obj: dict, size: int, duration: float) -> list[float]:
    """The object's impact times in [0, duration), sorted (exact, analytic)."""
    if obj["motion"] == "bounce_floor":
        return _floor_flights(obj, size, duration)[0]
    if obj["motion"] == "bounce_walls":
        p0, width, v = _walls(obj, size)
        first = math.floor(p0 / width) + 1
        times = ((m * width - p0) / v for m in range(first, first + MAX_IMPACTS + 2))
        return [t for t in times if t < duration]
    return []


def speeds(obj: dict, size: int, t, duration: float) -> np.ndarray:
    """|velocity| in px/s at times t."""
    _, _, vx, vy = state(obj, size, t, duration)
    return np.hypot(vx, vy)


def _object(colour, shape, motion, direction, speed, object_size, x, y, vx, vy, **extra) -> dict:
    return {"colour": colour, "shape": shape, "motion": motion, "direction": direction, "speed": speed,
            "note_hz": sound.NOTES[colour], "timbre": sound.TIMBRES[shape], "object_size": int(object_size),
            "start_x": float(x), "start_y": float(y), "velocity_x": float(vx), "velocity_y": float(vy), **extra}


def _slide(rng, size, frames, fps, still: bool, avoid) -> dict:
    """The video dataset's straight line: a direction, a speed word whose path fits the frame for the whole
    clip, a start drawn by `synthetic.draw_start` (unrounded); or, `still`, no motion."""
    colour, shape, s = _colour_shape_size(rng, size, avoid)
    seconds = (frames - 1) / fps
    fits = [w for w in vocab.SPEEDS if word_speed(w, size) * seconds <= size - s]
    if not still and not fits:
        raise ValueError(f"no vocabulary speed fits a {seconds:.2f} s path in a {size}-pixel frame; give shorter clips")
    direction = None if still else str(rng.choice(list(vocab.DIRECTIONS)))
    speed = None if still else str(rng.choice(fits))
    v = 0.0 if still else word_speed(speed, size)
    x, y = draw_start(rng, size, s, direction, v * seconds, decimals=None)
    dx, dy = vocab.DIRECTIONS[direction] if direction else (0, 0)
    return _object(colour, shape, "still" if still else "slide", direction, speed, s, x, y, dx * v, dy * v)


def _colour_shape_size(rng, size, avoid) -> tuple[str, str, int]:
    colour = str(rng.choice([c for c in vocab.COLORS if c != avoid]))
    return colour, str(rng.choice(vocab.SHAPES)), draw_object_size(rng, size)


def _walls_object(rng, size, frames, fps, avoid) -> dict:
    """First wall contact at t1 ~ U(MARGIN_S, min(W / v, T - MARGIN_S)); the start is |v| t1 before it."""
    colour, shape, s = _colour_shape_size(rng, size, avoid)
    direction, speed = str(rng.choice(["right", "left"])), str(rng.choice(list(vocab.SPEEDS)))
    v = word_speed(speed, size)
    t1 = rng.uniform(MARGIN_S, min((size - s) / v, frames / fps - MARGIN_S))
    x = size - s / 2 - v * t1 if direction == "right" else s / 2 + v * t1
    y = rng.uniform(s / 2, size - s / 2)
    return _object(colour, shape, "bounce_walls", direction, speed, s, x, y, v if direction == "right" else -v, 0.0,
                   gravity=0.0, restitution=1.0)


def _floor_object(rng, size, frames, fps, avoid) -> dict:
    """In flight at t = 0, first contact at t1 with speed u1: h0 = u1 t1 - g t1^2 / 2, w0 = g t1 - u1."""
    colour, shape, s = _colour_shape_size(rng, size, avoid)
    g, v_ref = GRAVITY * size, reference_speed(size)
    e = rng.uniform(*RESTITUTION)
    u1 = rng.uniform(*BOUNCE_SPEED) * v_ref
    t1 = rng.uniform(MARGIN_S, min(2 * u1 / g, frames / fps - MARGIN_S))
    x = rng.uniform(s / 2, size - s / 2)
    h0, w0 = u1 * t1 - g * t1**2 / 2, g * t1 - u1
    return _object(colour, shape, "bounce_floor", None, None, s, x, size - s / 2 - h0, 0.0, -w0,
                   gravity=g, restitution=float(e), rest_speed=rest_speed(size))


def sample_object_av(rng, motion: str, size: int, frames: int, fps: float = FPS, avoid: str | None = None) -> dict:
    """One object of `motion` whose path stays in the frame; a bouncing one with 1..MAX_IMPACTS impacts
    in the clip (drawn again until so, at most 100 times)."""
    if motion in ("slide", "still"):
        return _slide(rng, size, frames, fps, motion == "still", avoid)
    draw = {"bounce_walls": _walls_object, "bounce_floor": _floor_object}.get(motion)
    if draw is None:
        raise ValueError(f"unknown motion {motion!r}; accepted: {[*MOVING, 'still']}")
    for _ in range(100):
        obj = draw(rng, size, frames, fps, avoid)
        if 1 <= len(impact_times(obj, size, frames / fps)) <= MAX_IMPACTS:
            return obj
    raise ValueError(f"could not draw a {motion} object with 1..{MAX_IMPACTS} impacts in {frames} frames")


def object_phrase(obj: dict) -> str:
    """The caption of one object: the video dataset's grammar, or "... bouncing on the floor" /
    "... bouncing between the walls {speed}"."""
    if obj["motion"] in ("slide", "still"):
        return vocab.caption(obj["colour"], obj["shape"], obj["direction"], obj["speed"])
    subject = vocab.caption(obj["colour"], obj["shape"], None).removesuffix(" staying still")
    if obj["motion"] == "bounce_floor":
        return f"{subject} bouncing on the floor"
    return f"{subject} bouncing between the walls {obj['speed']}"


def sample_clip(rng: np.random.Generator, size: int, fps: float, frame_range: tuple[int, int], still_prob: float,
                two_object_prob: float, background_caption_prob: float = 0.5) -> dict:
    """Attributes of one clip: frames ~ U{frame_range}, still with `still_prob` (every object still), two
    objects with `two_object_prob` (different colours; the second still with `still_prob` or moving);
    a moving object's motion is uniform over MOVING."""
    frames = int(rng.integers(frame_range[0], frame_range[1] + 1))
    still = bool(rng.random() < still_prob)
    two = bool(rng.random() < two_object_prob)
    motions = ["still" if still else str(rng.choice(MOVING))]
    if two:
        motions.append("still" if still or rng.random() < still_prob else str(rng.choice(MOVING)))
    objs = [sample_object_av(rng, motions[0], size, frames, fps)]
    objs += [sample_object_av(rng, m, size, frames, fps, avoid=objs[0]["colour"]) for m in motions[1:]]
    background = str(rng.choice(list(vocab.BACKGROUNDS)))
    textured = bool(rng.random() < 0.5)
    text = " and ".join(object_phrase(o) for o in objs)
    if rng.random() < background_caption_prob:
        text += f" on a {background} background"
    return {"caption": text, "frames": frames, "background": background, "textured": textured,
            "texture_seed": int(rng.integers(2**31)), "objects": objs}


def render_frames(objects: list[dict], size: int, frames: int, fps: float, background: str, textured: bool,
                  texture_seed: int) -> np.ndarray:
    """(frames, size, size, 3) uint8: `synthetic.render_clip` of each frame with the objects at their
    positions at t = k / fps (drawn in order, the same anti-aliasing and backgrounds)."""
    t = np.arange(frames) / fps
    centres = [state(o, size, t, frames / fps)[:2] for o in objects]  # per object: x (F,), y (F,)
    out = np.empty((frames, size, size, 3), dtype=np.uint8)
    for k in range(frames):
        placed = [{"color": o["colour"], "shape": o["shape"], "direction": None, "object_size": o["object_size"],
                   "start_x": float(x[k]), "start_y": float(y[k])} for o, (x, y) in zip(objects, centres)]
        attrs = {"background": background, "textured": textured, "objects": placed}
        out[k] = render_clip(attrs, size, 1, texture_seed)[0]
    return out


def render_sound(objects: list[dict], size: int, duration: float, rng: np.random.Generator,
                 sample_rate: int = sound.SAMPLE_RATE) -> tuple[np.ndarray, float]:
    """(wave (N,) float32, mix gain), N = round(duration * sample_rate): each object's hum at its speed at
    every sample plus its strikes (`sound.source`), mixed with the noise floor (`sound.mix`)."""
    n = round(duration * sample_rate)
    t = sound.sample_times(n, sample_rate)
    v_ref = reference_speed(size)
    sources = [sound.source(o["note_hz"], o["timbre"], speeds(o, size, t, duration),
                            impact_times(o, size, duration), v_ref, rng, sample_rate) for o in objects]
    return sound.mix(sources, rng)


def resound(record: dict, seed: int, shape: str | None = None) -> np.ndarray:
    """The sound of item `record` (build_item's record of dataset `seed`; i is its clip's file number) rendered
    again, with its noise, and with every object's shape (so its timbre) replaced by `shape` when given: the
    same events, note, levels and noise floor, other overtones (a training augmentation of the V2A model)."""
    if shape is not None and shape not in sound.TIMBRES:
        raise ValueError(f"unknown shape {shape!r}; accepted: {list(sound.TIMBRES)}")
    objects = [o if shape is None else {**o, "shape": shape, "timbre": sound.TIMBRES[shape]}
               for o in record["objects"]]
    i = int(Path(record["path"]).stem)
    return render_sound(objects, record["width"], record["duration"], np.random.default_rng([seed, i, 2]))[0]


def build_item(seed: int, i: int, size: int, fps: float, frame_range: tuple[int, int], still_prob: float,
               two_object_prob: float, holdout: set) -> tuple[dict, np.ndarray]:
    """(manifest record, wave) of item i; pure in its arguments."""
    attrs = sample_clip(np.random.default_rng([seed, i]), size, fps, frame_range, still_prob, two_object_prob)
    frames, objs = attrs["frames"], attrs["objects"]
    duration = frames / fps
    wave, gain = render_sound(objs, size, duration, np.random.default_rng([seed, i, 2]))
    t = np.arange(frames) / fps
    for o in objs:
        o["speed_track"] = [round(float(v), 4) for v in speeds(o, size, t, duration)]
    impacts = sorted((time, j) for j, o in enumerate(objs) for time in impact_times(o, size, duration))
    return {
        "path": f"clips/{i:06d}.mp4", "audio_path": f"clips/{i:06d}.wav", "type": "video",
        "caption": attrs["caption"], "fps": float(fps), "num_frames": frames, "duration": duration,
        "width": size, "height": size, "sample_rate": sound.SAMPLE_RATE,
        "still": all(o["motion"] == "still" for o in objs),
        "heldout": any((o["colour"], o["shape"]) in holdout for o in objs),
        "objects": objs, "impacts": [{"time": time, "object": j} for time, j in impacts],
        "source": SOURCE, "background": attrs["background"], "textured": attrs["textured"],
        "texture_seed": attrs["texture_seed"], "mix_gain": gain,
    }, wave


def _write_item(out_dir: Path, record: dict, wave: np.ndarray) -> bool:
    """Render and write the item's mp4 and wav, then its record; False (nothing written) when all three
    files exist and the record on disk equals `record` (but for `heldout`: a new holdout renders nothing)."""
    from ..audio.media import write_video_with_audio, write_wav

    video, audio = out_dir / record["path"], out_dir / record["audio_path"]
    sidecar = video.with_suffix(".json")
    if video.is_file() and audio.is_file() and sidecar.is_file():
        try:
            old, new = json.loads(sidecar.read_text()), json.loads(json.dumps(record))
            if {**old, "heldout": None} == {**new, "heldout": None}:
                return False
        except (OSError, ValueError, TypeError):
            pass  # unreadable: render again
    frames = render_frames(record["objects"], record["width"], record["num_frames"], record["fps"],
                           record["background"], record["textured"], record["texture_seed"])
    write_wav(audio, wave, record["sample_rate"])
    write_video_with_audio(video, frames, record["fps"], wave, record["sample_rate"])
    write_json(sidecar, record)
    return True


def _check_args(n, size, min_seconds, max_seconds, fps, still_prob, two_object_prob, holdout) -> tuple[int, int]:
    """Validate the arguments; return the (min, max) number of frames of a clip."""
    positive_int(n, "n")
    if not is_int(size) or size < 32 or size % 2:
        raise ValueError(f"size must be an even integer >= 32, got {size!r}")
    number(min_seconds, "min_seconds", 0, lo_open=True)
    number(max_seconds, "max_seconds", min_seconds)
    probability(still_prob, "still_prob")
    probability(two_object_prob, "two_object_prob")
    for colour, shape in holdout:
        if colour not in vocab.COLORS or shape not in vocab.SHAPES:
            raise ValueError(f"holdout pair ({colour!r}, {shape!r}) is not in the vocabulary; colours "
                             f"{list(vocab.COLORS)}, shapes {list(vocab.SHAPES)}")
    lo, hi = math.ceil(min_seconds * fps - 1e-9), math.floor(max_seconds * fps + 1e-9)
    if hi < lo or lo < 2 * MARGIN_S * fps + 1:
        raise ValueError(f"no clip length fits {min_seconds}..{max_seconds} s at {fps} fps with at least "
                         f"{2 * MARGIN_S + 1 / fps:.2f} s; give longer clips")
    return lo, hi


def make_dataset(out_dir, n: int, size: int = 128, seed: int = 0, min_seconds: float = 2.0, max_seconds: float = 4.0,
                 two_object_prob: float = 0.25, still_prob: float = 0.15, holdout_pairs=(), fps: float = FPS,
                 progress: bool = False) -> tuple[Path, dict]:
    """Render n clips into out_dir and write synth_av.json (the arguments), heldout.jsonl (the clips with a
    held-out pair; empty when none is held out) and manifest.jsonl (the others), in that order.
    Returns (manifest path, {clips, rendered, reused, heldout, records})."""
    holdout = {tuple(p) for p in holdout_pairs}
    frame_range = _check_args(n, size, min_seconds, max_seconds, fps, still_prob, two_object_prob, holdout)
    out_dir = Path(out_dir)
    items = range(n)
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="synth-av", unit="clip")
    records, rendered = [], 0
    for i in items:
        record, wave = build_item(seed, i, size, fps, frame_range, still_prob, two_object_prob, holdout)
        rendered += _write_item(out_dir, record, wave)
        records.append(record)
    write_json(out_dir / "synth_av.json", {
        "n": n, "size": size, "seed": seed, "min_seconds": min_seconds, "max_seconds": max_seconds, "fps": fps,
        "two_object_prob": two_object_prob, "still_prob": still_prob, "holdout_pairs": sorted(holdout)})
    write_manifest(out_dir / "heldout.jsonl", [r for r in records if r["heldout"]])
    manifest = out_dir / "manifest.jsonl"
    write_manifest(manifest, [r for r in records if not r["heldout"]])
    return manifest, {"clips": n, "rendered": rendered, "reused": n - rendered,
                      "heldout": sum(r["heldout"] for r in records), "records": records}


def summarize(records: list[dict]) -> str:
    """One line: clips, seconds, two-object clips, impacts, objects per motion."""
    motions = Counter(o["motion"] for r in records for o in r["objects"])
    return (f"{len(records)} clips, {sum(r['duration'] for r in records):.0f} s, "
            f"{sum(len(r['objects']) > 1 for r in records)} with two objects, "
            f"{sum(len(r['impacts']) for r in records)} impacts; objects "
            + ", ".join(f"{v} {k}" for k, v in sorted(motions.items())))
