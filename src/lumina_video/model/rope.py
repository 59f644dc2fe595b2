"""Rotary position embedding over N axes; the video model's 3D RoPE (docs/REFERENCE.md §1, "3D RoPE").

The head dimension is split into per-axis widths; for the video model three axes (f, h, w) = (2/8, 3/8,
3/8) of head_dim. For an axis of width d, freqs = 1 / theta^(arange(0, d, 2) / d) and the angle of a
token at position `pos` is pos * freqs. Pairs (x[2i], x[2i+1]) are rotated as complex numbers; the axes'
rotations are concatenated in axis order, e.g. [f | h | w]. Grid positions are the integers 0..n-1 of
each axis (starting at 0 for every item and patch size); `point_freqs` takes arbitrary real positions
(the V2A model puts video frames at fractional positions of the audio time axis), and at an integer
position it gives exactly the grid's factor (the same float64 product, rounded once).

Nothing here is stored in the state dict: tables are computed on demand and cached per grid.
"""
from __future__ import annotations

import torch

# The official model's table limits, in tokens of the current patch grid.
DEFAULT_AXES_LENS = (64, 128, 128)


def axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Per-axis rotary widths (f, h, w) for a head dimension, e.g. 144 -> (36, 54, 54)."""
    if head_dim % 8 != 0:
        raise ValueError(f"3D RoPE needs head_dim divisible by 8, got {head_dim}")
    unit = head_dim // 8
    return (2 * unit, 3 * unit, 3 * unit)


class RoPE:
    """Complex rotation factors for token grids over N axes of widths `axes_dims` (summing to head_dim).

    `axes_names` name the axes in error messages, e.g. ("temporal", "height", "width").
    Not an nn.Module on purpose: it has no parameters and no state-dict entries.
    """

    def __init__(self, head_dim: int, theta: float, axes_dims, axes_lens, axes_names, axes_label: str):
        self.head_dim = head_dim
        self.theta = float(theta)
        self.axes_dims = tuple(int(d) for d in axes_dims)
        self.axes_lens = tuple(int(n) for n in axes_lens)
        self.axes_names = tuple(axes_names)
        self.axes_label = axes_label
        if sum(self.axes_dims) != head_dim or any(d % 2 for d in self.axes_dims):
            raise ValueError(f"RoPE axis widths {self.axes_dims} must be even and sum to head_dim {head_dim}")
        self._cache: dict[tuple, torch.Tensor] = {}

    def check_grid(self, grid) -> None:
        for name, n, limit in zip(self.axes_names, grid, self.axes_lens):
            if n > limit:
                raise ValueError(
                    f"the input has {n} {name} tokens but the RoPE table allows at most {limit} "
                    f"(token grid {tuple(grid)}, limits {self.axes_lens} for {self.axes_label}); "
                    f"use a smaller input or a larger patch size"
                )

    def axis_base(self, d: int, device) -> torch.Tensor:
        """(d/2,) float64 frequencies 1 / theta^(2i / d) of one axis."""
        return 1.0 / (self.theta ** (torch.arange(0, d, 2, dtype=torch.float64, device=device) / d))

    def axis_freqs(self, d: int, n: int, device) -> torch.Tensor:
        """(n, d/2) complex64 rotation factors for positions 0..n-1 of one axis."""
        pos = torch.arange(n, dtype=torch.float64, device=device)
        angles = torch.outer(pos, self.axis_base(d, device)).float()
        return torch.polar(torch.ones_like(angles), angles)

    def grid_freqs(self, grid, device) -> torch.Tensor:
        """(prod(grid), head_dim/2) complex64 factors, tokens ordered by the first axis, then the next..."""
        grid = tuple(int(g) for g in grid)
        key = (grid, str(device))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        self.check_grid(grid)
        parts = []
        for i, (n, d) in enumerate(zip(grid, self.axes_dims)):
            view = [1] * len(grid) + [d // 2]
            view[i] = n
            parts.append(self.axis_freqs(d, n, device).view(view).expand(*grid, d // 2))
        table = torch.cat(parts, dim=-1).reshape(-1, self.head_dim // 2).clone()  # not a view: no _base to guard
        if len(self._cache) > 64:  # bounded: grids come from a handful of buckets
            self._cache.clear()
        self._cache[key] = table
        return table

    def point_freqs(self, positions: torch.Tensor) -> torch.Tensor:
        """positions (..., n_axes) real -> (..., head_dim/2) complex64: the factors at arbitrary positions.

        Position 0 on an axis is the identity rotation (angle 0) of that axis' channels."""
        pos = positions.to(torch.float64)
        parts = []
        for i, d in enumerate(self.axes_dims):
            angles = (pos[..., i, None] * self.axis_base(d, pos.device)).float()  # (..., d/2)
            parts.append(torch.polar(torch.ones_like(angles), angles))
        return torch.cat(parts, dim=-1)


class RoPE3D(RoPE):
    """The video model's RoPE over (F, H, W) token grids, widths `axis_dims(head_dim)`."""

    def __init__(self, head_dim: int, theta: float, axes_lens=DEFAULT_AXES_LENS):
        super().__init__(head_dim, theta, axis_dims(head_dim), axes_lens, ("temporal", "height", "width"),
                         "(frames, height, width)")


def apply_rope(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, L, H, D) by freqs (B, L, D/2) complex, in fp32; returns x's dtype.

    x_c = x[..., 2i] + j x[..., 2i+1];  out_c = x_c * freqs. A half-precision x makes one fp32 copy,
    rotated in place (no second fp32 tensor), then one cast back; an fp32 x is rotated out of place."""
    xf = x.float()  # x itself when x is fp32
    xc = torch.view_as_complex(xf.reshape(*x.shape[:-1], -1, 2))  # (B, L, H, D/2)
    rot = freqs[:, :, None, :]
    xc = xc.mul_(rot) if x.dtype != torch.float32 else xc * rot  # in place only on our own copy
    return torch.view_as_real(xc).flatten(-2).to(x.dtype)
