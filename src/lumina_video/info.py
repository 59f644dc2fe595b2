"""`lumina-video info [MODEL]`: what a pipeline folder says about itself, and the guard rails that
`generate` and `serve` derive from it.

The description is read from the folder's JSON files (model_index.json and the parts' configs): no
weights are loaded. It lists the generation defaults, the size the model was trained at (the
defaults' height, width and frames), the largest input its RoPE table takes, the default sampling
and the released presets (one line each), the vocabulary and the example prompts.

Guard rails, checked after the pipeline's own `check_inputs` and before any compute:
  vocabulary   `defaults["vocabulary"]` is "synthetic" (the words of data/vocab.py's caption grammar,
               the bundled demo model) or a list of words; a prompt with other words gets a warning
  size         height, width or frames above WARN_FACTOR x the trained ones get a warning
  memory       a request whose memory estimate (`memory_estimate`) exceeds the device's memory is
               refused with a one-line ValueError
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

MODEL_ENV = "LUMINA_VIDEO_MODEL"
WARN_FACTOR = 2  # sizes or frame counts more than this many times the trained ones get a warning
# Memory estimate constants, measured on the bundled demo model on a CPU (peak RSS growth, fp32):
# the VAE decoder holds ~DECODE_BYTES x C0 bytes per output pixel (C0: the decoder's full-resolution
# width) for each of up to 4 latent frames (it decodes a few latent frames at a time): 8.0 KB per
# pixel at 256-768 px and 16 frames with C0 = 16, 1.6 KB at 1 frame; the transformer ~TOKEN_BYTES x dim
# bytes per token and batch row (89 x dim measured at 768 px).
DECODE_BYTES, DECODE_FRAMES, TOKEN_BYTES = 128, 4, 120
GIB = 2**30


# -- which model folder ----------------------------------------------------------------------------
def resolve_model_dir(model: str | None) -> Path:
    """`model`, else $LUMINA_VIDEO_MODEL, else the bundled demo model; FileNotFoundError naming which
    of the three was missing or incomplete (the variable and its value when it was the variable)."""
    from .pipeline import DEFAULT_MODEL_DIR, check_pipeline_folder

    if model is not None:
        return check_pipeline_folder(Path(model))
    env = os.environ.get(MODEL_ENV)
    if env:
        try:
            return check_pipeline_folder(Path(env))
        except FileNotFoundError as e:
            raise FileNotFoundError(f"${MODEL_ENV} is {env!r}: {e}; point it at a pipeline folder, or unset it "
                                    f"to use the bundled demo model") from None
    if not DEFAULT_MODEL_DIR.exists():
        raise FileNotFoundError(
            f"no --model given and the default model folder {DEFAULT_MODEL_DIR} does not exist (the bundled demo "
            f"model is not installed). Pass --model DIR with a pipeline folder; make a random-weight test "
            f"one with `python -m lumina_video.testing DIR`; or build the released model: `lumina-video "
            f"convert` the official checkpoint, then LuminaVideoPipeline.from_components(converted_dir, "
            f"cogvideox_2b_vae_dir, gemma_2_2b_dir).save_pretrained(DIR)")
    return check_pipeline_folder(DEFAULT_MODEL_DIR)


# -- vocabulary ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Vocabulary:
    """The words a model's captions were made of: `name` ("synthetic" or "custom") and `words`."""

    name: str
    words: frozenset

    def unknown(self, prompt: str) -> list[str]:
        """The prompt's words (lower case letters) that are not in the vocabulary, in order, once each."""
        return list(dict.fromkeys(w for w in re.findall(r"[a-z]+", prompt.lower()) if w not in self.words))


def synthetic_words() -> frozenset:
    """Every word of every caption of the synthetic grammar (data/vocab.py)."""
    from .data import vocab

    directions = [None, *vocab.DIRECTIONS]
    texts = [vocab.caption(c, s, d, sp if d else None, bg) for c in vocab.COLORS for s in vocab.SHAPES
             for d in directions for sp in (None, *vocab.SPEEDS) for bg in (None, *vocab.BACKGROUNDS)]
    return frozenset(w for t in texts for w in t.split())


def model_vocabulary(defaults: dict) -> Vocabulary | None:
    """The vocabulary of `defaults["vocabulary"]`: "synthetic", a list of words, or absent (None)."""
    spec = defaults.get("vocabulary")
    if spec is None:
        return None
    if spec == "synthetic":
        return Vocabulary("synthetic", synthetic_words())
    if isinstance(spec, (list, tuple)) and spec and all(isinstance(w, str) and w.strip() for w in spec):
        return Vocabulary("custom", frozenset(w.strip().lower() for w in spec))
    raise ValueError(f"the model's defaults['vocabulary'] must be \"synthetic\" or a list of words, got {spec!r}")


def prompt_warnings(prompts, defaults: dict, limit: int = 5) -> list[str]:
    """One warning per prompt (the first `limit`, then a count) with words outside the model's
    vocabulary; for the synthetic vocabulary also prompts that are not sentences of its grammar."""
    from .data.vocab import parse_caption

    vocab = model_vocabulary(defaults)
    if vocab is None:
        return []
    found = []
    for prompt in dict.fromkeys([prompts] if isinstance(prompts, str) else prompts):
        unknown = vocab.unknown(prompt)
        if unknown:
            found.append(f"prompt {prompt!r}: {', '.join(repr(w) for w in unknown)} not in the model's "
                         f"{vocab.name} vocabulary (`lumina-video info` lists it); the video will ignore them")
        elif vocab.name == "synthetic" and parse_caption(prompt) is None:
            found.append(f"prompt {prompt!r} is not a caption of the synthetic grammar, e.g. "
                         f"'a red circle moving to the right' (`lumina-video info` lists it)")
    more = len(found) - limit
    return found[:limit] + ([f"... and {more} more prompts outside the vocabulary"] if more > 0 else [])


# -- sizes and memory ------------------------------------------------------------------------------
def trained_size(defaults: dict) -> tuple[int, int, int]:
    """(height, width, num_frames) the model was trained at: its generation defaults."""
    return int(defaults["height"]), int(defaults["width"]), int(defaults["num_frames"])


def size_warnings(defaults: dict, height: int, width: int, num_frames: int) -> list[str]:
    """Warnings for a size or frame count above WARN_FACTOR x the trained one."""
    th, tw, tf = trained_size(defaults)
    found = []
    if height > WARN_FACTOR * th or width > WARN_FACTOR * tw:
        found.append(f"{height}x{width} px is {max(height / th, width / tw):.3g}x the size the model was trained at "
                     f"({th}x{tw}): expect a poor video and a long run")
    if num_frames > WARN_FACTOR * tf:
        found.append(f"{num_frames} frames is {num_frames / tf:.3g}x the frames the model was trained at ({tf}): "
                     f"expect a poor video and a long run")
    return found


def _decoder_width(vae) -> int:
    """C0: the channels of the VAE decoder at full resolution (diffusers' block_out_channels[0])."""
    config = getattr(getattr(vae, "vae", vae), "config", {})
    channels = config.get("block_out_channels") if hasattr(config, "get") else None
    return int(channels[0]) if channels else 128


def memory_estimate(pipe, batch: int, height: int, width: int, num_frames: int, guided: bool = True) -> dict:
    """Bytes a call needs beyond the loaded weights, roughly (within ~30% on the demo model, measured):
        transformer = TOKEN_BYTES x dim x tokens x rows  (tokens of the finest patch; rows 2B guided)
        decode      = DECODE_BYTES x C0 x H x W x min(T, DECODE_FRAMES)  (one video at a time)
        pixels      = 9 x B x F x H x W x 3  (the decoded fp32 pixels and the uint8 frames)
        total       = max(transformer, decode) + pixels"""
    _, _, t, h, w = pipe.latent_shape(batch, height, width, num_frames)
    tokens = max(-(-t // pt) * (h // p) * (w // p) for pt, p in pipe.transformer.patch_shapes)
    rows = 2 * batch if guided else batch
    transformer = TOKEN_BYTES * int(pipe.transformer.config["dim"]) * tokens * rows
    decode = DECODE_BYTES * _decoder_width(pipe.vae) * height * width * min(t, DECODE_FRAMES)
    pixels = 9 * batch * num_frames * height * width * 3
    return dict(transformer=transformer, decode=decode, pixels=pixels, total=max(transformer, decode) + pixels)


def check_memory(pipe, device, batch: int, height: int, width: int, num_frames: int, guided: bool = True) -> None:
    """ValueError (one line) when `memory_estimate` exceeds the device's memory (devices.device_memory)."""
    from .devices import device_memory

    have = device_memory(device)
    need = memory_estimate(pipe, batch, height, width, num_frames, guided)
    if have is None or need["total"] <= have:
        return
    th, tw, tf = trained_size(pipe.defaults)
    part = "VAE decoding" if need["decode"] >= need["transformer"] else "the transformer's activations"
    raise ValueError(f"{batch} x {height}x{width} px x {num_frames} frames needs about {_bytes(need['total'])} "
                     f"(mostly {part}), more than the {_bytes(have)} of {device}; the model was trained at "
                     f"{th}x{tw} px, {tf} frames: ask for less (or a smaller --batch-size)")


def _bytes(n: int) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB else f"{n / 2**20:.0f} MiB"


# -- the description -------------------------------------------------------------------------------
def describe_sampling(config) -> str:
    """One line: steps, patch schedule, shift, guidance, renorm and motion values of a SamplingConfig."""
    from .sampling.schedule import patch_name

    def timed(value, fmt=lambda v: f"{v:g}" if v is not None else "off"):
        return fmt(value.initial) + "".join(f" -> {fmt(v)} at t={th:g}" for th, v in value.switches)

    return (f"{config.steps} steps, patches {timed(config.patch, patch_name)}, shift {config.shift:g}, "
            f"guidance {timed(config.guidance)}, renorm {f'{config.renorm:g}' if config.renorm else 'off'}, "
            f"motion {timed(config.motion)}, negative motion {timed(config.neg_motion)}")


def describe_preset(name: str) -> str:
    """One line for a released preset: what its name says (fps, frames, resolution) and its settings."""
    from .sampling import SamplingConfig

    m = re.fullmatch(r"f(\d+)F(\d+)R(\d+)(-MultiScale)?", name)
    scale = "multi-scale" if m and m[4] else "single-scale"
    made_for = f"for {m[3]} px, {m[2]} frames at {m[1]} fps ({scale}): " if m else ""
    return made_for + describe_sampling(SamplingConfig.preset(name))


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def describe(folder) -> dict:
    """The folder's description as plain JSON values (what `lumina-video info --json` prints)."""
    from .pipeline import DEFAULT_MODEL_DIR, FALLBACK_DEFAULTS, INDEX_NAME
    from .sampling import PRESETS, SamplingConfig

    folder = Path(folder)
    index = _read_json(folder / INDEX_NAME)
    defaults = {**FALLBACK_DEFAULTS, **index.get("defaults", {})}
    tr, vae = _read_json(folder / "transformer" / "config.json"), _read_json(folder / "vae" / "config.json")
    shapes = sorted(zip(tr.get("all_f_patch_size", []), tr.get("all_patch_size", [])))
    factor = 2 ** (len(vae.get("block_out_channels", [0] * 4)) - 1)
    table = tr.get("axes_lens", [])
    th, tw, tf = trained_size(defaults)
    vocab = model_vocabulary(defaults)
    return dict(
        model=str(folder), bundled_demo_model=folder.resolve() == DEFAULT_MODEL_DIR.resolve(),
        transformer=dict(dim=tr.get("dim"), layers=tr.get("n_layers"), latent_channels=tr.get("in_channels"),
                         patches=[f"{pt}x{p}" for pt, p in shapes], rope_table=table),
        vae=dict(latent_channels=vae.get("latent_channels"), spatial_factor=factor,
                 temporal_factor=vae.get("temporal_compression_ratio")),
        text_encoder=_text_encoder_name(folder, index),
        trained=dict(height=th, width=tw, num_frames=tf, fps=float(defaults["fps"])),
        warn_above=dict(height=WARN_FACTOR * th, width=WARN_FACTOR * tw, num_frames=WARN_FACTOR * tf),
        rope_max=_rope_max(table, shapes, factor),
        sampling=describe_sampling(SamplingConfig.preset(spec) if isinstance(spec := defaults["sampling"], str)
                                   else SamplingConfig.from_official(spec)),
        presets={name: describe_preset(name) for name in PRESETS},
        vocabulary=None if vocab is None else dict(name=vocab.name, words=sorted(vocab.words)),
        example_prompts=list(defaults.get("example_prompts") or []),
        generation=generation_here())


def generation_here() -> dict:
    """What `lumina-video generate` runs on this machine by default: the device and each part's dtype."""
    from .devices import cpu_has_native_bf16, default_device, dtype_name, generation_dtypes

    device = default_device()
    return dict(device=device, dtypes={k: dtype_name(v) for k, v in generation_dtypes(device).items()},
                cpu_native_bf16=cpu_has_native_bf16())


def _text_encoder_name(folder: Path, index: dict) -> str:
    entry = index.get("text_encoder")
    name = str(entry[-1]) if isinstance(entry, (list, tuple)) and entry else "unknown"
    bundled = (folder / "text_encoder" / "bundled_text_encoder.json").is_file()
    return name + (" (MiniLM, from its package)" if bundled else "")


def _rope_max(table, shapes, factor: int) -> dict | None:
    """The largest height and width (px) and latent frames the RoPE table takes with the finest patch."""
    if len(table) != 3 or not shapes:
        return None
    p, pt = min(p for _, p in shapes), min(pt for pt, _ in shapes)
    return dict(height=table[1] * p * factor, width=table[2] * p * factor, latent_frames=table[0] * pt)


def format_info(d: dict) -> str:
    """The description as the text `lumina-video info` prints."""
    tr, vae, t, warn = d["transformer"], d["vae"], d["trained"], d["warn_above"]
    lines = [f"model: {d['model']}{'  (the bundled demo model)' if d['bundled_demo_model'] else ''}",
             f"  transformer: dim {tr['dim']}, {tr['layers']} layers, {tr['latent_channels']} latent channels, "
             f"patches {', '.join(tr['patches'])}, RoPE table {tr['rope_table']} (frames, height, width)",
             f"  vae: {vae['latent_channels']} latent channels, {vae['spatial_factor']}x spatial, "
             f"{vae['temporal_factor']}x temporal; text encoder: {d['text_encoder']}",
             f"trained at (the defaults): {t['height']}x{t['width']} px, {t['num_frames']} frames at {t['fps']:g} fps",
             f"  warns above {warn['height']}x{warn['width']} px or {warn['num_frames']} frames"]
    if d["rope_max"]:
        r = d["rope_max"]
        lines.append(f"  refuses more than {r['height']}x{r['width']} px or {r['latent_frames']} latent frames "
                     f"(the RoPE table), or more memory than the device has")
    g = d["generation"]
    dtypes = ", ".join(f"{part} {name}" for part, name in g["dtypes"].items())
    lines.append(f"generation here (default): {g['device']}, {dtypes} (native CPU bf16: "
                 f"{'yes' if g['cpu_native_bf16'] else 'no'}; --device / --dtype override)")
    lines += [f"default sampling: {d['sampling']}", "presets (--preset NAME):"]
    lines += [f"  {name}: {text}" for name, text in d["presets"].items()]
    lines += _vocabulary_lines(d["vocabulary"])
    if d["example_prompts"]:
        lines += ["example prompts:"] + [f"  {p}" for p in d["example_prompts"]]
    return "\n".join(lines)


def _vocabulary_lines(vocab: dict | None) -> list[str]:
    if vocab is None:
        return ["vocabulary: not given (any prompt; no warnings)"]
    if vocab["name"] != "synthetic":
        return [f"vocabulary ({len(vocab['words'])} words): {' '.join(vocab['words'])}"]
    from .data import vocab as v

    return ["vocabulary: synthetic: \"a COLOUR SHAPE moving DIRECTION [SPEED] [on a BACKGROUND background]\" "
            "or \"a COLOUR SHAPE staying still [...]\"",
            f"  colours: {', '.join(v.COLORS)}; shapes: {', '.join(v.SHAPES)}",
            f"  directions: {', '.join(v.DIRECTION_PHRASES.values())}; speeds: {', '.join(v.SPEEDS)}; "
            f"backgrounds: {', '.join(v.BACKGROUNDS)}"]


def add_cli_arguments(p) -> None:
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help=f"pipeline folder (default: ${MODEL_ENV} or the bundled demo model)")
    p.add_argument("--json", action="store_true", help="print the description as JSON")


def cli_main(args) -> int:
    d = describe(resolve_model_dir(args.model))
    print(json.dumps(d, indent=2) if args.json else format_info(d))
    return 0
