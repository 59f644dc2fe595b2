"""`lumina-video` command line. Each subcommand lives in its own module, which provides
`add_cli_arguments(parser)` and `cli_main(args) -> int`; this file only lists them."""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("lumina_video.convert", "convert an official Lumina-Video checkpoint to this project's format"),
    "generate": ("lumina_video.generate", "generate videos from prompts: NAME.mp4 + NAME.json (settings, timings)"),
    "motion": ("lumina_video.data.motion", "annotate a manifest's videos with motion scores (optical flow, REFERENCE.md §4)"),
    "extract-latents": ("lumina_video.data.latents", "encode a manifest's clips once with the VAE (latent files + latent_path)"),
    "train-vae": ("lumina_video.training.vae", "train a small CogVideoX-architecture VAE (e.g. for the demo model)"),
    "synth": ("lumina_video.data.synthetic", "render the synthetic dataset (clips, images, manifest with ground truth)"),
    "train": ("lumina_video.training.cli", "train a model: multi-task, multi-scale flow matching (YAML config)"),
    "export": ("lumina_video.training.export", "write a training checkpoint's weights as a pipeline folder (to look at a run midway)"),
    "eval": ("lumina_video.eval.run", "score videos: VBench-style dimensions, prompt attribute checks, reports"),
    "serve": ("lumina_video.serve", "web demo: a Gradio page for generating videos (127.0.0.1 unless --share-on-network)"),
    "demo": ("lumina_video.demo.cli", "the bundled demo model: install, verify, held-out pairs, results experiment"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lumina-video", description="Lumina-Video: train, generate, evaluate")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_cli_arguments(p)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Build only the requested command's parser, so `lumina-video X` never imports the others.
    if argv and argv[0] in COMMANDS:
        name = argv[0]
        module = importlib.import_module(COMMANDS[name][0])
        parser = argparse.ArgumentParser(prog=f"lumina-video {name}", description=COMMANDS[name][1])
        module.add_cli_arguments(parser)
        args = parser.parse_args(argv[1:])
        try:
            return int(module.cli_main(args) or 0)
        except (ValueError, FileNotFoundError, PermissionError) as e:
            print(f"lumina-video {name}: error: {e}", file=sys.stderr)
            return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
