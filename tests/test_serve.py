"""`lumina-video serve` without a browser: the page's limits agree with the pipeline's own checks,
bad requests get a specific message, a request makes a playable mp4 + its settings, with progress."""
import json

import av
import numpy as np
import pytest

from lumina_video import serve
from lumina_video.cli import main
from lumina_video.data.vocab import caption, parse_caption
from lumina_video.sampling import SamplingConfig
from lumina_video.serve import Limits, Request, RequestRunner, check_request, example_prompts, model_limits
from lumina_video.testing import make_tiny_pipeline

STEPS = 2
EXAMPLES = [caption("red", "circle", "right"), caption("blue", "square", "left", "quickly"),
            caption("green", "triangle", "up", "slowly", "gray"), caption("yellow", "circle", None, None, "black"),
            caption("purple", "square", "down"), caption("orange", "triangle", "right", "quickly", "white")]


@pytest.fixture(scope="module")
def pipe():
    sampling = SamplingConfig.preset("f24F96R960-MultiScale").replace(steps=STEPS).to_official()
    return make_tiny_pipeline(defaults=dict(height=32, width=64, num_frames=16, sampling=sampling,
                                            example_prompts=EXAMPLES))


@pytest.fixture(scope="module")
def limits(pipe):
    return model_limits(pipe)


def _accepted_by_pipeline(pipe, frames, height=32, width=32):
    try:
        pipe.check_inputs("a red circle", "", height, width, frames, pipe.resolve_sampling(multiscale=False))
    except ValueError:
        return False
    return True


def test_limits_default_to_the_model_defaults(pipe, limits):
    # sizes: multiples of 32 = VAE 8x times the largest patch 4; caps: the model's default size and frames
    assert limits == Limits(size_step=32, max_height=64, max_width=64, frame_choices=(1, 8, 9, 16), max_steps=100)
    # the frame choices are exactly the counts the pipeline accepts (1, 8m, 8m + 1)
    assert [f for f in range(1, 17) if _accepted_by_pipeline(pipe, f)] == list(limits.frame_choices)


def test_limits_stop_at_the_model_rope_table(pipe):
    big = model_limits(pipe, max_size=4096, max_frames=300, max_steps=7)
    # RoPE table: 128 height/width tokens of the finest patch p = 2 -> 128 * 2 * 8 px; 64 latent frames
    # (temporal patch 1) -> 4 * 64 = 256 frames (257 would need 65)
    assert (big.max_height, big.max_width, big.frame_choices[-1], big.max_steps) == (2048, 2048, 256, 7)
    # computed, not probed, yet exactly what the pipeline's own checks accept
    assert [f for f in range(1, 301) if _accepted_by_pipeline(pipe, f)] == list(big.frame_choices)
    sizes = [v for v in range(1, 2200) if _accepted_by_pipeline(pipe, 1, height=v)]
    assert sizes == list(range(big.size_step, big.max_height + 1, big.size_step))
    assert [v for v in range(1, 2200) if _accepted_by_pipeline(pipe, 1, width=v)] == sizes
    with pytest.raises(ValueError, match="max_frames must be a positive integer"):
        model_limits(pipe, max_frames=0)


@pytest.mark.parametrize("changes, message", [
    (dict(prompt=""), "prompt is empty"),
    (dict(prompt="   \n"), "prompt is empty"),
    (dict(height=96), r"height 96 px is out of range: accepted 32 to 64 px in steps of 32"),
    (dict(width=0), r"width 0 px is out of range"),
    (dict(height=48), r"height must be a positive multiple of 32"),  # the pipeline's own message
    (dict(width=32.5), r"width must be a whole number"),
    (dict(num_frames=24), r"Too many frames: 24 requested, this server allows at most 16"),
    (dict(num_frames=10), r"1, 8m or 8m \+ 1 frames"),  # the VAE's rule, from the pipeline
    (dict(num_frames=9, multiscale=True), r"needs an even number"),  # temporal patch 2 of multi-scale
    (dict(steps=0), r"steps 0 is out of range: accepted 1 to 100"),
    (dict(steps=101), r"steps 101 is out of range"),
    (dict(seed=-1), r"seed -1 is out of range"),
    (dict(guidance_scale=-1.0), r"guidance_scale must be a number >= 0"),
])
def test_bad_requests_get_a_specific_message(pipe, limits, changes, message):
    req = dict(prompt="a red circle moving to the right", multiscale=False) | changes
    with pytest.raises(ValueError, match=message):
        check_request(pipe, limits, Request(**req))


def test_check_fills_the_model_defaults(pipe, limits):
    config, req = check_request(pipe, limits, Request("a red circle", num_frames=9.0, multiscale=False, seed=3.0))
    assert (req.height, req.width, req.num_frames, req.steps, req.seed, req.negative_prompt) == \
        (32, 64, 9, STEPS, 3, "")
    assert type(req.num_frames) is int and not config.is_multiscale()
    config, req = check_request(pipe, limits, Request("a red circle"))
    assert config.is_multiscale() and req.num_frames == 16 and req.seed is None


def test_examples_come_from_the_model_defaults(pipe):
    examples = example_prompts(pipe)
    assert examples == EXAMPLES
    assert len(examples) >= 4 and all(parse_caption(e) is not None for e in examples)
    assert len({parse_caption(e)["color"] for e in examples}) >= 4
    other = make_tiny_pipeline(defaults=dict(sampling=pipe.defaults["sampling"]))
    assert example_prompts(other) == []
    other.defaults["example_prompts"] = "a red circle"
    with pytest.raises(ValueError, match="example_prompts must be a list of non-empty strings"):
        example_prompts(other)


class _Recorder:
    """Stands in for gr.Progress, which has len() == 0 until it tracks an iterable."""

    def __init__(self):
        self.calls = []

    def __len__(self):
        return 0

    def __call__(self, progress, desc=None, unit="steps"):
        self.calls.append((progress, desc))


def _decode(path):
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])


def test_runner_writes_video_and_settings_with_progress(pipe, limits, tmp_path, monkeypatch):
    import lumina_video.data.video_io as video_io

    # the frames handed to the package's one video writer, which generate.write_generation calls
    # through the module (video_io.write_video), so that this wrapper sees every video it writes
    written, write_video = [], video_io.write_video
    monkeypatch.setattr(video_io, "write_video", lambda path, frames, fps: (written.append(frames.copy()),
                                                                             write_video(path, frames, fps)))
    gen = RequestRunner(pipe, limits, tmp_path / "videos", model_name="tiny")
    progress = _Recorder()
    req = Request("a blue square moving up", "blurry", motion_score=4.0, negative_motion_score=1.0,
                  multiscale=True, steps=3, guidance_scale=5.0, seed=11, height=32, width=64, num_frames=8)
    video, record, settings = gen(req, progress)
    assert video.suffix == ".mp4" and video.parent == record.parent and video.parent.parent == tmp_path / "videos"
    frames = _decode(video)
    assert frames.shape == (8, 32, 64, 3)
    assert len(written) == 1 and written[0].shape == frames.shape  # the file came from the wrapped writer
    assert np.abs(written[0].astype(int) - frames).mean() < 10  # and holds those frames (after H.264)
    assert json.loads(record.read_text()) == settings
    assert (settings["prompt"], settings["negative_prompt"], settings["seed"], settings["num_frames"]) == \
        ("a blue square moving up", "blurry", 11, 8)
    assert settings["sampling"]["steps"] == 3 and settings["sampling"]["motion"] == 4.0
    assert settings["sampling"]["multiscale"] is True and settings["model"] == "tiny"
    assert [p for p, d in progress.calls if d == "denoising"] == [(1, 3), (2, 3)]
    assert [d for _, d in progress.calls if d != "denoising"] == ["encoding the prompt", "decoding the video",
                                                                  "writing the video"]
    # the same seed gives the same frames (the H.264 bytes themselves may differ between encodes);
    # a random seed is reported and differs
    video2, _, _ = gen(req)
    assert video2 != video and len(written) == 2 and np.array_equal(written[0], written[1])
    _, _, s3 = gen(Request("a blue square moving up", steps=1, num_frames=1))
    _, _, s4 = gen(Request("a blue square moving up", steps=1, num_frames=1))
    assert isinstance(s3["seed"], int) and s3["seed"] != s4["seed"]


def test_runner_refuses_work_after_close(pipe, limits, tmp_path):
    gen = RequestRunner(pipe, limits, tmp_path)
    gen.close()
    with pytest.raises(serve.ServerClosing):
        gen(Request("a red circle", steps=1, num_frames=1))


def test_host_is_loopback_unless_opened():
    assert serve.resolve_host(None, False) == "127.0.0.1"
    assert serve.resolve_host("::1", False) == "::1"
    assert serve.resolve_host(None, True) == "0.0.0.0"
    with pytest.raises(ValueError, match="cannot be combined with --host 127.0.0.1"):
        serve.resolve_host("127.0.0.1", True)


def test_cli_without_a_model_fails_like_generate(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LUMINA_VIDEO_MODEL", str(tmp_path / "absent"))
    assert main(["serve"]) == 2
    served = capsys.readouterr().err
    assert main(["generate", "a red circle", "--out", str(tmp_path / "out")]) == 2
    generated = capsys.readouterr().err
    # the variable is named with its value, never mistaken for a missing bundled model
    assert f"$LUMINA_VIDEO_MODEL is '{tmp_path / 'absent'}'" in served and "does not exist" in served
    assert "is not installed" not in served
    assert served.split("error: ", 1)[1] == generated.split("error: ", 1)[1]
    assert main(["serve", "--model", str(tmp_path)]) == 2
    assert "not a complete Lumina-Video pipeline folder" in capsys.readouterr().err


def test_cli_refuses_bad_options(tmp_path, capsys):
    assert main(["serve", "--share-on-network", "--host", "127.0.0.1"]) == 2
    assert "cannot be combined" in capsys.readouterr().err
    assert main(["serve", "--queue-size", "0"]) == 2
    assert "--queue-size must be >= 1" in capsys.readouterr().err


def test_page_values_stay_within_the_limits(pipe):
    v = serve.page_values(pipe, model_limits(pipe))
    assert (v["height"], v["width"], v["num_frames"], v["steps"], v["multiscale"]) == (32, 64, 16, STEPS, True)
    assert (v["motion"], v["negative_motion"], v["guidance"]) == (6.0, 2.0, 20.0)  # the preset's
    small = model_limits(pipe, max_size=32, max_frames=9, max_steps=1)
    v = serve.page_values(pipe, small)
    # 9 frames are on offer (single-scale) but the default multi-scale schedule needs 8m: start at 8
    assert (v["height"], v["width"], v["num_frames"], v["steps"]) == (32, 32, 8, 1)


def test_page_builds_when_a_limit_allows_one_value(pipe):
    gr = pytest.importorskip("gradio")
    demo = serve.build_app(pipe, limits=model_limits(pipe, max_size=32, max_steps=1), queue_size=2)
    by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    assert isinstance(by_id["height"], gr.Number) and by_id["height"].value == 32  # Gradio sliders need lo < hi
    assert isinstance(by_id["steps"], gr.Number) and isinstance(by_id["guidance"], gr.Slider)
    assert by_id["frames"].choices == [(str(f), f) for f in (1, 8, 9, 16)]
    assert demo._queue.max_size == 2


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve") / "tiny"
    make_tiny_pipeline(folder, defaults=dict(example_prompts=EXAMPLES))
    return folder


def test_example_prompts_survive_the_model_folder(model_dir):
    from lumina_video.pipeline import LuminaVideoPipeline

    loaded = example_prompts(LuminaVideoPipeline.from_pretrained(model_dir))
    assert loaded != [] and loaded == EXAMPLES


def test_cli_serves_on_loopback_and_cleans_up_on_sigterm(model_dir, tmp_path, free_port):
    """The real command in a subprocess: it answers on 127.0.0.1, and `kill` removes its files."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    pytest.importorskip("gradio")
    import lumina_video

    port = free_port()
    paths = [str(Path(lumina_video.__file__).parents[1])]
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONPATH=os.pathsep.join(paths))
    proc = subprocess.Popen([sys.executable, "-m", "lumina_video.cli", "serve", "--model", str(model_dir),
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while not any(line.startswith("serving on") for line in lines) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        assert any(f"serving on http://localhost:{port}" in line for line in lines), "".join(lines)
        assert not any("NETWORK" in line for line in lines)  # the banner is only for --share-on-network
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as r:
            assert r.status == 200 and b"gradio" in r.read().lower()
        assert len(list(tmp_path.glob("lumina-video-serve-*"))) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert list(tmp_path.glob("lumina-video-serve-*")) == []


def test_cli_reports_a_busy_port(model_dir, capsys):
    import socket

    pytest.importorskip("gradio")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", "--model", str(model_dir), "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in capsys.readouterr().err


def test_requests_get_warnings_and_over_memory_ones_a_message(pipe, monkeypatch):
    monkeypatch.setitem(pipe.defaults, "vocabulary", "synthetic")
    limits = model_limits(pipe, max_size=512)  # the model's defaults: 32x64 px, 16 frames
    _, filled = check_request(pipe, limits, Request("a cat on a sofa", multiscale=False, num_frames=1))
    [w] = serve.request_warnings(pipe, filled)
    assert "'cat', 'sofa' not in the model's synthetic vocabulary" in w
    _, filled = check_request(pipe, limits, Request(caption("red", "circle", "up"), height=256, width=256,
                                                    num_frames=1, multiscale=False))
    [w] = serve.request_warnings(pipe, filled)
    assert "256x256 px is 8x the size the model was trained at (32x64)" in w
    monkeypatch.setattr("lumina_video.devices.device_memory", lambda device: 2**20)  # a 1 MiB device
    with pytest.raises(ValueError, match=r"needs about \d+ MiB .*, more than the 1 MiB of cpu"):
        check_request(pipe, limits, Request("a red circle", num_frames=1, multiscale=False))


def test_runner_shows_a_console_bar_unless_told_not_to(pipe, limits, tmp_path, capsys):
    for console, shown in ((True, True), (False, False)):
        RequestRunner(pipe, limits, tmp_path, console_progress=console)(Request("a red circle", steps=2, num_frames=1))
        assert ("denoising" in capsys.readouterr().err) is shown


def test_cli_checks_threads_and_device_before_loading(capsys):
    assert main(["serve", "--threads", "0"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err
    assert main(["serve", "--device", "cdua"]) == 2
    assert "--device cdua: not a device name" in capsys.readouterr().err


def test_page_has_a_step_cache_field_that_reaches_the_record(pipe, limits, tmp_path):
    gr = pytest.importorskip("gradio")
    demo = serve.build_app(pipe, limits=limits, queue_size=2)
    field = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}["step-cache"]
    assert isinstance(field, gr.Dropdown) and field.value == "off" and field.allow_custom_value
    assert [c[1] for c in field.choices] == ["off", "auto"]
    values = ["a red circle", "", 6.0, 2.0, False, 6, 4.0, False, 3, 32, 32, 1]
    assert serve.page.form_request(*values, "0.5").step_cache == "0.5"
    gen = RequestRunner(pipe, limits, tmp_path)
    _, _, plain = gen(serve.page.form_request(*values, "off"))
    _, _, cached = gen(serve.page.form_request(*values, "1e9"))  # reuses wherever the rules allow
    assert plain["step_cache"] is None and cached["step_cache"] == 1e9 and cached["dtype"] == plain["dtype"]
    # 6 single-scale steps of the f24 grid, all guided (t < 0.2): steps 0, 1 (the stage's start), 4 (the
    # negative motion switch at t = 0.05) and 5 (the last) are computed, 2 and 3 reused
    assert plain["forwards"]["total_calls"] == 6 and cached["forwards"]["total_calls"] == 4
    assert cached["forwards"]["reused"] == {"1x2": 2}
    with pytest.raises(ValueError, match="step cache must be 'off', 'auto' or a threshold"):
        check_request(pipe, limits, serve.page.form_request(*values, "fast"))


# -- "add sound": a soundtrack from a V2A pipeline (a random-weight tiny one) ----------------------------
SOUND_SECONDS = 1.5  # the tiny V2A model's limit here: at 8 fps, 8 and 9 frames fit, 16 do not


@pytest.fixture(scope="module")
def v2a():
    from lumina_video.testing_v2a import make_tiny_v2a_pipeline

    return make_tiny_v2a_pipeline(defaults=dict(max_seconds=SOUND_SECONDS))


@pytest.fixture(scope="module")
def sound_limits(pipe, v2a):
    return model_limits(pipe, v2a=v2a)


def test_sound_limits_are_the_v2a_pipeline_checks(pipe, limits, v2a, sound_limits):
    # frames F >= 2 whose F / 8 s the V2A pipeline's check_inputs accepts; the video limits are unchanged
    assert sound_limits == Limits(32, 64, 64, (1, 8, 9, 16), 100, sound_frames=(8, 9), sound_seconds=SOUND_SECONDS)
    assert limits.sound_frames == () and limits.sound_seconds == 0.0  # no V2A pipeline: no sound offered
    longer = model_limits(pipe, max_frames=48, v2a=v2a)
    assert longer.frame_choices[-1] == 48 and longer.sound_frames == (8, 9)
    with pytest.raises(ValueError, match="over this model's limit of 1.5 s"):  # what 16 frames meet in the pipeline
        v2a.check_inputs([None], [None], [16 / 8], 4, 2.0)


@pytest.mark.parametrize("frames, message", [
    (16, r"Too long for sound: 16 frames at 8 fps last 2 s, over the V2A model's limit of 1.5 s; ask for at most "
         r"9 frames \(or untick 'add sound'\)\."),
    (1, r"Too short for sound: 1 frame\(s\) at 8 fps; a soundtrack needs at least 8 frames"),
])
def test_sound_requests_must_fit_the_v2a_model(pipe, sound_limits, frames, message):
    req = Request("a red circle", num_frames=frames, multiscale=False, add_sound=True)
    with pytest.raises(ValueError, match=message):
        check_request(pipe, sound_limits, req)
    _, filled = check_request(pipe, sound_limits, Request("a red circle", num_frames=frames, multiscale=False))
    assert filled.add_sound is False  # the same video without sound is fine
    _, filled = check_request(pipe, sound_limits, Request("a red circle", num_frames=9, multiscale=False,
                                                          add_sound=True))
    assert filled.add_sound is True


def test_sound_without_a_v2a_model_is_refused(pipe, limits, sound_limits, tmp_path):
    req = Request("a red circle", num_frames=9, multiscale=False, add_sound=True)
    with pytest.raises(ValueError, match="This server has no V2A model, so it cannot add sound"):
        check_request(pipe, limits, req)
    with pytest.raises(ValueError, match="no V2A model"):  # limits that offer sound, but no pipeline to make it
        RequestRunner(pipe, sound_limits, tmp_path)(req)


def _wav_samples(path):
    import wave

    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def test_request_with_sound_writes_mp4_with_audio_and_wav(pipe, sound_limits, v2a, tmp_path):
    from lumina_video.audio.media import pcm16

    gen = RequestRunner(pipe, sound_limits, tmp_path, model_name="tiny", v2a=v2a, v2a_name="tiny-v2a")
    progress = _Recorder()
    req = Request("a red circle moving up", num_frames=9, multiscale=False, steps=2, seed=5, add_sound=True)
    video, record, settings = gen(req, progress)
    assert [d for _, d in progress.calls][-2:] == ["writing the video", "adding sound"]
    with av.open(str(video)) as c:  # one H.264 stream and one AAC stream, of the clip's length
        [vs], [aud] = c.streams.video, c.streams.audio
        assert (vs.codec_context.name, aud.codec_context.name, aud.codec_context.sample_rate) == ("h264", "aac", 16000)
        decoded = sum(f.samples for f in c.decode(aud))
    assert abs(decoded - 9 / 8 * 16000) <= 1024 + 2048  # AAC frames of 1024 samples, encoder priming
    assert json.loads(record.read_text()) == settings
    audio = settings["audio"]
    assert (audio["model"], audio["wav"], audio["seed"], audio["seconds"]) == \
        ("tiny-v2a", f"{video.stem}.wav", 5, 9 / 8)
    # the wav is the V2A pipeline's output for the video's own frames, prompt and seed (16-bit PCM)
    rate, samples = _wav_samples(video.parent / audio["wav"])
    assert rate == 16000 and len(samples) == round(9 / 8 * 16000)
    config, _ = check_request(pipe, sound_limits, req)
    frames = pipe("a red circle moving up", "", 32, 64, 9, preset=config, seed=5, progress=False).frames
    expected = v2a(frames, ["a red circle moving up"], fps=8.0, seed=5, progress=False).audio[0]
    assert np.abs(samples.astype(int) - pcm16(expected)).max() <= 1
    plain_video, _, plain = gen(Request("a red circle moving up", num_frames=9, multiscale=False, steps=2, seed=5))
    assert "audio" not in plain and not (plain_video.with_suffix(".wav")).exists()
    with av.open(str(plain_video)) as c:
        assert len(c.streams.audio) == 0
    assert np.abs(_decode(plain_video).astype(int) - _decode(video)).mean() < 2  # the same video, with sound


def test_page_offers_sound_only_with_a_v2a_model(pipe, limits, sound_limits, v2a):
    gr = pytest.importorskip("gradio")

    def box(**kw):
        demo = serve.build_app(pipe, queue_size=2, **kw)
        by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
        return by_id[serve.ELEMENT_IDS["add_sound"]]

    off = box(limits=limits)
    assert isinstance(off, gr.Checkbox) and off.value is False and off.interactive is False
    assert off.info == serve.NO_V2A_NOTE == "no V2A model installed"
    on = box(v2a=v2a, v2a_name="tiny-v2a")  # limits from model_limits(pipe, v2a=v2a)
    assert on.interactive is True and on.value is False
    assert "(tiny-v2a), for 8 to 9 frames (up to 1.125 s)" in on.info
    with pytest.raises(ValueError, match="no V2A pipeline was given"):
        serve.build_app(pipe, limits=sound_limits)
    values = ["a red circle", "", 6.0, 2.0, False, 6, 4.0, False, 3, 32, 32, 9, "off"]
    assert serve.page.form_request(*values, True).add_sound is True
    assert serve.page.form_request(*values).add_sound is False


def test_v2a_folder_is_the_option_else_the_bundled_one_when_installed(tmp_path, monkeypatch, capsys):
    import lumina_video.pipeline.v2a as v2a_module

    monkeypatch.setattr(v2a_module, "DEFAULT_V2A_MODEL_DIR", tmp_path / "bundled")
    assert serve.resolve_v2a_dir(None) == (None, False)  # not installed: the page works, without sound
    assert serve.load_v2a(None, False, "cpu") == (None, "no V2A model installed: the page's 'add sound' is off "
                                                        "(--audio-model DIR adds one)")
    (tmp_path / "bundled").mkdir()
    (tmp_path / "bundled" / "model_index.json").write_text("{}")  # installed, but broken
    assert serve.resolve_v2a_dir(None) == (tmp_path / "bundled", False)
    assert serve.resolve_v2a_dir(None, no_audio=True) == (None, False)
    assert serve.load_v2a(tmp_path / "bundled", False, "cpu")[0] is None  # the bundled one: a warning, no sound
    assert "the bundled V2A model does not load (" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--audio-model .*bundled: .* not a complete V2A pipeline folder"):
        serve.load_v2a(tmp_path / "bundled", True, "cpu")  # the user's own folder: an error
    assert serve.resolve_v2a_dir(str(tmp_path)) == (tmp_path, True)
    with pytest.raises(FileNotFoundError, match="--audio-model .*absent: no such folder"):
        serve.resolve_v2a_dir(str(tmp_path / "absent"))
    assert main(["serve", "--audio-model", str(tmp_path / "absent")]) == 2
    assert "lumina-video serve: error: --audio-model" in capsys.readouterr().err
    assert main(["serve", "--audio-model", str(tmp_path), "--no-audio"]) == 2
    assert "--no-audio cannot be combined with --audio-model" in capsys.readouterr().err
