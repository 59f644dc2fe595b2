"""Small helpers for the training tests: latent manifests on disk, a tiny config, a text-encoder stand-in.

Stand-in (tests only, until the real class it mirrors is merged into this branch):
- `HashTextEncoder` follows `lumina_video.encoders.text.TextEncoder.encode`: per-word features from
  a fixed random table, the system prompt prefixed, so different captions give different features.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from lumina_video import io as lv_io
from lumina_video.training.config import from_dict, check_values, TrainConfig

CAP_DIM = 16
CHANNELS = 4


def write_latent_manifest(folder, n: int = 4, *, media: str = "video", frames: int = 5, size: int = 8,
                          seed: int = 0, name: str = "manifest.jsonl") -> Path:
    """n records with smooth random latents (C, F, H, W) saved as safetensors; returns the manifest path."""
    folder = Path(folder)
    g = torch.Generator().manual_seed(seed)
    f = 1 if media == "image" else frames
    lines = []
    for i in range(n):
        z = torch.randn(CHANNELS, f, size, size, generator=g)
        z = 0.5 * z + 0.5 * z.mean(dim=(2, 3), keepdim=True)  # some structure
        lv_io.save_safetensors({"latent": z}, folder / f"lat_{media}_{i}.safetensors")
        lines.append(json.dumps({
            "path": f"clip_{media}_{i}.mp4", "caption": f"a {['red', 'blue', 'green', 'yellow'][i % 4]} shape {i}",
            "type": media, "latent_path": f"lat_{media}_{i}.safetensors", "motion_score": float(i),
            "width": size * 8, "height": size * 8,
        }))
    path = folder / name
    lv_io.write_text(path, "\n".join(lines) + "\n")
    return path


class HashTextEncoder:
    dim = CAP_DIM

    def __init__(self):
        self.table = torch.randn(997, CAP_DIM, generator=torch.Generator().manual_seed(123))

    def _row(self, word: str) -> int:
        return int.from_bytes(hashlib.md5(word.encode()).digest()[:4], "little") % len(self.table)

    def encode(self, prompts, system_prompt=None):
        texts = [((system_prompt or "") + p).split() or ["<empty>"] for p in prompts]
        n = max(len(t) for t in texts)
        feats = torch.zeros(len(texts), n, CAP_DIM)
        mask = torch.zeros(len(texts), n, dtype=torch.bool)
        for i, words in enumerate(texts):
            feats[i, : len(words)] = self.table[[self._row(w) for w in words]]
            mask[i, : len(words)] = True
        return feats, mask


def tiny_config(run_dir, manifests: dict, **top) -> TrainConfig:
    """A one-stage config over the given {task_kind: manifest} with kinds like 'video-1x2', 'image-1x2'."""
    tasks = []
    for kind, manifest in manifests.items():
        media, patch = kind.split("-")
        pt, p = (int(v) for v in patch.split("x"))
        tasks.append({"name": kind, "media": media, "sources": [{"manifest": str(manifest), "ratio": 1.0}],
                      "size": 64, "num_frames": 16, "pt": pt, "p": p, "global_batch": 2, "micro_batch": 1,
                      "latents": "extracted"})
    data = {
        "run_dir": str(run_dir), "seed": 0,
        "model": {"preset": "Tiny", "args": {"in_channels": CHANNELS, "cap_feat_dim": CAP_DIM}},
        "stages": [{"name": "s0", "steps": 4, "tasks": tasks}],
        "optim": {"lr": 1e-3}, "ema": {"every": 2}, "checkpoint": {"every": 2, "keep_last": 2},
        "log_every": 1,
    }
    for k, v in top.items():
        data[k] = v
    cfg = from_dict(TrainConfig, data)
    check_values(cfg)
    return cfg


@pytest.fixture
def single_thread():
    """Tiny models train faster on one thread (and the test machine's cores are shared)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def weights(folder) -> dict:
    """The tensors of a checkpoint's model.safetensors (or any safetensors path)."""
    folder = Path(folder)
    return lv_io.load_safetensors(folder / "model.safetensors" if folder.is_dir() else folder)


def max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
