"""extract-latents: frame protocol, file format, equality with a direct VAE call, resume, bad files."""
from pathlib import Path

import numpy as np
import pytest
import torch

from lumina_video.data.latents import extract_latents, usable_frames
from lumina_video.data.manifest import read_manifest, write_manifest
from lumina_video.data.video_io import write_image, write_video
from lumina_video.encoders.vae import VideoVAE, tiny_config
from lumina_video.files import load_safetensors


def test_usable_frames_is_4k_plus_1_within_the_clip():
    assert usable_frames(2.0, 8.0, 8.0, 33) == 13   # covers 16 frames at 8 fps -> 13
    assert usable_frames(4.5, 24.0, 8.0, 33) == 33  # capped
    assert usable_frames(0.1, 10.0, 8.0, 33) == 1   # one frame
    assert usable_frames(1.0, 8.0, 4.0, 33) == 1    # 4 frames at 4 fps -> 1


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return VideoVAE.from_config(tiny_config(channels=8)).eval()


@pytest.fixture
def manifest(tmp_path):
    rng = np.random.default_rng(0)
    write_video(tmp_path / "wide.mp4", rng.integers(0, 255, (20, 48, 96, 3), dtype=np.uint8), 8)   # 2.5 s
    write_image(tmp_path / "still.png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    recs = [dict(path="wide.mp4", caption="a", type="video"), dict(path="still.png", caption="b", type="image"),
            dict(path="broken.mp4", caption="c", type="video"), dict(path="gone.mp4", caption="d", type="video")]
    write_manifest(tmp_path / "m.jsonl", recs)
    return tmp_path / "m.jsonl"


def test_extract_encodes_skips_and_resumes(manifest, vae, tmp_path):
    summary = extract_latents(manifest, vae, fps=8, size=64, max_frames=33, progress=False)
    assert summary["encoded"] == 2 and summary["failed"] == {"corrupt": 1, "missing": 1}
    recs = read_manifest(manifest)
    video, image = recs[0], recs[1]
    assert video["latent_frames"] == 17  # 20 frames at 8 fps cover 17 = 4*4+1
    lat = load_safetensors(video["latent_path"])["latent"]
    assert lat.shape == (16, 5, 32 // 8, 128 // 8)  # bucket (32, 128) for a 1:2 clip at size 64
    assert load_safetensors(image["latent_path"])["latent"].shape == (16, 1, 8, 8)
    assert "latent_error" in recs[2] and "latent_path" not in recs[3]

    # equal to a direct VAE call on the same pixels
    from lumina_video.data.buckets import make_buckets
    from lumina_video.data.latents import load_pixels
    pixels = load_pixels(video, 8, 64, 33, make_buckets(64))
    with torch.no_grad():
        torch.testing.assert_close(lat, vae.encode(pixels[None])[0])

    # a second run keeps what is done and retries only the failures
    again = extract_latents(manifest, vae, fps=8, size=64, progress=False)
    assert again["kept"] == 2 and again["encoded"] == 0
    # other settings re-encode
    other = extract_latents(manifest, vae, fps=4, size=64, progress=False, out=tmp_path / "m4.jsonl")
    assert other["encoded"] == 2 and read_manifest(tmp_path / "m4.jsonl")[0]["latent_frames"] == 9
    # a separate output manifest is resumed from, even though the input has no latent fields
    resumed = extract_latents(tmp_path / "m4.jsonl", vae, fps=4, size=64, progress=False)
    assert resumed["kept"] == 2
    fresh_input = tmp_path / "plain.jsonl"
    write_manifest(fresh_input, [{k: v for k, v in r.items() if not k.startswith("latent")}
                                 for r in read_manifest(tmp_path / "m4.jsonl")])
    again4 = extract_latents(fresh_input, vae, fps=4, size=64, progress=False, out=tmp_path / "m4.jsonl")
    assert again4["kept"] == 2 and again4["encoded"] == 0


def test_latents_feed_the_dataset(manifest, vae):
    from lumina_video.data.dataset import MediaDataset

    extract_latents(manifest, vae, fps=8, size=64, progress=False)
    ds = MediaDataset(read_manifest(manifest), size=64, fps=8, num_frames=17, system_prompts={},
                      use_latents=True)
    item = ds[0]
    assert item["latent"].shape == (16, 5, 4, 16) and item["media"] == "video"


def test_relative_paths_resolve_against_the_manifest(manifest, vae, monkeypatch):
    """Run from the manifest's parent with relative paths: latent_path must still be found when the
    output manifest is read back (paths in a manifest are relative to its own folder)."""
    monkeypatch.chdir(manifest.parent.parent)
    rel = manifest.relative_to(manifest.parent.parent)
    extract_latents(rel, vae, fps=8, size=64, progress=False, out=rel.parent / "lat.jsonl")
    recs = read_manifest(manifest.parent / "lat.jsonl")
    assert all(Path(r["latent_path"]).is_file() for r in recs if "latent_path" in r)
    assert sum("latent_path" in r for r in recs) == 2
