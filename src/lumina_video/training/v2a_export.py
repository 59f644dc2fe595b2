"""A trained V2A run as a LuminaV2APipeline folder:

    python -m lumina_video.training.v2a_export CONFIG OUT [key=value ...] [--run DIR | --checkpoint DIR]
                                               [--steps N] [--guidance S]

`train-v2a` writes RUN/final with the EMA weights of the two trained parts (transformer/, sync_encoder/) and
names the frozen ones in v2a_components.json. This assembles the pipeline the way the trainer built its
encoders (`v2a_trainer.build_encoders` on the same config, so a "tiny-random" CLIP is the same seeded random
tower the features were extracted with), adds Griffin-Lim as the vocoder (the sound path whose ceiling was
measured: docs/RESULTS.md) and the sampling defaults, and saves it with `LuminaV2APipeline.save_pretrained`
(atomic; the bundled MiniLM is saved as a reference, not as weights). `--run DIR` exports another folder laid
out like RUN/final; `--checkpoint RUN/checkpoints/step_N` a checkpoint's EMA weights (of a run still going, e.g.
a pilot's: no need to stop it).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import files
from ..audio.vocoder import GriffinLim
from ..encoders.sync import SmallSyncEncoder
from ..model.v2a import V2ANextDiT
from ..pipeline.v2a import V2A_DEFAULTS, LuminaV2APipeline
from .v2a_trainer import COMPONENTS_NAME, V2ATrainConfig, build_encoders, build_v2a, load_v2a_config


def export_pipeline(cfg: V2ATrainConfig, out, final=None, defaults: dict | None = None,
                    checkpoint=None) -> LuminaV2APipeline:
    """The pipeline of `final` (default RUN/final of cfg), or of a checkpoint folder's EMA weights, with cfg's
    frozen encoders and Griffin-Lim, saved to `out`; `defaults` update V2A_DEFAULTS (clip_rate: the training
    one)."""
    if checkpoint is not None:
        enc = build_encoders(cfg)
        transformer, sync = checkpoint_modules(cfg, enc, checkpoint)
    else:
        final = Path(final or Path(cfg.run_dir) / "final")
        components = final / COMPONENTS_NAME
        if not components.is_file():
            raise FileNotFoundError(f"{components} does not exist; finish the run with `lumina-video train-v2a`")
        trained = json.loads(components.read_text())
        ran, asked = (trained["clip"], trained["sync_trained"]), (cfg.encoders.clip, cfg.encoders.train_sync)
        if ran != asked:
            raise ValueError(f"{final} was trained with (clip, train_sync) = {ran}, the config asks for {asked}")
        enc = build_encoders(cfg)
        transformer = V2ANextDiT.from_pretrained(final / "transformer")
        sync = SmallSyncEncoder.from_pretrained(final / "sync_encoder") if cfg.encoders.train_sync else enc.sync
    pipe = LuminaV2APipeline(transformer, enc.vae, GriffinLim(), sync, enc.clip, enc.text,
                             defaults={**V2A_DEFAULTS, **(defaults or {}), "clip_rate": cfg.data.clip_rate})
    pipe.save_pretrained(out)
    return pipe


def checkpoint_modules(cfg: V2ATrainConfig, enc, checkpoint) -> tuple:
    """(V2A model, sync encoder) holding a checkpoint folder's EMA weights (keys "model.*", "sync.*": the
    trainer's ModuleDict)."""
    path = Path(checkpoint) / "ema.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; give a train-v2a checkpoint folder (RUN/checkpoints/step_*)")
    ema = files.load_safetensors(path)
    model, sync = build_v2a(cfg, enc), enc.sync
    for prefix, module in (("model.", model), ("sync.", sync)):
        module.load_state_dict({k[len(prefix):]: v for k, v in ema.items() if k.startswith(prefix)})
    return model.eval(), sync.eval().requires_grad_(False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lumina_video.training.v2a_export", description=__doc__.split("\n")[0])
    ap.add_argument("config", help="the train-v2a YAML config of the run")
    ap.add_argument("out", help="pipeline folder to write")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, as for train-v2a")
    ap.add_argument("--run", default=None, metavar="DIR", help="a folder with transformer/, sync_encoder/ and "
                                                               f"{COMPONENTS_NAME} (default RUN/final)")
    ap.add_argument("--checkpoint", default=None, metavar="DIR", help="export a checkpoint's EMA weights "
                                                                      "(RUN/checkpoints/step_*) instead")
    ap.add_argument("--steps", type=int, default=None, help="default Euler steps of the pipeline")
    ap.add_argument("--guidance", type=float, default=None, help="default guidance scale of the pipeline")
    args = ap.parse_args(argv)
    given = (("num_inference_steps", args.steps), ("guidance_scale", args.guidance))
    defaults = {k: v for k, v in given if v is not None}
    try:
        export_pipeline(load_v2a_config(args.config, args.overrides), args.out, args.run, defaults, args.checkpoint)
    except (ValueError, FileNotFoundError) as e:
        ap.exit(2, f"v2a_export: error: {e}\n")
    print(f"wrote the V2A pipeline {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
