"""Training throughput per patch size: one optimizer step = forward + backward + AdamW step, through
the trainer's own loss (`lumina_video.training.step.flow_loss`), on random latents and captions.

Prints, per patch shape (pt, p): tokens per item, seconds per step, samples/s, tokens/s and, on
CUDA, the model FLOPs utilisation (MFU = model FLOPs per second / the GPU's peak bf16 dense FLOPs).
Model FLOPs of a training step = 3 x forward (forward 1x, backward 2x); forward FLOPs per item:
    per block: 2 N (dim^2 [wq] + 2 dim kv [wk, wv] + dim^2 [wo] + 3 dim h [SwiGLU])
               + 2 S cap_dim 2 kv [wk_y, wv_y on the S text tokens]
               + 4 N N dim [self-attention QK^T and AV] + 4 N S dim [text attention]
    plus 2 N patch dim (x_embedder) + 2 N dim patch (final layer); adaLN and embedders (per item) ignored.
Activation checkpointing recomputes the forward (4 x forward of work) but MFU counts 3 x, as usual.

    python bench/train_speed.py                          # Small model (MiniLM width), CPU figures
    python bench/train_speed.py --preset 2B_GQA --latent 16 60 104 --batch 1 --ac --compile   # a GPU
"""
from __future__ import annotations

import argparse
import time

import torch

from lumina_video.model import build_model, count_params
from lumina_video.model.blocks import ffn_hidden_dim
from lumina_video.model.embed import token_grid
from lumina_video.training.config import TaskConfig, TrainConfig
from lumina_video.training.distributed import autocast
from lumina_video.training.step import MicroBatch, flow_loss

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "4090": 165.0}


def forward_flops(cfg: dict, n: int, s: int) -> float:
    dim, heads, kv_heads = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"]
    kv = kv_heads * dim // heads
    h = ffn_hidden_dim(dim, cfg["multiple_of"], cfg["ffn_dim_multiplier"])
    per_block = (2 * n * (2 * dim * dim + 2 * dim * kv + 3 * dim * h) + 4 * s * cfg["cap_feat_dim"] * kv
                 + 4 * n * n * dim + 4 * n * s * dim)
    return cfg["n_layers"] * per_block


def peak_flops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v * 1e12 for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="Small", help="model preset (Tiny, Small, 2B_GQA, 4B_GQA)")
    ap.add_argument("--layers", type=int, default=None, help="override the number of blocks")
    ap.add_argument("--latent", type=int, nargs=3, default=[8, 32, 32], metavar=("F", "H", "W"),
                    help="latent frames, height, width of a video item (default: 8 x 32 x 32 = 256 px, 33 frames)")
    ap.add_argument("--text-len", type=int, default=64, help="caption tokens")
    ap.add_argument("--cap-dim", type=int, default=None,
                    help="caption feature width (default: 2304, Gemma-2-2B, for 2B/4B; 384, MiniLM, otherwise)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="timed steps (after 1 warm-up step)")
    ap.add_argument("--patches", nargs="+", default=["1x2", "2x2", "2x4"], help="pt x p shapes")
    ap.add_argument("--dtype", choices=["auto", "fp32", "bf16"], default="auto", help="auto: bf16 on CUDA")
    ap.add_argument("--ac", action="store_true", help="activation checkpointing per block")
    ap.add_argument("--compile", action="store_true", help="torch.compile per block")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads")
    ap.add_argument("--peak-tflops", type=float, default=None, help="peak dense TFLOPs for MFU (default: by GPU name)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"auto": torch.bfloat16 if device.type == "cuda" else torch.float32,
             "fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    cap_dim = args.cap_dim or (2304 if args.preset in ("2B_GQA", "4B_GQA") else 384)
    overrides = {"in_channels": 16, "cap_feat_dim": cap_dim}
    if args.layers:
        overrides["n_layers"] = args.layers
    torch.manual_seed(0)
    try:
        model = build_model(args.preset, **overrides)
    except TypeError:  # presets fix their size; rebuild with the preset's size and the new depth
        from lumina_video.model import PRESETS, MultiScaleNextDiT

        model = MultiScaleNextDiT(**{**PRESETS[args.preset].size, **overrides})
    model = model.to(device).train()
    if args.ac or args.compile:
        from lumina_video.training.distributed import DistEnv, wrap_model

        model = wrap_model(model, DistEnv(device=device), shard=False, dtype=dtype,
                           activation_checkpointing=args.ac, compile=args.compile)
    mcfg = model.config
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, betas=(0.9, 0.95), eps=1e-15)
    train_cfg = TrainConfig()
    peak = peak_flops(device, args.peak_tflops)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"model {args.preset} ({count_params(model) / 1e6:.1f} M params, dim {mcfg['dim']}, {mcfg['n_layers']} "
          f"layers), latent {tuple(args.latent)} x batch {args.batch}, text {args.text_len} tokens, "
          f"{str(dtype).replace('torch.', '')}{', AC' if args.ac else ''}{', compiled' if args.compile else ''}; {name}")
    print(f"{'patch':>6} {'tokens/item':>11} {'s/step':>8} {'samples/s':>10} {'tokens/s':>10} {'TFLOP/s':>8} {'MFU':>6}")

    c = mcfg["in_channels"]
    for spec in args.patches:
        pt, p = (int(v) for v in spec.split("x"))
        if not model.has_patch(p, pt):
            print(f"{spec:>6}  (not in this model)")
            continue
        task = TaskConfig(name=spec, pt=pt, p=p, shift=1.0)
        gens = [torch.Generator().manual_seed(i) for i in range(args.batch)]
        x1 = [torch.randn(c, *args.latent, generator=g).to(device) for g in gens]
        cap = torch.randn(args.batch, args.text_len, mcfg["cap_feat_dim"], device=device)
        mask = torch.ones(args.batch, args.text_len, dtype=torch.bool, device=device)
        n_tok = int(torch.tensor(token_grid((c, *args.latent), pt, p)).prod())
        mb = MicroBatch(x1, cap, mask, torch.full((args.batch,), 4.0, device=device), gens, n_tok * args.batch)

        def step():
            with autocast(device, dtype, sharded=False):
                loss = flow_loss(model, mb, task, train_cfg).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
            opt.step()
            opt.zero_grad(set_to_none=True)

        step()  # warm-up (and compilation)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / args.steps
        flops = 3 * forward_flops(mcfg, n_tok, args.text_len) * args.batch / dt
        mfu = f"{100 * flops / peak:5.1f}%" if peak else "   n/a"
        print(f"{spec:>6} {n_tok:>11} {dt:>8.3f} {args.batch / dt:>10.2f} {n_tok * args.batch / dt:>10.0f} "
              f"{flops / 1e12:>8.3f} {mfu:>6}")


if __name__ == "__main__":
    main()
