"""Augmentations of the sync encoder's input frames in train-v2a (V2ATrainConfig.sync_flip, sync_flicker).

Both leave the sound as it is, so they teach the sync encoder what does *not* change it:

    flip     with probability p, the window's frames mirrored left-right. A bounce, a slide and their speeds are
             the same in the mirror, and so is the (mono) sound. Without it the encoder learnt each training
             clip's path: on the demo data its onset head found every impact of 300 training clips and 90% of
             new clips' impacts of the same (colour, shape) pairs.
    flicker  per window an amplitude a ~ U(0, sigma), then every frame gets its own noise: a * blocky noise (one
             value per 4 x 4 pixels of the S x S frame, per channel) + a / 4 * pixel noise, clamped to [-1, 1].
             Videos made by a generator (the text-to-video demo model, through its VAE) flicker this way when
             nothing moves: blocks of a few grey levels on the object (about +-14 / 255 at 128 px), and the
             encoder read that as motion (a still prompt's soundtrack sounded at -28 dBFS; the same frames
             frozen were silent). Still clips keep their silent sound under flicker.

The draws come from the item's own generator (v2a_trainer.draw: keyed by seed, step and slot), so a run with
these augmentations resumes exactly; with both off nothing is drawn.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

BLOCK = 4  # pixels per flicker block at the sync encoder's input size


def flicker(frames: torch.Tensor, amplitude: float, g: torch.Generator) -> torch.Tensor:
    """frames (N, C, S, S) in [-1, 1] + per-frame blocky and pixel noise of `amplitude` (module docstring)."""
    n, c, h, w = frames.shape
    coarse = torch.randn(n, c, -(-h // BLOCK), -(-w // BLOCK), generator=g)
    blocks = F.interpolate(coarse, scale_factor=BLOCK, mode="nearest")[..., :h, :w]
    fine = torch.randn(n, c, h, w, generator=g)
    noise = amplitude * (blocks + 0.25 * fine)
    return (frames.float() + noise).clamp(-1, 1).to(frames.dtype)


def augment_sync(frames: torch.Tensor, g: torch.Generator, flip: float = 0.0, sigma: float = 0.0) -> torch.Tensor:
    """One window's prepared sync frames (N, C, S, S), mirrored with probability `flip` and flickered with an
    amplitude drawn from U(0, sigma) (module docstring); the frames themselves when both are 0."""
    if flip > 0:
        if float(torch.rand(1, generator=g)) < flip:
            frames = torch.flip(frames, dims=[-1])
    if sigma > 0:
        frames = flicker(frames, sigma * float(torch.rand(1, generator=g)), g)
    return frames
