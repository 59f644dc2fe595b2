"""The training loop, top to bottom (REFERENCE.md §5).

    lumina-video train configs/tiny.yaml optim.lr=1e-4            # one process
    torchrun --nproc_per_node 8 -m lumina_video.cli train configs/stage3.yaml   # FSDP over 8 GPUs

One optimizer step trains *every* task of the current stage (e.g. image-1x2, video-1x2, video-2x2,
video-2x4): each task draws its own global batch, splits this process's share into micro-batches,
and backpropagates its flow-matching loss with its own time shift; all gradients add up into ONE
AdamW step. Stages run in order, each from the weights the previous one ended with.

What happens, in order:
    0. the process group (torchrun, an existing one, or none)
    1. validate before any work: data files exist, every task's patch size is in the model,
       the text encoder / VAE widths match the model
    2. the run folder and its resolved config.yaml
    3. model (seeded, identical on every process) -> activation checkpointing / compile / FSDP -> EMA
    4. resume from the latest checkpoint, if any (weights, EMA, optimizer, RNG, data positions)
    5. for each stage: data streams + a fresh optimizer at the stage's LR; steps; checkpoints
    6. export the EMA weights to RUN/final
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import files
from . import distributed as D
from .checkpoint import CheckpointManager, set_rng_state
from .config import DEFAULT_SYSTEM_PROMPT, ConfigError, TrainConfig, dump_config
from .data import GlobalBatchOrder, TaskStream, bucket_keys, build_dataset, stable_seed, task_records
from .ema import EMA
from .metrics import RunLog
from .step import CaptionEncoder, flow_loss, prepare


class NonFiniteLossError(RuntimeError):
    """The loss or the gradient norm became NaN/inf; the run stopped before the weights changed."""


@dataclass
class TrainResult:
    step: int
    run_dir: Path
    final: Path | None = None          # RUN/final when the last step was reached
    last_checkpoint: Path | None = None
    stopped_early: bool = False
    history: list[dict] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------
# building blocks
# ------------------------------------------------------------------------------------------------

def build_model(cfg: TrainConfig) -> nn.Module:
    """The transformer in fp32 (master weights), seeded so every process builds the same one."""
    from ..model import MultiScaleNextDiT
    from ..model import build_model as build_preset

    torch.manual_seed(cfg.seed)
    if cfg.model.init_from:
        if cfg.model.args:
            raise ConfigError(f"model.args {sorted(cfg.model.args)} cannot be combined with model.init_from: the "
                              f"config.json of {cfg.model.init_from} fixes the architecture")
        return MultiScaleNextDiT.from_pretrained(cfg.model.init_from).float().train()
    try:
        return build_preset(cfg.model.preset, **cfg.model.args)
    except TypeError as e:
        raise ConfigError(f"model.args: {e}") from None


def check_model_fits_tasks(model, cfg: TrainConfig) -> None:
    have = ", ".join(f"(pt={pt}, p={p})" for pt, p in model.patch_shapes)
    for i, stage in enumerate(cfg.stages):
        for j, task in enumerate(stage.tasks):
            if not model.has_patch(task.p, task.pt):
                raise ConfigError(
                    f"stage '{stage.name}' task '{task.name}' (stages.{i}.tasks.{j}) uses patch size "
                    f"(pt={task.pt}, p={task.p}), which the model lacks; it has {have} "
                    f"(model.args.all_f_patch_size / all_patch_size)"
                )


def check_encoders_fit_model(model, text_encoder, vae) -> None:
    dim = getattr(text_encoder, "dim", None)
    if dim is not None and dim != model.config["cap_feat_dim"]:
        raise ConfigError(
            f"the text encoder gives {dim}-wide features but the model has cap_feat_dim="
            f"{model.config['cap_feat_dim']}; set model.args.cap_feat_dim={dim}"
        )
    ch = getattr(vae, "latent_channels", None)
    if ch is not None and ch != model.config["in_channels"]:
        raise ConfigError(
            f"the VAE gives {ch} latent channels but the model has in_channels={model.config['in_channels']}; "
            f"set model.args.in_channels={ch}"
        )


def load_text_encoder(cfg: TrainConfig, device, dtype):
    """The frozen text encoder ("minilm": the bundled offline MiniLM; else a folder or hub id)."""
    from ..encoders.text import TextEncoder

    name = None if cfg.encoders.text == "minilm" else cfg.encoders.text
    settings = {} if cfg.encoders.text_layer is None else {"layer": cfg.encoders.text_layer}
    return TextEncoder.from_pretrained(name, dtype=dtype if dtype != torch.float32 else None,
                                       device=device, **settings).eval().requires_grad_(False)


def load_vae(cfg: TrainConfig, device, needed: bool):
    """The frozen VAE: needed to encode pixels (latents: on_the_fly), optional otherwise (then only
    for the exported pipeline)."""
    if not cfg.encoders.vae:
        if needed:
            raise ConfigError("tasks with `latents: on_the_fly` need a VAE: set encoders.vae to a VAE folder")
        return None
    if not Path(cfg.encoders.vae).exists():
        raise FileNotFoundError(f"encoders.vae: the VAE folder {cfg.encoders.vae} does not exist")
    from ..encoders.vae import VideoVAE

    return VideoVAE.from_pretrained(cfg.encoders.vae, device=device).eval().requires_grad_(False)


def resolve_system_prompt(cfg: TrainConfig, text_encoder) -> None:
    """Training must prefix the same system prompt that generation will: by default the text
    encoder's own (`TextEncoder.system_prompt`: the REFERENCE.md §6 prompt for Gemma-2, a short one for
    MiniLM). Written into the resolved config."""
    if cfg.default_system_prompt is None:
        cfg.default_system_prompt = getattr(text_encoder, "system_prompt", None) or DEFAULT_SYSTEM_PROMPT


def make_optimizer(model: nn.Module, lr: float, cfg: TrainConfig) -> torch.optim.Optimizer:
    o = cfg.optim
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, betas=o.betas,
                             eps=o.eps, weight_decay=o.weight_decay)


def stage_bounds(cfg: TrainConfig) -> list[tuple[int, int]]:
    """[start, end) global steps of each stage."""
    out, start = [], 0
    for s in cfg.stages:
        out.append((start, start + s.steps))
        start += s.steps
    return out


def export_defaults(cfg: TrainConfig) -> dict:
    """Generation defaults for the exported pipeline: the last stage's first video task (else its first
    task) gives size, frames and fps; `export_defaults` in the config adds or overrides any of them."""
    tasks = cfg.stages[-1].tasks
    task = next((t for t in tasks if t.media == "video"), tasks[0])
    frames = task.num_frames if task.num_frames % 8 == 0 else max(1, 8 * (task.num_frames // 8))
    return {"height": task.size, "width": task.size, "num_frames": frames, "fps": task.fps,
            **cfg.export_defaults}


def write_pipeline(folder: Path, cfg: TrainConfig, model_config: dict, weights: dict, text_encoder, vae) -> Path:
    """Write `weights` of the run's transformer as a pipeline folder with the run's generation defaults.

    Without a VAE (extracted latents and no encoders.vae) or with a text encoder that is not a
    `TextEncoder` (a stand-in), only FOLDER/transformer is written; assemble a pipeline later
    with `LuminaVideoPipeline.from_components`. Either way the folder appears whole or not at all.
    """
    from ..encoders import TextEncoder, VideoVAE
    from ..model import MultiScaleNextDiT, load_state_dict_checked
    from ..pipeline import LuminaVideoPipeline

    model = MultiScaleNextDiT.from_config(model_config, device="meta")
    load_state_dict_checked(model, weights, assign=True)
    if isinstance(text_encoder, TextEncoder) and isinstance(vae, VideoVAE):
        LuminaVideoPipeline(model, vae, text_encoder, defaults=export_defaults(cfg)).save_pretrained(folder)
    else:
        with files.atomic_dir(folder) as tmp:
            model.save_pretrained(tmp / "transformer")
    return folder


# ------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------

def train(cfg: TrainConfig, *, text_encoder=None, vae=None, dataset_factory=build_dataset,
          stop_at: int | None = None, checkpoint_hook=None, progress: bool = True) -> TrainResult:
    """Train (or continue training) the run described by `cfg`.

    text_encoder / vae: objects to use instead of loading `cfg.encoders` (encode(...) like
    lumina_video.encoders). dataset_factory(task, cfg, records, prompts) -> dataset.
    stop_at: stop after this global step (a checkpoint is written); a later call continues.
    """
    env = D.setup(force_group=cfg.distributed.fsdp == "always")
    try:
        result = _train(cfg, env, text_encoder, vae, dataset_factory, stop_at, checkpoint_hook, progress)
    except BaseException:
        D.teardown(env, clean=False)
        raise
    D.teardown(env)
    return result


def _train(cfg, env, text_encoder, vae, dataset_factory, stop_at, checkpoint_hook, progress) -> TrainResult:
    # -- 1. validate everything before training (or writing) anything -----------------------------
    records = {(i, t.name): task_records(t, cfg.seed, f"stages.{i}.tasks.{j}")
               for i, s in enumerate(cfg.stages) for j, t in enumerate(s.tasks)}
    model = build_model(cfg)
    check_model_fits_tasks(model, cfg)
    dtype = D.compute_dtype(cfg.distributed.precision, env.device)
    text_encoder = text_encoder if text_encoder is not None else load_text_encoder(cfg, env.device, dtype)
    on_the_fly = any(t.latents == "on_the_fly" for s in cfg.stages for t in s.tasks)
    vae = vae if vae is not None else load_vae(cfg, env.device, needed=on_the_fly)
    check_encoders_fit_model(model, text_encoder, vae)
    resolve_system_prompt(cfg, text_encoder)
    captions = CaptionEncoder(text_encoder, cfg.encoders.text_cache)

    # -- 2. the run folder holds the resolved config -------------------------------------------
    run_dir = Path(cfg.run_dir)
    config_text = dump_config(cfg)
    if env.is_main:
        files.write_text(run_dir / "config.yaml", config_text)

    # -- 3. model on the device, wrapped from outside; the EMA follows its (sharded) parameters ---
    shard = env.world > 1 or cfg.distributed.fsdp == "always"
    model = model.to(env.device).train()
    model = D.wrap_model(model, env, shard=shard, dtype=dtype, compile=cfg.distributed.compile,
                         activation_checkpointing=cfg.distributed.activation_checkpointing)
    ema = EMA(model, cfg.ema.decay)

    # -- 4. resume --------------------------------------------------------------------------------
    ckpts = CheckpointManager(run_dir / "checkpoints", env, cfg.checkpoint.keep_last, checkpoint_hook)
    ckpts.remove_partial()
    step, resume_state, resume_optim = 0, {}, None
    source = {"auto": ckpts.latest(), "never": None}.get(cfg.resume, cfg.resume)
    if source is not None:
        loaded = ckpts.load(source, tensors=env.is_main or not shard)  # sharded: the main process reads
        D.load_model_state_dict(model, loaded["model"])
        ema.load_full_state_dict(loaded["ema"])
        if loaded["rng"] is not None:
            set_rng_state(loaded["rng"])
        resume_state, resume_optim = loaded["state"], loaded["optimizer"]
        step = int(resume_state["step"])
    log = RunLog(run_dir, enabled=env.is_main, start_step=step, total_steps=cfg.total_steps,
                 progress=progress)
    if source is not None:
        log.echo(f"resumed from {source} at step {step}")
    last_ckpt = Path(source) if source is not None else None
    if stop_at is not None and step >= stop_at:
        log.close()
        return TrainResult(step, run_dir, None, last_ckpt, True, list(log.entries))

    def save(stage_index, stage, streams, optimizer) -> Path:
        """Every process calls this: whole state dicts are gathered, the main process writes them."""
        payload = dict(model=D.model_state_dict(model), ema=ema.full_state_dict(keep=env.is_main),
                       optimizer=D.optimizer_state_dict(model, optimizer))
        state = {"stage": stage_index, "stage_name": stage.name,
                 "data": {s.task.name: s.consumed for s in streams}}
        path = ckpts.save(step, **payload, state=state, config_text=config_text)
        log.plot()
        return path

    # -- 5. stages --------------------------------------------------------------------------------
    try:
        for stage_index, (stage, (begin, end)) in enumerate(zip(cfg.stages, stage_bounds(cfg))):
            if step >= end:
                continue  # finished before the resume point
            mid_stage = step > begin and resume_state.get("stage") == stage_index
            positions = resume_state.get("data", {}) if mid_stage else {}
            streams = [make_stream(t, cfg, env, records[(stage_index, t.name)], dataset_factory,
                                   positions.get(t.name, 0)) for t in stage.tasks]
            for s in streams:
                if sum(getattr(s.dataset, "skipped", {}).values()):
                    log.echo(f"task '{s.task.name}': {s.dataset.report()}")
            lr = stage.lr or cfg.optim.lr
            optimizer = make_optimizer(model, lr, cfg)  # fresh per stage; restored mid-stage
            if mid_stage and resume_optim is not None:
                D.load_optimizer_state_dict(model, optimizer, resume_optim)
            log.echo(f"stage '{stage.name}': steps {begin}..{end}, lr {lr:g}, tasks "
                     + ", ".join(f"{s.task.name} (batch {s.task.global_batch}, shift {s.task.shift:g})" for s in streams))

            while step < end:
                metrics = train_step(model, streams, cfg, env, step, captions, vae, dtype, shard)
                if not math.isfinite(metrics["loss"]) or not math.isfinite(metrics["grad_norm"]):
                    raise NonFiniteLossError(
                        f"non-finite loss at step {step + 1} (stage '{stage.name}'): "
                        + ", ".join(f"{k}={v}" for k, v in metrics.items() if k.startswith(("loss", "grad")))
                        + f"; the weights were not updated. Last good checkpoint: {last_ckpt or 'none'}"
                    )
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                if step % cfg.ema.every == 0:
                    ema.update(model)

                log.count(metrics.pop("samples"), metrics.pop("tokens"))
                log.step_done(metrics["loss"])
                if step % cfg.log_every == 0 or step == end:
                    samples_s, tokens_s = log.rates()
                    log.write(dict(step=step, stage=stage.name, **metrics, lr=lr, samples_per_s=samples_s,
                                   tokens_per_s=tokens_s, memory_mb=D.peak_memory_mb(env.device),
                                   time=time.time()))
                if step % cfg.checkpoint.every == 0 or step == end or step == stop_at:
                    last_ckpt = save(stage_index, stage, streams, optimizer)
                if step == stop_at:
                    log.echo(f"stopped at step {step} (stop_at); continue with the same command")
                    return TrainResult(step, run_dir, None, last_ckpt, True, list(log.entries))

        # -- 6. export the EMA weights --------------------------------------------------------------
        weights = ema.full_state_dict(keep=env.is_main)
        final = (write_pipeline(run_dir / "final", cfg, dict(model.config), weights, text_encoder, vae)
                 if env.is_main else None)
        D.barrier(env)
        log.plot()
        log.echo(f"done: {step} steps; EMA weights exported to {run_dir / 'final'}")
        return TrainResult(step, run_dir, final, last_ckpt, False, list(log.entries))
    finally:
        log.close()


def make_stream(task, cfg: TrainConfig, env, recs, dataset_factory, consumed: int) -> TaskStream:
    records, prompts = recs
    dataset = dataset_factory(task, cfg, records, prompts)
    order = GlobalBatchOrder(bucket_keys(dataset), task.global_batch, stable_seed(cfg.seed, task.name, "order"),
                             task.name)
    return TaskStream(task, dataset, order, env.rank, env.world, consumed, cfg.num_workers)


def train_step(model, streams: list[TaskStream], cfg: TrainConfig, env, step: int, captions: CaptionEncoder,
               vae, dtype, shard: bool) -> dict:
    """Forward/backward of every task's micro-batches; gradients accumulate; returns global metrics.

    Each micro-batch's loss is sum(item losses) / (this process's share of the task's batch); FSDP
    averages over processes, so the gradient is that of sum over tasks of mean over each global batch.
    """
    model.train()
    n = len(streams)
    sums = torch.zeros(n, dtype=torch.float64, device=env.device)  # stays on the device: no sync per micro-batch
    counts = torch.zeros(n, dtype=torch.float64)
    samples = tokens = 0
    shares = [s.next() for s in streams]
    plan = [(ti, mb) for ti, (s, share) in enumerate(zip(streams, shares)) for mb in s.micro_batches(share)]
    for k, (ti, (items, slots, weights)) in enumerate(plan):
        stream = streams[ti]
        D.set_gradient_sync(model, k == len(plan) - 1)  # reduce gradients once, after the last backward
        mb = prepare(items, slots, task=stream.task, cfg=cfg, step=step, captions=captions, vae=vae,
                     device=env.device)
        w = torch.tensor(weights, dtype=torch.float32, device=env.device)
        with D.autocast(env.device, dtype, shard):
            losses = flow_loss(model, mb, stream.task, cfg)  # (B,)
        ((losses * w).sum() / stream.share).backward()
        sums[ti] += (losses.detach() * w).sum().double()
        counts[ti] += sum(weights)
        samples += int(sum(weights))
        tokens += mb.tokens
    host = torch.cat([counts, torch.tensor([samples, tokens], dtype=torch.float64)])
    stats = D.all_reduce_sum(torch.cat([sums.cpu(), host]), env)
    task_loss = stats[:n] / stats[n:2 * n].clamp(min=1)
    params = [p for p in model.parameters() if p.grad is not None]
    clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip)) if params else 0.0
    metrics = {"loss": float(task_loss.sum())}
    metrics.update({f"loss/{s.task.name}": float(v) for s, v in zip(streams, task_loss)})
    metrics.update(grad_norm=grad_norm, samples=int(stats[2 * n]), tokens=int(stats[2 * n + 1]))
    return metrics
