"""Sampling: time-aware values, motion-aware guidance, multi-scale patch schedules, Euler solver."""
from .config import SamplingConfig
from .guidance import guide, renormalize
from .presets import PRESETS
from .schedule import TimeAware, parse_patch, patch_name
from .solver import sample, step_plan

__all__ = ["SamplingConfig", "PRESETS", "TimeAware", "sample", "step_plan", "guide", "renormalize",
           "parse_patch", "patch_name"]
