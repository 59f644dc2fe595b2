"""Make docs/serve.png: the web demo's page with a generated video, in headless Chromium.

    PYTHONPATH=src python docs/make_screenshot.py [--model DIR] [--out docs/serve.png]

Without --model it uses the random-weight tiny pipeline (lumina_video.testing), given the demo
model's kind of example prompts so that the page shows them; its videos are coloured noise. The PNG
is reduced to a 256-colour palette to stay small. Needs gradio, playwright and Chromium (see the README).
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
from pathlib import Path

from PIL import Image

from lumina_video import files, serve

PROMPT = "a red circle moving to the right"
EXAMPLES = ["a red circle moving to the right", "a blue square moving to the left quickly",
            "a green triangle moving up slowly on a gray background",
            "a yellow circle staying still on a black background", "a purple square moving down",
            "an orange triangle moving to the right quickly on a white background"]
# The same headless Chromium as the browser tests use (tests/conftest.py): no sandbox (containers) or
# GPU, no background traffic (updates, sync).
HEADLESS_CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run")


def find_chromium() -> str | None:
    """A Chromium binary: $LUMINA_CHROMIUM, /usr/bin/chromium (Debian) or chromium on PATH; else None."""
    for cand in (os.environ.get("LUMINA_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_pipeline(model: str | None):
    if model is not None:
        from lumina_video.pipeline import LuminaVideoPipeline

        return LuminaVideoPipeline.from_pretrained(model), Path(model).name
    from lumina_video.sampling import SamplingConfig
    from lumina_video.testing import make_tiny_pipeline

    sampling = SamplingConfig.preset("f24F96R960-MultiScale").replace(steps=8).to_official()
    pipe = make_tiny_pipeline(defaults=dict(height=64, width=64, num_frames=16, sampling=sampling,
                                            example_prompts=EXAMPLES))
    return pipe, "random-weight test model"


def screenshot(url: str, width: int = 1200, height: int = 900) -> bytes:
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("no Chromium found: apt-get install chromium, or set LUMINA_CHROMIUM")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=list(HEADLESS_CHROMIUM_ARGS))
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(url)
        page.fill("#prompt textarea", PROMPT)
        page.uncheck("#randomize-seed input")
        page.fill("#seed input", "7")
        page.click("#generate")
        page.wait_for_function("() => { const v = document.querySelector('#video video');"
                               " return v !== null && v.readyState >= 2 && v.duration > 0; }", timeout=300_000)
        # a still frame (not the first) and the page scrolled back to the top
        page.eval_on_selector("#video video", "v => { v.pause(); v.currentTime = v.duration / 2; }")
        page.wait_for_timeout(500)
        page.evaluate("() => window.scrollTo(0, 0)")
        png = page.screenshot(full_page=True)
        browser.close()
    return png


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="pipeline folder (default: the random-weight tiny pipeline)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "serve.png"))
    ap.add_argument("--scale", type=float, default=0.7, help="resize factor of the PNG")
    args = ap.parse_args()

    pipe, name = load_pipeline(args.model)
    demo = serve.build_app(pipe, model_name=name, queue_size=2)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False)
    try:
        png = screenshot(f"http://127.0.0.1:{port}/")
    finally:
        demo.close()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.resize((round(image.width * args.scale), round(image.height * args.scale)), Image.LANCZOS)
    image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    with files.atomic_path(args.out) as tmp:
        image.save(tmp, format="PNG", optimize=True)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1024:.0f} KB, {image.width}x{image.height})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
