"""`lumina-video demo ACTION`: the bundled demo model's commands.

    lumina-video demo install PIPELINE_DIR    copy a trained pipeline into the package (fp16 weights)
                                              and record its checksums (the recipe's last step)
    lumina-video demo verify [--model DIR]    exit 0 when every file matches its recorded checksum,
                                              1 (and one line naming the files that differ) otherwise
    lumina-video demo holdout                 print the held-out (colour, shape) pairs, comma separated
    lumina-video demo results --model DIR --out DIR [...]    the experiments and the results tables (run.py)
"""
from __future__ import annotations

import argparse
import sys

from . import run
from .experiments import HOLDOUT


def _install(args) -> int:
    from .bundle import CHECKSUMS, DEFAULT_MODEL_DIR, install

    target, checksums = args.target or DEFAULT_MODEL_DIR, args.checksums or CHECKSUMS
    digests = install(args.pipeline_dir, target, checksums)
    print(f"installed {args.pipeline_dir} -> {target} ({len(digests)} files); checksums in {checksums}")
    return 0


def _verify(args) -> int:
    from .bundle import CHECKSUMS, DEFAULT_MODEL_DIR, verify

    model, checksums = args.model or DEFAULT_MODEL_DIR, args.checksums or CHECKSUMS
    bad = verify(model, checksums)
    if bad:
        print(f"lumina-video demo verify: {model} differs from {checksums}: {', '.join(bad)}", file=sys.stderr)
        return 1
    print(f"{model} matches its recorded checksums ({checksums})")
    return 0


def _holdout(args) -> int:
    print(HOLDOUT)
    return 0


ACTIONS = {"install": _install, "verify": _verify, "holdout": _holdout, "results": run.cli_main}


def _folder_options(parser, model_flag: str) -> None:
    """The model folder and checksum file options; None means the bundled model's (resolved when the
    action runs: the paths come from modules that import torch)."""
    parser.add_argument(model_flag, default=None, metavar="DIR",
                        help="the model folder (default: the bundled one, lumina_video/demo_model)")
    parser.add_argument("--checksums", default=None, metavar="FILE",
                        help="the checksum file (default: lumina_video/demo/demo_model.sha256, shipped with it)")


def add_cli_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("install", help="copy a trained pipeline folder into the package and record its checksums",
                       description="Copy a trained pipeline folder into the package as the bundled model (fp16 "
                       "transformer weights, at most 30 MiB) and record the SHA-256 of every file.")
    p.add_argument("pipeline_dir", help="the trained pipeline folder, e.g. runs/demo/dit/final")
    _folder_options(p, "--target")
    p = sub.add_parser("verify", help="check the bundled model's files against the recorded checksums",
                       description="Check every file of the model folder against the recorded checksums; "
                       "exit 1 when any differs, is missing or is extra.")
    _folder_options(p, "--model")
    sub.add_parser("holdout", help="print the held-out (colour, shape) pairs the demo model never sees",
                   description="Print the held-out (colour, shape) pairs, comma separated (for synth --holdout).")
    p = sub.add_parser("results",
                       help="measure a pipeline against the paper's claims; write the results tables (docs/RESULTS.md)",
                       description=run.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_cli_arguments(p)


def cli_main(args) -> int:
    """Run the chosen action; its exit status."""
    return ACTIONS[args.action](args)
