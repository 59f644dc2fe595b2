"""The pipeline folder: what it must hold, model_index.json's format (pipeline/__init__.py's docstring)
and its upgrade from format 1, how a part is named in it."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

from .. import files
from .._checks import is_int
from ..encoders.text import BUNDLED_NAME

INDEX_NAME = "model_index.json"
FORMAT_VERSION = 2
COMPONENTS = {"transformer": "MultiScaleNextDiT", "vae": "VideoVAE", "text_encoder": "TextEncoder"}
# What a folder must hold: sub-folder -> files that must exist in it (any one of a tuple).
REQUIRED = {
    "transformer": ("config.json", ("model.safetensors", "diffusion_pytorch_model.safetensors")),
    "vae": ("config.json", ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")),
    # the bundled MiniLM is saved as a reference to its package (text.BUNDLED_NAME) instead of weights
    "text_encoder": (("config.json", BUNDLED_NAME), ("model.safetensors", "pytorch_model.bin", BUNDLED_NAME)),
    "tokenizer": (("tokenizer.json", "tokenizer_config.json", "vocab.txt", "tokenizer.model", BUNDLED_NAME),),
}
# The bundled demo model (lumina-video generate's default; env LUMINA_VIDEO_MODEL overrides it).
DEFAULT_MODEL_DIR = Path(__file__).parents[1] / "demo_model"
# Generation defaults when model_index.json has none: the released f24F96R960 setting.
FALLBACK_DEFAULTS = dict(height=960, width=960, num_frames=96, fps=24.0, sampling="f24F96R960")


def check_pipeline_folder(folder) -> Path:
    """Raise FileNotFoundError naming everything missing from a pipeline folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist")
    missing = [] if (folder / INDEX_NAME).is_file() else [INDEX_NAME]
    for sub, needed in REQUIRED.items():
        for f in needed:
            options = f if isinstance(f, tuple) else (f,)
            if not any((folder / sub / o).is_file() for o in options):
                missing.append(f"{sub}/{' or '.join(options)}")
    if missing:
        raise FileNotFoundError(
            f"{folder} is not a complete Lumina-Video pipeline folder; missing: {', '.join(missing)} "
            f"(expected {INDEX_NAME}, {', '.join(s + '/' for s in REQUIRED)} as written by "
            f"LuminaVideoPipeline.save_pretrained)"
        )
    return folder


def upgrade_index(index: dict) -> dict:
    """A model_index.json dict in format 2 (see the module docstring); a format-1 dict is rewritten:
    the components named as lumina_video classes, the tokenizer entry and `format_version` dropped."""
    version = index.get("_format_version", index.get("format_version", 1))
    if not is_int(version) or version > FORMAT_VERSION:
        raise ValueError(f"model_index.json format {version!r} is newer than this package reads ({FORMAT_VERSION})")
    if version == FORMAT_VERSION:
        return dict(index)
    out = {k: v for k, v in index.items() if k not in ("format_version", "tokenizer", *COMPONENTS)}
    return dict(out, _format_version=FORMAT_VERSION, **{k: ["lumina_video", c] for k, c in COMPONENTS.items()})


def upgrade_folder(folder) -> bool:
    """Rewrite a format-1 pipeline folder's model_index.json in format 2 (atomically; the weights and
    every other file stay as they are). True if it changed."""
    path = check_pipeline_folder(folder) / INDEX_NAME
    index = json.loads(path.read_text())
    upgraded = upgrade_index(index)
    if upgraded == index:
        return False
    files.write_json(path, upgraded)
    return True


def library_tuple(module) -> tuple[str, str]:
    """How model_index.json names a part: ("lumina_video", CLASS) for a class the package exports
    (diffusers' loader finds it in the imported `lumina_video`), else diffusers' own (module, CLASS)."""
    from diffusers.pipelines.pipeline_loading_utils import _fetch_class_library_tuple

    import lumina_video

    name = type(module).__name__
    return ("lumina_video", name) if getattr(lumina_video, name, None) is type(module) else \
        _fetch_class_library_tuple(module)


@contextlib.contextmanager
def no_loading_bar():
    """diffusers' "Loading pipeline components" progress bar off for the block (three small parts)."""
    from diffusers.utils import logging as diffusers_logging

    was_on = diffusers_logging.is_progress_bar_enabled()
    diffusers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            diffusers_logging.enable_progress_bar()
