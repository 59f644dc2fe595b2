"""Small random-weight pipelines for tests and benchmarks (the real classes at tiny sizes)."""
from __future__ import annotations

import torch

from .encoders import TextEncoder, VideoVAE, tiny_config
from .model import build_model

TINY_DEFAULTS = dict(height=32, width=32, num_frames=8, fps=8.0, sampling="f24F96R960-MultiScale")


def randomize_zero_init(model: torch.nn.Module, generator: torch.Generator, std: float = 0.02) -> None:
    """Give every all-zero parameter small random values. Training starts from zero gates and
    output layers (docs/REFERENCE.md §1), which would make an untrained model's velocity identically zero; a
    random-weight test model should depend on every input."""
    with torch.no_grad():
        for p in model.parameters():
            if not bool(p.any()):
                p.copy_(torch.randn(p.shape, generator=generator) * std)


def make_tiny_pipeline(folder=None, seed: int = 0, model_size: str = "Tiny", vae_channels: int = 8,
                       defaults: dict | None = None):
    """A pipeline with MiniLM (the bundled text encoder), a tiny CogVideoX-architecture VAE and a
    Multi-scale Next-DiT of `model_size` ("Tiny" or "Small") with all three patch shapes, random
    weights from `seed`. Saved to `folder` when given. Returns the pipeline."""
    from .pipeline import LuminaVideoPipeline

    if model_size not in ("Tiny", "Small"):
        raise ValueError(f"model_size must be 'Tiny' or 'Small', got {model_size!r}")
    gen = torch.Generator().manual_seed(seed)
    text = TextEncoder.from_pretrained()
    torch.manual_seed(seed)
    vae = VideoVAE.from_config(tiny_config(channels=vae_channels))
    model = build_model(model_size, in_channels=vae.latent_channels, cap_feat_dim=text.dim)
    randomize_zero_init(model, gen)
    pipe = LuminaVideoPipeline(model, vae, text, defaults={**TINY_DEFAULTS, **(defaults or {})})
    if folder is not None:
        pipe.save_pretrained(folder)
    return pipe


def main(argv=None) -> int:
    """`python -m lumina_video.testing FOLDER [SEED]`: write a random-weight tiny pipeline to FOLDER."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m lumina_video.testing", description=main.__doc__)
    ap.add_argument("folder", help="where the pipeline goes")
    ap.add_argument("seed", nargs="?", type=int, default=0, help="seed of the random weights (default 0)")
    args = ap.parse_args(argv)
    make_tiny_pipeline(args.folder, seed=args.seed)
    print(f"wrote a random-weight tiny pipeline to {args.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
