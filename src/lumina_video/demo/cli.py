"""`lumina-video demo ACTION`: the bundled demo model's commands.

    lumina-video demo install PIPELINE_DIR    copy a trained pipeline into the package (fp16 weights)
                                              and record its checksums (the recipe's last step)
    lumina-video demo install --v2a PIPELINE_DIR    the same for the V2A demo model (video -> soundtrack)
    lumina-video demo verify [--v2a] [--model DIR]  exit 0 when every file matches its recorded checksum,
                                              1 (and one line naming the files that differ) otherwise;
                                              with no option both bundled models are checked
    lumina-video demo holdout                 print the held-out (colour, shape) pairs, comma separated
    lumina-video demo results --model DIR --out DIR [...]    the experiments and the results tables (run.py)
"""
from __future__ import annotations

import argparse
import sys

from . import run
from .experiments import HOLDOUT


def _install(args) -> int:
    from .bundle import BUNDLES, install, install_v2a

    kind = "v2a" if args.v2a else "video"
    target, checksums = args.target or BUNDLES[kind][0], args.checksums or BUNDLES[kind][1]
    digests = (install_v2a if args.v2a else install)(args.pipeline_dir, target, checksums)
    print(f"installed {args.pipeline_dir} -> {target} ({len(digests)} files); checksums in {checksums}")
    return 0


def _verify(args) -> int:
    """--v2a: the V2A model; --model / --checksums alone: that folder against the video model's checksums (by
    default); nothing: both bundled models. Exit 1 if any file of any of them differs."""
    from .bundle import BUNDLES, verify

    kinds = ["v2a"] if args.v2a else ["video"] if args.model or args.checksums else ["video", "v2a"]
    status = 0
    for kind in kinds:
        model, checksums = args.model or BUNDLES[kind][0], args.checksums or BUNDLES[kind][1]
        bad = verify(model, checksums)
        if bad:
            print(f"lumina-video demo verify: {model} differs from {checksums}: {', '.join(bad)}", file=sys.stderr)
            status = 1
        else:
            print(f"{model} matches its recorded checksums ({checksums})")
    return status


def _holdout(args) -> int:
    print(HOLDOUT)
    return 0


ACTIONS = {"install": _install, "verify": _verify, "holdout": _holdout, "results": run.cli_main}


def _folder_options(parser, model_flag: str, v2a_help: str) -> None:
    """--v2a, the model folder and checksum file options; None means the bundled model's (resolved when the
    action runs: the paths come from modules that import torch)."""
    parser.add_argument("--v2a", action="store_true", help=v2a_help)
    parser.add_argument(model_flag, default=None, metavar="DIR",
                        help="the model folder (default: the bundled one, lumina_video/demo_model, or with --v2a "
                             "lumina_video/demo_v2a_model)")
    parser.add_argument("--checksums", default=None, metavar="FILE",
                        help="the checksum file (default: lumina_video/demo/demo_model.sha256, or with --v2a "
                             "demo_v2a_model.sha256, shipped with it)")


def add_cli_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("install", help="copy a trained pipeline folder into the package and record its checksums",
                       description="Copy a trained pipeline folder into the package as the bundled model (fp16 "
                       "transformer weights, at most 30 MiB) and record the SHA-256 of every file; with --v2a a V2A "
                       "pipeline as the bundled V2A model (fp16 transformer and sync encoder, at most 20 MiB). The "
                       "folder appears whole or not at all.")
    p.add_argument("pipeline_dir", help="the trained pipeline folder, e.g. runs/demo/dit/final, or with --v2a "
                                        "runs/v2a_demo/v2a_robust/pipeline")
    _folder_options(p, "--target", "a V2A pipeline (LuminaV2APipeline) -> lumina_video/demo_v2a_model")
    p = sub.add_parser("verify", help="check the bundled models' files against the recorded checksums",
                       description="Check every file of the model folder against the recorded checksums (no "
                       "option: both bundled models, the video and the V2A one); exit 1 when any differs, is "
                       "missing or is extra.")
    _folder_options(p, "--model", "check only the V2A model (lumina_video/demo_v2a_model)")
    sub.add_parser("holdout", help="print the held-out (colour, shape) pairs the demo model never sees",
                   description="Print the held-out (colour, shape) pairs, comma separated (for synth --holdout).")
    p = sub.add_parser("results",
                       help="measure a pipeline against the paper's claims; write the results tables (docs/RESULTS.md)",
                       description=run.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_cli_arguments(p)


def cli_main(args) -> int:
    """Run the chosen action; its exit status."""
    return ACTIONS[args.action](args)
