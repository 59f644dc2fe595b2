"""Ulysses attention: tokens sharded over P ranks, heads sharded inside the attention kernel.

With the sequence split into P equal chunks (rank r holds tokens [r Lp, (r+1) Lp), Lp = L_pad / P):

    q, k, v (B, Lp, H, D) on every rank
      --all-to-all (sequence -> heads)-->   (B, L_pad, H/P, D): the whole sequence, heads [r H/P, (r+1) H/P)
      attention over the whole sequence with the whole key mask (B, L_pad)
      --all-to-all (heads -> sequence)-->   (B, Lp, H, D)

so every rank attends over all tokens for its heads, and the result equals one process's. q, k and v
travel in ONE all-to-all (concatenated along heads). The collectives are torch's functional
collectives with autograd (`all_to_all_single_autograd`: its backward is the reverse all-to-all),
which run on gloo (CPU) and NCCL alike.

GQA (query head h uses kv head h // g, g = Hq / Hkv): with Hkv divisible by P, rank r gets kv heads
[r Hkv/P, (r+1) Hkv/P) and its query heads' groups are all among them. With fewer kv heads than ranks
(Hkv % P != 0) the kv heads are first repeated n = lcm(Hkv, P) / Hkv times (`repeat_interleave`: kv'
head i = kv head i // n); n Hkv divides by P and Hq by n Hkv (both P and Hkv divide Hq), and query head
h uses kv' head h // (g / n), a copy of its own kv head h // g. The cost: n times the kv traffic, no
change of the kernel. Hq must be divisible by P.

The seam: the model's `Attention.forward` runs its self-attention through `Attention.self_kernel`
(`attend` when None). `UlyssesKernel` is set there for every block by `parallelize_sequence`; the
caption cross-attention keeps calling `attend` with its sharded queries and the whole caption keys on
every rank: no communication. `Attention.backend` ("auto", "sdpa", "flash") still picks the kernel
that runs inside the all-to-alls.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch.distributed import _functional_collectives as fc

from ..model.attention import attend


class UlyssesKernel:
    """A block's self-attention kernel under sequence parallelism over `group`; `state` (a `ShardState`)
    holds the whole padded key mask of the model's current forward."""

    def __init__(self, group, state):
        self.group, self.state = group, state

    def __call__(self, q, k, v, q_mask, k_mask, backend: str = "auto"):
        """`attend`'s signature: q, k, v the rank's sequence shards, q_mask / k_mask its shard of the mask."""
        return ulysses_attention(q, k, v, self.state.full_mask, self.group, attend, backend)


def group_size(group) -> int:
    return dist.get_world_size(group)


def kv_repeats(n_kv_heads: int, world: int) -> int:
    """n = lcm(Hkv, P) / Hkv: how many copies of each kv head make their count divisible by P."""
    return math.lcm(n_kv_heads, world) // n_kv_heads


def _to_heads(x: torch.Tensor, world: int, group) -> torch.Tensor:
    """(B, Lp, H, D) sequence shard -> (B, P Lp, H/P, D) head shard (all-to-all over `group`)."""
    b, lp, h, d = x.shape
    send = x.reshape(b, lp, world, h // world, d).permute(2, 0, 1, 3, 4).contiguous()  # (P, B, Lp, H/P, D)
    recv = fc.all_to_all_single_autograd(send.flatten(0, 1), None, None, group)
    recv = fc.wait_tensor(recv).view(world, b, lp, h // world, d)  # chunk i: rank i's tokens
    return recv.permute(1, 0, 2, 3, 4).reshape(b, world * lp, h // world, d)


def _to_sequence(x: torch.Tensor, world: int, group) -> torch.Tensor:
    """(B, P Lp, H/P, D) head shard -> (B, Lp, H, D) sequence shard, the inverse of `_to_heads`."""
    b, n, hp, d = x.shape
    lp = n // world
    send = x.reshape(b, world, lp, hp, d).permute(1, 0, 2, 3, 4).contiguous()  # (P, B, Lp, H/P, D)
    recv = fc.all_to_all_single_autograd(send.flatten(0, 1), None, None, group)
    recv = fc.wait_tensor(recv).view(world, b, lp, hp, d)  # chunk i: heads of rank i
    return recv.permute(1, 2, 0, 3, 4).reshape(b, lp, world * hp, d)


def ulysses_attention(q, k, v, full_mask, group, kernel, backend: str):
    """q (B, Lp, Hq, D), k/v (B, Lp, Hkv, D) sequence shards, full_mask (B, P Lp) bool over the padded
    sequence -> (B, Lp, Hq, D): `kernel(q, k, v, q_mask, k_mask, backend)` over the whole sequence, per head shard."""
    world = group_size(group)
    hq, hkv = q.shape[2], k.shape[2]
    if hq % world:
        raise ValueError(f"sequence parallelism over {world} ranks needs n_heads divisible by it, got {hq}")
    rep = kv_repeats(hkv, world)
    if rep > 1:
        k, v = k.repeat_interleave(rep, dim=2), v.repeat_interleave(rep, dim=2)
    hk = k.shape[2]
    both = _to_heads(torch.cat(_interleave(q, k, v, world), dim=2), world, group)  # (B, L, (Hq+2Hk)/P, D)
    q_h, k_h, v_h = both.split([hq // world, hk // world, hk // world], dim=2)
    out = kernel(q_h, k_h, v_h, full_mask, full_mask, backend)  # (B, L, Hq/P, D)
    return _to_sequence(out, world, group)


def _interleave(q, k, v, world: int):
    """Per-rank groups [q heads of rank r | k heads of rank r | v heads of rank r] for r = 0..P-1, so that
    one all-to-all moves all three: returns the P groups (each (B, Lp, (Hq+2Hk)/P, D))."""
    qs, ks, vs = (t.chunk(world, dim=2) for t in (q, k, v))
    return [torch.cat([a, b, c], dim=2) for a, b, c in zip(qs, ks, vs)]
