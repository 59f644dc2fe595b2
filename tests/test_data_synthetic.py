"""Synthetic dataset: determinism, and rendered pixels that match the recorded attributes."""
import numpy as np
import pytest

from lumina_video.data import vocab
from lumina_video.data.manifest import read_manifest
from lumina_video.data.synthetic import make_dataset, object_centre, render_clip, stays_inside
from lumina_video.data.video_io import read_image, read_video


def colour_mask(frame: np.ndarray, color: str, tol: float = 40.0) -> np.ndarray:
    return np.linalg.norm(frame.astype(np.float32) - np.float32(vocab.COLORS[color]), axis=-1) < tol


def centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return xs.mean() + 0.5, ys.mean() + 0.5  # pixel centres


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return out, read_manifest(make_dataset(out, 24, size=64, frames=12, fps=8, seed=3))


def test_render_clip_is_pure_and_matches_geometry():
    attrs = {"background": "gray", "textured": True, "color": "red", "shape": "square", "direction": "right",
             "speed": "quickly", "speed_px": 2.0, "object_size": 16, "start_x": 20.0, "start_y": 30.0}
    a = render_clip(attrs, size=64, frames=8, seed=5)
    np.testing.assert_array_equal(a, render_clip(attrs, size=64, frames=8, seed=5))
    assert a.shape == (8, 64, 64, 3) and a.dtype == np.uint8
    for k in range(8):
        mask = colour_mask(a[k], "red", tol=1.0)  # interior pixels are exactly the colour
        cx, cy = centroid(mask)
        assert (cx, cy) == pytest.approx(object_centre(attrs, k), abs=0.05)
        assert mask.sum() == pytest.approx(16 * 16, rel=0.15)
    # texture: low contrast around the background colour, nowhere near any object colour
    bg = a[0][:, 32:]  # the square spans x in [12, 28] at frame 0
    assert np.abs(bg.astype(int) - 110).max() <= 13 and bg.std() > 2


def test_make_dataset_is_deterministic(tmp_path, dataset):
    out, records = dataset
    again = read_manifest(make_dataset(tmp_path, 24, size=64, frames=12, fps=8, seed=3))
    strip = lambda recs: [{k: v for k, v in r.items() if k != "path"} for r in recs]  # noqa: E731
    assert strip(again) == strip(records)
    for r, s in zip(records[:6], again[:6]):
        if r["type"] == "video":
            np.testing.assert_array_equal(read_video(r["path"])[0], read_video(s["path"])[0])
    other = read_manifest(make_dataset(tmp_path / "b", 6, size=64, frames=12, fps=8, seed=4))
    assert strip(other) != strip(records[:6])


def test_records_carry_ground_truth(dataset):
    out, records = dataset
    kinds = {"image": 0, "static": 0, "video": 0}
    for r in records:
        kind = "image" if r["type"] == "image" else ("static" if r["direction"] is None else "video")
        kinds[kind] += 1
        parsed = vocab.parse_caption(r["caption"])
        assert parsed["color"] == r["color"] and parsed["shape"] == r["shape"]
        assert parsed["direction"] == r["direction"]
        assert r["speed_px"] == (vocab.SPEEDS[r["speed"]] if r["direction"] else 0.0)
        assert stays_inside(r, 64, 1 if r["type"] == "image" else 12)
        assert r["path"].startswith(str(out))
    assert str(out) not in (out / "manifest.jsonl").read_text()  # the file holds relative paths
    assert min(kinds.values()) >= 2  # images, static clips and moving clips all present


def test_decoded_object_colour_and_position_match_record(dataset):
    _, records = dataset
    for r in records:
        frames = read_image(r["path"])[None] if r["type"] == "image" else read_video(r["path"])[0]
        assert frames.shape[1:] == (r["height"], r["width"], 3)
        for k in (0, len(frames) - 1):
            mask = colour_mask(frames[k], r["color"])
            # the object is the only region of its colour: its centroid is the recorded centre
            assert mask.sum() > 0.5 * r["object_size"] ** 2 * 0.5
            expected = object_centre(r, k)
            if r["shape"] == "triangle":  # centroid of the apex-up triangle sits s/6 below the box centre
                expected = (expected[0], expected[1] + r["object_size"] / 6)
            assert centroid(mask) == pytest.approx(expected, abs=1.0)


def test_make_dataset_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="even size"):
        make_dataset(tmp_path, 2, size=63)
    with pytest.raises(ValueError, match="no speed fits"):
        make_dataset(tmp_path, 8, size=32, frames=200, image_fraction=0, static_fraction=0)


def test_cli_synth(tmp_path, capsys):
    from lumina_video.cli import main

    assert main(["synth", str(tmp_path), "--n", "3", "--size", "32", "--frames", "4"]) == 0
    assert "3 items" in capsys.readouterr().out
    records = read_manifest(tmp_path / "manifest.jsonl")
    assert len(records) == 3 and all(r["width"] == 32 for r in records)
    assert main(["synth", str(tmp_path), "--n", "3", "--size", "33"]) == 2  # a clear error, not a traceback


def test_holdout_pairs_go_to_their_own_manifest(tmp_path):
    from lumina_video.data.manifest import read_manifest
    from lumina_video.data.synthetic import make_dataset, parse_pairs

    pairs = parse_pairs("red triangle, green circle")
    assert pairs == [("red", "triangle"), ("green", "circle")]
    full = read_manifest(make_dataset(tmp_path / "a", n=60, size=32, frames=4))
    train = read_manifest(make_dataset(tmp_path / "b", n=60, size=32, frames=4, holdout_pairs=pairs))
    held = read_manifest(tmp_path / "b" / "heldout.jsonl")
    assert held and all((r["color"], r["shape"]) in pairs for r in held)
    assert not any((r["color"], r["shape"]) in pairs for r in train)
    assert len(train) + len(held) == len(full)
    name = lambda r: (r["path"].rsplit("/", 1)[-1], r["caption"])  # noqa: E731 - same items, split in two
    assert sorted(map(name, full)) == sorted(map(name, train + held))
    import pytest
    with pytest.raises(ValueError, match="not in the vocabulary"):
        make_dataset(tmp_path / "c", n=2, size=32, frames=4, holdout_pairs=[("pink", "circle")])
    with pytest.raises(ValueError, match="must be 'COLOUR SHAPE'"):
        parse_pairs("red")


def test_speed_words_in_some_captions_clips_unchanged(tmp_path):
    """Half the moving objects' captions name their speed (the rest leave it to the motion score);
    the choice never changes a rendered clip or any other attribute."""
    import numpy as np

    from lumina_video.data.manifest import read_manifest
    from lumina_video.data.synthetic import make_dataset, render_clip
    from lumina_video.data.video_io import read_video
    from lumina_video.data.vocab import parse_caption

    always = read_manifest(make_dataset(tmp_path / "a", n=40, size=32, frames=4, speed_caption_prob=1.0))
    half = read_manifest(make_dataset(tmp_path / "b", n=40, size=32, frames=4, speed_caption_prob=0.5))
    moving = [(a, b) for a, b in zip(always, half) if a.get("direction")]
    named = [parse_caption(b["caption"])["speed"] is not None for _, b in moving]
    assert all(parse_caption(a["caption"])["speed"] == a["speed"] for a, _ in moving)
    assert 0.25 < sum(named) / len(named) < 0.75
    for a, b in zip(always, half):
        assert {k: v for k, v in a.items() if k not in ("caption", "path")} == \
               {k: v for k, v in b.items() if k not in ("caption", "path")}
    # the pixels rendered for the same attributes are identical (files are not compared: libx264 is not
    # bit-reproducible, see write_video); and each file decodes close to its render
    va, vb = next((a, b) for a, b in moving)
    ra, rb = (render_clip(v, 32, 4, v["texture_seed"]) for v in (va, vb))
    assert np.array_equal(ra, rb)
    assert np.abs(read_video(va["path"])[0].astype(int) - ra.astype(int)).mean() < 3


def test_cli_synth_progress_bar_can_be_turned_off(tmp_path, capsys):
    from lumina_video.cli import main

    assert main(["synth", str(tmp_path / "a"), "--n", "2", "--size", "32", "--frames", "4"]) == 0
    assert "synth" in capsys.readouterr().err  # the bar
    assert main(["synth", str(tmp_path / "b"), "--n", "2", "--size", "32", "--frames", "4", "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


def test_draw_start_keeps_the_path_inside_rounded_or_not():
    """The one placement rule (the dataset rounds to 2 decimals, the demo's ground truth does not):
    the same draws, and the object's whole path inside the frame."""
    from lumina_video.data.synthetic import draw_start

    for i, direction in enumerate([*vocab.DIRECTIONS, None] * 20):
        size, s, travel = 32, 8 + i % 4, float(i % 7) * 2.5
        rounded = draw_start(np.random.default_rng(i), size, s, direction, travel)
        exact = draw_start(np.random.default_rng(i), size, s, direction, travel, decimals=None)
        assert rounded == pytest.approx(exact, abs=0.005 + 1e-9)
        assert all(round(c, 2) == c for c in rounded)
        for x, y in (rounded, exact):
            obj = {"direction": direction, "speed_px": travel / 7, "object_size": s, "start_x": x, "start_y": y}
            assert stays_inside(obj, size, 8)
