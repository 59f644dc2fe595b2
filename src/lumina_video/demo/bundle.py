"""The bundled demo model: installing a trained pipeline into the package, and checking it.

`install` writes the pipeline folder to `lumina_video/demo_model` with fp16 transformer weights
(atomically: it appears whole or not at all) and records the SHA-256 of every file in CHECKSUMS,
`lumina_video/demo/demo_model.sha256`, which ships with the package as package data. `verify`
recomputes them: the shipped weights are the ones the recipe recorded. From the shell:
`lumina-video demo install PIPELINE_DIR` and `lumina-video demo verify`.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from .. import files
from ..pipeline import DEFAULT_MODEL_DIR, check_pipeline_folder

MAX_BYTES = 30 * 1024 * 1024  # the package's budget for the bundled model
CHECKSUMS = Path(__file__).resolve().parent / "demo_model.sha256"


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


def install(source, target=DEFAULT_MODEL_DIR, checksums=CHECKSUMS, dtype: str = "float16") -> dict[str, str]:
    """Write a pipeline folder into the package, the transformer's weights stored in `dtype` (fp16
    halves them; loading upcasts to float32), and record the checksums. Returns the digests."""
    import torch

    from ..pipeline import LuminaVideoPipeline

    source = check_pipeline_folder(source)
    pipe = LuminaVideoPipeline.from_pretrained(source)
    with files.atomic_dir(target) as tmp:  # too large: the error removes tmp, target stays as it was
        pipe.save_pretrained(tmp, dtype=getattr(torch, dtype))
        size = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
        if size > MAX_BYTES:
            raise ValueError(f"{source} takes {size / 2**20:.1f} MiB with {dtype} weights; the bundled model may "
                             f"take at most {MAX_BYTES / 2**20:.0f} MiB (save the text encoder as a reference)")
    digests = file_digests(target)
    files.write_text(checksums, format_digests(digests))
    return digests


def verify(target=DEFAULT_MODEL_DIR, checksums=CHECKSUMS) -> list[str]:
    """Names of files that differ from the recorded checksums (missing or extra files included)."""
    checksums = Path(checksums)
    if not checksums.is_file():
        raise FileNotFoundError(f"no recorded checksums at {checksums}; `lumina-video demo install` writes them")
    if not Path(target).is_dir():
        raise FileNotFoundError(f"no model folder at {target}")
    recorded = parse_digests(checksums.read_text())
    found = file_digests(target)
    return sorted(n for n in set(recorded) | set(found) if recorded.get(n) != found.get(n))
