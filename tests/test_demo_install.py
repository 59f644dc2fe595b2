"""Installing a trained pipeline as the bundled model, and verifying it against recorded checksums."""
import pytest

from lumina_video import demo
from lumina_video.testing import make_tiny_pipeline


def test_install_records_and_verifies_checksums(tmp_path):
    make_tiny_pipeline(tmp_path / "final")
    target, sums = tmp_path / "pkg" / "demo_model", tmp_path / "demo_model.sha256"
    digests = demo.install(tmp_path / "final", target, sums)
    assert "transformer/model.safetensors" in digests and "model_index.json" in digests
    assert demo.verify(target, sums) == []
    weights = target / "transformer" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one flipped bit in the weights
    weights.write_bytes(bytes(data))
    assert demo.verify(target, sums) == ["transformer/model.safetensors"]


def test_install_refuses_a_non_pipeline_or_oversized_folder(tmp_path, monkeypatch):
    (tmp_path / "junk").mkdir()
    with pytest.raises(FileNotFoundError, match="not a complete Lumina-Video pipeline folder"):
        demo.install(tmp_path / "junk", tmp_path / "t", tmp_path / "s")
    make_tiny_pipeline(tmp_path / "final")
    monkeypatch.setattr(demo, "MAX_BYTES", 1000)
    with pytest.raises(ValueError, match="may take at most"):
        demo.install(tmp_path / "final", tmp_path / "t", tmp_path / "s")
    assert not (tmp_path / "t").exists() and not (tmp_path / "s").exists()
