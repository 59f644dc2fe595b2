"""Distribution from outside the model: process group, FSDP2, activation checkpointing, compile.

The same trainer runs as one plain process (CPU or one GPU) or as several processes under `torchrun`
(gloo on CPU, NCCL on GPUs). The model file knows nothing of this; `wrap_model` applies, per block:
    1. activation checkpointing (torch.distributed._composable.checkpoint: keeps parameter names),
       then, with `distributed.sequence_parallel` N > 1, Ulysses sequence parallelism (parallel/),
    2. torch.compile (nn.Module.compile: in place, keeps parameter names),
    3. FSDP2 `fully_shard` (parameters become DTensor shards), then `fully_shard` on the root,
with bf16 parameters for compute and fp32 gradient reduction on CUDA (MixedPrecisionPolicy).
State dicts always travel as whole ("full") tensors, so a checkpoint loads into any number of
processes and into a plain model.
"""
from __future__ import annotations

import contextlib
import os
import socket
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..devices import default_dtype, parse_dtype


@dataclass
class DistEnv:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # True when setup() created the process group (and teardown ends it)
    sp: int = 1               # sequence-parallel group size N: ranks dp_rank N .. dp_rank N + N - 1 share items
    sp_group: object = None   # its process group (parallel.training_mesh), None when N = 1

    @property
    def dp_rank(self) -> int:
        """Index of this process's data-parallel group (its share of every global batch)."""
        return self.rank // self.sp

    @property
    def dp_world(self) -> int:
        return self.world // self.sp

    @property
    def sp_rank(self) -> int:
        return self.rank % self.sp

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def initialized(self) -> bool:
        return dist.is_available() and dist.is_initialized()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(force_group: bool = False) -> DistEnv:
    """Join (or start) the process group described by torchrun's environment, if any.

    An already initialised group (e.g. from torch.multiprocessing.spawn) is used as it is.
    `force_group` starts a one-process group so FSDP can wrap a single process.
    """
    cuda = torch.cuda.is_available()
    owns = False
    if not (dist.is_available() and dist.is_initialized()):
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1 or force_group:
            if world == 1:
                os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
                os.environ.setdefault("MASTER_PORT", str(free_port()))
                os.environ.setdefault("RANK", "0")
                os.environ.setdefault("WORLD_SIZE", "1")
            dist.init_process_group("nccl" if cuda else "gloo")
            owns = True
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", rank % max(1, torch.cuda.device_count()) if cuda else 0))
    else:
        rank, world, local_rank = 0, 1, 0
    if cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    return DistEnv(rank, world, local_rank, device, owns)


def with_sequence_parallel(env: DistEnv, n: int) -> DistEnv:
    """`env` with N-process sequence-parallel groups on the ("dp", "sp") mesh (parallel/mesh.py)."""
    if n == 1:
        return env
    if env.world % n:
        raise ValueError(f"distributed.sequence_parallel={n} must divide the number of processes ({env.world}); "
                         f"start them with torchrun --nproc_per_node")
    from dataclasses import replace

    from ..parallel import training_mesh

    return replace(env, sp=n, sp_group=training_mesh(n).get_group("sp"))


def teardown(env: DistEnv, clean: bool = True) -> None:
    """End the group setup() started. After a clean run the processes leave together (one leaving
    mid-collective aborts its peers); after an error nobody waits for the others."""
    if env.owns_group and dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.initialized:
        dist.barrier()


def all_reduce_sum(x: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Sum over processes. gloo reduces CPU tensors, NCCL CUDA tensors: move to the env's device."""
    if not env.initialized:
        return x
    y = x.to(env.device)
    dist.all_reduce(y)
    return y.to(x.device)


# ------------------------------------------------------------------------------------------------
# precision
# ------------------------------------------------------------------------------------------------

def compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    """"auto" -> bf16 on CUDA, fp32 elsewhere."""
    if precision == "auto":
        return default_dtype(device)
    return parse_dtype(precision, accepted=("bf16", "fp32"))


def autocast(device: torch.device, dtype: torch.dtype, sharded: bool):
    """Mixed precision for an unsharded model (FSDP does it with its policy instead)."""
    if sharded or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# ------------------------------------------------------------------------------------------------
# wrapping
# ------------------------------------------------------------------------------------------------

def wrap_model(model: nn.Module, env: DistEnv, *, shard: bool, dtype: torch.dtype,
               activation_checkpointing: bool = False, compile: bool = False) -> nn.Module:
    """Apply activation checkpointing, compile and FSDP2 per block (`model.layers`), then FSDP2 on the root.

    With `env.sp` > 1 the token sequence is sharded over the env's sequence-parallel group (Ulysses,
    parallel/sequence.py), after activation checkpointing so that a recomputed block is given the
    inputs its forward was given; FSDP2 still shards over all W processes (a flat mesh): the sp ranks of
    a group hold partial gradients of the same parameters, and the one reduce-scatter that averages over
    W sums them too (see train_step). Parameter names are unchanged, so state dicts keep the official key names.
    """
    blocks = list(model.layers)
    if activation_checkpointing:
        from torch.distributed._composable import checkpoint

        for block in blocks:
            checkpoint(block)
    if env.sp > 1:
        from ..parallel import parallelize_sequence

        parallelize_sequence(model, env.sp_group)
    if compile:
        for block in blocks:
            block.compile()
    if shard:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = init_device_mesh(env.device.type, (env.world,))
        policy = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
        for block in blocks:
            fully_shard(block, mesh=mesh, mp_policy=policy)
        fully_shard(model, mesh=mesh, mp_policy=policy)
        # An image's output is a view (its first frame); we never modify it in place.
        warnings.filterwarnings("ignore", message=".*returned a view tensor.*")
    return model


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def set_gradient_sync(model: nn.Module, sync: bool) -> None:
    """Under FSDP, skip the gradient reduce-scatter for all but the last backward of a step."""
    if hasattr(model, "set_requires_gradient_sync"):
        model.set_requires_gradient_sync(sync)


# ------------------------------------------------------------------------------------------------
# full tensors <-> shards
# ------------------------------------------------------------------------------------------------

def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a DTensor shard (collective), or the tensor itself."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def shard_like(full: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """Cut a whole tensor into the shard `like` holds (same mesh and placements), or return it as is.
    `full` None (on processes other than the main one): the main process's tensor is broadcast."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if isinstance(like, DTensor):
        if full is None:
            full = torch.empty(like.shape, dtype=like.dtype)
        return distribute_tensor(full.to(like.device, like.dtype), like.device_mesh, like.placements, src_data_rank=0)
    return full.to(like.device)


def _options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def model_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Whole fp32 tensors on CPU, official key names. Collective under FSDP, where only the main
    process gets the tensors (the others {})."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    sd = get_model_state_dict(model, options=_options(cpu_offload=is_sharded(model)))
    return {k: v.detach().float().cpu().contiguous() for k, v in sd.items()}


def load_model_state_dict(model: nn.Module, sd: dict[str, torch.Tensor]) -> None:
    """Whole tensors into a plain or sharded model. Sharded: only the main process needs `sd`
    (the others pass {}); its tensors are broadcast one by one."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    from ..model import clean_state_dict

    sharded = is_sharded(model)
    set_model_state_dict(model, clean_state_dict(sd), options=_options(strict=not sharded or bool(sd),
                                                                       broadcast_from_rank0=sharded))


def optimizer_state_dict(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Optimizer state keyed by parameter names, whole tensors on CPU (collective under FSDP)."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=_options(cpu_offload=is_sharded(model)))


def load_optimizer_state_dict(model: nn.Module, optimizer: torch.optim.Optimizer, osd: dict) -> None:
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    # strict=False: parameters that never had a gradient (pad_token, patch embedders of tasks not yet
    # trained) have no AdamW state to restore.
    set_optimizer_state_dict(model, optimizer, osd, options=_options(strict=False,
                                                                     broadcast_from_rank0=is_sharded(model)))


# ------------------------------------------------------------------------------------------------
# memory
# ------------------------------------------------------------------------------------------------

def peak_memory_mb(device: torch.device) -> float:
    """Peak accelerator memory (CUDA) or peak resident memory of this process (CPU), in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    except Exception:  # pragma: no cover - non-POSIX
        return float("nan")
