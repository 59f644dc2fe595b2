"""CLIP-V frame features for video-to-audio: a frozen `transformers` CLIP vision tower, one vector per frame.

    pixels   = image_processor(frames)            resize the short side to S, centre-crop S x S, x / 255,
                                                  (x - mean) / std per channel          # (F, 3, S, S)
    out      = vision_model(pixels)
    pooled   = post_layernorm(out[CLS])           CLIPVisionModel                       # (F, hidden)
             | visual_projection(pooled)          CLIPVisionModelWithProjection, and a full CLIPModel
                                                  folder (its image embeds)             # (F, projection_dim)
    tokens   = out.last_hidden_state              optional: CLS + (S / patch)^2 patches # (F, 1 + P, hidden)

The folder is read with `from_pretrained(folder, local_files_only=True)`; nothing is downloaded. Its
`preprocessor_config.json` is used when present (`AutoImageProcessor`), else a `CLIPImageProcessor` at the
model's `image_size` with its default (OpenAI CLIP) mean and std, bicubic resizing. `normalize=True`
divides each vector by its L2 norm (CLIP compares embeddings by cosine; MMAudio feeds its DiT the
normalised image embeddings).

Frames of any size and any rate come in; `encode_video` first puts them on the grid k / rate by their
timestamps (`clips.resample_by_time`). The default rate, 8 frames per second, is MMAudio's CLIP rate
(its sequence config: clip_frame_rate = 8, 64 frames for 8 s); Lumina-V2A's appendix does not say more
that we could check, so it is an argument. (MMAudio squashes frames to 384 x 384 for its open_clip
DFN5B ViT-H/14 instead of cropping; here the model folder's own processor decides.) The encoder is
frozen (eval mode, no gradients): its features are inputs of the V2A DiT, computed once per clip.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import _checks, files
from .._checks import short_reason
from .clips import resample_by_time

CLIP_MODEL_TYPES = ("clip_vision_model", "clip")
DEFAULT_RATE = 8.0
PROCESSOR_FILE = "preprocessor_config.json"


def tiny_clip_vision_config(projection_dim: int = 16):
    """A tiny `CLIPVisionConfig` for tests: 32 x 32 images, 8 x 8 patches (16 + 1 tokens), hidden 32,
    2 layers, 2 heads, projection 16 (used by CLIPVisionModelWithProjection only)."""
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=2, projection_dim=projection_dim)


def _processor_class():
    """`CLIPImageProcessor`, or its PIL twin when transformers >= 5 runs without torchvision (the class
    it would fall back to anyway, named directly so no warning is printed)."""
    import transformers

    if importlib.util.find_spec("torchvision") is None and hasattr(transformers, "CLIPImageProcessorPil"):
        return transformers.CLIPImageProcessorPil
    return transformers.CLIPImageProcessor


def default_processor(image_size: int):
    """A CLIP image processor for `image_size` x `image_size` inputs with the OpenAI CLIP mean and std."""
    size = _checks.positive_int(image_size, "image_size")
    return _processor_class()(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def _read_config(folder: Path) -> dict:
    if not folder.is_dir():
        raise FileNotFoundError(f"CLIP vision folder {folder} does not exist")
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no config.json; expected a transformers CLIP (vision) model folder")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable JSON config: {short_reason(e)}") from None
    kind = config.get("model_type") if isinstance(config, dict) else None
    if kind not in CLIP_MODEL_TYPES:
        raise ValueError(f"{folder} is not a CLIP vision model (config.json model_type {kind!r}); expected "
                         f"one of {', '.join(CLIP_MODEL_TYPES)}")
    return config


def _vision_config(folder: Path, config: dict, with_projection: bool | None):
    """(CLIPVisionConfig, with_projection). A full CLIPModel folder gives its vision_config with the
    top-level projection_dim (the vision tower's own copy of that field is not the one used)."""
    from transformers import CLIPConfig, CLIPVisionConfig

    if config["model_type"] == "clip":
        full = CLIPConfig.from_pretrained(str(folder), local_files_only=True)
        vision = full.vision_config
        vision.projection_dim = full.projection_dim
        return vision, True if with_projection is None else with_projection
    vision = CLIPVisionConfig.from_pretrained(str(folder), local_files_only=True)
    if with_projection is None:
        with_projection = "CLIPVisionModelWithProjection" in (config.get("architectures") or [])
    return vision, with_projection


def _load_model(folder: Path, vision, with_projection: bool):
    """The vision model with every weight from the folder: missing weights (which transformers would
    initialise at random) are an error."""
    from transformers import CLIPVisionModel, CLIPVisionModelWithProjection

    cls = CLIPVisionModelWithProjection if with_projection else CLIPVisionModel
    try:
        model, info = cls.from_pretrained(str(folder), config=vision, local_files_only=True, output_loading_info=True)
    except (OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"cannot load a {cls.__name__} from {folder}: {short_reason(e)}") from None
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise ValueError(f"{folder} lacks {len(missing)} weights of a {cls.__name__} (e.g. {missing[0]}); "
                         f"pass with_projection=False for a tower without a projection")
    return model


class CLIPFrameEncoder(nn.Module):
    """Frames (F, H, W, 3) uint8 -> CLIP vectors (F, dim), frozen (module docstring)."""

    def __init__(self, model: nn.Module, processor=None):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.processor = processor if processor is not None else default_processor(model.config.image_size)

    # -- properties ---------------------------------------------------------------------------
    @property
    def with_projection(self) -> bool:
        return hasattr(self.model, "visual_projection")

    @property
    def dim(self) -> int:
        """Width of the pooled vectors: projection_dim with a projection, else hidden_size."""
        cfg = self.model.config
        return int(cfg.projection_dim if self.with_projection else cfg.hidden_size)

    @property
    def token_dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def num_tokens(self) -> int:
        """1 (CLS) + (image_size / patch_size)^2."""
        cfg = self.model.config
        return 1 + (cfg.image_size // cfg.patch_size) ** 2

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # -- construction and folders ---------------------------------------------------------------
    @classmethod
    def from_config(cls, config, with_projection: bool = True, seed: int | None = None) -> CLIPFrameEncoder:
        """Random weights of `config` (a CLIPVisionConfig, e.g. `tiny_clip_vision_config()`), for tests."""
        from transformers import CLIPVisionModel, CLIPVisionModelWithProjection

        model_cls = CLIPVisionModelWithProjection if with_projection else CLIPVisionModel
        if seed is None:
            return cls(model_cls(config))
        with torch.random.fork_rng(devices=[]):  # seeded without moving the caller's generator
            torch.manual_seed(_checks.non_negative_int(seed, "seed"))
            return cls(model_cls(config))

    @classmethod
    def from_pretrained(cls, folder, device="cpu", dtype: torch.dtype | None = None,
                        with_projection: bool | None = None) -> CLIPFrameEncoder:
        """From a local transformers folder: CLIPVisionModel, CLIPVisionModelWithProjection (by the
        config's `architectures`) or a full CLIPModel (its vision tower and projection). `with_projection`
        overrides the choice. ValueError / FileNotFoundError in one line for anything else."""
        folder = Path(folder)
        config = _read_config(folder)
        vision, with_projection = _vision_config(folder, config, with_projection)
        model = _load_model(folder, vision, with_projection)
        processor = None
        if (folder / PROCESSOR_FILE).is_file():
            from transformers import AutoImageProcessor

            try:
                processor = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
            except (OSError, ValueError) as e:
                raise ValueError(f"{folder}/{PROCESSOR_FILE} is not a usable image processor: {short_reason(e)}") \
                    from None
        model = model.to(device=device, dtype=dtype or torch.float32)
        return cls(model, processor)

    def save_pretrained(self, folder) -> None:
        """The transformers folder (config.json, model.safetensors, preprocessor_config.json), whole or
        not at all."""
        with files.atomic_dir(folder) as tmp:
            self.model.save_pretrained(tmp)
            self.processor.save_pretrained(tmp)

    # -- encoding -----------------------------------------------------------------------------
    def pixel_values(self, frames) -> torch.Tensor:
        """(F, H, W, 3) uint8 (NumPy or torch) -> (F, 3, S, S) float32 model inputs, by the processor."""
        if isinstance(frames, torch.Tensor):
            frames = frames.detach().cpu().numpy()
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be (F, H, W, 3) uint8 RGB with F >= 1, got {frames.dtype} "
                             f"{tuple(frames.shape)}")
        out = self.processor(images=list(frames), return_tensors="pt")
        return out["pixel_values"]

    def forward(self, pixel_values: torch.Tensor, normalize: bool = False):
        """(F, 3, S, S) -> (pooled (F, dim), tokens (F, 1 + P, hidden)), in float32."""
        out = self.model(pixel_values=pixel_values.to(self.device, self.dtype))
        pooled = out.image_embeds if self.with_projection else out.pooler_output
        pooled = pooled.float()
        if normalize:
            pooled = pooled / pooled.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return pooled, out.last_hidden_state.float()

    @torch.no_grad()
    def encode(self, frames, tokens: bool = False, normalize: bool = False, batch_size: int = 32):
        """(F, H, W, 3) uint8 -> (F, dim) float32 on the model's device, and (F, 1 + P, hidden) patch
        tokens when `tokens`. Frames go through in chunks of `batch_size`; a chunk equals single frames."""
        pixels = self.pixel_values(frames)  # (F, 3, S, S)
        step = _checks.positive_int(batch_size, "batch_size")
        parts = [self(pixels[i:i + step], normalize) for i in range(0, pixels.shape[0], step)]
        pooled = torch.cat([p for p, _ in parts])
        return (pooled, torch.cat([t for _, t in parts])) if tokens else pooled

    def encode_video(self, frames, times, rate: float = DEFAULT_RATE, duration: float | None = None,
                     max_seconds: float | None = None, normalize: bool = False, batch_size: int = 32):
        """Frames (F, H, W, 3) uint8 at `times` (F,) s -> (features (K, dim), feature_times (K,) = k / rate):
        the frames on the time grid (nearest previous, `clips.resample_by_time`), then `encode`."""
        grid, grid_times = resample_by_time(frames, times, rate, duration=duration, max_seconds=max_seconds)
        return self.encode(grid, normalize=normalize, batch_size=batch_size), grid_times
