"""The Gradio page: its layout, its initial values and the callbacks that run a request.

The page's inputs, in the order `_Form.values` lists them, become one `Request`; a request is checked
when it arrives (`validate`, before it waits in the queue) and again when it runs (`RequestRunner`).
Example prompts come from the model's defaults (`example_prompts` in model_index.json); a model
without them gets a page without examples. "Add sound" is offered when the server has a V2A pipeline
(`build_app(v2a=...)`) and it accepts some of the page's frame counts; otherwise the box is disabled
and says why ("no V2A model installed").
"""
from __future__ import annotations

import atexit
import os
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

from .._checks import is_int
from .limits import Limits, Request, check_request, frame_counts, model_limits, request_warnings
from .runner import RequestRunner, ServerClosing, process_dir

DEFAULT_QUEUE_SIZE = 8
# element ids, for tests and custom CSS
ELEMENT_IDS = dict(prompt="prompt", negative="negative-prompt", motion="motion", negative_motion="negative-motion",
                   multiscale="multiscale", steps="steps", guidance="guidance", randomize="randomize-seed",
                   seed="seed", height="height", width="width", frames="frames", run="generate", video="video",
                   settings="settings", files="download", step_cache="step-cache", add_sound="add-sound")
NO_V2A_NOTE = "no V2A model installed"


def import_gradio():
    """gradio, set up to stay offline (no analytics) with its cache in `process_dir()`."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("GRADIO_TEMP_DIR", str(process_dir() / "gradio"))
    try:
        import gradio
    except ImportError:
        raise ImportError("the web demo needs gradio: pip install 'lumina-video[serve]'") from None
    return gradio


def example_prompts(pipe) -> list[str]:
    """The model's example prompts (`defaults["example_prompts"]`, a list of strings), else []."""
    examples = pipe.defaults.get("example_prompts") or []
    if not isinstance(examples, (list, tuple)) or not all(isinstance(e, str) and e.strip() for e in examples):
        raise ValueError(f"the model's example_prompts must be a list of non-empty strings, got {examples!r}")
    return list(examples)


def page_values(pipe, limits: Limits) -> dict:
    """The page's initial values: the model's defaults, brought within the page's limits."""
    d, cfg = pipe.defaults, pipe.default_sampling
    clamp = lambda x, lo, hi: min(max(x, lo), hi)  # noqa: E731
    default_frames = frame_counts(pipe, cfg, int(d["num_frames"]))  # those the default schedule accepts
    frames = [f for f in limits.frame_choices if f in default_frames] or [limits.frame_choices[0]]
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


@dataclass
class _Form:
    """The page's input components; `values` is the order the callbacks receive them in."""

    prompt: object
    negative: object
    motion: object
    negative_motion: object
    multiscale: object
    steps: object
    guidance: object
    randomize: object
    seed: object
    height: object
    width: object
    frames: object
    step_cache: object
    add_sound: object

    def values(self) -> list:
        return [self.prompt, self.negative, self.motion, self.negative_motion, self.multiscale, self.steps,
                self.guidance, self.randomize, self.seed, self.height, self.width, self.frames, self.step_cache,
                self.add_sound]


def form_request(prompt, negative, motion, negative_motion, multiscale, steps, guidance, randomize, seed, height,
                 width, frames, step_cache="off", add_sound=False) -> Request:
    """The page's input values (in `_Form.values` order) as a Request; "random seed" ticked: seed None."""
    return Request(prompt, negative, motion, negative_motion, multiscale, steps, guidance,
                   None if randomize else seed, height, width, frames, step_cache, bool(add_sound))


def sound_option(limits: Limits, fps: float, v2a_name: str = "", note: str = NO_V2A_NOTE) -> tuple[bool, str]:
    """(offered, the checkbox's note): offered when the server's V2A pipeline accepts some frame counts
    (`limits.sound_frames`); else `note` (the server's reason, "no V2A model installed" by default)."""
    frames = limits.sound_frames
    if not frames:
        return False, note
    name = f" ({v2a_name})" if v2a_name else ""
    return True, (f"a soundtrack made from the video by the V2A model{name}, for {frames[0]} to {frames[-1]} "
                  f"frames (up to {frames[-1] / fps:g} s); the video plays with it, the wav is a download")


def _sizes_and_frames(gr, limits: Limits, initial: dict, ids: dict) -> tuple:
    with gr.Row():
        height = _range_input(gr, "Height (px)", limits.size_step, limits.max_height, limits.size_step,
                              initial["height"], ids["height"])
        width = _range_input(gr, "Width (px)", limits.size_step, limits.max_width, limits.size_step,
                             initial["width"], ids["width"])
    frames = gr.Dropdown(list(limits.frame_choices), value=initial["num_frames"], label="Frames",
                         info="counts the VAE can make (multi-scale needs a multiple of 8)", elem_id=ids["frames"])
    return height, width, frames


def _sampling_inputs(gr, limits: Limits, initial: dict, ids: dict) -> tuple:
    with gr.Row():
        top = max(20.0, initial["motion"], initial["negative_motion"])
        motion = _range_input(gr, "Motion score", -1, top, 0.5, initial["motion"], ids["motion"],
                              info="more motion when higher; < 0: no motion condition")
        negative_motion = _range_input(gr, "Negative motion score", -1, top, 0.5, initial["negative_motion"],
                                       ids["negative_motion"], info="the gap to the motion score drives dynamics")
    multiscale = gr.Checkbox(initial["multiscale"], label="Multi-scale inference (coarse patches first, faster)",
                             elem_id=ids["multiscale"])
    with gr.Row():
        steps = _range_input(gr, "Steps", 1, limits.max_steps, 1, initial["steps"], ids["steps"])
        guidance = _range_input(gr, "Guidance scale", 0, max(30.0, initial["guidance"]), 0.5, initial["guidance"],
                                ids["guidance"])
    return motion, negative_motion, multiscale, steps, guidance


def _input_column(gr, pipe, limits: Limits, sound: tuple[bool, str], ids: dict = ELEMENT_IDS) -> tuple:
    """The left column: prompt, size, sampling knobs, seed, "add sound" (`sound`: `sound_option`), the
    button and the examples."""
    initial = page_values(pipe, limits)
    prompt = gr.Textbox(label="Prompt", lines=2, placeholder="describe the video", elem_id=ids["prompt"])
    negative = gr.Textbox(label="Negative prompt", elem_id=ids["negative"])
    height, width, frames = _sizes_and_frames(gr, limits, initial, ids)
    motion, negative_motion, multiscale, steps, guidance = _sampling_inputs(gr, limits, initial, ids)
    step_cache = gr.Dropdown(["off", "auto"], value="off", allow_custom_value=True, label="Step cache",
                             info="reuse the velocity across steps (faster, slightly different): off, auto or a "
                                  "threshold such as 0.1", elem_id=ids["step_cache"])
    with gr.Row():
        randomize = gr.Checkbox(True, label="Random seed", elem_id=ids["randomize"])
        seed = gr.Number(0, label="Seed (the one used is shown after a run)", precision=0, minimum=0,
                         elem_id=ids["seed"])
    add_sound = gr.Checkbox(False, label="Add sound", info=sound[1], interactive=sound[0], elem_id=ids["add_sound"])
    button = gr.Button("Generate", variant="primary", elem_id=ids["run"])
    examples = example_prompts(pipe)
    if examples:
        gr.Examples([[e] for e in examples], inputs=[prompt], label="Example prompts")
    form = _Form(prompt, negative, motion, negative_motion, multiscale, steps, guidance, randomize, seed, height,
                 width, frames, step_cache, add_sound)
    return form, button


def _output_column(gr, ids: dict = ELEMENT_IDS) -> tuple:
    """The right column: the video, its download links and its settings."""
    video = gr.Video(label="Video", autoplay=True, loop=True, interactive=False, elem_id=ids["video"])
    downloads = gr.File(label="Download (video, settings and the wav of a video with sound)", file_count="multiple",
                        interactive=False,
                        elem_id=ids["files"])
    settings = gr.JSON(label="Settings", elem_id=ids["settings"])
    return video, downloads, settings


def _callbacks(gr, pipe, limits: Limits, runner: RequestRunner) -> tuple:
    """(run, validate): the button's handler and the check made when a request arrives."""

    def run(*values, progress=gr.Progress()):  # noqa: B008 (Gradio injects the tracker through the default)
        try:
            _, filled = check_request(pipe, limits, form_request(*values))
            for message in request_warnings(pipe, filled):  # the request runs; the page says what to expect
                gr.Warning(message)
            video, record, settings = runner(form_request(*values), progress)
        except ValueError as e:  # the request's fault: say what to change
            raise _page_error(gr, e) from None
        except ServerClosing:
            raise _page_error(gr, "The server is shutting down; this video was not finished.") from None
        except Exception as e:  # the server's fault: one line in the page, the traceback in the console
            traceback.print_exc()
            raise _page_error(gr, f"Generation failed ({type(e).__name__}: {e}); "
                                  f"the server's console has the details.") from None
        downloads = [str(video), str(record)]
        if "audio" in settings:  # the soundtrack's wav, beside the mp4 that carries it
            downloads.append(str(video.parent / settings["audio"]["wav"]))
        return str(video), settings, downloads, settings["seed"]

    def validate(*values):
        """The same checks when the request arrives, before it waits in the queue: mistakes show at once."""
        try:
            check_request(pipe, limits, form_request(*values))
        except ValueError as e:
            raise _page_error(gr, e) from None
        return [gr.validate(True, "")] * len(values)

    return run, validate


def build_app(pipeline, *, model_name: str = "", limits: Limits | None = None,
              queue_size: int = DEFAULT_QUEUE_SIZE, out_dir=None, console_progress: bool = False, v2a=None,
              v2a_name: str = "", sound_note: str = NO_V2A_NOTE):
    """The Gradio page around `pipeline` (queued: one run at a time, at most `queue_size` waiting).
    Videos go to `out_dir` (default: a folder in `process_dir()`); `console_progress`: a denoising bar
    in the server's console per request. `v2a`: a LuminaV2APipeline for "add sound" (None: the box is
    disabled with `sound_note`); `limits` default to `model_limits(pipeline, v2a=v2a)`, and must come from
    it when given with `v2a`. Launch it with `.launch(...)`."""
    gr = import_gradio()
    if not is_int(queue_size) or queue_size < 1:
        raise ValueError(f"queue_size must be a positive integer, got {queue_size!r}")
    limits = limits or model_limits(pipeline, v2a=v2a)
    if v2a is None and limits.sound_frames:
        raise ValueError("limits offer sound (sound_frames) but no V2A pipeline was given")
    if v2a is not None and not limits.sound_frames:
        sound_note = "the V2A model accepts none of this page's frame counts"
    sound = sound_option(limits, float(pipeline.defaults["fps"]), v2a_name, sound_note)
    out_dir = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="videos-", dir=process_dir()))
    runner = RequestRunner(pipeline, limits, out_dir, model_name, console_progress=console_progress, v2a=v2a,
                           v2a_name=v2a_name)
    run, validate = _callbacks(gr, pipeline, limits, runner)
    with gr.Blocks(title="Lumina-Video", analytics_enabled=False) as demo:
        gr.Markdown(_intro(pipeline, limits, model_name, queue_size))
        with gr.Row():
            with gr.Column(scale=1):
                form, button = _input_column(gr, pipeline, limits, sound)
            with gr.Column(scale=1):
                video, downloads, settings = _output_column(gr)
        button.click(run, form.values(), [video, settings, downloads, form.seed], concurrency_limit=1,
                     api_name="generate", validator=validate)
    demo.queue(max_size=queue_size, default_concurrency_limit=1)
    atexit.register(runner.close)  # runs before the folder's removal (atexit is last in, first out)
    return demo
