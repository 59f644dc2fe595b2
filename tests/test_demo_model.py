"""The bundled demo model (lumina_video/demo_model): it loads, generates a clip of the right shape,
and its files are the ones its recipe recorded (lumina_video/demo/demo_model.sha256, package data)."""
import fnmatch
import json
import re
import shutil
from pathlib import Path

import pytest

from lumina_video import demo
from lumina_video.cli import main
from lumina_video.pipeline import DEFAULT_MODEL_DIR

# Once the recipe has recorded checksums (committed with the model), a missing model is a failure, not
# a skip: the package ships it.
pytestmark = pytest.mark.skipif(not demo.CHECKSUMS.is_file() and not (DEFAULT_MODEL_DIR / "model_index.json").is_file(),
                                reason="the bundled demo model is not installed yet (make demo-model)")


def test_bundled_model_matches_recorded_checksums():
    assert demo.CHECKSUMS.is_file()
    assert demo.verify() == []


def test_bundled_model_fits_the_budget():
    size = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.rglob("*") if p.is_file())
    assert size <= demo.MAX_BYTES


def test_bundled_model_generates_a_clip():
    from lumina_video import LuminaVideoPipeline

    pipe = LuminaVideoPipeline.from_pretrained()  # no folder: the bundled model
    assert pipe.defaults.get("vocabulary") == "synthetic"
    assert pipe.transformer.dtype.is_floating_point and pipe.transformer.dtype.itemsize == 4  # fp16 on disk, fp32 here
    out = pipe("a red circle moving to the right", num_frames=8, steps=4, seed=0, progress=False)
    h, w = pipe.defaults["height"], pipe.defaults["width"]
    assert out.frames.shape == (1, 8, h, w, 3) and out.frames.dtype.name == "uint8"


def test_checksums_ship_inside_the_package():
    """verify() must work from a non-editable install: the checksum file is package data."""
    package = Path(demo.__file__).resolve().parents[1]  # lumina_video/
    assert demo.CHECKSUMS.resolve().parent == package / "demo"
    pyproject = (package.parents[1] / "pyproject.toml").read_text()
    section = pyproject.split("[tool.setuptools.package-data]", 1)[1]
    patterns = json.loads(re.search(r"^lumina_video = (\[.*\])$", section, re.M).group(1))  # TOML strings: JSON
    shipped = demo.CHECKSUMS.resolve().relative_to(package).as_posix()
    assert any(fnmatch.fnmatch(shipped, p) for p in patterns), (shipped, patterns)


def test_cli_verify_passes_the_bundled_model_and_fails_a_tampered_copy(tmp_path, capsys):
    assert main(["demo", "verify"]) == 0
    assert "matches its recorded checksums" in capsys.readouterr().out
    copy = tmp_path / "demo_model"
    shutil.copytree(DEFAULT_MODEL_DIR, copy)  # the real folder stays untouched
    assert main(["demo", "verify", "--model", str(copy)]) == 0
    weights = copy / "transformer" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["demo", "verify", "--model", str(copy)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err == f"lumina-video demo verify: {copy} differs from {demo.CHECKSUMS}: transformer/model.safetensors\n"
    assert main(["demo", "verify", "--model", str(copy), "--checksums", str(tmp_path / "none.sha256")]) == 2
    assert capsys.readouterr().err.startswith("lumina-video demo: error: no recorded checksums")


def test_bundled_model_lists_example_prompts_from_the_vocabulary():
    """The web page's examples come from the pipeline folder's defaults (written by configs/demo.yaml)."""
    from lumina_video.data.vocab import parse_caption

    defaults = json.loads((DEFAULT_MODEL_DIR / "model_index.json").read_text())["defaults"]
    examples = defaults["example_prompts"]
    assert len(examples) == 6 and all(parse_caption(e) is not None for e in examples)
    assert defaults["vocabulary"] == "synthetic"
