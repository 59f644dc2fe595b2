"""FSDP2 x Ulysses sequence parallelism trains like one process, and its checkpoint resumes in one process.

`distributed.sequence_parallel: 2` on 2 gloo processes (dp 1 x sp 2) and on 4 (dp 2 x sp 2), the Tiny
model (2 heads, 1 kv head: GQA with fewer kv heads than ranks) on three tasks (video 1x2, image 1x2 of 9 tokens:
padded to 10, video 2x4). The parallel run stops after 2 steps; its step-2 checkpoint must equal the one-process run's,
and one process resuming from it must reach the uninterrupted run's step 3.

Tolerance: as tests/test_train_distributed.py, the runs add the same per-item gradients in a different
order (per-rank partial sums, the all-to-alls' and the reduce-scatter's), so they differ by float32
rounding: weights within 1e-6 (the weights move by ~3e-3), logged losses within 1e-6. Measured: step-2
weights 5e-10 (dp1 x sp2) and 2e-9 (dp2 x sp2) apart, the resumed step 3 2e-8 and 6e-7. The step-3
maximum sits in one element of layers.0.feed_forward.w3 (whose gradient is exactly 0 at step 1, when the
adaLN gates are still 0, and tiny at step 2): AdamW's m / (sqrt(v) + eps) turns the float rounding of a
near-zero gradient into a visible step. With a global batch of 2 both layouts measure 5e-7 there, so the
batch stays 4, where the must-show 2-process layout has a 45x margin.
The 4-process layout is marked slow (about 40 s here).
"""
import json

import pytest
import torch.multiprocessing as mp

from lumina_video.configs import from_dict, to_dict
from lumina_video.training.config import TrainConfig, check_config, resolve_config
from lumina_video.training.distributed import free_port
from lumina_video.training.trainer import train
from train_support import gloo_process, max_abs_diff, text_encoder, tiny_config, weights, write_latent_manifest

pytestmark = pytest.mark.usefixtures("single_thread")
TOL = 1e-6


def _worker(rank: int, world: int, port: int, cfg_dict: dict) -> None:
    with gloo_process(rank, world, port):
        cfg = resolve_config(from_dict(TrainConfig, cfg_dict))
        check_config(cfg)
        assert train(cfg, progress=False, stop_at=2).step == 2


def config(tmp_path, run, sp: int = 1):
    videos = write_latent_manifest(tmp_path, 8, media="video", frames=9, size=8)
    images = write_latent_manifest(tmp_path, 8, media="image", size=6, name="images.jsonl")
    cfg = tiny_config(tmp_path / run, {"video-1x2": videos, "image-1x2": images, "video-2x4": videos})
    cfg.stages[0].steps = 3
    for task in cfg.stages[0].tasks:
        task.global_batch, task.micro_batch = 4, 1
    cfg.ema.every, cfg.checkpoint.every, cfg.checkpoint.keep_last = 1, 1, 3
    cfg.distributed.sequence_parallel = sp
    cfg.distributed.activation_checkpointing = sp > 1  # recomputed blocks re-shard their inputs: same numbers
    return cfg


def step_dir(tmp_path, run, step):
    return tmp_path / run / "checkpoints" / f"step_{step:08d}"


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The one-process reference run (3 steps, a checkpoint after each), shared by both layouts."""
    root = tmp_path_factory.mktemp("parallel-train")
    return root, train(config(root, "single"), text_encoder=text_encoder(), progress=False)


@pytest.mark.parametrize("world", [2, pytest.param(4, marks=pytest.mark.slow)], ids=["dp1-sp2", "dp2-sp2"])
def test_fsdp_x_sequence_parallel_matches_one_process_and_resumes_in_one(tmp_path, single, world):
    ref, single = single
    mp.spawn(_worker, args=(world, free_port(), to_dict(config(tmp_path, "sp", sp=2))), nprocs=world, join=True)

    a, b = step_dir(ref, "single", 2), step_dir(tmp_path, "sp", 2)
    print(f"world {world}: step-2 weight diff {max_abs_diff(weights(a), weights(b)):.2e}")
    assert max_abs_diff(weights(a), weights(b)) <= TOL, max_abs_diff(weights(a), weights(b))
    assert max_abs_diff(weights(a / "ema.safetensors"), weights(b / "ema.safetensors")) <= TOL
    assert max_abs_diff(weights(a), weights(step_dir(ref, "single", 1))) > 1000 * TOL  # they moved
    logs = [json.loads(line) for line in (tmp_path / "sp/log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in logs] == [1, 2]
    for x, y in zip(single.history, logs):
        for key in ("loss", "loss/video-1x2", "loss/image-1x2", "loss/video-2x4"):
            print(f"world {world}: {key} {x[key]:.7f} vs {y[key]:.7f}")
            assert abs(x[key] - y[key]) <= TOL, (key, x[key], y[key])

    # the sequence-parallel checkpoint (whole tensors) continues in one plain process, exactly
    assert train(config(tmp_path, "sp"), text_encoder=text_encoder(), progress=False).step == 3
    c, d = step_dir(ref, "single", 3), step_dir(tmp_path, "sp", 3)
    print(f"world {world}: resumed step-3 weight diff {max_abs_diff(weights(c), weights(d)):.2e}")
    assert max_abs_diff(weights(c), weights(d)) <= TOL, max_abs_diff(weights(c), weights(d))
    assert max_abs_diff(weights(c / "ema.safetensors"), weights(d / "ema.safetensors")) <= TOL
