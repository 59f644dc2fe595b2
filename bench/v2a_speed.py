"""V2A pipeline speed: seconds of compute per second of audio (< 1 is faster than real time), split into the
steps of LuminaV2APipeline.__call__: visual features (tiny CLIP tower at 8 frames/s + SmallSyncEncoder at 25/s),
the prompt (MiniLM), denoising (--steps guided Euler steps of the V2A model, two branches per step), the audio
VAE decode (tiny_audio_vae_config) and the vocoder (the tiny HiFi-GAN, or Griffin-Lim). The weights are random
(testing_v2a.make_tiny_v2a_pipeline; they do not change the speed), or the bundled V2A demo model with its
default steps and guidance (--bundled; random frames of --size at --fps). Each number is the median of --runs
calls after one warm-up call, with the min-max spread, under --threads torch threads (1 by default: a shared
machine); the last column is seconds per clip.

    python bench/v2a_speed.py --bundled --seconds 2 --fps 16 --size 128 --runs 7
    python bench/v2a_speed.py [--model-size V2A-S] [--seconds 4] [--fps 24] [--steps 25] [--runs 3]
                              [--vocoder hifigan|griffin-lim] [--threads 1] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch

from lumina_video.model.v2a_presets import V2A_PRESETS
from lumina_video.testing_v2a import VOCODERS, make_tiny_v2a_pipeline

STAGES = ("visual_s", "text_s", "denoise_s", "vae_s", "vocoder_s", "gate_s")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-size", default="V2A-S", choices=sorted(V2A_PRESETS))
    ap.add_argument("--seconds", type=float, default=4.0, help="clip length (s)")
    ap.add_argument("--fps", type=float, default=24.0, help="frame rate of the synthetic clip")
    ap.add_argument("--size", type=int, default=64, help="frame height and width")
    ap.add_argument("--bundled", action="store_true", help="the bundled V2A demo model (default: random weights)")
    ap.add_argument("--steps", type=int, default=None, help="Euler steps (default: the model's, 25)")
    ap.add_argument("--guidance-scale", type=float, default=None, help="default: the model's, 3.5")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--vocoder", default="hifigan", choices=VOCODERS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.bundled:
        from lumina_video.pipeline.v2a import LuminaV2APipeline

        pipe, args.model_size, args.vocoder = LuminaV2APipeline.from_pretrained().to(args.device), "bundled", "-"
    else:
        pipe = make_tiny_v2a_pipeline(model_size=args.model_size, vocoder=args.vocoder,
                                      defaults=dict(max_seconds=max(args.seconds, 1.0))).to(args.device)
    args.steps = pipe.defaults["num_inference_steps"] if args.steps is None else args.steps
    args.guidance_scale = pipe.defaults["guidance_scale"] if args.guidance_scale is None else args.guidance_scale
    n = round(args.seconds * args.fps)
    frames = np.random.default_rng(0).integers(0, 256, (n, args.size, args.size, 3), dtype=np.uint8)
    call = dict(fps=args.fps, num_inference_steps=args.steps, guidance_scale=args.guidance_scale, progress=False)
    pipe(frames, seed=0, **call)  # warm-up
    runs = [pipe(frames, seed=i, **call).timings for i in range(args.runs)]
    params = sum(p.numel() for p in pipe.transformer.parameters()) / 1e6
    print(f"V2A {args.model_size} ({params:.2f}M), {args.seconds:g} s at {args.fps:g} fps {args.size}x{args.size}, "
          f"{args.steps} steps (guidance {args.guidance_scale:g}), vocoder {args.vocoder}, "
          f"{args.threads} thread(s) on {args.device}; median of {args.runs} runs")
    print(f"{'stage':<12} {'s / s audio':>12} {'min':>8} {'max':>8} {'s / clip':>9}")
    totals = [sum(r[k] for k in STAGES) for r in runs]
    for key, values in [*[(k, [r[k] for r in runs]) for k in STAGES], ("total", totals)]:
        per = [v / args.seconds for v in values]
        print(f"{key.removesuffix('_s'):<12} {statistics.median(per):>12.4f} {min(per):>8.4f} {max(per):>8.4f} "
              f"{statistics.median(values):>9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
