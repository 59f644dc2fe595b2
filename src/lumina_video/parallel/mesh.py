"""Device meshes of the parallel layouts (torch.distributed.device_mesh), rank order row-major.

    training     ("dp", "sp") = (W / N, N):  rank = dp_rank N + sp_rank, so a sequence-parallel group is
                 N consecutive ranks (one node's GPUs when N <= GPUs per node: the all-to-alls stay on NVLink)
    generation   "cfg" (2,), "sp" (W,), "cfg+sp" ("cfg", "sp") = (2, W / 2)
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

MODES = ("none", "cfg", "sp", "cfg+sp")


def start_group() -> bool:
    """Join torchrun's process group (gloo on CPU, NCCL with CUDA) unless one is running; True when
    this call started it. Sets this process's CUDA device to LOCAL_RANK."""
    if dist.is_initialized():
        return False
    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        raise ValueError("parallel runs need several processes: start them with torchrun --nproc_per_node N")
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    return True


def device_type() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def training_mesh(sequence_parallel: int):
    """The ("dp", "sp") mesh of a run with `sequence_parallel` ranks per sequence (the process group runs)."""
    from torch.distributed.device_mesh import init_device_mesh

    world = dist.get_world_size()
    if sequence_parallel < 1 or world % sequence_parallel:
        raise ValueError(f"distributed.sequence_parallel={sequence_parallel} must divide the {world} processes")
    return init_device_mesh(device_type(), (world // sequence_parallel, sequence_parallel),
                            mesh_dim_names=("dp", "sp"))


def generation_mesh(mode: str):
    """The mesh of a generation mode over all processes: "cfg" needs 2, "cfg+sp" an even number >= 4."""
    from torch.distributed.device_mesh import init_device_mesh

    world = dist.get_world_size()
    if mode not in MODES[1:]:
        raise ValueError(f"--parallel must be one of {list(MODES[1:])}, got {mode!r}")
    if mode == "cfg" and world != 2:
        raise ValueError(f"--parallel cfg runs the two guidance branches on 2 processes, got {world}")
    if mode == "cfg+sp" and (world % 2 or world < 4):
        raise ValueError(f"--parallel cfg+sp needs an even number of processes >= 4, got {world}")
    shape, names = {"cfg": ((2,), ("cfg",)), "sp": ((world,), ("sp",)),
                    "cfg+sp": ((2, world // 2), ("cfg", "sp"))}[mode]
    return init_device_mesh(device_type(), shape, mesh_dim_names=names)
