"""Installing a trained pipeline as a bundled model (the video one; with --v2a the V2A one), and verifying it
against recorded checksums (lumina_video.demo.bundle and `lumina-video demo install [--v2a]|verify`)."""
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


# -- the V2A demo model (install_v2a, `lumina-video demo install --v2a`) ------------------------------------------

@pytest.fixture(scope="module")
def v2a_source(tmp_path_factory):
    from lumina_video.testing_v2a import make_tiny_v2a_pipeline

    folder = tmp_path_factory.mktemp("v2a") / "pipeline"
    make_tiny_v2a_pipeline(folder, vocoder="griffin-lim")
    return folder


def _tree(folder):
    """{relative path: bytes} of every file under folder."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_v2a_install_stores_fp16_upcasts_on_load_and_verifies(v2a_source, tmp_path):
    """The transformer and sync encoder are stored in fp16 (the rest as they were); loading gives float32 weights
    equal to the source's rounded to fp16, and nearly the same latents; the checksums catch a flipped bit."""
    import torch
    from safetensors import safe_open

    from lumina_video.pipeline.v2a import LuminaV2APipeline

    target, sums = tmp_path / "pkg" / "demo_v2a_model", tmp_path / "demo_v2a_model.sha256"
    digests = demo.install_v2a(v2a_source, target, sums)
    assert sums.read_text() == demo.format_digests(digests) and demo.verify(target, sums) == []
    assert {"model_index.json", "transformer/model.safetensors", "sync_encoder/model.safetensors"} <= set(digests)
    for part, want in [("transformer", torch.float16), ("sync_encoder", torch.float16), ("clip", torch.float32)]:
        with safe_open(target / part / "model.safetensors", "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys()} == {want}, part
    assert str(v2a_source) not in (target / "audio_vae" / "config.json").read_text()  # no path of the build machine
    a, b = LuminaV2APipeline.from_pretrained(v2a_source), LuminaV2APipeline.from_pretrained(target)
    for part in demo.V2A_HALF_PARTS:
        for (name, pa), pb in zip(getattr(a, part).state_dict().items(), getattr(b, part).state_dict().values()):
            assert pb.dtype == torch.float32 and torch.equal(pa.half().float(), pb), (part, name)
    frames = torch.randint(0, 256, (8, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    kw = dict(fps=8, seed=0, num_inference_steps=2, output_type="latent", progress=False)
    za, zb = a(frames, **kw).latents, b(frames, **kw).latents
    assert (za - zb).abs().max() < 2e-2 * za.abs().max()
    weights = target / "transformer" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert demo.verify(target, sums) == ["transformer/model.safetensors"]


def test_v2a_install_is_atomic(v2a_source, tmp_path, monkeypatch):
    """A source over the budget, a broken source or a pipeline of the other kind leaves the installed folder and
    its checksums byte for byte as they were, and no temporary folder behind."""
    import shutil

    target, sums = tmp_path / "pkg" / "demo_v2a_model", tmp_path / "demo_v2a_model.sha256"
    demo.install_v2a(v2a_source, target, sums)
    before, recorded = _tree(target), sums.read_text()
    broken = tmp_path / "broken"
    shutil.copytree(v2a_source, broken)
    (broken / "transformer" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors is missing"):
        demo.install_v2a(broken, target, sums)
    make_tiny_pipeline(tmp_path / "video")
    with pytest.raises(ValueError, match="is a LuminaVideoPipeline folder; install it with `lumina-video demo inst"):
        demo.install_v2a(tmp_path / "video", target, sums)
    with pytest.raises(ValueError, match="is a LuminaV2APipeline folder; .*demo install --v2a"):
        demo.install(v2a_source, target, sums)
    monkeypatch.setattr(demo, "V2A_MAX_BYTES", 1000)
    with pytest.raises(ValueError, match=r"MiB with float16 weights; the bundled model may take at most"):
        demo.install_v2a(v2a_source, target, sums)
    assert _tree(target) == before and sums.read_text() == recorded
    assert sorted(p.name for p in target.parent.iterdir()) == ["demo_v2a_model"]


def test_cli_install_v2a_then_verify(v2a_source, tmp_path, capsys):
    from lumina_video.cli import main

    target, sums = tmp_path / "pkg" / "demo_v2a_model", tmp_path / "demo_v2a_model.sha256"
    args = ["--target", str(target), "--checksums", str(sums)]
    assert main(["demo", "install", "--v2a", str(v2a_source), *args]) == 0
    assert "installed" in capsys.readouterr().out and sums.is_file()
    check = ["demo", "verify", "--v2a", "--model", str(target), "--checksums", str(sums)]
    assert main(check) == 0
    (target / "extra.txt").write_text("not recorded")
    assert main(check) == 1
    assert capsys.readouterr().err.strip().endswith(": extra.txt")
    assert main(["demo", "install", "--v2a", str(tmp_path / "nothing"), *args]) == 2
    assert capsys.readouterr().err.startswith("lumina-video demo: error: V2A pipeline folder")
