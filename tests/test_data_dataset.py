"""MediaDataset: shapes per fps and bucket, motion rules, system prompts, latents, skipping bad files."""
import numpy as np
import pytest
import torch

from lumina_video.data.buckets import BucketBatchSampler
from lumina_video.data.dataset import MediaDataset, collate, training_motion_score
from lumina_video.data.manifest import read_manifest, write_manifest
from lumina_video.data.video_io import write_image, write_video
from lumina_video.files import save_safetensors

FPS = 8


def indexed_frames(n, h, w):
    """Frame i: its index i in the red channel (steps of 8), a gradient elsewhere."""
    f = np.zeros((n, h, w, 3), np.uint8)
    f[..., 0] = (np.arange(n) * 8)[:, None, None]
    f[..., 1] = np.linspace(0, 255, w, dtype=np.uint8)[None, None, :]
    return f


@pytest.fixture
def media(tmp_path):
    """Good files: 2 landscape videos (48x96, 2 s), 1 square video (64x64), 2 images; and bad ones."""
    recs = []
    for i in range(2):
        write_video(tmp_path / f"wide{i}.mp4", indexed_frames(16, 48, 96), FPS)
        recs.append({"path": f"wide{i}.mp4", "caption": f"wide {i}", "type": "video", "source": "web",
                     "motion_score": 4.5})
    write_video(tmp_path / "square.mp4", indexed_frames(16, 64, 64), FPS)
    recs.append({"path": "square.mp4", "caption": "square", "type": "video", "source": "synthetic"})
    for i in range(2):
        write_image(tmp_path / f"img{i}.png", np.full((40, 50, 3), 200, np.uint8))
        recs.append({"path": f"img{i}.png", "caption": f"image {i}", "type": "image"})
    good = len(recs)
    data = (tmp_path / "wide0.mp4").read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) * 2 // 3])
    (tmp_path / "notes.txt").write_text("not a video")
    (tmp_path / "text.mp4").write_text("not a video either")
    recs += [{"path": "truncated.mp4", "caption": "cut", "type": "video"},
             {"path": "missing.mp4", "caption": "gone", "type": "video"},
             {"path": "notes.txt", "caption": "txt", "type": "video"},
             {"path": "text.mp4", "caption": "text", "type": "video"},
             {"path": "missing.png", "caption": "gone", "type": "image"}]
    write_manifest(tmp_path / "m.jsonl", recs)
    return read_manifest(tmp_path / "m.jsonl"), good


def make(records, **kw):
    args = dict(size=64, fps=4, num_frames=5, system_prompts={"web": "WEB"}, default_system_prompt="DEFAULT")
    return MediaDataset(records, **{**args, **kw})


def test_items_have_the_bucket_and_frame_count(media):
    records, good = media
    ds = make(records[:good])
    wide, square, image = ds[0], ds[2], ds[3]
    assert wide["pixels"].shape == (3, 5, 32, 128) and wide["bucket"] == (32, 128)  # 1:2 -> nearest 1:4
    assert square["pixels"].shape == (3, 5, 64, 64) and square["bucket"] == (64, 64)
    assert image["pixels"].shape == (3, 1, 64, 64) and image["media"] == "image"
    for it in (wide, square, image):
        p = it["pixels"]
        assert p.dtype == torch.float32 and p.min() >= -1 and p.max() <= 1
    # 5 frames at 4 fps from a 2 s clip at 8 fps: every second source frame from a random start
    red = ((wide["pixels"][0, :, 16, 64] + 1) * 127.5 / 8).round().long().tolist()
    assert np.all(np.diff(red) == 2) and 0 <= red[0] <= 8  # start in [0, 2 - 1/16 - 1] s
    assert (wide["system_prompt"], square["system_prompt"], image["system_prompt"]) == ("WEB", "DEFAULT", "DEFAULT")
    assert wide["caption"] == "wide 0" and wide["index"] == 0 and wide["source"] == "web"


def test_bad_files_are_skipped_and_counted(media):
    records, good = media
    ds = make(records)
    assert dict(ds.skipped) == {"corrupt": 2, "missing": 2, "unsupported": 1}
    assert "5 of 10 records usable" in ds.report()
    sampler = BucketBatchSampler(ds.group_keys(), batch_size=4, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate)
    indices = sorted(i for batch in loader for i in batch["index"].tolist())
    assert indices == list(range(good))


def test_decode_failure_at_load_time_is_skipped(media, tmp_path):
    """Size and duration given in the manifest: nothing is probed, the truncated file fails on load."""
    records, good = media
    cut = dict(records[5], width=96, height=48, fps=8.0, duration=2.0)
    ds = make([records[0], cut, records[1]])
    assert not ds.skipped and ds.group_keys()[1] == ("video", (32, 128), 5)
    batch = collate([ds[i] for i in range(3)])
    assert batch["index"].tolist() == [0, 2] and batch["skipped"] == 1
    assert batch["pixels"].shape == (2, 3, 5, 32, 128)
    assert dict(ds.skipped) == {"corrupt": 1}
    assert ds[1] is None and dict(ds.skipped) == {"corrupt": 1}  # counted once
    assert ds.group_keys()[1] is None  # the sampler leaves it out from now on


def test_too_short_videos_are_skipped_or_padded(media):
    records, _ = media
    assert dict(make(records[:1], fps=8, num_frames=17).skipped) == {"too_short": 1}
    padded = make(records[:1], fps=8, num_frames=17, pad_short_videos=True)[0]
    assert padded["pixels"].shape == (3, 17, 32, 128)
    assert torch.equal(padded["pixels"][:, -1], padded["pixels"][:, -2])


def test_motion_score_training_rules():
    rng = np.random.default_rng(0)
    n = 4000
    video = np.array([training_motion_score("video", 5.0, rng, 0.3, 0.4) for _ in range(n)])
    assert set(video) == {-1.0, 5.0} and np.mean(video == -1) == pytest.approx(0.3, abs=0.03)
    image = np.array([training_motion_score("image", 7.0, rng, 0.3, 0.4) for _ in range(n)])
    assert set(image) == {-1.0, 0.0} and np.mean(image == 0.0) == pytest.approx(0.4, abs=0.03)
    assert training_motion_score("video", None, rng) == -1.0
    assert training_motion_score("video", 3.0, rng, video_motion_drop=0.0) == 3.0


def test_dataset_randomness_is_seeded_per_item_and_epoch(media):
    records, good = media
    ds = make(records[:good], video_motion_drop=0.5, image_motion_prob=0.5)
    first = [ds[i] for i in range(good)]
    again = [ds[i] for i in range(good)]
    assert all(torch.equal(a["pixels"], b["pixels"]) and a["motion_score"] == b["motion_score"]
               for a, b in zip(first, again))
    scores = []
    for epoch in range(12):
        ds.set_epoch(epoch)
        scores.append(ds[0]["motion_score"])
    assert set(scores) == {-1.0, 4.5}
    assert ds[2]["motion_score"] == -1.0  # a video without a score


def test_latents_replace_pixels(media, tmp_path):
    records, _ = media
    latent = torch.randn(16, 3, 4, 8)
    save_safetensors({"latent": latent}, tmp_path / "lat.safetensors")
    rec = dict(records[0], latent_path=str(tmp_path / "lat.safetensors"))
    ds = make([rec, records[1]], use_latents=True)
    item = ds[0]
    assert "pixels" not in item and torch.equal(item["latent"], latent)
    assert ds.group_keys()[0] == ("latent", (16, 3, 4, 8))
    assert "pixels" in ds[1]  # no latent_path: pixels as usual
