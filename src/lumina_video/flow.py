"""Flow matching: the one time convention of the package (docs/REFERENCE.md §2).

    t = 0 is noise, t = 1 is data.
    x_t = t * x1 + (1 - t) * x0,      x0 ~ N(0, I),  x1 = data
    u   = d x_t / dt = x1 - x0        (the velocity the model predicts)

Time shift (scale-aware): with a >= 1, t' = t / (t + a - a t) = t / (a - (a - 1) t) moves time
towards the noise end, where larger (or longer) inputs need more of the steps. a = 1 is identity;
the map is monotone with t'(0) = 0 and t'(1) = 1.

Loss per item: MSE(pred, u) + vd_weight * (1 - cos(pred, u)), both flattened (n values). The
cosine's denominator has a floor on the prediction's norm,
    cos(p, u) = <p, u> / (sqrt(|p|^2 + n * RMS_FLOOR^2) * |u|),        RMS_FLOOR = 1e-3,
because the plain cosine's gradient grows like 1 / |p| and is unbounded at p = 0, which is exactly
what the zero-initialised output layer predicts at the first step (gradient norms near 1e9 there).
With the floor the gradient of (1 - cos) at p = 0 is u / (sqrt(n) RMS_FLOOR |u|), of norm
1 / (sqrt(n) RMS_FLOOR), and where the prediction is not degenerate (RMS(p) >= 0.1) the value differs
from the plain cosine by a factor within 5e-5 of 1.
"""
from __future__ import annotations

import torch

# Time shift per task in the training recipe: (media, (pt, p)) -> a.
RECIPE_SHIFTS = {
    ("image", (1, 2)): 1.0,
    ("video", (1, 2)): 2.0,
    ("video", (2, 2)): 4.0,
    ("video", (2, 4)): 8.0,
}


def time_shift(t, shift: float):
    """t' = t / (t + a - a t). Works on floats and tensors."""
    if shift <= 0:
        raise ValueError(f"time shift must be > 0, got {shift}")
    return t / (t + shift - shift * t)


def interpolate(x0, x1, t):
    """x_t = t x1 + (1 - t) x0 with t broadcast over the trailing dims of each item. t: (B,)."""
    t = t.reshape(-1, *([1] * (x1.dim() - 1))).to(x1.dtype)
    return t * x1 + (1 - t) * x0


def target_velocity(x0, x1):
    """u = x1 - x0, the velocity of the straight path (what the model predicts)."""
    return x1 - x0


def sample_t(n: int, mode: str = "uniform", *, mean: float = 0.0, std: float = 1.0,
             generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
    """Training times in (0, 1): "uniform" U(0, 1), or "logit_normal" sigmoid(N(mean, std))."""
    if mode == "uniform":
        return torch.rand(n, generator=generator, device=device)
    if mode == "logit_normal":
        return torch.sigmoid(mean + std * torch.randn(n, generator=generator, device=device))
    raise ValueError(f"unknown t sampling mode {mode!r}; accepted: 'uniform', 'logit_normal'")


RMS_FLOOR = 1e-3


def safe_cosine(p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine of (B, n) tensors with the prediction-norm floor of the module docstring."""
    n = p.shape[1]
    p_norm = torch.sqrt(p.pow(2).sum(dim=1) + n * RMS_FLOOR**2)
    u_norm = u.norm(dim=1).clamp(min=1e-8)
    return (p * u).sum(dim=1) / (p_norm * u_norm)


def item_loss(pred: torch.Tensor, target: torch.Tensor, vd_weight: float = 1.0) -> torch.Tensor:
    """Per-item loss (B,): MSE + vd_weight * (1 - cosine similarity), each item flattened. fp32."""
    p = pred.float().flatten(1)
    u = target.float().flatten(1)
    mse = (p - u).pow(2).mean(dim=1)
    if vd_weight == 0:
        return mse
    return mse + vd_weight * (1 - safe_cosine(p, u))


def shifted_grid(steps: int, shift: float, device="cpu") -> torch.Tensor:
    """Sampling grid: linspace(0, 1, steps + 1) shifted; `steps` Euler steps (docs/REFERENCE.md §2)."""
    if steps < 1:
        raise ValueError(f"the number of sampling steps must be >= 1, got {steps}")
    return time_shift(torch.linspace(0, 1, steps + 1, dtype=torch.float64, device=device), shift).float()


__all__ = ["RECIPE_SHIFTS", "time_shift", "interpolate", "target_velocity", "sample_t", "item_loss", "shifted_grid"]
