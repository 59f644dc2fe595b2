"""Guidance (batch) parallelism for sampling: `parallelize_batch(model, group)`.

The sampler calls the model once per step on a batch of 2B rows: [0:B] the prompts, [B:2B] the
negative prompts. With G ranks in `group`, a forward pre-hook on the model keeps rank g's rows
[g n, (g+1) n), n = rows / G, of every batched input (x, t, cap_feats, cap_mask, motion_score), and a
forward post-hook all-gathers the outputs, so every rank returns the whole batch. With G = 2 the guided
and unguided branches run on two ranks at once. Items of a batch never interact in the model, so the
result is the one-process result. A batch whose rows do not divide by G (the unguided steps after
the guidance cut-off of a single prompt) runs whole on every rank. No gradients: sampling only.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

NAMES = ("x", "t", "cap_feats", "cap_mask", "motion_score")


def _rows(value) -> int | None:
    return value.shape[0] if isinstance(value, torch.Tensor) else None


def _pre_hook(rank: int, world: int, flag: dict):
    def hook(module, args, kwargs):
        x = args[0] if args else kwargs.get("x")
        rows = _rows(x)
        flag["split"] = rows is not None and rows % world == 0 and rows >= world
        if not flag["split"]:
            return None
        n = rows // world
        cut = lambda v: v[rank * n:(rank + 1) * n] if _rows(v) == rows else v  # noqa: E731
        args = tuple(cut(a) if i < len(NAMES) else a for i, a in enumerate(args))
        kwargs = {k: cut(v) if k in NAMES else v for k, v in kwargs.items()}
        return args, kwargs

    return hook


def _post_hook(group, world: int, flag: dict):
    def hook(module, args, kwargs, output):
        if not flag.get("split"):
            return None
        parts = [torch.empty_like(output) for _ in range(world)]
        dist.all_gather(parts, output.contiguous(), group=group)
        return torch.cat(parts)

    return hook


def parallelize_batch(model: nn.Module, group) -> nn.Module:
    """Split each forward's batch over `group` and gather the outputs (in place; weights unchanged)."""
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    flag: dict = {}
    model.register_forward_pre_hook(_pre_hook(rank, world, flag), with_kwargs=True)
    model.register_forward_hook(_post_hook(group, world, flag), with_kwargs=True)
    return model
