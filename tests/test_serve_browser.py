"""The web demo end to end in headless Chromium (Playwright): the page served on loopback makes a
playable video, shows its settings and download links, serves two tabs at once, says when the
queue is full and when the prompt is empty, warns of words outside the model's vocabulary, adds a
soundtrack that the player plays ("add sound", a random-weight tiny V2A pipeline), and loads nothing
from outside the machine.

Needs gradio, playwright (Python) and a Chromium binary ($LUMINA_CHROMIUM, /usr/bin/chromium or
`chromium` on PATH; Debian: apt-get install chromium). Without them the tests are skipped, unless
LUMINA_REQUIRE_BROWSER=1 (set by .ci/run): then they fail, so CI can never skip them silently."""
import json
import os
import re
import threading
from urllib.parse import unquote, urlparse

import av
import pytest

from lumina_video import serve
from lumina_video.pipeline import LuminaVideoPipeline
from lumina_video.sampling import SamplingConfig
from lumina_video.testing import make_tiny_pipeline
from lumina_video.testing_v2a import make_tiny_v2a_pipeline

WAIT_MS = 90_000  # generous: the test machine's CPU is shared


def _unavailable(reason: str):
    if os.environ.get("LUMINA_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}; LUMINA_REQUIRE_BROWSER=1 requires the browser tests to run")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser(chromium_launch_options):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install 'lumina-video[test]')")
    if chromium_launch_options is None:
        _unavailable("no Chromium binary ($LUMINA_CHROMIUM, /usr/bin/chromium or chromium on PATH)")
    with sync_playwright() as p:
        b = p.chromium.launch(**chromium_launch_options)
        yield b
        b.close()


class GatedPipeline(LuminaVideoPipeline):
    """The real pipeline, but after each denoising step it waits while `gate` is closed, so a test
    can hold a generation in progress for as long as it needs."""

    gate = threading.Event()

    def __call__(self, *args, callback=None, **kwargs):
        def step(k, t, x):
            callback(k, t, x)
            if not self.gate.wait(timeout=WAIT_MS / 1000):
                raise TimeoutError("the test never opened the gate")

        return super().__call__(*args, callback=step, **kwargs)


@pytest.fixture(scope="module")
def server(free_port):
    try:
        import gradio  # noqa: F401
    except ImportError:
        _unavailable("gradio is not installed (pip install 'lumina-video[test]')")
    sampling = SamplingConfig.preset("f24F96R960-MultiScale").replace(steps=2).to_official()
    tiny = make_tiny_pipeline(defaults=dict(height=32, width=64, num_frames=16, sampling=sampling,
                                            vocabulary="synthetic"))
    pipe = GatedPipeline(tiny.transformer, tiny.vae, tiny.text_encoder, defaults=tiny.defaults)
    GatedPipeline.gate.set()
    v2a = make_tiny_v2a_pipeline()  # 4 s at most: every frame count of the page but 1
    demo = serve.build_app(pipe, model_name="tiny-random", queue_size=1, v2a=v2a, v2a_name="tiny-v2a")
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture
def open_page(browser, server):
    """open_page() -> a new tab showing the demo; requests leaving 127.0.0.1 are collected in `outside`."""
    pages, outside = [], []

    def _open():
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
                else outside.append(r.url))
        page.goto(server)
        page.wait_for_selector("#prompt textarea")
        pages.append(page)
        return page

    yield _open
    for page in pages:
        page.close()
    assert outside == [], f"the page fetched from outside the machine: {outside}"


def _generate(page, prompt: str):
    page.fill("#prompt textarea", prompt)
    page.click("#generate")


def _wait_for_video(page) -> str:
    """Wait until the video element can play (metadata loaded, positive duration); return its src."""
    page.wait_for_function("() => { const v = document.querySelector('#video video');"
                           " return v !== null && v.readyState >= 1 && v.duration > 0; }", timeout=WAIT_MS)
    return page.eval_on_selector("#video video", "v => v.src")


def _decoded_bytes(page) -> dict:
    """Chromium's counts of the bytes its decoders took from the <video> element, once it has played
    for half a second (`audio` stays 0 for a file without an audio track), and whether it is muted."""
    page.wait_for_function("() => { const v = document.querySelector('#video video');"
                           " return !v.paused && v.currentTime > 0.5; }", timeout=WAIT_MS)
    return page.eval_on_selector("#video video", "v => ({audio: v.webkitAudioDecodedByteCount, "
                                                 "video: v.webkitVideoDecodedByteCount, muted: v.muted})")


def _shown_seed(page) -> int:
    text = page.inner_text("#settings")
    return int(re.search(r'"seed"\s*:\s*(\d+)', text).group(1))


def test_generate_in_the_browser(open_page, tmp_path):
    page = open_page()
    prompt = "a green triangle moving up slowly"
    _generate(page, prompt)
    src = _wait_for_video(page)

    # the video is served from this process's temporary folder and decodes to the requested size
    served_path = unquote(urlparse(src).path.split("file=", 1)[1])
    assert served_path.startswith(str(serve.process_dir()))
    body = page.request.get(src).body()
    (tmp_path / "v.mp4").write_bytes(body)
    with av.open(str(tmp_path / "v.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
    assert len(frames) == 16 and frames[0].shape == (32, 64, 3)
    with av.open(str(tmp_path / "v.mp4")) as c:
        assert len(c.streams.audio) == 0  # "add sound" was not ticked
    decoded = _decoded_bytes(page)  # it plays (autoplay), with no audio to decode
    assert decoded["video"] > 0 and decoded["audio"] == 0

    # the settings shown hold the prompt and the seed, which also appears in the seed field
    assert prompt in page.inner_text("#settings")
    seed = _shown_seed(page)
    assert int(float(page.input_value("#seed input"))) == seed

    # the download links: the mp4 and the settings JSON
    links = page.eval_on_selector_all("#download a", "as => as.map(a => a.href)")
    assert sorted(unquote(h).rsplit(".", 1)[1] for h in links) == ["json", "mp4"]
    record = json.loads(page.request.get(next(h for h in links if h.endswith(".json"))).body())
    assert record["prompt"] == prompt and record["seed"] == seed and record["num_frames"] == 16


def test_two_tabs_at_once(open_page):
    from playwright.sync_api import expect

    pages = [open_page(), open_page()]
    prompts = ["a red circle moving to the right", "a blue square staying still"]
    GatedPipeline.gate.clear()  # hold the first so that the second is sent while it runs
    try:
        for page, prompt in zip(pages, prompts):
            _generate(page, prompt)
        expect(pages[1].locator("#video")).to_contain_text("queue: 1/1", timeout=WAIT_MS)
    finally:
        GatedPipeline.gate.set()
    seeds = []
    for page, prompt in zip(pages, prompts):
        _wait_for_video(page)
        assert prompt in page.inner_text("#settings")
        seeds.append(_shown_seed(page))
    assert seeds[0] != seeds[1]  # random seeds by default


def test_progress_then_busy_message_when_the_queue_is_full(open_page):
    from playwright.sync_api import expect

    running, waiting, refused = open_page(), open_page(), open_page()
    GatedPipeline.gate.clear()  # the first generation stops after its first step until the gate opens
    try:
        _generate(running, "a red circle moving down")
        expect(running.locator("#video")).to_contain_text("denoising", timeout=WAIT_MS)  # the progress bar
        expect(running.locator("#video")).to_contain_text("1/2", timeout=WAIT_MS)
        _generate(waiting, "a red circle moving left")
        expect(waiting.locator("#video")).to_contain_text("queue: 1/1", timeout=WAIT_MS)  # queue_size=1
        _generate(refused, "a red circle moving up")
        expect(refused.locator("body")).to_contain_text("This application is currently busy", timeout=WAIT_MS)
    finally:
        GatedPipeline.gate.set()
    for page in (running, waiting):
        _wait_for_video(page)
    assert refused.locator("#video video").count() == 0


def test_empty_prompt_gets_a_friendly_message_at_once(open_page):
    from playwright.sync_api import expect

    busy, page = open_page(), open_page()
    GatedPipeline.gate.clear()  # another user's generation holds the model
    try:
        _generate(busy, "a red circle moving down")
        expect(busy.locator("#video")).to_contain_text("denoising", timeout=WAIT_MS)
        _generate(page, "   ")
        # checked when the request arrives, not after waiting for the model
        expect(page.locator("body")).to_contain_text("The prompt is empty", timeout=WAIT_MS)
        assert "denoising" in busy.inner_text("#video")  # still held
    finally:
        GatedPipeline.gate.set()
    assert page.locator("#video video").count() == 0
    assert "Traceback" not in page.inner_text("body")
    _wait_for_video(busy)


def test_prompt_outside_the_vocabulary_gets_a_warning_and_still_runs(open_page):
    from playwright.sync_api import expect

    page = open_page()
    _generate(page, "a cat playing the piano")
    expect(page.locator("body")).to_contain_text("'cat', 'playing', 'piano' not in the model's synthetic vocabulary",
                                                 timeout=WAIT_MS)
    _wait_for_video(page)
    assert "a cat playing the piano" in page.inner_text("#settings")


def test_add_sound_in_the_browser(open_page, tmp_path):
    page = open_page()
    assert "tiny-v2a" in page.inner_text("#add-sound") and page.is_enabled("#add-sound input")
    page.check("#add-sound input")
    _generate(page, "a red circle moving to the right")
    src = _wait_for_video(page)

    # the file the player plays has an AAC track of the clip's length (16 frames at 8 fps)
    (tmp_path / "v.mp4").write_bytes(page.request.get(src).body())
    with av.open(str(tmp_path / "v.mp4")) as c:
        [aud] = c.streams.audio
        assert aud.codec_context.name == "aac" and len(c.streams.video) == 1
        seconds = sum(f.samples for f in c.decode(aud)) / aud.codec_context.sample_rate
    assert abs(seconds - 2.0) < 0.2
    # and Chromium plays it with its sound: unmuted, its audio decoder fed (0 for a silent file, above)
    decoded = _decoded_bytes(page)
    assert decoded["audio"] > 0 and decoded["video"] > 0 and decoded["muted"] is False

    # the downloads add the wav; the settings record the soundtrack
    links = page.eval_on_selector_all("#download a", "as => as.map(a => a.href)")
    assert sorted(unquote(h).rsplit(".", 1)[1] for h in links) == ["json", "mp4", "wav"]
    record = json.loads(page.request.get(next(h for h in links if h.endswith(".json"))).body())
    assert record["audio"]["model"] == "tiny-v2a" and record["audio"]["seed"] == record["seed"]
    assert record["audio"]["wav"] == unquote(next(h for h in links if h.endswith(".wav"))).rsplit("/", 1)[1]
    wav = page.request.get(next(h for h in links if h.endswith(".wav"))).body()
    assert wav[:4] == b"RIFF" and (len(wav) - 44) // 2 == round(2.0 * 16000)  # 16-bit mono PCM, 2 s
    assert '"audio"' in page.inner_text("#settings")
