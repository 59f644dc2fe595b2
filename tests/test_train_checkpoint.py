"""Checkpoints survive a kill in the middle of a save; a non-finite loss stops the run cleanly."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import lumina_video
from lumina_video.configs import to_dict
from lumina_video.training.checkpoint import CheckpointManager
from lumina_video.training.distributed import DistEnv
from lumina_video.training.loop import NonFiniteLossError
from lumina_video.training.trainer import train
from train_support import max_abs_diff, text_encoder, tiny_config, weights, write_latent_manifest

pytestmark = pytest.mark.usefixtures("single_thread")

# Runs a training in a child process that SIGKILLs itself right after `ema.safetensors` of the
# step-4 checkpoint is written into its temporary folder (model and EMA written, the rest not).
KILLED_RUN = """
import json, os, signal, sys
from lumina_video.configs import from_dict
from lumina_video.training.config import TrainConfig, check_config
from lumina_video.training.trainer import train
cfg = from_dict(TrainConfig, json.loads(sys.argv[1]))  # already resolved
check_config(cfg)
def hook(path):
    if path.parent.name == ".step_00000004.tmp" and path.name == "ema.safetensors":
        os.kill(os.getpid(), signal.SIGKILL)
train(cfg, checkpoint_hook=hook, progress=False)  # loads the bundled MiniLM itself
"""


def config(tmp_path, run):
    videos = write_latent_manifest(tmp_path, 4, media="video", frames=5, size=8)
    cfg = tiny_config(tmp_path / run, {"video-1x2": videos})
    cfg.stages[0].steps = 6
    return cfg


def test_kill_during_save_leaves_previous_checkpoint(tmp_path):
    cfg = config(tmp_path, "killed")
    paths = [str(Path(lumina_video.__file__).parents[1]), str(Path(__file__).parent)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths + [os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, json.dumps(to_dict(cfg))], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]

    root = tmp_path / "killed/checkpoints"
    assert (root / ".step_00000004.tmp/ema.safetensors").is_file()  # the save really was cut short
    assert not (root / ".step_00000004.tmp/state.json").exists()
    manager = CheckpointManager(root, DistEnv())
    assert manager.latest() == root / "step_00000002"
    ck = manager.load(manager.latest())
    assert ck["state"]["step"] == 2 and ck["model"] and ck["optimizer"]["state"]

    # the same command continues from step 2, removes the partial folder, and ends where an
    # uninterrupted run ends
    resumed = train(cfg, text_encoder=text_encoder(), progress=False)
    assert resumed.step == 6 and not (root / ".step_00000004.tmp").exists()
    straight = train(config(tmp_path, "straight"), text_encoder=text_encoder(), progress=False)
    assert max_abs_diff(weights(resumed.final / "transformer"), weights(straight.final / "transformer")) <= 1e-6


class NaNAfter:
    """The real text encoder, whose features become NaN after `calls` calls (a diverging run)."""

    def __init__(self, calls):
        self.inner, self.left, self.dim = text_encoder(), calls, text_encoder().dim

    def encode(self, prompts, system_prompt=None):
        feats, mask = self.inner.encode(prompts, system_prompt)
        self.left -= 1
        return (feats * float("nan"), mask) if self.left < 0 else (feats, mask)


def test_non_finite_loss_stops_with_last_good_checkpoint(tmp_path):
    cfg = config(tmp_path, "nan")  # global batch 2, micro 1: two encoder calls per step
    cfg.encoders.text_cache = 0
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step 5 .*step_00000004"):
        train(cfg, text_encoder=NaNAfter(calls=8), progress=False)
    root = tmp_path / "nan/checkpoints"
    assert [p.name for p in CheckpointManager(root, DistEnv()).list()] == ["step_00000002", "step_00000004"]
    log = [json.loads(line) for line in (tmp_path / "nan/log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3, 4]  # nothing logged or saved for the bad step
    assert not (tmp_path / "nan/final").exists()
