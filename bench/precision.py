"""bf16 against fp32 on the bundled demo model: the decoded videos' PSNR and the held-out attribute accuracy.

Every held-out prompt of the demo's results experiment (`lumina_video.demo.experiments.heldout_prompts`:
the (colour, shape) pairs kept out of training x five motions) with --seeds seeds is generated with the
model's full default sampling (multi-scale, 31 steps, guidance) by an fp32 pipeline and by each
variant: the transformer in bf16 (text encoder and VAE fp32), and every part in bf16. The same seed
gives the same starting noise, so a variant's video is compared with the fp32 one frame by frame:
PSNR over all pixels of a video (uint8, peak 255), the latent's relative error ||z - z_fp32|| / ||z_fp32||,
and the attribute checks from pixels (colour, shape, direction, motion Spearman) of each set. Times are
medians over the videos (the pipeline's own timers).

    python bench/precision.py [--seeds 2] [--prompts 20] [--threads N]
"""
from __future__ import annotations

import argparse
import math
import statistics

import numpy as np
import torch

from lumina_video import LuminaVideoPipeline
from lumina_video.demo.experiments import HOLDOUT, heldout_prompts
from lumina_video.devices import cpu_has_native_bf16
from lumina_video.eval.attributes import check_attributes, expected_from_prompt, summarize_checks
from lumina_video.pipeline.frames import to_uint8_frames

BF16, FP32 = torch.bfloat16, torch.float32
VARIANTS = {  # name: dtype per part
    "fp32 (reference)": dict(transformer=FP32, text_encoder=FP32, vae=FP32),
    "transformer bf16": dict(transformer=BF16, text_encoder=FP32, vae=FP32),
    "all parts bf16": dict(transformer=BF16, text_encoder=BF16, vae=BF16),
}


def load(parts: dict) -> LuminaVideoPipeline:
    return LuminaVideoPipeline.from_pretrained(dtype={**parts, "default": FP32})


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def generate(pipe, prompt: str, seed: int) -> tuple[torch.Tensor, np.ndarray, dict]:
    """(latent, uint8 frames (F, H, W, 3), timings) with the model's default sampling; decoding timed here."""
    import time

    out = pipe(prompt, seed=seed, output_type="latent", progress=False)
    t0 = time.perf_counter()
    frames = to_uint8_frames(pipe.decode_latents(out.frames))[0]
    return out.frames, frames, dict(out.timings, decode_s=time.perf_counter() - t0)


def run_variant(parts: dict, jobs: list[tuple[str, int]]) -> list[dict]:
    pipe = load(parts)
    rows = []
    for prompt, seed in jobs:
        latent, frames, timings = generate(pipe, prompt, seed)
        rows.append(dict(latent=latent, frames=frames, timings=timings,
                         check=check_attributes(frames, expected_from_prompt(prompt))))
    return rows


def pct(acc: dict, key: str) -> str:
    return "n/a" if acc.get(key) is None else f"{100 * acc[key]:.1f}%"


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def report(results: dict[str, list[dict]]) -> None:
    ref = results["fp32 (reference)"]
    print("\n| variant | PSNR dB vs fp32, median [min-max] | latent rel. error, median [max] | colour | shape "
          "| direction | motion Spearman | denoise s | decode s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, rows in results.items():
        summary = summarize_checks([r["check"] for r in rows])
        acc = summary["accuracy"]
        if rows is ref:
            quality = "| (reference) | (reference) "
        else:
            ps = [psnr(r["frames"], q["frames"]) for r, q in zip(rows, ref)]
            err = [float((r["latent"] - q["latent"]).norm() / q["latent"].norm()) for r, q in zip(rows, ref)]
            quality = f"| {spread(ps)} | {statistics.median(err):.4f} [{max(err):.4f}] "
        rho = summary["spearman_motion"]
        times = {k: [r["timings"][k] for r in rows] for k in ("denoise_s", "decode_s")}
        print(f"| {name} {quality}| {pct(acc, 'color')} | {pct(acc, 'shape')} | {pct(acc, 'direction')} | "
              f"{'n/a' if rho is None else f'{rho:.3f}'} | {spread(times['denoise_s'], '{:.2f}')} | "
              f"{spread(times['decode_s'], '{:.2f}')} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=2, help="seeds per held-out prompt (seed 0, 1, ...)")
    ap.add_argument("--prompts", type=int, default=None, help="the first N held-out prompts (default: all 20)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    prompts = [p["prompt"] for p in heldout_prompts(HOLDOUT)][: args.prompts]
    jobs = [(prompt, seed) for seed in range(args.seeds) for prompt in prompts]
    print(f"demo model, held-out pairs {HOLDOUT}: {len(prompts)} prompts x {args.seeds} seeds = {len(jobs)} videos "
          f"per variant, default sampling; torch {torch.__version__}, {torch.get_num_threads()} threads, native CPU "
          f"bf16: {cpu_has_native_bf16()}")
    with torch.no_grad():
        results = {name: run_variant(parts, jobs) for name, parts in VARIANTS.items()}
    report(results)


if __name__ == "__main__":
    main()
