"""Training: the one loop (loop.py) with its model families, the DiT (dit.py, trainer.py) and the VAE
(vae_trainer.py); configs, data order, checkpoints, distribution."""
from .config import TrainConfig, load_config
from .loop import NonFiniteLossError, TrainState
from .trainer import TrainResult, train

__all__ = ["TrainConfig", "load_config", "train", "TrainResult", "NonFiniteLossError", "TrainState"]
