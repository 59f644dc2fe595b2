"""Forward time of each patch size, and the relative cost of the multi-scale schedule.

The paper (Table 2) reports relative time (1,2,2) 1.00, (2,2,2) 0.36, (2,4,4) 0.07, combined 0.34.
Default: the released 2B width (dim 2304, 16 heads, 8 kv heads) with a few blocks (the ratio between
patch sizes does not depend on depth), on the latent of a 672x384, 32-frame video
(8 x 48 x 84 latent, 8,064 tokens at (1,2,2)). Use --layers 24 for the full model's absolute time.

    python bench/model_speed.py [--layers 1] [--latent 8 48 84] [--repeat 2]
"""
from __future__ import annotations

import argparse
import time

import torch

from lumina_video.devices import parse_dtype
from lumina_video.model import MultiScaleNextDiT
from lumina_video.sampling import SamplingConfig, step_plan


def timed_forward(model, x, cap, mask, p, pt, repeat):
    b = x.shape[0]
    args = (torch.full((b,), 0.5), cap[:b], mask[:b], torch.full((b,), 6.0), p, pt)
    with torch.inference_mode():
        model(x, *args)  # warm-up
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            model(x, *args)
            best = min(best, time.perf_counter() - t0)
    return best


def schedule_cost(config: SamplingConfig, times: dict, times_cfg: dict) -> float:
    """Seconds for one sampling run: per step the forward of that step's patch, both branches when guided."""
    return sum((times_cfg if step.guidance != 0 else times)[step.patch] for step in step_plan(config))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=int, default=2304)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--latent", type=int, nargs=3, default=[8, 48, 84], metavar=("F", "H", "W"))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = parse_dtype(args.dtype)

    torch.manual_seed(0)
    model = MultiScaleNextDiT(dim=args.dim, n_layers=args.layers, n_heads=args.heads, n_kv_heads=args.kv_heads,
                              cap_feat_dim=args.dim, in_channels=16).to(dtype).eval()
    with torch.no_grad():  # non-zero gates so every path does its real work
        for p in model.parameters():
            p.normal_(0, 0.02)
    f, h, w = args.latent
    cap = torch.randn(2, 128, args.dim, dtype=dtype)
    mask = torch.ones(2, 128, dtype=torch.long)
    x1 = torch.randn(1, 16, f, h, w, dtype=dtype)
    x2 = torch.randn(2, 16, f, h, w, dtype=dtype)

    print(f"model: dim {args.dim}, {args.layers} block(s), {args.heads}/{args.kv_heads} heads, {args.dtype}; "
          f"latent (F,H,W) = ({f},{h},{w}); torch {torch.__version__}, {torch.get_num_threads()} threads")
    times, times_cfg = {}, {}
    rows = []
    for pt, p in [(1, 2), (2, 2), (2, 4)]:
        tokens = (f // pt) * (h // p) * (w // p)
        times[(pt, p)] = timed_forward(model, x1, cap, mask, p, pt, args.repeat)
        times_cfg[(pt, p)] = timed_forward(model, x2, cap, mask, p, pt, args.repeat)
        rows.append((pt, p, tokens))

    base = times[(1, 2)]
    paper = {(1, 2): "1.00", (2, 2): "0.36", (2, 4): "0.07"}
    print("\n| patch (pt,p,p) | tokens | forward s (B=1) | forward s (B=2, CFG) | relative | paper |")
    print("|---|---|---|---|---|---|")
    for pt, p, tokens in rows:
        print(f"| ({pt},{p},{p}) | {tokens} | {times[(pt, p)]:.3f} | {times_cfg[(pt, p)]:.3f} | "
              f"{times[(pt, p)] / base:.2f} | {paper[(pt, p)]} |")

    single = SamplingConfig.preset("f24F96R960")
    multi = SamplingConfig.preset("f24F96R960-MultiScale")
    s_cost, m_cost = schedule_cost(single, times, times_cfg), schedule_cost(multi, times, times_cfg)
    print("\n| schedule | steps | est. seconds per block | relative | paper |")
    print("|---|---|---|---|---|")
    print(f"| f24F96R960 (1,2,2) only | {single.steps} | {s_cost:.1f} | 1.00 | 1.00 |")
    print(f"| f24F96R960-MultiScale | {multi.steps} | {m_cost:.1f} | {m_cost / s_cost:.2f} | 0.34 |")


if __name__ == "__main__":
    main()
