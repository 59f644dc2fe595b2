"""Latent extraction: encode each clip once with the VAE, so large runs train from latents.

    lumina-video extract-latents MANIFEST --vae FOLDER --fps F --size S [--max-frames N] [--out FILE]

Per record:
    video  frames at `fps` from t = 0, as many as the clip covers up to `max_frames`, cut to the
           longest 4k+1 (the VAE maps 4k+1 frames to k+1 latent frames), cover-cropped to the record's
           aspect bucket of `size`; encoded (the VAE works through time in chunks) to (C, k+1, H/8, W/8)
    image  one frame -> (C, 1, H/8, W/8)
The latent (scaled, docs/REFERENCE.md §6) is saved as `{latent: tensor}` in a safetensors file, and the record gets
`latent_path`, `latent_fps`, `latent_size`, `latent_frames`. The trainer drops the first latent frame of
a video and takes its random temporal crop (docs/REFERENCE.md §5) from these files.

Resumable: a record whose latent file exists with the same fps and size is kept. The manifest is
written atomically every `save_every` records; a bad file is skipped, counted and reported.
"""
from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import files
from .._checks import integer, positive_int, positive_number, short_reason
from ..devices import check_device, parse_dtype
from .buckets import make_buckets, nearest_bucket
from .dataset import to_pixels
from .manifest import read_manifest, write_manifest
from .video_io import check_supported, failure_reason, probe_video, read_image, resize_cover_crop, sample_frames

LATENT_DTYPES = ("fp32", "bf16")  # how latent files may be stored


def usable_frames(duration: float, src_fps: float, fps: float, max_frames: int) -> int:
    """The longest 4k+1 frame count at `fps` that the clip covers (its last frame's time plus half a
    source period), capped at max_frames; 0 if not even one frame."""
    covered = math.floor((duration - 0.5 / src_fps) * fps + 1e-9) + 1
    n = min(max_frames, covered)
    return 0 if n < 1 else 4 * ((n - 1) // 4) + 1


def load_pixels(rec: dict, fps: float, size: int, max_frames: int, buckets) -> torch.Tensor:
    """(3, F, H, W) in [-1, 1] for one record, as the extraction protocol above says."""
    media = rec["type"]
    check_supported(rec["path"], media)
    if media == "image":
        img = read_image(rec["path"])
        h, w = nearest_bucket(img.shape[0], img.shape[1], buckets)
        return to_pixels(resize_cover_crop(img[None], h, w))
    info = probe_video(rec["path"])
    n = usable_frames(info["duration"], info["fps"], fps, max_frames)
    if n < 1:
        raise ValueError(f"{rec['path']}: too short for one frame at {fps:g} fps")
    frames = sample_frames(rec["path"], fps, n)
    h, w = nearest_bucket(info["height"], info["width"], buckets)
    return to_pixels(resize_cover_crop(frames, h, w))


def _has_current_latent(rec: dict, fps: float, size: int) -> bool:
    """Whether the record's latent file exists and was made at this fps and size (so it is kept)."""
    p = rec.get("latent_path")
    return bool(p) and Path(p).is_file() and rec.get("latent_fps") == fps and rec.get("latent_size") == size


def _merge_previous(records: list[dict], out: Path, fps: float, size: int) -> None:
    """Resume from an earlier output manifest (matched by path): its finished latents are kept.
    (When the output is the input manifest itself this changes nothing.)"""
    if not out.is_file():
        return
    done = {r["path"]: r for r in read_manifest(out) if _has_current_latent(r, fps, size)}
    for rec in records:
        prev = done.get(rec["path"])
        if prev is not None and not _has_current_latent(rec, fps, size):
            rec.update({k: prev[k] for k in ("latent_path", "latent_fps", "latent_size", "latent_frames")})


def extract_latents(manifest, vae, *, fps: float, size: int, max_frames: int = 33, out=None, latent_dir=None,
                    dtype: torch.dtype = torch.float32, save_every: int = 50, progress: bool = True) -> dict:
    """Encode every record of `manifest` (see the module docstring); returns a summary dict."""
    positive_number(fps, "fps")
    integer(size, "size", 32)
    positive_int(max_frames, "max_frames")
    out = Path(manifest if out is None else out)
    # absolute, so that the manifest writer stores it relative to the manifest's own folder
    latent_dir = (Path(latent_dir) if latent_dir else out.parent / f"latents_{size}px_{fps:g}fps").resolve()
    records = read_manifest(manifest)
    _merge_previous(records, out, fps, size)
    buckets = make_buckets(size)
    todo = [i for i, r in enumerate(records) if not _has_current_latent(r, fps, size)]
    failed: Counter = Counter()
    start, since_save = time.monotonic(), 0
    for i in tqdm(todo, desc="latents", unit="item", disable=not progress):
        rec = records[i]
        try:
            pixels = load_pixels(rec, fps, size, max_frames, buckets)
            with torch.no_grad():
                latent = vae.encode(pixels[None].to(vae.device, vae.dtype))[0].to("cpu", dtype)
        except Exception as e:  # noqa: BLE001 - a bad file is skipped and counted, never fatal
            failed[failure_reason(e)] += 1
            rec["latent_error"] = f"{failure_reason(e)}: {short_reason(e)}"
            continue
        path = latent_dir / f"{i:07d}_{Path(rec['path']).stem}.safetensors"
        files.save_safetensors({"latent": latent.contiguous()}, path,
                               metadata={"source": str(rec["path"]), "fps": f"{fps:g}", "size": str(size)})
        rec.update(latent_path=str(path), latent_fps=fps, latent_size=size, latent_frames=int(pixels.shape[1]))
        rec.pop("latent_error", None)
        since_save += 1
        if since_save >= save_every:
            write_manifest(out, records)
            since_save = 0
    write_manifest(out, records)
    return {
        "records": len(records), "kept": len(records) - len(todo), "encoded": len(todo) - sum(failed.values()),
        "failed": dict(failed), "seconds": round(time.monotonic() - start, 2), "out": str(out),
        "latent_dir": str(latent_dir),
    }


def add_cli_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", help="JSON Lines manifest of videos and images")
    p.add_argument("--vae", required=True, help="VAE folder (VideoVAE.save_pretrained / a pipeline's vae/)")
    p.add_argument("--fps", type=float, required=True, help="frames per second to sample videos at")
    p.add_argument("--size", type=int, required=True, help="bucket size: areas near size^2, sides multiples of 32")
    p.add_argument("--max-frames", type=int, default=33, help="at most this many frames per video (cut to 4k+1)")
    p.add_argument("--out", default=None, help="output manifest (default: update MANIFEST in place)")
    p.add_argument("--latent-dir", default=None, help="where latent files go (default: beside the output)")
    p.add_argument("--dtype", choices=LATENT_DTYPES, default="fp32", help="stored latent dtype")
    p.add_argument("--device", default=None, help="where the VAE runs (default: cuda when available, else cpu)")
    p.add_argument("--no-progress", action="store_true")


def cli_main(args) -> int:
    from ..encoders.vae import VideoVAE

    vae = VideoVAE.from_pretrained(args.vae, device=check_device(args.device)).eval()
    summary = extract_latents(args.manifest, vae, fps=args.fps, size=args.size, max_frames=args.max_frames,
                              out=args.out, latent_dir=args.latent_dir, dtype=parse_dtype(args.dtype, LATENT_DTYPES),
                              progress=not args.no_progress)
    failed = ", ".join(f"{v} {k}" for k, v in summary["failed"].items()) or "none"
    print(f"latents: {summary['encoded']} encoded, {summary['kept']} kept from earlier runs, failed: {failed}; "
          f"{summary['seconds']} s -> {summary['out']} (files in {summary['latent_dir']})")
    return 0
