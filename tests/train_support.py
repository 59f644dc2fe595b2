"""Helpers for the training tests: latent manifests on disk, a tiny config, the real encoders at
tiny sizes (the bundled MiniLM text encoder, loaded once per process; a tiny CogVideoX VAE folder)."""
from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist

from lumina_video import files
from lumina_video.configs import from_dict
from lumina_video.training.config import TrainConfig, check_config, resolve_config

CHANNELS = 4  # latent channels of the tiny VAE and of the test latents
TEXT_DIM = 384  # MiniLM


@functools.cache
def text_encoder():
    from lumina_video.encoders import TextEncoder

    return TextEncoder.from_pretrained().eval()


@functools.cache
def vae_folder() -> str:
    """A random-weight tiny VAE (the real class) saved once per process."""
    from lumina_video.encoders import VideoVAE, tiny_config

    folder = Path(tempfile.mkdtemp(prefix="lv-train-vae-")) / "vae"
    torch.manual_seed(0)
    VideoVAE.from_config(tiny_config(latent_channels=CHANNELS)).save_pretrained(folder)
    return str(folder)


def write_latent_manifest(folder, n: int = 4, *, media: str = "video", frames: int = 5, size: int = 8,
                          seed: int = 0, name: str = "manifest.jsonl") -> Path:
    """n records with random latents (C, F, H, W) saved as `{latent: ...}` safetensors, as
    `lumina-video extract-latents` writes them (a video of 4k+1 frames -> k+1 latent frames)."""
    folder = Path(folder)
    g = torch.Generator().manual_seed(seed)
    f = 1 if media == "image" else frames
    lines = []
    for i in range(n):
        z = torch.randn(CHANNELS, f, size, size, generator=g)
        z = 0.5 * z + 0.5 * z.mean(dim=(2, 3), keepdim=True)  # some structure
        files.save_safetensors({"latent": z}, folder / f"lat_{media}_{i}.safetensors")
        lines.append(json.dumps({
            "path": f"clip_{media}_{i}.mp4", "caption": f"a {['red', 'blue', 'green', 'yellow'][i % 4]} shape {i}",
            "type": media, "latent_path": f"lat_{media}_{i}.safetensors", "motion_score": float(i),
            "width": size * 8, "height": size * 8,
        }))
    path = folder / name
    files.write_text(path, "\n".join(lines) + "\n")
    return path


def tiny_config(run_dir, manifests: dict, **top) -> TrainConfig:
    """A one-stage config over {kind: manifest}, kinds like 'video-1x2', 'image-1x2' (media-pt x p),
    training from extracted latents with the Tiny model and MiniLM features (cached)."""
    tasks = []
    for kind, manifest in manifests.items():
        media, patch = kind.split("-")
        pt, p = (int(v) for v in patch.split("x"))
        tasks.append({"name": kind, "media": media, "sources": [{"manifest": str(manifest), "ratio": 1.0}],
                      "size": 64, "num_frames": 16, "pt": pt, "p": p, "global_batch": 2, "micro_batch": 1,
                      "latents": "extracted"})
    data = {
        "run_dir": str(run_dir), "seed": 0,
        "model": {"preset": "Tiny", "args": {"in_channels": CHANNELS, "cap_feat_dim": TEXT_DIM}},
        "encoders": {"text": "minilm", "text_cache": 64},
        "stages": [{"name": "s0", "steps": 4, "tasks": tasks}],
        "optim": {"lr": 1e-3}, "ema": {"every": 2}, "checkpoint": {"every": 2, "keep_last": 2},
        "log_every": 1,
    }
    data.update(top)
    cfg = resolve_config(from_dict(TrainConfig, data))
    check_config(cfg)
    return cfg


def weights(folder) -> dict:
    """The tensors of a checkpoint's or model folder's model.safetensors (or of a safetensors path)."""
    folder = Path(folder)
    return files.load_safetensors(folder / "model.safetensors" if folder.is_dir() else folder)


def max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


@contextlib.contextmanager
def gloo_process(rank: int, world: int, port: int):
    """Inside: process `rank` of a `world`-process gloo group on 127.0.0.1:`port`, one torch thread. On exit
    every process waits for the others (a process leaving mid-collective aborts its peers) and the group ends."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        yield
    finally:
        dist.barrier()
        dist.destroy_process_group()
