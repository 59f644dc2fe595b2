"""The synthetic dataset: procedural clips with known ground truth (docs/ARCHITECTURE.md, "The synthetic dataset").

A clip is a plain or textured background and one (sometimes two) objects of a named colour and shape
(`vocab`) moving in a straight line at constant speed, or staying still. Still images are one frame.

Geometry, in pixels, x to the right and y down, pixel (i, j) covering [j, j+1) x [i, i+1):
    centre at frame k:  c_k = (start_x, start_y) + k * speed_px * DIRECTIONS[direction]
    circle:   |p - c| <= s / 2                       (s = object_size)
    square:   |p_x - c_x| <= s / 2 and |p_y - c_y| <= s / 2
    triangle: apex up, base s wide at c_y + s/2, height s: |p_x - c_x| <= (p_y - (c_y - s/2)) / 2
Edges are anti-aliased by 4 x 4 supersampling, so sub-pixel motion is smooth, while pixels fully
inside an object have exactly its `vocab.COLORS` value (the object is segmentable by colour).
Speeds: `vocab.SPEEDS` pixels per frame on a 64-pixel frame, scaled by size / 64. Start positions
are drawn so the whole object stays inside the frame for the whole clip.

Textures are smooth low-contrast noise (+-TEXTURE_AMPLITUDE) around the background colour and do
not move; "plain" backgrounds carry a faint grain (+-GRAIN_AMPLITUDE) so optical flow stays
anchored. Every attribute is recorded in the manifest; motion scores are not (they are measured with
`lumina-video motion`, like real data).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from ..files import write_json
from . import vocab
from .manifest import write_manifest
from .video_io import write_image, write_video

SUPERSAMPLE = 4
TEXTURE_AMPLITUDE = 12  # +- grey levels around the background colour
GRAIN_AMPLITUDE = 3  # +- grey levels on "plain" backgrounds (see render_background)
OBJECT_SIZE_RANGE = (0.2, 0.35)  # object size as a fraction of the frame side
SOURCE = "synthetic"
GOLDEN = (5 ** 0.5 - 1) / 2


def _coverage(shape: str, cx: float, cy: float, s: float, size: int) -> np.ndarray:
    """(size, size) float32 fraction of each pixel covered by the shape (4 x 4 supersampling)."""
    n = SUPERSAMPLE
    sub = (np.arange(size * n, dtype=np.float32) + 0.5) / n  # sub-sample centres
    y, x = sub[:, None], sub[None, :]
    r = s / 2
    if shape == "circle":
        inside = (x - cx) ** 2 + (y - cy) ** 2 <= r * r
    elif shape == "square":
        inside = (np.abs(x - cx) <= r) & (np.abs(y - cy) <= r)
    elif shape == "triangle":
        top = cy - r
        inside = (y >= top) & (y <= cy + r) & (np.abs(x - cx) <= (y - top) / 2)
    else:
        raise ValueError(f"unknown shape {shape!r}; accepted: {list(vocab.SHAPES)}")
    return inside.reshape(size, n, size, n).mean(axis=(1, 3), dtype=np.float32)


def render_background(background: str, textured: bool, size: int, seed: int = 0) -> np.ndarray:
    """(size, size, 3) float32: the background colour plus smooth grey noise: +-TEXTURE_AMPLITUDE when
    textured, a barely visible +-GRAIN_AMPLITUDE when plain. The grain matters: optical flow
    (DIS, like learned flow) smears an object's motion across a perfectly flat background, which made
    plain clips score 5-6x higher motion than textured ones at the same speed; with the grain the
    scores agree within ~20% across backgrounds and stay proportional to speed."""
    if background not in vocab.BACKGROUNDS:
        raise ValueError(f"unknown background {background!r}; accepted: {list(vocab.BACKGROUNDS)}")
    base = np.broadcast_to(np.float32(vocab.BACKGROUNDS[background]), (size, size, 3)).copy()
    amplitude = TEXTURE_AMPLITUDE if textured else GRAIN_AMPLITUDE
    if amplitude:
        rng = np.random.default_rng(seed)
        cells = max(2, size // 8)  # noise on a coarse grid, upsampled: blobs of about 8 pixels
        coarse = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
        noise = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
        noise = np.clip(noise, -1, 1) * amplitude
        base = base + noise[..., None]
    return base


def object_centre(obj: dict, k: int) -> tuple[float, float]:
    """Centre (x, y) of an object at frame k."""
    dx, dy = vocab.DIRECTIONS[obj["direction"]] if obj.get("direction") else (0, 0)
    v = float(obj.get("speed_px") or 0.0)
    return obj["start_x"] + k * v * dx, obj["start_y"] + k * v * dy


def _objects(attrs: dict) -> list[dict]:
    return list(attrs["objects"]) if attrs.get("objects") else [attrs]


def render_clip(attrs: dict, size: int = 64, frames: int = 16, seed: int = 0) -> np.ndarray:
    """(frames, size, size, 3) uint8. Pure and deterministic: `seed` only drives the texture.

    attrs: background, textured, and either the object keys (color, shape, direction or None,
    speed_px, object_size, start_x, start_y) or `objects`, a list of such dicts (drawn in order).
    """
    bg = render_background(attrs["background"], bool(attrs.get("textured")), size, seed)
    objs = _objects(attrs)
    for o in objs:
        if o["color"] not in vocab.COLORS:
            raise ValueError(f"unknown colour {o['color']!r}; accepted: {list(vocab.COLORS)}")
        if o.get("direction") is not None and o["direction"] not in vocab.DIRECTIONS:
            raise ValueError(f"unknown direction {o['direction']!r}; accepted: {list(vocab.DIRECTIONS)} or None")
    out = np.empty((frames, size, size, 3), dtype=np.uint8)
    for k in range(frames):
        img = bg.copy()
        for o in objs:
            cx, cy = object_centre(o, k)
            a = _coverage(o["shape"], cx, cy, float(o["object_size"]), size)[..., None]  # (H, W, 1)
            img = img * (1 - a) + np.float32(vocab.COLORS[o["color"]]) * a
        out[k] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out


def stays_inside(obj: dict, size: int, frames: int) -> bool:
    """True when the object's bounding box is inside the frame at every frame of the clip."""
    r = obj["object_size"] / 2
    for k in (0, frames - 1):  # straight-line motion: the end points are the extremes
        cx, cy = object_centre(obj, k)
        if cx - r < 0 or cy - r < 0 or cx + r > size or cy + r > size:
            return False
    return True


def draw_object_size(rng: np.random.Generator, size: int) -> int:
    """An object's side in pixels, uniform over OBJECT_SIZE_RANGE of the frame side (ends included)."""
    lo, hi = (round(f * size) for f in OBJECT_SIZE_RANGE)
    return int(rng.integers(lo, hi + 1))


def speed_px(speed: str, size: int) -> float:
    """Pixels per frame of a `vocab.SPEEDS` word on a `size`-pixel frame (the words are defined at 64 px)."""
    return vocab.SPEEDS[speed] * size / 64


def draw_start(rng: np.random.Generator, size: int, object_size: int, direction: str | None, travel: float,
               decimals: int | None = 2) -> tuple[float, float]:
    """Start centre (x, y), uniform over the centres whose object stays inside the frame at the start
    and after moving `travel` px towards `direction` (None: still): along an axis with step delta,
    c in [s/2 + max(0, -delta * travel), size - s/2 - max(0, delta * travel)]. Rounded to `decimals`
    (and kept inside that range), or not rounded when None. x is drawn first, then y."""
    dx, dy = vocab.DIRECTIONS[direction] if direction else (0, 0)
    r = object_size / 2

    def start(delta: int) -> float:
        low = r + max(0.0, -delta * travel)
        high = size - r - max(0.0, delta * travel)
        c = rng.uniform(low, high)
        if decimals is None:
            return float(c)
        unit = 10.0 ** decimals
        return float(np.clip(np.round(c, decimals), np.ceil(low * unit) / unit, np.floor(high * unit) / unit))

    x = start(dx)
    return x, start(dy)


def sample_object(rng: np.random.Generator, size: int, frames: int, static: bool,
                  avoid_color: str | None = None) -> dict:
    """Random object attributes whose path stays inside the frame (`draw_start`, 2 decimals). Speeds
    whose path cannot fit (long clips at high speed) are not drawn."""
    colors = [c for c in vocab.COLORS if c != avoid_color]
    obj = {"color": str(rng.choice(colors)), "shape": str(rng.choice(vocab.SHAPES))}
    s = draw_object_size(rng, size)
    travel = {w: speed_px(w, size) * (frames - 1) for w in vocab.SPEEDS}
    speeds = [w for w, d in travel.items() if d <= size - s]
    if static or not speeds:
        if not static:
            raise ValueError(f"no speed fits a {frames}-frame clip of size {size}: the slowest travels "
                             f"{min(travel.values()):.1f} px, the frame leaves {size - s} px; use fewer frames")
        direction, speed, v = None, None, 0.0
    else:
        direction = str(rng.choice(list(vocab.DIRECTIONS)))
        speed = str(rng.choice(speeds))
        v = speed_px(speed, size)
    start_x, start_y = draw_start(rng, size, s, direction, v * (frames - 1))
    obj.update(direction=direction, speed=speed, speed_px=v, object_size=s, start_x=start_x, start_y=start_y)
    return obj


def sample_attrs(rng: np.random.Generator, size: int, frames: int, kind: str, two_objects: bool = False,
                 background_caption_prob: float = 0.5, speed_caption_prob: float = 1.0,
                 caption_rng: np.random.Generator | None = None) -> dict:
    """Attributes and caption of one item; kind is "video", "static" or "image".

    A moving object's speed word is in the caption with probability `speed_caption_prob`, drawn from
    `caption_rng` (so the choice never changes the rendered clip). Without it the caption leaves the
    speed unspecified and only the motion score tells it: a model then has to learn motion control
    from the motion condition rather than from the text alone."""
    frames = 1 if kind == "image" else frames
    static = kind != "video"
    first = sample_object(rng, size, frames, static)
    attrs = {"background": str(rng.choice(list(vocab.BACKGROUNDS))), "textured": bool(rng.random() < 0.5)}
    objs = [first] + ([sample_object(rng, size, frames, static, avoid_color=first["color"])] if two_objects else [])
    with_bg = rng.random() < background_caption_prob
    caption_rng = caption_rng if caption_rng is not None else rng

    def named_speed(o):  # no draw at all when every caption names its speed
        return o["speed"] if speed_caption_prob >= 1 or caption_rng.random() < speed_caption_prob else None

    parts = [vocab.caption(o["color"], o["shape"], o["direction"], named_speed(o)) for o in objs]
    text = " and ".join(parts)
    if with_bg:
        text += f" on a {attrs['background']} background"
    attrs.update(first)  # the caption's subject, flat, for simple consumers
    if two_objects:
        attrs["objects"] = objs
    attrs["caption"] = text
    return attrs


def _check_dataset_args(n: int, size: int, frames: int, fps: float, image_fraction: float, static_fraction: float,
                        holdout: set) -> None:
    """Raise ValueError unless n >= 1, size is even and >= 16, frames >= 2, fps > 0, the kind fractions
    lie in [0, 1] together and every held-out (colour, shape) pair is in the vocabulary."""
    for color, shape in holdout:
        if color not in vocab.COLORS or shape not in vocab.SHAPES:
            raise ValueError(f"holdout pair ({color!r}, {shape!r}) is not in the vocabulary; colours "
                             f"{list(vocab.COLORS)}, shapes {list(vocab.SHAPES)}")
    if n < 1 or size < 16 or size % 2 or frames < 2 or fps <= 0:
        raise ValueError(f"need n >= 1, an even size >= 16, frames >= 2 and fps > 0; got n={n}, size={size}, "
                         f"frames={frames}, fps={fps}")
    if not (0 <= image_fraction and 0 <= static_fraction and image_fraction + static_fraction <= 1):
        raise ValueError("image_fraction + static_fraction must lie in [0, 1], "
                         f"got {image_fraction}, {static_fraction}")


def make_dataset(out_dir, n: int, size: int = 64, frames: int = 16, fps: float = 8, seed: int = 0,
                 image_fraction: float = 0.15, static_fraction: float = 0.15,
                 two_object_fraction: float = 0.0, background_caption_prob: float = 0.5,
                 holdout_pairs=(), speed_caption_prob: float = 0.5, progress: bool = False) -> Path:
    """Render n items into out_dir (videos/*.mp4, images/*.png) and write out_dir/manifest.jsonl
    (and synth.json, the arguments).

    Item i depends only on (seed, i), so a larger n extends a smaller one. Returns the manifest path.
    `holdout_pairs`: (colour, shape) pairs kept out of training. Items whose object is such a pair
    are rendered as usual but listed in out_dir/heldout.jsonl instead of manifest.jsonl, so a model
    can be tested on combinations of attributes it never saw.
    """
    holdout = {tuple(pair) for pair in holdout_pairs}
    _check_dataset_args(n, size, frames, fps, image_fraction, static_fraction, holdout)
    out_dir = Path(out_dir).resolve()
    records = []
    items = range(n)
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="synth", unit="item")
    offset = np.random.default_rng(seed).random()
    for i in items:
        rng = np.random.default_rng([seed, i])
        u = (offset + i * GOLDEN) % 1.0  # low-discrepancy: the kind fractions hold closely for any n
        kind = "image" if u < image_fraction else "static" if u < image_fraction + static_fraction else "video"
        attrs = sample_attrs(rng, size, frames, kind, two_objects=bool(rng.random() < two_object_fraction),
                             background_caption_prob=background_caption_prob,
                             speed_caption_prob=speed_caption_prob,
                             caption_rng=np.random.default_rng([seed, i, 1]))
        tex_seed = int(rng.integers(2**31))
        if kind == "image":
            rel = f"images/{i:06d}.png"
            write_image(out_dir / rel, render_clip(attrs, size, 1, tex_seed)[0])
            media = {"type": "image"}
        else:
            rel = f"videos/{i:06d}.mp4"
            write_video(out_dir / rel, render_clip(attrs, size, frames, tex_seed), fps)
            media = {"type": "video", "fps": float(fps), "duration": frames / fps, "num_frames": frames}
        caption = attrs.pop("caption")
        records.append({"path": str(out_dir / rel), "caption": caption, **media, "source": SOURCE,
                        "width": size, "height": size, **attrs, "texture_seed": tex_seed})
    manifest = out_dir / "manifest.jsonl"
    held = [r for r in records if (r.get("color"), r.get("shape")) in holdout]
    write_manifest(manifest, [r for r in records if (r.get("color"), r.get("shape")) not in holdout])
    if holdout:
        write_manifest(out_dir / "heldout.jsonl", held)
    write_json(out_dir / "synth.json", {  # the parameters that reproduce this folder
        "n": n, "size": size, "frames": frames, "fps": fps, "seed": seed, "image_fraction": image_fraction,
        "static_fraction": static_fraction, "two_object_fraction": two_object_fraction,
        "background_caption_prob": background_caption_prob, "holdout_pairs": sorted(holdout),
        "speed_caption_prob": speed_caption_prob})
    return manifest


def summarize(records: list[dict]) -> str:
    kinds = Counter("image" if r["type"] == "image" else "static" if r.get("direction") is None else "video"
                    for r in records)
    colors = Counter(r["color"] for r in records)
    return (f"{len(records)} items: " + ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))
            + "; colours " + json.dumps(dict(sorted(colors.items()))))


def add_cli_arguments(parser) -> None:
    parser.add_argument("out_dir", help="folder for videos/, images/ and manifest.jsonl")
    parser.add_argument("--n", type=int, required=True, help="number of items")
    parser.add_argument("--size", type=int, default=64, help="frame side in pixels (even)")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip")
    parser.add_argument("--fps", type=float, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-fraction", type=float, default=0.15)
    parser.add_argument("--static-fraction", type=float, default=0.15)
    parser.add_argument("--two-object-fraction", type=float, default=0.0)
    parser.add_argument("--speed-caption-prob", type=float, default=0.5,
                        help="share of moving objects whose caption names their speed (the rest leave it "
                             "to the motion score)")
    parser.add_argument("--holdout", default="", metavar="PAIRS",
                        help='(colour, shape) pairs kept out of manifest.jsonl and listed in heldout.jsonl, '
                             'e.g. "red triangle,green circle"')
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """"red triangle, green circle" -> [("red", "triangle"), ("green", "circle")]."""
    pairs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        words = part.split()
        if len(words) != 2:
            raise ValueError(f"holdout pair {part!r} must be 'COLOUR SHAPE', e.g. 'red triangle'")
        pairs.append((words[0], words[1]))
    return pairs


def cli_main(args) -> int:
    from .manifest import read_manifest

    manifest = make_dataset(args.out_dir, args.n, size=args.size, frames=args.frames, fps=args.fps,
                            seed=args.seed, image_fraction=args.image_fraction,
                            static_fraction=args.static_fraction,
                            two_object_fraction=args.two_object_fraction,
                            holdout_pairs=parse_pairs(args.holdout),
                            speed_caption_prob=args.speed_caption_prob, progress=not args.no_progress)
    print(f"wrote {manifest}: {summarize(read_manifest(manifest))}")
    return 0
