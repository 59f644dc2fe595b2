"""Sync features for video-to-audio: a high-frame-rate visual encoder whose features say *when* things happen.

The interface (`SyncEncoder`) is all the V2A model relies on:

    encoder.encode(frames (F, H, W, 3), times (F,) s, duration=None, max_seconds=None)
        -> features (N, dim) tensor, feature_times (N,) float64 seconds, strictly increasing
    encoder.dim     width of a feature
    encoder.rate    features per second (nominal: what feature_times step by)

The consumer never assumes a rate: it looks features up at its own times (the audio latents at k / 25 s)
with `clips.align_to_times` (latest feature at or before each time). A feature's time is the start of
the span of frames it describes.

`SmallSyncEncoder` is the small trainable one, for training here (end to end with the V2A model, or alone):

    x_k      frames resampled to `rate` by timestamp (nearest previous), resized to S x S (antialiased,
             aspect squashed: edges matter for impacts), scaled to [-1, 1]; grey = Rec. 601 luma
    d_k      x_k - x_{k-1}  (d_0 = 0: the first frame has no predecessor)
    a_k      CNN_a(x_k), m_k = CNN_m(d_k)     each len(channels) stride-2 4x4 convs (GroupNorm, SiLU),
                                              flattened, linear -> width                # (N, width)
    h        [a_k, m_k] over k -> L temporal Conv1d (kernel K, zero padding (K - 1) / 2, SiLU between)
             -> features (N, dim) at times k / rate

    t_k      (timbre_dim > 0) CNN_t(j(x_k)) -> one temporal Conv1d (kernel K) -> timbre_dim channels,
             CNN_t the same convolutions ending in a global max over positions (then linear -> width), so a
             shape is recognised wherever the object is (a flattened map must learn it at every position),
             appended: features (N, dim + timbre_dim). j is a colour jitter drawn per clip while training
             (a random permutation of the R, G, B planes and a random sign per plane, i.e. inverting it;
             with grey frames the sign only) and the identity in eval mode: the branch never sees one colour
             keep its meaning, so what it learns to say (the harmonic amplitudes, model/v2a_harmonics.py) must
             come from the shape, and it holds for (colour, shape) pairs never seen together.

Receptive field: feature k sees frames k - L (K - 1) / 2 - 1 .. k + L (K - 1) / 2 (the extra frame back is
the difference's predecessor). The defaults (rate 25, K = 5, L = 2) see 10 frames, 0.2 s back and 0.16 s
ahead; `receptive_field()` gives the numbers. No no_grad anywhere: gradients reach every weight.

Plugging in a Synchformer-like model: write a class with `dim`, `rate` and `encode(frames, times,
duration=None, max_seconds=None)` as above; `isinstance(obj, SyncEncoder)` checks the names. What we know
of Synchformer's visual branch (Iashin et al. 2024) as MMAudio uses it, read from MMAudio's sequence
config and network: frames at 25 fps (sync_frame_rate = 25; not 24), 224 x 224, cut into 16-frame
segments every 8 frames; the MotionFormer tower's 2-frame tubelets give 8 tokens per segment
(sync_downsample_rate = 2), 768 wide. An 8 s clip is 200 frames, (200 - 16) // 8 + 1 = 24 segments,
192 tokens; MMAudio adds a learned position per token of a segment and stretches the 192 to the 250
latents by index ("nearest-exact"), not by time. Segments overlap by half, so the same frame pair has
two tokens: to give each token one time, `segments_to_timeline(tokens (S, 8, D), fps=25, step=8,
frames_per_token=2)` averages the tokens of each frame pair, giving 4 (S - 1) + 8 features at 12.5 per
second, feature g at time 2 g / 25 s (rate = 12.5). Unsure: whether averaging the two overlapping tokens
loses what MMAudio's segment positions encode (keeping only the first half of each segment is the
alternative), and whether Lumina-V2A feeds Synchformer exactly as MMAudio does. MMAudio's input transform
(its eval_utils): short side resized to 224 (bicubic), centre crop 224, x / 255, then mean 0.5, std 0.5
(so [-1, 1]). Its weights are not available here, so none of this is tested against it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import _checks, files
from .._checks import short_reason
from .clips import resample_by_time

CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
CLASS_NAME, FORMAT_VERSION = "SmallSyncEncoder", 1
LUMA = (0.299, 0.587, 0.114)  # Rec. 601 weights of R, G, B
RESIZE_CHUNK = 16  # frames resized at a time: a 1080p float chunk stays near 400 MB


@runtime_checkable
class SyncEncoder(Protocol):
    """What the V2A model needs of a sync encoder (module docstring)."""

    dim: int
    rate: float

    def encode(self, frames, times, duration: float | None = None,
               max_seconds: float | None = None) -> tuple[torch.Tensor, np.ndarray]:
        ...


@dataclass
class SmallSyncConfig:
    """The constructor arguments of `SmallSyncEncoder`, saved as config.json."""

    rate: float = 25.0
    size: int = 64
    grey: bool = False
    channels: tuple[int, ...] = (16, 32, 64, 64)
    width: int = 128
    dim: int = 128
    kernel: int = 5
    temporal_layers: int = 2
    timbre_dim: int = 0

    def __post_init__(self):
        self.channels = tuple(self.channels)
        _checks.positive_number(self.rate, "rate")
        for key in ("size", "width", "dim", "kernel", "temporal_layers"):
            _checks.positive_int(getattr(self, key), key)
        _checks.non_negative_int(self.timbre_dim, "timbre_dim")
        if not isinstance(self.grey, bool):
            raise ValueError(f"grey must be true or false, got {self.grey!r}")
        if not self.channels or not all(_checks.is_int(c) and c >= 1 for c in self.channels):
            raise ValueError(f"channels must be a non-empty list of positive integers, got {list(self.channels)}")
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd (padding keeps the length), got {self.kernel}")
        if self.size % 2 ** len(self.channels):
            raise ValueError(f"size must be a multiple of 2^{len(self.channels)} = {2 ** len(self.channels)} "
                             f"(one halving per channel entry), got {self.size}")

    @classmethod
    def from_dict(cls, data: dict) -> SmallSyncConfig:
        """From config.json's fields (bookkeeping keys starting with '_' or 'format' are skipped);
        ValueError naming an unknown key."""
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known and not key.startswith("_") and key != "format_version":
                raise ValueError(f"unknown SmallSyncEncoder config key {key!r}; known: {', '.join(sorted(known))}")
        return cls(**{k: v for k, v in data.items() if k in known})


def _frame_cnn(in_channels: int, channels: tuple[int, ...], size: int, width: int,
               pooled: bool = False) -> nn.Sequential:
    """len(channels) x (Conv 4x4 stride 2 pad 1, GroupNorm, SiLU), then flatten (or, `pooled`, the max over
    positions) and Linear -> width."""
    layers, c_in = [], in_channels
    for c in channels:
        layers += [nn.Conv2d(c_in, c, 4, stride=2, padding=1), nn.GroupNorm(min(8, c), c), nn.SiLU()]
        c_in = c
    if pooled:
        return nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(c_in, width))
    side = size // 2 ** len(channels)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in * side * side, width))


class SmallSyncEncoder(nn.Module):
    """The small trainable sync encoder (module docstring); implements `SyncEncoder`."""

    def __init__(self, config: SmallSyncConfig | None = None):
        super().__init__()
        self.config = config = config or SmallSyncConfig()
        c_in = 1 if config.grey else 3
        self.frame_cnn = _frame_cnn(c_in, config.channels, config.size, config.width)
        self.diff_cnn = _frame_cnn(c_in, config.channels, config.size, config.width)
        temporal, c = [], 2 * config.width
        for i in range(config.temporal_layers):
            if i:
                temporal.append(nn.SiLU())
            temporal.append(nn.Conv1d(c, config.dim, config.kernel, padding=config.kernel // 2))
            c = config.dim
        self.temporal = nn.Sequential(*temporal)
        if config.timbre_dim:
            self.timbre_cnn = _frame_cnn(c_in, config.channels, config.size, config.width, pooled=True)
            self.timbre_temporal = nn.Conv1d(config.width, config.timbre_dim, config.kernel,
                                             padding=config.kernel // 2)

    @property
    def dim(self) -> int:
        """Width of a feature: dim, plus timbre_dim timbre channels last."""
        return self.config.dim + self.config.timbre_dim

    @property
    def rate(self) -> float:
        return float(self.config.rate)

    def receptive_field(self) -> tuple[int, int]:
        """(frames before, frames after) feature k depends on, on its own time grid (module docstring)."""
        half = self.config.temporal_layers * (self.config.kernel // 2)
        return half + 1, half

    # -- the network --------------------------------------------------------------------------
    def prepare(self, frames, times, duration: float | None = None, max_seconds: float | None = None):
        """Frames (F, H, W, 3) uint8 or float in [0, 1] (NumPy or torch) at `times` (F,) s ->
        (x (N, C, S, S) float32 in [-1, 1] on the weights' device, times (N,) = k / rate)."""
        grid, grid_times = resample_by_time(frames, times, self.rate, duration=duration, max_seconds=max_seconds)
        x = torch.as_tensor(np.asarray(grid)) if isinstance(grid, np.ndarray) else grid
        scale = 255.0 if x.dtype == torch.uint8 else 1.0
        device = next(self.parameters()).device
        out = []
        for i in range(0, x.shape[0], RESIZE_CHUNK):
            chunk = x[i:i + RESIZE_CHUNK].to(device).permute(0, 3, 1, 2).float() / scale  # (n, 3, H, W)
            if self.config.grey:
                chunk = torch.einsum("nchw,c->nhw", chunk, chunk.new_tensor(LUMA))[:, None]
            size = (self.config.size, self.config.size)
            if tuple(chunk.shape[-2:]) != size:
                chunk = F.interpolate(chunk, size=size, mode="bilinear", antialias=True, align_corners=False)
            out.append(chunk * 2 - 1)
        return torch.cat(out), grid_times

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, C, S, S) prepared frames -> features (B, N, dim)."""
        if x.ndim != 5:
            raise ValueError(f"x must be (B, N, C, S, S) prepared frames, got shape {tuple(x.shape)}")
        b, n = x.shape[:2]
        dtype = next(self.parameters()).dtype
        x = x.to(dtype)
        d = x - torch.cat([x[:, :1], x[:, :-1]], dim=1)  # d_0 = 0
        a = self.frame_cnn(x.flatten(0, 1)).view(b, n, -1)  # (B, N, width)
        m = self.diff_cnn(d.flatten(0, 1)).view(b, n, -1)
        h = torch.cat([a, m], dim=-1).transpose(1, 2)  # (B, 2 width, N)
        out = self.temporal(h).transpose(1, 2)  # (B, N, dim)
        if not self.config.timbre_dim:
            return out
        return torch.cat([out, self.timbre(x)], dim=-1)  # (B, N, dim + timbre_dim)

    def timbre(self, x: torch.Tensor) -> torch.Tensor:
        """The timbre branch alone: x (B, N, C, S, S) prepared frames -> (B, N, timbre_dim), the last channels
        of `forward`'s features (colour-jittered while training)."""
        if not self.config.timbre_dim:
            raise ValueError("this sync encoder has no timbre branch (timbre_dim 0)")
        b, n = x.shape[:2]
        x = x.to(next(self.parameters()).dtype)
        xj = colour_jitter(x) if self.training else x
        tb = self.timbre_cnn(xj.flatten(0, 1)).view(b, n, -1).transpose(1, 2)  # (B, width, N)
        return self.timbre_temporal(tb).transpose(1, 2)

    def encode(self, frames, times, duration: float | None = None,
               max_seconds: float | None = None) -> tuple[torch.Tensor, np.ndarray]:
        """Frames (F, H, W, 3) at `times` (F,) s -> (features (N, dim), feature_times (N,) = k / rate);
        differentiable in the weights."""
        x, grid_times = self.prepare(frames, times, duration=duration, max_seconds=max_seconds)
        return self(x[None])[0], grid_times

    # -- folders ------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: SmallSyncConfig | dict | None = None, seed: int | None = None) -> SmallSyncEncoder:
        """A new encoder (random weights, seeded by `seed` when given) from a config or its dict."""
        if isinstance(config, dict):
            config = SmallSyncConfig.from_dict(config)
        if seed is None:
            return cls(config)
        with torch.random.fork_rng(devices=[]):  # seeded without moving the caller's generator
            torch.manual_seed(_checks.non_negative_int(seed, "seed"))
            return cls(config)

    def with_timbre_branch(self, timbre_dim: int, seed: int | None = None) -> SmallSyncEncoder:
        """A copy of this encoder (no timbre branch) with a new, randomly initialised one of `timbre_dim`
        channels: its first `dim` feature channels are this encoder's features (a fine-tuning start)."""
        if self.config.timbre_dim:
            raise ValueError(f"this sync encoder already has a timbre branch ({self.config.timbre_dim} channels)")
        new = SmallSyncEncoder.from_config(replace(self.config, timbre_dim=_checks.positive_int(timbre_dim,
                                                                                                "timbre_dim")),
                                           seed=seed)
        missing, unexpected = new.load_state_dict(self.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("timbre_") for k in missing), (missing, unexpected)
        return new.to(next(self.parameters()).device)

    def save_pretrained(self, folder) -> None:
        """config.json + model.safetensors (fp32 unless the weights are cast), whole or not at all."""
        meta = {"_class_name": CLASS_NAME, "format_version": FORMAT_VERSION}
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        with files.atomic_dir(folder) as tmp:
            files.write_json(tmp / CONFIG_NAME, {**meta, **asdict(self.config)})
            files.save_safetensors(state, tmp / WEIGHTS_NAME)

    @classmethod
    def from_pretrained(cls, folder, device="cpu", dtype: torch.dtype | None = None) -> SmallSyncEncoder:
        """From a folder written by `save_pretrained`; one-line errors for a missing folder, a config of
        another class or version, and weights that do not fit the config."""
        folder = Path(folder)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder} has no {name}; expected a SmallSyncEncoder folder "
                                        f"({CONFIG_NAME} + {WEIGHTS_NAME})")
        try:
            data = json.loads((folder / CONFIG_NAME).read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{folder / CONFIG_NAME} is not a readable JSON config: {short_reason(e)}") from None
        if not isinstance(data, dict) or data.get("_class_name") != CLASS_NAME:
            raise ValueError(f"{folder} is not a {CLASS_NAME} folder (config.json _class_name "
                             f"{data.get('_class_name') if isinstance(data, dict) else None!r})")
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{folder}: format_version {data.get('format_version')!r}, this version reads "
                             f"{FORMAT_VERSION}")
        model = cls(SmallSyncConfig.from_dict(data))
        try:
            model.load_state_dict(files.load_safetensors(folder / WEIGHTS_NAME))
        except RuntimeError as e:
            raise ValueError(f"{folder / WEIGHTS_NAME} does not fit its config.json: {short_reason(e)}") from None
        return model.to(device=device, dtype=dtype or torch.float32)


def colour_jitter(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """x (B, N, C, S, S) in [-1, 1] -> each item's colour planes permuted (C = 3) and each plane's sign flipped
    with probability 1/2, one draw per item for all its frames (module docstring, t_k)."""
    b, c = x.shape[0], x.shape[2]
    order = torch.stack([torch.randperm(c, generator=generator) for _ in range(b)]).to(x.device)  # (B, C)
    sign = torch.where(torch.rand(b, c, generator=generator) < 0.5, -1.0, 1.0).to(x.device, x.dtype)
    planes = torch.gather(x, 2, order[:, None, :, None, None].expand_as(x))
    return planes * sign[:, None, :, None, None]


def segments_to_timeline(tokens: torch.Tensor, fps: float, step: int, frames_per_token: int,
                         start: float = 0.0) -> tuple[torch.Tensor, np.ndarray]:
    """Overlapping segment tokens (S, T, D) -> (features (G, D), times (G,) s) on one timeline.

    Segment s starts at frame s * step; its token j describes frames s * step + j * frames_per_token
    onward, i.e. timeline slot g = s * step / frames_per_token + j, G = (S - 1) * step / frames_per_token
    + T. Tokens sharing a slot are averaged (differentiably); slot g is at start + g * frames_per_token / fps.
    Synchformer as MMAudio uses it: fps 25, step 8, frames_per_token 2, T = 8 (module docstring)."""
    if tokens.ndim != 3 or tokens.shape[0] == 0 or tokens.shape[1] == 0:
        raise ValueError(f"tokens must be (segments, tokens per segment, D), got shape {tuple(tokens.shape)}")
    fps = _checks.positive_number(fps, "fps")
    step, fpt = _checks.positive_int(step, "step"), _checks.positive_int(frames_per_token, "frames_per_token")
    if step % fpt:
        raise ValueError(f"step ({step} frames) must be a multiple of frames_per_token ({fpt})")
    s, t, d = tokens.shape
    slots = (torch.arange(s)[:, None] * (step // fpt) + torch.arange(t)[None]).flatten().to(tokens.device)  # (S T,)
    g = (s - 1) * (step // fpt) + t
    total = tokens.new_zeros(g, d).index_add(0, slots, tokens.flatten(0, 1))
    count = torch.zeros(g, device=tokens.device, dtype=tokens.dtype).index_add(0, slots, tokens.new_ones(s * t))
    if bool((count == 0).any()):
        raise ValueError(f"segments every {step} frames leave gaps between {t} tokens of {fpt} frames each")
    return total / count[:, None], start + np.arange(g, dtype=np.float64) * fpt / fps
