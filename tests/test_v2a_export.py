"""training/v2a_export.py: a train-v2a run becomes a LuminaV2APipeline folder that loads, holds the run's EMA
weights and the same seeded CLIP tower the features were made with, and makes a waveform of the clip's length."""
from pathlib import Path

import numpy as np
import pytest
import torch

from lumina_video import files
from lumina_video.data.synthetic_av import make_dataset
from lumina_video.data.video_io import read_video
from lumina_video.training.v2a_export import export_pipeline, main
from lumina_video.training.v2a_trainer import load_v2a_config, train_v2a

pytestmark = pytest.mark.usefixtures("single_thread")
AUDIO_VAE = Path(__file__).parent / "data" / "audio_vae_tiny"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("v2a_export")
    manifest, _ = make_dataset(root / "data", 3, size=64, seed=0, min_seconds=1.0, max_seconds=1.0)
    over = {"data.manifest": manifest, "run_dir": root / "run", "encoders.audio_vae": AUDIO_VAE, "batch_size": 2,
            "steps": 2, "log_every": 1, "checkpoint_every": 100, "arch.sync_size": 32, "arch.sync_channels": "[8, 16]",
            "arch.sync_width": 32, "arch.sync_dim": 32, "data.window_seconds": 1, "seed": 3}
    args = [f"{k}={v}" for k, v in over.items()]
    out = train_v2a(load_v2a_config(None, args), progress=False)
    return args, root, out["family"]


def test_exported_pipeline_holds_the_run_and_makes_audio_of_the_clips_length(trained):
    from lumina_video.pipeline.v2a import LuminaV2APipeline

    args, root, fam = trained
    assert main(["configs/v2a_tiny.yaml", str(root / "pipe"), *args, "--steps", "2", "--guidance", "1.5"]) == 0
    pipe = LuminaV2APipeline.from_pretrained(root / "pipe")
    assert type(pipe.vocoder).__name__ == "GriffinLim"
    assert pipe.defaults["num_inference_steps"] == 2 and pipe.defaults["guidance_scale"] == 1.5
    saved = files.load_safetensors(root / "run" / "final" / "transformer" / "model.safetensors")
    assert all(torch.equal(v, pipe.transformer.state_dict()[k]) for k, v in saved.items())
    frames, fps = read_video(root / "data" / "clips" / "000000.mp4")
    with torch.no_grad():  # the CLIP tower is the trainer's seeded one: the same features
        ours = pipe.clip.encode_video(frames, np.arange(len(frames)) / fps, rate=8, duration=1)[0]
        theirs = fam.enc.clip.encode_video(frames, np.arange(len(frames)) / fps, rate=8, duration=1)[0]
    assert torch.allclose(ours, theirs)
    audio = pipe(frames, fps=fps, seed=0, progress=False).audio
    assert audio.shape[-1] == round(len(frames) / fps * pipe.sample_rate) == 16000
    assert np.isfinite(audio).all()


def test_a_checkpoints_ema_weights_export_like_the_final_folder(trained):
    from lumina_video.pipeline.v2a import LuminaV2APipeline

    args, root, _ = trained
    step = sorted((root / "run" / "checkpoints").glob("step_*"))[-1]
    assert main(["configs/v2a_tiny.yaml", str(root / "ckpt_pipe"), *args, "--checkpoint", str(step)]) == 0
    pipe = LuminaV2APipeline.from_pretrained(root / "ckpt_pipe")
    for part in ("transformer", "sync_encoder"):
        saved = files.load_safetensors(root / "run" / "final" / part / "model.safetensors")
        assert all(torch.equal(v, getattr(pipe, part).state_dict()[k]) for k, v in saved.items()), part


def test_export_without_a_finished_run_is_a_one_line_error(trained, tmp_path):
    args, root, _ = trained
    cfg = load_v2a_config(None, [*args, f"run_dir={tmp_path / 'none'}"])
    with pytest.raises(FileNotFoundError, match="does not exist; finish the run"):
        export_pipeline(cfg, tmp_path / "pipe")
    with pytest.raises(FileNotFoundError, match="give a train-v2a checkpoint folder"):
        export_pipeline(cfg, tmp_path / "pipe", checkpoint=tmp_path)
    cfg = load_v2a_config(None, [*args, "encoders.train_sync=false"])
    with pytest.raises(ValueError, match="was trained with"):
        export_pipeline(cfg, tmp_path / "pipe")
