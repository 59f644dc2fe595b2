"""LuminaV2APipeline, a diffusers `DiffusionPipeline`: a silent video (+ an optional prompt) -> a soundtrack,
in the steps of `__call__`:

    1. check_inputs      frames and times, duration D (one latent frame .. `max_seconds`), prompts, steps, scale
    2. encode_video      CLIP frame features (B, Fv, Dv) at k / clip_rate s, sync features (B, Ns, Ds) at their
                         times: the frames are put on each encoder's grid by timestamp (encoders/clips.py) over
                         the padded length P = D rounded up to a multiple of `pad_seconds` (the last frame held
                         after the video's end), then the features at or after D are dropped (the model holds the
                         last one). This is how training saw a clip end inside its window; encoding on a grid
                         that ends at D put a spurious onset at the end of many clips
    3. encode_prompt     text features (B, L, Dt) + mask; prompt None -> "" with the text condition dropped
    4. prepare_latents   noise (B, C, T, M), T = ceil_pt(round(P * latent_rate)), M = n_mels / f,
                         item i from a CPU generator seeded with seed + i (a batch equals single runs)
    5. denoise           Euler on t_k = k / steps (t = 0 noise -> 1 data): x += dt * v, guided
                         v = v_c + s (v_c - v_u) (sampling/guidance.py), v_u with every condition dropped
    6. decode            mel = audio_vae.decode(x) (B, f T, n_mels); wave = vocoder(mel) (B, hop f T),
                         cropped / zero-padded to round(D * sample_rate) samples
    7. gate              wave *= the voicing gate's gain (pipeline/v2a_gate.py): silence where the sync head's
                         voicing stays below `voicing_gate` (a model with the harmonic sync head; 0: off)

The folder (save_pretrained / from_pretrained), model_index.json `_format_version` 1:
    transformer/   V2ANextDiT folder (config.json + model.safetensors)
    audio_vae/     diffusers AutoencoderKL folder (AudioVAE)
    vocoder/       transformers SpeechT5HifiGan folder (Vocoder), or griffin_lim.json (GriffinLim settings)
    sync_encoder/  SmallSyncEncoder folder
    clip/          transformers CLIP vision folder (+ preprocessor_config.json)
    text_encoder/ + tokenizer/   TextEncoder's folders (the bundled MiniLM saved as a reference)
    model_index.json   each part as [module, class], `defaults` (num_inference_steps, guidance_scale,
                       max_seconds, clip_rate, pad_seconds, voicing_gate; a key it lacks takes V2A_DEFAULTS')
The parts are loaded by the class names in model_index.json from the modules that export them
(`lumina_video.audio` etc., as diffusers' loader resolves a library by name), so this module needs none of
them at import time. Every part computes in float32 except the transformer (`dtype`).
"""
from __future__ import annotations

import importlib
import json
import math
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput

from .. import __version__, files
from .._checks import is_int, is_number
from ..sampling.guidance import guide
from .frames import timed
from .v2a_gate import GATE_HOLD_S, check_gate, gate_gain, sync_voicing
from .v2a_inputs import prompt_list, video_items, video_seconds

__all__ = ["LuminaV2APipeline", "LuminaV2APipelineOutput", "V2A_DEFAULTS", "V2A_PARTS", "video_items",
           "video_seconds", "check_components", "read_index", "DEFAULT_V2A_MODEL_DIR"]
INDEX_NAME, V2A_FORMAT_VERSION = "model_index.json", 1
# attribute (= sub-folder) -> the modules a class of it may come from
V2A_PARTS = {"transformer": "lumina_video.model", "audio_vae": "lumina_video.audio", "vocoder": "lumina_video.audio",
             "sync_encoder": "lumina_video.encoders", "clip": "lumina_video.encoders",
             "text_encoder": "lumina_video.encoders"}
V2A_CLASSES = {"transformer": ("V2ANextDiT",), "audio_vae": ("AudioVAE",), "vocoder": ("Vocoder", "GriffinLim"),
               "sync_encoder": ("SmallSyncEncoder",), "clip": ("CLIPFrameEncoder",), "text_encoder": ("TextEncoder",)}
GRIFFIN_LIM_FILE = "griffin_lim.json"
DEFAULT_V2A_MODEL_DIR = Path(__file__).parents[1] / "demo_v2a_model"  # the bundled V2A demo model
NOT_INSTALLED = ("the bundled V2A demo model is not installed ({} is missing): build it with `make v2a-demo-model` "
                 "(it ends with `lumina-video demo install --v2a runs/v2a_demo/v2a_robust/pipeline`); or pass a V2A "
                 "pipeline folder")
V2A_DEFAULTS = dict(num_inference_steps=25, guidance_scale=3.5, max_seconds=10.0, clip_rate=8.0, pad_seconds=1.0,
                    voicing_gate=0.5)
OUTPUT_TYPES = ("np", "latent")


@dataclass
class LuminaV2APipelineOutput(BaseOutput):
    """audio: (B, N) float32 waveforms at `sample_rate` (None for output_type "latent"); latents (B, C, T, M), T
    covering the padded seconds (`padded_seconds`);
    seeds (item i used seeds[i], None with a generator); seconds: the duration of each item; timings (s);
    gated: the share of each item's samples the voicing gate silenced (None: no gate)."""

    audio: np.ndarray | None
    sample_rate: int
    seeds: list[int] | None
    latents: torch.Tensor
    seconds: list[float]
    timings: dict = field(default_factory=dict)
    gated: list[float] | None = None


def _load_class(part: str, name: str):
    if name not in V2A_CLASSES[part]:
        raise ValueError(f"model_index.json names {name!r} for {part}; accepted: {list(V2A_CLASSES[part])}")
    return getattr(importlib.import_module(V2A_PARTS[part]), name)


class LuminaV2APipeline(DiffusionPipeline):
    """Video-to-audio with a V2ANextDiT (module docstring). Components: `transformer` (V2ANextDiT), `audio_vae`
    (AudioVAE), `vocoder` (Vocoder or GriffinLim), `sync_encoder` (SmallSyncEncoder or any SyncEncoder),
    `clip` (CLIPFrameEncoder), `text_encoder` (TextEncoder); `defaults` (V2A_DEFAULTS' keys)."""

    model_cpu_offload_seq = "clip->sync_encoder->text_encoder->transformer->audio_vae->vocoder"

    def __init__(self, transformer, audio_vae, vocoder, sync_encoder, clip, text_encoder, defaults: dict | None = None):
        super().__init__()
        check_components(transformer, audio_vae, vocoder, sync_encoder, clip, text_encoder)
        self.register_modules(transformer=transformer.eval().requires_grad_(False), audio_vae=audio_vae.eval(),
                              vocoder=vocoder.eval(), sync_encoder=sync_encoder.eval(), clip=clip.eval(),
                              text_encoder=text_encoder)
        unknown = sorted(set(defaults or {}) - set(V2A_DEFAULTS))
        if unknown:
            raise ValueError(f"unknown V2A defaults {unknown}; accepted: {sorted(V2A_DEFAULTS)}")
        self.defaults = {**V2A_DEFAULTS, **(defaults or {})}
        check_gate(self.defaults["voicing_gate"])
        if not is_number(self.defaults["pad_seconds"]) or self.defaults["pad_seconds"] < 0:
            raise ValueError(f"pad_seconds must be a number >= 0 (0: no padding), got {self.defaults['pad_seconds']!r}")
        self.register_to_config(defaults=dict(self.defaults), _format_version=V2A_FORMAT_VERSION,
                                _lumina_video_version=__version__)

    # -- shapes -------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """The transformer's device (diffusers asks every part for `.device`, which plain nn.Modules lack)."""
        return self.transformer.device

    def to(self, device=None, dtype: torch.dtype | None = None) -> LuminaV2APipeline:
        """Every part to `device`; `dtype` (if given) is the transformer's compute dtype, the rest stay float32.
        (diffusers' `to` asks each part for `.dtype`, which the audio parts, plain nn.Modules, lack.)"""
        if isinstance(device, torch.dtype):
            device, dtype = None, device
        for part in V2A_PARTS if device is not None else ():
            torch.nn.Module.to(getattr(self, part), device)
        if dtype is not None:
            torch.nn.Module.to(self.transformer, dtype)
        return self

    @property
    def sample_rate(self) -> int:
        return int(self.audio_vae.mel_config.sample_rate)

    def latent_frames(self, seconds: float) -> int:
        """round(seconds * latent_rate) rounded up to the model's temporal patch; ValueError below one frame."""
        rate, pt = self.audio_vae.latent_rate, self.transformer.cfg.patch_time
        n = round(seconds * rate)
        if n < 1:
            raise ValueError(f"the video lasts {seconds * 1000:.1f} ms, shorter than one audio latent frame "
                             f"({1000 / rate:g} ms)")
        return -(-n // pt) * pt

    def latent_shape(self, batch: int, seconds: float) -> tuple[int, int, int, int]:
        """(B, C, T, M): T latent frames of `seconds` padded (`padded_seconds`), M = n_mels / f mel rows."""
        vae = self.audio_vae
        frames = self.latent_frames(self.padded_seconds(seconds))
        return batch, vae.latent_channels, frames, vae.mel_config.n_mels // vae.downsample

    def padded_seconds(self, seconds: float) -> float:
        """`seconds` rounded up to a multiple of the `pad_seconds` default (0: not padded): the length the
        latent and the video features cover (module docstring, step 2)."""
        unit = self.defaults["pad_seconds"]
        return float(seconds) if not unit else math.ceil(seconds / unit - 1e-6) * unit

    # -- 1. checks ----------------------------------------------------------------------------
    def check_inputs(self, items, prompts, seconds: list[float], steps, guidance_scale) -> None:
        """ValueError (one line) before any compute: durations within (one latent frame, max_seconds], one
        latent length for the whole batch, the RoPE table, steps a positive integer, scale a number >= 0."""
        limit = self.defaults["max_seconds"]
        for s in seconds:
            if s > limit + 1e-6:
                raise ValueError(f"the video lasts {s:.3f} s, over this model's limit of {limit:g} s; cut it first")
        # one (audio latent frames, padded latent frames) per batch; latent_frames raises below one frame
        lengths = {(self.latent_frames(s), self.latent_shape(1, s)[2]) for s in seconds}
        if len(lengths) > 1:
            raise ValueError(f"the videos of a batch must have one duration; got {sorted(seconds)} s: run them apart")
        if not is_int(steps) or steps < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {steps!r}")
        if not is_number(guidance_scale) or guidance_scale < 0:
            raise ValueError(f"guidance_scale must be a number >= 0, got {guidance_scale!r}")
        _, _, n_t, n_m = self.latent_shape(len(items), seconds[0])
        cfg = self.transformer.cfg
        self.transformer.rope.check_grid((n_t // cfg.patch_time, n_m // cfg.patch_freq))

    # -- 2.-4. conditions and noise --------------------------------------------------------------
    def encode_video(self, items, seconds: float) -> dict:
        """CLIP features (B, Fv, Dv) at (Fv,) s and sync features (B, Ns, Ds) at (Ns,) s before `seconds`, encoded
        over `padded_seconds(seconds)` (module docstring, step 2), on the execution device."""
        device, rate, padded = self._execution_device, self.defaults["clip_rate"], self.padded_seconds(seconds)
        vis, syn = [], []
        for frames, times in items:
            vis.append(self.clip.encode_video(frames, times, rate=rate, duration=padded))
            with torch.no_grad():
                syn.append(self.sync_encoder.encode(frames, times, duration=padded))
        cond = {}
        for name, feats in (("visual", vis), ("sync", syn)):
            times = np.asarray(feats[0][1])  # one grid for the batch (one duration)
            keep = times < seconds - 1e-9  # the features of the video's own span
            cond[name] = torch.stack([f[keep] for f, _ in feats]).to(device).float()
            cond[f"{name}_times"] = torch.as_tensor(times[keep], dtype=torch.float32, device=device)
        return cond

    def encode_prompt(self, prompts: list[str | None]) -> dict:
        """text (B, L, Dt), text_mask (B, L), drop_text (B,) True where the prompt is None ("" encoded)."""
        device = self._execution_device
        feats, mask = self.text_encoder.encode([p or "" for p in prompts], device=device)
        return dict(text=feats.float(), text_mask=mask,
                    drop_text=torch.tensor([p is None for p in prompts], device=device))

    def prepare_latents(self, shape: tuple, seeds: list[int] | None, generator=None) -> torch.Tensor:
        """Standard normal noise on the CPU: item i from seeds[i], or all from `generator`."""
        if seeds is None:
            return torch.randn(shape, generator=generator, device=generator.device).cpu()
        gens = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        return torch.stack([torch.randn(shape[1:], generator=g) for g in gens])

    # -- 5. denoising ---------------------------------------------------------------------------
    def velocity(self, x: torch.Tensor, t: float, cond: dict, scale: float) -> torch.Tensor:
        """The guided velocity v_c + s (v_c - v_u) (s = 0: v_c alone, one pass); the unconditional branch
        drops visual, text and sync features (the model's learned empty embeddings)."""
        b, device = x.shape[0], x.device
        keep = torch.zeros(b, dtype=torch.bool, device=device)
        drops = dict(drop_visual=keep, drop_text=cond["drop_text"], drop_sync=keep)
        args = {k: cond[k] for k in ("visual", "visual_times", "text", "text_mask", "sync", "sync_times")}
        if scale == 0:
            return self.transformer(x, torch.full((b,), t, device=device), **args, **drops).float()
        two = {k: (v if k.endswith("_times") else torch.cat([v, v])) for k, v in args.items()}
        all_drop = torch.ones(b, dtype=torch.bool, device=device)
        two_drops = {k: torch.cat([v, all_drop]) for k, v in drops.items()}
        v = self.transformer(torch.cat([x, x]), torch.full((2 * b,), t, device=device), **two, **two_drops)
        return guide(v[:b], v[b:], scale)

    def denoise(self, noise: torch.Tensor, cond: dict, steps: int, scale: float, progress: bool) -> torch.Tensor:
        """Euler from t = 0 (noise) to 1 (data) on the uniform grid t_k = k / steps: x += (t_{k+1} - t_k) v."""
        x = noise.to(self._execution_device, torch.float32)
        grid = torch.linspace(0.0, 1.0, steps + 1).tolist()
        dtype = self.transformer.dtype
        pairs = list(zip(grid[:-1], grid[1:]))
        for t, t_next in self.progress_bar(pairs) if progress else pairs:
            x = x + (t_next - t) * self.velocity(x.to(dtype), t, cond, scale).float()
        return x

    # -- 6. decoding ----------------------------------------------------------------------------
    def decode_latents(self, latents: torch.Tensor, samples: int, timings: dict) -> np.ndarray:
        """(B, C, T, M) -> waveforms (B, samples) float32: audio VAE -> mel, vocoder -> wave, crop / zero-pad."""
        device = self._execution_device
        with timed(timings, "vae_s", device):
            mel = self.audio_vae.decode(latents)  # (B, f T, n_mels)
        with timed(timings, "vocoder_s", device):
            wave = self.vocoder(mel).float().cpu()  # (B, hop f T)
        wave = wave[:, :samples]
        if wave.shape[1] < samples:
            wave = torch.nn.functional.pad(wave, (0, samples - wave.shape[1]))
        return wave.numpy().astype(np.float32)

    # -- the call -------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, video, prompt=None, *, times=None, fps=None, seed: int | None = None, generator=None,
                 num_inference_steps: int | None = None, guidance_scale: float | None = None, seconds=None,
                 voicing_gate: float | None = None, progress: bool = True, output_type: str = "np",
                 return_dict: bool = True):
        """A soundtrack per video (see the module docstring). `video` and `times`/`fps`: `video_items`.
        `prompt`: None (no text condition), a str for all or one per video. Noise: item i uses seed + i, or
        `generator`; neither: a random seed (reported). `seconds`: audio length (default: the video's).
        `voicing_gate`: the gate's threshold (default: the model's; 0: no gate).
        Returns a LuminaV2APipelineOutput (or `(audio,)` if not `return_dict`)."""
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        items = video_items(video, times, fps)
        prompts = prompt_list(prompt, len(items))
        durations = [video_seconds(t, seconds) for _, t in items]
        steps = self.defaults["num_inference_steps"] if num_inference_steps is None else num_inference_steps
        scale = self.defaults["guidance_scale"] if guidance_scale is None else guidance_scale
        gate = check_gate(self.defaults["voicing_gate"] if voicing_gate is None else voicing_gate)
        self.check_inputs(items, prompts, durations, steps, scale)
        timings, device = {}, self._execution_device
        with timed(timings, "visual_s", device):
            cond = self.encode_video(items, durations[0])
        with timed(timings, "text_s", device):
            cond.update(self.encode_prompt(prompts))
        if generator is None and seed is None:
            seed = secrets.randbelow(2**31)
        seeds = None if generator is not None else [int(seed) + i for i in range(len(items))]
        noise = self.prepare_latents(self.latent_shape(len(items), durations[0]), seeds, generator)
        progress = progress and not getattr(self, "_progress_bar_config", {}).get("disable", False)
        with timed(timings, "denoise_s", device):
            latents = self.denoise(noise, cond, int(steps), float(scale), progress)
        audio, gated = None, None
        if output_type == "np":
            audio = self.decode_latents(latents, round(durations[0] * self.sample_rate), timings)
            with timed(timings, "gate_s", device):  # 7. the voicing gate
                voicing = sync_voicing(self.transformer, cond["sync"]) if gate > 0 else None
                if voicing is not None:
                    gain = gate_gain(voicing, cond["sync_times"], gate, audio.shape[1], self.sample_rate, GATE_HOLD_S)
                    audio, gated = audio * gain, [float(1 - g.mean()) for g in gain]
        self.maybe_free_model_hooks()
        out = LuminaV2APipelineOutput(audio, self.sample_rate, seeds, latents.cpu(), durations, timings, gated)
        return out if return_dict else (audio,)

    # -- files --------------------------------------------------------------------------------
    def save_pretrained(self, folder) -> None:
        """Write the folder of the module docstring, whole or not at all; an existing folder is replaced
        only if it is a pipeline folder (has model_index.json) or empty."""
        import diffusers

        folder = Path(folder)
        if folder.is_dir() and any(folder.iterdir()) and not (folder / INDEX_NAME).is_file():
            raise FileExistsError(f"{folder} exists and is not a pipeline folder; refusing to replace it")
        index = {"_class_name": type(self).__name__, "_diffusers_version": diffusers.__version__,
                 "_lumina_video_version": __version__, "_format_version": V2A_FORMAT_VERSION,
                 **{k: [V2A_PARTS[k], type(getattr(self, k)).__name__] for k in V2A_PARTS},
                 "defaults": dict(self.defaults)}
        with files.atomic_dir(folder) as tmp:
            for part in ("transformer", "audio_vae", "sync_encoder", "clip"):
                getattr(self, part).save_pretrained(tmp / part)
            if type(self.vocoder).__name__ == "GriffinLim":
                voc = self.vocoder
                (tmp / "vocoder").mkdir()
                files.write_json(tmp / "vocoder" / GRIFFIN_LIM_FILE, dict(n_iter=voc.n_iter, momentum=voc.momentum,
                                                                         seed=voc.seed, refine=voc.refine))
            else:
                self.vocoder.save_pretrained(tmp / "vocoder")
            self.text_encoder.save_pretrained(tmp / "text_encoder", tmp / "tokenizer")
            files.write_json(tmp / INDEX_NAME, index)

    @classmethod
    def from_pretrained(cls, folder=None, dtype: torch.dtype | None = None, device="cpu") -> LuminaV2APipeline:
        """Load a folder written by `save_pretrained` (None: DEFAULT_V2A_MODEL_DIR, the bundled one); `dtype`: the
        transformer's compute dtype (default float32), the rest float32 (fp16 upcast). One-line missing-file errors."""
        folder = Path(DEFAULT_V2A_MODEL_DIR if folder is None else folder)
        index = read_index(folder)
        parts = {}
        for part in V2A_PARTS:
            klass = _load_class(part, index[part][1])
            sub = folder / part
            if klass.__name__ == "GriffinLim":
                parts[part] = klass(**json.loads((sub / GRIFFIN_LIM_FILE).read_text())).to(device)
            elif part == "text_encoder":
                parts[part] = klass.from_pretrained(sub, tokenizer=folder / "tokenizer", device=device)
            elif part == "transformer":
                parts[part] = klass.from_pretrained(sub, dtype=dtype or torch.float32, device=device)
            else:
                parts[part] = klass.from_pretrained(sub, device=device)
        return cls(**parts, defaults=index.get("defaults"))


def read_index(folder) -> dict:
    """model_index.json of a V2A pipeline folder, checked: every part named, every sub-folder present."""
    folder = Path(folder)
    if not (folder / INDEX_NAME).is_file():
        missing = f"{folder} is not a V2A pipeline folder: {INDEX_NAME} is missing"
        raise FileNotFoundError(NOT_INSTALLED.format(folder) if folder == DEFAULT_V2A_MODEL_DIR else missing)
    try:
        index = json.loads((folder / INDEX_NAME).read_text())
    except ValueError as e:
        raise ValueError(f"{folder / INDEX_NAME} is not valid JSON: {e}") from None
    if index.get("_format_version", 0) > V2A_FORMAT_VERSION:
        raise ValueError(f"{folder}: format {index.get('_format_version')} is newer than this package reads")
    missing = [p for p in [*V2A_PARTS, "tokenizer"] if not (folder / p).is_dir()]
    missing += [p for p in V2A_PARTS if not isinstance(index.get(p), list) or len(index[p]) != 2]
    if missing:
        raise FileNotFoundError(f"{folder} is not a complete V2A pipeline folder; missing: {', '.join(missing)}")
    return index


def check_components(transformer, audio_vae, vocoder, sync_encoder, clip, text_encoder) -> None:
    """One-line ValueError unless the parts fit together: latent channels and rate, mel rows vs the patch,
    feature widths (CLIP, text, sync) vs the V2A model's, and the vocoder's mel and sample rate vs the VAE's."""
    cfg, vae = transformer.cfg, audio_vae
    rows = vae.mel_config.n_mels // vae.downsample
    model = "the V2A model's"
    pairs = [("audio VAE latent channels", vae.latent_channels, f"{model} in_channels", cfg.in_channels),
             ("audio VAE latent frames/s", vae.latent_rate, f"{model} latent_rate", cfg.latent_rate),
             ("CLIP feature width", clip.dim, f"{model} visual_feat_dim", cfg.visual_feat_dim),
             ("text feature width", text_encoder.dim, f"{model} text_feat_dim", cfg.text_feat_dim),
             ("sync feature width", sync_encoder.dim, f"{model} sync input width", cfg.sync_width),
             ("vocoder sample rate", vocoder.sample_rate, "the audio VAE's mel rate", vae.mel_config.sample_rate),
             ("vocoder mel bins", vocoder.mel_config.n_mels, "the audio VAE's mel bins", vae.mel_config.n_mels)]
    for what, got, name, want in pairs:
        if got != want:
            raise ValueError(f"mismatched components: {what} is {got:g} but {name} is {want:g}")
    if rows % cfg.patch_freq:
        raise ValueError(f"mismatched components: {rows} latent mel rows do not divide by patch_freq {cfg.patch_freq}")
