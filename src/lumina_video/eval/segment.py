"""Foreground / background separation by colour distance, shared by the consistency proxies and
the attribute checks.

Background estimate: the median colour of the clip's border pixels (all frames). A pixel is
foreground when its RGB distance to that colour exceeds a threshold that adapts to how much the
border itself varies (a textured background raises it):

    d(x) = || I(x) - b ||_2,   tau = max(min_distance, spread * q90(d over border pixels))
"""
from __future__ import annotations

import cv2
import numpy as np

MIN_DISTANCE = 48.0  # RGB units; compression noise and soft edges stay below this
SPREAD = 1.5


def border_pixels(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) -> (N, 3) float32: a band of width max(1, min(H, W) // 32) around every frame."""
    b = max(1, min(frames.shape[1:3]) // 32)
    parts = [frames[:, :b], frames[:, -b:], frames[:, b:-b, :b], frames[:, b:-b, -b:]]
    return np.concatenate([p.reshape(-1, 3) for p in parts]).astype(np.float32)


def background_colour(frames: np.ndarray) -> np.ndarray:
    """Per-clip background estimate: median RGB of the border pixels. (3,) float32."""
    return np.median(border_pixels(frames), axis=0).astype(np.float32)


def colour_distance(frames: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """(T, H, W, 3), (3,) -> (T, H, W) float32 Euclidean RGB distance."""
    return np.linalg.norm(frames.astype(np.float32) - colour.astype(np.float32), axis=-1)


def foreground_threshold(frames: np.ndarray, colour: np.ndarray,
                         min_distance: float = MIN_DISTANCE, spread: float = SPREAD) -> float:
    border = np.linalg.norm(border_pixels(frames) - colour, axis=-1)
    return float(max(min_distance, spread * np.quantile(border, 0.9)))


def foreground_masks(frames: np.ndarray, min_distance: float = MIN_DISTANCE) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, H, W) bool foreground masks, speckles removed by a 3x3 opening."""
    colour = background_colour(frames)
    dist = colour_distance(frames, colour)  # (T, H, W)
    masks = dist > foreground_threshold(frames, colour, min_distance)
    kernel = np.ones((3, 3), np.uint8)
    return np.stack([cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_OPEN, kernel) > 0 for m in masks])


def foreground_weights(frames: np.ndarray, min_distance: float = MIN_DISTANCE) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, H, W) float32 soft foreground in [0, 1]: 0 up to tau / 2, 1 from tau,
    linear between, so anti-aliased edges count in proportion to their coverage."""
    colour = background_colour(frames)
    tau = foreground_threshold(frames, colour, min_distance)
    return np.clip(colour_distance(frames, colour) / (0.5 * tau) - 1.0, 0.0, 1.0)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected region of a (H, W) bool mask (all False if the mask is empty)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros_like(mask, bool)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == biggest
