"""Installing a trained pipeline as the bundled model, and verifying it against recorded checksums
(lumina_video.demo.bundle and `lumina-video demo install|verify`)."""
import pytest

from lumina_video.demo import bundle as demo
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


def test_installed_model_stores_fp16_and_runs_in_fp32_like_the_source(tmp_path):
    """fp16 storage halves the transformer file; loading upcasts, and the output stays close to the
    fp32 source's (fp16 rounds weights to ~1e-3 relative)."""
    import os

    import torch

    from lumina_video.pipeline import LuminaVideoPipeline

    make_tiny_pipeline(tmp_path / "final")
    target = tmp_path / "pkg" / "demo_model"
    demo.install(tmp_path / "final", target, tmp_path / "sums")
    src_size = (tmp_path / "final" / "transformer" / "model.safetensors").stat().st_size
    assert (target / "transformer" / "model.safetensors").stat().st_size < 0.6 * src_size
    a = LuminaVideoPipeline.from_pretrained(tmp_path / "final")
    b = LuminaVideoPipeline.from_pretrained(target)
    assert b.transformer.dtype == torch.float32
    for (name, pa), pb in zip(a.transformer.state_dict().items(), b.transformer.state_dict().values()):
        assert torch.equal(pa.half().float(), pb), name
    kw = dict(num_frames=8, height=32, width=32, steps=3, seed=0, output_type="latent", progress=False)
    za, zb = a("a red circle", **kw).frames, b("a red circle", **kw).frames
    assert (za - zb).abs().max() < 2e-2 * za.abs().max()
    umask = os.umask(0)
    os.umask(umask)
    for p in target.rglob("*"):  # readable like any installed file (diffusers writes its weights 0600)
        if p.is_file():
            assert p.stat().st_mode & 0o777 == 0o666 & ~umask, p


def test_cli_install_then_verify(tmp_path, capsys):
    from lumina_video.cli import main

    make_tiny_pipeline(tmp_path / "final")
    target, sums = tmp_path / "pkg" / "demo_model", tmp_path / "demo_model.sha256"
    assert main(["demo", "install", str(tmp_path / "final"), "--target", str(target), "--checksums", str(sums)]) == 0
    assert "installed" in capsys.readouterr().out and sums.is_file()
    assert main(["demo", "verify", "--model", str(target), "--checksums", str(sums)]) == 0
    (target / "extra.txt").write_text("not recorded")
    assert main(["demo", "verify", "--model", str(target), "--checksums", str(sums)]) == 1
    assert capsys.readouterr().err.strip().endswith(": extra.txt")
    assert main(["demo", "install", str(tmp_path / "nothing"), "--target", str(target), "--checksums", str(sums)]) == 2
    assert capsys.readouterr().err.startswith("lumina-video demo: error: ")
