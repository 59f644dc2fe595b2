"""`lumina-video` command line. Each subcommand lives in its own module, which provides
`add_cli_arguments(parser)` and `cli_main(args) -> int`; this file only lists them.

At this boundary, before a command runs, third-party chatter is turned down (`quiet_libraries`):
diffusers and transformers log errors only and show no progress bars of their own (the
"pip install accelerate" banner, "Loading weights" bars), and Python warnings raised inside torch,
diffusers, transformers, huggingface_hub or gradio are hidden. Set DIFFUSERS_VERBOSITY,
TRANSFORMERS_VERBOSITY, HF_HUB_DISABLE_PROGRESS_BARS=0 or PYTHONWARNINGS to see them again.
Options are never abbreviated (`--prompt` is not `--prompts`).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

# name -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("lumina_video.convert", "convert an official Lumina-Video checkpoint to this project's format"),
    "generate": ("lumina_video.generate", "generate videos from prompts: NAME.mp4 + NAME.json (settings, timings)"),
    "motion": ("lumina_video.data.motion",
               "annotate a manifest's videos with motion scores (optical flow, REFERENCE.md §4)"),
    "extract-latents": ("lumina_video.data.latents",
                        "encode a manifest's clips once with the VAE (latent files + latent_path)"),
    "train-vae": ("lumina_video.training.vae_trainer",
                  "train a small CogVideoX-architecture VAE (e.g. for the demo model)"),
    "train-audio-vae": ("lumina_video.training.audio_vae_trainer",
                        "train a small audio VAE (AutoencoderKL over log-mel spectrograms)"),
    "train-vocoder": ("lumina_video.training.vocoder_trainer",
                      "train a small SpeechT5HifiGan vocoder (log-mel -> waveform)"),
    "train-v2a": ("lumina_video.training.v2a_trainer",
                  "train a Lumina-V2A model (audio latents from video, text and sync features)"),
    "synth": ("lumina_video.data.synthetic",
              "render the synthetic dataset (clips, images, manifest with ground truth)"),
    "synth-av": ("lumina_video.data.synthetic_av_cli",
                 "render the synthetic audio-visual dataset (clips with sound, impact times)"),
    "train": ("lumina_video.training.cli", "train a model: multi-task, multi-scale flow matching (YAML config)"),
    "export": ("lumina_video.training.export",
               "write a training checkpoint's weights as a pipeline folder (to look at a run midway)"),
    "eval": ("lumina_video.eval.run", "score videos: VBench-style dimensions, prompt attribute checks, reports"),
    "eval-audio": ("lumina_video.eval.audio_run",
                   "score soundtracks: onsets, sync (DeSync, AV-Align), pitch, timbre, loudness"),
    "eval-audio-prompts": ("lumina_video.eval.audio_prompts",
                           "text -> video -> V2A soundtrack on N vocabulary prompts: pitch of the named colour, "
                           "silence when still"),
    "serve": ("lumina_video.serve",
              "web demo: a Gradio page for generating videos (127.0.0.1 unless --share-on-network)"),
    "demo": ("lumina_video.demo.cli", "the bundled demo model: install, verify, held-out pairs, results experiment"),
    "v2a": ("lumina_video.v2a", "a soundtrack for silent videos: NAME.mp4 (with audio) + NAME.wav + NAME.json"),
    "info": ("lumina_video.info", "what a model folder holds: defaults, trained sizes, presets, vocabulary"),
}
# third-party libraries whose own warnings and bars a command does not show (module docstring)
QUIET_LIBRARIES = ("torch", "torchvision", "diffusers", "transformers", "huggingface_hub", "gradio",
                   "accelerate", "safetensors")
QUIET_ENV = {"DIFFUSERS_VERBOSITY": "error", "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
             "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}


def quiet_libraries() -> None:
    """Turn down third-party logging, progress bars and warnings (module docstring); the user's own
    settings of those variables, and -W / PYTHONWARNINGS, win."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if not sys.warnoptions:
        warnings.filterwarnings("ignore", module=rf"({'|'.join(QUIET_LIBRARIES)})(\.|$)")
    # libraries imported already read the variables at import: tell them directly
    for name in ("diffusers", "transformers"):
        if name in sys.modules and os.environ[f"{name.upper()}_VERBOSITY"] == "error":
            logging = importlib.import_module(f"{name}.utils.logging")
            logging.set_verbosity_error()
            if os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1":
                logging.disable_progress_bar()


def _version() -> str:
    from . import __version__

    return f"lumina-video {__version__}"


def _parser(name: str | None = None) -> argparse.ArgumentParser:
    if name is None:
        parser = argparse.ArgumentParser(prog="lumina-video", description="Lumina-Video: train, generate, evaluate",
                                         allow_abbrev=False)
    else:
        parser = argparse.ArgumentParser(prog=f"lumina-video {name}", description=COMMANDS[name][1],
                                         allow_abbrev=False)
    parser.add_argument("--version", action="version", version=_version(), help="print the package version")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _parser()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_cli_arguments(p)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Build only the requested command's parser, so `lumina-video X` never imports the others.
    if argv and argv[0] in COMMANDS:
        name = argv[0]
        quiet_libraries()
        module = importlib.import_module(COMMANDS[name][0])
        parser = _parser(name)
        module.add_cli_arguments(parser)
        args = parser.parse_args(argv[1:])
        try:
            return int(module.cli_main(args) or 0)
        except (ValueError, FileNotFoundError, FileExistsError, PermissionError) as e:
            print(f"lumina-video {name}: error: {e}", file=sys.stderr)
            return 2
    if argv[:1] == ["--version"]:  # without building every command's parser
        print(_version())
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
