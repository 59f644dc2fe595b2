"""One table of dtype names and one default for device and dtype, used by every command.

    parse_dtype("bf16") -> torch.bfloat16        (also "bfloat16", "fp32", "float32", "fp16", "float16")
    default_device()    -> "cuda" when torch sees a GPU, else "cpu"
    default_dtype(dev)  -> bfloat16 on CUDA, float32 elsewhere (training's compute dtype)
    cpu_has_native_bf16() -> whether this CPU computes bf16 in hardware (AMX-BF16 or AVX512-BF16);
                         $LUMINA_VIDEO_CPU_BF16 = 1 / 0 overrides the detection (for tests)
    generation_dtypes(dev) -> the compute dtype of each pipeline part for generation:
                         CUDA: transformer and text encoder bf16, VAE fp32; a CPU with native
                         bf16: every part bf16 (measured best, README "Speed"); else fp32
    check_device(name)  -> the device name if this torch can run on it, else a one-line ValueError
    device_memory(dev)  -> bytes of memory of the device (RAM for the CPU), or None when unknown
"""
from __future__ import annotations

import os

import torch

# name -> dtype; the short names are the ones the CLIs show, the long ones are torch's own
DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32, "float32": torch.float32,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16,
}
SHORT_NAMES = ("fp32", "bf16", "fp16")
# the device types a command may name (torch knows more, e.g. "meta", which compute nothing)
DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")
ACCEPTED_DEVICES = "cpu, cuda, cuda:N, mps, xpu"


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


CPU_BF16_ENV = "LUMINA_VIDEO_CPU_BF16"
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo names of the bf16 instruction sets


def _cpuinfo_flags(path: str = "/proc/cpuinfo") -> set[str]:
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_native_bf16() -> bool:
    """Whether bf16 matrix products run in hardware on this CPU: $LUMINA_VIDEO_CPU_BF16 ("1" / "0") when
    set, else oneDNN is built in and the CPU has AMX-BF16 or AVX512-BF16 (torch.cpu's own checks, or the
    /proc/cpuinfo flags `amx_bf16` / `avx512_bf16`). Without them bf16 is emulated and slower than fp32."""
    forced = os.environ.get(CPU_BF16_ENV, "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return True
    if forced in ("0", "false", "no", "off"):
        return False
    if forced:
        raise ValueError(f"${CPU_BF16_ENV}={forced!r}: use 1 or 0 (or leave it unset to detect)")
    if not torch.backends.mkldnn.is_available():
        return False
    flags = _cpuinfo_flags()
    if flags:
        return bool(set(CPU_BF16_FLAGS) & flags)
    cpu = getattr(torch, "cpu", None)  # no /proc/cpuinfo: torch's own CPUID checks (AMX tiles imply AMX-BF16)
    return any(getattr(cpu, name, lambda: False)() for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


# Measured on this project's AMX CPU with the demo model (README "Speed", bench/precision.py): every part in
# bf16 decodes 3.2x faster (median) than fp32 at 52 dB PSNR, with the same held-out attribute accuracy.
GENERATION_PARTS = ("transformer", "text_encoder", "vae")


def generation_dtypes(device) -> dict[str, torch.dtype]:
    """{part: compute dtype} for generation on `device`: on CUDA the transformer and text encoder in bf16,
    the VAE fp32 (as before); on a CPU with native bf16 (`cpu_has_native_bf16`) every part in bf16
    (measured best: README "Speed"); elsewhere fp32."""
    kind = torch.device(device).type
    if kind == "cuda":
        return dict(transformer=torch.bfloat16, text_encoder=torch.bfloat16, vae=torch.float32)
    dtype = torch.bfloat16 if kind == "cpu" and cpu_has_native_bf16() else torch.float32
    return {part: dtype for part in GENERATION_PARTS}


def dtypes_name(dtypes: dict[str, torch.dtype]) -> str:
    """One name when every part has the same dtype ("bf16"), else "transformer bf16, text_encoder fp32, ..."."""
    names = {part: dtype_name(d) for part, d in dtypes.items()}
    if len(set(names.values())) == 1:
        return next(iter(names.values()))
    return ", ".join(f"{part} {name}" for part, name in names.items())


def check_device(name: str | torch.device | None, what: str = "--device") -> str:
    """`name` (None: `default_device()`) if this torch can compute on it, else ValueError in one line
    saying why and what to use instead: a name torch does not know ("cdua"), a type no command runs
    on ("meta"), a CPU-only build asked for CUDA, a build with CUDA but no visible GPU, a GPU index
    beyond the count, MPS off a Mac or without Metal. `what` names the option in the message."""
    if name is None:
        return default_device()
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        import difflib

        close = difflib.get_close_matches(str(name).split(":")[0], DEVICE_TYPES, n=1)
        hint = f" (did you mean {what} {close[0]}?)" if close else ""
        raise ValueError(f"{what} {name}: not a device name; accepted: {ACCEPTED_DEVICES}{hint}") from None
    if device.type not in DEVICE_TYPES:
        raise ValueError(f"{what} {name}: commands run on {ACCEPTED_DEVICES}, not {device.type!r}")
    why = {"cuda": _cuda_problem, "mps": _mps_problem, "xpu": _xpu_problem}.get(device.type, lambda d: None)(device)
    if why:
        raise ValueError(f"{what} {name}: {why}; use {what} cpu")
    return str(name)


def _cuda_problem(device: torch.device) -> str | None:
    if not torch.backends.cuda.is_built():
        return f"this torch ({torch.__version__}) has no CUDA support (a CPU-only build)"
    if not torch.cuda.is_available():
        return "this torch has CUDA support but sees no GPU (no driver or CUDA_VISIBLE_DEVICES hides them)"
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        return f"there is no GPU {device.index}: this machine has {count} (cuda:0 to cuda:{count - 1})"
    return None


def _mps_problem(device: torch.device) -> str | None:
    if not torch.backends.mps.is_built():
        return f"this torch ({torch.__version__}) has no MPS support (MPS is Apple's Metal, on macOS)"
    if not torch.backends.mps.is_available():
        return "this torch has MPS support but Metal is not available on this machine"
    return None


def _xpu_problem(device: torch.device) -> str | None:
    xpu = getattr(torch, "xpu", None)
    if xpu is None or not xpu.is_available():
        return f"this torch ({torch.__version__}) sees no Intel GPU (XPU)"
    return None


def device_memory(device) -> int | None:
    """Bytes of memory the device has in all: the GPU's for CUDA, the machine's RAM for the CPU and
    MPS (unified memory); None when it cannot be told."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(device.index or 0).total_memory)
    if device.type in ("cpu", "mps"):
        try:
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (ValueError, OSError, AttributeError):
            return None
    return None
