"""The training dataset: images and videos together, as pixels or pre-extracted latents.

Item i (a dict):
    pixels        float32 (3, F, H, W) in [-1, 1]; F = 1 for an image, num_frames for a video,
                  (H, W) = the record's aspect bucket. Absent when a latent is returned.
    latent        (C, F', H', W') from the record's `latent_path` safetensors (use_latents=True)
    caption, system_prompt (the record's source's, else the default), media ("video" | "image"),
    source, bucket (h, w), index, motion_score (after the training rules below)

Videos: num_frames frames at `fps` (the nearest source frame to each time, see video_io) from a
random start time, uniform over the starts that fit in the clip; any frame count works (the trainer
asks for 4k + 1, which the VAE wants).

Motion score in training (docs/REFERENCE.md §4; -1 means "absent", the model's zero embedding):
    video with a score s:   -1 with probability video_motion_drop (0.3), else s
    video without a score:  -1
    image:                   0.0 with probability image_motion_prob (0.4), else -1

Randomness: item i in epoch e uses the generator seeded by (seed, i, e), so results do not depend
on worker processes or the order of access (`set_epoch` moves to the next epoch).

Bad samples are skipped, never fatal. At construction every record is checked (suffix, existence,
size, and for videos the duration when known; files are probed only for what the manifest lacks) and
a bad one is left out of `group_keys()`, so the batch sampler never draws it. A file that fails later,
while decoding, makes `__getitem__` return None; `collate` drops None items. Either way the reason
(missing, unsupported, corrupt, too_short) is counted once per record in `skipped` (a Counter, in this
process; with DataLoader workers, each batch from `collate` also says how many items it dropped) and
logged. `report()` sums it up.
"""
from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import torch
from PIL import Image

from .._checks import positive_int, positive_number, probability, short_reason
from ..files import load_safetensors
from .buckets import make_buckets, nearest_bucket
from .video_io import (
    CorruptMediaError,
    VideoTooShortError,
    check_supported,
    failure_reason,
    probe_video,
    read_image,
    resize_cover_crop,
    sample_frames,
)

log = logging.getLogger(__name__)
ABSENT = -1.0


def training_motion_score(media: str, score: float | None, rng: np.random.Generator,
                          video_motion_drop: float = 0.3, image_motion_prob: float = 0.4) -> float:
    """The motion score the model sees for one sample (docs/REFERENCE.md §4; see the module docstring)."""
    if media == "image":
        return 0.0 if rng.random() < image_motion_prob else ABSENT
    if score is None or score < 0:
        return ABSENT
    return ABSENT if rng.random() < video_motion_drop else float(score)


def to_pixels(frames: np.ndarray) -> torch.Tensor:
    """(F, H, W, 3) uint8 -> (3, F, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float().div_(127.5).sub_(1.0)


def latent_shape(path) -> tuple[int, ...]:
    """Shape of the latent tensor in a safetensors file, from its header (no data read)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return tuple(f.get_slice(_latent_key(f.keys(), path)).get_shape())


def _latent_key(keys, path) -> str:
    keys = list(keys)
    if "latent" in keys:
        return "latent"
    if len(keys) == 1:
        return keys[0]
    raise CorruptMediaError(f"{path}: expected a tensor named 'latent' (or a single tensor), found {keys}")


class MediaDataset(torch.utils.data.Dataset):
    """Images and videos of a manifest's records as training items (the module docstring has the rules)."""

    def __init__(self, records, *, size: int, fps: float, num_frames: int, system_prompts: dict | None = None,
                 default_system_prompt: str = "", video_motion_drop: float = 0.3, image_motion_prob: float = 0.4,
                 use_latents: bool = False, seed: int = 0, max_ratio: float = 4.0, pad_short_videos: bool = False):
        self.fps, self.num_frames = positive_number(fps, "fps"), positive_int(num_frames, "num_frames")
        probability(video_motion_drop, "video_motion_drop")
        probability(image_motion_prob, "image_motion_prob")
        self.records = list(records)
        self.size = size
        self.system_prompts = dict(system_prompts or {})
        self.default_system_prompt = default_system_prompt
        self.video_motion_drop, self.image_motion_prob = video_motion_drop, image_motion_prob
        self.use_latents, self.seed, self.pad_short_videos = use_latents, seed, pad_short_videos
        self.buckets = make_buckets(size, max_ratio)
        self.epoch = 0
        self.skipped: Counter = Counter()
        self._failed: dict[int, str] = {}  # index -> reason
        self._info: list[dict | None] = [self._check(i, r) for i, r in enumerate(self.records)]
        if self.skipped:
            log.warning("MediaDataset: %s", self.report())

    # ---- construction-time checks ---------------------------------------------------------
    def _skip(self, i: int, exc: BaseException) -> None:
        if i in self._failed:
            return
        reason = failure_reason(exc)
        self._failed[i] = reason
        self.skipped[reason] += 1
        log.warning("skipping record %d (%s): %s", i, reason, short_reason(exc))

    def _check(self, i: int, rec: dict) -> dict | None:
        """{key, bucket, duration, src_fps} for a usable record, None (and counted) otherwise."""
        try:
            if self.use_latents and rec.get("latent_path"):
                shape = latent_shape(rec["latent_path"])
                if len(shape) != 4:
                    raise CorruptMediaError(f"{rec['latent_path']}: latent must be (C, F, H, W), got {shape}")
                return {"key": ("latent", shape), "bucket": None, "latent": True}
            media = rec["type"]
            check_supported(rec["path"], media)
            w, h = rec.get("width"), rec.get("height")
            duration, src_fps = rec.get("duration"), rec.get("fps")
            if media == "image":
                if not (w and h):
                    with Image.open(rec["path"]) as im:  # reads the header only
                        w, h = im.size
            elif not (w and h and duration and src_fps):
                info = probe_video(rec["path"])
                w, h, duration, src_fps = info["width"], info["height"], info["duration"], info["fps"]
            if media == "video" and not self.pad_short_videos and self._max_start(duration, src_fps) < 0:
                raise VideoTooShortError(f"{rec['path']}: {duration:.3f} s at {src_fps:g} fps is too short for "
                                         f"{self.num_frames} frames at {self.fps:g} fps")
            bucket = nearest_bucket(h, w, self.buckets)
            frames = 1 if media == "image" else self.num_frames
            return {"key": (media, bucket, frames), "bucket": bucket, "duration": duration, "src_fps": src_fps}
        except Exception as e:  # noqa: BLE001 - a bad record is skipped and counted, never fatal
            self._skip(i, e)
            return None

    def _max_start(self, duration: float, src_fps: float) -> float:
        """Latest start time whose num_frames times are all covered (negative: the clip is too short).

        Frames cover times up to duration - 1 / (2 src_fps) (the last frame's time plus half a period).
        """
        return duration - 0.5 / src_fps - (self.num_frames - 1) / self.fps

    # ---- access ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def group_keys(self) -> list:
        """Per index: (media, bucket, frames), ("latent", shape), or None for a skipped record."""
        return [None if info is None or i in self._failed else info["key"] for i, info in enumerate(self._info)]

    def report(self) -> str:
        n = sum(self.skipped.values())
        reasons = ", ".join(f"{v} {k}" for k, v in sorted(self.skipped.items())) or "none"
        return f"{len(self.records) - n} of {len(self.records)} records usable; skipped: {reasons}"

    def __getitem__(self, i: int) -> dict | None:
        info = self._info[i]
        if info is None or i in self._failed:
            return None
        rec = self.records[i]
        rng = np.random.default_rng([self.seed, i, self.epoch])
        try:
            if info.get("latent"):
                tensors = load_safetensors(rec["latent_path"])
                content = {"latent": tensors[_latent_key(tensors.keys(), rec["latent_path"])].float()}
            elif rec["type"] == "image":
                h, w = info["bucket"]
                content = {"pixels": to_pixels(resize_cover_crop(read_image(rec["path"]), h, w)[None])}
            else:
                h, w = info["bucket"]
                top = self._max_start(info["duration"], info["src_fps"])
                start = float(rng.uniform(0.0, top)) if top > 0 else 0.0
                frames = sample_frames(rec["path"], self.fps, self.num_frames, start, pad=self.pad_short_videos)
                content = {"pixels": to_pixels(resize_cover_crop(frames, h, w))}
        except Exception as e:  # noqa: BLE001 - a bad file is skipped and counted, never fatal
            self._skip(i, e)
            return None
        source = rec.get("source")
        return {
            **content,
            "caption": rec["caption"],
            "system_prompt": self.system_prompts.get(source, self.default_system_prompt),
            "motion_score": training_motion_score(rec["type"], rec.get("motion_score"), rng,
                                                  self.video_motion_drop, self.image_motion_prob),
            "media": rec["type"],
            "source": source,
            "bucket": info["bucket"],
            "index": i,
        }


def collate(items: list[dict | None]) -> dict | None:
    """Stack a batch of one shape (see BucketBatchSampler), dropping None (skipped) items.

    Returns None when every item was skipped. `skipped` = how many items were dropped.
    """
    good = [it for it in items if it is not None]
    if not good:
        return None
    key = "latent" if "latent" in good[0] else "pixels"
    shapes = {tuple(it[key].shape) for it in good}
    if len(shapes) > 1:
        raise ValueError(f"a batch mixes shapes {sorted(shapes)}; batch with BucketBatchSampler(dataset.group_keys())")
    return {
        key: torch.stack([it[key] for it in good]),  # (B, C, F, H, W)
        "motion_score": torch.tensor([it["motion_score"] for it in good], dtype=torch.float32),  # (B,)
        "index": torch.tensor([it["index"] for it in good]),
        **{k: [it[k] for it in good] for k in ("caption", "system_prompt", "media", "source", "bucket")},
        "skipped": len(items) - len(good),
    }
