"""Training configuration: dataclasses with defaults, loaded from YAML, overridden by `key.sub=value`.

    cfg = load_config("configs/tiny.yaml", ["optim.lr=1e-4", "stages.0.steps=200"])

Every key is checked against the dataclasses: an unknown key is an error naming its full dotted path
and listing the accepted keys. The resolved config (defaults filled in, overrides applied) is written
into the run folder by the trainer (`dump_config`).

Layout (REFERENCE.md §5 defaults):
    run_dir, seed, model{preset, args, init_from}, encoders{text, vae, text_cache, text_layer},
    stages[{name, steps, lr, tasks[{name, media, sources[{manifest, system_prompt, ratio, name}], size,
            fps, num_frames, pt, p, shift, global_batch, micro_batch, latents}]}],
    optim{lr, weight_decay, betas, eps, grad_clip}, ema{decay, every}, checkpoint{every, keep_last},
    distributed{fsdp, activation_checkpointing, compile, precision},
    caption_dropout, vd_weight, t_sampling, logit_mean, logit_std, default_system_prompt,
    video_motion_drop, image_motion_prob, log_every, num_workers, resume, export_defaults.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# REFERENCE.md §6: the prefix of every prompt.
DEFAULT_SYSTEM_PROMPT = (
    "You are an assistant designed to generate high-quality videos with the highest degree of image-text "
    "alignment based on user prompts. <Prompt Start> "
)


class ConfigError(ValueError):
    """A configuration that cannot be trained: the message names the offending key or file."""


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


# ------------------------------------------------------------------------------------------------
# dict <-> dataclass
# ------------------------------------------------------------------------------------------------

def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value, tp, key: str):
    """Check / convert one YAML value to the annotated type `tp`; errors name the dotted key."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, key)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
        return [_coerce(v, args[0], f"{key}.{i}") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"config key '{key}' must be a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{key}.{i}") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        # YAML 1.1 reads "1e-4" (no dot) as a string; accept it as the number it means.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    else:
        return value
    raise ConfigError(f"config key '{key}' must be {_type_name(tp)}, got {value!r}")


def from_dict(cls, data: dict, prefix: str = ""):
    """Build dataclass `cls` from a plain dict; unknown keys are rejected by their dotted path."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        where = f"'{prefix}'" if prefix else "the top level"
        full = ", ".join(f"'{prefix + '.' if prefix else ''}{k}'" for k in unknown)
        raise ConfigError(f"unknown config key {full} (accepted at {where}: {', '.join(names)})")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(cfg) -> dict:
    """Plain, YAML-safe dict of a config (tuples become lists)."""

    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))


# ------------------------------------------------------------------------------------------------
# YAML + overrides
# ------------------------------------------------------------------------------------------------

def apply_override(data: dict, assignment: str) -> None:
    """Apply one `a.b.0.c=value` to a nested dict/list in place. The value is parsed as YAML."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} is not of the form key.sub=value")
    key, raw = assignment.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {assignment!r} has an empty key")
    value = yaml.safe_load(raw) if raw.strip() else ""
    parts = key.split(".")
    node = data
    for depth, part in enumerate(parts[:-1]):
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            node = node[_list_index(node, part, where)]
        else:
            if not isinstance(node.get(part, {}), (dict, list)):
                raise ConfigError(f"override '{key}': '{where}' is a value, not a section")
            node = node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, key)] = value
    else:
        node[last] = value


def _list_index(node: list, part: str, where: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"override: '{where}' needs a list index below {len(node)}, got '{part}'")
    return int(part)


def load_config(path=None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a YAML file (or none: all defaults), apply `key=value` overrides, build the dataclasses."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a training config must be a YAML mapping at the top level")
    for assignment in overrides:
        apply_override(data, assignment)
    cfg = from_dict(TrainConfig, data)
    check_values(cfg)
    return cfg


def dump_config(cfg: TrainConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, width=110)


# ------------------------------------------------------------------------------------------------
# value checks that need nothing but the config (files and the model are checked by the trainer)
# ------------------------------------------------------------------------------------------------

def _one_of(value, accepted, key):
    if value not in accepted:
        raise ConfigError(f"config key '{key}' is {value!r}; accepted: {', '.join(map(repr, accepted))}")


def check_values(cfg: TrainConfig) -> None:
    if not cfg.stages:
        raise ConfigError("the config has no stages: add `stages:` with at least one stage and its tasks")
    _one_of(cfg.t_sampling, ("uniform", "logit_normal"), "t_sampling")
    _one_of(cfg.distributed.precision, ("auto", "bf16", "fp32"), "distributed.precision")
    _one_of(cfg.distributed.fsdp, ("auto", "always", "never"), "distributed.fsdp")
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
        sk = f"stages.{i}"
        if stage.steps < 1:
            raise ConfigError(f"config key '{sk}.steps' must be >= 1, got {stage.steps}")
        if stage.lr is not None and stage.lr <= 0:
            raise ConfigError(f"config key '{sk}.lr' must be > 0, got {stage.lr}")
        if not stage.tasks:
            raise ConfigError(f"stage '{sk}' has no tasks")
        stage.name = stage.name or f"stage{i}"
        names = set()
        for j, task in enumerate(stage.tasks):
            check_task(task, f"{sk}.tasks.{j}")
            if task.name in names:
                raise ConfigError(f"stage '{stage.name}' has two tasks named {task.name!r}; task names must differ")
            names.add(task.name)


def check_task(task: TaskConfig, key: str) -> None:
    from ..flow import RECIPE_SHIFTS

    _one_of(task.media, ("video", "image"), f"{key}.media")
    _one_of(task.latents, ("on_the_fly", "extracted"), f"{key}.latents")
    task.name = task.name or f"{task.media}-{task.pt}x{task.p}"
    if not task.sources:
        raise ConfigError(f"task '{key}' ({task.name}) has no data sources: add `sources: [{{manifest: ...}}]`")
    for k, s in enumerate(task.sources):
        if not s.manifest:
            raise ConfigError(f"config key '{key}.sources.{k}.manifest' is empty")
        if s.ratio <= 0:
            raise ConfigError(f"config key '{key}.sources.{k}.ratio' must be > 0, got {s.ratio}")
    if task.media == "image":
        task.num_frames = 1
    elif task.num_frames < 4 or task.num_frames % 4:
        raise ConfigError(
            f"config key '{key}.num_frames' is {task.num_frames}; a video task needs a multiple of 4 "
            f"(clips are decoded with num_frames + 1 = 4k + 1 frames: k latent frames after the first is dropped)"
        )
    if task.size % 32 or task.size < 32:
        raise ConfigError(f"config key '{key}.size' must be a positive multiple of 32, got {task.size}")
    if task.shift is None:
        shift = RECIPE_SHIFTS.get((task.media, (task.pt, task.p)))
        if shift is None:
            raise ConfigError(
                f"task '{task.name}' ({key}): no recipe time shift for {task.media} with (pt={task.pt}, "
                f"p={task.p}); set `{key}.shift` (recipe: {sorted(RECIPE_SHIFTS.items())})"
            )
        task.shift = shift
    if task.shift <= 0:
        raise ConfigError(f"config key '{key}.shift' must be > 0, got {task.shift}")
    if task.global_batch < 1:
        raise ConfigError(f"config key '{key}.global_batch' must be >= 1, got {task.global_batch}")
    if task.micro_batch is not None and task.micro_batch < 1:
        raise ConfigError(f"config key '{key}.micro_batch' must be >= 1, got {task.micro_batch}")


__all__ = [
    "DEFAULT_SYSTEM_PROMPT", "ConfigError", "SourceConfig", "TaskConfig", "StageConfig", "ModelConfig",
    "EncodersConfig", "OptimConfig", "EMAConfig", "CheckpointConfig", "DistributedConfig", "TrainConfig",
    "from_dict", "to_dict", "apply_override", "load_config", "dump_config", "check_values",
]
