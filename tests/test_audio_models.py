"""The audio VAE and the vocoders: Griffin-Lim round trips (onsets, pitch, exact length), tiny AutoencoderKL
and SpeechT5HifiGan folders laid out like AudioLDM's (FOLDER/vae/, FOLDER/vocoder/), shapes, gradients,
and one-line errors for bad folders."""
import json
import math

import librosa
import mir_eval
import numpy as np
import pytest
import torch

from lumina_video.audio import mel_spectrogram
from lumina_video.audio.vae import AudioVAE, tiny_audio_vae_config
from lumina_video.audio.vocoder import GriffinLim, Vocoder, load_vocoder, tiny_vocoder_config

SR = 16000
ONSETS = np.array([0.3137, 0.8571, 1.5, 2.1234, 2.9, 3.4])
NOTES = np.array([523.25, 880.0, 523.25, 880.0, 523.25, 880.0])


def tone_bursts(onsets=ONSETS, notes=NOTES, seconds: float = 4.0) -> np.ndarray:
    """Strikes: a 5 ms linear attack then a 150 ms exponential decay, summed; amplitude 0.5."""
    x = np.zeros(int(seconds * SR))
    for t0, hz in zip(onsets, notes):
        i = int(round(t0 * SR))
        t = np.arange(len(x) - i) / SR
        x[i:] += 0.5 * np.minimum(t / 0.005, 1) * np.exp(-t / 0.15) * np.sin(2 * math.pi * hz * t)
    return x.astype(np.float32)


def onset_f1(wave: np.ndarray, backtrack: bool) -> float:
    est = librosa.onset.onset_detect(y=wave, sr=SR, hop_length=160, backtrack=backtrack, units="time")
    return mir_eval.onset.f_measure(ONSETS, est, window=0.025)[0]


def pitch_cents(wave: np.ndarray) -> np.ndarray:
    """Cents from each burst's note of the median YIN f0 over its steady part (20-200 ms after the attack)."""
    out = []
    for t0, hz in zip(ONSETS, NOTES):
        part = wave[int((t0 + 0.02) * SR):int((t0 + 0.2) * SR)]
        f0 = librosa.yin(part, fmin=300, fmax=1500, sr=SR, frame_length=1024, hop_length=160, center=False)
        out.append(1200 * np.log2(np.median(f0) / hz))
    return np.array(out)


def spectral_convergence(mel_a: torch.Tensor, mel_b: torch.Tensor) -> float:
    a, b = torch.exp(mel_a), torch.exp(mel_b)
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(a))


@pytest.fixture(scope="module")
def bursts():
    torch.set_num_threads(1)
    x = tone_bursts()
    mel = mel_spectrogram(torch.from_numpy(x))
    refined, plain = GriffinLim()(mel), GriffinLim(refine=False)(mel)
    return x, mel, refined.numpy(), plain.numpy()


def test_the_evaluation_recipe_finds_the_original_onsets(bursts):
    x = bursts[0]
    assert onset_f1(x, backtrack=True) == 1.0 and onset_f1(x, backtrack=False) == 1.0
    assert np.max(np.abs(pitch_cents(x))) < 5


def test_griffin_lim_length_and_determinism(bursts):
    x, mel, refined, _ = bursts
    assert mel.shape == (400, 64) and refined.shape == (400 * 160,) == x.shape
    gl = GriffinLim(n_iter=4)
    batch = torch.stack([mel, mel[:, :]])[:, :37]
    one = gl(batch[0])
    assert one.shape == (37 * 160,) and gl(batch).shape == (2, 37 * 160)
    torch.testing.assert_close(gl(batch)[1], one, rtol=0, atol=1e-4)  # a batch gives what single calls give
    torch.testing.assert_close(gl(batch[0]), one)                     # and the same call gives the same wave


def test_griffin_lim_keeps_onsets_and_pitch(bursts):
    _, _, refined, plain = bursts
    assert onset_f1(refined, backtrack=False) == 1.0
    assert onset_f1(plain, backtrack=False) == 1.0
    assert np.max(np.abs(pitch_cents(refined))) < 20


def test_refined_magnitude_fits_the_mel_better(bursts):
    _, mel, refined, plain = bursts
    sc_refined = spectral_convergence(mel, mel_spectrogram(torch.from_numpy(refined)))
    sc_plain = spectral_convergence(mel, mel_spectrogram(torch.from_numpy(plain)))
    assert sc_refined < sc_plain and sc_refined < 0.1


def test_pseudo_inverse_magnitude_is_non_negative_and_maps_back():
    """F F^+ M = M (F has full row rank); the clamp only raises S, and F >= 0, so F max(F^+ M, 0) >= M."""
    gl = GriffinLim()
    mel = mel_spectrogram(torch.from_numpy(tone_bursts(seconds=1.0)))[None]
    target = torch.exp(mel).transpose(-1, -2).double()                     # M (1, 64, 100)
    raw = torch.matmul(gl.inverse.double(), target)
    torch.testing.assert_close(torch.matmul(gl.filters.double(), raw), target, rtol=1e-3, atol=1e-6)
    mag = gl.magnitude(mel)
    assert mag.shape == (1, 513, 100) and float(mag.min()) >= 0
    assert bool((torch.matmul(gl.filters.double(), mag.double()) >= target * (1 - 1e-4) - 1e-7).all())


def test_griffin_lim_refuses_bad_mels():
    with pytest.raises(ValueError, match=r"expected \(B, T, 64\)"):
        GriffinLim()(torch.zeros(1, 10, 80))
    with pytest.raises(ValueError, match="momentum"):
        GriffinLim(momentum=1.5)


# -- the VAE --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vae_folder(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("audioldm_like")
    vae = AudioVAE.from_config(tiny_audio_vae_config(scaling_factor=0.5))
    vae.save_pretrained(folder / "vae")
    Vocoder.from_config(tiny_vocoder_config()).save_pretrained(folder / "vocoder")
    return folder, vae


def test_vae_encode_shapes_and_rate(vae_folder):
    _, vae = vae_folder
    mel = torch.randn(2, 400, 64)
    with torch.no_grad():
        z = vae.encode(mel)
        assert z.shape == (2, 8, 100, 16) == (2, *vae.latent_shape(400))
        assert vae.decode(z).shape == (2, 400, 64)
    assert vae.latent_channels == 8 and vae.downsample == 4 and vae.latent_rate == 25.0


def test_vae_scaling_factor_scales_the_mode(vae_folder):
    _, vae = vae_folder
    mel = torch.randn(1, 40, 64)
    with torch.no_grad():
        mode = vae.posterior(mel).mode()
        torch.testing.assert_close(vae.encode(mel), mode * 0.5)
        torch.testing.assert_close(vae.decode(vae.encode(mel)), vae.model.decode(mode).sample[:, 0])


def test_vae_round_trip_through_an_audioldm_layout(vae_folder):
    folder, vae = vae_folder
    assert sorted(p.name for p in (folder / "vae").iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    mel = torch.randn(1, 80, 64)
    with torch.no_grad():
        z = torch.randn(1, 8, 20, 16, generator=torch.Generator().manual_seed(1))
        want_z, want_mel = vae.encode(mel), vae.decode(z)
        for where in (folder / "vae", folder):  # the vae/ folder itself, or the folder that holds it
            loaded = AudioVAE.from_pretrained(where)
            assert loaded.scaling_factor == 0.5
            assert torch.equal(loaded.encode(mel), want_z) and torch.equal(loaded.decode(z), want_mel)


def test_vae_is_differentiable(vae_folder):
    _, vae = vae_folder
    recon, post = vae(torch.randn(1, 16, 64), generator=torch.Generator().manual_seed(0))
    (recon.square().mean() + post.kl().mean()).backward()
    grads = [p.grad for p in vae.model.parameters()]
    assert all(g is not None for g in grads) and any(float(g.abs().sum()) > 0 for g in grads)
    vae.model.zero_grad(set_to_none=True)


def test_vae_frames_must_be_a_multiple_of_four(vae_folder):
    _, vae = vae_folder
    with pytest.raises(ValueError, match="multiple of 4"):
        vae.encode(torch.randn(1, 401, 64))
    padded, frames = vae.pad_frames(torch.zeros(1, 401, 64))
    assert padded.shape == (1, 404, 64) and frames == 401
    assert float(padded[0, 401:].max()) == pytest.approx(math.log(1e-5))
    with pytest.raises(ValueError, match=r"expected \(B, T, 64\)"):
        vae.encode(torch.randn(1, 400, 80))


def test_vae_set_scaling_factor_is_saved(tmp_path, vae_folder):
    _, vae = vae_folder
    copy = AudioVAE.from_pretrained(vae_folder[0])
    copy.set_scaling_factor(1.25)
    copy.save_pretrained(tmp_path / "vae")
    assert json.loads((tmp_path / "vae" / "config.json").read_text())["scaling_factor"] == 1.25
    with pytest.raises(ValueError, match="scaling_factor"):
        copy.set_scaling_factor(float("nan"))


# -- the vocoder ----------------------------------------------------------------------------------------
def test_vocoder_round_trip_through_an_audioldm_layout(vae_folder):
    folder, _ = vae_folder
    assert sorted(p.name for p in (folder / "vocoder").iterdir()) == ["config.json", "model.safetensors"]
    a, b = Vocoder.from_pretrained(folder / "vocoder"), load_vocoder(folder)
    mel = torch.randn(2, 30, 64)
    with torch.no_grad():
        wave = a(mel)
        assert wave.shape == (2, 30 * 160) and torch.equal(wave, b(mel))
        assert a(mel[0]).shape == (30 * 160,)
    assert a.sample_rate == 16000 and a.hop_length == 160


def test_vocoder_with_released_kernels_is_cut_to_the_hop():
    """Kernels (16, 16, 8, 4, 4) at rates (5, 4, 2, 2, 2) emit T x 160 + 32 samples; the vocoder cuts them."""
    cfg = dict(tiny_vocoder_config(channels=32), upsample_kernel_sizes=[16, 16, 8, 4, 4])
    voc = Vocoder.from_config(cfg)
    mel = torch.randn(1, 12, 64)
    with torch.no_grad():
        assert voc.model(mel).shape == (1, 12 * 160 + 32)
        assert voc(mel).shape == (1, 12 * 160)


def test_vocoder_is_differentiable():
    voc = Vocoder.from_config(tiny_vocoder_config())
    mel = torch.randn(1, 8, 64, requires_grad=True)
    voc(mel).square().mean().backward()
    assert mel.grad is not None and all(p.grad is not None for p in voc.model.parameters())


def test_load_vocoder_griffin_lim():
    gl = load_vocoder("griffin-lim")
    assert isinstance(gl, GriffinLim) and gl(torch.zeros(5, 64)).shape == (800,)


# -- bad folders: one-line errors -------------------------------------------------------------------------
def _one_line(info) -> str:
    text = str(info.value)
    assert "\n" not in text
    return text


def test_bad_folders(tmp_path, vae_folder):
    folder, _ = vae_folder
    with pytest.raises(FileNotFoundError) as info:
        AudioVAE.from_pretrained(tmp_path)
    assert "no config.json" in _one_line(info)
    with pytest.raises(ValueError, match="not an AutoencoderKL folder") as info:
        AudioVAE.from_pretrained(folder / "vocoder")
    _one_line(info)
    with pytest.raises(ValueError, match="not a SpeechT5HifiGan folder") as info:
        Vocoder.from_pretrained(folder / "vae")
    _one_line(info)
    with pytest.raises(FileNotFoundError, match="neither 'griffin-lim' nor an existing folder"):
        load_vocoder(tmp_path / "missing")


def test_config_without_weights_or_unreadable(tmp_path, vae_folder):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.json").write_text((vae_folder[0] / "vae" / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="has no weights"):
        AudioVAE.from_pretrained(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a readable JSON config") as info:
        AudioVAE.from_pretrained(tmp_path / "b")
    _one_line(info)


def test_image_vae_is_refused(tmp_path):
    from diffusers import AutoencoderKL

    AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(8,), norm_num_groups=4,
                  latent_channels=4).save_pretrained(tmp_path / "rgb")
    with pytest.raises(ValueError, match="one-channel mel image, got in_channels=3") as info:
        AudioVAE.from_pretrained(tmp_path / "rgb")
    _one_line(info)


def test_vocoder_for_another_mel_is_refused():
    with pytest.raises(ValueError, match="takes 80 mel bins at hop 160"):
        Vocoder.from_config(tiny_vocoder_config(n_mels=80))


def test_mirrored_edges_remove_griffin_lims_start_dip(tmp_path):
    """Clips that sound from their first sample: fitted without mirrored edges, Griffin-Lim's first frames dip
    and recover, which the onset detector without its band floor takes for an onset in the first 100 ms (7 of
    these 8 synth-av clips when measured); with the default 8 mirrored frames, none."""
    from lumina_video.audio.media import read_audio
    from lumina_video.data.synthetic_av import make_dataset
    from lumina_video.eval.audio_metrics import OnsetSettings, detect_onsets

    torch.set_num_threads(1)
    _, info = make_dataset(tmp_path, 8, size=64, seed=0)
    no_floor = OnsetSettings(floor_db=None)
    early = {0: 0, 8: 0}
    for rec in info["records"]:
        mel = mel_spectrogram(torch.from_numpy(read_audio(tmp_path / rec["audio_path"]).wave))
        for edge in early:
            onsets = detect_onsets(GriffinLim(edge=edge)(mel).numpy(), settings=no_floor)
            early[edge] += bool(len(onsets) and onsets[0] < 0.1)
    assert min(e["time"] for r in info["records"] for e in r["impacts"]) > 0.1
    assert early[0] >= 4 and early[8] <= 1, early
