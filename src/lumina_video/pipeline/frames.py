"""The pipeline's small helpers: frames from pixels, prompt lists, sampling specs, timers, aliases."""
from __future__ import annotations

import contextlib
import time

import numpy as np
import torch

from ..sampling import SamplingConfig


def to_uint8_frames(pixels: torch.Tensor) -> np.ndarray:
    """(B, 3, F, H, W) in [-1, 1] -> (B, F, H, W, 3) uint8: round((x + 1) * 127.5)."""
    x = ((pixels.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 4, 1).contiguous().numpy()


def sampling_from(spec) -> SamplingConfig:
    if isinstance(spec, SamplingConfig):
        return spec
    if isinstance(spec, str):
        return SamplingConfig.preset(spec)
    if isinstance(spec, dict):
        return SamplingConfig.from_official(spec)
    raise ValueError(f"a sampling preset is a released preset name, a SamplingConfig or an official dict, got {spec!r}")


def frames_as(pixels: torch.Tensor, output_type: str):
    """Decoded pixels as `output_type` frames: "np" uint8 arrays, or "pil" lists of images."""
    frames = to_uint8_frames(pixels)
    if output_type == "pil":
        from PIL import Image

        return [[Image.fromarray(f) for f in video] for video in frames]
    return frames


def prompt_lists(prompt, negative_prompt) -> tuple[list[str], list[str]]:
    """(prompts, one negative prompt per prompt); ValueError unless the prompts are non-empty strings."""
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, (list, tuple)) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompt must be a string or a non-empty list of strings, got {prompt!r}")
    empty = [i for i, p in enumerate(prompts) if not p.strip()]
    if empty:
        raise ValueError(f"prompt {empty[0]} is empty; describe the video to generate "
                         f"(an empty text is only accepted as the negative prompt)")
    negatives = [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else negative_prompt
    if not isinstance(negatives, (list, tuple)) or len(negatives) != len(prompts) or \
            not all(isinstance(p, str) for p in negatives):
        raise ValueError(f"negative_prompt must be a string or a list of {len(prompts)} strings, "
                         f"got {negative_prompt!r}")
    return list(prompts), list(negatives)


def one_of(name: str, value, alias: str, alias_value):
    """`value` or `alias_value` (the same setting under diffusers' name); ValueError if both disagree."""
    if value is not None and alias_value is not None and value != alias_value:
        raise ValueError(f"{name}={value!r} and {alias}={alias_value!r} disagree; pass one of them")
    return alias_value if value is None else value


@contextlib.contextmanager
def timed(timings: dict, key: str, device):
    """Store the seconds the block took in timings[key] (after the device's queued work is done)."""
    t0 = _clock(device)
    yield
    timings[key] = _clock(device) - t0


def _clock(device) -> float:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()
