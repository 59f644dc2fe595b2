"""LuminaVideoPipeline: prompt -> text features -> denoised latents -> frames, in the steps of `__call__`:

    1. check_inputs      prompts, size, frame count, patch schedule, RoPE table (meta tensors, no compute)
    2. encode_prompt     cap_feats, cap_mask = text_encoder([prompts..., negative prompts...])  rows [0:B] / [B:2B]
    3. prepare_latents   noise ~ N(0, I) of shape (B, C, T, H/8, W/8), T = vae.latent_frames(num_frames)
    4. denoising loop    latents = sample(transformer, noise, cap_feats, cap_mask, sampling)  (sampling/solver.py)
    5. decode_latents    frames = vae.decode(latents)  in [-1, 1] -> uint8

A folder in the diffusers layout (docs/ARCHITECTURE.md): model_index.json, transformer/ (config.json +
model.safetensors), vae/ (diffusers), text_encoder/ + tokenizer/ (transformers). model_index.json
also keeps the model's generation defaults (size, frames, fps, sampling settings).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import __version__, files
from ._checks import is_int
from .encoders import TextEncoder, VideoVAE
from .encoders.text import BUNDLED_NAME
from .model import MultiScaleNextDiT
from .model.embed import token_grid
from .sampling import SamplingConfig, SamplingKnobs, sample
from .sampling.schedule import patch_name
from .sampling.solver import check_sampling_inputs

INDEX_NAME = "model_index.json"
FORMAT_VERSION = 1
# What a folder must hold: sub-folder -> files that must exist in it (any one of a tuple).
REQUIRED = {
    "transformer": ("config.json", "model.safetensors"),
    "vae": ("config.json", ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")),
    # the bundled MiniLM is saved as a reference to its package (text.BUNDLED_NAME) instead of weights
    "text_encoder": (("config.json", BUNDLED_NAME), ("model.safetensors", "pytorch_model.bin", BUNDLED_NAME)),
    "tokenizer": (("tokenizer.json", "tokenizer_config.json", "vocab.txt", "tokenizer.model", BUNDLED_NAME),),
}
# The bundled demo model (lumina-video generate's default; env LUMINA_VIDEO_MODEL overrides it).
DEFAULT_MODEL_DIR = Path(__file__).parent / "demo_model"
# Generation defaults when model_index.json has none: the released f24F96R960 setting.
FALLBACK_DEFAULTS = dict(height=960, width=960, num_frames=96, fps=24.0, sampling="f24F96R960")
OUTPUT_TYPES = ("np", "pil", "latent")


@dataclass
class LuminaVideoPipelineOutput:
    """frames: "np" uint8 (B, F, H, W, 3); "pil" a list (per prompt) of lists of PIL images;
    "latent" the scaled latents (B, C, T, H/8, W/8). Plus the settings actually used and timings (s)."""

    frames: object
    seeds: list[int] | None
    sampling: SamplingConfig
    timings: dict = field(default_factory=dict)


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


class LuminaVideoPipeline:
    def __init__(self, transformer: MultiScaleNextDiT, vae: VideoVAE, text_encoder: TextEncoder,
                 defaults: dict | None = None):
        if transformer.config["cap_feat_dim"] != text_encoder.dim:
            raise ValueError(f"the transformer takes caption features of width {transformer.config['cap_feat_dim']} "
                             f"but the text encoder gives {text_encoder.dim}")
        if transformer.in_channels != vae.latent_channels:
            raise ValueError(f"the transformer has {transformer.in_channels} input channels but the VAE "
                             f"{vae.latent_channels} latent channels")
        self.transformer = transformer.eval().requires_grad_(False)
        self.vae = vae
        self.text_encoder = text_encoder
        self.defaults = {**FALLBACK_DEFAULTS, **(defaults or {})}
        self.default_sampling = _sampling_from(self.defaults["sampling"])
        self._offload_device: torch.device | None = None

    # -- devices ------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Where the computation runs (the offload target when CPU offload is on)."""
        return self._offload_device or self.transformer.device

    def to(self, device) -> LuminaVideoPipeline:
        self._offload_device = None
        for part in (self.transformer, self.vae, self.text_encoder):
            part.to(device)
        return self

    def enable_model_cpu_offload(self, device="cuda") -> LuminaVideoPipeline:
        """Keep every part on the CPU and move each to `device` only while it runs."""
        self.to("cpu")
        self._offload_device = torch.device(device)
        return self

    @contextlib.contextmanager
    def _using(self, part):
        if self._offload_device is None:
            yield part
            return
        part.to(self._offload_device)
        try:
            yield part
        finally:
            part.to("cpu")
            if self._offload_device.type == "cuda":
                torch.cuda.empty_cache()

    # -- settings -----------------------------------------------------------------------------
    def resolve_sampling(self, preset: str | SamplingConfig | dict | None = None, knobs: SamplingKnobs | None = None,
                         **knob_values) -> SamplingConfig:
        """The model's default sampling (or `preset`: a released preset name, a SamplingConfig or an
        official dict) with the user's knobs applied: `knobs` and/or the same knobs by keyword
        (sampling/knobs.py; a keyword wins over `knobs`)."""
        base = self.default_sampling if preset is None else _sampling_from(preset)
        knobs = dataclasses.replace(knobs or SamplingKnobs(), **knob_values)
        return knobs.apply(base)

    def resolve_size(self, height: int | None = None, width: int | None = None,
                     num_frames: int | None = None) -> tuple:
        """(height, width, num_frames) with the model's default for each one left as None."""
        d = self.defaults
        return (d["height"] if height is None else height, d["width"] if width is None else width,
                d["num_frames"] if num_frames is None else num_frames)

    @property
    def size_multiple(self) -> int:
        """Heights and widths are multiples of this: the VAE's spatial factor times the largest spatial patch."""
        return self.vae.spatial_factor * max(p for _, p in self.transformer.patch_shapes)

    def latent_shape(self, batch: int, height: int, width: int, num_frames: int) -> tuple:
        """(B, C, T, H/8, W/8), T = vae.latent_frames(num_frames); the sizes are not checked here."""
        s = self.vae.spatial_factor
        return (batch, self.transformer.in_channels, self.vae.latent_frames(num_frames), height // s, width // s)

    def check_inputs(self, prompts, negative_prompts, height: int, width: int, num_frames: int,
                     config: SamplingConfig) -> None:
        """Raise ValueError naming the first input that cannot run, before any work is done: the prompts
        (non-empty strings; one negative prompt for all or one per prompt), the size (positive
        multiples of `size_multiple`), the frame count (one the VAE decodes to; an even latent count for a
        temporal patch 2), the schedule's patches (in the model, dividing the latent) and the RoPE table
        of every patch. Checked on meta tensors: nothing is computed."""
        prompts, _ = _prompt_lists(prompts, negative_prompts)
        self._check_size(height, width)
        shape = self.latent_shape(len(prompts), height, width, num_frames)
        self._check_temporal_patches(num_frames, shape[2], config)
        rows = 2 * len(prompts) if config.is_guided() else len(prompts)
        check_sampling_inputs(self.transformer, torch.empty(shape, device="meta"),
                              torch.empty(rows, 1, self.text_encoder.dim, device="meta"),
                              torch.empty(rows, 1, device="meta"), config)
        for pt, p in config.patch_shapes():
            self.transformer.rope.check_grid(token_grid(shape[1:], pt, p))

    def _check_size(self, height, width) -> None:
        multiple = self.size_multiple
        s = self.vae.spatial_factor
        for name, value in (("height", height), ("width", width)):
            if not is_int(value) or value < multiple or value % multiple:
                raise ValueError(f"{name} must be a positive multiple of {multiple} (VAE {s}x times the largest "
                                 f"patch {multiple // s}), got {value!r}")

    @staticmethod
    def _check_temporal_patches(num_frames: int, latent_frames: int, config: SamplingConfig) -> None:
        pts = sorted({pt for pt, _ in config.patch_shapes()})
        if latent_frames > 1 and any(latent_frames % pt for pt in pts):
            raise ValueError(
                f"num_frames {num_frames} gives {latent_frames} latent frames, but the patch schedule "
                f"{[patch_name(p) for p in config.patch_shapes()]} uses temporal patch {max(pts)}, which needs an "
                f"even number: use 8m frames (8, 16, ..., 96) or single-scale sampling"
            )

    # -- the steps of a call --------------------------------------------------------------------
    def encode_prompt(self, prompts: list[str], negative_prompts: list[str], guided: bool) -> tuple:
        """(cap_feats, cap_mask) of the prompts, rows [0:B], then of the negative prompts, rows [B:2B]
        (left out when the sampling is not guided)."""
        with self._using(self.text_encoder) as text_encoder:
            return text_encoder.encode(prompts + negative_prompts if guided else prompts)

    def prepare_latents(self, batch: int, height: int, width: int, num_frames: int, seeds: list[int] | None,
                        generator: torch.Generator | None = None) -> torch.Tensor:
        """The starting noise, standard normal: item i from `seeds[i]`, drawn on the CPU (the same on
        every device), or all from `generator` when `seeds` is None."""
        shape = self.latent_shape(batch, height, width, num_frames)
        if seeds is None:
            return torch.randn(shape, generator=generator, device=generator.device)
        gens = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        return torch.stack([torch.randn(shape[1:], generator=g) for g in gens])

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Pixels (B, 3, F, H, W) in [-1, 1] on the CPU, decoded one video at a time."""
        with self._using(self.vae) as vae:
            return torch.cat([vae.decode(z[None]).cpu() for z in latents])

    # -- generation ---------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, prompt, negative_prompt="", height: int | None = None, width: int | None = None,
                 num_frames: int | None = None, *, preset=None, steps=None, shift=None, guidance_scale=None,
                 guidance_cutoff=None, motion_score=None, negative_motion_score=None, negative_motion_switch=None,
                 multiscale=None, renorm=None, seed: int | None = None, generator: torch.Generator | None = None,
                 output_type: str = "np", callback=None, progress: bool = True) -> LuminaVideoPipelineOutput:
        """Generate one video per prompt (a str or a list). `negative_prompt`: one str for all or a list.
        Sizes default to the model's defaults. Sampling: the model's default or `preset`, then the
        knobs (see sampling/knobs.py). Noise: item i uses seed + i (so a batch equals single runs), or
        draws from `generator`; with neither, a random seed (reported in the output). `callback(step, t, x)`."""
        # 1. Check inputs (the sampling settings are resolved first: the checks need the patch schedule)
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        knobs = SamplingKnobs(steps=steps, shift=shift, guidance_scale=guidance_scale, guidance_cutoff=guidance_cutoff,
                              motion_score=motion_score, negative_motion_score=negative_motion_score,
                              negative_motion_switch=negative_motion_switch, multiscale=multiscale, renorm=renorm)
        config = self.resolve_sampling(preset, knobs)
        height, width, num_frames = self.resolve_size(height, width, num_frames)
        self.check_inputs(prompt, negative_prompt, height, width, num_frames, config)
        prompts, negatives = _prompt_lists(prompt, negative_prompt)
        timings = {}
        # 2. Encode prompt
        with _timed(timings, "text_s", self.device):
            feats, mask = self.encode_prompt(prompts, negatives, config.is_guided())
        # 3. Prepare latents
        if generator is None and seed is None:
            seed = secrets.randbelow(2**31)
        seeds = None if generator is not None else [int(seed) + i for i in range(len(prompts))]
        noise = self.prepare_latents(len(prompts), height, width, num_frames, seeds, generator)
        # 4. Denoising loop
        with _timed(timings, "denoise_s", self.device), self._using(self.transformer) as model:
            latents = sample(model, noise.to(self.device), feats.to(self.device), mask.to(self.device), config,
                             progress=progress, callback=callback)
        if output_type == "latent":
            return LuminaVideoPipelineOutput(latents.cpu(), seeds, config, timings)
        # 5. Decode
        with _timed(timings, "decode_s", self.device):
            pixels = self.decode_latents(latents)
        return LuminaVideoPipelineOutput(_frames_as(pixels, output_type), seeds, config, timings)

    # -- files --------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, folder=None, dtype: torch.dtype | None = None, device="cpu") -> LuminaVideoPipeline:
        """Load a pipeline folder; None: the bundled demo model (DEFAULT_MODEL_DIR). `dtype`: the
        transformer's and text encoder's compute dtype, whatever dtype the weights were stored in;
        default float32 (as diffusers), so half-precision weights (the bundled demo model stores fp16
        to halve its size) run at full precision on a CPU. Pass torch.bfloat16 on a GPU."""
        dtype = torch.float32 if dtype is None else dtype
        folder = check_pipeline_folder(DEFAULT_MODEL_DIR if folder is None else folder)
        index = json.loads((folder / INDEX_NAME).read_text())
        version = index.get("format_version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise ValueError(f"{folder}: format_version {version} is newer than this package reads ({FORMAT_VERSION})")
        transformer = MultiScaleNextDiT.from_pretrained(folder / "transformer", dtype=dtype, device=device)
        vae = VideoVAE.from_pretrained(folder / "vae", device=device)
        text = TextEncoder.from_pretrained(folder / "text_encoder", tokenizer=folder / "tokenizer", dtype=dtype,
                                           device=device)
        return cls(transformer, vae, text, defaults=index.get("defaults"))

    @classmethod
    def from_components(cls, transformer, vae, text_encoder=None, tokenizer=None, defaults: dict | None = None,
                        dtype: torch.dtype | None = None, device="cpu") -> LuminaVideoPipeline:
        """Assemble from separate folders: a transformer folder (e.g. `lumina-video convert` output), a
        diffusers CogVideoX VAE folder (e.g. the `vae/` of THUDM/CogVideoX-2b), a text encoder folder or
        hub id (e.g. google/gemma-2-2b; None = the bundled MiniLM). Then `save_pretrained` it."""
        return cls(MultiScaleNextDiT.from_pretrained(transformer, dtype=dtype, device=device),
                   VideoVAE.from_pretrained(vae, device=device),
                   TextEncoder.from_pretrained(text_encoder, tokenizer=tokenizer, dtype=dtype, device=device),
                   defaults=defaults)

    def save_pretrained(self, folder, dtype: torch.dtype | None = None) -> None:
        """Write the whole folder; it appears complete or not at all. An existing folder is replaced
        only if it is a pipeline folder (has model_index.json) or empty. `dtype`: store the
        transformer's weights in this dtype (torch.float16 halves the file; loading upcasts)."""
        folder = Path(folder)
        if folder.is_dir() and any(folder.iterdir()) and not (folder / INDEX_NAME).is_file():
            raise FileExistsError(f"{folder} exists and is not a pipeline folder; refusing to replace it")
        defaults = dict(self.defaults, sampling=self.default_sampling.to_official())
        index = {
            "_class_name": "LuminaVideoPipeline",
            "_lumina_video_version": __version__,
            "format_version": FORMAT_VERSION,
            "transformer": ["lumina_video", type(self.transformer).__name__],
            "vae": ["diffusers", type(self.vae.vae).__name__],
            "text_encoder": ["transformers", type(self.text_encoder.model).__name__],
            "tokenizer": ["transformers", type(self.text_encoder.tokenizer).__name__],
            "defaults": defaults,
        }
        with files.atomic_dir(folder) as tmp:
            self.transformer.save_pretrained(tmp / "transformer", dtype=dtype)
            self.vae.save_pretrained(tmp / "vae")
            self.text_encoder.save_pretrained(tmp / "text_encoder", tmp / "tokenizer")
            files.write_json(tmp / INDEX_NAME, index)


def to_uint8_frames(pixels: torch.Tensor) -> np.ndarray:
    """(B, 3, F, H, W) in [-1, 1] -> (B, F, H, W, 3) uint8: round((x + 1) * 127.5)."""
    x = ((pixels.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 4, 1).contiguous().numpy()


def _sampling_from(spec) -> SamplingConfig:
    if isinstance(spec, SamplingConfig):
        return spec
    if isinstance(spec, str):
        return SamplingConfig.preset(spec)
    if isinstance(spec, dict):
        return SamplingConfig.from_official(spec)
    raise ValueError(f"a sampling preset is a released preset name, a SamplingConfig or an official dict, got {spec!r}")


def _frames_as(pixels: torch.Tensor, output_type: str):
    """Decoded pixels as `output_type` frames: "np" uint8 arrays, or "pil" lists of images."""
    frames = to_uint8_frames(pixels)
    if output_type == "pil":
        from PIL import Image

        return [[Image.fromarray(f) for f in video] for video in frames]
    return frames


def _prompt_lists(prompt, negative_prompt) -> tuple[list[str], list[str]]:
    """(prompts, one negative prompt per prompt); ValueError unless the prompts are non-empty strings."""
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, (list, tuple)) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompt must be a string or a non-empty list of strings, got {prompt!r}")
    empty = [i for i, p in enumerate(prompts) if not p.strip()]
    if empty:
        raise ValueError(f"prompt {empty[0]} is empty; describe the video to generate "
                         f"(an empty text is only accepted as the negative prompt)")
    negatives = [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else negative_prompt
    if not isinstance(negatives, (list, tuple)) or len(negatives) != len(prompts) or \
            not all(isinstance(p, str) for p in negatives):
        raise ValueError(f"negative_prompt must be a string or a list of {len(prompts)} strings, "
                         f"got {negative_prompt!r}")
    return list(prompts), list(negatives)


@contextlib.contextmanager
def _timed(timings: dict, key: str, device):
    """Store the seconds the block took in timings[key] (after the device's queued work is done)."""
    t0 = _clock(device)
    yield
    timings[key] = _clock(device) - t0


def _clock(device) -> float:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()
