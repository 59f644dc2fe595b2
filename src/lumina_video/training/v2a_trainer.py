"""Train the V2A denoiser (model/v2a.py) on the one training loop (loop.py), with its sync encoder.

    lumina-video train-v2a configs/v2a_tiny.yaml [key=value ...] [--stop-at N] [--no-progress]

Items come pre-extracted from the frozen encoders (v2a_data.py). Item `slot` of step s draws, from
`item_generator(seed, s, "v2a", slot)` in this order: the clip, the window offset, t, the noise and the
three drop flags, so a resumed run draws exactly what an uninterrupted one does (no data position):

    t      = time_shift(sample_t(mode), shift)          uniform or logit-normal (flow.py), t = 1 data
    x_t    = t x1 + (1 - t) x0,  u = x1 - x0             x1 the window's audio latents, x0 ~ N(0, I)
    drop_c ~ Bernoulli(p_c) for c in visual, text, sync  independently (the model's learned empty embeddings)
    sync   = SmallSyncEncoder(frames at 25/s)            trained jointly (in the optimizer), or frozen features
    loss   = mean over items of flow.item_loss(model(x_t, t, conditions, drops), u, vd_weight)
           + sync_target_weight * mean over the window's frames of (E_envelope + E_mel)
    E_envelope = mean over 2 of |head(sync) - envelope|^2   the window's own onset strength and loudness per
                 latent frame (v2a_data.audio_envelope)
    E_mel      = mean over M of |head(sync) - bands|^2      its log-mel bands (sync_target: envelope+mel only)
    E_harmonic = w (CE(f0 logits, f0 bin) / ln G + 10 mean over K-1 of |amplitudes - truth|^2)
                 + BCE(voicing logit, sounding)            with arch.sync_harmonics: the harmonic head's
                 targets (v2a_data.audio_harmonics); w = 1 on one-note frames, 0 elsewhere

Timbre swaps (`timbre_swap` p > 0, with the harmonic head and the sync encoder's timbre branch). After its drop
flags, item `slot` also draws u, a shape choice, a donor clip and its window offset. When u < p, its clip has
timbre swaps (one moving object, a synth-av dataset: v2a_data.py) and its sync condition is not dropped, the
item is heard with one of the two other shapes' timbres: its audio latents and harmonic targets are those of
the swap, the timbre channels of its sync features are the donor's (a one-object clip of that shape), and its
text is dropped (the caption names the shape). Frames, CLIP features and the rest of the sync features still
show the clip's own shape, so on swapped items only the timbre channels, through the harmonic map, tell the
overtones: the denoiser learns to play the map's overtones instead of the (colour, shape) pair it saw, which
held-out pairs need. The envelope targets stay the clip's own (the head reads its frames).
Then (`sync_flip`, `sync_flicker` > 0) it draws its sync frames' mirror and flicker (v2a_augment.py).

The auxiliary target (`sync_target_weight` > 0, a trained sync encoder only) gives the sync encoder a direct
signal of *when* the sound changes, read from the soundtrack alone (self-supervised, like an audio-visual sync
pretraining): without it the encoder learns only through the denoiser, which first learns to ignore it (the
demo recipe's pilot: no onsets at all after 1800 steps). `envelope+mel` also asks it for the sound's spectrum,
which the colour of the object sets (its note). The head (one linear layer) is not exported, unless
`arch.sync_envelope_bands` (B = the 64 mel bands, with `sync_target: envelope+mel`) makes it part of the V2A
model: then the model's own `sync_envelope` head is the one trained by this target (`return_envelope=True`),
and the denoiser reads its prediction per token row (model/v2a.py, 1b), so it is exported with the model.

`init_transformer` starts the V2A model from a V2ANextDiT folder (a previous run's RUN/final/transformer; the
preset must match), `encoders.sync` the sync encoder from a SmallSyncEncoder folder: a fine-tuning stage.
A start without the sync envelope head may be loaded into a model with one: the head and its (zero-initialised)
token embedder are the only weights it lacks, so the model starts as the same function. A start with the
envelope head but not the harmonic one (`arch.sync_harmonics`) keeps its token embedder's columns: onset
strength and loudness as they were, the bands' for the harmonic map that replaces them (both are log energies
per band, the map in [0, 2]), the voicing's zero; and
`encoders.sync` without a timbre branch gets a new one (`arch.sync_timbre_dim`, encoders/sync.py).

AdamW over the V2A model and (when trained) the sync encoder, gradient clipping, and an EMA of both with the
warm-up decay min(ema_decay, (1 + step) / (10 + step)). The learning rate is `lr`, or with `lr_decay_from` > 0
falls linearly from that step to `lr_final` at the last one (a function of the step: resume stays exact).
`distributed.precision` bf16 (the default on CUDA; on a CPU with AMX it is about 1.3x faster) runs the sync
encoder, the model and its heads under torch.autocast; weights, optimizer, EMA and losses stay fp32.
RUN/final holds the EMA weights: `transformer/` (a V2ANextDiT folder), `sync_encoder/` (a SmallSyncEncoder
folder) and `v2a_components.json` naming the audio VAE, CLIP and text encoder and the rates, so a pipeline can
be assembled from them.

Several processes (torchrun, or a group already initialised, e.g. by torch.multiprocessing.spawn; or one
with `distributed.fsdp: always`): the V2A model is wrapped by `distributed.wrap_model` (FSDP2 per block of
`model.layers`, then the root; fp32 parameters) and the trained sync encoder by one `fully_shard` on its root
(it has no block list). Rank r takes slots r, r + W, ... of the global batch of B items (the items are keyed
by (seed, step, slot), so the ranks' union is one process's batch) and backpropagates
    loss_r = (W / B) * sum over its slots of item_loss
FSDP averages gradients over the W processes, so the gradient is (1 / B) * sum over all B items: the one-process
gradient. Checkpoints hold whole tensors (distributed.model_state_dict / optimizer_state_dict, keyed by
parameter name), written by the main process, so they resume in any number of processes.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch import nn

from .. import files
from ..audio.vae import AudioVAE
from ..configs import ConfigError
from ..encoders.sync import SmallSyncConfig, SmallSyncEncoder
from ..flow import interpolate, item_loss, sample_t, target_velocity, time_shift
from ..model.v2a_harmonics import F0_BINS, f0_bin, split_outputs
from ..model.v2a_presets import build_v2a_model
from . import distributed
from .command import add_training_arguments, run_training_command
from .data import item_generator
from .distributed import DistEnv
from .ema import EMA
from .loop import Stage, TrainState, apply_hyperparameters, run_one_process
from .v2a_augment import augment_sync
from .v2a_config import (
    COMPONENTS_NAME,
    DROPS,
    ENVELOPE_KEYS,
    SYNC_TARGETS,
    V2ATrainConfig,
    load_v2a_config,
    lr_at,
)
from .v2a_data import Encoders, V2AClips, collate


def build_encoders(cfg: V2ATrainConfig) -> Encoders:
    """The frozen audio VAE, CLIP and text encoder (eval, no gradients) and the sync encoder."""
    from ..encoders.text import TextEncoder
    from ..encoders.visual import CLIPFrameEncoder, tiny_clip_vision_config

    e, a = cfg.encoders, cfg.arch
    vae = AudioVAE.from_pretrained(e.audio_vae)
    if e.clip == "tiny-random":
        clip = CLIPFrameEncoder.from_config(tiny_clip_vision_config(), seed=cfg.seed)
    else:
        clip = CLIPFrameEncoder.from_pretrained(e.clip)
    text = TextEncoder.from_pretrained(e.text or None)
    if e.sync:
        sync = SmallSyncEncoder.from_pretrained(e.sync)
        if a.sync_timbre_dim and not sync.config.timbre_dim:  # a start without the timbre branch gets a new one
            sync = sync.with_timbre_branch(a.sync_timbre_dim, seed=cfg.seed + 2)
        if sync.config.timbre_dim != a.sync_timbre_dim:
            raise ConfigError(f"config key 'encoders.sync': {e.sync} has a timbre branch of "
                              f"{sync.config.timbre_dim} channels, arch.sync_timbre_dim is {a.sync_timbre_dim}")
    else:
        sync_cfg = SmallSyncConfig(size=a.sync_size, channels=tuple(a.sync_channels), width=a.sync_width,
                                   dim=a.sync_dim, timbre_dim=a.sync_timbre_dim)
        sync = SmallSyncEncoder.from_config(sync_cfg, seed=cfg.seed)
    for m in (vae, clip, text):
        m.eval().requires_grad_(False)
    sync.train(e.train_sync).requires_grad_(e.train_sync)
    return Encoders(vae, clip, text, sync, e.train_sync)


def build_v2a(cfg: V2ATrainConfig, enc: Encoders):
    """The V2A model sized to the encoders' widths (seeded by cfg.seed)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build_v2a_model(cfg.arch.preset, in_channels=enc.vae.latent_channels,
                                latent_rate=enc.vae.latent_rate, patch_time=cfg.arch.patch_time,
                                patch_freq=cfg.arch.patch_freq, visual_feat_dim=enc.clip.dim,
                                text_feat_dim=enc.text.dim, sync_feat_dim=enc.sync.dim - cfg.arch.sync_timbre_dim,
                                sync_envelope_bands=cfg.arch.sync_envelope_bands,
                                sync_harmonics=cfg.arch.sync_harmonics, sync_timbre_dim=cfg.arch.sync_timbre_dim)
    return model


def load_init_transformer(model, cfg: V2ATrainConfig) -> None:
    """cfg.init_transformer's weights into `model` (a fine-tuning stage's start); ConfigError when they do not fit."""
    from ..model.v2a import V2ANextDiT

    start = V2ANextDiT.from_pretrained(cfg.init_transformer).state_dict()
    key, old = "envelope_embedder.weight", None
    here = model.state_dict().get(key)
    if key in start and here is not None and start[key].shape != here.shape and start[key].shape[1] >= 2:
        old = start.pop(key)  # a start with the envelope head but not the harmonic one: its token input differs
    try:  # strict=False still refuses mis-shaped weights; only the sync heads may be missing
        missing, unexpected = model.load_state_dict(start, strict=False)
        fits = not unexpected and all(k.startswith(ENVELOPE_KEYS) for k in missing)
    except RuntimeError:
        fits = False
    if fits and old is not None:
        w = model.envelope_embedder.weight
        with torch.no_grad():  # onset strength, loudness keep their columns, the map the bands' (voicing: 0)
            w.zero_()[:, :2] = old[:, :2].to(w.dtype)
            if old.shape[1] - 2 == w.shape[1] - 3:
                w[:, 3:] = old[:, 2:].to(w.dtype)
    if not fits:
        raise ConfigError(f"config key 'init_transformer': {cfg.init_transformer} does not fit the model of "
                          f"arch.preset {cfg.arch.preset!r} and these encoders")


def harmonic_error(heads: dict, target: torch.Tensor) -> torch.Tensor:
    """E_harmonic per frame (b, N) of the harmonic head's outputs against v2a_data.audio_harmonics' targets
    (b, N, 3 + K - 1) (module docstring): CE(f0) / ln G and |amplitudes - truth|^2 * 10 on one-note frames,
    BCE(voicing, sounding) on every frame."""
    sounding, weight, f0, ratios = target[..., 0], target[..., 1], target[..., 2], target[..., 3:]
    ce = nn.functional.cross_entropy(heads["f0_logits"].flatten(0, 1).float(), f0_bin(f0.flatten()).to(f0.device),
                                     reduction="none").view_as(f0)
    bce = nn.functional.binary_cross_entropy_with_logits(heads["voicing_logit"].float(), sounding, reduction="none")
    amp = (heads["ratios"].float() - ratios).pow(2).mean(-1)
    return weight * (ce / math.log(F0_BINS) + 10 * amp) + bce


class V2AFamily:
    """The V2A model (+ its sync encoder) as a model family of the one loop: one stage, one batch a step.

    `shard`: FSDP2 over the process group of `env` (module docstring); else one plain process on the CPU."""

    def __init__(self, cfg: V2ATrainConfig, clips: V2AClips, enc: Encoders, env: DistEnv | None = None,
                 shard: bool = False):
        self.cfg, self.clips, self.enc = cfg, clips, enc
        self.env, self.shard = env or DistEnv(), shard
        if cfg.batch_size < self.env.world:
            raise ValueError(f"batch_size {cfg.batch_size} is smaller than the {self.env.world} processes")
        self.device = self.env.device if shard else torch.device("cpu")
        self.dtype = distributed.compute_dtype(cfg.distributed.precision, self.device)
        self.stages = [Stage("v2a", cfg.steps, cfg.lr)]
        self.model = build_v2a(cfg, enc).train()
        if cfg.init_transformer:
            load_init_transformer(self.model, cfg)  # a resumed run's checkpoint then replaces these weights
        self.sync_head = None  # the trainer's own head; the model's sync_envelope when it has one
        self.model_head = bool(cfg.arch.sync_envelope_bands)
        if cfg.sync_target_weight > 0 and not self.model_head:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed + 1)
                channels = SYNC_TARGETS[cfg.sync_target] or clips.clips[0].envelope.shape[-1]
                self.sync_head = nn.Linear(enc.sync.dim, channels)  # sync -> onset strength, loudness(, bands)
        if shard:
            self._shard()
        parts = {"model": self.model, "sync": enc.sync}
        if self.sync_head is not None:
            parts["sync_head"] = self.sync_head
        self.module = nn.ModuleDict(parts)  # what checkpoints hold
        self.params = [p for p in self.module.parameters() if p.requires_grad]
        self.ema = EMA(self.module, cfg.ema_decay)  # follows the (sharded) parameters
        self.optimizer = torch.optim.AdamW(self.params, **self.hyperparameters())
        self.report: dict = {}

    def data_report(self) -> str:
        return self.clips.report()

    def _shard(self) -> None:
        """FSDP2: the V2A model per block + root (wrap_model), the trained sync encoder on its root."""
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

        self.model = distributed.wrap_model(self.model.to(self.device), self.env, shard=True, dtype=torch.float32)
        mesh = init_device_mesh(self.device.type, (self.env.world,))  # for the modules sharded on their root
        if self.enc.train_sync:
            self.enc.sync = fully_shard(self.enc.sync.to(self.device), mesh=mesh)
            if self.cfg.timbre_swap:
                register_fsdp_forward_method(self.enc.sync, "timbre")  # the donors' timbre branch (conditions)
        if self.sync_head is not None:
            self.sync_head = fully_shard(self.sync_head.to(self.device), mesh=mesh)

    def hyperparameters(self) -> dict:
        return dict(lr=self.cfg.lr, betas=(0.9, 0.99), weight_decay=self.cfg.weight_decay)

    def start_stage(self, index: int, stage: Stage, state: TrainState, optimizer_state: dict | None) -> None:
        if optimizer_state is not None:
            distributed.load_optimizer_state_dict(self.module, self.optimizer, optimizer_state)
            apply_hyperparameters(self.optimizer, **self.hyperparameters())

    def slots(self) -> range:
        """This process's slots of the global batch: rank, rank + W, ..."""
        return range(self.env.rank, self.cfg.batch_size, self.env.world)

    def draw(self, step: int) -> tuple[dict, torch.Tensor, torch.Tensor, dict]:
        """(batch of windows, t (b,), noise (b, C, T, M), drop flags {name: (b,) bool}) of this process's
        b slots of step `step`."""
        cfg, items, ts, noise, drops = self.cfg, [], [], [], []
        for slot in self.slots():
            g = item_generator(cfg.seed, step, "v2a", slot)
            i = int(torch.randint(len(self.clips), (1,), generator=g))
            offset = int(torch.randint(self.clips.offsets(i), (1,), generator=g))
            items.append(self.clips.window(i, offset))
            ts.append(sample_t(1, cfg.t_sampling, mean=cfg.t_mean, std=cfg.t_std, generator=g))
            noise.append(torch.randn(items[-1]["latent"].shape, generator=g))
            drops.append(torch.rand(len(DROPS), generator=g) < torch.tensor([getattr(cfg, f"drop_{n}") for n in DROPS]))
            if cfg.timbre_swap:
                swap = self.clips.draw_swap(i, g, cfg.timbre_swap, bool(drops[-1][DROPS.index("sync")]))
                if swap is not None:
                    items[-1] = self.clips.window(i, offset, swap=swap)
                    drops[-1][DROPS.index("text")] = True  # the caption names the shape the sound no longer has
                else:
                    items[-1]["timbre_sync"] = items[-1]["sync"]
                items[-1]["swapped"] = torch.tensor(swap is not None)
            if cfg.sync_flip or cfg.sync_flicker:  # frames only (a trained sync encoder): v2a_augment.py
                items[-1]["sync"] = augment_sync(items[-1]["sync"], g, cfg.sync_flip, cfg.sync_flicker)
        flags = torch.stack(drops)  # (b, 3)
        t = time_shift(torch.cat(ts), cfg.shift)
        return collate(items), t, torch.stack(noise), {f"drop_{n}": flags[:, k] for k, n in enumerate(DROPS)}

    def conditions(self, batch: dict) -> dict:
        """The model's keyword inputs of a collated batch: sync frames through the (trained) sync encoder; a
        swapped item's timbre channels from its donor's frames (module docstring)."""
        cond = {k: v for k, v in batch.items()
                if k not in ("latent", "envelope", "harmonics", "timbre_sync", "swapped")}
        if self.enc.train_sync:
            cond["sync"] = self.enc.sync(cond["sync"])  # (B, N, C, S, S) -> (B, N, Ds)
        swapped = batch.get("swapped")
        if swapped is not None and bool(swapped.any()):
            td = self.cfg.arch.sync_timbre_dim
            donor = batch["timbre_sync"][swapped]
            donor = self.enc.sync.timbre(donor) if self.enc.train_sync else donor[..., -td:]
            timbre = cond["sync"][..., -td:].clone()
            timbre[swapped] = donor.to(timbre.dtype)
            cond["sync"] = torch.cat([cond["sync"][..., :-td], timbre], dim=-1)
        return cond

    def on_device(self, d: dict) -> dict:
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in d.items()}

    def forward_backward(self, state: TrainState) -> dict:
        """Gradient of the mean item loss over the global batch (module docstring); metrics are global."""
        batch, t, x0, drops = self.draw(state.step)
        batch, drops = self.on_device(batch), self.on_device(drops)
        t, x0 = t.to(self.device), x0.to(self.device)
        x1 = batch["latent"]
        with distributed.autocast(self.device, self.dtype, False):  # bf16 compute; fp32 weights (FSDP too), losses
            cond = self.conditions(batch)
            if self.model_head:
                pred, envelope = self.model(interpolate(x0, x1, t), t, **cond, **drops, return_envelope=True)
            else:
                pred = self.model(interpolate(x0, x1, t), t, **cond, **drops)
                envelope = self.sync_head(cond["sync"]) if self.sync_head is not None else None
        pred = pred.float()
        envelope = envelope.float() if envelope is not None else None
        losses = item_loss(pred, target_velocity(x0, x1), self.cfg.vd_weight)  # (b,)
        sums = [losses]
        if envelope is not None:
            mask = batch["sync_mask"].float()  # (b, N): frames of the clip, not padding
            heads = split_outputs(envelope, self.cfg.arch.sync_envelope_bands, self.cfg.arch.sync_harmonics)
            err = (heads["envelope"] - batch["envelope"][..., :heads["envelope"].shape[-1]]).pow(2)
            err = err[..., :2].mean(-1) + (err[..., 2:].mean(-1) if err.shape[-1] > 2 else 0)  # (b, N)
            if "f0_logits" in heads:
                err = err + harmonic_error(heads, batch["harmonics"])
            aux = (err * mask).sum(1) / mask.sum(1).clamp(min=1)
            losses = losses + self.cfg.sync_target_weight * aux
            sums = [losses, aux]
        self.optimizer.zero_grad(set_to_none=True)
        (losses.sum() * (self.env.world / self.cfg.batch_size)).backward()
        totals = distributed.all_reduce_sum(torch.stack([x.detach().sum() for x in sums]).double().cpu(), self.env)
        gnorm = float(torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip))
        metrics = {"loss/envelope": float(totals[1]) / self.cfg.batch_size} if len(sums) > 1 else {}
        return {"loss": float(totals[0]) / self.cfg.batch_size, **metrics, "grad_norm": gnorm,
                "lr": lr_at(self.cfg, state.step), "samples": self.cfg.batch_size}

    def update(self, state: TrainState) -> None:
        apply_hyperparameters(self.optimizer, lr=lr_at(self.cfg, state.step))
        self.optimizer.step()
        self.ema.update(self.module, decay=min(self.cfg.ema_decay, (1 + state.step) / (10 + state.step)))

    def data_position(self) -> dict:
        return {}  # items are keyed by step

    def payload(self) -> dict:
        """Whole tensors (collective under FSDP; the main process's are written)."""
        return dict(model=distributed.model_state_dict(self.module),
                    ema=self.ema.full_state_dict(keep=self.env.is_main),
                    optimizer=distributed.optimizer_state_dict(self.module, self.optimizer))

    def load_payload(self, loaded: dict) -> None:
        distributed.load_model_state_dict(self.module, loaded["model"])
        self.ema.load_full_state_dict(loaded["ema"])

    def export(self, run_dir: Path) -> Path:
        """The EMA weights into the modules, then RUN/final (module docstring), written by the main process."""
        averaged = self.ema.full_state_dict(keep=self.env.is_main)
        distributed.load_model_state_dict(self.module, averaged)
        self.module.eval()
        final = run_dir / "final"
        if self.env.is_main:
            self.write_final(final, averaged)
        distributed.barrier(self.env)
        return final

    def write_final(self, final: Path, averaged: dict) -> None:
        """`transformer/`, `sync_encoder/` (plain modules holding `averaged`) and the components file."""
        model, sync = self.model, self.enc.sync
        if self.shard:
            model = build_v2a(self.cfg, self.enc)
            sync = SmallSyncEncoder.from_config(self.enc.sync.config)
            for prefix, m in (("model.", model), ("sync.", sync)):
                m.load_state_dict({k[len(prefix):]: v for k, v in averaged.items() if k.startswith(prefix)})
        model.save_pretrained(final / "transformer")
        sync.save_pretrained(final / "sync_encoder")
        e = self.cfg.encoders
        files.write_json(final / COMPONENTS_NAME, {
            "audio_vae": e.audio_vae, "clip": e.clip, "text_encoder": e.text or "bundled MiniLM",
            "transformer": "transformer", "sync_encoder": "sync_encoder", "clip_rate": self.cfg.data.clip_rate,
            "window_seconds": self.cfg.data.window_seconds, "sync_trained": e.train_sync})


def train_v2a(cfg: V2ATrainConfig, progress: bool = True, stop_at: int | None = None) -> dict:
    """Run (or resume) a V2A training, in one process or under a process group (module docstring); returns a
    summary. The family is `summary["family"]`."""
    env = distributed.setup(force_group=cfg.distributed.fsdp == "always")
    try:
        torch.manual_seed(cfg.seed)
        enc = build_encoders(cfg)
        shard = cfg.distributed.fsdp != "never" and (env.world > 1 or cfg.distributed.fsdp == "always")
        clips = V2AClips(cfg.data, enc, harmonics=cfg.arch.sync_harmonics, swaps=cfg.timbre_swap > 0)
        family = V2AFamily(cfg, clips, enc, env, shard)
        out = run_one_process(family, cfg, stop_at, progress, "train-v2a", env)
    except BaseException:
        distributed.teardown(env, clean=False)
        raise
    distributed.teardown(env)
    return {**out, "family": family}


def add_cli_arguments(p: argparse.ArgumentParser) -> None:
    add_training_arguments(p, "YAML config (see V2ATrainConfig), e.g. configs/v2a_tiny.yaml",
                           "steps=500 data.manifest=FILE")


def cli_main(args) -> int:
    return run_training_command("train-v2a", train_v2a, load_v2a_config(args.config, args.overrides), args,
                                lambda out: f"train-v2a: {out['step']} steps -> {out['run_dir']}/final")
