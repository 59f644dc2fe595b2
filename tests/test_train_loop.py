"""The one training loop, seen from both model families (DiT and VAE): the same non-finite stop (message
and exit code), resuming with changed settings (applied and recorded), a changed architecture refused in
one line, and the typed train state."""
import json
import re

import pytest
import torch
import yaml

from lumina_video.cli import main as cli_main
from lumina_video.configs import ConfigError, changes, flatten, to_dict
from lumina_video.data.synthetic import make_dataset
from lumina_video.training.build import build_transformer
from lumina_video.training.loop import TrainState
from lumina_video.training.trainer import train
from lumina_video.training.vae_trainer import load_vae_config, train_vae
from train_support import text_encoder, tiny_config, write_latent_manifest

pytestmark = pytest.mark.usefixtures("single_thread")
NON_FINITE = r"non-finite loss at step 1 \(stage '(s0|vae)'\): loss=nan.*the weights were not updated"


@pytest.fixture(scope="module")
def pixels(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("loop_data"), n=8, size=32, frames=12, fps=8, seed=0)


def vae_overrides(manifest, run, **kw):
    base = {"manifest": manifest, "run_dir": run, "size": 32, "crop": 32, "num_frames": 9, "batch_size": 2,
            "arch.channels": 8, "arch.latent_channels": 4, "log_every": 1, "checkpoint_every": 2, "holdout": 2,
            "steps": 4}
    return [f"{k}={v}" for k, v in {**base, **kw}.items()]


def dit_yaml(tmp_path, run, **top):
    manifest = write_latent_manifest(tmp_path, 4, media="video", frames=5, size=8)
    cfg = tiny_config(tmp_path / run, {"video-1x2": manifest}, **top)
    path = tmp_path / f"{run}.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    return path


def test_train_state_round_trip_and_old_vae_layout():
    state = TrainState(step=7, stage=1, stage_name="s1", data={"video-1x2": 3})
    again = TrainState()
    again.load_state_dict(json.loads(json.dumps(state.state_dict())))
    assert again == state
    old = TrainState()  # a VAE checkpoint written before the one loop kept its position at the top level
    old.load_state_dict({"step": 4, "epoch": 1, "position": 2, "crop_rng": [1, 2]})
    assert (old.step, old.data) == (4, {"epoch": 1, "position": 2, "crop_rng": [1, 2]})


def test_config_changes_are_listed_by_dotted_key():
    a = {"optim": {"lr": 1e-3}, "stages": [{"name": "s0", "tasks": [{"global_batch": 2}]}], "resume": "auto"}
    b = {"optim": {"lr": 5e-4}, "stages": [{"name": "s0", "tasks": [{"global_batch": 4}]}], "resume": "never"}
    assert flatten(a)["stages.0.tasks.0.global_batch"] == 2
    assert changes(a, b, ignore=("resume",)) == {"optim.lr": (1e-3, 5e-4), "stages.0.tasks.0.global_batch": (2, 4)}


def test_non_finite_loss_is_one_error_for_both_families(tmp_path, pixels, capsys):
    vae_cfg = tmp_path / "vae.yaml"
    vae_cfg.write_text("kl_weight: .nan\n")
    assert cli_main(["train-vae", str(vae_cfg), *vae_overrides(pixels, tmp_path / "vae"), "--no-progress"]) == 3
    vae_err = capsys.readouterr().err
    dit_cfg = dit_yaml(tmp_path, "dit", vd_weight=float("nan"))
    assert cli_main(["train", str(dit_cfg), "--no-progress"]) == 3
    dit_err = capsys.readouterr().err
    lines = []
    for err, command in ((vae_err, "train-vae"), (dit_err, "train")):
        assert "Traceback" not in err, err
        last = err.strip().splitlines()[-1]  # (transformers may print a weight-loading bar first)
        assert last.startswith(f"lumina-video {command}: stopped: "), err
        lines.append(last.split(": stopped: ", 1)[1])
    assert all(re.search(NON_FINITE, line) for line in lines), lines
    assert not (tmp_path / "vae/final").exists() and not (tmp_path / "dit/final").exists()


def test_dit_resume_with_changed_lr_is_applied_and_recorded(tmp_path):
    cfg = tiny_config(tmp_path / "run", {"video-1x2": write_latent_manifest(tmp_path, 4, media="video", frames=5,
                                                                             size=8)})
    train(cfg, text_encoder=text_encoder(), stop_at=2, progress=False)
    cfg.optim.lr = 2.5e-4
    result = train(cfg, text_encoder=text_encoder(), progress=False)
    assert result.step == 4
    run = tmp_path / "run"
    changed = [json.loads(line) for line in (run / "config_changes.jsonl").read_text().splitlines()]
    assert changed == [{"step": 2, "time": changed[0]["time"], "changes": {"optim.lr": [1e-3, 2.5e-4]}}]
    assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr"] == 2.5e-4  # what it ran with now
    optimizer = torch.load(run / "checkpoints/step_00000004/optimizer.pt", weights_only=True)
    assert {g["lr"] for g in optimizer["param_groups"]} == {2.5e-4}  # not the checkpoint's 1e-3
    assert [e["lr"] for e in result.history] == [1e-3, 1e-3, 2.5e-4, 2.5e-4]


def test_dit_resume_with_another_architecture_is_refused_in_one_line(tmp_path, capsys):
    path = dit_yaml(tmp_path, "run")
    assert cli_main(["train", str(path), "--stop-at", "2", "--no-progress"]) == 0
    capsys.readouterr()
    assert cli_main(["train", str(path), "model.args.qk_norm=false", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    err = err.strip().splitlines()[-1]
    assert err.startswith("lumina-video train: error: cannot resume from"), err
    assert "cannot resume from" in err and "architecture differs" in err and "qk_norm: True -> False" in err


def test_vae_resume_with_changed_lr_and_architecture(tmp_path, pixels):
    run = tmp_path / "vae"
    assert not train_vae(load_vae_config(None, vae_overrides(pixels, run)), progress=False, stop_at=2)["finished"]
    with pytest.raises(ConfigError, match=r"cannot resume from .*step_00000002.*arch.channels: 8 -> 16"):
        train_vae(load_vae_config(None, vae_overrides(pixels, run, **{"arch.channels": 16})), progress=False)
    out = train_vae(load_vae_config(None, vae_overrides(pixels, run, lr=1e-4)), progress=False)
    assert out["finished"] and out["step"] == 4
    changed = json.loads((run / "config_changes.jsonl").read_text().splitlines()[-1])
    assert changed["step"] == 2 and changed["changes"]["lr"] == [3e-4, 1e-4]
    optimizer = torch.load(run / "checkpoints/step_00000004/optimizer.pt", weights_only=True)
    assert {g["lr"] for g in optimizer["param_groups"]} == {1e-4}


def test_the_dit_log_counts_model_flops(tmp_path):
    """Every logged step carries the model FLOP rate: per item 3 x flops_per_item (forward + backward) with
    its own token and caption counts, so FLOP/s over tokens/s is fixed by the shapes."""
    from lumina_video.model.flops import train_flops_per_item

    manifest = write_latent_manifest(tmp_path, 4, media="video", frames=5, size=8)
    cfg = tiny_config(tmp_path / "run", {"video-1x2": manifest})
    cfg.stages[0].steps = 2
    result = train(cfg, text_encoder=text_encoder(), progress=False)
    entry = result.history[-1]
    assert entry["tflops_per_s"] > 0 and "mfu" not in entry  # no MFU on a CPU (no peak to divide by)
    model = build_transformer(cfg)
    # 8x8 latent, (1,2,2) patches, 4 latent frames after the first is dropped: 4 * 4 * 4 = 64 tokens an item
    per_token_ratio = entry["tflops_per_s"] * 1e12 / entry["tokens_per_s"]
    caption_lengths = range(1, 40)
    candidates = [train_flops_per_item(model.config, 64, c, patch=(1, 2)) / 64 for c in caption_lengths]
    assert min(candidates) * 0.999 <= per_token_ratio <= max(candidates) * 1.001
