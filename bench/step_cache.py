"""The step cache (sampling/step_cache.py) on the bundled demo model: what it saves and what it costs.

For the model's default multi-scale sampling and for single-scale, on held-out prompts and fixed seeds,
for each threshold against the uncached run of the same (prompt, seed):
    forward rows saved    counted (sampling/forwards.py), and the transformer FLOPs saved (rows per
                          patch x model/flops.py's flops_per_item at that patch's token count)
    wall-time ratio       cached / uncached denoising seconds, per video pair, median (one run, interleaved)
    PSNR / SSIM           of the decoded uint8 video against the uncached one (SSIM: Gaussian 11x11,
                          sigma 1.5, per channel and frame, Wang et al. 2004)
    held-out accuracy     colour / shape / direction from pixels (eval/attributes.py, demo/experiments.py)
    motion Spearman       (multi-scale) requested vs measured motion score over a small sweep
Then the f24 preset's estimate for the 2B model: its step plan run through the cache's rules (a field
model stands in, so only the schedule decides), forward rows per stage, costed by 2B FLOPs per patch
(--f24-timing: by measured 1-block forward seconds instead).

    python bench/step_cache.py [--quick] [--thresholds 0.1 0.2 0.3 0.5] [--out bench_out/step_cache]
        [--forecast linear|reuse] [--forced 1|2] [--stage-scale 2x4=0 ...]   (the cache variant; default
        StepCache's)
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch

from lumina_video import files
from lumina_video.demo import experiments as ex
from lumina_video.eval.attributes import spearman, summarize_checks
from lumina_video.model.flops import flops_per_item
from lumina_video.sampling import AUTO_THRESHOLD, ForwardCounts, SamplingConfig, StepCache, sample
from lumina_video.sampling.step_cache import FORECASTS, STAGE_SCALE

PATCHES = {"2x4": (2, 4), "2x2": (2, 2), "1x2": (1, 2)}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """10 log10(255^2 / MSE) over the whole uint8 video; inf when equal."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two uint8 videos (F, H, W, 3): Gaussian window 11, sigma 1.5, C1 = (0.01 L)^2, C2 = (0.03 L)^2."""
    x, y = (torch.from_numpy(v).double().permute(0, 3, 1, 2).reshape(-1, 1, *v.shape[1:3]) for v in (a, b))
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5 ** 2))
    w = (g[:, None] * g[None, :] / g.sum() ** 2)[None, None]
    blur = lambda t: torch.nn.functional.conv2d(t, w)  # noqa: E731  (valid region, as Wang et al.)
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return float(s.mean())


def flops_of(forwards: dict, model_config, latent: tuple, cap_len: int) -> float:
    """Transformer FLOPs of a run's forward rows: sum over patches of rows x flops_per_item(patch)."""
    _, t, h, w = latent
    total = 0.0
    for name, rows in forwards["items"].items():
        pt, p = PATCHES[name]
        total += rows * flops_per_item(model_config, max(t // pt, 1) * (h // p) * (w // p), cap_len, (pt, p))
    return total


CACHE_OPTIONS: dict = {}  # StepCache keywords of this run (--forecast, --forced, --stage-scale)


def make_cache(threshold) -> StepCache | None:
    """The StepCache of one run at `threshold` (None: no cache) with this run's CACHE_OPTIONS."""
    return None if threshold is None else StepCache(threshold, **CACHE_OPTIONS)


def generate(pipe, prompt: str, seed: int, multiscale: bool, threshold, motion=None) -> dict:
    """One video: frames, forwards, denoising seconds, scores (demo/experiments.score_clip)."""
    knobs = {} if motion is None else dict(motion_score=motion, negative_motion_score=motion,
                                           negative_motion_switch=1.0)
    out = pipe(prompt, seed=seed, multiscale=multiscale, step_cache=make_cache(threshold), progress=False, **knobs)
    frames = out.frames[0]
    scores = ex.score_clip(frames, float(pipe.defaults["fps"]), prompt)
    return dict(frames=frames, forwards=out.forwards, denoise_s=out.timings["denoise_s"], **scores)


def run_arm(pipe, prompts: list[str], seeds: list[int], multiscale: bool, thresholds: list[float],
            flops) -> list[dict]:
    """Per threshold (None = uncached first): rows, FLOPs, time ratio, PSNR, SSIM, accuracy."""
    by_th = {th: [] for th in [None, *thresholds]}
    for prompt in prompts:
        for seed in seeds:
            ref = generate(pipe, prompt, seed, multiscale, None)
            by_th[None].append(dict(ref, psnr=math.inf, ssim=1.0, ratio=1.0))
            for th in thresholds:  # right after the reference: machine load falls on both alike
                r = generate(pipe, prompt, seed, multiscale, th)
                by_th[th].append(dict(r, psnr=psnr(r["frames"], ref["frames"]), ssim=ssim(r["frames"], ref["frames"]),
                                      ratio=r["denoise_s"] / ref["denoise_s"]))
    base = by_th[None]
    rows = []
    for th, recs in by_th.items():
        acc = summarize_checks([r["attributes"] for r in recs])["accuracy"]
        items = sum(r["forwards"]["total_items"] for r in recs) / sum(r["forwards"]["total_items"] for r in base)
        f = sum(flops(r["forwards"]) for r in recs) / sum(flops(r["forwards"]) for r in base)
        finite = [r["psnr"] for r in recs if math.isfinite(r["psnr"])]
        rows.append(dict(scale="multi" if multiscale else "single", threshold=th, rows_ratio=items, flops_ratio=f,
                         time_ratio=statistics.median(r["ratio"] for r in recs),
                         time_spread=(min(r["ratio"] for r in recs), max(r["ratio"] for r in recs)),
                         psnr_min=min(r["psnr"] for r in recs), psnr_median=statistics.median(finite) if finite
                         else math.inf, ssim_mean=float(np.mean([r["ssim"] for r in recs])),
                         color=acc.get("color"), shape=acc.get("shape"), direction=acc.get("direction"), n=len(recs),
                         items={n: float(np.mean([r["forwards"]["items"].get(n, 0) for r in recs])) for n in PATCHES}))
    return rows


def motion_spearman(pipe, prompts: list[str], levels: list[float], thresholds: list[float]) -> dict:
    """Spearman(requested, measured motion score), multi-scale, pooled over prompts x levels, per threshold."""
    out = {}
    for th in [None, *thresholds]:
        recs = [(m, generate(pipe, p, 0, True, th, motion=m)["measured_motion"]) for p in prompts for m in levels]
        out[th] = spearman([m for m, _ in recs], [v for _, v in recs])
    return out


class _Field(torch.nn.Module):
    """A stand-in velocity for running a step plan through the cache's rules: smooth, finite rates."""

    def forward(self, x, t, cap_feats, cap_mask, motion_score, patch_size, f_patch_size):
        return (torch.sin(3 * x) - x) / (1.05 - t).view(-1, 1, 1, 1, 1)


def schedule_rows(config: SamplingConfig, threshold: float | None) -> dict:
    """Forward rows per patch of one prompt's run of `config` under the cache's rules (None: no cache;
    inf: reuse wherever allowed, so only the schedule's forced steps run)."""
    counts = ForwardCounts()
    cache = make_cache(threshold)
    sample(_Field(), torch.randn(1, 4, 4, 8, 8), torch.ones(2, 1, 4), torch.ones(2, 1), config,
           step_cache=cache, counts=counts)
    return {name: counts.items.get(name, 0) for name in PATCHES}


def f24_estimate(demo_config: SamplingConfig, demo_rows: dict, timing: bool) -> list[dict]:
    """The f24 multi-scale preset on the 2B model: uncached rows per patch, the bound (every reusable
    step reused) and the estimate (each patch's reusable rows scaled by the demo's measured reuse
    fraction of that patch's reusable rows); costed by 2B FLOPs per row (672x384, 32 frames: latent
    8 x 48 x 84, 128 caption tokens) or, with `timing`, measured 1-block seconds per row."""
    from lumina_video.model.config import NextDiTConfig
    from lumina_video.model.presets import PRESETS as MODEL_PRESETS

    cfg2b = NextDiTConfig(**MODEL_PRESETS["2B_GQA"], cap_feat_dim=2304, in_channels=16)
    f24 = SamplingConfig.preset("f24F96R960-MultiScale")
    cost = {n: flops_per_item(cfg2b, (8 // pt) * (48 // p) * (84 // p), 128, (pt, p)) for n, (pt, p) in PATCHES.items()}
    if timing:
        cost = _measured_cost(cfg2b)
    d_plain, d_bound = schedule_rows(demo_config, None), schedule_rows(demo_config, math.inf)
    plain, bound = schedule_rows(f24, None), schedule_rows(f24, math.inf)
    frac = {n: (d_plain[n] - demo_rows[n]) / (d_plain[n] - d_bound[n]) if d_plain[n] > d_bound[n] else 0.0
            for n in PATCHES}
    est = {n: plain[n] - frac[n] * (plain[n] - bound[n]) for n in PATCHES}
    total = lambda rows: sum(rows[n] * cost[n] for n in PATCHES)  # noqa: E731
    return [dict(what=what, rows=rows, cost_ratio=total(rows) / total(plain))
            for what, rows in (("uncached", plain), ("estimate", est), ("bound", bound))] + \
        [dict(what="stage share of uncached cost", rows={n: plain[n] * cost[n] / total(plain) for n in PATCHES},
              cost_ratio=None)]


def _measured_cost(cfg2b) -> dict:
    """Seconds per row of one 2B-width block at each patch (B = 2, median of 3), on the f24 latent."""
    from lumina_video.model import MultiScaleNextDiT

    torch.manual_seed(0)
    model = MultiScaleNextDiT(dim=cfg2b.dim, n_layers=1, n_heads=cfg2b.n_heads, n_kv_heads=cfg2b.n_kv_heads,
                              cap_feat_dim=2304, in_channels=16).eval()
    x, cap, mask = torch.randn(2, 16, 8, 48, 84), torch.randn(2, 128, 2304), torch.ones(2, 128, dtype=torch.long)
    out = {}
    with torch.inference_mode():
        for name, (pt, p) in PATCHES.items():
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                model(x, torch.full((2,), 0.5), cap, mask, torch.full((2,), 6.0), patch_size=p, f_patch_size=pt)
                times.append(time.perf_counter() - t0)
            out[name] = statistics.median(times) / 2
    return out


def fmt(v, digits=2) -> str:
    return "—" if v is None else ("inf" if v == math.inf else f"{v:.{digits}f}")


def print_table(rows: list[dict], spearmen: dict) -> None:
    print("\n| sampling | threshold | rows run | FLOPs saved | wall-time ratio (min-max) | PSNR dB min / median "
          "| SSIM | colour | shape | direction | motion Spearman |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        rho = spearmen.get(r["threshold"]) if r["scale"] == "multi" else None
        print(f"| {r['scale']} | {'off' if r['threshold'] is None else r['threshold']} | {fmt(r['rows_ratio'])} | "
              f"{fmt(1 / r['flops_ratio'])}x | {fmt(r['time_ratio'])} ({fmt(r['time_spread'][0])}-"
              f"{fmt(r['time_spread'][1])}) | {fmt(r['psnr_min'], 1)} / {fmt(r['psnr_median'], 1)} | "
              f"{fmt(r['ssim_mean'], 3)} | {fmt(r['color'])} | {fmt(r['shape'])} | {fmt(r['direction'])} | "
              f"{fmt(rho)} |")


def plot(rows: list[dict], path) -> None:
    plt = files.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for scale in ("multi", "single"):
        mine = [r for r in rows if r["scale"] == scale and r["threshold"]]
        if mine:
            ax.plot([1 / r["flops_ratio"] for r in mine], [min(r["psnr_min"], 60) for r in mine], "o-",
                    label=f"{scale}-scale (min over videos)")
            for r in mine:
                ax.annotate(f"{r['threshold']:g}", (1 / r["flops_ratio"], min(r["psnr_min"], 60)), fontsize=8)
    ax.axhline(30, ls="--", c="gray", lw=0.8)
    ax.axvline(1.5, ls="--", c="gray", lw=0.8)
    ax.set_xlabel("transformer FLOPs saved (uncached / cached)")
    ax.set_ylabel("PSNR vs uncached video (dB)")
    ax.set_title("step cache on the bundled demo model")
    ax.legend()
    files.save_figure(fig, path)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="pipeline folder (default: the bundled demo model)")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5])
    ap.add_argument("--prompts", type=int, default=4, help="held-out prompts (default 4 of 20)")
    ap.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per prompt")
    ap.add_argument("--motion-prompts", type=int, default=1, help="moving prompts of the motion sweep")
    ap.add_argument("--motion-max", type=float, default=3.0, help="top of the sweep (the demo default is 1.5)")
    ap.add_argument("--levels", type=int, default=3, help="motion levels of the sweep")
    ap.add_argument("--no-single", action="store_true", help="skip the single-scale arm")
    ap.add_argument("--f24-timing", action="store_true", help="cost the f24 estimate by measured 1-block seconds")
    ap.add_argument("--forecast", choices=FORECASTS, default=StepCache.FORECAST, help="the velocity of a reused step")
    ap.add_argument("--forced", type=int, choices=(1, 2), default=StepCache.FORCED, help="steps computed per stage")
    ap.add_argument("--stage-scale", nargs="*", metavar="PATCH=SCALE", help="threshold factor per patch, e.g. 2x4=0 "
                    f"(default {' '.join(f'{k}={v:g}' for k, v in STAGE_SCALE.items())}; none given: 1 everywhere)")
    ap.add_argument("--quick", action="store_true", help="2 prompts, thresholds 0.2 0.5, a 2-level sweep of 1 prompt")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--out", default="bench_out/step_cache", help="folder of step_cache.png and step_cache.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.prompts, args.thresholds, args.motion_prompts, args.levels = 2, [0.2, 0.5], 1, 2
    return args


def main(argv=None) -> None:
    from pathlib import Path

    from lumina_video.pipeline import LuminaVideoPipeline

    args = parse_args(argv)
    scale = STAGE_SCALE if args.stage_scale is None else {k: float(v) for k, v in
                                                          (item.split("=") for item in args.stage_scale)}
    CACHE_OPTIONS.update(forecast=args.forecast, forced=args.forced, stage_scale=scale)
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = LuminaVideoPipeline.from_pretrained(args.model)
    held = ex.heldout_prompts(ex.HOLDOUT)
    prompts, seeds = [h["prompt"] for h in held[: args.prompts]], list(range(args.seeds))
    latent = pipe.latent_shape(1, *pipe.resolve_size())[1:]
    cap_len = int(pipe.encode_prompt([prompts[0]], [""], False)[1].shape[1])
    flops = lambda fw: flops_of(fw, pipe.transformer.config, latent, cap_len)  # noqa: E731
    t0 = time.perf_counter()
    print(f"demo model: latent {latent}, {cap_len} caption tokens, default sampling "
          f"{pipe.default_sampling.to_official()}; {len(prompts)} held-out prompts x {len(seeds)} seed(s); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {pipe.transformer.dtype}; "
          f"cache {CACHE_OPTIONS}")
    rows = run_arm(pipe, prompts, seeds, True, args.thresholds, flops)
    if not args.no_single:
        rows += run_arm(pipe, prompts, seeds, False, args.thresholds, flops)
    moving = [h["prompt"] for h in held if h["direction"]][: args.motion_prompts]
    rhos = motion_spearman(pipe, moving, ex.motion_levels(args.motion_max, args.levels), args.thresholds)
    print_table(rows, rhos)
    print(f"\nrows run: forward rows (a guided call of 1 prompt = 2 rows) over the uncached run's; FLOPs saved: "
          f"uncached / cached transformer FLOPs; motion Spearman: {len(moving)} prompt(s) x {args.levels} levels "
          f"0..{args.motion_max:g}, multi-scale; auto = {AUTO_THRESHOLD}")
    est = {r["threshold"]: f24_estimate(pipe.default_sampling, r["items"], args.f24_timing)
           for r in rows if r["scale"] == "multi" and r["threshold"]}
    unit = "1-block seconds" if args.f24_timing else "FLOPs"
    print(f"\nf24F96R960-MultiScale on the 2B model (cost per row: {unit})")
    print("| threshold | rows 2x4 / 2x2 / 1x2 (uncached) | estimated rows | bound rows | est. cost saved | bound |")
    print("|---|---|---|---|---|---|")
    for th, (plain, e, bound, _) in est.items():
        rows_of = lambda d: " / ".join(f"{d['rows'][n]:.1f}" for n in PATCHES)  # noqa: E731
        print(f"| {th} | {rows_of(plain)} | {rows_of(e)} | {rows_of(bound)} | {1 / e['cost_ratio']:.2f}x | "
              f"{1 / bound['cost_ratio']:.2f}x |")
    share = next(iter(est.values()))[3]["rows"] if est else {}
    print("uncached cost share by stage: " + ", ".join(f"{n} {v:.1%}" for n, v in share.items()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot(rows, out / "step_cache.png")
    files.write_json(out / "step_cache.json", dict(rows=rows, motion_spearman={str(k): v for k, v in rhos.items()},
                                                    f24={str(k): v for k, v in est.items()}, argv=vars(args)))
    print(f"\nwrote {out / 'step_cache.png'} and step_cache.json in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
