"""VBench-protocol video dimensions that run offline, on uint8 RGB frames (T, H, W, 3).

Exact (same arithmetic as VBench):
    temporal flickering   s = (255 - mean_t mean|f_t - f_{t+1}|) / 255

Approximate (VBench's sampling, statistic and decision rule; a classical optical flow, OpenCV DIS,
instead of RAFT, and flow-based interpolation instead of the AMT network):
    dynamic degree        frames every k = max(1, round(fps / 8)); per consecutive sampled pair
                          m = mean of the top 5% flow magnitudes; threshold tau = 6 * min(H, W) / 256;
                          dynamic  <=>  #{pairs: m > tau} >= round(4 * N / 16), N = sampled frames.
                          The set score is the fraction of dynamic videos.
    motion smoothness     drop the odd frames, rebuild each from its two even neighbours by flow-based
                          midpoint interpolation, s = (255 - mean|rebuilt - original|) / 255.

Proxies (VBench's formula on a pixel-level feature instead of DINO / CLIP features):
    subject / background consistency
                          s = 1/(T-1) sum_{t>=1} ( max(0, cos(phi_t, phi_{t-1})) + max(0, cos(phi_t, phi_0)) ) / 2
                          with phi the feature of the foreground crop (subject) or of the frame with
                          the foreground masked out (background); see `subject_feature`,
                          `background_feature`. Values on their own scale: compare models with each
                          other, not with VBench's DINO / CLIP numbers.

Flow (`lumina_video.data.motion.DISFlow`) runs on one grey channel per clip: each pixel projected
on the clip's principal colour axis (`flow_channel`), which keeps colour contrast that luminance loses.
Python's `round` (half to even) is used where VBench uses it, so the counts match VBench's.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from ..data.motion import DISFlow
from ..data.video_io import check_frames
from .segment import foreground_masks, foreground_weights

FLOW = DISFlow()  # the package's one optical flow (also behind the motion score)

TOP_FRACTION = 0.05  # dynamic degree: share of largest flow magnitudes averaged per pair
MIN_FLOW_SIDE = 16  # DIS needs frames at least a few patches wide


# ---------------------------------------------------------------------------------------------
# Temporal flickering (exact)
# ---------------------------------------------------------------------------------------------


def temporal_flickering(frames: np.ndarray) -> float:
    """VBench temporal flickering: (255 - mean over pairs of the mean |f_t - f_{t+1}|) / 255."""
    frames = check_frames(frames, 2)
    x = frames.astype(np.float32)  # (T, H, W, 3)
    per_pair = np.abs(x[1:] - x[:-1]).mean(axis=(1, 2, 3))  # (T-1,)
    return float((255.0 - per_pair.mean()) / 255.0)


# ---------------------------------------------------------------------------------------------
# Optical flow (OpenCV DIS on one contrast-preserving grey channel)
# ---------------------------------------------------------------------------------------------


def flow_channel(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, H, W) uint8: each pixel's colour projected on the clip's principal
    colour axis, stretched to 0..255 over the clip.

    OpenCV flow takes one channel; plain luminance can erase the contrast between, e.g., a green
    object and a grey background. One projection for the whole clip keeps brightness constancy.
    """
    frames = check_frames(frames)
    x = frames.reshape(-1, 3).astype(np.float32)  # (T*H*W, 3)
    sample = x[:: max(1, x.shape[0] // 200_000)]
    cov = np.cov(sample, rowvar=False)
    axis = np.linalg.eigh(cov)[1][:, -1]  # eigenvector of the largest eigenvalue
    axis = axis if axis.sum() >= 0 else -axis  # brighter stays brighter where it can
    proj = x @ axis
    lo, hi = float(proj.min()), float(proj.max())
    if hi - lo < 1e-6:
        return np.zeros(frames.shape[:3], np.uint8)
    grey = (proj - lo) * (255.0 / (hi - lo))
    return np.rint(grey).astype(np.uint8).reshape(frames.shape[:3])


def optical_flow(grey0: np.ndarray, grey1: np.ndarray) -> np.ndarray:
    """Dense flow (H, W, 2) float32 in pixels (dx, dy) from grey0 to grey1: the package's OpenCV DIS flow
    (`lumina_video.data.motion.DISFlow`, the one behind the motion score)."""
    h, w = grey0.shape
    if min(h, w) < MIN_FLOW_SIDE:
        raise ValueError(f"optical flow needs frames at least {MIN_FLOW_SIDE} px on each side, got {h}x{w}")
    return FLOW.flow(grey0, grey1)


def top_flow_magnitude(flow: np.ndarray, fraction: float = TOP_FRACTION) -> float:
    """Mean of the largest `fraction` of the flow magnitudes |(dx, dy)| (VBench: int(H*W*0.05) of them)."""
    mag = np.hypot(flow[..., 0], flow[..., 1]).ravel()
    k = max(1, int(mag.size * fraction))
    return float(np.partition(mag, mag.size - k)[mag.size - k:].mean())


# ---------------------------------------------------------------------------------------------
# Dynamic degree (approximate)
# ---------------------------------------------------------------------------------------------


@dataclass
class DynamicDegree:
    """Per-video dynamic degree decision with everything it was made from."""

    dynamic: bool
    pair_scores: list  # top-5% mean flow magnitude per sampled pair, pixels
    threshold: float  # 6 * min(H, W) / 256
    pairs_needed: int  # round(4 * sampled_frames / 16)
    interval: int  # max(1, round(fps / 8))
    sampled_frames: int

    def to_dict(self) -> dict:
        return asdict(self)


def dynamic_degree(frames: np.ndarray, fps: float) -> DynamicDegree:
    """VBench's dynamic-degree rule on OpenCV flow (see the module docstring).

    Follows VBench's current rule: the threshold does not depend on fps (an older VBench release
    multiplied it by max(1, 8 / fps)). As in VBench, a video with only 2 sampled frames needs
    round(0.5) = 0 moving pairs, so it counts as dynamic.
    """
    frames = check_frames(frames, 2)
    if not fps or fps <= 0:
        raise ValueError(f"dynamic degree needs the video's fps (> 0), got {fps!r}")
    interval = max(1, round(fps / 8))
    sampled = frames[::interval]  # (N, H, W, 3)
    if len(sampled) < 2:
        raise ValueError(f"dynamic degree: {len(frames)} frames at {fps} fps leave {len(sampled)} sampled "
                         f"frame(s) (every {interval}th); need at least 2")
    h, w = frames.shape[1:3]
    threshold = 6.0 * min(h, w) / 256.0
    pairs_needed = round(4 * len(sampled) / 16)
    grey = flow_channel(sampled)
    scores = [top_flow_magnitude(optical_flow(grey[i], grey[i + 1])) for i in range(len(sampled) - 1)]
    moving = sum(s > threshold for s in scores)
    return DynamicDegree(bool(moving >= pairs_needed), scores, threshold, pairs_needed, interval, len(sampled))


# ---------------------------------------------------------------------------------------------
# Motion smoothness (approximate)
# ---------------------------------------------------------------------------------------------


def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def _sample(img: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Bilinear lookup img(x, y), edges replicated."""
    return cv2.remap(img, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def midpoint_frame(frame0: np.ndarray, frame1: np.ndarray, grey0: np.ndarray, grey1: np.ndarray,
                   iterations: int = 4) -> np.ndarray:
    """Interpolate the frame halfway between frame0 and frame1 (uint8 (H, W, 3)).

    With F the flow 0 -> 1, the displacement through a midpoint pixel x solves
    v(x) = F(x - v(x) / 2) (the point that lands on x half-way); it is found by fixed-point
    iteration from v = F. Then  I_mid(x) = ( I_0(x - v/2) + I_1(x + v/2) ) / 2.
    """
    flow = optical_flow(grey0, grey1)  # (H, W, 2)
    xs, ys = _pixel_grid(*grey0.shape)
    v = flow.copy()
    for _ in range(iterations):
        v = _sample(flow, xs - 0.5 * v[..., 0], ys - 0.5 * v[..., 1])
    a = _sample(frame0.astype(np.float32), xs - 0.5 * v[..., 0], ys - 0.5 * v[..., 1])
    b = _sample(frame1.astype(np.float32), xs + 0.5 * v[..., 0], ys + 0.5 * v[..., 1])
    return np.clip(np.rint(0.5 * (a + b)), 0, 255).astype(np.uint8)


def motion_smoothness(frames: np.ndarray) -> float:
    """(255 - mean |rebuilt odd frame - original|) / 255, odd frames rebuilt from their even neighbours.

    As in VBench, an even-length clip's last (odd) frame has no right neighbour and is not scored.
    """
    frames = check_frames(frames, 3)
    grey = flow_channel(frames)  # (T, H, W)
    errors = []
    for i in range(1, len(frames) - 1, 2):
        mid = midpoint_frame(frames[i - 1], frames[i + 1], grey[i - 1], grey[i + 1])
        errors.append(np.abs(mid.astype(np.float32) - frames[i].astype(np.float32)).mean())
    return float((255.0 - np.mean(errors)) / 255.0)


# ---------------------------------------------------------------------------------------------
# Subject / background consistency (proxies)
# ---------------------------------------------------------------------------------------------

FEATURE_GRID = 16  # features are pooled onto a FEATURE_GRID x FEATURE_GRID grid


def vbench_consistency(features: np.ndarray) -> float:
    """VBench's consistency formula on per-frame features (T, D):
    mean over t >= 1 of ( max(0, cos(phi_t, phi_{t-1})) + max(0, cos(phi_t, phi_0)) ) / 2.
    A single frame scores 1."""
    f = np.asarray(features, np.float64)
    if len(f) < 2:
        return 1.0
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    f = f / np.maximum(norms, 1e-12)
    prev = np.maximum(0.0, (f[1:] * f[:-1]).sum(axis=1))
    first = np.maximum(0.0, f[1:] @ f[0])
    return float(((prev + first) / 2).mean())


def angle_embedding(values: np.ndarray) -> np.ndarray:
    """Map each value v in [0, 1] to the unit vector (cos(pi v / 2), sin(pi v / 2)). (..., ) -> (2 * N,)

    The cosine of two embedded features is then the mean over entries of cos(pi/2 (v - v')):
    1 only when they are equal, sensitive to uniform brightness changes (which plain cosine
    similarity of raw values ignores), and >= 0, as VBench's clamp expects.
    """
    a = 0.5 * np.pi * np.clip(np.asarray(values, np.float64).ravel(), 0.0, 1.0)
    return np.concatenate([np.cos(a), np.sin(a)])


def _gradient_energy(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) float32 gradient magnitude of the grey image, in [0, ~1]."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return np.hypot(gx, gy) / 4.0


def _pool(img: np.ndarray, weight: np.ndarray, grid: int) -> np.ndarray:
    """Weighted average of img (H, W[, C]) over each cell of a grid x grid partition (area
    resampling). A cell with no weight takes the weighted average of the whole image."""
    img = img.astype(np.float32)
    w = weight.astype(np.float32)
    wb = w[..., None] if img.ndim == 3 else w
    num = cv2.resize(img * wb, (grid, grid), interpolation=cv2.INTER_AREA)
    den = cv2.resize(w, (grid, grid), interpolation=cv2.INTER_AREA)
    den = den[..., None] if num.ndim == 3 else den
    overall = (img * wb).sum(axis=(0, 1)) / max(float(w.sum()), 1e-6)
    return np.where(den > 1e-3, num / np.maximum(den, 1e-3), overall)


def background_feature(frame: np.ndarray, mask: np.ndarray, grid: int = FEATURE_GRID) -> np.ndarray:
    """Colour layout and texture energy of the background: the frame's RGB / 255 and its gradient
    magnitude, each averaged over the background pixels of each grid cell, angle-embedded. (D,)
    The mask is first grown by 2 px so that the object's soft edges and their gradients stay out."""
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    weight = (~grown).astype(np.float32)
    rgb = _pool(frame.astype(np.float32) / 255.0, weight, grid)  # (g, g, 3)
    grad = _pool(_gradient_energy(frame), weight, grid)  # (g, g)
    return angle_embedding(np.concatenate([rgb.ravel(), grad.ravel()]))


def subject_crop(weight: np.ndarray) -> tuple[float, float, float]:
    """Centre (x, y) and side of a square that holds the foreground, from the weight map's moments:
    centre = weighted centroid, side = 5 * the largest standard deviation (a disc of radius r has
    std r / 2, so the side is 2.5 r). Both vary continuously with sub-pixel motion."""
    h, w = weight.shape
    total = float(weight.sum())
    if total < 1.0:  # no foreground: the whole frame
        return (w - 1) / 2.0, (h - 1) / 2.0, float(max(h, w))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = (weight * xs).sum() / total, (weight * ys).sum() / total
    dx, dy = xs - cx, ys - cy
    cov = np.array([[(weight * dx * dx).sum(), (weight * dx * dy).sum()],
                    [(weight * dx * dy).sum(), (weight * dy * dy).sum()]]) / total
    return float(cx), float(cy), float(max(4.0, 5.0 * np.sqrt(np.linalg.eigvalsh(cov)[-1])))


def subject_feature(frame: np.ndarray, weight: np.ndarray, grid: int = FEATURE_GRID) -> np.ndarray:
    """Appearance of the foreground wherever it is: a square around it (`subject_crop`) resampled to
    grid x grid; the feature is [RGB / 255 times the foreground weight, the weight], angle-embedded. (D,)"""
    cx, cy, side = subject_crop(weight)
    n = 2 * grid  # sample finer, then area-average, to avoid aliasing
    step = side / n
    offsets = (np.arange(n, dtype=np.float32) + 0.5) * step - side / 2
    xs = np.broadcast_to(cx + offsets[None, :], (n, n)).astype(np.float32)
    ys = np.broadcast_to(cy + offsets[:, None], (n, n)).astype(np.float32)
    rgb = cv2.remap(frame.astype(np.float32) / 255.0, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    wgt = cv2.remap(weight.astype(np.float32), xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    rgb = cv2.resize(rgb * wgt[..., None], (grid, grid), interpolation=cv2.INTER_AREA)
    wgt = cv2.resize(wgt, (grid, grid), interpolation=cv2.INTER_AREA)
    return angle_embedding(np.concatenate([rgb.ravel(), wgt.ravel()]))


def subject_consistency(frames: np.ndarray) -> float:
    """Proxy for VBench subject consistency: `vbench_consistency` of `subject_feature` per frame."""
    frames = check_frames(frames)
    weights = foreground_weights(frames)  # (T, H, W)
    return vbench_consistency(np.stack([subject_feature(f, w) for f, w in zip(frames, weights)]))


def background_consistency(frames: np.ndarray) -> float:
    """Proxy for VBench background consistency: `vbench_consistency` of `background_feature` per frame."""
    frames = check_frames(frames)
    masks = foreground_masks(frames)  # (T, H, W)
    return vbench_consistency(np.stack([background_feature(f, m) for f, m in zip(frames, masks)]))
