"""Forward time of each patch size, the model's FLOP rate against this machine's matmul rate, bf16 vs fp32,
and the relative cost of the multi-scale schedule.

The paper (Table 2) reports relative time (1,2,2) 1.00, (2,2,2) 0.36, (2,4,4) 0.07, combined 0.34.
Default: the released 2B width (dim 2304, 16 heads, 8 kv heads) with a few blocks (the ratio between
patch sizes does not depend on depth), on the latent of a 672x384, 32-frame video
(8 x 48 x 84 latent, 8,064 tokens at (1,2,2)), 128 caption tokens. Use --layers 24 for the full model's
absolute time.

Efficiency: the model's FLOPs (model/flops.py: matrix products only) over the forward time, as a
fraction of the rate of a plain matmul of the FFN's shape (tokens x dim) @ (dim x ffn) in the same
dtype. Each forward is followed at once by that matmul (so a machine shared with other jobs slows
both alike) and the fraction is the median over the --repeat pairs; times are medians of the
--repeat runs after a warm-up. --profile prints torch.profiler's top operators of one (1,2,2) forward.

    python bench/model_speed.py [--dtype fp32|bf16|both] [--layers 1] [--latent 8 48 84] [--repeat 3] [--profile]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from lumina_video.devices import cpu_has_native_bf16, parse_dtype
from lumina_video.model import MultiScaleNextDiT
from lumina_video.model.blocks import ffn_hidden_dim
from lumina_video.model.flops import flops_per_item
from lumina_video.sampling import SamplingConfig, step_plan

PATCHES = [(1, 2), (2, 2), (2, 4)]
PAPER = {(1, 2): "1.00", (2, 2): "0.36", (2, 4): "0.07"}
CAP_LEN = 128


def median_time(fn, repeat: int) -> float:
    """Median seconds of `repeat` calls of fn after one warm-up call."""
    return statistics.median(paired_times(fn, None, repeat)[0])


def paired_times(fn, other, repeat: int) -> tuple[list[float], list[float]]:
    """Seconds of fn and, right after each call, of `other` (None: not timed), `repeat` times after a warm-up."""
    with torch.inference_mode():
        fn()
        if other is not None:
            other()
        a, b = [], []
        for _ in range(repeat):
            for f, out in ((fn, a), (other, b)):
                if f is None:
                    continue
                t0 = time.perf_counter()
                f()
                out.append(time.perf_counter() - t0)
    return a, b


def ffn_matmul(tokens: int, dim: int, hidden: int, dtype):
    """(matmul callable, its FLOPs): (tokens x dim) @ (dim x hidden) in `dtype`, the FFN's w1 shape."""
    a, b = torch.randn(tokens, dim, dtype=dtype), torch.randn(dim, hidden, dtype=dtype)
    return (lambda: a @ b), 2.0 * tokens * dim * hidden


def build(args, dtype):
    torch.manual_seed(0)
    model = MultiScaleNextDiT(dim=args.dim, n_layers=args.layers, n_heads=args.heads, n_kv_heads=args.kv_heads,
                              cap_feat_dim=args.dim, in_channels=16).to(dtype).eval()
    with torch.no_grad():  # non-zero gates so every path does its real work
        for p in model.parameters():
            p.normal_(0, 0.02)
    return model


def forward_fn(model, b: int, args, dtype, patch):
    f, h, w = args.latent
    x = torch.randn(b, 16, f, h, w, dtype=dtype)
    cap = torch.randn(b, CAP_LEN, args.dim, dtype=dtype)
    mask = torch.ones(b, CAP_LEN, dtype=torch.bool)
    t, motion = torch.full((b,), 0.5), torch.full((b,), 6.0)
    pt, p = patch
    return lambda: model(x, t, cap, mask, motion, patch_size=p, f_patch_size=pt)


def measure(args, dtype_name: str) -> dict:
    """Per patch: tokens, forward seconds at B=1 and B=2, FLOPs at B=1, and the fraction of the matmul
    rate (median over forward/matmul pairs); plus the median matmul rate."""
    dtype = parse_dtype(dtype_name)
    model = build(args, dtype)
    f, h, w = args.latent
    mm, mm_flops = ffn_matmul(f * h * w // 4, args.dim, ffn_hidden_dim(args.dim, 256, None), dtype)
    out, mm_times = {}, []
    for pt, p in PATCHES:
        tokens = (f // pt) * (h // p) * (w // p)
        flops = flops_per_item(model.config, tokens, CAP_LEN, (pt, p))
        fwd, mmt = paired_times(forward_fn(model, 1, args, dtype, (pt, p)), mm, args.repeat)
        mm_times += mmt
        out[(pt, p)] = dict(tokens=tokens, b1=statistics.median(fwd), flops=flops,
                            fraction=statistics.median((flops / a) / (mm_flops / b) for a, b in zip(fwd, mmt)),
                            b2=median_time(forward_fn(model, 2, args, dtype, (pt, p)), args.repeat))
    out["matmul"] = mm_flops / statistics.median(mm_times)
    if args.profile:
        profile(forward_fn(model, 1, args, dtype, (1, 2)), dtype_name)
    return out


def profile(fn, label: str, top: int = 12) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch.inference_mode():
        fn()
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
    print(f"\ntorch.profiler, one (1,2,2) forward, {label}: top {top} operators by self CPU time")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top, max_name_column_width=48))


def schedule_cost(config: SamplingConfig, r: dict) -> float:
    """Seconds for one sampling run: per step the forward of that step's patch, both branches when guided."""
    return sum(r[step.patch]["b2" if step.guidance != 0 else "b1"] for step in step_plan(config))


def report(label: str, r: dict) -> None:
    base = r[(1, 2)]["b1"]
    print(f"\n{label}: matmul {r['matmul'] / 1e9:.0f} GFLOP/s (FFN shape, median over the pairs)")
    print("| patch (pt,p,p) | tokens | forward s (B=1) | forward s (B=2, CFG) | GFLOP/s | of matmul rate | relative "
          "| paper |")
    print("|---|---|---|---|---|---|---|---|")
    for patch in PATCHES:
        e = r[patch]
        rate = e["flops"] / e["b1"]
        print(f"| ({patch[0]},{patch[1]},{patch[1]}) | {e['tokens']} | {e['b1']:.3f} | {e['b2']:.3f} "
              f"| {rate / 1e9:.0f} | {e['fraction']:.0%} | {e['b1'] / base:.2f} | {PAPER[patch]} |")
    single, multi = SamplingConfig.preset("f24F96R960"), SamplingConfig.preset("f24F96R960-MultiScale")
    s_cost, m_cost = schedule_cost(single, r), schedule_cost(multi, r)
    print(f"| schedule f24F96R960-MultiScale vs f24F96R960 ({multi.steps} vs {single.steps} steps) | | "
          f"{m_cost:.1f} s vs {s_cost:.1f} s per block | | | | {m_cost / s_cost:.2f} | 0.34 |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=int, default=2304)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--latent", type=int, nargs=3, default=[8, 48, 84], metavar=("F", "H", "W"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dtype", choices=["fp32", "bf16", "both"], default="both")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--profile", action="store_true", help="print torch.profiler's top operators per dtype")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = ["fp32", "bf16"] if args.dtype == "both" else [args.dtype]
    f, h, w = args.latent
    print(f"model: dim {args.dim}, {args.layers} block(s), {args.heads}/{args.kv_heads} heads; latent (F,H,W) = "
          f"({f},{h},{w}), {CAP_LEN} caption tokens; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"native CPU bf16: {cpu_has_native_bf16()}; medians of {args.repeat}")
    results = {name: measure(args, name) for name in names}
    for name in names:
        report(name, results[name])
    if len(names) == 2:
        a, b = results["fp32"], results["bf16"]
        ratios = ", ".join(f"({pt},{p},{p}) {a[(pt, p)]['b1'] / b[(pt, p)]['b1']:.2f}x" for pt, p in PATCHES)
        print(f"\nbf16 speed-up over fp32 (B=1 forward, same run): {ratios}; matmul {b['matmul'] / a['matmul']:.2f}x")


if __name__ == "__main__":
    main()
