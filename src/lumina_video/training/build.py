"""What a DiT training run is built from: the model, the frozen encoders, the optimizer; and the
checks that they fit each other and the config (run before anything is written)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..configs import ConfigError
from .config import TrainConfig


def build_transformer(cfg: TrainConfig) -> nn.Module:
    """The transformer in fp32 (master weights), seeded so every process builds the same one."""
    from ..model import MultiScaleNextDiT, build_model

    torch.manual_seed(cfg.seed)
    if cfg.model.init_from:
        if cfg.model.args:
            raise ConfigError(f"model.args {sorted(cfg.model.args)} cannot be combined with model.init_from: the "
                              f"config.json of {cfg.model.init_from} fixes the architecture")
        return MultiScaleNextDiT.from_pretrained(cfg.model.init_from).float().train()
    try:
        return build_model(cfg.model.preset, **cfg.model.args)
    except TypeError as e:
        raise ConfigError(f"model.args: {e}") from None


def check_model_fits_tasks(model, cfg: TrainConfig) -> None:
    have = ", ".join(f"(pt={pt}, p={p})" for pt, p in model.patch_shapes)
    for i, stage in enumerate(cfg.stages):
        for j, task in enumerate(stage.tasks):
            if not model.has_patch(patch_size=task.p, f_patch_size=task.pt):
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


def optimizer_settings(cfg: TrainConfig, lr: float) -> dict:
    """AdamW's hyperparameters for a stage (also re-applied after loading a checkpoint's optimizer)."""
    o = cfg.optim
    return dict(lr=lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)


def make_optimizer(model: nn.Module, lr: float, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], **optimizer_settings(cfg, lr))
