"""Checkpoints: atomic folders, the last N kept, everything needed to continue a run exactly.

    RUN/checkpoints/step_00001000/
        model.safetensors   whole fp32 weights, official key names
        ema.safetensors     the EMA weights, same keys
        optimizer.pt        AdamW state keyed by parameter name (torch.save; loaded with weights_only)
        rng/rank{r}.pt      torch / CUDA / numpy / python RNG states of each process
        state.json          step, stage, data position of every task, world size
        config.yaml         the resolved config of the run

A checkpoint is written into `.step_00001000.tmp/` and renamed to `step_00001000/` only when every
file is complete, so a process killed while saving leaves the previous checkpoints untouched and at
most a temporary folder, which the next start removes. Only folders named `step_*` are ever loaded.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .. import files
from .distributed import DistEnv, barrier

STEP_DIR = re.compile(r"^step_(\d{8})$")
FORMAT_VERSION = 1


def step_dir_name(step: int) -> str:
    return f"step_{step:08d}"


# ------------------------------------------------------------------------------------------------
# RNG states
# ------------------------------------------------------------------------------------------------

def rng_state() -> dict:
    """This process's torch, CUDA, numpy and python RNG states as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


# ------------------------------------------------------------------------------------------------
# the manager
# ------------------------------------------------------------------------------------------------

class CheckpointManager:
    """Saves and finds checkpoints under `root`. Every process calls `save` and `load` together.

    `hook(path)` (optional) is called after each file is written into the temporary folder; tests use
    it to kill a process in the middle of a save.
    """

    def __init__(self, root, env: DistEnv, keep_last: int = 3, hook: Callable[[Path], None] | None = None):
        self.root = Path(root)
        self.env = env
        self.keep_last = keep_last
        self.hook = hook

    # -- finding ------------------------------------------------------------------------------
    def list(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.root.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.root.iterdir() if p.is_dir() and (m := STEP_DIR.match(p.name))]
        return [p for _, p in sorted(found) if (p / "state.json").is_file()]

    def latest(self) -> Path | None:
        done = self.list()
        return done[-1] if done else None

    def remove_partial(self) -> list[Path]:
        """Delete temporary folders left by an interrupted save (main process only)."""
        removed = []
        if self.env.is_main and self.root.is_dir():
            for p in self.root.iterdir():
                if p.name.startswith(".step_") and p.name.endswith(".tmp"):
                    shutil.rmtree(p, ignore_errors=True)
                    removed.append(p)
        barrier(self.env)
        return removed

    # -- saving -------------------------------------------------------------------------------
    def _written(self, path: Path) -> None:
        if self.hook is not None:
            self.hook(path)

    def save(self, step: int, *, model: dict, ema: dict, optimizer: dict, state: dict, config_text: str) -> Path:
        """Write one checkpoint atomically. `model`, `ema`, `optimizer` are whole state dicts (only the
        main process's copies are written); every process writes its own RNG state."""
        env = self.env
        final = self.root / step_dir_name(step)
        # Not files.atomic_dir: every process writes its own RNG file into the same temporary folder, so
        # its name must be known to all of them in advance (a fixed name, removed by remove_partial).
        tmp = self.root / f".{step_dir_name(step)}.tmp"
        if env.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            (tmp / "rng").mkdir(parents=True)
        barrier(env)
        if env.is_main:
            files.save_safetensors(model, tmp / "model.safetensors", metadata={"step": str(step)})
            self._written(tmp / "model.safetensors")
            files.save_safetensors(ema, tmp / "ema.safetensors", metadata={"step": str(step)})
            self._written(tmp / "ema.safetensors")
            with files.atomic_path(tmp / "optimizer.pt") as f:
                torch.save(optimizer, f)
            self._written(tmp / "optimizer.pt")
            files.write_text(tmp / "config.yaml", config_text)
        with files.atomic_path(tmp / "rng" / f"rank{env.rank}.pt") as f:
            torch.save(rng_state(), f)
        barrier(env)
        if env.is_main:
            meta = dict(state, step=step, world_size=env.world, format_version=FORMAT_VERSION, time=time.time())
            files.write_json(tmp / "state.json", meta)  # written last: marks the folder complete
            self._written(tmp / "state.json")
            _fsync_dir(tmp)
            if final.exists():  # the same step saved again (e.g. stop, resume, stop): replace it
                old = self.root / f".{step_dir_name(step)}.old.tmp"
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
            _fsync_dir(self.root)
            self.prune()
        barrier(env)
        return final

    def prune(self) -> None:
        done = self.list()
        for p in done[: max(0, len(done) - self.keep_last)]:
            shutil.rmtree(p, ignore_errors=True)

    # -- loading ------------------------------------------------------------------------------
    def load(self, folder, tensors: bool = True) -> dict:
        """Read a checkpoint: {"model", "ema", "optimizer", "state", "rng" (this rank's or None), "config"}.

        tensors=False skips the weights and optimizer state (empty dicts): under FSDP only the main
        process reads them and broadcasts them, so N processes do not hold N whole copies at once.
        """
        folder = Path(folder)
        need = ["model.safetensors", "ema.safetensors", "optimizer.pt", "state.json"]
        missing = [n for n in need if not (folder / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder} is not a complete training checkpoint: missing {', '.join(missing)}")
        state = json.loads((folder / "state.json").read_text())
        rng_file = folder / "rng" / f"rank{self.env.rank}.pt"
        return {
            "model": files.load_safetensors(folder / "model.safetensors") if tensors else {},
            "ema": files.load_safetensors(folder / "ema.safetensors") if tensors else {},
            "optimizer": torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True) if tensors else {},
            "state": state,
            # RNG states restore exactly only with the same number of processes.
            "rng": torch.load(rng_file, weights_only=True)
            if rng_file.is_file() and state.get("world_size") == self.env.world else None,
            "config": (folder / "config.yaml").read_text() if (folder / "config.yaml").is_file() else None,
        }


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
