"""A small random-weight V2A pipeline for tests and benchmarks (the real classes at tiny sizes), like testing.py
does for the video pipeline: MiniLM text encoder, a tiny CLIP vision tower, a small SmallSyncEncoder, the tiny
audio VAE (AudioLDM's shape rules: 8 channels, 25 latent frames/s x 16 rows), a tiny HiFi-GAN (or Griffin-Lim)
and a V2ANextDiT preset of matching widths."""
from __future__ import annotations

import torch

from .audio import AudioVAE, GriffinLim, Vocoder, tiny_audio_vae_config, tiny_vocoder_config
from .encoders import CLIPFrameEncoder, SmallSyncConfig, SmallSyncEncoder, TextEncoder, tiny_clip_vision_config
from .model.v2a_presets import V2A_PRESETS, build_v2a_model
from .testing import randomize_zero_init

TINY_V2A_DEFAULTS = dict(num_inference_steps=4, guidance_scale=2.0, max_seconds=4.0)
TINY_SYNC = dict(size=32, channels=(8, 16), width=32, dim=32)
VOCODERS = ("hifigan", "griffin-lim")


def make_tiny_v2a_pipeline(folder=None, seed: int = 0, model_size: str = "V2A-Tiny", vocoder: str = "hifigan",
                           latent_channels: int = 8, defaults: dict | None = None):
    """A LuminaV2APipeline of random weights from `seed`, V2A model `model_size` ("V2A-Tiny" or "V2A-S"),
    `vocoder` "hifigan" (a tiny SpeechT5HifiGan) or "griffin-lim"; saved to `folder` when given."""
    from .pipeline.v2a import LuminaV2APipeline

    if model_size not in V2A_PRESETS:
        raise ValueError(f"model_size must be one of {list(V2A_PRESETS)}, got {model_size!r}")
    if vocoder not in VOCODERS:
        raise ValueError(f"vocoder must be one of {VOCODERS}, got {vocoder!r}")
    text = TextEncoder.from_pretrained()
    clip = CLIPFrameEncoder.from_config(tiny_clip_vision_config(), seed=seed)
    sync = SmallSyncEncoder.from_config(SmallSyncConfig(**TINY_SYNC), seed=seed + 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 2)
        vae = AudioVAE.from_config(tiny_audio_vae_config(latent_channels=latent_channels))
        voc = Vocoder.from_config(tiny_vocoder_config()) if vocoder == "hifigan" else GriffinLim(n_iter=8)
        model = build_v2a_model(model_size, in_channels=vae.latent_channels, visual_feat_dim=clip.dim,
                                text_feat_dim=text.dim, sync_feat_dim=sync.dim)
    randomize_zero_init(model, torch.Generator().manual_seed(seed + 3))
    pipe = LuminaV2APipeline(model, vae, voc.eval(), sync, clip, text,
                             defaults={**TINY_V2A_DEFAULTS, **(defaults or {})})
    if folder is not None:
        pipe.save_pretrained(folder)
    return pipe


def main(argv=None) -> int:
    """`python -m lumina_video.testing_v2a FOLDER [SEED]`: write a random-weight tiny V2A pipeline to FOLDER."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m lumina_video.testing_v2a", description=main.__doc__)
    ap.add_argument("folder", help="where the pipeline goes")
    ap.add_argument("seed", nargs="?", type=int, default=0, help="seed of the random weights (default 0)")
    ap.add_argument("--model-size", default="V2A-Tiny", choices=sorted(V2A_PRESETS))
    ap.add_argument("--vocoder", default="hifigan", choices=VOCODERS)
    args = ap.parse_args(argv)
    make_tiny_v2a_pipeline(args.folder, seed=args.seed, model_size=args.model_size, vocoder=args.vocoder)
    print(f"wrote a random-weight tiny V2A pipeline to {args.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
