"""`lumina-video serve`: a Gradio web page around one LuminaVideoPipeline.

    browser --(Gradio queue, at most `queue_size` waiting, one running)--> generate(Request)
        check_request: the page's limits, then the pipeline's own checks (sampling knobs, VAE frame
                       counts, size multiples, RoPE table)  -> a friendly message in the page
        pipeline(...)  with a progress bar (one update per Euler step)
        NAME.mp4 + NAME.json in a per-process temporary folder (removed at exit) -> video, JSON, links

One model per process, loaded once. The page binds to 127.0.0.1 unless told otherwise.

The bundled demo model is recognised by `"vocabulary": "synthetic"` in model_index.json's `defaults`
(LuminaVideoPipeline keeps and re-saves `defaults`): its prompts come from the synthetic dataset's
vocabulary (lumina_video.data.vocab), so the page offers such captions as examples.
"""
from __future__ import annotations

import argparse
import atexit
import itertools
import os
import shutil
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

DEMO_VOCABULARY_KEY = "vocabulary"
DEMO_VOCABULARY = "synthetic"
DEFAULT_QUEUE_SIZE = 8
MAX_SEED = 2**63 - 1
LOOPBACK = "127.0.0.1"
ELEM = dict(prompt="prompt", negative="negative-prompt", motion="motion", negative_motion="negative-motion",
            multiscale="multiscale", steps="steps", guidance="guidance", randomize="randomize-seed", seed="seed",
            height="height", width="width", frames="frames", run="generate", video="video",
            settings="settings", files="download")  # element ids, for tests and custom CSS


# -- limits and input checks (no gradio needed) ------------------------------------------------
@dataclass(frozen=True)
class Limits:
    """What the page offers: sizes are multiples of `size_step` up to the maxima, frame counts
    are those the VAE can produce up to the server's cap; all accepted by the pipeline's checks."""

    size_step: int
    max_height: int
    max_width: int
    frame_choices: tuple[int, ...]
    max_steps: int


@dataclass(frozen=True)
class Request:
    """One generation request as the page sends it (seed None = draw a random one)."""

    prompt: str
    negative_prompt: str = ""
    motion_score: float | None = None
    negative_motion_score: float | None = None
    multiscale: bool | None = None
    steps: int | None = None
    guidance_scale: float | None = None
    seed: int | None = None
    height: int | None = None
    width: int | None = None
    num_frames: int | None = None


def check_shape(pipe, config, height: int, width: int, num_frames: int) -> tuple:
    """The pipeline's and the model's rules for one video: `latent_shape` (size multiples, VAE frame
    counts, temporal patches), `check_sampling_inputs` (the schedule's patches exist and divide the
    latent) and the RoPE table of every patch of the schedule. Returns the latent shape."""
    import torch

    from .model.embed import token_grid
    from .sampling.solver import check_sampling_inputs

    shape = pipe.latent_shape(1, height, width, num_frames, config)
    rows = 2 if any(s != 0 for s in config.guidance.values()) else 1
    check_sampling_inputs(pipe.transformer, torch.empty(shape, device="meta"),
                          torch.empty(rows, 1, pipe.text_encoder.dim, device="meta"),
                          torch.empty(rows, 1, device="meta"), config)
    for pt, p in config.patch_shapes():
        pipe.transformer.rope.check_grid(token_grid(shape[1:], pt, p))
    return shape


def _accepted(pipe, height: int, width: int, num_frames: int, config=None) -> bool:
    """Whether `config` (default: single-scale sampling, the finest patch and the most permissive
    schedule) accepts the size."""
    try:
        check_shape(pipe, config or pipe.resolve_sampling(multiscale=False), height, width, num_frames)
    except ValueError:
        return False
    return True


def model_limits(pipe, max_size: int | None = None, max_frames: int | None = None,
                 max_steps: int | None = None) -> Limits:
    """The page's limits for `pipe`, found by asking the pipeline's own checks. The server's caps
    default to the model's default size and frame count (what it is made for) and 100 steps."""
    d = pipe.defaults
    max_size = max(int(d["height"]), int(d["width"])) if max_size is None else max_size
    max_frames = int(d["num_frames"]) if max_frames is None else max_frames
    max_steps = max(100, pipe.default_sampling.steps) if max_steps is None else max_steps
    for name, v in (("max_size", max_size), ("max_frames", max_frames), ("max_steps", max_steps)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    step = next((v for v in range(1, 1025) if _accepted(pipe, v, v, 1)), None)
    if step is None:
        raise ValueError("the pipeline accepts no square size up to 1024 px")
    sizes = [v for v in range(step, max_size + 1, step)]
    heights = [v for v in sizes if _accepted(pipe, v, step, 1)]
    widths = [v for v in sizes if _accepted(pipe, step, v, 1)]
    frames = tuple(f for f in range(1, max_frames + 1) if _accepted(pipe, step, step, f))
    if not heights or not widths or not frames:
        raise ValueError(f"no size up to {max_size} px or frame count up to {max_frames} is accepted by the model "
                         f"(sizes are multiples of {step}); raise the limits")
    return Limits(step, max(heights), max(widths), frames, max_steps)


def _whole(value, name: str) -> int:
    """A whole number from a form value (the page sends numbers as floats), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or int(value) != value:
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(value)


def _in_range(value, name: str, lo: int, hi: int, unit: str = "", why: str = "") -> int:
    v = _whole(value, name)
    if not lo <= v <= hi:
        raise ValueError(f"{name} {v}{unit} is out of range: accepted {lo} to {hi}{unit}{why}")
    return v


def check_request(pipe, limits: Limits, req: Request):
    """Raise ValueError with a message for the page when `req` cannot run; return the SamplingConfig
    and the request with every default filled in."""
    if not isinstance(req.prompt, str) or not req.prompt.strip():
        raise ValueError("The prompt is empty: describe the video to generate (for example "
                         "\"a red circle moving to the right\").")
    negative = req.negative_prompt or ""
    d = pipe.defaults
    step = limits.size_step
    size_why = f" in steps of {step} (the model's size multiple and this server's --max-size)"
    height = _in_range(d["height"] if req.height is None else req.height, "height", step, limits.max_height,
                       " px", size_why)
    width = _in_range(d["width"] if req.width is None else req.width, "width", step, limits.max_width,
                      " px", size_why)
    frames = _whole(d["num_frames"] if req.num_frames is None else req.num_frames, "number of frames")
    if frames > limits.frame_choices[-1]:
        raise ValueError(f"Too many frames: {frames} requested, this server allows at most "
                         f"{limits.frame_choices[-1]} (--max-frames).")
    steps = None if req.steps is None else _in_range(req.steps, "steps", 1, limits.max_steps)
    seed = None if req.seed is None else _in_range(req.seed, "seed", 0, MAX_SEED)
    config = pipe.resolve_sampling(steps=steps, guidance_scale=req.guidance_scale, motion_score=req.motion_score,
                                   negative_motion_score=req.negative_motion_score, multiscale=req.multiscale)
    check_shape(pipe, config, height, width, frames)
    filled = Request(req.prompt, negative, req.motion_score, req.negative_motion_score, config.is_multiscale(),
                     config.steps, req.guidance_scale, seed, height, width, frames)
    return config, filled


def demo_examples(pipe) -> list[str]:
    """Captions from the synthetic vocabulary when `pipe` is the bundled demo model, else []."""
    if pipe.defaults.get(DEMO_VOCABULARY_KEY) != DEMO_VOCABULARY:
        return []
    from .data.vocab import caption

    return [caption("red", "circle", "right"), caption("blue", "square", "left", "quickly"),
            caption("green", "triangle", "up", "slowly", "gray"), caption("yellow", "circle", None, None, "black"),
            caption("purple", "square", "down"), caption("orange", "triangle", "right", "quickly", "white")]


# -- a headless browser for the tests and the docs' screenshot -------------------------------------
# Chromium without a sandbox (containers) or GPU, and without its background traffic (updates, sync)
HEADLESS_CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run")


def find_chromium() -> str | None:
    """A Chromium binary: $LUMINA_CHROMIUM, /usr/bin/chromium (Debian) or chromium on PATH; else None."""
    for cand in (os.environ.get("LUMINA_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


# -- files --------------------------------------------------------------------------------------
_PROCESS_DIR: Path | None = None


def process_dir() -> Path:
    """This process's temporary folder (generated videos and Gradio's cache); removed at exit."""
    global _PROCESS_DIR
    if _PROCESS_DIR is None:
        _PROCESS_DIR = Path(tempfile.mkdtemp(prefix="lumina-video-serve-"))
        atexit.register(shutil.rmtree, _PROCESS_DIR, ignore_errors=True)
    return _PROCESS_DIR


def import_gradio():
    """gradio, set up to stay offline (no analytics) with its cache in `process_dir()`."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("GRADIO_TEMP_DIR", str(process_dir() / "gradio"))
    try:
        import gradio
    except ImportError:
        raise ImportError("the web demo needs gradio: pip install 'lumina-video[serve]'") from None
    return gradio


# -- the page -----------------------------------------------------------------------------------
class ServerClosing(RuntimeError):
    """Raised inside a running generation when the server shuts down."""


class Generator:
    """Runs one request at a time on the pipeline and writes NAME.mp4 + NAME.json to `out_dir`."""

    def __init__(self, pipe, limits: Limits, out_dir: Path, model_name: str = ""):
        self.pipe, self.limits, self.out_dir, self.model_name = pipe, limits, Path(out_dir), model_name
        self._lock = threading.Lock()  # the queue runs one event at a time; this holds for direct calls too
        self._closing = threading.Event()
        self._count = itertools.count()

    def close(self, timeout: float = 60.0) -> None:
        """Stop a running generation at its next step and wait for it (so that the process can exit
        without killing a thread inside torch)."""
        self._closing.set()
        if self._lock.acquire(timeout=timeout):
            self._lock.release()

    def __call__(self, req: Request, progress=None) -> tuple[Path, Path, dict]:
        """(video path, settings path, settings) for a checked request; ValueError when it cannot run."""
        from . import __version__
        from . import files
        from .data.video_io import write_video
        from .generate import _readable, slug

        config, req = check_request(self.pipe, self.limits, req)
        report = progress if progress is not None else (lambda *a, **k: None)  # (gr.Progress has a len: no `or`)

        def on_step(k, t, x):
            if self._closing.is_set():
                raise ServerClosing("the server is shutting down")
            if k + 1 < config.steps:
                report((k + 1, config.steps), desc="denoising", unit="steps")
            else:
                report(None, desc="decoding the video")

        with self._lock:
            if self._closing.is_set():
                raise ServerClosing("the server is shutting down")
            report(None, desc="encoding the prompt")
            out = self.pipe(req.prompt, req.negative_prompt, req.height, req.width, req.num_frames,
                            steps=req.steps, guidance_scale=req.guidance_scale, motion_score=req.motion_score,
                            negative_motion_score=req.negative_motion_score, multiscale=req.multiscale,
                            seed=req.seed, callback=on_step, progress=False)
        seed, fps = out.seeds[0], float(self.pipe.defaults["fps"])
        name = f"{slug(req.prompt)}-s{seed}"
        folder = self.out_dir / f"{next(self._count):06d}"  # one folder per request: names never collide
        t0 = time.perf_counter()
        report(None, desc="writing the video")
        write_video(folder / f"{name}.mp4", out.frames[0], fps)
        settings = dict(prompt=req.prompt, negative_prompt=req.negative_prompt, seed=seed, height=req.height,
                        width=req.width, num_frames=req.num_frames, fps=fps, video=f"{name}.mp4",
                        model=self.model_name, sampling=_readable(out.sampling),
                        sampling_official=out.sampling.to_official(), device=str(self.pipe.device),
                        timings=dict(out.timings, write_s=time.perf_counter() - t0),
                        lumina_video_version=__version__)
        files.write_json(folder / f"{name}.json", settings)
        return folder / f"{name}.mp4", folder / f"{name}.json", settings


def page_values(pipe, limits: Limits) -> dict:
    """The page's initial values: the model's defaults, brought within the page's limits."""
    d, cfg = pipe.defaults, pipe.default_sampling
    clamp = lambda x, lo, hi: min(max(x, lo), hi)  # noqa: E731
    frames = [f for f in limits.frame_choices if f <= int(d["num_frames"])
              and _accepted(pipe, limits.size_step, limits.size_step, f, cfg)] or [limits.frame_choices[0]]
    return dict(height=clamp(int(d["height"]), limits.size_step, limits.max_height),
                width=clamp(int(d["width"]), limits.size_step, limits.max_width), num_frames=frames[-1],
                motion=-1.0 if cfg.motion.initial is None else max(-1.0, cfg.motion.initial),
                negative_motion=-1.0 if cfg.neg_motion.initial is None else max(-1.0, cfg.neg_motion.initial),
                multiscale=cfg.is_multiscale(), steps=min(cfg.steps, limits.max_steps), guidance=cfg.guidance.initial)


def _range_input(gr, label: str, lo, hi, step, value, elem_id: str, info: str | None = None):
    """A slider from lo to hi, or a fixed number when only one value is allowed (Gradio needs lo < hi)."""
    if hi <= lo:
        return gr.Number(lo, label=label, info=info, interactive=False, elem_id=elem_id)
    return gr.Slider(lo, hi, value=min(max(value, lo), hi), step=step, label=label, info=info, elem_id=elem_id)


def _page_error(gr, message):
    """A message box in the page (gradio renders the message as HTML, so it is escaped)."""
    import html

    return gr.Error(html.escape(str(message)), print_exception=False)


def _intro(pipe, limits: Limits, model_name: str, queue_size: int) -> str:
    frames = limits.frame_choices
    return (f"# Lumina-Video\nText to video with a Multi-scale Next-DiT{f' ({model_name})' if model_name else ''}. "
            f"Sizes up to {limits.max_height} x {limits.max_width} px in steps of {limits.size_step}, "
            f"{frames[0]} to {frames[-1]} frames at {float(pipe.defaults['fps']):g} fps. One video is made at a "
            f"time; up to {queue_size} requests wait in line.")


def build_app(pipeline, *, model_name: str = "", limits: Limits | None = None,
              queue_size: int = DEFAULT_QUEUE_SIZE, out_dir=None):
    """The Gradio page around `pipeline` (queued: one run at a time, at most `queue_size` waiting).
    Videos go to `out_dir` (default: a folder in `process_dir()`). Launch it with `.launch(...)`."""
    gr = import_gradio()
    if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
        raise ValueError(f"queue_size must be a positive integer, got {queue_size!r}")
    limits = limits or model_limits(pipeline)
    out_dir = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="videos-", dir=process_dir()))
    generator = Generator(pipeline, limits, out_dir, model_name)
    v = page_values(pipeline, limits)

    def form_request(prompt, negative, motion, neg_motion, multiscale, steps, guidance, randomize, seed, height,
                     width, frames) -> Request:  # the page's inputs, in the order of `inputs` below
        return Request(prompt, negative, motion, neg_motion, multiscale, steps, guidance,
                       None if randomize else seed, height, width, frames)

    def run(*values, progress=gr.Progress()):
        try:
            video, record, settings = generator(form_request(*values), progress)
        except ValueError as e:  # the request's fault: say what to change
            raise _page_error(gr, e) from None
        except ServerClosing:
            raise _page_error(gr, "The server is shutting down; this video was not finished.") from None
        except Exception as e:  # the server's fault: one line in the page, the traceback in the console
            traceback.print_exc()
            raise _page_error(gr, f"Generation failed ({type(e).__name__}: {e}); "
                                  f"the server's console has the details.") from None
        return str(video), settings, [str(video), str(record)], settings["seed"]

    def validate(*values):
        """The same checks when the request arrives, before it waits in the queue: mistakes show at once."""
        try:
            check_request(pipeline, limits, form_request(*values))
        except ValueError as e:
            raise _page_error(gr, e) from None
        return [gr.validate(True, "")] * len(values)

    with gr.Blocks(title="Lumina-Video", analytics_enabled=False) as demo:
        gr.Markdown(_intro(pipeline, limits, model_name, queue_size))
        with gr.Row():
            with gr.Column(scale=1):
                prompt = gr.Textbox(label="Prompt", lines=2, placeholder="describe the video", elem_id=ELEM["prompt"])
                negative = gr.Textbox(label="Negative prompt", elem_id=ELEM["negative"])
                with gr.Row():
                    height = _range_input(gr, "Height (px)", limits.size_step, limits.max_height, limits.size_step,
                                          v["height"], ELEM["height"])
                    width = _range_input(gr, "Width (px)", limits.size_step, limits.max_width, limits.size_step,
                                         v["width"], ELEM["width"])
                frames = gr.Dropdown(list(limits.frame_choices), value=v["num_frames"], label="Frames",
                                     info="counts the VAE can make (multi-scale needs a multiple of 8)",
                                     elem_id=ELEM["frames"])
                with gr.Row():
                    top = max(20.0, v["motion"], v["negative_motion"])
                    motion_in = _range_input(gr, "Motion score", -1, top, 0.5, v["motion"], ELEM["motion"],
                                             info="more motion when higher; < 0: no motion condition")
                    neg_motion_in = _range_input(gr, "Negative motion score", -1, top, 0.5, v["negative_motion"],
                                                 ELEM["negative_motion"],
                                                 info="the gap to the motion score drives dynamics")
                multiscale = gr.Checkbox(v["multiscale"], label="Multi-scale inference (coarse patches first, faster)",
                                         elem_id=ELEM["multiscale"])
                with gr.Row():
                    steps = _range_input(gr, "Steps", 1, limits.max_steps, 1, v["steps"], ELEM["steps"])
                    guidance = _range_input(gr, "Guidance scale", 0, max(30.0, v["guidance"]), 0.5, v["guidance"],
                                            ELEM["guidance"])
                with gr.Row():
                    randomize = gr.Checkbox(True, label="Random seed", elem_id=ELEM["randomize"])
                    seed = gr.Number(0, label="Seed (the one used is shown after a run)", precision=0, minimum=0,
                                     elem_id=ELEM["seed"])
                button = gr.Button("Generate", variant="primary", elem_id=ELEM["run"])
                examples = demo_examples(pipeline)
                if examples:
                    gr.Examples([[e] for e in examples], inputs=[prompt], label="Prompts the demo model knows")
            with gr.Column(scale=1):
                video = gr.Video(label="Video", autoplay=True, loop=True, interactive=False, elem_id=ELEM["video"])
                downloads = gr.File(label="Download (video and settings)", file_count="multiple", interactive=False,
                                elem_id=ELEM["files"])
                settings = gr.JSON(label="Settings", elem_id=ELEM["settings"])
        inputs = [prompt, negative, motion_in, neg_motion_in, multiscale, steps, guidance, randomize, seed, height,
                  width, frames]
        button.click(run, inputs, [video, settings, downloads, seed], concurrency_limit=1, api_name="generate",
                     validator=validate)
    demo.queue(max_size=queue_size, default_concurrency_limit=1)
    atexit.register(generator.close)  # runs before the folder's removal (atexit is last in, first out)
    return demo


# -- command line -------------------------------------------------------------------------------
def add_cli_arguments(p: argparse.ArgumentParser) -> None:
    from .generate import DTYPES

    p.add_argument("--model", metavar="DIR", help="pipeline folder (default: $LUMINA_VIDEO_MODEL or the bundled demo model)")
    p.add_argument("--host", help=f"address to listen on (default {LOOPBACK}: this computer only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--share-on-network", action="store_true",
                   help="listen on every network interface (0.0.0.0): anyone who can reach this computer can use it")
    p.add_argument("--queue-size", type=int, default=DEFAULT_QUEUE_SIZE,
                   help=f"requests that may wait while one runs; more get a 'busy' message (default {DEFAULT_QUEUE_SIZE})")
    g = p.add_argument_group("limits offered in the page (defaults: the model's default size and frames)")
    g.add_argument("--max-size", type=int, help="largest height and width in pixels")
    g.add_argument("--max-frames", type=int, help="most frames per video")
    g.add_argument("--max-steps", type=int, help="most Euler steps (default: 100 or the model's default if larger)")
    r = p.add_argument_group("run")
    r.add_argument("--device", help="cuda, cpu, ... (default: cuda if available)")
    r.add_argument("--dtype", choices=sorted(DTYPES), help="weights of transformer and text encoder "
                                                           "(default: float32 on CPU, bfloat16 on CUDA)")
    r.add_argument("--offload", action="store_true", help="model CPU offload: each part on the device only while used")


def resolve_host(host: str | None, share_on_network: bool) -> str:
    if share_on_network:
        if host not in (None, "0.0.0.0"):
            raise ValueError(f"--share-on-network listens on 0.0.0.0; it cannot be combined with --host {host}")
        return "0.0.0.0"
    return host or LOOPBACK


def _network_warning(host: str, port: int) -> str:
    bar = "!" * 78
    return (f"{bar}\n!! The page is open to the NETWORK on {host}:{port}: anyone who can reach this computer\n"
            f"!! can generate videos on it (no login). Stop with Ctrl-C; without --share-on-network it\n"
            f"!! listens on {LOOPBACK} only.\n{bar}")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def cli_main(args) -> int:
    import signal

    import torch

    from .generate import DTYPES, resolve_model_dir
    from .pipeline import LuminaVideoPipeline

    host = resolve_host(args.host, args.share_on_network)
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be 1 to 65535, got {args.port}")
    if args.queue_size < 1:
        raise ValueError(f"--queue-size must be >= 1, got {args.queue_size}")
    model_dir = resolve_model_dir(args.model)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = DTYPES[args.dtype] if args.dtype else ("bfloat16" if torch.device(device).type == "cuda" else "float32")
    t0 = time.perf_counter()
    pipe = LuminaVideoPipeline.from_pretrained(model_dir, dtype=getattr(torch, dtype))
    pipe = pipe.enable_model_cpu_offload(device) if args.offload else pipe.to(device)
    limits = model_limits(pipe, args.max_size, args.max_frames, args.max_steps)
    print(f"model {model_dir} on {device} ({dtype}) loaded in {time.perf_counter() - t0:.1f}s; limits: "
          f"{limits.max_height}x{limits.max_width} px, {limits.frame_choices[-1]} frames, "
          f"{limits.max_steps} steps; queue {args.queue_size}; files in {process_dir()} (removed at exit)")
    demo = build_app(pipe, model_name=model_dir.name, limits=limits, queue_size=args.queue_size)
    if host not in (LOOPBACK, "localhost", "::1"):
        print(_network_warning(host, args.port))
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it like Ctrl-C: the temporary files are removed
    try:
        demo.launch(server_name=host, server_port=args.port, share=False, ssr_mode=False, mcp_server=False,
                    show_error=False, quiet=True, prevent_thread_lock=True)
    except OSError:
        raise ValueError(f"cannot listen on {host}:{args.port}: the port is in use or not allowed; "
                         f"choose another with --port") from None
    print(f"serving on http://{'localhost' if host == LOOPBACK else host}:{args.port}  (Ctrl-C to stop)", flush=True)
    demo.block_thread()
    return 0
