"""The reconstruction path of eval-audio's ceiling: wave -> mel -> (audio VAE) -> vocoder -> wave."""
import numpy as np
import torch

from lumina_video.audio.roundtrip import RoundTrip
from lumina_video.audio.vae import AudioVAE, tiny_audio_vae_config
from lumina_video.cli import main as cli_main


def tone(seconds=1.0, hz=880.0, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_griffin_lim_round_trip_keeps_length_and_pitch():
    out = RoundTrip("griffin-lim")(tone())
    assert out.shape == (16000,) and np.isfinite(out).all()
    spectrum = np.abs(np.fft.rfft(out[2000:14000]))
    peak_hz = np.argmax(spectrum) * 16000 / 12000
    assert abs(peak_hz - 880.0) < 5


def test_with_an_audio_vae_the_length_is_a_multiple_of_its_frames(tmp_path):
    torch.manual_seed(0)
    AudioVAE.from_config(tiny_audio_vae_config()).save_pretrained(tmp_path / "vae")
    rt = RoundTrip("griffin-lim", tmp_path / "vae")
    out = rt(tone(seconds=1.013))  # 101 mel frames -> 100 through the 4x VAE
    assert out.shape == (100 * 160,) and "audio VAE" in rt.__name__


def test_audio_vae_needs_reconstruct(tmp_path, capsys):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("")
    assert cli_main(["eval-audio", "--manifest", str(manifest), "--out", str(tmp_path / "r"),
                     "--audio-vae", str(tmp_path)]) == 2
    assert "--audio-vae is used with --reconstruct" in capsys.readouterr().err
