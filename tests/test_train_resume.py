"""Exact resume: N steps in one go == k steps, stop, resume to N (two stages, EMA, data order)."""
import pytest

from lumina_video.training.checkpoint import CheckpointManager
from lumina_video.training.distributed import DistEnv
from lumina_video.training.trainer import train
from train_support import max_abs_diff, text_encoder, tiny_config, weights, write_latent_manifest

pytestmark = pytest.mark.usefixtures("single_thread")


def two_stage_config(tmp_path, run):
    videos = write_latent_manifest(tmp_path, 6, media="video", frames=9, size=8)
    images = write_latent_manifest(tmp_path, 4, media="image", size=8, name="images.jsonl")
    cfg = tiny_config(tmp_path / run, {"video-1x2": videos, "image-1x2": images})
    cfg.stages[0].steps = 3
    second = tiny_config(tmp_path / run, {"video-2x2": videos, "video-2x4": videos}).stages[0]
    second.name, second.steps, second.lr = "s1", 3, 5e-4
    cfg.stages.append(second)
    return cfg


def test_stop_and_resume_equals_one_run(tmp_path):
    straight = train(two_stage_config(tmp_path, "a"), text_encoder=text_encoder(), progress=False)
    assert straight.step == 6 and straight.final is not None

    cfg = two_stage_config(tmp_path, "b")
    first = train(cfg, text_encoder=text_encoder(), stop_at=2, progress=False)  # stops inside stage 0
    assert first.stopped_early and first.step == 2 and first.final is None
    cfg.num_workers = 1  # the data loader's worker processes change nothing
    second = train(cfg, text_encoder=text_encoder(), stop_at=4, progress=False)  # crosses into stage 1
    assert second.step == 4
    cfg.num_workers = 0
    third = train(cfg, text_encoder=text_encoder(), progress=False)
    assert third.step == 6 and third.final is not None

    a, b = tmp_path / "a", tmp_path / "b"
    assert max_abs_diff(weights(a / "checkpoints/step_00000006"), weights(b / "checkpoints/step_00000006")) <= 1e-6
    assert max_abs_diff(weights(a / "checkpoints/step_00000006/ema.safetensors"),
                        weights(b / "checkpoints/step_00000006/ema.safetensors")) <= 1e-6
    assert max_abs_diff(weights(a / "final/transformer"), weights(b / "final/transformer")) <= 1e-6
    # the same losses at every step, and one log for the whole resumed run
    assert [e["step"] for e in third.history] == list(range(1, 7))
    for x, y in zip(straight.history, third.history):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-6, abs=1e-7)
    # the model changed in stage 1 (so the comparison is not between two untouched models)
    assert max_abs_diff(weights(a / "checkpoints/step_00000004"), weights(a / "checkpoints/step_00000006")) > 1e-4


def test_keep_last_and_checkpoint_contents(tmp_path):
    cfg = two_stage_config(tmp_path, "run")
    cfg.checkpoint.every, cfg.checkpoint.keep_last = 1, 2
    train(cfg, text_encoder=text_encoder(), progress=False)
    manager = CheckpointManager(tmp_path / "run/checkpoints", DistEnv())
    assert [p.name for p in manager.list()] == ["step_00000005", "step_00000006"]
    ck = manager.load(manager.latest())
    assert ck["state"]["step"] == 6 and ck["state"]["stage_name"] == "s1"
    assert set(ck["state"]["data"]) == {"video-2x2", "video-2x4"} and ck["state"]["data"]["video-2x2"] == 3
    assert ck["rng"] is not None and set(ck["rng"]) == {"torch", "cuda", "numpy", "python"}
    assert "stages:" in ck["config"]
    assert all(name in ck["optimizer"]["state"] for name in ("layers.0.attention.wq.weight",))


@pytest.mark.slow
def test_init_from_a_model_folder(tmp_path):
    """A run can start from exported weights (e.g. a fine-tune after the stages)."""
    first = train(two_stage_config(tmp_path, "a"), text_encoder=text_encoder(), progress=False)
    cfg = two_stage_config(tmp_path, "ft")
    cfg.model.init_from = str(first.final / "transformer")
    with pytest.raises(Exception, match="cannot be combined with model.init_from"):
        train(cfg, text_encoder=text_encoder(), progress=False)
    cfg.model.args = {}
    cfg.stages = cfg.stages[:1]
    cfg.stages[0].steps = 1
    cfg.optim.lr = 1e-12  # (almost) no change: the run starts from the exported EMA weights
    result = train(cfg, text_encoder=text_encoder(), progress=False)
    assert max_abs_diff(weights(first.final / "transformer"), weights(result.last_checkpoint)) < 1e-8
