"""`lumina-video train CONFIG.yaml [key.sub=value ...]`; under torchrun for several processes:

    torchrun --nproc_per_node 8 -m lumina_video.cli train CONFIG.yaml
"""
from __future__ import annotations

import os
import sys


def add_cli_arguments(parser) -> None:
    parser.add_argument("config", help="training config (YAML); see configs/")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value",
                        help="config overrides, e.g. optim.lr=1e-4 stages.0.steps=500")
    parser.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                        help="stop after this global step (a checkpoint is written; rerun to continue)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def cli_main(args) -> int:
    from .config import load_config
    from .loop import NonFiniteLossError
    from .trainer import train

    cfg = load_config(args.config, args.overrides)
    try:
        result = train(cfg, stop_at=args.stop_at, progress=not args.no_progress)
    except NonFiniteLossError as e:
        print(f"lumina-video train: stopped: {e}", file=sys.stderr)
        return 3
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one summary
        if result.stopped_early:
            print(f"stopped at step {result.step}; checkpoint: {result.last_checkpoint}")
        else:
            print(f"trained {result.step} steps; model: {result.final}")
    return 0
