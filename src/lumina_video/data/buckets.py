"""Aspect-ratio buckets (docs/REFERENCE.md §5) and a batch sampler that never mixes shapes.

Buckets for a target size S: sides are multiples of 32 and the area is near (S/32)^2 * 32^2.
In units of 32 pixels, with n = floor((S/32)^2) units of area, every short side a = 1 .. floor(sqrt n)
gives the longest long side b = floor(n / a) that keeps a * b <= n; (a, b) (landscape) and (b, a)
(portrait) are buckets when b / a <= max_ratio (4). Sizes in pixels are (32 a, 32 b).

A record goes to the bucket whose aspect ratio is nearest in log space, |log(h/w) - log(bh/bw)|
(a tie goes to the larger area); it is then resized to cover the bucket and centre-cropped.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np

from .._checks import positive_int

UNIT = 32


def make_buckets(size: int, max_ratio: float = 4.0) -> list[tuple[int, int]]:
    """[(h, w), ...] in pixels, sorted by aspect ratio h / w (landscape first)."""
    n = int((size / UNIT) ** 2)
    if n < 1 or max_ratio < 1:
        raise ValueError(f"bucket size must be >= {UNIT} and max_ratio >= 1, got size {size}, max_ratio {max_ratio}")
    units = set()
    for a in range(1, math.isqrt(n) + 1):
        b = n // a
        if b / a <= max_ratio:
            units.update({(a, b), (b, a)})
    return sorted(((UNIT * a, UNIT * b) for a, b in units), key=lambda hw: (hw[0] / hw[1], -hw[0] * hw[1]))


def nearest_bucket(h: int, w: int, buckets: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The bucket nearest in log aspect ratio to an (h, w) frame; ties go to the larger area."""
    if h <= 0 or w <= 0:
        raise ValueError(f"frame size must be positive, got {h}x{w}")
    if not buckets:
        raise ValueError("no buckets to choose from")
    target = math.log(h / w)
    return min(buckets, key=lambda b: (round(abs(math.log(b[0] / b[1]) - target), 9), -b[0] * b[1]))


class BucketBatchSampler:
    """Batches of dataset indices that share a group key (e.g. (media, bucket, frames)).

    keys[i] is the group of index i, or None to leave i out (a skipped record). Each epoch shuffles
    indices within groups and the order of the batches (seeded by seed + epoch). Splitting batches
    across ranks is the trainer's job (training/data.py), not the sampler's.
    """

    def __init__(self, keys: Sequence[Hashable | None], batch_size: int, *, shuffle: bool = True,
                 drop_last: bool = False, seed: int = 0):
        self.groups: dict[Hashable, list[int]] = {}
        for i, k in enumerate(keys):
            if k is not None:
                self.groups.setdefault(k, []).append(i)
        self.batch_size = positive_int(batch_size, "batch_size")
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        batches = []
        for key in sorted(self.groups, key=repr):  # a fixed group order, whatever the insertion order
            idx = list(self.groups[key])
            if self.shuffle:
                idx = [idx[j] for j in rng.permutation(len(idx))]
            for s in range(0, len(idx), self.batch_size):
                batch = idx[s:s + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch)
        if self.shuffle:
            batches = [batches[j] for j in rng.permutation(len(batches))]
        return batches

    def __iter__(self):
        yield from self._batches()

    def __len__(self) -> int:
        return len(self._batches())
