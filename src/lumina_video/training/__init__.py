"""Training: multi-task, multi-scale flow matching with progressive stages (REFERENCE.md §5)."""
from .config import ConfigError, TrainConfig, load_config
from .trainer import NonFiniteLossError, TrainResult, train

__all__ = ["ConfigError", "TrainConfig", "load_config", "NonFiniteLossError", "TrainResult", "train"]
