"""The one training loop. A model family (the DiT in trainer.py, the VAE in vae_trainer.py) plugs in
its model, data and loss as a `Family`; this module owns everything else:

    state = TrainState()                      step, stage, data position (RNG: checkpoint rng/ files)
    resume(family, ckpts, state, ...)         weights, EMA, optimizer, RNG and data position; settings
                                              that differ from the checkpoint's run are reported
    run_stages(family, loop, state)           per step: family.forward_backward -> check_finite ->
                                              family.update; logs, checkpoints, stop_at; then export

Every process calls every function here (under FSDP the collectives must match); only the main
process writes files. A checkpoint folder is written atomically (checkpoint.py), so a run killed at
any point resumes from the last complete one, exactly: the same data, the same random draws.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from .. import files
from ..configs import ConfigError, changes
from .checkpoint import CheckpointManager, set_rng_state
from .distributed import peak_memory_mb
from .metrics import RunLog


class NonFiniteLossError(RuntimeError):
    """The loss or the gradient norm became NaN/inf; the run stopped before the weights changed."""


@dataclass
class TrainState:
    """Where a run is: what a checkpoint's state.json holds besides the tensors."""
    step: int = 0
    stage: int = 0                                   # index of the stage the step belongs to
    stage_name: str = ""
    data: dict = field(default_factory=dict)         # the family's data position (e.g. batches consumed)

    def state_dict(self) -> dict:
        return {"step": self.step, "stage": self.stage, "stage_name": self.stage_name, "data": self.data}

    def load_state_dict(self, d: dict) -> None:
        self.step, self.stage = int(d["step"]), int(d.get("stage", 0))
        self.stage_name = d.get("stage_name", "")
        self.data = d.get("data", {k: d[k] for k in ("epoch", "position", "crop_rng") if k in d})


@dataclass(frozen=True)
class Stage:
    name: str
    steps: int
    lr: float


@dataclass
class LoopSettings:
    run_dir: Path
    config_text: str                  # the resolved config this run runs (RUN/config.yaml)
    architecture: dict                # what the weights' shapes depend on; resuming with another is refused
    checkpoint_every: int
    log_every: int
    stop_at: int | None = None
    device: torch.device = torch.device("cpu")
    peak_flops: float | None = None   # peak FLOP/s of all processes together (CUDA: by GPU name), for the MFU


@dataclass
class LoopResult:
    step: int
    stopped_early: bool
    last_checkpoint: Path | None
    final: Path | None = None


class Family(Protocol):
    """What a model family provides to the loop."""
    stages: list[Stage]

    def start_stage(self, index: int, stage: Stage, state: TrainState, optimizer_state: dict | None) -> None:
        """Data from `state.data` (empty: from the start) and a fresh optimizer at stage.lr, loaded from
        `optimizer_state` when resuming inside this stage (its hyperparameters: the current config's)."""

    def forward_backward(self, state: TrainState) -> dict:
        """One step's gradients; metrics with `loss` and `grad_norm` (floats), optional `samples`, `tokens`."""

    def update(self, state: TrainState) -> None:
        """Apply the gradients (optimizer step, EMA); `state.step` is the step just finished - 1."""

    def data_position(self) -> dict: ...
    def payload(self) -> dict:
        """Whole state dicts {"model", "ema", "optimizer"} (collective; the main process's are written)."""

    def load_payload(self, loaded: dict) -> None: ...
    def export(self, run_dir: Path) -> Path | None: ...


# ------------------------------------------------------------------------------------------------
# checks
# ------------------------------------------------------------------------------------------------

def check_finite(metrics: dict, step: int, stage: str, last_checkpoint: Path | None) -> None:
    """Stop before a NaN/inf loss or gradient reaches the weights; the message names the last good
    checkpoint, the same for every model family (the CLIs exit with code 3)."""
    if math.isfinite(metrics["loss"]) and math.isfinite(metrics["grad_norm"]):
        return
    values = ", ".join(f"{k}={v}" for k, v in metrics.items() if k.startswith(("loss", "grad")))
    raise NonFiniteLossError(f"non-finite loss at step {step} (stage '{stage}'): {values}; the weights were not "
                             f"updated. Last good checkpoint: {last_checkpoint or 'none'}")


def check_architecture(source: Path, saved: dict | None, current: dict) -> None:
    """Refuse, in one line, to resume weights of another architecture into this run's model."""
    if saved is None:
        return
    diff = changes(saved, current)
    if diff:
        named = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(diff.items())[:4])
        raise ConfigError(f"cannot resume from {source}: the model architecture differs from the checkpoint's "
                          f"({named}); restore those settings or use a new run_dir")


def check_shapes(source: Path, saved: dict, current: dict) -> None:
    """The same refusal for checkpoints that predate recorded architectures: compare tensor shapes."""
    missing, unexpected = sorted(set(current) - set(saved)), sorted(set(saved) - set(current))
    wrong = [k for k in current if k in saved and tuple(saved[k].shape) != tuple(current[k].shape)]
    if missing or unexpected or wrong:
        first = (f"'{wrong[0]}' is {tuple(saved[wrong[0]].shape)} there, {tuple(current[wrong[0]].shape)} here"
                 if wrong else f"{len(missing)} tensors missing, {len(unexpected)} unexpected")
        raise ConfigError(f"cannot resume from {source}: its weights are of another model architecture ({first}); "
                          "restore the model settings of that run or use a new run_dir")


def record_config_changes(run_dir: Path, step: int, old_text: str | None, new_text: str, write: bool) -> str | None:
    """Settings that differ from the checkpoint's run (learning rate, batch sizes, ...) are applied:
    returns a line saying so, and appends them to RUN/config_changes.jsonl (RUN/config.yaml holds
    the config now run)."""
    import yaml

    if not old_text:
        return None
    diff = changes(yaml.safe_load(old_text) or {}, yaml.safe_load(new_text) or {}, ignore=("resume",))
    if not diff:
        return None
    if write:
        path = run_dir / "config_changes.jsonl"
        previous = path.read_text() if path.is_file() else ""
        entry = {"step": step, "time": time.time(), "changes": {k: list(v) for k, v in diff.items()}}
        files.write_text(path, previous + json.dumps(entry) + "\n")
    return (f"resuming at step {step} with changed settings (applied; recorded in {run_dir / 'config_changes.jsonl'}): "
            + "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items()))


# ------------------------------------------------------------------------------------------------
# resume, save
# ------------------------------------------------------------------------------------------------

def resume(family: Family, ckpts: CheckpointManager, source, settings: LoopSettings, state: TrainState, *,
           tensors: bool, model_state: dict | None, is_main: bool) -> tuple[dict | None, list[str]]:
    """Load checkpoint `source` (None: nothing to resume) into the family and `state`. Returns the
    optimizer state of the stage that was running (None without a checkpoint) and lines to log."""
    if source is None:
        return None, []
    source = Path(source)
    loaded = ckpts.load(source, tensors=tensors)
    check_architecture(source, loaded["state"].get("architecture"), settings.architecture)
    if model_state is not None and loaded["model"]:
        check_shapes(source, loaded["model"], model_state)
    family.load_payload(loaded)
    if loaded["rng"] is not None:
        set_rng_state(loaded["rng"])
    state.load_state_dict(loaded["state"])
    notes = [f"resumed from {source} at step {state.step}"]
    changed = record_config_changes(settings.run_dir, state.step, loaded["config"], settings.config_text, is_main)
    return loaded["optimizer"], notes + ([changed] if changed else [])


def save(family: Family, ckpts: CheckpointManager, settings: LoopSettings, state: TrainState, log: RunLog) -> Path:
    """A checkpoint of this step (every process calls it)."""
    state.data = family.data_position()
    meta = dict(state.state_dict(), architecture=settings.architecture)
    path = ckpts.save(state.step, **family.payload(), state=meta, config_text=settings.config_text)
    log.plot()
    return path


# ------------------------------------------------------------------------------------------------
# the stages
# ------------------------------------------------------------------------------------------------

def stage_bounds(stages: list[Stage]) -> list[tuple[int, int]]:
    """[start, end) global steps of each stage."""
    out, start = [], 0
    for s in stages:
        out.append((start, start + s.steps))
        start += s.steps
    return out


def run_stages(family: Family, ckpts: CheckpointManager, settings: LoopSettings, state: TrainState, log: RunLog,
               optimizer_state: dict | None, last_checkpoint: Path | None) -> LoopResult:
    """Train from `state` to the end of the last stage (or `settings.stop_at`), then export."""
    if settings.stop_at is not None and state.step >= settings.stop_at:
        return LoopResult(state.step, True, last_checkpoint)
    resumed_stage = state.stage if state.step > 0 else None
    for index, (stage, (begin, end)) in enumerate(zip(family.stages, stage_bounds(family.stages))):
        if state.step >= end:
            continue  # finished before the resume point
        mid_stage = state.step > begin and resumed_stage == index
        if not mid_stage:
            state.data = {}
        state.stage, state.stage_name = index, stage.name
        family.start_stage(index, stage, state, optimizer_state if mid_stage else None)
        last_checkpoint, stopped = run_steps(family, ckpts, settings, state, log, end, last_checkpoint)
        if stopped:
            log.echo(f"stopped at step {state.step} (stop_at); continue with the same command")
            return LoopResult(state.step, True, last_checkpoint)
    final = family.export(settings.run_dir)
    log.plot()
    return LoopResult(state.step, False, last_checkpoint, final)


def run_steps(family: Family, ckpts: CheckpointManager, settings: LoopSettings, state: TrainState, log: RunLog,
              end: int, last_checkpoint: Path | None) -> tuple[Path | None, bool]:
    """Steps up to `end` of the current stage; returns (last checkpoint, whether stop_at was reached)."""
    stage = family.stages[state.stage]
    while state.step < end:
        metrics = family.forward_backward(state)
        check_finite(metrics, state.step + 1, stage.name, last_checkpoint)
        family.update(state)
        state.step += 1
        log.count(metrics.pop("samples", 0), metrics.pop("tokens", 0), metrics.pop("flops", 0.0))
        log.step_done(metrics["loss"])
        if state.step % settings.log_every == 0 or state.step == end:
            samples_s, tokens_s, flops_s = log.rates()
            rates = dict(samples_per_s=samples_s, tokens_per_s=tokens_s)
            if flops_s:
                rates["tflops_per_s"] = flops_s / 1e12
            if flops_s and settings.peak_flops:
                rates["mfu"] = flops_s / settings.peak_flops
            lr = metrics.pop("lr", stage.lr)  # a family with a schedule reports the step's own
            log.write(dict(step=state.step, stage=stage.name, **metrics, lr=lr, **rates,
                           memory_mb=peak_memory_mb(settings.device), time=time.time()))
        if state.step % settings.checkpoint_every == 0 or state.step in (end, settings.stop_at):
            last_checkpoint = save(family, ckpts, settings, state, log)
        if state.step == settings.stop_at:
            return last_checkpoint, True
    return last_checkpoint, False


def apply_hyperparameters(optimizer: torch.optim.Optimizer, **values) -> None:
    """Set lr, betas, ... of every parameter group: after loading a checkpoint's optimizer state the
    current config's values apply, not the ones saved with it."""
    for group in optimizer.param_groups:
        group.update(values)


def run_one_process(family, cfg, stop_at: int | None, progress: bool, desc: str, env=None) -> dict:
    """The whole run of a family whose config has run_dir, steps, keep_last, checkpoint_every, log_every and
    arch (the video VAE, the audio VAE, the vocoder, V2A): RUN/config.yaml, resume, the stages, export; a
    summary ({step, finished, run_dir} and, when finished, the family's `report`). The family exposes
    `module` (the trained nn.Module, for the checkpoint shape check) and may give a `data_report()` line for
    the log, `shard` (True: FSDP-sharded, only the main process reads checkpoint tensors) and `device`.
    `env` (default: one process) is the process group's DistEnv; only its main process writes files."""
    from ..configs import dump_yaml
    from .distributed import DistEnv

    env = env or DistEnv()
    shard = getattr(family, "shard", False)
    run_dir = Path(cfg.run_dir)
    config_text = dump_yaml(cfg)
    if env.is_main:
        files.write_text(run_dir / "config.yaml", config_text)
    log = RunLog(run_dir, enabled=env.is_main, total_steps=cfg.steps, progress=progress, desc=desc)
    ckpts = CheckpointManager(run_dir / "checkpoints", env, keep_last=cfg.keep_last)
    ckpts.remove_partial()
    source = ckpts.latest()
    settings = LoopSettings(run_dir, config_text, {"arch": vars(cfg.arch)}, cfg.checkpoint_every, cfg.log_every,
                            stop_at, getattr(family, "device", torch.device("cpu")))
    state = TrainState()
    try:
        optimizer_state, notes = resume(family, ckpts, source, settings, state, is_main=env.is_main,
                                        tensors=env.is_main or not shard,  # sharded: the main process reads
                                        model_state=None if shard else family.module.state_dict())
        log.start(state.step)
        data_report = getattr(family, "data_report", None)
        for line in ([f"data: {data_report()}"] if data_report else []) + notes:
            log.echo(line)
        out = run_stages(family, ckpts, settings, state, log, optimizer_state, source)
    finally:
        log.close()
    if out.final is None:
        return {"step": out.step, "finished": False, "run_dir": str(run_dir)}
    return {"step": out.step, "finished": True, "run_dir": str(run_dir), **family.report}
