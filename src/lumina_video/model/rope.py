"""3D rotary position embedding (docs/REFERENCE.md §1, "3D RoPE").

The head dimension is split into three axis widths (f, h, w) = (2/8, 3/8, 3/8) of head_dim.
For an axis of width d, freqs = 1 / theta^(arange(0, d, 2) / d) and the angle of a token at integer
position `pos` is pos * freqs. Pairs (x[2i], x[2i+1]) are rotated as complex numbers; the three
axes' rotations are concatenated [f | h | w]. Positions start at 0 for every item and patch size.

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


class RoPE3D:
    """Computes complex rotation factors for (F, H, W) token grids.

    Not an nn.Module on purpose: it has no parameters and no state-dict entries.
    """

    def __init__(self, head_dim: int, theta: float, axes_lens=DEFAULT_AXES_LENS):
        self.head_dim = head_dim
        self.theta = float(theta)
        self.axes_dims = axis_dims(head_dim)
        self.axes_lens = tuple(int(n) for n in axes_lens)
        self._cache: dict[tuple, torch.Tensor] = {}

    def check_grid(self, grid: tuple[int, int, int]) -> None:
        for name, n, limit in zip(("temporal", "height", "width"), grid, self.axes_lens):
            if n > limit:
                raise ValueError(
                    f"the input has {n} {name} tokens but the RoPE table allows at most {limit} "
                    f"(token grid {tuple(grid)}, limits {self.axes_lens} for (frames, height, width)); "
                    f"use a smaller input or a larger patch size"
                )

    def axis_freqs(self, d: int, n: int, device) -> torch.Tensor:
        """(n, d/2) complex64 rotation factors for positions 0..n-1 of one axis."""
        freqs = 1.0 / (self.theta ** (torch.arange(0, d, 2, dtype=torch.float64, device=device) / d))
        pos = torch.arange(n, dtype=torch.float64, device=device)
        angles = torch.outer(pos, freqs).float()
        return torch.polar(torch.ones_like(angles), angles)

    def grid_freqs(self, grid: tuple[int, int, int], device) -> torch.Tensor:
        """(F*H*W, head_dim/2) complex64 factors, tokens ordered f, then h, then w."""
        grid = tuple(int(g) for g in grid)
        key = (grid, str(device))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        self.check_grid(grid)
        nf, nh, nw = grid
        df, dh, dw = self.axes_dims
        ff = self.axis_freqs(df, nf, device)[:, None, None, :].expand(nf, nh, nw, df // 2)
        fh = self.axis_freqs(dh, nh, device)[None, :, None, :].expand(nf, nh, nw, dh // 2)
        fw = self.axis_freqs(dw, nw, device)[None, None, :, :].expand(nf, nh, nw, dw // 2)
        table = torch.cat([ff, fh, fw], dim=-1).reshape(nf * nh * nw, self.head_dim // 2)
        if len(self._cache) > 64:  # bounded: grids come from a handful of buckets
            self._cache.clear()
        self._cache[key] = table
        return table


def apply_rope(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, L, H, D) by freqs (B, L, D/2) complex, in fp32; returns x's dtype."""
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))  # (B, L, H, D/2)
    out = torch.view_as_real(xc * freqs[:, :, None, :]).flatten(-2)
    return out.to(x.dtype)
