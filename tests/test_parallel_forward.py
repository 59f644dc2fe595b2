"""Ulysses sequence parallelism (lumina_video.parallel) on 2 and 4 gloo processes: the forward equals
one process's within 1e-5 for every patch shape, a ragged list batch, an image, GQA with fewer kv heads
than ranks and token counts that do not divide by the ranks; a guidance-split batch too.

Each process builds the same seeded model, computes the one-process forward first, then makes the
model parallel and computes it again on the same inputs."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lumina_video.model import MultiScaleNextDiT
from lumina_video.parallel import parallelize_sequence, parallelize_transformer
from lumina_video.training.distributed import free_port
from train_support import gloo_process

TOL = 1e-5
PATCHES = [(1, 2), (2, 2), (2, 4)]  # (pt, p)


def tiny_model(n_heads: int, n_kv_heads: int) -> MultiScaleNextDiT:
    """Random (non-zero) weights everywhere, so that gates, adaLN and the final layer all act."""
    torch.manual_seed(0)
    model = MultiScaleNextDiT(all_patch_size=(2, 2, 4), all_f_patch_size=(1, 2, 2), in_channels=4, dim=64,
                              n_layers=2, n_heads=n_heads, n_kv_heads=n_kv_heads, multiple_of=16, cap_feat_dim=32)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    return model.eval()


def cases():
    """(name, x, patch): a video batch per patch shape, a ragged list (15, 30 and 16 tokens), an image
    batch; the token counts (e.g. 6x6x10 = 360 at 1x2, 3x3x5 = 45 at 2x4) mostly do not divide by 2 or 4."""
    g = torch.Generator().manual_seed(1)
    rnd = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    out = [(f"video-{pt}x{p}", rnd(2, 4, 6, 12, 20), (pt, p)) for pt, p in PATCHES]
    out.append(("ragged", [rnd(4, 2, 6, 10), rnd(4, 4, 10, 6), rnd(4, 1, 8, 8)], (2, 2)))
    out.append(("image", rnd(2, 4, 1, 6, 10), (1, 2)))
    return out


def forward(model, x, patch, g):
    b = len(x) if isinstance(x, list) else x.shape[0]
    cap = torch.randn(b, 5, 32, generator=g)
    cap_mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]][:b], dtype=torch.bool)
    t, motion = torch.rand(b, generator=g), torch.tensor([1.0, -1.0, 3.0][:b])
    with torch.no_grad():
        return model(x, t, cap, cap_mask, motion, patch_size=patch[1], f_patch_size=patch[0])


def max_diff(a, b) -> float:
    if isinstance(a, list):
        return max(max_diff(x, y) for x, y in zip(a, b))
    return float((a - b).abs().max())


def _worker(rank: int, world: int, port: int, heads: tuple) -> None:
    with gloo_process(rank, world, port):
        model = tiny_model(*heads)
        runs = [(name, x, patch) for name, x, patch in cases()]
        want = [forward(model, x, patch, torch.Generator().manual_seed(i)) for i, (_, x, patch) in enumerate(runs)]
        parallelize_sequence(model, dist.group.WORLD)
        for i, ((name, x, patch), ref) in enumerate(zip(runs, want)):
            got = forward(model, x, patch, torch.Generator().manual_seed(i))
            diff = max_diff(got, ref)
            assert diff <= TOL, (name, world, heads, diff)
            assert max_diff(ref, [r * 0 for r in ref] if isinstance(ref, list) else ref * 0) > 0.1, name
        # choosing the kernel afterwards keeps it inside the all-to-alls (no silent local-only attention)
        model.set_attention_backend("sdpa")
        assert max_diff(forward(model, runs[2][1], runs[2][2], torch.Generator().manual_seed(2)), want[2]) <= TOL
        # the generation layouts: "cfg" (rows [0:1] on rank 0, [1:2] on rank 1) and "cfg+sp" (2 x 2)
        model = parallelize_transformer(tiny_model(*heads), "cfg" if world == 2 else "cfg+sp")
        for i in (0, 3):
            _, x, patch = runs[i]
            got = forward(model, x, patch, torch.Generator().manual_seed(i))
            assert max_diff(got, want[i]) <= TOL, (i, world, max_diff(got, want[i]))


@pytest.mark.parametrize("world, heads", [(2, (4, 1)), (4, (4, 2))], ids=["2-ranks-gqa-1kv", "4-ranks-gqa-2kv"])
def test_sequence_parallel_forward_equals_one_process(world, heads):
    mp.spawn(_worker, args=(world, free_port(), heads), nprocs=world, join=True)
