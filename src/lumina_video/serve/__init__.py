"""`lumina-video serve`: a Gradio web page around one LuminaVideoPipeline.

    browser --(Gradio queue, at most `queue_size` waiting, one running)--> RequestRunner(Request)
        check_request: the page's limits, then the pipeline's `check_inputs` (sampling knobs, VAE frame
                       counts, size multiples, RoPE table), then the memory estimate (info.py)
                       -> a friendly message in the page
        request_warnings: words outside the model's vocabulary, sizes far above the trained ones
                       -> a warning toast in the page (the request still runs)
        pipeline(...)  with a progress bar (one update per Euler step)
        NAME.mp4 + NAME.json in a per-process temporary folder (removed at exit) -> video, JSON, links
        "add sound" ticked: the V2A pipeline's soundtrack (generate's add_soundtracks): NAME.mp4 with an
                       AAC track, NAME.wav, NAME.json's "audio" -> the player plays it, the wav is a link

    limits.py   Limits, Request, model_limits, check_request (no gradio needed)
    runner.py   RequestRunner, ServerClosing, process_dir
    page.py     build_app: the page's layout and callbacks
    here        the command line

One model per process, loaded once, and one V2A pipeline (--audio-model DIR, default the bundled one
when installed), loaded at start on the same device: its `check_inputs` then checks the clip length
when a request arrives, a broken folder fails at start rather than in a user's request, and the first
request with sound waits for no load. Without one the page's "add sound" box is disabled with a note.
The page binds to 127.0.0.1 unless told otherwise.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from .limits import MAX_SEED, Limits, Request, check_request, frame_counts, model_limits, request_warnings
from .page import DEFAULT_QUEUE_SIZE, ELEMENT_IDS, NO_V2A_NOTE, build_app, example_prompts, import_gradio, page_values
from .runner import RequestRunner, ServerClosing, process_dir

__all__ = ["Limits", "Request", "RequestRunner", "ServerClosing", "build_app", "check_request", "example_prompts",
           "frame_counts", "import_gradio", "model_limits", "page_values", "process_dir", "request_warnings",
           "load_v2a", "resolve_host", "resolve_v2a_dir", "DEFAULT_QUEUE_SIZE", "ELEMENT_IDS", "LOOPBACK", "MAX_SEED",
           "NO_V2A_NOTE"]

LOOPBACK = "127.0.0.1"


def add_cli_arguments(p: argparse.ArgumentParser) -> None:
    from ..generate import MODEL_HELP, add_run_arguments

    p.add_argument("--model", metavar="DIR", help=MODEL_HELP)
    p.add_argument("--host", help=f"address to listen on (default {LOOPBACK}: this computer only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--share-on-network", action="store_true",
                   help="listen on every network interface (0.0.0.0): anyone who can reach this computer can use it")
    p.add_argument("--queue-size", type=int, default=DEFAULT_QUEUE_SIZE,
                   help=f"requests that may wait while one runs; more get a 'busy' message "
                        f"(default {DEFAULT_QUEUE_SIZE})")
    g = p.add_argument_group("limits offered in the page (defaults: the model's default size and frames)")
    g.add_argument("--max-size", type=int, help="largest height and width in pixels")
    g.add_argument("--max-frames", type=int, help="most frames per video")
    g.add_argument("--max-steps", type=int, help="most Euler steps (default: 100 or the model's default if larger)")
    a = p.add_argument_group("sound (the page's 'add sound' option)")
    a.add_argument("--audio-model", metavar="DIR",
                   help="V2A pipeline folder, loaded at start (default: the bundled V2A model when installed; "
                        "without one the option is off)")
    a.add_argument("--no-audio", action="store_true", help="no 'add sound' option (no V2A model is loaded)")
    add_run_arguments(p.add_argument_group("run"))


def resolve_host(host: str | None, share_on_network: bool) -> str:
    """The address to listen on: 0.0.0.0 with --share-on-network (no other --host), else --host or loopback."""
    if share_on_network:
        if host not in (None, "0.0.0.0"):
            raise ValueError(f"--share-on-network listens on 0.0.0.0; it cannot be combined with --host {host}")
        return "0.0.0.0"
    return host or LOOPBACK


def resolve_v2a_dir(audio_model: str | None, no_audio: bool = False) -> tuple[Path | None, bool]:
    """(the V2A folder to load, whether the user named it): --audio-model DIR (it must exist), else the
    bundled V2A model (`lumina_video.pipeline.v2a.DEFAULT_V2A_MODEL_DIR`, imported only here) when it
    is installed (has model_index.json), else None."""
    if no_audio:
        if audio_model:
            raise ValueError("--no-audio cannot be combined with --audio-model")
        return None, False
    if audio_model:
        if not Path(audio_model).is_dir():
            raise FileNotFoundError(f"--audio-model {audio_model}: no such folder")
        return Path(audio_model), True
    from ..pipeline.v2a import DEFAULT_V2A_MODEL_DIR

    installed = (Path(DEFAULT_V2A_MODEL_DIR) / "model_index.json").is_file()
    return (Path(DEFAULT_V2A_MODEL_DIR) if installed else None), False


def load_v2a(v2a_dir: Path | None, named: bool, device):
    """(V2A pipeline or None, a line saying what the page offers): the pipeline of `v2a_dir` on `device`.
    A folder the user `named` that does not load is an error; the bundled one that does not load turns
    "add sound" off with a warning, so that a broken install never stops the video page."""
    from ..generate import warn
    from ..pipeline.v2a import LuminaV2APipeline

    if v2a_dir is None:
        return None, f"{NO_V2A_NOTE}: the page's 'add sound' is off (--audio-model DIR adds one)"
    t0 = time.perf_counter()
    try:
        v2a = LuminaV2APipeline.from_pretrained(v2a_dir).to(device)
    except (ValueError, OSError) as e:
        if named:
            raise ValueError(f"--audio-model {v2a_dir}: {e}") from None
        warn("serve", f"the bundled V2A model does not load ({e}); 'add sound' is off")
        return None, f"{NO_V2A_NOTE}: the page's 'add sound' is off"
    return v2a, (f"V2A model {v2a_dir} on {device} loaded in {time.perf_counter() - t0:.1f}s: 'add sound' for clips "
                 f"up to {v2a.defaults['max_seconds']:g} s")


def _network_warning(host: str, port: int) -> str:
    bar = "!" * 78
    return (f"{bar}\n!! The page is open to the NETWORK on {host}:{port}: anyone who can reach this computer\n"
            f"!! can generate videos on it (no login). Stop with Ctrl-C; without --share-on-network it\n"
            f"!! listens on {LOOPBACK} only.\n{bar}")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _launch(demo, host: str, port: int) -> None:
    """Serve `demo` until Ctrl-C or SIGTERM (both stop it like Ctrl-C: the temporary files are removed)."""
    import signal

    if host not in (LOOPBACK, "localhost", "::1"):
        print(_network_warning(host, port))
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        demo.launch(server_name=host, server_port=port, share=False, ssr_mode=False, mcp_server=False,
                    show_error=False, quiet=True, prevent_thread_lock=True)
    except OSError:
        raise ValueError(f"cannot listen on {host}:{port}: the port is in use or not allowed; "
                         f"choose another with --port") from None
    print(f"serving on http://{'localhost' if host == LOOPBACK else host}:{port}  (Ctrl-C to stop)", flush=True)
    demo.block_thread()


def cli_main(args) -> int:
    from ..devices import check_device, dtype_name
    from ..generate import load_pipeline, resolve_model_dir, set_threads, warn
    from ..info import size_warnings

    host = resolve_host(args.host, args.share_on_network)
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be 1 to 65535, got {args.port}")
    if args.queue_size < 1:
        raise ValueError(f"--queue-size must be >= 1, got {args.queue_size}")
    set_threads(args.threads)
    check_device(args.device)
    v2a_dir, named = resolve_v2a_dir(args.audio_model, args.no_audio)
    model_dir = resolve_model_dir(args.model)
    t0 = time.perf_counter()
    pipe, device, dtype = load_pipeline(args, model_dir)
    load_s = time.perf_counter() - t0
    v2a, v2a_line = load_v2a(v2a_dir, named, device)
    limits = model_limits(pipe, args.max_size, args.max_frames, args.max_steps, v2a=v2a)
    if v2a is not None and not limits.sound_frames:
        warn("serve", "the V2A model accepts none of the page's frame counts (--max-frames): 'add sound' is off")
    for message in size_warnings(pipe.defaults, limits.max_height, limits.max_width, limits.frame_choices[-1]):
        warn("serve", f"the page offers up to {message} (--max-size / --max-frames); requests over the "
                      f"device's memory are refused")
    print(f"model {model_dir} on {device} ({dtype_name(dtype)}) loaded in {load_s:.1f}s; limits: "
          f"{limits.max_height}x{limits.max_width} px, {limits.frame_choices[-1]} frames, "
          f"{limits.max_steps} steps; queue {args.queue_size}; files in {process_dir()} (removed at exit)")
    print(v2a_line)
    demo = build_app(pipe, model_name=model_dir.name, limits=limits, queue_size=args.queue_size,
                     console_progress=not args.no_progress, v2a=v2a,
                     v2a_name="" if v2a is None else v2a_dir.name)
    _launch(demo, host, args.port)
    return 0
