"""One table of dtype names and one default for device and dtype, used by every command.

    parse_dtype("bf16") -> torch.bfloat16        (also "bfloat16", "fp32", "float32", "fp16", "float16")
    default_device()    -> "cuda" when torch sees a GPU, else "cpu"
    default_dtype(dev)  -> bfloat16 on CUDA, float32 elsewhere (generation and training alike)
"""
from __future__ import annotations

import torch

# name -> dtype; the short names are the ones the CLIs show, the long ones are torch's own
DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32, "float32": torch.float32,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16,
}
SHORT_NAMES = ("fp32", "bf16", "fp16")


def parse_dtype(name: str | torch.dtype, accepted: tuple[str, ...] = tuple(DTYPES)) -> torch.dtype:
    """The dtype called `name` (a torch.dtype passes through); ValueError names the accepted ones."""
    if isinstance(name, torch.dtype):
        return name
    if name not in accepted or name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; accepted: {', '.join(accepted)}")
    return DTYPES[name]


def dtype_name(dtype: torch.dtype) -> str:
    """The short name of a dtype ("fp32", "bf16", "fp16")."""
    for short in SHORT_NAMES:
        if DTYPES[short] == dtype:
            return short
    return str(dtype).removeprefix("torch.")


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device) -> torch.dtype:
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
