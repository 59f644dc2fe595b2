"""train-audio-vae and train-vocoder on the one loop: exact resume, the exported folders load into the
audio classes, the report, the loss falls, config errors and the shared non-finite stop."""
import json
import math

import numpy as np
import pytest
import torch

from lumina_video.audio.media import write_wav
from lumina_video.audio.vae import AudioVAE
from lumina_video.audio.vocoder import Vocoder
from lumina_video.cli import main as cli_main
from lumina_video.configs import ConfigError
from lumina_video.training.audio_vae_trainer import load_audio_vae_config, train_audio_vae
from lumina_video.training.vocoder_trainer import load_vocoder_config, multi_resolution_stft_loss, train_vocoder

pytestmark = pytest.mark.usefixtures("single_thread")
SR = 16000


def strikes(times, note, seconds=1.5, seed=0):
    """A decaying tone starting at each time (5 ms attack, 150 ms decay) over a -60 dBFS noise floor."""
    rng = np.random.default_rng(seed)
    wave = 1e-3 * rng.standard_normal(int(seconds * SR))
    k = np.arange(int(0.6 * SR))
    envelope = np.minimum(k / (0.005 * SR), 1.0) * np.exp(-k / (0.15 * SR))
    for t in times:
        n = int(round(t * SR))
        seg = envelope[: len(wave) - n] * np.sin(2 * np.pi * note * k[: len(wave) - n] / SR)
        wave[n:n + len(seg)] += 0.4 * seg
    return wave.astype(np.float32)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio_clips")
    lines = []
    for i, note in enumerate([523.25, 587.33, 659.26, 783.99, 880.0, 1046.5]):
        write_wav(root / f"clip{i}.wav", strikes([0.2 + 0.1 * i, 0.9], note, seed=i))
        lines.append(json.dumps({"audio_path": f"clip{i}.wav", "type": "audio", "caption": f"clip {i}"}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return root / "manifest.jsonl"


def vae_cfg(manifest, run, **kw):
    over = {"data.manifest": manifest, "run_dir": run, "data.segment_seconds": 0.64, "data.holdout": 2,
            "batch_size": 2, "steps": 4, "log_every": 1, "checkpoint_every": 2, **kw}
    return load_audio_vae_config(None, [f"{k}={v}" for k, v in over.items()])


def vocoder_cfg(manifest, run, **kw):
    over = {"data.manifest": manifest, "run_dir": run, "data.segment_seconds": 0.32, "data.holdout": 2,
            "batch_size": 2, "steps": 4, "log_every": 1, "checkpoint_every": 2, "arch.channels": 32, **kw}
    return load_vocoder_config(None, [f"{k}={v}" for k, v in over.items()])


@pytest.mark.parametrize("kind", ["vae", "vocoder"])
def test_resume_is_exact_and_the_export_loads(manifest, tmp_path, kind):
    cfg, train, cls = ((vae_cfg, train_audio_vae, AudioVAE) if kind == "vae"
                       else (vocoder_cfg, train_vocoder, Vocoder))
    straight = train(cfg(manifest, tmp_path / "a"), progress=False)
    assert straight["finished"] and straight["step"] == 4
    first = train(cfg(manifest, tmp_path / "b"), progress=False, stop_at=2)
    assert not first["finished"] and first["step"] == 2
    second = train(cfg(manifest, tmp_path / "b"), progress=False)
    assert second["finished"]
    a = cls.from_pretrained(tmp_path / "a" / "final").model.state_dict()
    b = cls.from_pretrained(tmp_path / "b" / "final").model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0)
    report = json.loads((tmp_path / "a" / "final_report.json").read_text())
    assert len(report["holdout"]) == 2 and 0 <= report["mean_onset_f1"] <= 1 and report["mean_log_mel_l1"] > 0
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3, 4]


def test_audio_vae_learns_and_records_its_latent_scale(manifest, tmp_path):
    out = train_audio_vae(vae_cfg(manifest, tmp_path / "r", steps=60, lr=3e-3, checkpoint_every=100,
                                  log_every=1), progress=False)
    log = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    early, late = np.mean([e["loss/l1"] for e in log[:10]]), np.mean([e["loss/l1"] for e in log[-10:]])
    assert late < 0.5 * early, (early, late)
    vae = AudioVAE.from_pretrained(tmp_path / "r" / "final")
    assert vae.scaling_factor != 1.0 and math.isfinite(vae.scaling_factor)
    assert out["finished"]


def test_stft_loss_is_zero_for_equal_waves_and_grows_with_error():
    x = torch.randn(2, 4096)
    assert float(multi_resolution_stft_loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    small = float(multi_resolution_stft_loss(x + 0.01 * torch.randn_like(x), x))
    large = float(multi_resolution_stft_loss(x + 0.5 * torch.randn_like(x), x))
    assert 0 < small < large


def test_config_errors(manifest, tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'arch.width'"):
        load_audio_vae_config(None, [f"data.manifest={manifest}", "arch.width=3"])
    with pytest.raises(ConfigError, match="segment_seconds' must give a multiple of 4 mel frames"):
        load_audio_vae_config(None, [f"data.manifest={manifest}", "data.segment_seconds=0.05"])
    with pytest.raises(ConfigError, match="'data.manifest': 'nope.jsonl' does not exist"):
        load_vocoder_config(None, ["data.manifest=nope.jsonl"])
    with pytest.raises(ConfigError, match="'arch.channels' must be a multiple of 2\\^5"):
        load_vocoder_config(None, [f"data.manifest={manifest}", "arch.channels=16"])
    with pytest.raises(ConfigError, match="must multiply to the mel hop 160"):
        load_vocoder_config(None, [f"data.manifest={manifest}", "arch.upsample_rates=[4,4,2,2,2]"])


def test_non_finite_loss_stops_like_every_trainer(manifest, tmp_path, capsys):
    over = [f"data.manifest={manifest}", f"run_dir={tmp_path / 'nan'}", "kl_weight=.nan", "steps=2",
            "data.segment_seconds=0.64", "batch_size=2"]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("{}\n")
    assert cli_main(["train-audio-vae", str(cfg), *over, "--no-progress"]) == 3
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("lumina-video train-audio-vae: stopped: non-finite loss at step 1 (stage 'audio-vae')")
