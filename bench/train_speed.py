"""Training throughput per patch size: one optimizer step = forward + backward + AdamW step, through
the trainer's own loss (`lumina_video.training.step.flow_loss`), on random latents and captions.

Prints, per patch shape (pt, p): tokens per item, seconds per step, samples/s, tokens/s and, on
CUDA, the model FLOPs utilisation (MFU = model FLOPs per second / the GPU's peak bf16 dense FLOPs).
Model FLOPs of a training step = 3 x forward (`lumina_video.model.flops`, which states what is
counted), with the patch embedder and final layer of the shape included.
Activation checkpointing recomputes the forward (4 x forward of work) but MFU counts 3 x, as usual.

    python bench/train_speed.py                          # Small model (MiniLM width), CPU figures
    python bench/train_speed.py --preset 2B_GQA --latent 16 60 104 --batch 1 --ac --compile   # a GPU
"""
from __future__ import annotations

import argparse
import time

import torch

from lumina_video.devices import default_device, default_dtype, dtype_name, parse_dtype
from lumina_video.model import PRESETS, MultiScaleNextDiT, count_params, peak_bf16_flops, train_flops_per_item
from lumina_video.model.embed import token_grid
from lumina_video.training.config import TaskConfig, TrainConfig
from lumina_video.training.distributed import autocast
from lumina_video.training.step import MicroBatch, flow_loss


def peak_flops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override * 1e12
    if device.type != "cuda":
        return None
    return peak_bf16_flops(torch.cuda.get_device_name(device))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="Small", choices=list(PRESETS), help="model size preset")
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
    return ap.parse_args()


def build(args, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """The preset's size (depth from --layers when given), 16 latent channels, wrapped as asked."""
    cap_dim = args.cap_dim or (2304 if args.preset in ("2B_GQA", "4B_GQA") else 384)
    fields = {**PRESETS[args.preset], "in_channels": 16, "cap_feat_dim": cap_dim}
    if args.layers:
        fields["n_layers"] = args.layers
    torch.manual_seed(0)
    model = MultiScaleNextDiT(**fields).to(device).train()
    if args.ac or args.compile:
        from lumina_video.training.distributed import DistEnv, wrap_model

        model = wrap_model(model, DistEnv(device=device), shard=False, dtype=dtype,
                           activation_checkpointing=args.ac, compile=args.compile)
    return model


def micro_batch(args, config: dict, pt: int, p: int, device: torch.device) -> MicroBatch:
    """Random latents (args.latent per item), captions and motion scores for one step."""
    c = config["in_channels"]
    gens = [torch.Generator().manual_seed(i) for i in range(args.batch)]
    x1 = [torch.randn(c, *args.latent, generator=g).to(device) for g in gens]
    cap = torch.randn(args.batch, args.text_len, config["cap_feat_dim"], device=device)
    mask = torch.ones(args.batch, args.text_len, dtype=torch.bool, device=device)
    n_tok = int(torch.tensor(token_grid((c, *args.latent), pt, p)).prod())
    return MicroBatch(x1, cap, mask, torch.full((args.batch,), 4.0, device=device), gens, n_tok * args.batch)


def seconds_per_step(model, opt, mb: MicroBatch, task: TaskConfig, device, dtype, steps: int) -> float:
    """Mean wall time of `steps` optimizer steps after one warm-up (and compilation) step."""
    train_cfg = TrainConfig()

    def step():
        with autocast(device, dtype, sharded=False):
            loss = flow_loss(model, mb, task, train_cfg).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(default_device())
    dtype = default_dtype(device) if args.dtype == "auto" else parse_dtype(args.dtype)
    model = build(args, device, dtype)
    mcfg = model.config
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, betas=(0.9, 0.95), eps=1e-15)
    peak = peak_flops(device, args.peak_tflops)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"model {args.preset} ({count_params(model) / 1e6:.1f} M params, dim {mcfg['dim']}, {mcfg['n_layers']} "
          f"layers), latent {tuple(args.latent)} x batch {args.batch}, text {args.text_len} tokens, "
          f"{dtype_name(dtype)}{', AC' if args.ac else ''}{', compiled' if args.compile else ''}; {name}")
    print(f"{'patch':>6} {'tokens/item':>11} {'s/step':>8} {'samples/s':>10} {'tokens/s':>10} "
          f"{'TFLOP/s':>8} {'MFU':>6}")
    for spec in args.patches:
        pt, p = (int(v) for v in spec.split("x"))
        if not model.has_patch(patch_size=p, f_patch_size=pt):
            print(f"{spec:>6}  (not in this model)")
            continue
        mb = micro_batch(args, mcfg, pt, p, device)
        n_tok = mb.tokens // args.batch
        dt = seconds_per_step(model, opt, mb, TaskConfig(name=spec, pt=pt, p=p, shift=1.0), device, dtype, args.steps)
        flops = train_flops_per_item(mcfg, n_tok, args.text_len, patch=(pt, p)) * args.batch / dt
        mfu = f"{100 * flops / peak:5.1f}%" if peak else "   n/a"
        print(f"{spec:>6} {n_tok:>11} {dt:>8.3f} {args.batch / dt:>10.2f} {n_tok * args.batch / dt:>10.0f} "
              f"{flops / 1e12:>8.3f} {mfu:>6}")


if __name__ == "__main__":
    main()
