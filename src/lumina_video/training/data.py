"""Task data for training: records from manifests, a seekable global-batch order, per-item randomness.

Each task reads its sources' manifests into one `MediaDataset`. Batches are drawn as *global*
batches (the items of one optimizer step over all processes), grouped by aspect bucket so a batch
never mixes shapes; process r takes slots [r * B/W, (r+1) * B/W) of each. The order is a pure
function of (seed, task, epoch), so a run resumes from the number of batches consumed, and 1 or N
processes see the same global batches.

Every random choice about an item at a step (its time t, its noise, caption dropout, its temporal
crop) comes from a generator keyed by (seed, step, task, slot): it does not depend on how many
processes share the batch, nor on what happened before, so resuming needs no generator state.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError, TaskConfig, TrainConfig


def stable_seed(*parts) -> int:
    """A 63-bit seed from any printable parts, the same on every machine and Python run."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def item_generator(seed: int, step: int, task: str, slot: int, device="cpu") -> torch.Generator:
    """The generator of one item of one task's global batch at one step."""
    return torch.Generator(device=device).manual_seed(stable_seed(seed, step, task, slot))


# ------------------------------------------------------------------------------------------------
# records
# ------------------------------------------------------------------------------------------------

def source_name(source) -> str:
    return source.name or Path(source.manifest).stem


def apply_ratio(records: list, ratio: float, seed: int) -> list:
    """floor(ratio) full copies plus a seeded random `frac(ratio)` share: 0.5 keeps half, 2.0 doubles."""
    whole, frac = int(math.floor(ratio)), ratio - math.floor(ratio)
    out = list(records) * whole
    if frac > 0:
        order = np.random.default_rng(seed).permutation(len(records))
        out += [records[i] for i in order[: int(round(frac * len(records)))]]
    return out


def task_records(task: TaskConfig, seed: int, key: str = "task") -> tuple[list[dict], dict[str, str | None]]:
    """The task's records (its media type only, ratios applied, `source` set) and source -> system prompt.

    A missing manifest is an error naming it; with `latents: extracted` every record needs a latent_path.
    """
    from ..data.manifest import read_manifest

    records, prompts = [], {}
    for k, src in enumerate(task.sources):
        path = Path(src.manifest)
        if not path.is_file():
            raise FileNotFoundError(
                f"task '{task.name}': data file {src.manifest} does not exist ({key}.sources.{k}.manifest)"
            )
        name = source_name(src)
        prompts[name] = src.system_prompt
        rows = [dict(r, source=name) for r in read_manifest(path) if r.get("type", "video") == task.media]
        if not rows:
            raise ConfigError(f"task '{task.name}': {src.manifest} has no {task.media} records")
        if task.latents == "extracted":
            lacking = sum(1 for r in rows if not r.get("latent_path"))
            if lacking:
                raise ConfigError(
                    f"task '{task.name}': {lacking} of {len(rows)} {task.media} records of {src.manifest} have no "
                    f"latent_path, needed by `latents: extracted` (run `lumina-video extract-latents`, or set "
                    f"{key}.latents=on_the_fly)"
                )
        records += apply_ratio(rows, src.ratio, stable_seed(seed, task.name, name, "ratio"))
    return records, prompts


def build_dataset(task: TaskConfig, cfg: TrainConfig, records: list, prompts: dict):
    """The task's MediaDataset. Videos decoded for the VAE get 4k + 1 frames (k + 1 latent frames,
    the first of which the REFERENCE.md §5 rule drops), for num_frames = 4k."""
    from ..data.dataset import MediaDataset

    frames = task.num_frames + 1 if task.media == "video" else 1
    return MediaDataset(
        records, size=task.size, fps=task.fps, num_frames=frames,
        system_prompts={k: v for k, v in prompts.items() if v is not None},
        default_system_prompt=cfg.default_system_prompt, video_motion_drop=cfg.video_motion_drop,
        image_motion_prob=cfg.image_motion_prob, use_latents=task.latents == "extracted", seed=cfg.seed,
    )


def bucket_keys(dataset) -> list:
    """Per item its batching group (media, aspect bucket, frames) or latent shape; None = unusable."""
    return list(dataset.group_keys())


# ------------------------------------------------------------------------------------------------
# the order of global batches
# ------------------------------------------------------------------------------------------------

class GlobalBatchOrder:
    """Epochs of global batches from the bucket batch sampler (one rank, full batches only, shuffled
    per epoch by (seed, epoch)); `batch(n)` is the n-th batch since the start of training, with its
    epoch, so training can continue from any n."""

    def __init__(self, keys: list, global_batch: int, seed: int, name: str = "task"):
        from ..data.buckets import BucketBatchSampler

        self.sampler = BucketBatchSampler(keys, global_batch, shuffle=True, drop_last=True, seed=seed)
        self.per_epoch = len(self.sampler)
        if self.per_epoch == 0:
            sizes = [len(g) for g in self.sampler.groups.values()]
            raise ConfigError(
                f"task '{name}': no batching group (aspect bucket and frame count) holds global_batch="
                f"{global_batch} usable items (the largest has {max(sizes, default=0)}; "
                f"{sum(k is not None for k in keys)} of {len(keys)} items usable); lower global_batch or add data"
            )
        self._epoch, self._batches = None, None

    def batch(self, n: int) -> tuple[int, list[int]]:
        epoch, i = divmod(n, self.per_epoch)
        if self._epoch != epoch:
            self.sampler.set_epoch(epoch)
            self._batches, self._epoch = list(self.sampler), epoch
        return epoch, list(self._batches[i])


class EpochIndexed(torch.utils.data.Dataset):
    """`view[(epoch, i)]` is `dataset[i]` as drawn in that epoch (the dataset's per-item randomness is
    keyed by epoch), so worker processes need no shared epoch counter."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, i = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[i]


@dataclass
class RankShare:
    """This process's part of one global batch: items (None where a file was bad) and their slots."""
    items: list
    slots: list[int]


def _collate(items):
    return items


class TaskStream:
    """Serves one task's batches to this process, continuing from `consumed` global batches."""

    def __init__(self, task: TaskConfig, dataset, order: GlobalBatchOrder, rank: int, world: int,
                 consumed: int = 0, num_workers: int = 0):
        if task.global_batch % world:
            raise ConfigError(
                f"task '{task.name}': global_batch={task.global_batch} is not divisible by the {world} processes"
            )
        self.task, self.dataset, self.order = task, dataset, order
        self.share = task.global_batch // world
        self.micro = min(task.micro_batch or self.share, self.share)
        if self.share % self.micro:
            raise ConfigError(
                f"task '{task.name}': a process's share of the batch ({task.global_batch} / {world} = {self.share}) "
                f"is not divisible by micro_batch={task.micro_batch}"
            )
        self.slots = list(range(rank * self.share, (rank + 1) * self.share))
        self.consumed = consumed
        self._loader = self._make_loader(num_workers)

    def _indices(self):
        n = self.consumed
        while True:
            epoch, batch = self.order.batch(n)
            yield [(epoch, batch[s]) for s in self.slots]
            n += 1

    def _make_loader(self, num_workers: int):
        from torch.utils.data import DataLoader

        loader = DataLoader(EpochIndexed(self.dataset), batch_sampler=self._indices(), collate_fn=_collate,
                            num_workers=num_workers, persistent_workers=False,
                            prefetch_factor=2 if num_workers else None)
        return iter(loader)

    def next(self) -> RankShare:
        items = next(self._loader)
        self.consumed += 1
        return RankShare(list(items), list(self.slots))

    def micro_batches(self, share: RankShare):
        """Consecutive chunks of `micro` (items, slots, loss weights).

        A bad item (None: its file could not be read) is replaced by a good item of the same share
        with loss weight 0, so every process still runs the same number of forward passes of the
        same sizes (FSDP's collectives must match) while the bad item contributes nothing.
        """
        good = next((it for it in share.items if it is not None), None)
        if good is None:
            raise RuntimeError(f"task '{self.task.name}': every item of this process's batch failed to load")
        items = [it if it is not None else good for it in share.items]
        weights = [0.0 if it is None else 1.0 for it in share.items]
        for i in range(0, len(items), self.micro):
            yield items[i:i + self.micro], share.slots[i:i + self.micro], weights[i:i + self.micro]


# ------------------------------------------------------------------------------------------------
# REFERENCE.md §5 temporal rule for video latents
# ------------------------------------------------------------------------------------------------

def video_latent_window(latent: torch.Tensor, max_frames: int, pt: int, generator: torch.Generator | None):
    """(C, F', H, W) latent of a 4n+1-frame clip -> the frames a video task trains on.

    The first latent frame (the clip's first pixel frame alone) is dropped, a random window of at
    most max_frames // 4 latent frames is taken, and it is truncated to a multiple of pt.
    """
    latent = latent[:, 1:]
    n = latent.shape[1]
    window = min(n, max(1, max_frames // 4))
    window -= window % pt
    if window < 1:
        raise ValueError(
            f"a video latent with {n + 1} frames leaves {n} after dropping the first, fewer than the "
            f"temporal patch size {pt}"
        )
    start = int(torch.randint(0, n - window + 1, (1,), generator=generator)) if n > window else 0
    return latent[:, start:start + window]
