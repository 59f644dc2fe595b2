"""Running the page's requests: one at a time on the pipeline, each video in its own folder, and the
process's temporary folder that holds them (removed at exit)."""
from __future__ import annotations

import atexit
import itertools
import json
import shutil
import tempfile
import threading
from pathlib import Path

from .limits import Limits, Request, check_request

_PROCESS_DIR: Path | None = None


def process_dir() -> Path:
    """This process's temporary folder (generated videos and Gradio's cache); removed at exit."""
    global _PROCESS_DIR
    if _PROCESS_DIR is None:
        _PROCESS_DIR = Path(tempfile.mkdtemp(prefix="lumina-video-serve-"))
        atexit.register(shutil.rmtree, _PROCESS_DIR, ignore_errors=True)
    return _PROCESS_DIR


class ServerClosing(RuntimeError):
    """Raised inside a running generation when the server shuts down."""


def _no_progress(*args, **kwargs) -> None:
    return None


class RequestRunner:
    """Runs one request at a time on the pipeline and writes NAME.mp4 + NAME.json (generate's
    `write_generation`) to a new folder in `out_dir` per request, so names never collide. A request with
    `add_sound` then gets a soundtrack from the V2A pipeline `v2a` (generate's `add_soundtracks`, as
    `generate --audio`: NAME.mp4 rewritten with an AAC track, NAME.wav, NAME.json's `audio`), the video's
    prompt as its text condition and the video's seed as its seed; `v2a_name` names it in the record.
    `console_progress`: a denoising bar in the server's console too (serve's default; --no-progress)."""

    def __init__(self, pipe, limits: Limits, out_dir: Path, model_name: str = "", console_progress: bool = False,
                 v2a=None, v2a_name: str = ""):
        self.pipe, self.limits, self.out_dir, self.model_name = pipe, limits, Path(out_dir), model_name
        self.console_progress = console_progress  # also a denoising bar in the server's console
        self.v2a, self.v2a_name = v2a, v2a_name
        self._lock = threading.Lock()  # the queue runs one event at a time; this holds for direct calls too
        self._closing = threading.Event()
        self._count = itertools.count()

    def close(self, timeout: float = 60.0) -> None:
        """Stop a running generation at its next step and wait for it (so that the process can exit
        without killing a thread inside torch)."""
        self._closing.set()
        if self._lock.acquire(timeout=timeout):
            self._lock.release()

    def _check_open(self) -> None:
        if self._closing.is_set():
            raise ServerClosing("the server is shutting down")

    def __call__(self, req: Request, progress=None) -> tuple[Path, Path, dict]:
        """(video path, settings path, settings) for a checked request; ValueError when it cannot run.
        `progress(fraction_or_None, desc=...)` (e.g. gr.Progress) hears of each step."""
        from ..generate import slug, write_generation

        config, req = check_request(self.pipe, self.limits, req)
        if req.add_sound and self.v2a is None:
            raise ValueError("This server has no V2A model, so it cannot add sound; untick 'add sound'.")
        report = progress if progress is not None else _no_progress  # (gr.Progress has a len: no `or`)

        def on_step(k, t, x):
            self._check_open()
            if k + 1 < config.steps:
                report((k + 1, config.steps), desc="denoising", unit="steps")
            else:
                report(None, desc="decoding the video")

        with self._lock:
            self._check_open()
            report(None, desc="encoding the prompt")
            out = self.pipe(req.prompt, req.negative_prompt, req.height, req.width, req.num_frames, preset=config,
                            seed=req.seed, callback=on_step, progress=self.console_progress,
                            step_cache=req.step_cache)
            name = f"{slug(req.prompt)}-s{out.seeds[0]}"
            folder = self.out_dir / f"{next(self._count):06d}"
            report(None, desc="writing the video")
            fps = float(self.pipe.defaults["fps"])
            video, record, settings = write_generation(folder, name, out, 0, prompt=req.prompt,
                                                       negative_prompt=req.negative_prompt, fps=fps,
                                                       model=self.model_name, device=str(self.pipe.device))
            if req.add_sound:
                self._check_open()
                report(None, desc="adding sound")
                settings = self._add_sound(out, req.prompt, name, folder, fps)
        return video, record, settings

    def _add_sound(self, out, prompt: str, name: str, folder: Path, fps: float) -> dict:
        """The soundtrack of video 0 of `out` (class docstring); the record with its `audio` entry."""
        from ..generate import add_soundtracks

        add_soundtracks(self.v2a, out, [prompt], [name], folder, fps, out.seeds[0], self.console_progress,
                        self.v2a_name)
        return json.loads((folder / f"{name}.json").read_text())
