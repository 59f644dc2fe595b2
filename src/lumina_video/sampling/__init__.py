"""Sampling: time-aware values, motion-aware guidance, multi-scale patch schedules, Euler solver."""
from .config import SamplingConfig, sampling_to_json
from .guidance import guide, renormalize
from .presets import PRESETS
from .schedule import TimeAware, parse_patch, patch_name
from .solver import Step, sample, step_plan

__all__ = ["SamplingConfig", "PRESETS", "TimeAware", "Step", "sample", "step_plan", "guide", "renormalize",
           "parse_patch", "patch_name", "sampling_to_json"]
