"""train-v2a's settings (the YAML keys of configs/v2a_*.yaml) and their read-only checks; the training itself is
v2a_trainer.py (its module docstring says what each key does)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..audio.mel import MelConfig
from ..configs import ConfigError, at_least_one, load_yaml, one_of
from ..model.v2a_presets import V2A_PRESETS
from .config import PRECISIONS
from .v2a_data import V2ADataConfig, check_v2a_data

COMPONENTS_NAME = "v2a_components.json"
DROPS = ("visual", "text", "sync")
SYNC_TARGETS = {"envelope": 2, "envelope+mel": 0}  # channels of the head's target (0: all of them)
MEL_BANDS = MelConfig().n_mels  # log-mel bands of the envelope target (v2a_data.audio_envelope)
# the model's sync heads (model/v2a.py, 1b and 1c): a start without them may be loaded (v2a_trainer)
ENVELOPE_KEYS = ("sync_envelope.", "envelope_embedder.", "sync_pitch.", "sync_timbre.")


@dataclass
class V2AEncodersConfig:
    audio_vae: str = ""               # an AudioVAE folder (`train-audio-vae`'s RUN/final)
    clip: str = "tiny-random"         # a CLIP folder, or "tiny-random" (random tiny CLIP, tests)
    text: str = ""                    # a text encoder folder; "" = the bundled MiniLM
    sync: str = ""                    # a SmallSyncEncoder folder to start from; "" = new (arch.sync_*)
    train_sync: bool = True


@dataclass
class V2AArchConfig:
    """What the trained weights' shapes depend on (resuming with other values is refused)."""
    preset: str = "V2A-Tiny"
    patch_time: int = 1
    patch_freq: int = 2
    sync_size: int = 64
    sync_channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64])
    sync_width: int = 128
    sync_dim: int = 128
    sync_envelope_bands: int = 0      # > 0: the model's own sync envelope head (module docstring); 64 mel bands
    sync_harmonics: int = 0           # K > 0: the harmonic sync head over harmonics 1..K (needs the bands)
    sync_timbre_dim: int = 0          # > 0: the sync encoder's colour-blind timbre branch, read by that head


@dataclass
class V2ADistributedConfig:
    fsdp: str = "auto"                # "auto": shard when there are several processes | "always" | "never"
    precision: str = "auto"           # "auto": bf16 on CUDA, fp32 on a CPU | "bf16" (autocast) | "fp32"


@dataclass
class V2ATrainConfig:
    run_dir: str = "runs/v2a"
    seed: int = 0
    data: V2ADataConfig = field(default_factory=V2ADataConfig)
    encoders: V2AEncodersConfig = field(default_factory=V2AEncodersConfig)
    arch: V2AArchConfig = field(default_factory=V2AArchConfig)
    distributed: V2ADistributedConfig = field(default_factory=V2ADistributedConfig)
    batch_size: int = 8
    steps: int = 2000
    lr: float = 1e-3
    lr_decay_from: int = 0            # > 0: from this step lr falls linearly to lr_final at the last step
    lr_final: float = 0.0
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    t_sampling: str = "logit_normal"  # or "uniform"
    t_mean: float = 0.0
    t_std: float = 1.0
    shift: float = 1.0
    vd_weight: float = 0.0
    drop_visual: float = 0.1
    drop_text: float = 0.1
    drop_sync: float = 0.1
    sync_target_weight: float = 0.0   # the auxiliary envelope loss of the sync encoder (module docstring)
    sync_target: str = "envelope"     # or "envelope+mel"
    timbre_swap: float = 0.0          # share of one-object windows heard with another shape's timbre (v2a_trainer)
    sync_flip: float = 0.0            # probability of mirroring a window's sync frames (v2a_augment.py)
    sync_flicker: float = 0.0         # the largest per-frame flicker amplitude of the sync frames (v2a_augment.py)
    init_transformer: str = ""        # a V2ANextDiT folder to start from (module docstring)
    checkpoint_every: int = 250
    keep_last: int = 2
    log_every: int = 25


def lr_at(cfg: V2ATrainConfig, step: int) -> float:
    """The learning rate of step `step` (0-based): lr, then from lr_decay_from a straight line that reaches
    lr_final at the last step. A function of the step alone, so a resumed run takes the same steps."""
    if not cfg.lr_decay_from or step < cfg.lr_decay_from:
        return cfg.lr
    frac = (step + 1 - cfg.lr_decay_from) / (cfg.steps - cfg.lr_decay_from)
    return cfg.lr + (cfg.lr_final - cfg.lr) * min(frac, 1.0)


def load_v2a_config(path=None, overrides=()) -> V2ATrainConfig:
    cfg = load_yaml(V2ATrainConfig, path, overrides)
    check_v2a_config(cfg)
    return cfg


def check_v2a_config(cfg: V2ATrainConfig) -> None:
    """Read-only checks; ConfigError names the key."""
    check_v2a_data(cfg.data)
    at_least_one(cfg, ("steps", "batch_size", "checkpoint_every", "keep_last", "log_every"))
    if not cfg.encoders.audio_vae or not Path(cfg.encoders.audio_vae).is_dir():
        raise ConfigError(f"config key 'encoders.audio_vae': {cfg.encoders.audio_vae!r} is not a folder "
                          "(train one with `lumina-video train-audio-vae`)")
    one_of(cfg.arch.preset, tuple(V2A_PRESETS), "arch.preset")
    one_of(cfg.t_sampling, ("uniform", "logit_normal"), "t_sampling")
    one_of(cfg.distributed.fsdp, ("auto", "always", "never"), "distributed.fsdp")
    one_of(cfg.distributed.precision, PRECISIONS, "distributed.precision")
    if not cfg.lr > 0:
        raise ConfigError(f"config key 'lr' must be > 0, got {cfg.lr}")
    if not 0 <= cfg.lr_decay_from < cfg.steps:
        raise ConfigError(f"config key 'lr_decay_from' must be a step in [0, steps = {cfg.steps}) (0: no decay), "
                          f"got {cfg.lr_decay_from}")
    if not 0 <= cfg.lr_final <= cfg.lr:
        raise ConfigError(f"config key 'lr_final' must be in [0, lr = {cfg.lr:g}], got {cfg.lr_final:g}")
    if cfg.shift <= 0:
        raise ConfigError(f"config key 'shift' must be > 0, got {cfg.shift}")
    if not cfg.sync_target_weight >= 0:
        raise ConfigError(f"config key 'sync_target_weight' must be >= 0, got {cfg.sync_target_weight}")
    one_of(cfg.sync_target, tuple(SYNC_TARGETS), "sync_target")
    if cfg.init_transformer and not (Path(cfg.init_transformer) / "config.json").is_file():
        raise ConfigError(f"config key 'init_transformer': {cfg.init_transformer!r} is not a V2ANextDiT folder")
    if cfg.sync_target_weight > 0 and not cfg.encoders.train_sync:
        raise ConfigError("config key 'sync_target_weight' needs a trained sync encoder (encoders.train_sync: true)")
    bands = cfg.arch.sync_envelope_bands
    if bands and (cfg.sync_target_weight <= 0 or cfg.sync_target != "envelope+mel"):
        raise ConfigError("config key 'arch.sync_envelope_bands' needs the head's target: sync_target_weight > 0 "
                          "and sync_target: envelope+mel")
    if bands and bands != MEL_BANDS:
        raise ConfigError(f"config key 'arch.sync_envelope_bands' must be 0 or the {MEL_BANDS} mel bands of the "
                          f"envelope target, got {bands}")
    if cfg.arch.sync_harmonics and (not bands or cfg.arch.sync_harmonics < 2):
        raise ConfigError("config key 'arch.sync_harmonics' must be 0 or K >= 2 with arch.sync_envelope_bands "
                          f"(got {cfg.arch.sync_harmonics}, bands {bands})")
    if cfg.arch.sync_timbre_dim < 0:
        raise ConfigError(f"config key 'arch.sync_timbre_dim' must be >= 0, got {cfg.arch.sync_timbre_dim}")
    if cfg.arch.sync_timbre_dim and not cfg.arch.sync_harmonics:
        raise ConfigError("config key 'arch.sync_timbre_dim' needs arch.sync_harmonics > 0 (only the harmonic head "
                          "reads the timbre channels)")
    if not 0 <= cfg.timbre_swap <= 1:
        raise ConfigError(f"config key 'timbre_swap' must be a probability in [0, 1], got {cfg.timbre_swap}")
    if cfg.timbre_swap and not cfg.arch.sync_timbre_dim:
        raise ConfigError("config key 'timbre_swap' needs arch.sync_timbre_dim > 0 (a swap replaces the timbre "
                          "channels the harmonic head reads)")
    if not 0 <= cfg.sync_flip <= 1:
        raise ConfigError(f"config key 'sync_flip' must be a probability in [0, 1], got {cfg.sync_flip}")
    if not 0 <= cfg.sync_flicker <= 1:
        raise ConfigError(f"config key 'sync_flicker' must be an amplitude in [0, 1] (frames are in [-1, 1]), "
                          f"got {cfg.sync_flicker}")
    if (cfg.sync_flip or cfg.sync_flicker) and not cfg.encoders.train_sync:
        raise ConfigError("config keys 'sync_flip' and 'sync_flicker' augment the sync encoder's frames: they need "
                          "a trained sync encoder (encoders.train_sync: true)")
    for name in DROPS:
        p = getattr(cfg, f"drop_{name}")
        if not 0 <= p <= 1:
            raise ConfigError(f"config key 'drop_{name}' must be a probability in [0, 1], got {p}")
