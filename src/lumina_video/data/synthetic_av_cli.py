"""`lumina-video synth-av OUT --n N ...`: the command line of the synthetic audio-visual dataset
(data/synthetic_av.py)."""
from __future__ import annotations

from .synthetic import parse_pairs
from .synthetic_av import make_dataset, summarize


def add_cli_arguments(parser) -> None:
    parser.add_argument("out_dir", help="folder for clips/, manifest.jsonl and heldout.jsonl")
    parser.add_argument("--n", type=int, required=True, help="number of clips")
    parser.add_argument("--size", type=int, default=128, help="frame side in pixels (even, >= 32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-seconds", type=float, default=2.0, help="shortest clip (default 2)")
    parser.add_argument("--max-seconds", type=float, default=4.0, help="longest clip (default 4)")
    parser.add_argument("--two-object-prob", type=float, default=0.25, help="share of clips with two objects")
    parser.add_argument("--still-prob", type=float, default=0.15, help="share of still (silent) clips")
    parser.add_argument("--holdout", default="", metavar="PAIRS",
                        help='(colour, shape) pairs kept out of manifest.jsonl and listed in heldout.jsonl, e.g. '
                             '"red triangle,green circle"; default none, like `lumina-video synth` (the demo '
                             'model\'s pairs: --holdout "$(lumina-video demo holdout)")')
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def cli_main(args) -> int:
    manifest, counts = make_dataset(args.out_dir, args.n, size=args.size, seed=args.seed,
                                    min_seconds=args.min_seconds, max_seconds=args.max_seconds,
                                    two_object_prob=args.two_object_prob, still_prob=args.still_prob,
                                    holdout_pairs=parse_pairs(args.holdout), progress=not args.no_progress)
    print(f"wrote {manifest}: {summarize(counts['records'])}; {counts['heldout']} held out; "
          f"{counts['rendered']} rendered, {counts['reused']} reused")
    return 0
