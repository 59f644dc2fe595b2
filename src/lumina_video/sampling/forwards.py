"""Counting the transformer's forward passes of a sampling run, per patch size.

Two counts per patch name ("PTxP"):
    calls   model calls (one call of a guided batch of B prompts, 2B rows, counts 1)
    items   rows the model processed (that call counts 2B; an unguided call of B prompts counts B)
`items` is the one that measures compute: FLOPs = sum over patches of items x flops_per_item(patch)
(model/flops.py). `reused` counts the (step, prompt) pairs whose velocity the step cache supplied
instead of a model call (sampling/step_cache.py).
"""
from __future__ import annotations

from .schedule import patch_name


class ForwardCounts:
    """Model calls, rows processed and reused (step, prompt) pairs per patch (module docstring)."""

    def __init__(self):
        self.calls: dict[str, int] = {}
        self.items: dict[str, int] = {}
        self.reused: dict[str, int] = {}

    def add_call(self, patch: tuple[int, int], rows: int) -> None:
        """One model call at `patch` (pt, p) on `rows` rows (2 per prompt when guided)."""
        name = patch_name(patch)
        self.calls[name] = self.calls.get(name, 0) + 1
        self.items[name] = self.items.get(name, 0) + int(rows)

    def add_reused(self, patch: tuple[int, int], prompts: int) -> None:
        """`prompts` prompts whose velocity at this step came from the step cache."""
        if prompts:
            name = patch_name(patch)
            self.reused[name] = self.reused.get(name, 0) + int(prompts)

    def total_items(self) -> int:
        return sum(self.items.values())

    def to_json(self) -> dict:
        """{"calls": {patch: n}, "items": {patch: n}, "reused": {patch: n}, "total_calls", "total_items"}."""
        return {"calls": dict(self.calls), "items": dict(self.items), "reused": dict(self.reused),
                "total_calls": sum(self.calls.values()), "total_items": self.total_items()}
