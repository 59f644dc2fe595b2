"""Two gloo processes with FSDP2 (stopping and resuming on the way) train the V2A model and its sync encoder like
one process on the same global batch.

Tolerance: the two runs add the same per-item gradients in a different order (per-process partial sums, then
FSDP's reduce-scatter average), so they differ by float32 rounding, amplified a little by AdamW's normalisation.
Stated tolerance: after 3 steps at lr 1e-3 (the weights move by 3e-3) the weights, the EMA and the exported folders
agree within 1e-6 (measured: weights 1.2e-7, EMA 8.9e-8); the logged losses within 1e-5 relative. At lr 3e-3 the
weights differed by 1.9e-6: AdamW divides by sqrt(v), which magnifies rounding where gradients are tiny.
"""
import json

import pytest
import torch.multiprocessing as mp

from lumina_video import files
from lumina_video.audio.vae import AudioVAE, tiny_audio_vae_config
from lumina_video.data.synthetic_av import make_dataset
from lumina_video.training.distributed import free_port
from lumina_video.training.v2a_trainer import build_v2a, load_v2a_config, train_v2a
from train_support import gloo_process

pytestmark = pytest.mark.usefixtures("single_thread")
WEIGHT_TOL = 1e-6


def _worker(rank: int, world: int, port: int, overrides: list[str]) -> None:
    with gloo_process(rank, world, port):
        cfg = load_v2a_config(None, overrides)
        # stop after 2 steps, then continue: only process 0 reads the checkpoint and broadcasts it into the shards
        assert train_v2a(cfg, progress=False, stop_at=2)["step"] == 2
        assert train_v2a(cfg, progress=False)["finished"]


def overrides(root, run) -> list[str]:
    over = {"data.manifest": root / "data" / "manifest.jsonl", "run_dir": root / run,
            "encoders.audio_vae": root / "vae",
            "batch_size": 4, "steps": 3, "lr": 1e-3, "log_every": 1, "checkpoint_every": 2, "keep_last": 3,
            "arch.sync_size": 32, "arch.sync_channels": "[8, 16]", "arch.sync_width": 32, "arch.sync_dim": 32,
            "data.window_seconds": 1}
    return [f"{k}={v}" for k, v in over.items()]


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.mark.slow
def test_two_process_fsdp_matches_one_process_for_v2a(tmp_path):
    make_dataset(tmp_path / "data", 4, size=64, seed=0, min_seconds=2.0, max_seconds=2.0, two_object_prob=0.0,
                 still_prob=0.0)
    AudioVAE.from_config(tiny_audio_vae_config()).save_pretrained(tmp_path / "vae")
    single = train_v2a(load_v2a_config(None, overrides(tmp_path, "single")), progress=False)
    assert single["finished"] and not single["family"].shard
    mp.spawn(_worker, args=(2, free_port(), overrides(tmp_path, "fsdp")), nprocs=2, join=True)

    a, b = tmp_path / "single/checkpoints/step_00000003", tmp_path / "fsdp/checkpoints/step_00000003"
    for name in ("model.safetensors", "ema.safetensors"):
        diff = max_diff(files.load_safetensors(a / name), files.load_safetensors(b / name))
        assert diff <= WEIGHT_TOL, (name, diff)
    for part in ("transformer", "sync_encoder"):
        diff = max_diff(*(files.load_safetensors(tmp_path / r / "final" / part / "model.safetensors")
                          for r in ("single", "fsdp")))
        assert diff <= WEIGHT_TOL, (part, diff)
    # the weights moved far more than the tolerance, so the comparison means something
    fam = single["family"]
    start = {f"model.{k}": v for k, v in build_v2a(fam.cfg, fam.enc).state_dict().items()}
    trained = {k: v for k, v in files.load_safetensors(a / "model.safetensors").items() if k in start}
    assert max_diff(trained, start) > 1000 * WEIGHT_TOL
    logs = [[json.loads(line) for line in (tmp_path / r / "log.jsonl").read_text().splitlines()]
            for r in ("single", "fsdp")]
    assert [e["step"] for e in logs[1]] == [1, 2, 3]
    for x, y in zip(*logs):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-5)
    # the 2-process checkpoint (whole tensors) resumes in one process
    more = load_v2a_config(None, [*overrides(tmp_path, "fsdp"), "steps=4"])
    assert train_v2a(more, progress=False)["step"] == 4
