"""On paper: time per video and scaling of multi-GPU sampling for the released 2B model (no GPU needed).

The video: 96 frames at 960 px, the 16:9 aspect bucket of size 960 (704 x 1280, data/buckets.py), so
T = 24 latent frames of 88 x 160; the f24F96R960-MultiScale preset (sampling/presets.py): 30 guided
steps at (2,4,4), 24 guided at (2,2,2), 6 guided + 9 unguided at (1,2,2) (step_plan of the preset).
Per model forward of one item with N tokens and S caption tokens:

    compute    flops_per_item(2B, N, S, patch) / P   (model/flops.py: matrix products, 2 FLOPs per MAC)
               at peak x MFU per GPU
    Ulysses    per block, every rank sends (P-1)/P of   (N_pad / P) head_dim (Hq + 2 Hk)   [q | k | v]
    (P ranks)                                      +   (N_pad / P) head_dim Hq             [output]
               bf16 values (Hk = Hkv lcm(Hkv, P) / Hkv: kv heads repeated when P > Hkv = 8), plus once
               per forward the all-gather before the final layer, (P-1)/P N dim values received
    cfg        guided steps: the two branches on two GPU groups, one forward each instead of two; the
               output (C T H W bf16) all-gathered between the groups; unguided steps: no gain
Links: NVLink inside a node at --nvlink GB/s per GPU and direction (H100 SXM: 900 GB/s bidirectional),
--ib GB/s per GPU between nodes (one 400 Gb/s NIC per GPU = 50 GB/s). A collective spanning nodes
takes the longer of its intra- and inter-node parts. Nothing overlaps: communication adds to compute
(Ulysses' all-to-alls sit between the projections and the attention). Not counted: text encoding, VAE
decoding, norms, RoPE, softmax, kernel launches, and the lower MFU of smaller shards: the estimate is
an upper bound on the speedup (HunyuanVideo's published 5.64x on 8 GPUs is what an Amdahl serial share
of 6% would give). No GPU was used to produce these numbers.

Layouts: 1, 2, 4, 8 GPUs in one node (sp P; cfg 2 x sp P/2) and 16 GPUs on 2 nodes (sp 16 across the
nodes; cfg 2 across the nodes x sp 8 inside each). The published Ulysses scaling of HunyuanVideo (xDiT,
H100, 1280x720, 129 frames, 50 steps: 1904.08 / 925.04 / 514.08 / 337.58 s on 1 / 2 / 4 / 8 GPUs,
xdit-project/xDiT docs/performance/hunyuanvideo.md) is printed beside the estimate.

    python bench/parallel_scaling.py [--mfu 0.4] [--peak 989] [--nvlink 450] [--ib 50] [--cap-len 256]
"""
from __future__ import annotations

import argparse
import math
from collections import Counter
from dataclasses import dataclass

from lumina_video.data.buckets import make_buckets, nearest_bucket
from lumina_video.model import NextDiTConfig
from lumina_video.model.flops import flops_per_item
from lumina_video.sampling import SamplingConfig
from lumina_video.sampling.presets import PRESETS
from lumina_video.sampling.solver import step_plan

PRESET = "f24F96R960-MultiScale"
FRAMES, SIZE, ASPECT = 96, 960, (720, 1280)
BYTES = 2  # bf16
GPUS_PER_NODE = 8
# xDiT's HunyuanVideo report (H100, 1280x720, 129 frames, 50 steps, Ulysses): seconds by GPU count
HUNYUAN_H100 = {1: 1904.08, 2: 925.04, 4: 514.08, 8: 337.58}


@dataclass(frozen=True)
class Layout:
    name: str
    gpus: int
    cfg: int  # 1 or 2 groups for the guidance branches
    sp: int   # Ulysses ranks per group

    @property
    def nodes(self) -> int:
        return max(1, self.gpus // GPUS_PER_NODE)


@dataclass(frozen=True)
class Links:
    nvlink: float  # bytes/s per GPU and direction inside a node
    ib: float      # bytes/s per GPU between nodes


def video_shape() -> tuple[int, int, int]:
    """Latent (T, H, W) of the 96-frame 960-px 16:9 video: the bucket of size 960 nearest 16:9, / 8."""
    h, w = nearest_bucket(*ASPECT, make_buckets(SIZE))
    return FRAMES // 4, h // 8, w // 8


def tokens(shape, patch) -> int:
    (t, h, w), (pt, p) = shape, patch
    return (t // pt) * (h // p) * (w // p)


def step_counts() -> Counter:
    """{(patch, guided): steps} of the preset."""
    plan = step_plan(SamplingConfig.from_official(PRESETS[PRESET]))
    return Counter((s.patch, s.guidance > 0) for s in plan)


def collective_seconds(nbytes: float, ranks: int, links: Links) -> float:
    """Time of a collective in which each of `ranks` consecutive GPUs sends `nbytes` spread evenly over
    the others: the intra-node share on NVLink and the off-node share on the NICs, in parallel."""
    if ranks <= 1:
        return 0.0
    peers = ranks - 1
    off_node = max(0, ranks - GPUS_PER_NODE) if ranks > GPUS_PER_NODE else 0
    on_node = peers - off_node
    return max(nbytes * on_node / peers / links.nvlink, nbytes * off_node / peers / links.ib)


def ulysses_bytes(cfg: NextDiTConfig, n: int, ranks: int) -> float:
    """Bytes one rank sends per forward: the two all-to-alls of every block plus the final all-gather."""
    if ranks <= 1:
        return 0.0
    hd = cfg.dim // cfg.n_heads
    hk = cfg.n_kv_heads * (math.lcm(cfg.n_kv_heads, ranks) // cfg.n_kv_heads)
    local = math.ceil(n / ranks)
    per_block = local * hd * (2 * cfg.n_heads + 2 * hk) * (ranks - 1) / ranks
    gather = n * cfg.dim * (ranks - 1) / ranks
    return BYTES * (cfg.n_layers * per_block + gather)


def forward_seconds(cfg, n, cap_len, patch, sp: int, rate: float, links: Links) -> tuple[float, float]:
    """(compute, communication) seconds of one item's forward on an sp group."""
    compute = flops_per_item(cfg, n, cap_len, patch) / sp / rate
    return compute, collective_seconds(ulysses_bytes(cfg, n, sp), sp, links)


def video_seconds(layout: Layout, cfg, cap_len: int, rate: float, links: Links) -> dict:
    """Denoising seconds of one video: compute, communication and their sum, over the preset's steps."""
    shape, out = video_shape(), dict(compute=0.0, comm=0.0)
    latent_bytes = BYTES * cfg.in_channels * shape[0] * shape[1] * shape[2]
    cfg_link = links.ib if layout.cfg == 2 and layout.nodes == 2 else links.nvlink
    for (patch, guided), steps in step_counts().items():
        n = tokens(shape, patch)
        compute, comm = forward_seconds(cfg, n, cap_len, patch, layout.sp, rate, links)
        forwards = 2 if guided and layout.cfg == 1 else 1
        gather = latent_bytes / cfg_link if guided and layout.cfg == 2 else 0.0
        out["compute"] += steps * forwards * compute
        out["comm"] += steps * (forwards * comm + gather)
    out["total"] = out["compute"] + out["comm"]
    return out


def layouts() -> list[Layout]:
    rows = [Layout("1 GPU", 1, 1, 1), Layout("sp 2", 2, 1, 2), Layout("cfg 2", 2, 2, 1)]
    for g in (4, 8):
        rows += [Layout(f"sp {g}", g, 1, g), Layout(f"cfg 2 x sp {g // 2}", g, 2, g // 2)]
    rows += [Layout("sp 16 (2 nodes)", 16, 1, 16), Layout("cfg 2 (nodes) x sp 8", 16, 2, 8)]
    return rows


def stage_table(cfg, cap_len: int, rate: float) -> list[str]:
    shape = video_shape()
    lines = ["| stage (pt,p,p) | tokens | forward TFLOPs | steps (guided + unguided) | 1-GPU seconds |",
             "|---|---|---|---|---|"]
    counts = step_counts()
    for patch in sorted({p for p, _ in counts}, key=lambda p: tokens(shape, p)):
        n = tokens(shape, patch)
        flops = flops_per_item(cfg, n, cap_len, patch)
        g, u = counts.get((patch, True), 0), counts.get((patch, False), 0)
        lines.append(f"| ({patch[0]},{patch[1]},{patch[1]}) | {n:,} | {flops / 1e12:,.0f} | {g} + {u} | "
                     f"{(2 * g + u) * flops / rate:,.0f} |")
    return lines


def scaling_table(cfg, cap_len: int, rate: float, links: Links) -> list[str]:
    base = video_seconds(Layout("1", 1, 1, 1), cfg, cap_len, rate, links)["total"]
    lines = ["| GPUs | layout | compute s | communication s | seconds per video | speedup | efficiency | "
             "HunyuanVideo (xDiT, H100) |", "|---|---|---|---|---|---|---|---|"]
    for lay in layouts():
        s = video_seconds(lay, cfg, cap_len, rate, links)
        ulysses_only = lay.cfg == 1 and lay.gpus in HUNYUAN_H100  # the published runs are Ulysses only
        published = f"{HUNYUAN_H100[1] / HUNYUAN_H100[lay.gpus]:.2f}x" if ulysses_only else ""
        lines.append(f"| {lay.gpus} | {lay.name} | {s['compute']:,.0f} | {s['comm']:,.1f} | {s['total']:,.0f} | "
                     f"{base / s['total']:.2f}x | {base / s['total'] / lay.gpus:.0%} | {published} |")
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mfu", type=float, default=0.4, help="model FLOP utilisation of each GPU (default 0.4)")
    ap.add_argument("--peak", type=float, default=989.0, help="dense bf16 TFLOP/s per GPU (H100: 989)")
    ap.add_argument("--nvlink", type=float, default=450.0, help="GB/s per GPU and direction inside a node")
    ap.add_argument("--ib", type=float, default=50.0, help="GB/s per GPU between nodes (400 Gb/s = 50)")
    ap.add_argument("--cap-len", type=int, default=256, help="caption tokens (Gemma-2 max_length 256)")
    args = ap.parse_args(argv)
    cfg, rate = NextDiTConfig(), args.peak * 1e12 * args.mfu
    links = Links(args.nvlink * 1e9, args.ib * 1e9)
    t, h, w = video_shape()
    print(f"2B model, {FRAMES} frames {h * 8}x{w * 8} (latent {t}x{h}x{w}), {PRESET}, captions of {args.cap_len} "
          f"tokens; {args.peak:g} TFLOP/s x MFU {args.mfu:g}; NVLink {args.nvlink:g} GB/s, IB {args.ib:g} GB/s "
          f"per GPU; no overlap; on paper (no GPU used)\n")
    print("\n".join(stage_table(cfg, args.cap_len, rate)) + "\n")
    print("\n".join(scaling_table(cfg, args.cap_len, rate, links)))


if __name__ == "__main__":
    main()
