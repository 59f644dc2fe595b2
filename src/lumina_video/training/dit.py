"""The DiT as a model family of the one training loop (loop.py): its data streams, its optimizer step
over every task of a stage, its checkpoint payload and its export.

One optimizer step trains *every* task of the current stage (e.g. image-1x2, video-1x2, video-2x2,
video-2x4): each task draws its own global batch, splits this process's share into micro-batches,
and backpropagates its flow-matching loss with its own time shift; all gradients add up into ONE
AdamW step (REFERENCE.md §5).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..model.flops import train_flops_per_item
from . import distributed
from .build import make_optimizer, optimizer_settings
from .config import TrainConfig
from .data import GlobalBatchOrder, TaskStream, bucket_keys, stable_seed
from .ema import EMA
from .export import write_pipeline
from .loop import Stage, TrainState, apply_hyperparameters
from .metrics import RunLog
from .step import CaptionEncoder, flow_loss, prepare


class DiTFamily:
    """The Multi-scale Next-DiT's part of a run: `model` is already wrapped (FSDP, AC, compile)."""

    def __init__(self, cfg: TrainConfig, env, model, *, captions: CaptionEncoder, text_encoder, vae, records: dict,
                 dataset_factory, dtype: torch.dtype, shard: bool, log: RunLog):
        self.cfg, self.env, self.model = cfg, env, model
        self.captions, self.text_encoder, self.vae = captions, text_encoder, vae
        self.records, self.dataset_factory = records, dataset_factory
        self.dtype, self.shard, self.log = dtype, shard, log
        self.ema = EMA(model, cfg.ema.decay)  # follows the (sharded) parameters
        self.stages = [Stage(s.name, s.steps, s.lr or cfg.optim.lr) for s in cfg.stages]
        self.streams: list[TaskStream] = []
        self.optimizer: torch.optim.Optimizer | None = None

    def start_stage(self, index: int, stage: Stage, state: TrainState, optimizer_state: dict | None) -> None:
        tasks = self.cfg.stages[index].tasks
        self.streams = [make_stream(t, self.cfg, self.env, self.records[(index, t.name)], self.dataset_factory,
                                    state.data.get(t.name, 0)) for t in tasks]
        for s in self.streams:
            if sum(getattr(s.dataset, "skipped", {}).values()):
                self.log.echo(f"task '{s.task.name}': {s.dataset.report()}")
        self.optimizer = make_optimizer(self.model, stage.lr, self.cfg)  # fresh per stage; restored mid-stage
        if optimizer_state is not None:
            distributed.load_optimizer_state_dict(self.model, self.optimizer, optimizer_state)
            apply_hyperparameters(self.optimizer, **optimizer_settings(self.cfg, stage.lr))
        self.log.echo(f"stage '{stage.name}': steps {sum(s.steps for s in self.stages[:index])}.."
                      f"{sum(s.steps for s in self.stages[:index + 1])}, lr {stage.lr:g}, tasks "
                      + ", ".join(f"{s.task.name} (batch {s.task.global_batch}, shift {s.task.shift:g})"
                                  for s in self.streams))

    def forward_backward(self, state: TrainState) -> dict:
        return train_step(self.model, self.streams, self.cfg, self.env, state.step, self.captions, self.vae,
                          self.dtype, self.shard)

    def update(self, state: TrainState) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if (state.step + 1) % self.cfg.ema.every == 0:
            self.ema.update(self.model)

    def data_position(self) -> dict:
        return {s.task.name: s.consumed for s in self.streams}

    def payload(self) -> dict:
        return dict(model=distributed.model_state_dict(self.model), ema=self.ema.full_state_dict(keep=self.env.is_main),
                    optimizer=distributed.optimizer_state_dict(self.model, self.optimizer))

    def load_payload(self, loaded: dict) -> None:
        distributed.load_model_state_dict(self.model, loaded["model"])
        self.ema.load_full_state_dict(loaded["ema"])

    def export(self, run_dir: Path) -> Path | None:
        """The EMA weights as RUN/final (a pipeline folder when the run has a VAE)."""
        weights = self.ema.full_state_dict(keep=self.env.is_main)
        final = (write_pipeline(run_dir / "final", self.cfg, dict(self.model.config), weights, self.text_encoder,
                                self.vae) if self.env.is_main else None)
        distributed.barrier(self.env)
        self.log.echo(f"done: {sum(s.steps for s in self.stages)} steps; EMA weights exported to {run_dir / 'final'}")
        return final


def make_stream(task, cfg: TrainConfig, env, recs, dataset_factory, consumed: int) -> TaskStream:
    records, prompts = recs
    dataset = dataset_factory(task, cfg, records, prompts)
    order = GlobalBatchOrder(bucket_keys(dataset), task.global_batch, stable_seed(cfg.seed, task.name, "order"),
                             task.name)
    return TaskStream(task, dataset, order, env.dp_rank, env.dp_world, consumed, cfg.num_workers)


def train_step(model, streams: list[TaskStream], cfg: TrainConfig, env, step: int, captions: CaptionEncoder,
               vae, dtype, shard: bool) -> dict:
    """Forward/backward of every task's micro-batches; gradients accumulate; returns global metrics.

    Each micro-batch's loss is sum(item losses) / (this process's share of the task's batch); FSDP
    averages over processes, so the gradient is that of sum over tasks of mean over each global batch.
    With sequence parallelism the N ranks of a group share one share: each computes the same loss X
    (the output is gathered), their gradients add up to N dX/dθ and FSDP's average over W = dp N
    processes leaves the mean over the dp groups, as above. The logged sums count group rank 0 only.
    """
    model.train()
    n = len(streams)
    sums = torch.zeros(n, dtype=torch.float64, device=env.device)  # stays on the device: no sync per micro-batch
    counts = torch.zeros(n, dtype=torch.float64)
    samples = tokens = 0
    flops = 0.0  # model FLOPs of the step's forward + backward passes (model/flops.py)
    shares = [s.next() for s in streams]
    plan = [(ti, mb) for ti, (s, share) in enumerate(zip(streams, shares)) for mb in s.micro_batches(share)]
    for k, (ti, (items, slots, weights)) in enumerate(plan):
        stream = streams[ti]
        distributed.set_gradient_sync(model, k == len(plan) - 1)  # reduce gradients once, after the last backward
        mb = prepare(items, slots, task=stream.task, cfg=cfg, step=step, captions=captions, vae=vae,
                     device=env.device)
        w = torch.tensor(weights, dtype=torch.float32, device=env.device)
        with distributed.autocast(env.device, dtype, shard):
            losses = flow_loss(model, mb, stream.task, cfg)  # (B,)
        ((losses * w).sum() / stream.share).backward()
        sums[ti] += (losses.detach() * w).sum().double()
        counts[ti] += sum(weights)
        samples += int(sum(weights))
        tokens += mb.tokens
        flops += step_flops(model.config, mb, stream.task)
    host = torch.cat([counts, torch.tensor([samples, tokens, flops], dtype=torch.float64)])
    counted = float(env.sp_rank == 0)  # one copy of each sequence-parallel group's numbers
    stats = distributed.all_reduce_sum(torch.cat([sums.cpu(), host]) * counted, env)
    task_loss = stats[:n] / stats[n:2 * n].clamp(min=1)
    params = [p for p in model.parameters() if p.grad is not None]
    clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip)) if params else 0.0
    metrics = {"loss": float(task_loss.sum())}
    metrics.update({f"loss/{s.task.name}": float(v) for s, v in zip(streams, task_loss)})
    metrics.update(grad_norm=grad_norm, samples=int(stats[2 * n]), tokens=int(stats[2 * n + 1]),
                   flops=float(stats[2 * n + 2]))
    return metrics


def step_flops(model_config, mb, task) -> float:
    """Training FLOPs of one micro-batch: per item, with its own token and caption counts."""
    cap_lens = mb.cap_mask.sum(dim=1).tolist()
    return sum(train_flops_per_item(model_config, n, int(c), patch=(task.pt, task.p))
               for n, c in zip(mb.item_tokens, cap_lens))
