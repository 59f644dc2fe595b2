"""Train a small CogVideoX-architecture VAE, for models that cannot use the released one (the bundled
demo model: a tiny `AutoencoderKLCogVideoX` trained here on the synthetic dataset).

    lumina-video train-vae configs/demo_vae.yaml [key=value ...]

The loss is the usual one for a KL autoencoder, on pixels in [-1, 1]:
    z ~ q(z | x) (reparameterised),  x' = decode(z)
    loss = mean|x' - x| + mse_weight * mean(x' - x)^2 + kl_weight * KL(q(z | x) || N(0, I))
(the reconstruction terms are means over pixel values, the KL a sum over an item's latent values).
The EMA warms up: decay min(ema_decay, (1 + step) / (10 + step)), so the random init fades fast.
Images (1 frame) and clips (8m+1 frames) are batched by shape; each batch is a random crop of
`crop` x `crop` pixels (the VAE is convolutional, so it is trained on crops and used at any size).
`train_part: decoder` (with `init_from`) fine-tunes only the decoder: the encoder stays bit-identical,
so latents extracted with the `init_from` VAE, and a diffusion model trained on them, stay valid.
One process; checkpoints, EMA, logs and resume as in the DiT trainer. The EMA weights are exported to
RUN/final as a `VideoVAE` folder, with a reconstruction report (PSNR per held-out item, a PNG grid).
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .. import files
from ..configs import ConfigError, at_least_one, load_yaml
from ..data.buckets import BucketBatchSampler
from ..data.dataset import MediaDataset, collate
from ..data.manifest import read_manifest
from ..encoders.vae import VideoVAE, tiny_config
from .command import add_training_arguments, run_training_command
from .ema import EMA
from .loop import (
    Stage,
    TrainState,
    apply_hyperparameters,
    run_one_process,
)


@dataclass
class VAEArchConfig:
    """The `tiny_config` of encoders/vae.py: CogVideoX blocks, 8x spatial / 4x temporal compression."""
    latent_channels: int = 16
    channels: int = 32
    layers_per_block: int = 1
    norm_num_groups: int = 8


@dataclass
class VAETrainConfig:
    run_dir: str = "runs/vae"
    seed: int = 0
    manifest: str = ""
    arch: VAEArchConfig = field(default_factory=VAEArchConfig)
    init_from: str | None = None      # a VideoVAE folder to continue from (its architecture replaces arch)
    # "all", or "decoder": the encoder (and its quant conv) frozen, so latents already extracted with
    # init_from stay exact and a diffusion model trained on them needs no retraining
    train_part: str = "all"
    size: int = 128                   # bucket size the media are resized to
    crop: int = 64                    # random crop (multiple of 8) that is actually trained
    fps: float = 8.0
    num_frames: int = 9               # 8m+1 frames per clip (round trips through the VAE's frame rules)
    batch_size: int = 4
    steps: int = 2000
    lr: float = 3e-4
    kl_weight: float = 1e-6
    mse_weight: float = 1.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    checkpoint_every: int = 250
    keep_last: int = 2
    log_every: int = 25
    holdout: int = 8                  # items kept out of training for the final report


def load_vae_config(path=None, overrides=()) -> VAETrainConfig:
    """Read a YAML file (or none: all defaults) with `key=value` overrides, then `check_vae_config`."""
    cfg = load_yaml(VAETrainConfig, path, overrides)
    check_vae_config(cfg)
    return cfg


def check_vae_config(cfg: VAETrainConfig) -> None:
    """Raise ConfigError naming the first value that cannot be trained. Changes nothing."""
    if cfg.crop % 8 or cfg.crop < 16 or cfg.crop > cfg.size:
        raise ConfigError(f"crop must be a multiple of 8 in [16, size={cfg.size}], got {cfg.crop}")
    if (cfg.num_frames - 1) % 8:
        raise ConfigError(f"num_frames must be 1 or 8m+1 (9, 17, ...): the VAE encodes 4k+1 frames to k+1 latent "
                          f"frames and decodes T of them back to 4T-3 frames only when T is odd; got {cfg.num_frames}")
    if cfg.train_part not in ("all", "decoder"):
        raise ConfigError(f"train_part must be 'all' or 'decoder', got {cfg.train_part!r}")
    if cfg.train_part == "decoder" and not cfg.init_from:
        raise ConfigError("train_part: decoder fine-tunes the decoder of an existing VAE: set init_from to its folder")
    at_least_one(cfg, ("steps", "batch_size", "checkpoint_every", "keep_last", "log_every"))
    if not cfg.manifest or not Path(cfg.manifest).is_file():
        raise ConfigError(f"manifest {cfg.manifest!r} does not exist (make one with `lumina-video synth`)")


def arch_of(vae) -> VAEArchConfig:
    """The `VAEArchConfig` of a loaded `VideoVAE` (from its diffusers config)."""
    c = vae.vae.config
    return VAEArchConfig(latent_channels=int(c.latent_channels), channels=int(c.block_out_channels[0]),
                         layers_per_block=int(c.layers_per_block), norm_num_groups=int(c.norm_num_groups))


def random_crop(x: torch.Tensor, crop: int, gen: torch.Generator) -> torch.Tensor:
    """(B, 3, F, H, W) -> (B, 3, F, crop, crop), the same window for the whole batch."""
    h, w = x.shape[-2:]
    top = int(torch.randint(0, h - crop + 1, (1,), generator=gen)) if h > crop else 0
    left = int(torch.randint(0, w - crop + 1, (1,), generator=gen)) if w > crop else 0
    return x[..., top:top + min(crop, h), left:left + min(crop, w)]


def vae_loss(ae, x: torch.Tensor, cfg: VAETrainConfig) -> tuple[torch.Tensor, dict]:
    """The loss of the module docstring for pixels x (B, 3, F, H, W); returns (loss, parts)."""
    posterior = ae.encode(x).latent_dist
    recon = ae.decode(posterior.sample()).sample
    l1 = (recon - x).abs().mean()
    mse = (recon - x).pow(2).mean()
    kl = posterior.kl().mean()  # summed over an item's latent values, averaged over the batch
    loss = l1 + cfg.mse_weight * mse + cfg.kl_weight * kl
    return loss, {"l1": l1.item(), "mse": mse.item(), "kl": kl.item()}


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of pixels in [-1, 1]."""
    mse = float(((a.clamp(-1, 1) - b) / 2).pow(2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


class VAEFamily:
    """The VAE as a model family of the one training loop: one stage, one batch per step."""

    def __init__(self, cfg: VAETrainConfig, init: VideoVAE | None):
        self.cfg = cfg
        self.stages = [Stage("vae", cfg.steps, cfg.lr)]
        self.data = VAEData(cfg)
        self.vae = init if init is not None else VideoVAE.from_config(tiny_config(**vars(cfg.arch)))
        self.ae = self.vae.vae.train().requires_grad_(True)
        self.module = self.ae  # what the loop checks a checkpoint's shapes against
        if cfg.train_part == "decoder":
            for name in ("encoder", "quant_conv"):
                if getattr(self.ae, name, None) is not None:
                    getattr(self.ae, name).eval().requires_grad_(False)
        self.trainable = [p for p in self.ae.parameters() if p.requires_grad]
        # the EMA of a frozen parameter stays bit-identical to it (lerp towards an equal value is exact)
        self.ema = EMA(self.ae, cfg.ema_decay)
        self.optimizer = torch.optim.AdamW(self.trainable, **self.hyperparameters())
        self.report: dict = {}

    def hyperparameters(self) -> dict:
        return dict(lr=self.cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)

    def start_stage(self, index: int, stage: Stage, state: TrainState, optimizer_state: dict | None) -> None:
        self.data.restore(state.data)
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)
            apply_hyperparameters(self.optimizer, **self.hyperparameters())

    def forward_backward(self, state: TrainState) -> dict:
        x = self.data.next_batch()
        loss, parts = vae_loss(self.ae, x, self.cfg)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(self.trainable, self.cfg.grad_clip))
        return dict(loss=loss.item(), **{f"loss/{k}": v for k, v in parts.items()}, grad_norm=gnorm,
                    samples=x.shape[0])

    def update(self, state: TrainState) -> None:
        self.optimizer.step()
        self.ema.update(self.ae, decay=min(self.cfg.ema_decay, (1 + state.step) / (10 + state.step)))

    def data_position(self) -> dict:
        return self.data.position()

    def payload(self) -> dict:
        return dict(model={k: v.detach().contiguous() for k, v in self.ae.state_dict().items()},
                    ema=self.ema.full_state_dict(), optimizer=self.optimizer.state_dict())

    def load_payload(self, loaded: dict) -> None:
        self.ae.load_state_dict(loaded["model"])
        self.ema.load_full_state_dict(loaded["ema"])

    def export(self, run_dir: Path) -> Path:
        """The EMA weights as RUN/final (a VideoVAE folder), and the held-out reconstruction report."""
        averaged = self.ema.full_state_dict()
        with torch.no_grad():
            for name, p in self.ae.named_parameters():
                p.copy_(averaged[name])
        final = VideoVAE(self.ae.eval())
        final.save_pretrained(run_dir / "final")
        self.report = reconstruction_report(final, self.data.held_out_items(), run_dir)
        files.write_json(run_dir / "final_report.json", self.report)
        return run_dir / "final"


class VAEData:
    """Epochs of bucketed batches in a seeded order, each a random crop; the last `holdout` usable
    records are kept out for the report. Its position (epoch, batch, crop RNG) is checkpointed."""

    def __init__(self, cfg: VAETrainConfig):
        self.cfg = cfg
        self.ds = MediaDataset(read_manifest(cfg.manifest), size=cfg.size, fps=cfg.fps, num_frames=cfg.num_frames,
                               system_prompts={}, seed=cfg.seed)
        keys = self.ds.group_keys()
        usable = [i for i, k in enumerate(keys) if k is not None]
        self.held = set(usable[-cfg.holdout:]) if cfg.holdout else set()
        train_keys = [None if i in self.held else k for i, k in enumerate(keys)]
        self.sampler = BucketBatchSampler(train_keys, cfg.batch_size, shuffle=True, drop_last=True, seed=cfg.seed)
        if len(self.sampler) == 0:
            raise ConfigError(f"no full batch of {cfg.batch_size} in {cfg.manifest} ({self.ds.report()})")
        self.crop_gen = torch.Generator().manual_seed(cfg.seed)
        self.epoch, self.index, self.batches = 0, 0, None

    def restore(self, data: dict) -> None:
        if data:
            self.epoch, self.index = int(data["epoch"]), int(data["position"])
            self.crop_gen.set_state(torch.tensor(data["crop_rng"], dtype=torch.uint8))
        self.batches = None

    def position(self) -> dict:
        return dict(epoch=self.epoch, position=self.index, crop_rng=self.crop_gen.get_state().tolist())

    def next_batch(self) -> torch.Tensor:
        """The next usable batch's pixels, cropped (a batch whose files all failed is skipped)."""
        while True:
            if self.batches is None:
                self.sampler.set_epoch(self.epoch)
                self.ds.set_epoch(self.epoch)
                self.batches = list(self.sampler)
            if self.index >= len(self.batches):
                self.epoch, self.index, self.batches = self.epoch + 1, 0, None
                continue
            batch = collate([self.ds[i] for i in self.batches[self.index]])
            self.index += 1
            if batch is not None:
                return random_crop(batch["pixels"], self.cfg.crop, self.crop_gen)

    def held_out_items(self) -> list:
        return [self.ds[i] for i in sorted(self.held)]


def train_vae(cfg: VAETrainConfig, progress: bool = True, stop_at: int | None = None) -> dict:
    """Run (or resume) a VAE training; returns a summary with the final PSNR when finished."""
    # with init_from, the architecture is that VAE's, and the run's config.yaml records it so
    init = VideoVAE.from_pretrained(cfg.init_from) if cfg.init_from else None
    if init is not None:
        cfg = replace(cfg, arch=arch_of(init))
    torch.manual_seed(cfg.seed)
    return run_one_process(VAEFamily(cfg, init), cfg, stop_at, progress, "train-vae")


@torch.no_grad()
def reconstruction_report(vae, items: list, run: Path) -> dict:
    """PSNR of each held-out item through encode/decode, and `recon.png` (top: input, bottom: output)."""
    items = [it for it in items if it is not None]
    scores, tiles = [], []
    for it in items:
        x = it["pixels"][None]
        y = vae.decode(vae.encode(x))
        scores.append(psnr(y, x))
        mid = x.shape[2] // 2
        tiles.append(torch.cat([x[0, :, mid], y[0, :, mid]], dim=1))  # (3, 2H, W)
    if tiles:
        h = max(t.shape[1] for t in tiles)
        grid = torch.cat([torch.nn.functional.pad(t, (0, 0, 0, h - t.shape[1]), value=1) for t in tiles], dim=2)
        img = ((grid.permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
        from ..data.video_io import write_image

        write_image(run / "recon.png", np.ascontiguousarray(img))
    return {"holdout_psnr_db": [round(s, 2) for s in scores],
            "mean_psnr_db": round(float(np.mean(scores)), 2) if scores else None}


def add_cli_arguments(p: argparse.ArgumentParser) -> None:
    add_training_arguments(p, "YAML config (see VAETrainConfig)", "steps=500 arch.channels=16")


def cli_main(args) -> int:
    return run_training_command(
        "train-vae", train_vae, load_vae_config(args.config, args.overrides), args,
        lambda out: f"VAE trained for {out['step']} steps: held-out PSNR {out['mean_psnr_db']} dB -> "
                    f"{out['run_dir']}/final (reconstructions: {out['run_dir']}/recon.png)")
