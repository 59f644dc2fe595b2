"""The bundled demo model: installing a trained pipeline into the package, and checking it.

    python -m lumina_video.demo install runs/demo/dit/final     (the last step of scripts/demo_recipe.sh)
    python -m lumina_video.demo verify

`install` writes the pipeline folder to `lumina_video/demo_model` with fp16 transformer weights
(atomically: it appears whole or not at all) and records the SHA-256 of every file in
`configs/demo_model.sha256`, beside the recipe that produced it. `verify` recomputes them: the
shipped weights are the ones the recipe recorded.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from . import files
from .pipeline import DEFAULT_MODEL_DIR, check_pipeline_folder

MAX_BYTES = 30 * 1024 * 1024  # the package's budget for the bundled model
CHECKSUMS = Path(__file__).resolve().parents[2] / "configs" / "demo_model.sha256"


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
    return "".join(f"{d}  {name}\n" for name, d in digests.items())


def parse_digests(text: str) -> dict[str, str]:
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

    from .pipeline import LuminaVideoPipeline

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
    recorded = parse_digests(Path(checksums).read_text())
    found = file_digests(target)
    return sorted(n for n in set(recorded) | set(found) if recorded.get(n) != found.get(n))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["install"] and len(argv) == 2:
        digests = install(argv[1])
        print(f"installed {argv[1]} -> {DEFAULT_MODEL_DIR} ({len(digests)} files); checksums in {CHECKSUMS}")
        return 0
    if argv == ["verify"]:
        bad = verify()
        print("demo model matches its recorded checksums" if not bad else f"differs: {', '.join(bad)}")
        return 1 if bad else 0
    print("usage: python -m lumina_video.demo install PIPELINE_DIR | verify", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
