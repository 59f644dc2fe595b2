"""Attribute checks for prompts in the synthetic vocabulary (`lumina_video.data.vocab`), from pixels.

Per clip (T, H, W, 3) uint8:
 1. Segment: background b = median border colour; foreground = colour distance > tau
    (`segment.foreground_masks`); the object is the largest connected region of each frame.
 2. Colour: median RGB of the object's interior pixels (its mask eroded by one pixel, all frames);
    the name is the nearest `vocab.COLORS` entry (Euclidean RGB).
 3. Coverage: alpha = <I - b, o - b> / |o - b|^2 clipped to [0, 1] (linear unmixing of object
    colour o and background b), inside the object's region grown by 2 px, so anti-aliased edges
    count in proportion.
 4. Shape: fill = sum(alpha) / (width * height), width = sum over columns of the column's largest
    alpha (likewise height): circle pi/4 ~ 0.785, square 1, triangle 0.5; nearest of these wins.
 5. Motion: centroid c_t of alpha per frame; least-squares line c_t = c_0 + v t. speed = |v| in
    px/frame; static if speed < 0.25 * s (s = min(H, W) / 64, the vocabulary's speed unit), else
    direction = sign of the larger component of v, speed word = nearest `vocab.SPEEDS` value * s
    in log scale.
"""
from __future__ import annotations

import math
import re

import cv2
import numpy as np

from ..data import vocab
from ..data.video_io import check_frames
from .format import ATTRIBUTES
from .segment import background_colour, foreground_masks, largest_component

SHAPE_FILL: dict[str, float] = {"circle": math.pi / 4, "square": 1.0, "triangle": 0.5}
STATIC_FRACTION = 0.25  # static below this many vocabulary speed units (the slowest word is 0.5)


def speed_unit(height: int, width: int) -> float:
    """Pixels per frame of one vocabulary speed unit: the vocabulary is defined on 64-px frames."""
    return min(height, width) / 64.0


def requested_speed_px(expected: dict, height: int, width: int) -> float:
    """Requested speed in px/frame: `speed_px` when the record has it, else from the speed word; 0 if still."""
    if expected.get("direction") is None:
        return 0.0
    if expected.get("speed_px") is not None:
        return float(expected["speed_px"])
    return vocab.SPEEDS[expected.get("speed") or vocab.DEFAULT_SPEED] * speed_unit(height, width)


def nearest_colour(rgb) -> str:
    rgb = np.asarray(rgb, np.float32)
    return min(vocab.COLORS, key=lambda c: float(np.linalg.norm(rgb - np.float32(vocab.COLORS[c]))))


def speed_word(speed_px: float, unit: float) -> str:
    """Nearest vocabulary speed word in log scale."""
    return min(vocab.SPEEDS, key=lambda w: abs(math.log(max(speed_px, 1e-6) / (vocab.SPEEDS[w] * unit))))


def object_masks(frames: np.ndarray) -> np.ndarray:
    """(T, H, W) bool: the largest foreground region of each frame."""
    return np.stack([largest_component(m) for m in foreground_masks(frames)])


def object_alpha(frames: np.ndarray, masks: np.ndarray, background: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """(T, H, W) float32 coverage of the object colour over the background (step 3 of the module doc)."""
    axis = colour.astype(np.float32) - background.astype(np.float32)  # (3,)
    alpha = (frames.astype(np.float32) - background) @ axis / max(float(axis @ axis), 1e-6)
    kernel = np.ones((5, 5), np.uint8)
    region = np.stack([cv2.dilate(m.astype(np.uint8), kernel) > 0 for m in masks])
    return np.where(region, np.clip(alpha, 0.0, 1.0), 0.0).astype(np.float32)


def fill_ratio(alpha: np.ndarray) -> float | None:
    """Soft area / soft bounding box of one frame's coverage map (H, W); None if empty."""
    width, height = float(alpha.max(axis=0).sum()), float(alpha.max(axis=1).sum())
    if width < 1.0 or height < 1.0:
        return None
    return float(alpha.sum()) / (width * height)


def fit_velocity(times: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Least-squares slope (vx, vy) of centroids (N, 2) against times (N,); zeros with < 2 points."""
    if len(times) < 2:
        return np.zeros(2)
    t = times - times.mean()
    return (t[:, None] * (centroids - centroids.mean(axis=0))).sum(axis=0) / (t * t).sum()


def measure_attributes(frames: np.ndarray) -> dict:
    """What the pixels show: {color, rgb, shape, fill, moving, direction, speed, speed_px, velocity,
    frames_with_object}. Values are None when no object is found."""
    frames = check_frames(frames)
    h, w = frames.shape[1:3]
    unit = speed_unit(h, w)
    masks = object_masks(frames)  # (T, H, W)
    found = masks.reshape(len(masks), -1).any(axis=1)
    result = {"color": None, "rgb": None, "shape": None, "fill": None, "moving": None, "direction": None,
              "speed": None, "speed_px": None, "velocity": None, "frames_with_object": int(found.sum())}
    if not found.any():
        return result
    kernel = np.ones((3, 3), np.uint8)
    interior = np.stack([cv2.erode(m.astype(np.uint8), kernel) > 0 for m in masks])
    core = interior if interior.any() else masks
    rgb = np.median(frames[core].astype(np.float32), axis=0)  # (3,)
    background = background_colour(frames)
    alpha = object_alpha(frames, masks, background, rgb)  # (T, H, W)
    fills = [f for f in (fill_ratio(a) for a in alpha[found]) if f is not None]
    fill = float(np.median(fills)) if fills else None
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    mass = alpha.sum(axis=(1, 2))  # (T,)
    ok = found & (mass > 1e-3)
    centroids = np.stack([(alpha[ok] * xs).sum(axis=(1, 2)), (alpha[ok] * ys).sum(axis=(1, 2))], axis=1)
    centroids = centroids / mass[ok, None]
    v = fit_velocity(np.nonzero(ok)[0].astype(np.float64), centroids)
    speed = float(np.hypot(*v))
    moving = speed >= STATIC_FRACTION * unit
    direction = None
    if moving:
        direction = ("right" if v[0] > 0 else "left") if abs(v[0]) >= abs(v[1]) else ("down" if v[1] > 0 else "up")
    result.update(color=nearest_colour(rgb), rgb=[float(c) for c in rgb],
                  shape=None if fill is None else min(SHAPE_FILL, key=lambda s: abs(SHAPE_FILL[s] - fill)),
                  fill=fill, moving=bool(moving), direction=direction,
                  speed=speed_word(speed, unit) if moving else None, speed_px=speed,
                  velocity=[float(v[0]), float(v[1])])
    return result


def objects_in_prompt(prompt: str) -> int:
    """How many objects a vocabulary prompt describes ("... and a blue square ..." is two)."""
    return len(re.findall(r"\b(?:moving|staying still)\b", prompt.lower()))


def expected_from_prompt(prompt: str) -> dict | None:
    """The vocabulary attributes a prompt asks for (vocab.parse_caption), or None outside the vocabulary."""
    return vocab.parse_caption(prompt)


def check_attributes(frames: np.ndarray, expected: dict) -> dict:
    """Compare measured attributes with the expected ones (color, shape, direction or None,
    speed word, optionally speed_px). correct[k] is True / False, or None where not applicable
    (direction and speed of a still prompt)."""
    measured = measure_attributes(frames)
    h, w = frames.shape[1:3]
    want_moving = expected.get("direction") is not None
    correct = {
        "color": measured["color"] == expected.get("color"),
        "shape": measured["shape"] == expected.get("shape"),
        "motion": measured["moving"] == want_moving,
        "direction": measured["direction"] == expected["direction"] if want_moving else None,
        # speed: only where the prompt names one (a prompt without a speed word leaves it to the motion score)
        "speed": measured["speed"] == expected["speed"] if want_moving and expected.get("speed") else None,
    }
    return {"expected": {k: expected.get(k) for k in ("color", "shape", "direction", "speed")},
            "requested_speed_px": requested_speed_px(expected, h, w),
            "measured": measured, "correct": correct}


def rank(values) -> np.ndarray:
    """Ranks 1..n, ties given their average rank."""
    x = np.asarray(values, np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tie = x == v
        ranks[tie] = ranks[tie].mean()
    return ranks


def spearman(a, b) -> float | None:
    """Spearman rank correlation (Pearson correlation of average ranks); None if undefined
    (fewer than 2 points or a constant side)."""
    if len(a) != len(b):
        raise ValueError(f"spearman: lengths differ ({len(a)} vs {len(b)})")
    if len(a) < 2:
        return None
    ra, rb = rank(a) - (len(a) + 1) / 2, rank(b) - (len(b) + 1) / 2
    denom = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return None if denom == 0 else float(ra @ rb) / denom


def summarize_checks(checks: list[dict]) -> dict:
    """Set-level: per-attribute accuracy over the clips where it applies, how many were checked,
    and the Spearman correlation of requested vs measured speed (px/frame; 0 for still prompts)."""
    accuracy, checked = {}, {}
    for k in ATTRIBUTES:
        vals = [c["correct"][k] for c in checks if c["correct"][k] is not None]
        checked[k] = len(vals)
        accuracy[k] = sum(vals) / len(vals) if vals else None
    pairs = [(c["requested_speed_px"], c["measured"]["speed_px"]) for c in checks]
    pairs = [(r, 0.0 if m is None else m) for r, m in pairs]  # no object found: no motion measured
    rho = spearman(*zip(*pairs)) if len(pairs) >= 2 else None
    return {"n": len(checks), "accuracy": accuracy, "checked": checked, "spearman_motion": rho}
