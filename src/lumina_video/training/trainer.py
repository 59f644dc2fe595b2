"""`train(cfg)`: a DiT training run, top to bottom (REFERENCE.md §5).

    lumina-video train configs/demo.yaml optim.lr=1e-4                              # one process
    torchrun --nproc_per_node 8 -m lumina_video.cli train configs/lumina_video_2b.yaml   # FSDP over 8 GPUs

What happens, in order:
    0. the process group (torchrun, an existing one, or none)
    1. validate before any work: data files exist, every task's patch size is in the model, the text
       encoder / VAE widths match the model; the system prompt is resolved into the config
    2. the run folder and its config.yaml: the config this run runs
    3. model (seeded, identical on every process) -> activation checkpointing / compile / FSDP -> EMA
    4. resume from the latest checkpoint, if any (weights, EMA, optimizer, RNG, data positions); an
       architecture change is refused, other changed settings are applied and recorded
    5. the stages (loop.py): data streams + a fresh optimizer at the stage's LR; steps; checkpoints
    6. export the EMA weights to RUN/final
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import files
from ..model.flops import peak_bf16_flops
from . import distributed
from .build import build_transformer, check_encoders_fit_model, check_model_fits_tasks, load_text_encoder, load_vae
from .checkpoint import CheckpointManager
from .config import TrainConfig, dump_config, resolve_system_prompt
from .data import build_dataset, task_records
from .dit import DiTFamily
from .loop import LoopSettings, TrainState, resume, run_stages
from .metrics import RunLog
from .step import CaptionEncoder


@dataclass
class TrainResult:
    step: int
    run_dir: Path
    final: Path | None = None          # RUN/final when the last step was reached
    last_checkpoint: Path | None = None
    stopped_early: bool = False
    history: list[dict] = field(default_factory=list)


@dataclass
class RunParts:
    """Everything step 1 built and checked, before anything is written."""
    cfg: TrainConfig                   # with the system prompt resolved: what config.yaml records
    model: object
    text_encoder: object
    vae: object
    records: dict
    dtype: object


def train(cfg: TrainConfig, *, text_encoder=None, vae=None, dataset_factory=build_dataset,
          stop_at: int | None = None, checkpoint_hook=None, progress: bool = True) -> TrainResult:
    """Train (or continue training) the run described by `cfg` (a resolved config: `load_config`).

    text_encoder / vae: objects to use instead of loading `cfg.encoders` (encode(...) like
    lumina_video.encoders). dataset_factory(task, cfg, records, prompts) -> dataset.
    stop_at: stop after this global step (a checkpoint is written); a later call continues.
    """
    env = distributed.setup(force_group=cfg.distributed.fsdp == "always")
    try:
        env = distributed.with_sequence_parallel(env, cfg.distributed.sequence_parallel)
        parts = prepare(cfg, env, text_encoder, vae)
        result = run(parts, env, dataset_factory, stop_at, checkpoint_hook, progress)
    except BaseException:
        distributed.teardown(env, clean=False)
        raise
    distributed.teardown(env)
    return result


def prepare(cfg: TrainConfig, env, text_encoder, vae) -> RunParts:
    """Step 1: build and check everything a run needs; nothing is written."""
    records = {(i, t.name): task_records(t, cfg.seed, f"stages.{i}.tasks.{j}")
               for i, s in enumerate(cfg.stages) for j, t in enumerate(s.tasks)}
    model = build_transformer(cfg)
    check_model_fits_tasks(model, cfg)
    dtype = distributed.compute_dtype(cfg.distributed.precision, env.device)
    text_encoder = text_encoder if text_encoder is not None else load_text_encoder(cfg, env.device, dtype)
    on_the_fly = any(t.latents == "on_the_fly" for s in cfg.stages for t in s.tasks)
    vae = vae if vae is not None else load_vae(cfg, env.device, needed=on_the_fly)
    check_encoders_fit_model(model, text_encoder, vae)
    return RunParts(resolve_system_prompt(cfg, text_encoder), model, text_encoder, vae, records, dtype)


def peak_flops(env) -> float | None:
    """bf16 peak FLOP/s of all the run's GPUs (by name; None on a CPU or an unknown GPU): the MFU's unit."""
    if env.device.type != "cuda":
        return None
    import torch

    one = peak_bf16_flops(torch.cuda.get_device_name(env.device))
    return None if one is None else one * env.world


def run(parts: RunParts, env, dataset_factory, stop_at, checkpoint_hook, progress: bool) -> TrainResult:
    """Steps 2-6: the run folder, the wrapped model, resume, the stages, the export."""
    cfg = parts.cfg
    run_dir = Path(cfg.run_dir)
    config_text = dump_config(cfg)
    if env.is_main:
        files.write_text(run_dir / "config.yaml", config_text)
    architecture = dict(parts.model.config)
    shard = env.world > 1 or cfg.distributed.fsdp == "always"
    model = distributed.wrap_model(parts.model.to(env.device).train(), env, shard=shard, dtype=parts.dtype,
                                   compile=cfg.distributed.compile,
                                   activation_checkpointing=cfg.distributed.activation_checkpointing)
    ckpts = CheckpointManager(run_dir / "checkpoints", env, cfg.checkpoint.keep_last, checkpoint_hook)
    ckpts.remove_partial()
    source = {"auto": ckpts.latest(), "never": None}.get(cfg.resume, cfg.resume)
    settings = LoopSettings(run_dir, config_text, architecture, cfg.checkpoint.every, cfg.log_every, stop_at,
                            env.device, peak_flops(env))
    state, notes = TrainState(), []
    log = RunLog(run_dir, enabled=env.is_main, total_steps=sum(s.steps for s in cfg.stages), progress=progress)
    family = DiTFamily(cfg, env, model, captions=CaptionEncoder(parts.text_encoder, cfg.encoders.text_cache),
                       text_encoder=parts.text_encoder, vae=parts.vae, records=parts.records,
                       dataset_factory=dataset_factory, dtype=parts.dtype, shard=shard, log=log)
    try:
        optimizer_state, notes = resume(family, ckpts, source, settings, state, is_main=env.is_main,
                                        tensors=env.is_main or not shard,  # sharded: the main process reads
                                        model_state=None if shard else model.state_dict())
        log.start(state.step)
        for line in notes:
            log.echo(line)
        out = run_stages(family, ckpts, settings, state, log, optimizer_state,
                         Path(source) if source is not None else None)
    finally:
        log.close()
    return TrainResult(out.step, run_dir, out.final, out.last_checkpoint, out.stopped_early, list(log.entries))
