"""Training configuration: dataclasses with defaults, loaded from YAML, overridden by `key.sub=value`.

    cfg = load_config("configs/demo.yaml", ["optim.lr=1e-4", "stages.0.steps=200"])

Loading (lumina_video.configs, shared by every training command) checks every key and type; then
`resolve_config` fills in the derived defaults (stage and task names, image frame counts, recipe time
shifts) in a copy and `check_config` checks the values without changing anything. The trainer adds
the text encoder's system prompt (`resolve_system_prompt`) and writes that config, the one it runs,
into the run folder (`dump_config`).

Layout (REFERENCE.md §5 defaults):
    run_dir, seed, model{preset, args, init_from}, encoders{text, vae, text_cache, text_layer},
    stages[{name, steps, lr, tasks[{name, media, sources[{manifest, system_prompt, ratio, name}], size,
            fps, num_frames, pt, p, shift, global_batch, micro_batch, latents}]}],
    optim{lr, weight_decay, betas, eps, grad_clip}, ema{decay, every}, checkpoint{every, keep_last},
    distributed{fsdp, activation_checkpointing, compile, precision, sequence_parallel},
    caption_dropout, vd_weight, t_sampling, logit_mean, logit_std, default_system_prompt,
    video_motion_drop, image_motion_prob, log_every, num_workers, resume, export_defaults.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

from ..configs import ConfigError, dump_yaml, load_yaml, one_of
from ..encoders.text import RELEASED_SYSTEM_PROMPT
from ..flow import RECIPE_SHIFTS

# REFERENCE.md §6: the prefix of every prompt (the text encoder's own prompt is preferred: resolve_system_prompt)
DEFAULT_SYSTEM_PROMPT = RELEASED_SYSTEM_PROMPT
PRECISIONS = ("auto", "bf16", "fp32")  # distributed.precision of every trainer (distributed.compute_dtype)


@dataclass
class SourceConfig:
    """One data source of a task: a manifest (JSON Lines) and the system prompt of its captions."""
    manifest: str = ""
    name: str | None = None           # records get this `source` name; default: the manifest's stem
    system_prompt: str | None = None  # None: the run's default_system_prompt
    ratio: float = 1.0                # share of this source's records per epoch (2.0 = each twice)


@dataclass
class TaskConfig:
    """One (media, patch size) task: trained every step with its own batch and time shift."""
    name: str = ""
    media: str = "video"            # "video" | "image"
    sources: list[SourceConfig] = field(default_factory=list)
    size: int = 256                 # aspect buckets have areas near size^2 (sides multiples of 32)
    fps: float = 8.0
    num_frames: int = 16            # pixel frames of a clip (images: 1); latent frames = num_frames / 4
    pt: int = 1                     # temporal patch size
    p: int = 2                      # spatial patch size
    shift: float | None = None      # time shift a; None: the recipe value for (media, pt, p) (REFERENCE.md §2)
    global_batch: int = 8           # items per optimizer step, over all processes
    micro_batch: int | None = None  # items per forward/backward; None: a process's whole share
    latents: str = "on_the_fly"     # "on_the_fly" (VAE encodes pixels) | "extracted" (latent_path files)


@dataclass
class StageConfig:
    """A progressive stage: its own tasks, steps and learning rate; starts from the previous weights."""
    name: str = ""
    steps: int = 0
    lr: float | None = None         # None: optim.lr
    tasks: list[TaskConfig] = field(default_factory=list)


@dataclass
class ModelConfig:
    preset: str = "Tiny"
    args: dict = field(default_factory=dict)  # constructor overrides, e.g. {in_channels: 4, cap_feat_dim: 384}
    init_from: str | None = None              # a MultiScaleNextDiT folder to start from (fine-tuning)


@dataclass
class EncodersConfig:
    text: str = "minilm"            # text encoder: "minilm" (offline default), a folder or a hub id
    vae: str | None = None          # VAE folder: encodes pixels (latents: on_the_fly), goes into RUN/final
    text_cache: int = 0             # cache the features of this many (caption, system prompt) pairs
    text_layer: int | None = None   # hidden state the captions are read from; None: the encoder's own
                                    # (MiniLM -1, Gemma -2); saved with the exported pipeline


@dataclass
class OptimConfig:
    """AdamW with a constant learning rate (REFERENCE.md §5)."""
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-15
    grad_clip: float = 2.0          # max global grad norm; <= 0 disables clipping


@dataclass
class EMAConfig:
    decay: float = 0.99
    every: int = 10                 # update every this many optimizer steps


@dataclass
class CheckpointConfig:
    every: int = 1000               # steps between checkpoints (the end of each stage always saves)
    keep_last: int = 3


@dataclass
class DistributedConfig:
    fsdp: str = "auto"              # "auto": shard when there are several processes | "always" | "never"
    activation_checkpointing: bool = False
    compile: bool = False
    precision: str = "auto"         # "auto": bf16 on CUDA, fp32 on CPU | "bf16" | "fp32"
    sequence_parallel: int = 1      # N processes share each item's tokens (Ulysses); FSDP2 spans all W = dp x N


@dataclass
class TrainConfig:
    run_dir: str = "runs/train"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    encoders: EncodersConfig = field(default_factory=EncodersConfig)
    stages: list[StageConfig] = field(default_factory=list)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    caption_dropout: float = 0.2    # share of captions replaced by "" (the system prompt alone)
    vd_weight: float = 1.0          # weight of the (1 - cosine) term of the loss
    t_sampling: str = "uniform"     # "uniform" | "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    default_system_prompt: str | None = None  # None: the text encoder's own (Gemma: REFERENCE.md §6; MiniLM: short)
    video_motion_drop: float = 0.3  # REFERENCE.md §4
    image_motion_prob: float = 0.4
    log_every: int = 10
    num_workers: int = 0            # data loader worker processes per task
    resume: str = "auto"            # "auto": latest checkpoint of run_dir if any | "never" | a checkpoint folder
    export_defaults: dict = field(default_factory=dict)  # generation defaults of RUN/final (e.g. sampling)

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)


def load_config(path=None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a YAML file (or none: all defaults), apply `key=value` overrides, fill in the derived
    defaults (`resolve_config`) and check every value (`check_config`)."""
    cfg = resolve_config(load_yaml(TrainConfig, path, overrides))
    check_config(cfg)
    return cfg


def dump_config(cfg: TrainConfig) -> str:
    return dump_yaml(cfg)


# ------------------------------------------------------------------------------------------------
# resolving: the one step that fills in derived defaults (returns a new config)
# ------------------------------------------------------------------------------------------------

def resolve_config(cfg: TrainConfig) -> TrainConfig:
    """A copy of `cfg` with the derived defaults filled in: stage names (`stage{i}`), task names
    (`{media}-{pt}x{p}`), one frame for image tasks and each task's recipe time shift (REFERENCE.md §2)
    where `shift` is None. The input is left as it is."""
    out = copy.deepcopy(cfg)
    for i, stage in enumerate(out.stages):
        stage.name = stage.name or f"stage{i}"
        for j, task in enumerate(stage.tasks):
            resolve_task(task, f"stages.{i}.tasks.{j}")
    return out


def resolve_task(task: TaskConfig, key: str) -> None:
    """Fill in one task's name, frame count (images: 1) and recipe shift, in place (of a copy)."""
    task.name = task.name or f"{task.media}-{task.pt}x{task.p}"
    if task.media == "image":
        task.num_frames = 1
    if task.shift is None and task.media in MEDIA:
        shift = RECIPE_SHIFTS.get((task.media, (task.pt, task.p)))
        if shift is None:
            raise ConfigError(
                f"task '{task.name}' ({key}): no recipe time shift for {task.media} with (pt={task.pt}, "
                f"p={task.p}); set `{key}.shift` (recipe: {sorted(RECIPE_SHIFTS.items())})"
            )
        task.shift = shift


def resolve_system_prompt(cfg: TrainConfig, text_encoder) -> TrainConfig:
    """Training must prefix the same system prompt that generation will: by default the text encoder's
    own (`TextEncoder.system_prompt`: the REFERENCE.md §6 prompt for Gemma-2, a short one for MiniLM).
    Returns the config with `default_system_prompt` set (the run records it in config.yaml)."""
    if cfg.default_system_prompt is not None:
        return cfg
    prompt = getattr(text_encoder, "system_prompt", None) or DEFAULT_SYSTEM_PROMPT
    return dataclasses.replace(cfg, default_system_prompt=prompt)


# ------------------------------------------------------------------------------------------------
# checks: read-only; files and the model are checked by the trainer
# ------------------------------------------------------------------------------------------------

MEDIA = ("video", "image")


def check_config(cfg: TrainConfig) -> None:
    """Raise ConfigError naming the first value that cannot be trained. Changes nothing."""
    if not cfg.stages:
        raise ConfigError("the config has no stages: add `stages:` with at least one stage and its tasks")
    one_of(cfg.t_sampling, ("uniform", "logit_normal"), "t_sampling")
    one_of(cfg.distributed.precision, PRECISIONS, "distributed.precision")
    one_of(cfg.distributed.fsdp, ("auto", "always", "never"), "distributed.fsdp")
    if cfg.distributed.sequence_parallel < 1:
        raise ConfigError(f"config key 'distributed.sequence_parallel' must be >= 1, got "
                          f"{cfg.distributed.sequence_parallel}")
    for key, v in (("caption_dropout", cfg.caption_dropout), ("video_motion_drop", cfg.video_motion_drop),
                   ("image_motion_prob", cfg.image_motion_prob), ("ema.decay", cfg.ema.decay)):
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"config key '{key}' must be in [0, 1], got {v}")
    for key, v in (("ema.every", cfg.ema.every), ("checkpoint.every", cfg.checkpoint.every),
                   ("checkpoint.keep_last", cfg.checkpoint.keep_last), ("log_every", cfg.log_every)):
        if v < 1:
            raise ConfigError(f"config key '{key}' must be >= 1, got {v}")
    if cfg.optim.lr <= 0:
        raise ConfigError(f"config key 'optim.lr' must be > 0, got {cfg.optim.lr}")
    for i, stage in enumerate(cfg.stages):
        check_stage(stage, f"stages.{i}")


def check_stage(stage: StageConfig, key: str) -> None:
    if stage.steps < 1:
        raise ConfigError(f"config key '{key}.steps' must be >= 1, got {stage.steps}")
    if stage.lr is not None and stage.lr <= 0:
        raise ConfigError(f"config key '{key}.lr' must be > 0, got {stage.lr}")
    if not stage.tasks:
        raise ConfigError(f"stage '{key}' has no tasks")
    names = set()
    for j, task in enumerate(stage.tasks):
        check_task(task, f"{key}.tasks.{j}")
        if task.name in names:
            raise ConfigError(f"stage '{stage.name}' has two tasks named {task.name!r}; task names must differ")
        names.add(task.name)


def check_task(task: TaskConfig, key: str) -> None:
    one_of(task.media, MEDIA, f"{key}.media")
    one_of(task.latents, ("on_the_fly", "extracted"), f"{key}.latents")
    if not task.sources:
        raise ConfigError(f"task '{key}' ({task.name}) has no data sources: add `sources: [{{manifest: ...}}]`")
    for k, s in enumerate(task.sources):
        if not s.manifest:
            raise ConfigError(f"config key '{key}.sources.{k}.manifest' is empty")
        if s.ratio <= 0:
            raise ConfigError(f"config key '{key}.sources.{k}.ratio' must be > 0, got {s.ratio}")
    if task.media == "video" and (task.num_frames < 4 or task.num_frames % 4):
        raise ConfigError(
            f"config key '{key}.num_frames' is {task.num_frames}; a video task needs a multiple of 4 "
            f"(clips are decoded with num_frames + 1 = 4k + 1 frames: k latent frames after the first is dropped)"
        )
    if task.size % 32 or task.size < 32:
        raise ConfigError(f"config key '{key}.size' must be a positive multiple of 32, got {task.size}")
    if task.shift is None:
        raise ConfigError(f"config key '{key}.shift' is not set; resolve_config fills in the recipe value")
    if task.shift <= 0:
        raise ConfigError(f"config key '{key}.shift' must be > 0, got {task.shift}")
    if task.global_batch < 1:
        raise ConfigError(f"config key '{key}.global_batch' must be >= 1, got {task.global_batch}")
    if task.micro_batch is not None and task.micro_batch < 1:
        raise ConfigError(f"config key '{key}.micro_batch' must be >= 1, got {task.micro_batch}")


__all__ = [
    "DEFAULT_SYSTEM_PROMPT", "ConfigError", "SourceConfig", "TaskConfig", "StageConfig", "ModelConfig",
    "EncodersConfig", "OptimConfig", "EMAConfig", "CheckpointConfig", "DistributedConfig", "TrainConfig",
    "load_config", "dump_config", "resolve_config", "resolve_system_prompt", "check_config",
]
