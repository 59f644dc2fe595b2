"""LuminaVideoPipeline, a diffusers `DiffusionPipeline`: prompt -> text features -> denoised latents -> frames,
in the steps of `__call__`:

    1. check_inputs      prompts, size, frame count, patch schedule, RoPE table (meta tensors, no compute)
    2. encode_prompt     cap_feats, cap_mask = text_encoder([prompts..., negative prompts...])  rows [0:B] / [B:2B]
    3. prepare_latents   noise ~ N(0, I) of shape (B, C, T, H/8, W/8), T = vae.latent_frames(num_frames)
    4. denoising loop    latents = sample(transformer, noise, cap_feats, cap_mask, sampling)  (sampling/solver.py)
    5. decode_latents    frames = vae.decode(latents)  in [-1, 1] -> uint8

Loading, saving, devices and offloading are diffusers': `DiffusionPipeline.from_pretrained(folder)` returns
this class once `lumina_video` is imported (the class is registered in the `diffusers` namespace, where
diffusers resolves model_index.json's `_class_name`); `to(device or dtype)`, `enable_model_cpu_offload`,
`enable_sequential_cpu_offload` and `enable_group_offload` are DiffusionPipeline's.

The folder (docs/ARCHITECTURE.md), model_index.json format 2:
    transformer  ["lumina_video", "MultiScaleNextDiT"]  transformer/: config.json + model.safetensors
    vae          ["lumina_video", "VideoVAE"]           vae/: a diffusers AutoencoderKLCogVideoX folder
    text_encoder ["lumina_video", "TextEncoder"]        text_encoder/ + tokenizer/: transformers folders, or the
                                                        bundled MiniLM saved as a reference to its package
    defaults     the model's generation defaults (size, frames, fps, sampling in the official format, ...)
    plus _class_name, _diffusers_version, _lumina_video_version and _format_version (private keys, which
    diffusers passes to nobody). diffusers' loader takes a library other than diffusers/transformers
    from the already imported module (`lumina_video`), and calls `CLASS.from_pretrained(folder/NAME,
    torch_dtype=..., device_map=..., ...)` because the class is a `ModelMixin`. Format 1 (components named
    by their inner transformers/diffusers classes, a tokenizer entry, `format_version`) is read as format 2
    by `LuminaVideoPipeline.from_pretrained`; `upgrade_folder` rewrites its model_index.json once so that
    DiffusionPipeline.from_pretrained reads it too. The weights never change.
"""
from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput

from .. import __version__, files
from .._checks import is_int
from ..devices import dtype_name
from ..encoders import TextEncoder, VideoVAE
from ..model import MultiScaleNextDiT
from ..model.embed import token_grid
from ..sampling import AUTO_THRESHOLD, ForwardCounts, SamplingConfig, SamplingKnobs, StepCache, sample
from ..sampling.schedule import patch_name
from ..sampling.solver import check_sampling_inputs
from ..sampling.step_cache import parse_step_cache
from .folder import (
    COMPONENTS,
    DEFAULT_MODEL_DIR,
    FALLBACK_DEFAULTS,
    FORMAT_VERSION,
    INDEX_NAME,
    REQUIRED,
    check_pipeline_folder,
    library_tuple,
    no_loading_bar,
    upgrade_folder,
    upgrade_index,
)
from .frames import frames_as, one_of, prompt_lists, sampling_from, timed, to_uint8_frames

__all__ = ["LuminaVideoPipeline", "LuminaVideoPipelineOutput", "check_pipeline_folder", "upgrade_folder",
           "upgrade_index", "to_uint8_frames", "DEFAULT_MODEL_DIR", "FALLBACK_DEFAULTS", "FORMAT_VERSION",
           "INDEX_NAME", "REQUIRED", "OUTPUT_TYPES"]
OUTPUT_TYPES = ("np", "pil", "latent")
CALLBACK_TENSORS = ("latents",)


@dataclass
class LuminaVideoPipelineOutput(BaseOutput):
    """frames: "np" uint8 (B, F, H, W, 3); "pil" a list (per prompt) of lists of PIL images;
    "latent" the scaled latents (B, C, T, H/8, W/8). Plus the settings actually used, timings (s), the
    transformer's forward passes (sampling/forwards.py: model calls and rows per patch, a guided call of
    B prompts being 1 call of 2B rows), its dtype and the step cache's threshold (None: off).
    A diffusers BaseOutput: `out.frames`, `out["frames"]` and `out[0]` are the same."""

    frames: object
    seeds: list[int] | None
    sampling: SamplingConfig
    timings: dict = field(default_factory=dict)
    forwards: dict = field(default_factory=dict)
    dtype: str | None = None
    step_cache: float | None = None


class LuminaVideoPipeline(DiffusionPipeline):
    """Text-to-video with a Multi-scale Next-DiT, a CogVideoX VAE and a transformers text encoder.

    Components: `transformer` (MultiScaleNextDiT), `vae` (VideoVAE), `text_encoder` (TextEncoder, which
    holds its tokenizer); `defaults`: the model's generation defaults (height, width, num_frames, fps,
    sampling: a preset name, a SamplingConfig or an official dict), kept in model_index.json."""

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _callback_tensor_inputs = list(CALLBACK_TENSORS)

    def __init__(self, transformer: MultiScaleNextDiT, vae: VideoVAE, text_encoder: TextEncoder,
                 defaults: dict | None = None):
        super().__init__()
        if transformer.config["cap_feat_dim"] != text_encoder.dim:
            raise ValueError(f"the transformer takes caption features of width {transformer.config['cap_feat_dim']} "
                             f"but the text encoder gives {text_encoder.dim}")
        if transformer.in_channels != vae.latent_channels:
            raise ValueError(f"the transformer has {transformer.in_channels} input channels but the VAE "
                             f"{vae.latent_channels} latent channels")
        self.register_modules(transformer=transformer.eval().requires_grad_(False), vae=vae, text_encoder=text_encoder)
        self.defaults = {**FALLBACK_DEFAULTS, **(defaults or {})}
        self.default_sampling = sampling_from(self.defaults["sampling"])
        self.register_to_config(**{k: list(library_tuple(getattr(self, k))) for k in COMPONENTS},
                                defaults=self.index_defaults(), _format_version=FORMAT_VERSION,
                                _lumina_video_version=__version__)

    def index_defaults(self) -> dict:
        """The generation defaults as model_index.json keeps them: the sampling in the official format."""
        return dict(self.defaults, sampling=self.default_sampling.to_official())

    def enable_model_cpu_offload(self, gpu_id: int | None = None, device: torch.device | str | None = None):
        """DiffusionPipeline's model offload (accelerate hooks: each part moves to `device` while it
        runs). Also takes the device as the first argument and returns the pipeline, as before."""
        if isinstance(gpu_id, (str, torch.device)):
            gpu_id, device = None, gpu_id
        super().enable_model_cpu_offload(gpu_id=gpu_id, device=device)
        return self

    # -- settings -----------------------------------------------------------------------------
    def resolve_sampling(self, preset: str | SamplingConfig | dict | None = None, knobs: SamplingKnobs | None = None,
                         **knob_values) -> SamplingConfig:
        """The model's default sampling (or `preset`: a released preset name, a SamplingConfig or an
        official dict) with the user's knobs applied: `knobs` and/or the same knobs by keyword
        (sampling/knobs.py; a keyword wins over `knobs`)."""
        base = self.default_sampling if preset is None else sampling_from(preset)
        knobs = dataclasses.replace(knobs or SamplingKnobs(), **knob_values)
        return knobs.apply(base)

    def resolve_step_cache(self, step_cache=None) -> StepCache | None:
        """The step cache of a call: a StepCache as given; else "off", "auto" or a threshold (None: the
        model's default `defaults["step_cache"]`, off when absent), `auto` being the model's
        `defaults["step_cache_auto"]` or sampling.AUTO_THRESHOLD. None means no cache."""
        if isinstance(step_cache, StepCache):
            return step_cache
        value = self.defaults.get("step_cache") if step_cache is None else step_cache
        threshold = parse_step_cache(value, float(self.defaults.get("step_cache_auto", AUTO_THRESHOLD)))
        return None if threshold is None else StepCache(threshold)

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
        prompts, _ = prompt_lists(prompts, negative_prompts)
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

    # -- speed --------------------------------------------------------------------------------
    cache_caption_kv = True  # each call computes the transformer's caption keys/values once (same output)

    def _caption_cache(self):
        """The transformer's caption key/value cache for one call (model/nextdit.py `caption_cache`), when
        `cache_caption_kv` is on and the transformer has one; else a no-op context."""
        import contextlib

        enable = getattr(self.transformer, "caption_cache", None) if self.cache_caption_kv else None
        return enable() if enable is not None else contextlib.nullcontext()

    def compile_transformer(self, **compile_kwargs) -> LuminaVideoPipeline:
        """torch.compile the transformer's blocks (`MultiScaleNextDiT.compile_blocks`: dynamic shapes, so the
        patch-size stages share graphs); the first call compiles (slow), later calls reuse. Returns self."""
        self.transformer.compile_blocks(**compile_kwargs)
        return self

    # -- the steps of a call --------------------------------------------------------------------
    def encode_prompt(self, prompts: list[str], negative_prompts: list[str], guided: bool, device=None) -> tuple:
        """(cap_feats, cap_mask) of the prompts, rows [0:B], then of the negative prompts, rows [B:2B]
        (left out when the sampling is not guided), on `device` (default: the execution device)."""
        texts = prompts + negative_prompts if guided else prompts
        return self.text_encoder.encode(texts, device=self._execution_device if device is None else device)

    def prepare_latents(self, batch: int, height: int, width: int, num_frames: int, seeds: list[int] | None,
                        generator=None) -> torch.Tensor:
        """The starting noise, standard normal, on the CPU: item i from `seeds[i]` (drawn on the CPU,
        the same on every device), or, when `seeds` is None, all from `generator` or item i from
        `generator[i]` (a list of B generators, as diffusers accepts)."""
        shape = self.latent_shape(batch, height, width, num_frames)
        if seeds is None and not isinstance(generator, (list, tuple)):
            return torch.randn(shape, generator=generator, device=generator.device).cpu()
        gens = [torch.Generator("cpu").manual_seed(s) for s in seeds] if seeds is not None else list(generator)
        if len(gens) != batch:
            raise ValueError(f"generator is a list of {len(gens)} generators for {batch} prompts; pass one per prompt")
        return torch.stack([torch.randn(shape[1:], generator=g, device=g.device).cpu() for g in gens])

    def decode_latents(self, latents: torch.Tensor, device=None) -> torch.Tensor:
        """Pixels (B, 3, F, H, W) in [-1, 1] on the CPU, decoded one video at a time on `device`."""
        device = self._execution_device if device is None else device
        return torch.cat([self.vae.decode(z[None], device=device).cpu() for z in latents])

    def _step_callback(self, callback, callback_on_step_end):
        """The sampler's `callback(step, t, x)`: ours as given, then diffusers' `callback_on_step_end(pipe,
        step, t, {"latents": x})`, whose returned "latents" (if any) replace x in place."""
        if callback is None and callback_on_step_end is None:
            return None

        def step_done(step: int, t: float, x: torch.Tensor) -> None:
            if callback is not None:
                callback(step, t, x)
            if callback_on_step_end is not None:
                new = (callback_on_step_end(self, step, t, {"latents": x}) or {}).get("latents")
                if new is not None and new is not x:
                    x.copy_(new)

        return step_done

    # -- generation ---------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, prompt, negative_prompt="", height: int | None = None, width: int | None = None,
                 num_frames: int | None = None, *, preset=None, steps=None, num_inference_steps=None, shift=None,
                 guidance_scale=None, guidance_cutoff=None, motion_score=None, negative_motion_score=None,
                 negative_motion_switch=None, multiscale=None, renorm=None, seed: int | None = None, generator=None,
                 output_type: str = "np", return_dict: bool = True, callback=None, callback_on_step_end=None,
                 callback_on_step_end_tensor_inputs=CALLBACK_TENSORS, progress: bool = True, step_cache=None):
        """Generate one video per prompt (a str or a list). `negative_prompt`: one str for all or a list.
        Sizes default to the model's defaults. Sampling: the model's default or `preset`, then the
        knobs (sampling/knobs.py; `num_inference_steps` is diffusers' name for `steps`). Noise: item i
        uses seed + i (so a batch equals single runs), or draws from `generator` (one, or a list of one
        per prompt); with neither, a random seed (reported in the output). `callback(step, t, x)` and
        diffusers' `callback_on_step_end(pipe, step, t, {"latents": x}) -> dict` run after every step (t:
        the flow time, 0 = noise). `step_cache`: "off", "auto", a threshold or a StepCache
        (resolve_step_cache; default: the model's, off). Returns a LuminaVideoPipelineOutput, or
        `(frames,)` if not `return_dict`."""
        # 1. Check inputs (the sampling settings are resolved first: the checks need the patch schedule)
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        if set(callback_on_step_end_tensor_inputs) - set(CALLBACK_TENSORS):
            raise ValueError(f"callback_on_step_end_tensor_inputs may name {list(CALLBACK_TENSORS)}, got "
                             f"{list(callback_on_step_end_tensor_inputs)}")
        knobs = SamplingKnobs(steps=one_of("steps", steps, "num_inference_steps", num_inference_steps), shift=shift,
                              guidance_scale=guidance_scale, guidance_cutoff=guidance_cutoff, motion_score=motion_score,
                              negative_motion_score=negative_motion_score,
                              negative_motion_switch=negative_motion_switch, multiscale=multiscale, renorm=renorm)
        config = self.resolve_sampling(preset, knobs)
        cache, counts = self.resolve_step_cache(step_cache), ForwardCounts()
        height, width, num_frames = self.resolve_size(height, width, num_frames)
        self.check_inputs(prompt, negative_prompt, height, width, num_frames, config)
        prompts, negatives = prompt_lists(prompt, negative_prompt)
        device, timings = self._execution_device, {}
        # 2. Encode prompt
        with timed(timings, "text_s", device):
            feats, mask = self.encode_prompt(prompts, negatives, config.is_guided(), device)
        # 3. Prepare latents
        if generator is None and seed is None:
            seed = secrets.randbelow(2**31)
        seeds = None if generator is not None else [int(seed) + i for i in range(len(prompts))]
        noise = self.prepare_latents(len(prompts), height, width, num_frames, seeds, generator)
        # 4. Denoising loop
        progress = progress and not getattr(self, "_progress_bar_config", {}).get("disable", False)
        with timed(timings, "denoise_s", device), self._caption_cache():
            latents = sample(self.transformer, noise.to(device), feats.to(device), mask.to(device), config,
                             progress=progress, callback=self._step_callback(callback, callback_on_step_end),
                             step_cache=cache, counts=counts)
        # 5. Decode
        frames = latents.cpu()
        if output_type != "latent":
            with timed(timings, "decode_s", device):
                frames = frames_as(self.decode_latents(latents, device), output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (frames,)
        return LuminaVideoPipelineOutput(frames, seeds, config, timings, counts.to_json(),
                                         dtype_name(self.transformer.dtype), None if cache is None else cache.threshold)

    # -- files --------------------------------------------------------------------------------
    @classmethod
    def load_config(cls, *args, **kwargs):
        """diffusers' load_config, with a format-1 model_index.json read as format 2 (`upgrade_index`)."""
        out = super().load_config(*args, **kwargs)
        return (upgrade_index(out[0]), *out[1:]) if isinstance(out, tuple) else upgrade_index(out)

    @classmethod
    def from_pretrained(cls, folder=None, dtype: torch.dtype | None = None, device="cpu",
                        **kwargs) -> LuminaVideoPipeline:
        """Load a pipeline folder (None: the bundled demo model, DEFAULT_MODEL_DIR) with diffusers'
        DiffusionPipeline.from_pretrained, which takes all its keywords (a part passed by name replaces
        its folder; device_map, variant, quantization_config, ...). `dtype`: the transformer's and text
        encoder's compute dtype, whatever dtype the weights were stored in; default float32 (as diffusers),
        so half-precision weights (the bundled demo model stores fp16 to halve its size) run at full
        precision on a CPU; the VAE stays float32. Pass torch.bfloat16 on a GPU. diffusers' `torch_dtype`
        (one dtype for every part, or a dict by part) may be given instead. `device`: where the parts go."""
        folder = check_pipeline_folder(DEFAULT_MODEL_DIR if folder is None else folder)
        if "torch_dtype" in kwargs:
            if dtype is not None:
                raise ValueError("pass dtype or torch_dtype, not both")
        else:
            compute = torch.float32 if dtype is None else dtype
            dtype = compute if isinstance(compute, dict) else \
                {"transformer": compute, "text_encoder": compute, "default": torch.float32}
            kwargs["dtype"] = dtype
        with no_loading_bar():
            pipe = super().from_pretrained(str(folder), **kwargs)
        return pipe if kwargs.get("device_map") is not None else pipe.to(device)

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
        """Write the whole folder (the module docstring's format 2); it appears complete or not at all.
        An existing folder is replaced only if it is a pipeline folder (has model_index.json) or empty.
        `dtype`: store the transformer's weights in this dtype (torch.float16 halves the file; loading upcasts)."""
        import diffusers

        folder = Path(folder)
        if folder.is_dir() and any(folder.iterdir()) and not (folder / INDEX_NAME).is_file():
            raise FileExistsError(f"{folder} exists and is not a pipeline folder; refusing to replace it")
        index = {"_class_name": type(self).__name__, "_diffusers_version": diffusers.__version__,
                 "_lumina_video_version": __version__, "_format_version": FORMAT_VERSION,
                 **{k: list(library_tuple(getattr(self, k))) for k in COMPONENTS},
                 "defaults": self.index_defaults()}
        with files.atomic_dir(folder) as tmp:
            self.transformer.save_pretrained(tmp / "transformer", dtype=dtype)
            self.vae.save_pretrained(tmp / "vae")
            self.text_encoder.save_pretrained(tmp / "text_encoder", tmp / "tokenizer")
            files.write_json(tmp / INDEX_NAME, index)


def _register_with_diffusers() -> None:
    """DiffusionPipeline.from_pretrained resolves model_index.json's `_class_name` as an attribute of
    the `diffusers` module: put the class there (lumina_video/__init__.py calls this on diffusers' import)."""
    import diffusers

    setattr(diffusers, LuminaVideoPipeline.__name__, LuminaVideoPipeline)


_register_with_diffusers()
