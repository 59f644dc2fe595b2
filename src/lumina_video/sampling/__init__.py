"""Sampling: time-aware values, motion-aware guidance, multi-scale patch schedules, Euler solver,
and the user-level knobs applied over a config."""
from .config import SamplingConfig, sampling_to_json
from .guidance import guide, renormalize
from .knobs import SamplingKnobs
from .presets import PRESETS
from .schedule import TimeAware, parse_patch, patch_name
from .solver import Step, sample, step_plan

__all__ = ["SamplingConfig", "SamplingKnobs", "PRESETS", "TimeAware", "Step", "sample", "step_plan", "guide",
           "renormalize", "parse_patch", "patch_name", "sampling_to_json"]
