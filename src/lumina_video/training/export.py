"""`lumina-video export CHECKPOINT [--out DIR] [--weights ema|model]`: turn a training checkpoint into a
pipeline folder, to look at a run before it ends (the run's own end does this for RUN/final).

    lumina-video export runs/demo/dit/checkpoints/step_00003600            # -> .../step_00003600/pipeline
    lumina-video generate "a red circle moving to the right" --model runs/demo/dit/checkpoints/step_00003600/pipeline

The checkpoint's config.yaml (the resolved run config) says which text encoder and VAE the run used
and the generation defaults; the weights are the EMA ones (as RUN/final) or, with --weights model,
the raw trained ones (early in a run the EMA still lags far behind them).
"""
from __future__ import annotations

from pathlib import Path

import torch

from .. import files
from ..configs import ConfigError
from .build import build_transformer, load_text_encoder, load_vae
from .config import TrainConfig, load_config

WEIGHTS = ("ema", "model")


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


def export_checkpoint(checkpoint, out=None, weights: str = "ema") -> Path:
    """Write checkpoint's weights (`weights`: "ema" or "model") as a pipeline folder (atomically).
    Returns the folder: `out`, by default CHECKPOINT/pipeline (or CHECKPOINT/pipeline-model)."""
    from ..encoders import TextEncoder

    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {list(WEIGHTS)}, got {weights!r}")
    checkpoint = Path(checkpoint)
    for name in ("config.yaml", f"{weights}.safetensors"):
        if not (checkpoint / name).is_file():
            raise FileNotFoundError(f"{checkpoint} is not a training checkpoint: {name} is missing "
                                    "(checkpoints are RUN/checkpoints/step_NNNNNNNN)")
    cfg = load_config(checkpoint / "config.yaml")
    if not cfg.encoders.vae:
        raise ConfigError(f"the run of {checkpoint} has no encoders.vae, so no pipeline can be assembled; "
                          "use its transformer with LuminaVideoPipeline.from_components")
    # the architecture from the run config (built on meta: no init), the run's frozen encoders
    with torch.device("meta"):
        model_config = dict(build_transformer(cfg).config)
    text_encoder = load_text_encoder(cfg, torch.device("cpu"), torch.float32)
    if not isinstance(text_encoder, TextEncoder):
        raise ConfigError(f"the run's text encoder {cfg.encoders.text!r} cannot be saved in a pipeline")
    vae = load_vae(cfg, torch.device("cpu"), needed=True)
    out = Path(out) if out else checkpoint / ("pipeline" if weights == "ema" else f"pipeline-{weights}")
    weights_sd = files.load_safetensors(checkpoint / f"{weights}.safetensors")
    return write_pipeline(out, cfg, model_config, weights_sd, text_encoder, vae)


def add_cli_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="a training checkpoint folder, RUN/checkpoints/step_NNNNNNNN")
    parser.add_argument("--out", help="pipeline folder to write (default CHECKPOINT/pipeline)")
    parser.add_argument("--weights", choices=WEIGHTS, default="ema",
                        help="the EMA weights (default, as the run's final export) or the raw trained ones")


def try_command(folder, prompt: str = "a red circle moving to the right") -> str:
    """The shell command that generates from an exported folder (the prompt is generate's positional
    argument; quoted for a POSIX shell)."""
    import shlex

    return shlex.join(["lumina-video", "generate", prompt, "--model", str(folder)])


def cli_main(args) -> int:
    out = export_checkpoint(args.checkpoint, args.out, args.weights)
    print(f"pipeline written to {out}; try: {try_command(out)}")
    return 0
