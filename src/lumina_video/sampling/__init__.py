"""Sampling: time-aware values, motion-aware guidance, multi-scale patch schedules, Euler solver,
the user-level knobs applied over a config, a schedule-aware step cache and forward counts."""
from .config import SamplingConfig, sampling_to_json
from .forwards import ForwardCounts
from .guidance import guide, renormalize
from .knobs import SamplingKnobs
from .presets import PRESETS
from .schedule import TimeAware, parse_patch, patch_name
from .solver import Step, sample, step_plan
from .step_cache import AUTO_THRESHOLD, StepCache, parse_step_cache

__all__ = ["SamplingConfig", "SamplingKnobs", "PRESETS", "TimeAware", "Step", "sample", "step_plan", "guide",
           "renormalize", "parse_patch", "patch_name", "sampling_to_json", "ForwardCounts", "StepCache",
           "AUTO_THRESHOLD", "parse_step_cache"]
