"""`lumina-video serve`: a Gradio web page around one LuminaVideoPipeline.

    browser --(Gradio queue, at most `queue_size` waiting, one running)--> RequestRunner(Request)
        check_request: the page's limits, then the pipeline's `check_inputs` (sampling knobs, VAE frame
                       counts, size multiples, RoPE table), then the memory estimate (info.py)
                       -> a friendly message in the page
        request_warnings: words outside the model's vocabulary, sizes far above the trained ones
                       -> a warning toast in the page (the request still runs)
        pipeline(...)  with a progress bar (one update per Euler step)
        NAME.mp4 + NAME.json in a per-process temporary folder (removed at exit) -> video, JSON, links

    limits.py   Limits, Request, model_limits, check_request (no gradio needed)
    runner.py   RequestRunner, ServerClosing, process_dir
    page.py     build_app: the page's layout and callbacks
    here        the command line

One model per process, loaded once. The page binds to 127.0.0.1 unless told otherwise.
"""
from __future__ import annotations

import argparse
import time

from .limits import MAX_SEED, Limits, Request, check_request, frame_counts, model_limits, request_warnings
from .page import DEFAULT_QUEUE_SIZE, ELEMENT_IDS, build_app, example_prompts, import_gradio, page_values
from .runner import RequestRunner, ServerClosing, process_dir

__all__ = ["Limits", "Request", "RequestRunner", "ServerClosing", "build_app", "check_request", "example_prompts",
           "frame_counts", "import_gradio", "model_limits", "page_values", "process_dir", "request_warnings",
           "resolve_host", "DEFAULT_QUEUE_SIZE", "ELEMENT_IDS", "LOOPBACK", "MAX_SEED"]

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
    add_run_arguments(p.add_argument_group("run"))


def resolve_host(host: str | None, share_on_network: bool) -> str:
    """The address to listen on: 0.0.0.0 with --share-on-network (no other --host), else --host or loopback."""
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
    model_dir = resolve_model_dir(args.model)
    t0 = time.perf_counter()
    pipe, device, dtype = load_pipeline(args, model_dir)
    limits = model_limits(pipe, args.max_size, args.max_frames, args.max_steps)
    for message in size_warnings(pipe.defaults, limits.max_height, limits.max_width, limits.frame_choices[-1]):
        warn("serve", f"the page offers up to {message} (--max-size / --max-frames); requests over the "
                      f"device's memory are refused")
    print(f"model {model_dir} on {device} ({dtype_name(dtype)}) loaded in {time.perf_counter() - t0:.1f}s; limits: "
          f"{limits.max_height}x{limits.max_width} px, {limits.frame_choices[-1]} frames, "
          f"{limits.max_steps} steps; queue {args.queue_size}; files in {process_dir()} (removed at exit)")
    demo = build_app(pipe, model_name=model_dir.name, limits=limits, queue_size=args.queue_size,
                     console_progress=not args.no_progress)
    _launch(demo, host, args.port)
    return 0
