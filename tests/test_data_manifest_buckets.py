"""Manifests (validation, line numbers, paths, atomic writes) and aspect buckets / batch sampler."""
import json
import math

import pytest

from lumina_video.data.buckets import BucketBatchSampler, make_buckets, nearest_bucket
from lumina_video.data.manifest import read_manifest, write_manifest


def test_manifest_round_trip_keeps_extra_fields_and_relative_paths(tmp_path):
    recs = [{"path": str(tmp_path / "v" / "a.mp4"), "caption": "a", "type": "video", "fps": 24.0, "my_field": [1, 2]},
            {"path": "/elsewhere/b.png", "caption": "b", "type": "image", "latent_path": None}]
    write_manifest(tmp_path / "m.jsonl", recs)
    lines = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert lines[0]["path"] == "v/a.mp4" and lines[1]["path"] == "/elsewhere/b.png"
    back = read_manifest(tmp_path / "m.jsonl")
    assert back == recs
    assert read_manifest(tmp_path / "m.jsonl", resolve=False)[0]["path"] == "v/a.mp4"
    assert not list(tmp_path.glob(".*.tmp"))  # no temp file left behind


@pytest.mark.parametrize("line,message", [
    ('{"path": "a.mp4", "caption": "x"', "not valid JSON"),
    ('{"path": "a.mp4", "type": "video"}', "missing required field 'caption'"),
    ('{"path": "a.mp4", "caption": "x", "type": "audio"}', "'type' must be one of"),
    ('{"path": "", "caption": "x", "type": "video"}', "'path' must be a non-empty string"),
    ('{"path": "a.mp4", "caption": "x", "type": "video", "fps": -3}', "'fps' must be a number > 0"),
    ('{"path": "a.mp4", "caption": "x", "type": "video", "width": 3.5}', "'width' must be a positive integer"),
    ('{"path": "a.mp4", "caption": "x", "type": "video", "motion_score": "high"}', "'motion_score' must be a number"),
    ('[1, 2]', "must be a JSON object"),
])
def test_malformed_line_reports_its_line_number(tmp_path, line, message):
    good = '{"path": "a.mp4", "caption": "fine", "type": "video"}'
    (tmp_path / "m.jsonl").write_text("\n".join([good, "", good, line, good]) + "\n")
    with pytest.raises(ValueError, match=rf"m\.jsonl:4: .*{message}"):
        read_manifest(tmp_path / "m.jsonl")


def test_write_manifest_rejects_bad_records_and_leaves_old_file(tmp_path):
    write_manifest(tmp_path / "m.jsonl", [{"path": "a.mp4", "caption": "x", "type": "video"}])
    before = (tmp_path / "m.jsonl").read_text()
    with pytest.raises(ValueError, match="record 1"):
        write_manifest(tmp_path / "m.jsonl", [{"path": "a.mp4", "caption": "x", "type": "video"}, {"path": "b"}])
    assert (tmp_path / "m.jsonl").read_text() == before


@pytest.mark.parametrize("size", [64, 256, 512, 960])
def test_buckets_follow_the_recipe(size):
    buckets = make_buckets(size)
    target = (size // 32) ** 2 * 32 ** 2
    assert (size // 32 * 32, size // 32 * 32) in buckets
    for h, w in buckets:
        assert h % 32 == 0 and w % 32 == 0
        assert max(h, w) / min(h, w) <= 4
        assert h * w <= target
        assert (w, h) in buckets  # portrait and landscape alike
        # the long side is the longest that fits the area with this short side
        assert min(h, w) * (max(h, w) + 32) > target
    if size >= 256:
        assert min(h * w for h, w in buckets) >= 0.75 * target


def test_nearest_bucket_by_log_aspect():
    buckets = make_buckets(256)
    assert nearest_bucket(720, 1280, buckets) == (192, 320)  # 16:9 -> 0.6 (log distance 0.065)
    assert nearest_bucket(1280, 720, buckets) == (320, 192)
    assert nearest_bucket(500, 500, buckets) == (256, 256)
    assert nearest_bucket(10, 1000, buckets) == (128, 512)  # clamped to ratio 4
    h, w = nearest_bucket(480, 640, buckets)
    assert abs(math.log(h / w) - math.log(0.75)) == min(abs(math.log(a / b) - math.log(0.75)) for a, b in buckets)


def test_bucket_sampler_never_mixes_groups_and_covers_everything():
    keys = [("video", (64, 64), 9)] * 7 + [("image", (64, 64), 1)] * 5 + [None] * 2 + [("video", (32, 128), 9)] * 4
    sampler = BucketBatchSampler(keys, batch_size=3, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3 + 2 + 2
    seen = sorted(i for b in batches for i in b)
    assert seen == [i for i, k in enumerate(keys) if k is not None]
    for b in batches:
        assert len({keys[i] for i in b}) == 1
    sampler.set_epoch(1)
    assert list(sampler) != batches  # reshuffled
    assert all(len(b) == 3 for b in BucketBatchSampler(keys, 3, drop_last=True))
