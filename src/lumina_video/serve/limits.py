"""What the page offers and the checks of one request (no gradio needed).

    size step   = lcm(VAE spatial factor x largest spatial patch of the model, VAE factor x each patch p
                  of the single-scale schedule)        (32 for the demo model: 8 x 4)
    max size    = the server's cap, within the RoPE table: size / (VAE factor x p) <= table length
    frame counts = the ones the VAE decodes T latent frames to (1, 8m, 8m + 1), whose T every temporal
                  patch of the schedule divides (or T = 1), within the RoPE table's frames
    sound frames = the frame counts F >= 2 whose clip of F / fps s the V2A pipeline's `check_inputs` accepts
                  (one audio latent frame .. its `max_seconds`, its RoPE table); none without a V2A model

The limits are computed for single-scale sampling (the finest patch, the most permissive schedule);
the pipeline's own `check_inputs` then checks each request against its actual schedule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .._checks import is_int, is_number
from ..info import check_memory, prompt_warnings, size_warnings

MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class Limits:
    """What the page offers: sizes are multiples of `size_step` up to the maxima, frame counts
    are those the VAE can produce up to the server's cap; all accepted by the pipeline's checks."""

    size_step: int
    max_height: int
    max_width: int
    frame_choices: tuple[int, ...]
    max_steps: int
    sound_frames: tuple[int, ...] = ()  # the frame counts "add sound" accepts (empty: no V2A model)
    sound_seconds: float = 0.0  # the V2A model's max_seconds


@dataclass(frozen=True)
class Request:
    """One generation request as the page sends it (seed None = draw a random one)."""

    prompt: str
    negative_prompt: str = ""
    motion_score: float | None = None
    negative_motion_score: float | None = None
    multiscale: bool | None = None
    steps: int | None = None
    guidance_scale: float | None = None
    seed: int | None = None
    height: int | None = None
    width: int | None = None
    num_frames: int | None = None
    step_cache: str | float | None = None  # "off", "auto" or a threshold (sampling/step_cache.py)
    add_sound: bool = False  # a soundtrack from the server's V2A pipeline (runner.py)

    def knobs(self):
        """The SamplingKnobs the page sets (the others keep the model's defaults)."""
        from ..sampling import SamplingKnobs

        return SamplingKnobs.from_object(self)


def frame_counts(pipe, config, up_to: int) -> tuple[int, ...]:
    """The frame counts 1..up_to that `pipe` accepts with the patch schedule of `config` (module docstring)."""
    frames_limit = pipe.transformer.rope.axes_lens[0]
    counts = []
    for t in range(1, (up_to + 3) // 4 + 1):  # T latent frames decode to at least 4T - 3 frames
        tokens_ok = all((t == 1 or t % pt == 0) and (pt if t == 1 else t) // pt <= frames_limit
                        for pt, _ in config.patch_shapes())
        if tokens_ok and pipe.vae.num_frames(t) <= up_to:
            counts.append(pipe.vae.num_frames(t))
    return tuple(counts)


def _max_size(pipe, config, step: int, cap: int, axis: int) -> int:
    """The largest multiple of `step` up to `cap` whose tokens fit the RoPE table along `axis` (0 if none)."""
    s = pipe.vae.spatial_factor
    table = pipe.transformer.rope.axes_lens[axis]
    top = min([cap] + [table * s * p for _, p in config.patch_shapes()])
    return top // step * step


def _positive_caps(**caps) -> None:
    for name, value in caps.items():
        if not is_int(value) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def sound_frames(v2a, frame_choices, fps: float) -> tuple[int, ...]:
    """The counts of `frame_choices` (>= 2: one frame has no duration) whose clip of F / fps seconds the
    V2A pipeline accepts with its default steps and guidance (its own `check_inputs`, nothing computed)."""
    steps, scale = v2a.defaults["num_inference_steps"], v2a.defaults["guidance_scale"]
    accepted = []
    for frames in (f for f in frame_choices if f >= 2):
        try:
            v2a.check_inputs([None], [None], [frames / fps], steps, scale)
        except ValueError:
            continue
        accepted.append(frames)
    return tuple(accepted)


def model_limits(pipe, max_size: int | None = None, max_frames: int | None = None,
                 max_steps: int | None = None, v2a=None) -> Limits:
    """The page's limits for `pipe` (module docstring), and with a V2A pipeline `v2a` the frame counts
    it can add sound to. The server's caps default to the model's default size and frame count (what
    it is made for) and 100 steps."""
    d = pipe.defaults
    max_size = max(int(d["height"]), int(d["width"])) if max_size is None else max_size
    max_frames = int(d["num_frames"]) if max_frames is None else max_frames
    max_steps = max(100, pipe.default_sampling.steps) if max_steps is None else max_steps
    _positive_caps(max_size=max_size, max_frames=max_frames, max_steps=max_steps)
    config = pipe.resolve_sampling(multiscale=False)
    s = pipe.vae.spatial_factor
    step = math.lcm(pipe.size_multiple, *(s * p for _, p in config.patch_shapes()))
    pipe.check_inputs("limits", "", step, step, 1, config)  # the schedule's patches exist in the model
    max_height, max_width = (_max_size(pipe, config, step, max_size, axis) for axis in (1, 2))
    frames = frame_counts(pipe, config, max_frames)
    if not max_height or not max_width or not frames:
        raise ValueError(f"no size up to {max_size} px or frame count up to {max_frames} is accepted by the model "
                         f"(sizes are multiples of {step}); raise the limits")
    if v2a is None:
        return Limits(step, max_height, max_width, frames, max_steps)
    sound = sound_frames(v2a, frames, float(d["fps"]))
    return Limits(step, max_height, max_width, frames, max_steps, sound, float(v2a.defaults["max_seconds"]))


def _whole(value, name: str) -> int:
    """A whole number from a form value (the page sends numbers as floats), else ValueError."""
    if not is_number(value) or value != value or int(value) != value:
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(value)


def _in_range(value, name: str, lo: int, hi: int, unit: str = "", why: str = "") -> int:
    number = _whole(value, name)
    if not lo <= number <= hi:
        raise ValueError(f"{name} {number}{unit} is out of range: accepted {lo} to {hi}{unit}{why}")
    return number


def check_request(pipe, limits: Limits, req: Request):
    """Raise ValueError with a message for the page when `req` cannot run (the page's limits, the
    pipeline's `check_inputs`, then info.check_memory); return the SamplingConfig and the request with
    every default filled in."""
    if not isinstance(req.prompt, str) or not req.prompt.strip():
        raise ValueError("The prompt is empty: describe the video to generate (for example "
                         "\"a red circle moving to the right\").")
    negative = req.negative_prompt or ""
    height, width, frames = pipe.resolve_size(req.height, req.width, req.num_frames)
    step = limits.size_step
    size_why = f" in steps of {step} (the model's size multiple and this server's --max-size)"
    height = _in_range(height, "height", step, limits.max_height, " px", size_why)
    width = _in_range(width, "width", step, limits.max_width, " px", size_why)
    frames = _whole(frames, "number of frames")
    if frames > limits.frame_choices[-1]:
        raise ValueError(f"Too many frames: {frames} requested, this server allows at most "
                         f"{limits.frame_choices[-1]} (--max-frames).")
    steps = None if req.steps is None else _in_range(req.steps, "steps", 1, limits.max_steps)
    seed = None if req.seed is None else _in_range(req.seed, "seed", 0, MAX_SEED)
    config = pipe.resolve_sampling(None, req.knobs(), steps=steps)
    pipe.check_inputs(req.prompt, negative, height, width, frames, config)
    pipe.resolve_step_cache(req.step_cache)  # a bad step cache value: its one-line message
    check_memory(pipe, pipe.device, 1, height, width, frames, config.is_guided())
    if req.add_sound:
        check_sound(limits, frames, float(pipe.defaults["fps"]))
    filled = Request(req.prompt, negative, req.motion_score, req.negative_motion_score, config.is_multiscale(),
                     config.steps, req.guidance_scale, seed, height, width, frames, req.step_cache,
                     bool(req.add_sound))
    return config, filled


def check_sound(limits: Limits, frames: int, fps: float) -> None:
    """ValueError with a message for the page unless "add sound" can take a video of `frames` frames."""
    accepted = limits.sound_frames
    if not accepted:
        raise ValueError("This server has no V2A model, so it cannot add sound; untick 'add sound'.")
    if frames in accepted:
        return
    if frames < accepted[0]:
        raise ValueError(f"Too short for sound: {frames} frame(s) at {fps:g} fps; a soundtrack needs at least "
                         f"{accepted[0]} frames (or untick 'add sound').")
    raise ValueError(f"Too long for sound: {frames} frames at {fps:g} fps last {frames / fps:g} s, over the V2A "
                     f"model's limit of {limits.sound_seconds:g} s; ask for at most {accepted[-1]} frames "
                     f"(or untick 'add sound').")


def request_warnings(pipe, req: Request) -> list[str]:
    """What the page warns of for a checked request (`check_request`'s filled one): words outside the
    model's vocabulary, and sizes or frame counts far above the trained ones (info.py)."""
    return prompt_warnings(req.prompt, pipe.defaults) + size_warnings(pipe.defaults, req.height, req.width,
                                                                     req.num_frames)
