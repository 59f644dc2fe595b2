"""A tiny model memorises one clip: the flow-matching loss on fixed draws falls by more than 10x."""
import pytest
import torch

from lumina_video import files
from lumina_video.model import load_state_dict_checked
from lumina_video.training.build import build_transformer
from lumina_video.training.data import build_dataset, task_records
from lumina_video.training.step import CaptionEncoder, flow_loss, prepare
from lumina_video.training.trainer import train
from train_support import text_encoder, tiny_config, write_latent_manifest

pytestmark = pytest.mark.usefixtures("single_thread")


def fixed_draw_loss(model, cfg, n=16):
    """Mean loss over n items of the clip with draws keyed by a step never used in training."""
    task = cfg.stages[0].tasks[0]
    records, prompts = task_records(task, cfg.seed)
    ds = build_dataset(task, cfg, records, prompts)
    items = [ds[0]] * n
    mb = prepare(items, list(range(n)), task=task, cfg=cfg, step=10**9, captions=CaptionEncoder(text_encoder(), 8),
                 vae=None, device="cpu")
    with torch.no_grad():
        return float(flow_loss(model.eval(), mb, task, cfg).mean())


def test_tiny_model_overfits_one_clip(tmp_path):
    # one clip: latent (C=4, F=5, 8, 8) -> 4 frames after the first is dropped; task video-(2,2,2), shift 4
    manifest = write_latent_manifest(tmp_path, 1, media="video", frames=5, size=8)
    cfg = tiny_config(tmp_path / "run", {"video-2x2": manifest}, caption_dropout=0.0, log_every=50)
    cfg.stages[0].steps = 200
    cfg.optim.lr = 1e-2
    cfg.checkpoint.every = 1000
    task = cfg.stages[0].tasks[0]
    task.sources[0].ratio, task.global_batch, task.micro_batch = 16.0, 16, 16  # the clip 16 times

    before = fixed_draw_loss(build_transformer(cfg), cfg)
    result = train(cfg, text_encoder=text_encoder(), progress=False)
    trained = build_transformer(cfg)
    load_state_dict_checked(trained, files.load_safetensors(result.last_checkpoint / "model.safetensors"))
    after = fixed_draw_loss(trained, cfg)

    assert result.step == 200
    assert before > 2.0  # zero-initialised output: MSE = E|u|^2 (about 2) plus 1 - cos = 1
    assert after < before / 10, (before, after)
    # the logged training loss fell too
    assert result.history[-1]["loss"] < result.history[0]["loss"]
