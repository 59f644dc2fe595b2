"""Sampling on 2 processes writes the one-process video: `torchrun --nproc_per_node 2 -m lumina_video.cli
generate PROMPT --seed 0 --parallel cfg|sp` with the bundled model, and `parallelize_pipeline` in Python.

Both change the order of float sums (cfg: batches of 1 instead of 2; sp: projections on token chunks,
attention on head shards), so the uint8 frames may differ from one process's by 1 grey level at a few
pixels (measured at 64x64, 8 frames, 4 steps: max 1 at 6 to 12 of 98,304 values for cfg, sp, sp on 4 and
cfg+sp on 4). The CLI test compares the frames the command wrote losslessly (`--save-frames`, NAME.npz):
the mp4 beside them is H.264 (crf 18), which turns a 1-level difference into a few levels at a few
pixels (measured for sp: 3 at most, mean 0.003), so the decoded mp4s are only checked to be close.

All in fp32 (`--dtype fp32`; from_pretrained's default): the CLI's default transformer dtype is bf16 on
CPUs with native bf16, where the same reorderings move the frames by up to 8 (cfg) and 21 (sp) grey
levels, mean 0.2-0.3 (measured at these settings): bf16 rounding, not a parallelism error.
"""
import json
import os
import subprocess
import sys

import av
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lumina_video.cli import main
from lumina_video.training.distributed import free_port

PROMPT = "a red circle moving to the right"
ARGS = ["--dtype", "fp32", "--seed", "0", "--steps", "4", "--height", "64", "--width", "64", "--num-frames", "8",
        "--no-progress", "--threads", "1", "--name", "v", "--save-frames"]
pytestmark = pytest.mark.usefixtures("single_thread")


def frames(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(np.int16)


def saved(folder) -> np.ndarray:
    with np.load(folder / "v.npz") as z:
        return z["frames"].astype(np.int16)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen-one")
    assert main(["generate", PROMPT, "--out", str(out), *ARGS]) == 0
    return out


def torchrun(mode: str, out) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           "-m", "lumina_video.cli", "generate", PROMPT, "--out", str(out), "--parallel", mode, *ARGS]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("wrote ") == 1  # rank 0 alone reports and writes


@pytest.mark.parametrize("mode", ["cfg", "sp"])
def test_torchrun_generate_parallel_writes_the_one_process_video(one_process, tmp_path, mode):
    torchrun(mode, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.json", "v.mp4", "v.npz"]
    record = json.loads((tmp_path / "v.json").read_text())
    assert record["parallel"] == f"{mode} x 2" and record["frames"] == "v.npz"
    want = saved(one_process)
    assert saved(tmp_path).shape == want.shape == (8, 64, 64, 3)
    diff = np.abs(saved(tmp_path) - want)
    assert diff.max() <= 1, diff.max()
    # the mp4 holds those frames, H.264 yuv420p-coded (measured mean 2.3 levels at 64x64: chroma subsampling)
    assert np.abs(frames(one_process / "v.mp4") - want).mean() <= 4
    encoded = np.abs(frames(tmp_path / "v.mp4") - frames(one_process / "v.mp4"))
    assert encoded.mean() <= 0.05, encoded.mean()


def _pipeline_worker(rank: int, world: int, port: int, mode: str, want: np.ndarray) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    from lumina_video.parallel import parallelize_pipeline
    from lumina_video.pipeline import LuminaVideoPipeline

    pipe = LuminaVideoPipeline.from_pretrained()
    run = parallelize_pipeline(pipe, mode)
    try:
        got = pipe(PROMPT, height=64, width=64, num_frames=8, steps=4, seed=0, progress=False).frames
        diff = int(np.abs(got.astype(np.int16) - want.astype(np.int16)).max())
        assert diff <= 1, (mode, diff)
    finally:
        run.close()
    assert not dist.is_initialized()


def test_parallelize_pipeline_frames_within_one_grey_level():
    from lumina_video.pipeline import LuminaVideoPipeline

    pipe = LuminaVideoPipeline.from_pretrained()
    want = pipe(PROMPT, height=64, width=64, num_frames=8, steps=4, seed=0, progress=False).frames
    mp.spawn(_pipeline_worker, args=(2, free_port(), "sp", want), nprocs=2, join=True)
