"""Exponential moving average of the model's parameters (REFERENCE.md §5: decay 0.99, updated every 10 steps).

    ema <- decay * ema + (1 - decay) * param

The EMA holds one fp32 tensor per parameter, shaped like the parameter as the trainer sees it. Under
FSDP a parameter is a DTensor holding this process's shard, and so is its EMA: the update is local
(no communication) and only `full_state_dict` gathers the whole tensors, for checkpoints and export.
"""
from __future__ import annotations

import torch
from torch import nn

from .distributed import full_tensor, shard_like


class EMA:
    def __init__(self, model: nn.Module, decay: float = 0.99):
        self.decay = decay
        self.shadow: dict[str, torch.Tensor] = {
            name: p.detach().float().clone() for name, p in model.named_parameters()
        }

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float | None = None) -> None:
        decay = self.decay if decay is None else decay
        for name, p in model.named_parameters():
            self.shadow[name].lerp_(p.detach().float(), 1.0 - decay)

    def full_state_dict(self, keep: bool = True) -> dict[str, torch.Tensor]:
        """Whole fp32 tensors on CPU. Collective under FSDP: every process calls it, gathering one
        tensor at a time; those with keep=False (all but the main process) get {}."""
        out = {}
        for name, t in self.shadow.items():
            full = full_tensor(t)
            if keep:
                out[name] = full.cpu()
        return out

    @torch.no_grad()
    def load_full_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        """Whole tensors in. Under FSDP only the main process passes them (the others pass {}) and
        each tensor is broadcast into the shards."""
        from torch.distributed.tensor import DTensor

        if sd or not any(isinstance(t, DTensor) for t in self.shadow.values()):
            missing = sorted(set(self.shadow) - set(sd))
            unexpected = sorted(set(sd) - set(self.shadow))
            if missing or unexpected:
                raise ValueError(f"EMA state does not match the model: missing {missing[:5]}, "
                                 f"unexpected {unexpected[:5]}")
        for name, t in self.shadow.items():
            t.copy_(shard_like(sd[name].float() if name in sd else None, t))
