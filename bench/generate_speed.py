"""End-to-end generation time split into text encoding, denoising and decoding, single-scale vs
multi-scale, for a random-weight pipeline of the real classes (MiniLM, CogVideoX-architecture VAE
with few channels, Multi-scale Next-DiT "Tiny" or "Small").

Sampling: the released f24F96R960 presets (69 Euler steps, guidance until t = 0.2) and their
multi-scale twin (30 / 24 / 15 steps at (2,4,4) / (2,2,2) / (1,2,2)). Times are the best of
--repeat runs after one warm-up (the first call of a shape is slow, and on a shared CPU the best
run is the one least disturbed by other processes); the pipeline's own timers (synchronised on CUDA).

--dtype sets the transformer's compute dtype (text encoder and VAE fp32), --compile compiles its blocks
(the warm-up run compiles).

    python bench/generate_speed.py [--model-size Small] [--height 128 --width 128 --num-frames 16] [--dtype bf16]
"""
from __future__ import annotations

import argparse

import torch

from lumina_video.devices import default_device, parse_dtype
from lumina_video.model import count_params
from lumina_video.testing import make_tiny_pipeline

PROMPT = "a red circle moving to the right on a plain white background"
SCHEDULES = [("single-scale (1,2,2)", "f24F96R960"), ("multi-scale", "f24F96R960-MultiScale")]


def run(pipe, preset, size, repeat):
    pipe(PROMPT, **size, preset=preset, seed=0, progress=False)  # warm-up
    runs = [pipe(PROMPT, **size, preset=preset, seed=0, progress=False).timings for _ in range(repeat)]
    return {k: min(r[k] for r in runs) for k in runs[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-size", choices=["Tiny", "Small"], default="Small")
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--num-frames", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default=default_device())
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="the transformer's compute dtype")
    ap.add_argument("--compile", action="store_true", help="torch.compile the transformer's blocks")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    pipe = make_tiny_pipeline(seed=0, model_size=args.model_size).to(args.device)
    pipe.transformer.to(parse_dtype(args.dtype))
    if args.compile:
        pipe.compile_transformer()
    size = dict(height=args.height, width=args.width, num_frames=args.num_frames)
    for _, preset in SCHEDULES:  # both schedules take this size (a clear message, not a failure midway)
        pipe.check_inputs(PROMPT, "", args.height, args.width, args.num_frames, pipe.resolve_sampling(preset))
    shape = pipe.latent_shape(1, args.height, args.width, args.num_frames)
    print(f"pipeline: MiniLM text encoder, tiny CogVideoX VAE, MultiScaleNextDiT_{args.model_size} "
          f"({count_params(pipe.transformer) / 1e6:.1f}M params); video {args.num_frames}x{args.height}x"
          f"{args.width} -> latent {tuple(shape[1:])}; {args.device}, transformer {args.dtype}"
          f"{' compiled' if args.compile else ''}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; best of {args.repeat}")
    rows = [(label, run(pipe, preset, size, args.repeat)) for label, preset in SCHEDULES]
    base = rows[0][1]["denoise_s"]
    print("\n| schedule | text s | denoise s | decode s | total s | denoise relative |")
    print("|---|---|---|---|---|---|")
    for label, t in rows:
        total = t["text_s"] + t["denoise_s"] + t["decode_s"]
        print(f"| {label} | {t['text_s']:.3f} | {t['denoise_s']:.3f} | {t['decode_s']:.3f} | {total:.3f} | "
              f"{t['denoise_s'] / base:.2f} |")


if __name__ == "__main__":
    main()
