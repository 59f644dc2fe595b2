"""Synthetic audio-visual dataset: impacts seen in the pixels and heard in the wave at their recorded times,
the sound rules (notes, timbres, levels), held-out pairs, determinism, resuming and the written files."""
import json

import numpy as np
import pytest

from lumina_video.data import sound, vocab
from lumina_video.data import synthetic_av as av
from lumina_video.data.manifest import read_manifest

SIZE, FPS, SR = 128, av.FPS, sound.SAMPLE_RATE


AREA = {"circle": np.pi / 4, "square": 1.0, "triangle": 0.5}  # area / side^2
BOTTOM = {"circle": 0.5, "square": 0.5, "triangle": 1 / 3}  # bottom edge - centroid, in sides


def edges(frames: np.ndarray, colour: str, shape: str) -> np.ndarray:
    """(F, 3): left, right and bottom edge of the object in each frame, sub-pixel, from its pixels on the plain
    black background: coverage a = (p - bg) . (c - bg) / |c - bg|^2 per pixel, the side from the covered
    area, the centre from the coverage-weighted centroid (the triangle's lies a third of its side above its
    base)."""
    bg, c = np.float64(vocab.BACKGROUNDS["black"]), np.float64(vocab.COLORS[colour])
    out = []
    for frame in frames:
        a = np.clip((frame - bg) @ (c - bg) / np.dot(c - bg, c - bg), 0, 1)
        a[a < 0.03] = 0  # the background's grain
        ys, xs = np.indices(a.shape) + 0.5  # pixel centres
        area = a.sum()
        side, cx, cy = np.sqrt(area / AREA[shape]), (a * xs).sum() / area, (a * ys).sum() / area
        out.append((cx - side / 2, cx + side / 2, cy + BOTTOM[shape] * side))
    return np.array(out)


def drawn(motion: str, n: int, seed: int = 0, frames: int = 48) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [av.sample_object_av(rng, motion, SIZE, frames, FPS) for _ in range(n)]


def slide(colour: str, shape: str, speed: str) -> dict:
    """A hand-written slide to the right at a vocabulary speed."""
    v = av.word_speed(speed, SIZE)
    return {"colour": colour, "shape": shape, "motion": "slide", "direction": "right", "speed": speed,
            "note_hz": sound.NOTES[colour], "timbre": sound.TIMBRES[shape], "object_size": 30,
            "start_x": 20.0, "start_y": 64.0, "velocity_x": v, "velocity_y": 0.0}


def check_contacts(gap: np.ndarray, impacts: list[float], speed_px_s: float, frames: int) -> None:
    """At the frame nearest each impact the gap is at most one frame's travel (+0.2 px of measurement), and
    the gap's minimum between the neighbouring impacts' midpoints lies within one frame of the impact."""
    times = np.arange(frames) / FPS
    bounds = np.concatenate([[-np.inf], (np.array(impacts[1:]) + impacts[:-1]) / 2, [np.inf]])
    for j, t in enumerate(impacts):
        k = round(t * FPS)
        if k >= frames:
            continue  # after the last frame: heard, not seen
        assert gap[k] <= speed_px_s / FPS + 0.2, (t, k, gap[k])
        window = np.nonzero((times > bounds[j]) & (times < bounds[j + 1]))[0]
        lowest = window[np.argmin(gap[window])]
        assert abs(lowest - t * FPS) <= 1.0, (t, lowest)


def test_floor_impacts_match_the_rendered_frames():
    for obj in drawn("bounce_floor", 4, seed=1):
        impacts = av.impact_times(obj, SIZE, 3.0)
        assert 1 <= len(impacts) <= av.MAX_IMPACTS and impacts == sorted(impacts)
        frames = av.render_frames([obj], SIZE, 48, FPS, "black", False, 7)
        gap = SIZE - edges(frames, obj["colour"], obj["shape"])[:, 2]
        assert gap.min() >= -0.2 and gap.max() <= SIZE / 8 + 0.2  # hops rise at most size / 8
        vmax = max(av.speeds(obj, SIZE, np.array(impacts) - 1e-9, 3.0))
        check_contacts(gap, impacts, vmax, 48)
        # between contacts the object is off the floor: in flight frames well away from any impact
        far = [k for k in range(48) if min(abs(k / FPS - t) for t in impacts) > 0.15 and k / FPS < impacts[-1]]
        assert all(gap[k] >= 1 for k in far)


def test_wall_impacts_match_the_rendered_frames():
    objs = drawn("bounce_walls", 6, seed=4, frames=64)
    assert {o["speed"] for o in objs} == set(vocab.SPEEDS) and max(len(av.impact_times(o, SIZE, 4.0)) for o in objs) > 1
    for obj in objs:
        impacts = av.impact_times(obj, SIZE, 4.0)
        assert 1 <= len(impacts) <= av.MAX_IMPACTS
        frames = av.render_frames([obj], SIZE, 64, FPS, "black", False, 0)
        left, right, _ = edges(frames, obj["colour"], obj["shape"]).T
        gap = np.minimum(left, SIZE - right)
        check_contacts(gap, impacts, abs(obj["velocity_x"]), 64)
        # elastic: the speed is constant and the horizontal direction flips at each wall
        dx = np.diff((left + right) / 2)
        assert np.sum(np.diff(np.sign(dx[np.abs(dx) > 0.3])) != 0) == len([t for t in impacts if t < 63 / FPS])


def strike_onsets(residual: np.ndarray, impacts: list[float], threshold: float = 0.02) -> list[float]:
    """For each impact, the time of the first sample above `threshold` from 20 ms before it on."""
    out = []
    for t in impacts:
        start = max(0, int((t - 0.02) * SR))
        above = np.nonzero(np.abs(residual[start:]) > threshold)[0]
        out.append((start + above[0]) / SR if above.size else np.inf)
    return out


def test_each_strike_starts_at_its_impact_time():
    objs = drawn("bounce_floor", 3, seed=3) + drawn("bounce_walls", 3, seed=4)
    for k, obj in enumerate(objs):
        duration = 3.0
        wave, gain = av.render_sound([obj], SIZE, duration, np.random.default_rng(k))
        t = sound.sample_times(len(wave))
        hum = sound.hum(obj["note_hz"], obj["timbre"], av.speeds(obj, SIZE, t, duration), av.reference_speed(SIZE))
        impacts = av.impact_times(obj, SIZE, duration)
        onsets = strike_onsets(wave - gain * hum, impacts)
        np.testing.assert_allclose(onsets, impacts, atol=1e-3)
        assert gain == 1.0  # one object never needs the mix gain


def test_strikes_found_blind_by_an_onset_detector():
    """No subtraction: librosa's onset detector on the mixture finds every strike within 20 ms (mir_eval)."""
    librosa = pytest.importorskip("librosa")
    mir_eval = pytest.importorskip("mir_eval")
    obj = drawn("bounce_floor", 1, seed=5)[0]
    wave, _ = av.render_sound([obj], SIZE, 3.0, np.random.default_rng(0))
    found = librosa.onset.onset_detect(y=wave, sr=SR, hop_length=80, backtrack=False, units="time")
    reference = np.array(av.impact_times(obj, SIZE, 3.0))
    f, precision, recall = mir_eval.onset.f_measure(reference, np.asarray(found), window=0.02)
    assert recall == 1.0 and precision >= 0.5, (reference, found)


def test_still_clip_is_at_the_noise_floor():
    rng = np.random.default_rng(0)
    clip = av.sample_clip(rng, SIZE, FPS, (32, 48), still_prob=1.0, two_object_prob=1.0)
    assert all(o["motion"] == "still" for o in clip["objects"]) and "staying still" in clip["caption"]
    wave, _ = av.render_sound(clip["objects"], SIZE, clip["frames"] / FPS, np.random.default_rng(1))
    assert sound.dbfs(wave) < -40
    rms_db = 20 * np.log10(np.sqrt(np.mean(wave.astype(np.float64) ** 2)))
    assert rms_db == pytest.approx(sound.FLOOR_DBFS, abs=0.5)


@pytest.mark.parametrize("colour,shape", [("red", "circle"), ("green", "square"), ("purple", "triangle")])
def test_hum_pitch_is_the_colours_note(colour, shape):
    librosa = pytest.importorskip("librosa")
    wave, _ = av.render_sound([slide(colour, shape, "steadily")], SIZE, 1.0, np.random.default_rng(0))
    f0, voiced, _ = librosa.pyin(wave, fmin=400, fmax=1300, sr=SR, frame_length=1024, hop_length=256)
    assert voiced.mean() > 0.8
    cents = 1200 * np.log2(np.nanmedian(f0[voiced]) / sound.NOTES[colour])
    assert abs(cents) < 20, cents


def test_hum_loudness_grows_with_speed():
    """The hum's amplitude (its 880 Hz line over 1 s, an exact FFT bin) is proportional to the speed."""
    levels = []
    for speed in ("slowly", "steadily", "quickly"):  # 1 : 2 : 4
        wave, _ = av.render_sound([slide("blue", "circle", speed)], SIZE, 1.0, np.random.default_rng(0))
        amplitude = 2 * np.abs(np.fft.rfft(wave.astype(np.float64))[880]) / len(wave)
        levels.append(20 * np.log10(amplitude))
    np.testing.assert_allclose(np.diff(levels), [6.02, 6.02], atol=0.1)
    assert levels[-1] == pytest.approx(sound.HUM_DBFS, abs=0.1)  # the fastest word hums at -20 dBFS (peak)


def harmonic_levels(shape: str, n: int = 8) -> np.ndarray:
    """Magnitudes of harmonics 1..n of a steady 1 s hum (exact bins: the notes are whole Hz apart at 1 Hz)."""
    obj = slide("blue", shape, "quickly")  # 880 Hz: harmonic k at bin 880 k
    wave, _ = av.render_sound([obj], SIZE, 1.0, np.random.default_rng(0))
    spectrum = np.abs(np.fft.rfft(wave.astype(np.float64)))
    return np.array([spectrum[880 * k] for k in range(1, n + 1) if 880 * k < SR // 2])


def test_square_has_odd_harmonics_and_triangle_harmonics_fall_as_one_over_k():
    square = harmonic_levels("square")
    odd, even = square[0::2], square[1::2]
    np.testing.assert_allclose(odd / odd[0], [1, 1 / 3, 1 / 5, 1 / 7][: len(odd)], rtol=0.02)
    assert (even / odd[0]).max() < 1e-2
    triangle = harmonic_levels("triangle", 6)
    np.testing.assert_allclose(triangle[:4] / triangle[0], [1, 1 / 2, 1 / 3, 1 / 4], rtol=0.02)
    assert (triangle[4:] / triangle[0]).max() < 1e-2
    sine = harmonic_levels("circle")
    assert (sine[1:] / sine[0]).max() < 1e-2


def test_strike_is_12_db_above_the_hum_reference_and_mixes_never_clip():
    env_t = np.arange(0, 0.2, 1 / SR)
    env = sound.strike_envelope(env_t)
    assert env.max() == pytest.approx(1.0, abs=1e-3) and env_t[np.argmax(env)] == pytest.approx(0.005, abs=1e-4)
    assert env[int(0.155 * SR) - 1] == pytest.approx(1e-3, rel=0.05) and env[int(0.156 * SR):].max() == 0
    assert 20 * np.log10(sound.STRIKE_PEAK / sound.HUM_PEAK) == pytest.approx(12.0)
    # two strikes at the same instant: the mix is scaled below full scale and the gain is returned
    rng = np.random.default_rng(0)
    one = sound.strike(880.0, "sine", 0.5, SR, rng) + sound.strike(880.0, "sine", 0.5, SR, rng)
    wave, gain = sound.mix([one, one.copy()], rng)
    assert gain < 1 and np.abs(wave).max() < 1.0


def clip_records(folder, name="manifest.jsonl"):
    path = folder / name
    return read_manifest(path) if path.exists() else []


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_av")
    pairs = [(c, "triangle") for c in vocab.COLORS] + [("red", "square")]
    manifest, counts = av.make_dataset(out, 12, size=64, seed=3, min_seconds=1.0, max_seconds=1.5,
                                       two_object_prob=0.5, still_prob=0.2, holdout_pairs=pairs)
    return out, pairs, counts


def test_held_out_pairs_never_reach_the_manifest(dataset):
    out, pairs, counts = dataset
    kept, held = clip_records(out), clip_records(out, "heldout.jsonl")
    assert len(kept) + len(held) == 12 and len(held) == counts["heldout"] > 0 and kept
    for r in kept:
        assert not r["heldout"] and all((o["colour"], o["shape"]) not in pairs for o in r["objects"])
    for r in held:
        assert r["heldout"] and any((o["colour"], o["shape"]) in pairs for o in r["objects"])


def test_records_follow_the_schema(dataset):
    out, _, _ = dataset
    for r in clip_records(out) + clip_records(out, "heldout.jsonl"):
        assert r["type"] == "video" and r["fps"] == FPS and r["sample_rate"] == SR and r["width"] == 64
        assert r["duration"] == pytest.approx(r["num_frames"] / FPS) and 1.0 <= r["duration"] <= 1.5
        assert (out / r["audio_path"]).is_file() and r["path"].endswith(".mp4")
        times = [i["time"] for i in r["impacts"]]
        assert times == sorted(times) and all(0 <= t < r["duration"] for t in times)
        assert r["still"] == all(o["motion"] == "still" for o in r["objects"])
        for j, o in enumerate(r["objects"]):
            assert o["note_hz"] == sound.NOTES[o["colour"]] and o["timbre"] == sound.TIMBRES[o["shape"]]
            assert len(o["speed_track"]) == r["num_frames"]
            mine = [i["time"] for i in r["impacts"] if i["object"] == j]
            assert mine == pytest.approx(av.impact_times(o, 64, r["duration"]))
            words = {"slide": "moving", "still": "staying still", "bounce_floor": "bouncing on the floor",
                     "bounce_walls": "bouncing between the walls"}[o["motion"]]
            assert words in r["caption"] and o["colour"] in r["caption"]


def test_same_seed_same_bytes_and_resume_reuses_clips(dataset, tmp_path):
    out, pairs, _ = dataset
    again, counts = av.make_dataset(tmp_path, 12, size=64, seed=3, min_seconds=1.0, max_seconds=1.5,
                                    two_object_prob=0.5, still_prob=0.2, holdout_pairs=pairs)
    assert again.read_bytes() == (out / "manifest.jsonl").read_bytes()
    assert (tmp_path / "heldout.jsonl").read_bytes() == (out / "heldout.jsonl").read_bytes()
    assert (tmp_path / "clips/000004.wav").read_bytes() == (out / "clips/000004.wav").read_bytes()
    before = (tmp_path / "clips/000000.mp4").stat().st_mtime_ns
    _, resumed = av.make_dataset(tmp_path, 12, size=64, seed=3, min_seconds=1.0, max_seconds=1.5,
                                 two_object_prob=0.5, still_prob=0.2, holdout_pairs=pairs)
    assert resumed["rendered"] == 0 and resumed["reused"] == 12
    assert again.read_bytes() == (out / "manifest.jsonl").read_bytes()
    assert (tmp_path / "clips/000000.mp4").stat().st_mtime_ns == before
    (tmp_path / "clips/000002.wav").unlink()  # a clip left half done is rendered again
    _, fixed = av.make_dataset(tmp_path, 12, size=64, seed=3, min_seconds=1.0, max_seconds=1.5,
                               two_object_prob=0.5, still_prob=0.2, holdout_pairs=pairs)
    assert fixed["rendered"] == 1
    fewer, _ = av.make_dataset(tmp_path / "fewer", 5, size=64, seed=3, min_seconds=1.0, max_seconds=1.5,
                               two_object_prob=0.5, still_prob=0.2)  # item i depends only on (seed, i)
    every = sorted(clip_records(out) + clip_records(out, "heldout.jsonl"), key=lambda r: r["path"])
    strip = lambda r: {k: v for k, v in r.items() if k not in ("path", "audio_path", "heldout")}  # noqa: E731
    assert [strip(r) for r in read_manifest(fewer)] == [strip(r) for r in every[:5]]
    other, _ = av.make_dataset(tmp_path / "b", 4, size=64, seed=4, min_seconds=1.0, max_seconds=1.5)
    assert [json.loads(x)["caption"] for x in other.read_text().splitlines()] != [
        r["caption"] for r in every[:4]]


def test_written_wav_has_each_strike_at_its_time(dataset):
    """The 16-bit wav read back, minus the hum of every object (times the mix gain): each strike's onset is
    within 1 ms of its recorded impact time (impacts with another one 200 ms before are not tested)."""
    from lumina_video.audio.media import read_audio

    out, _, _ = dataset
    tested = 0
    for r in clip_records(out) + clip_records(out, "heldout.jsonl"):
        wave = read_audio(out / r["audio_path"]).wave.astype(np.float64)
        t = sound.sample_times(len(wave))
        hum = sum(sound.hum(o["note_hz"], o["timbre"], av.speeds(o, 64, t, r["duration"]), av.reference_speed(64))
                  for o in r["objects"])
        times = [i["time"] for i in r["impacts"]]
        alone = [x for x in times if not any(0 < x - y < 0.2 for y in times)]
        onsets = strike_onsets(wave - r["mix_gain"] * hum, alone)
        np.testing.assert_allclose(onsets, alone, atol=1e-3)
        tested += len(alone)
    assert tested >= 5


def test_mp4_has_the_sound_as_an_audio_track(dataset):
    """Each mp4's AAC track lasts the clip (to 1 ms: mp4 durations are kept in milliseconds, and an odd frame
    count at 16 fps lasts a half millisecond more) and carries the wav's sound, sample-aligned (lossy:
    compared by correlation, best at lag 0)."""
    from lumina_video.audio.media import audio_duration, read_audio, video_duration

    out, _, _ = dataset
    for r in clip_records(out):
        assert video_duration(r["path"]) == pytest.approx(r["duration"], abs=1e-6)
        assert audio_duration(r["path"]) == pytest.approx(r["duration"], abs=1e-3)
        track, exact = read_audio(r["path"]), read_audio(out / r["audio_path"])
        n = exact.num_samples
        assert n == round(r["duration"] * SR) and abs(track.num_samples - n) <= SR // 1000 and not track.resampled
        if r["still"]:
            continue
        a, b = track.wave[:n].astype(np.float64), exact.wave.astype(np.float64)
        assert np.corrcoef(a, b)[0, 1] > 0.99
        lags = np.arange(-8, 9)
        cc = [np.dot(a[max(0, k):n + min(0, k)], b[max(0, -k):n - max(0, k)]) for k in lags]
        assert lags[int(np.argmax(cc))] == 0


def test_cli_writes_a_dataset_and_reports_bad_arguments(tmp_path, capsys):
    from lumina_video.cli import main

    assert main(["synth-av", str(tmp_path), "--n", "2", "--size", "64", "--min-seconds", "1", "--max-seconds", "1",
                 "--no-progress", "--holdout", "red circle"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("wrote ") and "2 clips" in line and "rendered" in line
    assert len(clip_records(tmp_path)) + len(clip_records(tmp_path, "heldout.jsonl")) == 2
    assert main(["synth-av", str(tmp_path / "x"), "--n", "2", "--holdout", "pink circle"]) == 2
    assert main(["synth-av", str(tmp_path / "x"), "--n", "2", "--min-seconds", "3", "--max-seconds", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("lumina-video synth-av: error: ") for e in err)


def test_resound_renders_the_clip_again_and_with_another_shapes_timbre(dataset):
    from lumina_video.audio.media import read_audio
    from lumina_video.eval.audio_metrics import classify_timbre, harmonic_profile, pitch_track

    out, _, counts = dataset
    seed = json.loads((out / "synth_av.json").read_text())["seed"]
    for record in counts["records"]:  # the written 16-bit wav, within rounding
        wave = read_audio(out / record["audio_path"]).wave
        assert float(np.abs(av.resound(record, seed) - wave).max()) <= 1 / 32768
    moving = next(r for r in counts["records"] if len(r["objects"]) == 1 and not r["still"])
    own = av.resound(moving, seed)
    for shape, timbre in sound.TIMBRES.items():
        w = av.resound(moving, seed, shape)
        assert w.shape == own.shape and (shape == moving["objects"][0]["shape"]) == bool(np.array_equal(w, own))
        _, f0 = pitch_track(w)
        voiced = np.isfinite(f0)
        est = float(np.median(f0[voiced]))
        assert abs(1200 * np.log2(est / moving["objects"][0]["note_hz"])) < 50  # the same note
        assert classify_timbre(harmonic_profile(w, est, voiced)) == timbre
    with pytest.raises(ValueError, match="unknown shape 'star'"):
        av.resound(moving, seed, "star")
