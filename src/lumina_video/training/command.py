"""The command-line ends shared by the one-config training commands (train-vae, train-audio-vae,
train-vocoder, train-v2a): the same arguments, and the same exit codes (0 done or stopped at --stop-at,
3 on a non-finite loss; config and file errors are cli.py's exit 2)."""
from __future__ import annotations

import argparse
import sys

from .loop import NonFiniteLossError


def add_training_arguments(p: argparse.ArgumentParser, config_help: str, override_example: str) -> None:
    p.add_argument("config", help=config_help)
    p.add_argument("overrides", nargs="*", help=f"key=value overrides, e.g. {override_example}")
    p.add_argument("--stop-at", type=int, default=None, help="stop (with a checkpoint) at this step")
    p.add_argument("--no-progress", action="store_true")


def run_training_command(name: str, train, cfg, args, done_line) -> int:
    """Run `train(cfg, progress=, stop_at=)`; print `done_line(summary)` when it finished, else how to go on."""
    try:
        out = train(cfg, progress=not args.no_progress, stop_at=args.stop_at)
    except NonFiniteLossError as e:
        print(f"lumina-video {name}: stopped: {e}", file=sys.stderr)
        return 3
    if out["finished"]:
        print(done_line(out))
    else:
        print(f"stopped at step {out['step']}; run the same command again to continue ({out['run_dir']})")
    return 0
