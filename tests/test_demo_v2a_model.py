"""The bundled V2A demo model (lumina_video/demo_v2a_model): the default of LuminaV2APipeline.from_pretrained(),
`lumina-video v2a` and `generate --audio`; it makes a soundtrack of the clip's length, its files are the ones
its install recorded (lumina_video/demo/demo_v2a_model.sha256), and the package data ships every one of them.
The package ships the model, so these tests run (a missing model fails them, it is not skipped)."""
import glob
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors import safe_open

from lumina_video.cli import main
from lumina_video.demo import bundle
from lumina_video.pipeline import DEFAULT_MODEL_DIR
from lumina_video.pipeline import v2a as v2a_module
from lumina_video.pipeline.v2a import DEFAULT_V2A_MODEL_DIR, LuminaV2APipeline

PACKAGE = Path(bundle.__file__).resolve().parents[1]  # lumina_video/


def _clip(n: int = 16, size: int = 64, seed: int = 0) -> np.ndarray:
    """(n, size, size, 3) uint8: a bright square moving across a dark field (any video will do)."""
    frames = np.full((n, size, size, 3), 20, np.uint8)
    for i in range(n):
        x = (i * (size - 16)) // max(n - 1, 1)
        frames[i, 24:40, x:x + 16] = (230, 40, 40)
    return frames


@pytest.fixture(scope="module")
def pipe():
    return LuminaV2APipeline.from_pretrained()  # no folder: the bundled model


def test_default_loads_the_bundled_model_in_float32(pipe):
    assert (DEFAULT_V2A_MODEL_DIR / "model_index.json").is_file()
    assert DEFAULT_V2A_MODEL_DIR.resolve().parent == PACKAGE
    assert pipe.transformer.dtype == torch.float32  # stored fp16, upcast on load
    assert all(p.dtype == torch.float32 for p in pipe.sync_encoder.parameters())


def test_bundled_model_makes_a_soundtrack_of_the_clip_length(pipe):
    """16 frames at 16 fps = 1 s -> 16000 samples at 16 kHz, finite, and the same for the same seed."""
    out = pipe(_clip(), fps=16, seed=0, num_inference_steps=2, progress=False)
    assert out.sample_rate == 16000 and out.seconds == [1.0]
    assert out.audio.shape == (1, 16000) and out.audio.dtype == np.float32 and np.isfinite(out.audio).all()
    again = pipe(_clip(), fps=16, seed=0, num_inference_steps=2, progress=False)
    np.testing.assert_array_equal(out.latents.numpy(), again.latents.numpy())


def test_bundled_model_matches_its_checksums_and_budget():
    assert bundle.V2A_CHECKSUMS.is_file()
    assert bundle.verify(DEFAULT_V2A_MODEL_DIR, bundle.V2A_CHECKSUMS) == []
    size = sum(p.stat().st_size for p in DEFAULT_V2A_MODEL_DIR.rglob("*") if p.is_file())
    assert size <= bundle.V2A_MAX_BYTES
    for part in bundle.V2A_HALF_PARTS:  # the large weights are stored in fp16
        with safe_open(DEFAULT_V2A_MODEL_DIR / part / "model.safetensors", "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}, part


def test_cli_verify_checks_both_bundled_models(capsys):
    assert main(["demo", "verify"]) == 0
    out = capsys.readouterr().out
    assert str(DEFAULT_MODEL_DIR) in out and str(DEFAULT_V2A_MODEL_DIR) in out
    assert main(["demo", "verify", "--v2a"]) == 0
    assert capsys.readouterr().out.count("matches its recorded checksums") == 1


def test_package_data_ships_every_bundled_file():
    """A non-editable install copies what the package-data globs match (setuptools globs them in the package
    folder): every file of both bundled models and both checksum files must be matched."""
    pyproject = (PACKAGE.parents[1] / "pyproject.toml").read_text()
    section = pyproject.split("[tool.setuptools.package-data]", 1)[1]
    patterns = json.loads(re.search(r"^lumina_video = (\[.*\])$", section, re.M).group(1))  # TOML strings: JSON
    shipped = {Path(p).relative_to(PACKAGE).as_posix() for pat in patterns for p in glob.glob(str(PACKAGE / pat))
               if Path(p).is_file()}
    wanted = {p.relative_to(PACKAGE).as_posix() for d in (DEFAULT_MODEL_DIR, DEFAULT_V2A_MODEL_DIR)
              for p in d.rglob("*") if p.is_file()}
    wanted |= {bundle.CHECKSUMS.relative_to(PACKAGE).as_posix(), bundle.V2A_CHECKSUMS.relative_to(PACKAGE).as_posix()}
    assert any(w.startswith("demo_v2a_model/") and w.count("/") == 2 for w in wanted)  # sub-folders are covered
    assert wanted - shipped == set()


def test_v2a_command_and_generate_audio_default_to_the_bundled_model(tmp_path):
    from lumina_video.audio.media import read_audio
    from lumina_video.data.video_io import write_video
    from lumina_video.generate import audio_model_dir, load_audio_pipeline

    write_video(tmp_path / "clip.mp4", _clip(), 16)
    assert main(["v2a", str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "out"), "--steps", "2", "--seed", "0",
                 "--no-progress"]) == 0
    record = json.loads((tmp_path / "out" / "clip.json").read_text())
    assert record["model"] == str(DEFAULT_V2A_MODEL_DIR) and record["samples"] == 16000
    assert len(read_audio(tmp_path / "out" / "clip.wav").wave) == 16000
    assert audio_model_dir(None) == DEFAULT_V2A_MODEL_DIR
    v2a = load_audio_pipeline(SimpleNamespace(audio_model=None), "cpu", 2.0)
    assert isinstance(v2a, LuminaV2APipeline) and v2a.sample_rate == 16000


def test_a_missing_bundled_model_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    from lumina_video.data.video_io import write_video
    from lumina_video.generate import load_audio_pipeline

    monkeypatch.setattr(v2a_module, "DEFAULT_V2A_MODEL_DIR", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match=r"not installed .*make v2a-demo-model.*demo install --v2a"):
        LuminaV2APipeline.from_pretrained()
    with pytest.raises(FileNotFoundError, match=r"^--audio: the bundled V2A demo model is not installed.*audio-model"):
        load_audio_pipeline(SimpleNamespace(audio_model=None), "cpu", 2.0)
    write_video(tmp_path / "clip.mp4", _clip(), 16)
    assert main(["v2a", str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lumina-video v2a: error: the bundled V2A demo model is not installed")
    assert not (tmp_path / "out").exists()
