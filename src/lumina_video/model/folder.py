"""The model folder and state dicts: this project's format, and what diffusers' loader passes in.

This project's model folder (`MultiScaleNextDiT.save_pretrained`, `lumina-video convert`):

    config.json         the 16 constructor arguments under their official names, plus `format_version`,
                        `torch_dtype` (the stored dtype), `converted_from` (converted checkpoints) and
                        diffusers' `_class_name` / `_diffusers_version` (ignored on load)
    model.safetensors   the weights under the official state-dict keys

A diffusers model folder (`diffusion_pytorch_model*.safetensors`, e.g. from `ModelMixin.save_pretrained(model,
folder)`) holds the same config and keys; it is loaded by diffusers itself (`MultiScaleNextDiT.from_pretrained`).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from .. import files

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
DIFFUSERS_WEIGHTS_PREFIX = "diffusion_pytorch_model"
# Keywords DiffusionPipeline.from_pretrained passes to every diffusers model. For this project's folder
# they change nothing: the weights are one safetensors file, read straight onto the target device.
NO_EFFECT_LOADING_KWARGS = frozenset({"low_cpu_mem_usage", "max_memory", "offload_folder", "offload_state_dict",
                                      "use_safetensors", "use_flashpack", "disable_mmap", "local_files_only"})
_ABSENT = object()


def is_diffusers_folder(folder: Path) -> bool:
    """A local folder with diffusers' weight files (one file, a variant or shards) and no model.safetensors."""
    return folder.is_dir() and not (folder / WEIGHTS_NAME).is_file() and \
        any(p.name.startswith(DIFFUSERS_WEIGHTS_PREFIX) for p in folder.iterdir())


def loading_dtype(dtype, kwargs: dict):
    """The dtype to cast to after loading, or None for the stored one: `dtype` (ours; None keeps the
    stored dtype) or diffusers' `torch_dtype` keyword (popped from kwargs), which keeps diffusers'
    meaning: None is float32, as for every diffusers model (DiffusionPipeline passes it to each part)."""
    torch_dtype = kwargs.pop("torch_dtype", _ABSENT)
    if torch_dtype is _ABSENT:
        return dtype
    torch_dtype = torch.float32 if torch_dtype is None else torch_dtype
    if dtype is not None and dtype != torch_dtype:
        raise ValueError(f"dtype {dtype} and torch_dtype {torch_dtype} disagree; pass one of them")
    return torch_dtype


def loading_device(device, kwargs: dict):
    """The device to load onto: diffusers' `device_map` (popped from kwargs) when it places the whole
    model on one device (a device, or {"": device} as DiffusionPipeline passes it), else `device`."""
    device_map = kwargs.pop("device_map", None)
    if device_map is None:
        return device
    if isinstance(device_map, dict) and set(device_map) == {""}:
        device_map = device_map[""]
    if isinstance(device_map, int) and not isinstance(device_map, bool):
        return torch.device("cuda", device_map)
    try:
        return torch.device(device_map)
    except (TypeError, RuntimeError):
        raise ValueError(f"device_map {device_map!r} splits the model across devices, which needs diffusers' folder "
                         f"format: save it with diffusers.ModelMixin.save_pretrained(model, folder) first") from None


def check_loading_kwargs(kwargs: dict) -> None:
    """TypeError for a keyword that is not a loading option; ValueError for one this folder format lacks."""
    for name in ("quantization_config", "variant"):
        if kwargs.get(name) is not None:
            raise ValueError(f"{name} needs diffusers' folder format (diffusion_pytorch_model.safetensors): save the "
                             f"model with diffusers.ModelMixin.save_pretrained(model, folder) and load that folder")
    unknown = sorted(set(kwargs) - NO_EFFECT_LOADING_KWARGS - {"quantization_config", "variant"})
    if unknown:
        raise TypeError(f"from_pretrained got unexpected keyword arguments {unknown}")


def clean_state_dict(sd: dict) -> dict:
    """Strip compile wrappers (`_orig_mod.`) and DDP/FSDP prefixes (`module.`) from key names."""
    out = {}
    for k, v in sd.items():
        k = k.replace("_orig_mod.", "")
        if k.startswith("module."):
            k = k[len("module."):]
        out[k] = v
    return out


def load_state_dict_checked(model: nn.Module, sd: dict, assign: bool = False) -> None:
    """Strict load with one clear error listing missing, unexpected and mis-shaped keys."""
    sd = clean_state_dict(sd)
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    misshaped = [
        f"{k}: file {tuple(sd[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or misshaped:

        def show(title, items):
            if not items:
                return ""
            more = f" ... and {len(items) - 8} more" if len(items) > 8 else ""
            return f"\n  {title} ({len(items)}): " + ", ".join(items[:8]) + more

        raise ValueError(
            "state dict does not match the model (the official key names of docs/REFERENCE.md §1 are accepted, "
            "optionally with `_orig_mod.` or `module.` inside):"
            + show("missing", missing) + show("unexpected", unexpected) + show("mis-shaped", misshaped)
        )
    model.load_state_dict(sd, strict=True, assign=assign)


def count_params(model: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in model.parameters())


def save_model_folder(model: nn.Module, folder, dtype: torch.dtype | None, config_file_dict) -> None:
    """Write a model folder: model.safetensors (the state dict in `dtype`, default the model's) and config.json,
    `config_file_dict(model.config, stored dtype name)`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sd = {k: (v.to(dtype) if dtype is not None else v).detach().contiguous() for k, v in model.state_dict().items()}
    files.save_safetensors(sd, folder / WEIGHTS_NAME)
    stored = str(dtype or model.dtype).removeprefix("torch.")
    files.write_json(folder / CONFIG_NAME, config_file_dict(model.config, stored))
