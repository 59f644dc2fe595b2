"""The bundled demo models: installing a trained pipeline into the package, and checking it.

Two models ship with the package, each a pipeline folder with the SHA-256 of every file recorded beside it
(package data, `sha256sum` format):
    video (text -> video)   lumina_video/demo_model       demo/demo_model.sha256       at most MAX_BYTES
    V2A (video -> sound)    lumina_video/demo_v2a_model   demo/demo_v2a_model.sha256   at most V2A_MAX_BYTES
`install` / `install_v2a` write the folder atomically (it appears whole or not at all: a source that fails to
load or exceeds the budget leaves the installed folder and its checksums as they were), with the large weights
in fp16 (the video transformer; the V2A transformer and sync encoder), which loading upcasts to float32, and
record the checksums. `verify` recomputes them: the shipped weights are the ones the recipe recorded. From the
shell: `lumina-video demo install [--v2a] PIPELINE_DIR` and `lumina-video demo verify` (both models).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .. import files
from ..pipeline import DEFAULT_MODEL_DIR, check_pipeline_folder
from ..pipeline.v2a import DEFAULT_V2A_MODEL_DIR, V2A_PARTS

MAX_BYTES = 30 * 1024 * 1024  # the package's budget for the bundled video model
V2A_MAX_BYTES = 20 * 1024 * 1024  # and for the bundled V2A model
CHECKSUMS = Path(__file__).resolve().parent / "demo_model.sha256"
V2A_CHECKSUMS = Path(__file__).resolve().parent / "demo_v2a_model.sha256"
V2A_HALF_PARTS = ("transformer", "sync_encoder")  # stored in fp16; the other V2A parts are small and stay fp32
# kind -> (bundled folder, its checksums): what `lumina-video demo verify` checks
BUNDLES = {"video": (DEFAULT_MODEL_DIR, CHECKSUMS), "v2a": (DEFAULT_V2A_MODEL_DIR, V2A_CHECKSUMS)}
PIPELINE_CLASSES = {"video": "LuminaVideoPipeline", "v2a": "LuminaV2APipeline"}


def file_digests(folder) -> dict[str, str]:
    """{relative path: sha256} of every file under folder, sorted by path."""
    folder = Path(folder)
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        out[path.relative_to(folder).as_posix()] = h.hexdigest()
    return out


def format_digests(digests: dict[str, str]) -> str:
    """The `sha256sum` format: one "DIGEST  NAME" line per file."""
    return "".join(f"{d}  {name}\n" for name, d in digests.items())


def parse_digests(text: str) -> dict[str, str]:
    """{name: digest} from the `sha256sum` format (blank lines ignored)."""
    out = {}
    for line in text.splitlines():
        if line.strip():
            digest, name = line.split(None, 1)
            out[name.strip()] = digest
    return out


def check_kind(source, kind: str) -> None:
    """ValueError when `source` is a pipeline folder of the other kind (its model_index.json `_class_name`),
    naming the install command that takes it; anything else is left to the loader's own checks."""
    try:
        name = json.loads((Path(source) / "model_index.json").read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError):
        return
    other = next((k for k, c in PIPELINE_CLASSES.items() if c == name and k != kind), None)
    if other is not None:
        flag = " --v2a" if other == "v2a" else ""
        raise ValueError(f"{source} is a {name} folder; install it with `lumina-video demo install{flag} {source}`")


def _check_size(folder: Path, limit: int, source, dtype: str, hint: str) -> None:
    """ValueError when the files under `folder` take more than `limit` bytes."""
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    if size > limit:
        raise ValueError(f"{source} takes {size / 2**20:.1f} MiB with {dtype} weights; the bundled model may "
                         f"take at most {limit / 2**20:.0f} MiB ({hint})")


def _record(target, checksums) -> dict[str, str]:
    digests = file_digests(target)
    files.write_text(checksums, format_digests(digests))
    return digests


def install(source, target=DEFAULT_MODEL_DIR, checksums=CHECKSUMS, dtype: str = "float16") -> dict[str, str]:
    """Write a video pipeline folder into the package, the transformer's weights stored in `dtype` (fp16
    halves them; loading upcasts to float32), and record the checksums. Returns the digests."""
    import torch

    from ..pipeline import LuminaVideoPipeline

    check_kind(source, "video")
    source = check_pipeline_folder(source)
    pipe = LuminaVideoPipeline.from_pretrained(source)
    with files.atomic_dir(target) as tmp:  # too large: the error removes tmp, target stays as it was
        pipe.save_pretrained(tmp, dtype=getattr(torch, dtype))
        _check_size(tmp, MAX_BYTES, source, dtype, "save the text encoder as a reference")
    return _record(target, checksums)


def _forget_source(pipe, name: str) -> None:
    """diffusers records in each config the folder a model was loaded from (`_name_or_path`): name the bundle's
    folder instead of the source's, so the shipped files name no path of the machine that built them."""
    for part in V2A_PARTS:
        modules = getattr(pipe, part).modules() if hasattr(getattr(pipe, part), "modules") else []
        for module in modules:
            config = getattr(module, "config", None)
            if isinstance(config, dict) and "_name_or_path" in config and hasattr(module, "register_to_config"):
                module.register_to_config(_name_or_path=f"{name}/{part}")


def install_v2a(source, target=DEFAULT_V2A_MODEL_DIR, checksums=V2A_CHECKSUMS, dtype: str = "float16") -> dict:
    """Write a V2A pipeline folder (LuminaV2APipeline) into the package, the weights of V2A_HALF_PARTS stored in
    `dtype` (fp16 halves them; `LuminaV2APipeline.from_pretrained` upcasts them to float32), and record the
    checksums. Returns the digests."""
    import torch

    from ..pipeline.v2a import LuminaV2APipeline

    if source is None or not Path(source).is_dir():
        raise FileNotFoundError(f"V2A pipeline folder {source} does not exist")
    check_kind(source, "v2a")
    pipe = LuminaV2APipeline.from_pretrained(source)
    for part in V2A_HALF_PARTS:
        torch.nn.Module.to(getattr(pipe, part), getattr(torch, dtype))
    _forget_source(pipe, Path(target).name)
    with files.atomic_dir(target) as tmp:  # too large or unwritable: tmp is removed, target stays as it was
        pipe.save_pretrained(tmp)
        _check_size(tmp, V2A_MAX_BYTES, source, dtype, "save the text encoder as a reference, use a smaller model")
    return _record(target, checksums)


def verify(target=DEFAULT_MODEL_DIR, checksums=CHECKSUMS) -> list[str]:
    """Names of files that differ from the recorded checksums (missing or extra files included)."""
    checksums = Path(checksums)
    if not checksums.is_file():
        raise FileNotFoundError(f"no recorded checksums at {checksums}; `lumina-video demo install [--v2a]` "
                                f"writes them")
    if not Path(target).is_dir():
        raise FileNotFoundError(f"no model folder at {target} (install it with `lumina-video demo install [--v2a] "
                                f"PIPELINE_DIR`)")
    recorded = parse_digests(checksums.read_text())
    found = file_digests(target)
    return sorted(n for n in set(recorded) | set(found) if recorded.get(n) != found.get(n))
