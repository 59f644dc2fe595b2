"""LuminaV2APipeline and `lumina-video v2a` on a random-weight tiny pipeline (testing_v2a.py): folder round trip,
seeds (a batch equals single runs), output length = the video's duration, the command's three files, and bad
inputs refused in one line with nothing written."""
import json
import math
import wave

import numpy as np
import pytest
import torch

from lumina_video.audio import AudioVAE, audio_duration, tiny_audio_vae_config
from lumina_video.data.video_io import read_video, write_image, write_video
from lumina_video.pipeline.v2a import LuminaV2APipeline
from lumina_video.testing_v2a import make_tiny_v2a_pipeline


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("v2a") / "pipe"
    make_tiny_v2a_pipeline(path, seed=0)
    return path


@pytest.fixture(scope="module")
def pipe(folder):
    return LuminaV2APipeline.from_pretrained(folder)


def clip(n: int, seed: int = 0, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_save_load_round_trip_gives_identical_audio(folder, tmp_path):
    first = make_tiny_v2a_pipeline(seed=0)
    frames = clip(10)
    a = first(frames, fps=10, seed=3, progress=False).audio
    b = LuminaV2APipeline.from_pretrained(folder)(frames, fps=10, seed=3, progress=False).audio
    np.testing.assert_array_equal(a, b)
    again = tmp_path / "again"
    LuminaV2APipeline.from_pretrained(folder).save_pretrained(again)
    c = LuminaV2APipeline.from_pretrained(again)(frames, fps=10, seed=3, progress=False).audio
    np.testing.assert_array_equal(a, c)


def test_griffin_lim_vocoder_round_trips(tmp_path):
    pipe = make_tiny_v2a_pipeline(tmp_path / "gl", vocoder="griffin-lim")
    loaded = LuminaV2APipeline.from_pretrained(tmp_path / "gl")
    assert type(loaded.vocoder).__name__ == "GriffinLim"
    frames = clip(5)
    a = pipe(frames, fps=10, seed=1, num_inference_steps=2, progress=False).audio
    b = loaded(frames, fps=10, seed=1, num_inference_steps=2, progress=False).audio
    np.testing.assert_array_equal(a, b)


def assert_close(a, b, rel: float = 1e-4):
    """Equal up to `rel` of the signal's scale (the random-weight tiny vocoder's output is ~1e-11)."""
    scale = float(np.abs(b).max())
    assert scale > 0
    np.testing.assert_allclose(a, b, rtol=0, atol=rel * scale)


def test_same_seed_same_audio_in_a_batch_and_alone(pipe):
    videos = [clip(10, seed=1), clip(10, seed=2)]
    batch = pipe(videos, ["a knock", None], fps=10, seed=7, progress=False)
    alone = pipe(videos[1], None, fps=10, seed=8, progress=False)
    first = pipe(videos[0], "a knock", fps=10, seed=7, progress=False)
    assert batch.seeds == [7, 8] and alone.seeds == [8]
    assert_close(batch.latents[1].numpy(), alone.latents[0].numpy())
    assert_close(batch.latents[0].numpy(), first.latents[0].numpy())
    assert_close(batch.audio[1], alone.audio[0], rel=1e-3)
    assert_close(batch.audio[0], first.audio[0], rel=1e-3)
    diff = (batch.latents[0] - batch.latents[1]).abs().max()  # different videos, prompts and seeds
    assert diff > 0.1 * batch.latents.abs().max()


@pytest.mark.parametrize("n, fps, seconds", [(10, 10.0, 1.0), (36, 24.0, 1.5)])
def test_output_length_matches_the_video_duration(pipe, n, fps, seconds):
    out = pipe(clip(n), fps=fps, seed=0, num_inference_steps=1, progress=False)
    assert out.audio.shape == (1, round(seconds * 16000)) and out.audio.dtype == np.float32
    assert out.sample_rate == 16000 and out.seconds == [pytest.approx(seconds)]
    padded = math.ceil(seconds - 1e-9)  # the latent covers whole seconds (pad_seconds 1), the wave the video
    assert out.latents.shape[2] == -(-round(padded * 25) // pipe.transformer.cfg.patch_time)
    assert np.isfinite(out.audio).all()
    by_times = pipe(clip(n), times=np.arange(n) / fps, seed=0, num_inference_steps=1, progress=False)
    np.testing.assert_array_equal(by_times.audio, out.audio)


def test_features_are_encoded_over_whole_seconds_and_cut_at_the_video_end(pipe):
    """A 1.5 s video: the encoders see 2 s (the last frame held), the model gets the features before 1.5 s;
    pad_seconds 0 encodes the 1.5 s alone and makes a 1.5 s latent."""
    from lumina_video.encoders.clips import frame_times

    video = clip(36)
    cond = pipe.encode_video([(video, frame_times(36, 24.0))], 1.5)
    whole, times = pipe.sync_encoder.encode(video, frame_times(36, 24.0), duration=2.0)
    assert float(cond["sync_times"].max()) < 1.5 and cond["sync"].shape[1] == int((times < 1.5).sum()) == 38
    torch.testing.assert_close(cond["sync"][0], whole[times < 1.5].float())
    assert float(cond["visual_times"].max()) < 1.5 and cond["visual"].shape[1] == 12  # 8 per second
    pipe.defaults["pad_seconds"] = 0
    try:
        out = pipe(video, fps=24, seed=0, num_inference_steps=1, output_type="latent", progress=False)
        exact, times = pipe.sync_encoder.encode(video, frame_times(36, 24.0), duration=1.5)
        cut = pipe.encode_video([(video, frame_times(36, 24.0))], 1.5)["sync"][0]
    finally:
        pipe.defaults["pad_seconds"] = 1.0
    assert out.latents.shape[2] == 38 and cut.shape[0] == 37  # the grid ends before 1.5 s: 0 .. 1.44 s
    torch.testing.assert_close(cut, exact.float())
    torch.testing.assert_close(cut[:30], cond["sync"][0, :30])  # the same away from the end
    assert not torch.allclose(cut[-3:], cond["sync"][0, 34:37])  # near it, the edge vs the held frame


def test_latent_output_and_the_text_condition_drop(pipe):
    out = pipe(clip(10), fps=10, seed=0, output_type="latent", num_inference_steps=2, progress=False)
    assert out.audio is None and out.latents.shape == (1, 8, 25, 16)
    prompted = pipe(clip(10), "rain", fps=10, seed=0, output_type="latent", num_inference_steps=2, progress=False)
    assert not np.allclose(out.latents.numpy(), prompted.latents.numpy())


@pytest.mark.parametrize("video, kw, message", [
    (clip(2), dict(fps=200), "shorter than one audio latent frame"),
    (clip(40), dict(fps=8), "over this model's limit"),
    (np.zeros((0, 32, 32, 3), np.uint8), dict(fps=10), "zero frames"),
    (clip(1)[0], dict(fps=10), "still image"),
    (clip(1), dict(fps=10), "still image"),
    (clip(10), dict(), "times"),
])
def test_bad_pipeline_inputs_are_one_line_errors(pipe, video, kw, message):
    with pytest.raises(ValueError, match=message) as e:
        pipe(video, progress=False, **kw)
    assert "\n" not in str(e.value)


def test_mismatched_components_are_refused(pipe, folder, tmp_path, capsys):
    parts = {k: getattr(pipe, k) for k in ("transformer", "vocoder", "sync_encoder", "clip", "text_encoder")}
    vae4 = AudioVAE.from_config(tiny_audio_vae_config(latent_channels=4))
    with pytest.raises(ValueError, match="latent channels is 4 but the V2A model's in_channels is 8") as e:
        LuminaV2APipeline(audio_vae=vae4, **parts)
    assert "\n" not in str(e.value)
    bad = tmp_path / "bad"
    LuminaV2APipeline.from_pretrained(folder).save_pretrained(bad)
    vae4.save_pretrained(bad / "audio_vae")
    assert run_cli([str(tmp_path / "none.mp4"), "--out", str(tmp_path / "o"), "--model", str(bad)]) == 2
    assert "mismatched components: audio VAE latent channels is 4" in capsys.readouterr().err


# -- the command ------------------------------------------------------------------------------------
def run_cli(argv) -> int:
    """`lumina-video v2a ARGV` as the console script runs it."""
    from lumina_video import cli

    return cli.main(["v2a", *argv])


def test_command_writes_mp4_wav_and_json(folder, tmp_path, capsys):
    src = tmp_path / "knock.mp4"
    write_video(src, clip(12, size=32), fps=12.0)
    out = tmp_path / "out"
    argv = [str(src), "--out", str(out), "--model", str(folder), "--seed", "4", "--steps", "2", "--no-progress"]
    assert run_cli(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["knock.json", "knock.mp4", "knock.wav"]
    with wave.open(str(out / "knock.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (16000, 1, 16000)
    frames, fps = read_video(out / "knock.mp4")
    assert len(frames) == 12 and fps == pytest.approx(12.0)
    assert audio_duration(out / "knock.mp4") == pytest.approx(1.0, abs=0.07)
    record = json.loads((out / "knock.json").read_text())
    assert record["seed"] == 4 and record["num_inference_steps"] == 2 and record["seconds"] == pytest.approx(1.0)
    assert {"visual_s", "denoise_s", "vae_s", "vocoder_s", "total_s"} <= set(record["timings"])
    assert run_cli(argv) == 2 and "--overwrite" in capsys.readouterr().err
    assert run_cli([*argv, "--overwrite"]) == 0


def test_command_takes_each_videos_caption_from_a_manifest(folder, tmp_path, capsys):
    """--captions MANIFEST: video i's text condition is its record's caption (equal to --prompt CAPTION alone)."""
    clips = tmp_path / "data" / "clips"
    clips.mkdir(parents=True)
    for name, n in (("a", 12), ("b", 10)):
        write_video(clips / f"{name}.mp4", clip(n, size=32), fps=12.0)
    manifest = tmp_path / "data" / "manifest.jsonl"
    manifest.write_text('{"path": "clips/a.mp4", "caption": "a red circle bouncing", "type": "video"}\n'
                        '{"path": "clips/b.mp4", "caption": "a blue square staying still", "type": "video"}\n')
    common = ["--model", str(folder), "--seed", "4", "--steps", "2", "--no-progress"]
    videos = [str(clips / "b.mp4"), str(clips / "a.mp4")]
    assert run_cli([*videos, "--out", str(tmp_path / "m"), "--captions", str(manifest), *common]) == 0
    assert json.loads((tmp_path / "m" / "b.json").read_text())["prompt"] == "a blue square staying still"
    assert json.loads((tmp_path / "m" / "a.json").read_text())["prompt"] == "a red circle bouncing"
    one = [videos[1], "--out", str(tmp_path / "p"), "--prompt", "a red circle bouncing", "--model", str(folder),
           "--seed", "5", "--steps", "2", "--no-progress"]  # video a was video 1 (seed 4 + 1) above
    assert run_cli(one) == 0
    with wave.open(str(tmp_path / "m" / "a.wav")) as w1, wave.open(str(tmp_path / "p" / "a.wav")) as w2:
        assert w1.readframes(w1.getnframes()) == w2.readframes(w2.getnframes())
    capsys.readouterr()
    assert run_cli([*videos, "--out", str(tmp_path / "x"), "--captions", str(manifest), "--prompt", "p", *common]) == 2
    assert "not both" in capsys.readouterr().err
    manifest.write_text('{"path": "clips/a.mp4", "caption": "a red circle bouncing", "type": "video"}\n')
    assert run_cli([*videos, "--out", str(tmp_path / "x"), "--captions", str(manifest), *common]) == 2
    assert "has no record for" in capsys.readouterr().err and not (tmp_path / "x").exists()


def bad_file(tmp_path, kind: str):
    path = tmp_path / {"image": "still.png", "corrupt": "broken.mp4", "one_frame": "one.mp4", "long": "long.mp4",
                       "missing": "gone.mp4"}[kind]
    if kind == "image":
        write_image(path, clip(1)[0])
    elif kind == "corrupt":
        path.write_bytes(b"not a video at all" * 50)
    elif kind == "one_frame":
        write_video(path, clip(1), fps=10.0)
    elif kind == "long":
        write_video(path, clip(40), fps=8.0)
    return path


@pytest.mark.parametrize("kind, message", [("image", "not a supported video"), ("corrupt", "cannot open"),
                                           ("one_frame", "still image"), ("long", "over this model's limit"),
                                           ("missing", "no such video")])
def test_command_refuses_bad_inputs_in_one_line_and_writes_nothing(folder, tmp_path, capsys, kind, message):
    good = tmp_path / "good.mp4"
    write_video(good, clip(10), fps=10.0)
    out = tmp_path / "out"
    code = run_cli([str(good), str(bad_file(tmp_path, kind)), "--out", str(out), "--model", str(folder),
                    "--no-progress"])
    text = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(text) == 1 and message in text[0], text
    assert not out.exists() or not any(out.iterdir())


def test_generate_with_audio_writes_a_video_with_its_soundtrack(folder, tmp_path):
    """`lumina-video generate PROMPT --audio --audio-model DIR`: the video pipeline's frames get a V2A
    soundtrack: NAME.mp4 with an AAC track of the video's length, NAME.wav, and the settings in NAME.json."""
    import json

    import av

    from lumina_video.audio.media import read_audio
    from lumina_video.cli import main

    out = tmp_path / "gen"
    assert main(["generate", "a red circle moving to the right", "--num-frames", "8", "--steps", "2", "--seed", "3",
                 "--name", "clip", "--out", str(out), "--audio", "--audio-model", str(folder), "--no-progress"]) == 0
    with av.open(str(out / "clip.mp4")) as f:
        assert len(f.streams.audio) == 1 and len(f.streams.video) == 1
    record = json.loads((out / "clip.json").read_text())
    seconds = record["num_frames"] / record["fps"]
    assert record["audio"]["wav"] == "clip.wav" and record["audio"]["seed"] == 3
    assert abs(read_audio(out / "clip.wav").duration - seconds) < 1e-3
