"""Sequence parallelism for a MultiScaleNextDiT, applied from outside (as FSDP2 is): `parallelize_sequence`.

The model's forward is left as it is; hooks on its modules change what flows between them:
    - before each block (forward pre-hook): the token stream x (B, L, dim), its mask (B, L) (None = all
      real) and its RoPE factors (B, L, head_dim/2) are padded to L_pad = P ceil(L / P) (mask False,
      factors 1) and cut into P chunks; rank r keeps chunk r. The first block receives the whole x and
      cuts it; the later ones already get the chunk from the block before. A per-token condition
      (B, L, cond_dim) is cut the same way; a per-item one (B, cond_dim) is left whole.
    - inside each block's self-attention: Ulysses (parallel/ulysses.py) with the whole padded mask; the
      caption cross-attention runs on the rank's queries against the whole caption, unchanged.
    - before the final layer (forward pre-hook): the chunks are all-gathered (autograd:
      `all_gather_single_autograd`, backward = reduce-scatter sum) and the padding cut off, so the final
      layer and unpatchify see the whole sequence and the output is whole on every rank.
Ragged list batches, images and every patch size come through the same path: the model pads a ragged
batch and builds its mask and RoPE factors before the first block, and the hooks only pad further.

Gradients: every rank of the group computes the same output and, in training, the same loss X. The
gather's backward sums the P ranks' gradients, so each rank's parameter gradients are partial sums
whose total over the group is P dX/dθ; FSDP2 over all W = dp x sp processes averages (divides by W),
which gives the mean over the dp groups of dX/dθ: the one-process gradient (training/dit.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributed import _functional_collectives as fc

from . import ulysses


@dataclass
class ShardState:
    """The sharding of the current forward of one model (rank, world; set by the first block's hook)."""

    rank: int
    world: int
    length: int = 0                          # L: tokens before padding
    full_mask: torch.Tensor | None = None    # (B, L_pad) bool, for the attention kernel
    local_mask: torch.Tensor | None = None   # (B, Lp) bool, this rank's chunk of it
    source: tuple = ()                       # (x_mask, freqs) objects the cached chunks were cut from
    local_freqs: torch.Tensor | None = None  # (B, Lp, head_dim/2) complex

    @property
    def padded(self) -> int:
        return -(-self.length // self.world) * self.world

    def chunk(self, t: torch.Tensor, fill) -> torch.Tensor:
        """This rank's chunk along dim 1 of the padded (B, L, ...) tensor `t` (padding value `fill`)."""
        pad = self.padded - t.shape[1]
        if pad:
            if t.is_complex():
                t = torch.cat([t, t.new_full((t.shape[0], pad, *t.shape[2:]), fill)], dim=1)
            else:
                t = F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad), value=fill)
        lp = self.padded // self.world
        return t[:, self.rank * lp:(self.rank + 1) * lp]

    def start(self, x: torch.Tensor, x_mask: torch.Tensor | None, freqs: torch.Tensor) -> None:
        """New forward: record L and cut the mask and RoPE factors (once; every block reuses them)."""
        self.length = x.shape[1]
        mask = x_mask if x_mask is not None else torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        self.full_mask = F.pad(mask, (0, self.padded - self.length), value=False)
        lp = self.padded // self.world
        self.local_mask = self.full_mask[:, self.rank * lp:(self.rank + 1) * lp]
        self.local_freqs = self.chunk(freqs, 1.0)
        self.source = (x_mask, freqs)


def _block_hook(state: ShardState, group, first: bool):
    """Forward pre-hook of block i: (x, x_mask, freqs, cap_feats, cap_mask, c, *rest) -> the rank's chunks.
    It also keeps the block's self-attention kernel Ulysses (`Attention.self_kernel`), so nothing set on
    the model later silently makes it attend over the rank's chunk alone."""
    kernel = ulysses.UlyssesKernel(group, state)

    def hook(module, args, kwargs):
        if module.attention.self_kernel is not kernel:
            module.attention.self_kernel = kernel
        x, x_mask, freqs, cap_feats, cap_mask, c, *rest = args
        if first or state.source[0] is not x_mask or state.source[1] is not freqs:
            if not first:
                raise RuntimeError("sequence parallelism: a block got another mask or RoPE table than the first")
            state.start(x, x_mask, freqs)
            x = state.chunk(x, 0.0)
        if c.dim() == 3:  # a per-token condition
            c = state.chunk(c, 0.0)
        return (x, state.local_mask, state.local_freqs, cap_feats, cap_mask, c, *rest), kwargs

    return hook


def _gather(state: ShardState, group, t: torch.Tensor) -> torch.Tensor:
    """(B, Lp, ...) chunks of every rank -> (B, L, ...) without the padding."""
    whole = fc.wait_tensor(fc.all_gather_single_autograd(t.transpose(0, 1).contiguous(), 0, group))
    return whole.transpose(0, 1)[:, :state.length]


def _final_hook(state: ShardState, group):
    def hook(module, args, kwargs):
        x, c, *rest = args
        if c.dim() == 3:
            c = _gather(state, group, c)
        return (_gather(state, group, x), c, *rest), kwargs

    return hook


def parallelize_sequence(model: nn.Module, group) -> nn.Module:
    """Shard `model`'s token sequence over the process group `group` (Ulysses). In place; parameter names,
    state dicts and the forward's signature and results (within float rounding) are unchanged.
    Every rank of `group` must call the model with the same inputs."""
    import torch.distributed as dist

    if getattr(model, "_sequence_parallel", None) is not None:
        raise ValueError("the model is already sequence parallel")
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    heads = model.config["n_heads"]
    if heads % world:
        raise ValueError(f"sequence parallelism over {world} ranks needs n_heads ({heads}) divisible by {world}")
    state = ShardState(rank, world)
    handles = []
    for i, block in enumerate(model.layers):
        handles.append(block.register_forward_pre_hook(_block_hook(state, group, i == 0), with_kwargs=True))
    for final in model.all_final_layer.values():
        handles.append(final.register_forward_pre_hook(_final_hook(state, group), with_kwargs=True))
    model._sequence_parallel = (state, group, handles)
    return model
