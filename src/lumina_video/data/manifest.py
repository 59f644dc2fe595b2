"""Manifests: JSON Lines, one record per clip or image.

    {"path": "videos/0001.mp4", "caption": "...", "type": "video", "source": "web", "fps": 24.0,
     "duration": 4.0, "width": 1280, "height": 720, "motion_score": 3.2, "latent_path": null, ...}

Required: `path` (non-empty string), `caption` (string), `type` ("video" or "image"). Optional, null
allowed: `source` (string), `fps` (> 0), `duration` (>= 0), `width` and `height` (positive integers),
`motion_score` (number), `latent_path` (string). Any other field is kept as it is. Blank lines are
skipped.

Paths. In the file, relative `path` / `latent_path` values are relative to the manifest's folder;
`read_manifest` returns them absolute (so records can travel without their manifest), and
`write_manifest` writes paths that lie inside the manifest's folder relative to it again (others stay
absolute). Reading and writing back in the same place therefore changes nothing.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .._checks import is_int, is_number
from ..files import write_text

MEDIA_TYPES = ("video", "image")
PATH_KEYS = ("path", "latent_path", "audio_path")


def validate_record(rec) -> None:
    """Raise ValueError saying what is wrong with one record (no location; the reader adds it)."""
    if not isinstance(rec, dict):
        raise ValueError(f"a record must be a JSON object, got {type(rec).__name__}")
    for key in ("path", "caption", "type"):
        if key not in rec:
            raise ValueError(f"missing required field {key!r} (required: path, caption, type)")
    if not isinstance(rec["path"], str) or not rec["path"]:
        raise ValueError(f"'path' must be a non-empty string, got {rec['path']!r}")
    if not isinstance(rec["caption"], str):
        raise ValueError(f"'caption' must be a string, got {rec['caption']!r}")
    if rec["type"] not in MEDIA_TYPES:
        raise ValueError(f"'type' must be one of {list(MEDIA_TYPES)}, got {rec['type']!r}")
    for key in ("source", "latent_path"):
        if rec.get(key) is not None and not isinstance(rec[key], str):
            raise ValueError(f"{key!r} must be a string or null, got {rec[key]!r}")
    checks = {
        "fps": (lambda v: is_number(v) and v > 0, "a number > 0"),
        "duration": (lambda v: is_number(v) and v >= 0, "a number >= 0"),
        "width": (lambda v: is_int(v) and v > 0, "a positive integer"),
        "height": (lambda v: is_int(v) and v > 0, "a positive integer"),
        "motion_score": (is_number, "a number"),
    }
    for key, (ok, what) in checks.items():
        if rec.get(key) is not None and not ok(rec[key]):
            raise ValueError(f"{key!r} must be {what} or null, got {rec[key]!r}")


def resolve_path(value: str, base: Path) -> str:
    return value if os.path.isabs(value) else os.path.normpath(os.path.join(base, value))


def read_manifest(path, resolve: bool = True) -> list[dict]:
    """Read and validate every line; a bad one raises ValueError naming the file and line number.

    With `resolve`, relative `path` / `latent_path` become absolute (against the manifest's folder).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such manifest: {path}")
    base = path.resolve().parent
    records = []
    with open(path, encoding="utf-8-sig") as f:  # -sig: a byte-order mark (Windows editors) is not data
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            rec = _parse_line(line, path, lineno)
            try:
                validate_record(rec)
            except ValueError as e:
                raise ValueError(f"{path}:{lineno}: {e}") from None
            if resolve:
                for key in PATH_KEYS:
                    if rec.get(key):
                        rec[key] = resolve_path(rec[key], base)
            records.append(rec)
    return records


def _parse_line(line: str, path: Path, lineno: int):
    """json.loads of one line without its line ending; ValueError with the 1-based column (characters
    from the line's start) of the error. The ending is cut first: json counts a trailing newline as a
    line of its own, so an error at the end of a line (a cut-off record) read "line 2 column 1"."""
    text = line.rstrip("\r\n")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        where = "the end of the line" if e.pos >= len(text) else f"column {e.pos + 1}"
        raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg} at {where})") from None


def _relative_if_inside(value: str, base: Path) -> str:
    if not os.path.isabs(value):
        return value
    p = Path(os.path.normpath(value))
    try:
        return p.relative_to(base).as_posix()
    except ValueError:
        return value


def write_manifest(path, records) -> None:
    """Validate and write records atomically, one JSON object a line. Absolute paths inside the
    manifest's folder are written relative to it; relative ones are taken as already relative to it."""
    path = Path(path)
    base = Path(os.path.normpath(path.resolve().parent))
    lines = []
    for i, rec in enumerate(records):
        try:
            validate_record(rec)
        except ValueError as e:
            raise ValueError(f"record {i} for {path}: {e}") from None
        out = dict(rec)
        for key in PATH_KEYS:
            if out.get(key):
                out[key] = _relative_if_inside(out[key], base)
        lines.append(json.dumps(out, ensure_ascii=False))
    write_text(path, "".join(line + "\n" for line in lines))
