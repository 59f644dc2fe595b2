"""End to end: `lumina-video train` on synthetic clips (pixels -> tiny VAE on the fly, MiniLM), then
`lumina-video generate --model RUN/final` with the exported pipeline."""
import json

import av
import pytest
import yaml

from lumina_video.cli import main as cli_main
from lumina_video.data.synthetic import make_dataset
from lumina_video.pipeline import LuminaVideoPipeline
from lumina_video.training.config import load_config
from train_support import CHANNELS, TEXT_DIM, vae_folder

pytestmark = pytest.mark.usefixtures("single_thread")


def test_train_command_then_generate(tmp_path, capsys):
    manifest = make_dataset(tmp_path / "synth", n=6, size=64, frames=17, fps=8, image_fraction=0.34)
    config = {
        "run_dir": str(tmp_path / "run"),
        "model": {"preset": "Tiny", "args": {"in_channels": CHANNELS, "cap_feat_dim": TEXT_DIM}},
        "encoders": {"text": "minilm", "vae": vae_folder(), "text_cache": 32, "text_layer": 0},
        "stages": [{"name": "pixels", "steps": 3, "tasks": [
            {"media": "video", "pt": 1, "p": 2, "size": 64, "fps": 8, "num_frames": 16, "global_batch": 2,
             "sources": [{"manifest": str(manifest), "system_prompt": "Synthetic clip: "}]},
            {"media": "image", "pt": 1, "p": 2, "size": 64, "global_batch": 2,
             "sources": [{"manifest": str(manifest)}]},
        ]}],
        "export_defaults": {"num_frames": 8},
        "log_every": 1,
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    assert cli_main(["train", str(path), "optim.lr=5e-4", "checkpoint.every=2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "trained 3 steps" in out and "video-1x2=" in out and "image-1x2=" in out

    run = tmp_path / "run"
    resolved = load_config(run / "config.yaml")
    assert resolved.optim.lr == 5e-4 and resolved.stages[0].tasks[0].name == "video-1x2"
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3]
    for key in ("loss", "loss/video-1x2", "loss/image-1x2", "samples_per_s", "tokens_per_s", "memory_mb"):
        assert all(e[key] > 0 for e in log), key
    # pixels: 17 frames -> 5 latent frames -> 4 after the first is dropped; (1,2,2) patches on 8x8:
    # 4 * 4 * 4 = 64 tokens per clip, 16 per image; 2 + 2 items per step
    assert log[0]["tokens_per_s"] / log[0]["samples_per_s"] == pytest.approx((2 * 64 + 2 * 16) / 4)
    assert (run / "loss.png").stat().st_size > 1000
    assert (run / "final/model_index.json").is_file()
    assert LuminaVideoPipeline.from_pretrained(run / "final").text_encoder.settings.layer == 0

    assert cli_main(["generate", "a red circle moving to the right", "--model", str(run / "final"),
                     "--out", str(tmp_path / "out"), "--name", "clip", "--steps", "2", "--device", "cpu"]) == 0
    with av.open(str(tmp_path / "out/clip.mp4")) as f:
        frames = [fr for fr in f.decode(video=0)]
    assert len(frames) == 8 and (frames[0].height, frames[0].width) == (64, 64)

    # a checkpoint midway, exported as a pipeline: its EMA weights, or the raw ones with --weights model
    import torch

    from lumina_video.files import load_safetensors

    ckpt = run / "checkpoints" / "step_00000002"
    assert cli_main(["export", str(ckpt)]) == 0 and "pipeline written to" in capsys.readouterr().out
    assert cli_main(["export", str(ckpt), "--weights", "model", "--out", str(tmp_path / "raw")]) == 0
    for folder, name in ((ckpt / "pipeline", "ema"), (tmp_path / "raw", "model")):
        pipe = LuminaVideoPipeline.from_pretrained(folder)
        saved = load_safetensors(ckpt / f"{name}.safetensors")
        assert all(torch.equal(v, saved[k]) for k, v in pipe.transformer.state_dict().items())
        assert pipe.defaults["num_frames"] == 8
        assert pipe.text_encoder.settings.layer == 0  # encoders.text_layer travels with the pipeline
    assert cli_main(["export", str(tmp_path / "synth")]) == 2  # not a checkpoint: a clear error
    assert "not a training checkpoint" in capsys.readouterr().err
