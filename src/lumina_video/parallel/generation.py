"""Sampling on several processes: `parallelize_pipeline(pipe, mode)` under torchrun.

    torchrun --nproc_per_node 2 -m lumina_video.cli generate PROMPT --parallel cfg     # branches on 2 ranks
    torchrun --nproc_per_node 4 -m lumina_video.cli generate PROMPT --parallel sp      # Ulysses over 4 ranks
    torchrun --nproc_per_node 4 -m lumina_video.cli generate PROMPT --parallel cfg+sp  # 2 x 2

In Python (every process runs the same script; the noise is drawn from the seed on the CPU, so every
rank starts from the same latent and ends with the same video):

    pipe = LuminaVideoPipeline.from_pretrained(folder)
    run = parallelize_pipeline(pipe, "cfg")       # joins torchrun's group, hooks pipe.transformer
                                                  # (on CUDA: start_parallel(mode) before loading, then run.apply(pipe))
    out = pipe(prompt, seed=0)
    if run.is_main: ...write out.frames...
    run.close()

Only the transformer is parallel; text encoding and decoding run on every rank (the CLI decodes on
rank 0 only) and rank 0 writes the files.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch.distributed as dist

from .batch import parallelize_batch
from .mesh import MODES, generation_mesh, start_group
from .sequence import parallelize_sequence


@dataclass
class ParallelRun:
    """The processes of a parallel sampling run: `apply(pipe)` makes its transformer parallel."""

    mode: str
    rank: int = 0
    world: int = 1
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def apply(self, pipe):
        """Make `pipe.transformer` parallel in this run's mode (nothing for "none"); returns `pipe`."""
        if self.mode != "none":
            parallelize_transformer(pipe.transformer, self.mode)
        return pipe

    def close(self) -> None:
        """Leave together and end the group this run started."""
        if self.owns_group and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def parallelize_transformer(model, mode: str):
    """Apply `mode` ("cfg", "sp", "cfg+sp") to a MultiScaleNextDiT in place over all processes."""
    mesh = generation_mesh(mode)
    if "sp" in mode.split("+"):
        parallelize_sequence(model, mesh.get_group("sp"))
    if "cfg" in mode.split("+"):
        parallelize_batch(model, mesh.get_group("cfg"))
    return model


def start_parallel(mode: str | None, quiet_others: bool = False) -> ParallelRun:
    """Join torchrun's processes for `mode` (None or "none": one process, nothing to join); sets the CUDA
    device of each process (call it before loading). `quiet_others`: ranks > 0 print nothing (the CLI)."""
    if mode in (None, "none"):
        return ParallelRun("none")
    if mode not in MODES:
        raise ValueError(f"parallel mode must be one of {list(MODES)}, got {mode!r}")
    owns = start_group()
    run = ParallelRun(mode, dist.get_rank(), dist.get_world_size(), owns)
    if quiet_others and not run.is_main:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    return run


def parallelize_pipeline(pipe, mode: str | None) -> ParallelRun:
    """`start_parallel(mode).apply(pipe)`: `pipe`'s transformer parallel over torchrun's processes."""
    run = start_parallel(mode)
    run.apply(pipe)
    return run
