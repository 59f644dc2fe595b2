"""The synthetic dataset's vocabulary and caption grammar, shared by the generator (synthetic.py),
the attribute checks (eval/attributes.py) and the demo's prompts.

Caption grammar (lower case, one object):
    "a {colour} {shape} moving {direction phrase} {speed word}"   e.g. "a red circle moving to the right quickly"
    ("an" before a vowel: "an orange square ...")
    "a {colour} {shape} moving {direction phrase}"                (no speed word: speed unspecified)
    "a {colour} {shape} staying still"                            (a static clip or a still image)
optionally followed by " on a {background} background".
"""
from __future__ import annotations

import re

# Object colours: saturated, far apart in RGB and from every background colour.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 190, 50),
    "blue": (40, 70, 230),
    "yellow": (240, 220, 30),
    "purple": (160, 40, 200),
    "orange": (250, 140, 20),
}
# Backgrounds: dark or grey, low saturation, so an object is segmented by colour distance.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (10, 10, 10),
    "gray": (110, 110, 110),
    "white": (235, 235, 235),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
# Unit displacement in image coordinates (x to the right, y downwards).
DIRECTIONS: dict[str, tuple[int, int]] = {"right": (1, 0), "left": (-1, 0), "up": (0, -1), "down": (0, 1)}
DIRECTION_PHRASES: dict[str, str] = {"right": "to the right", "left": "to the left", "up": "up", "down": "down"}
# Speed words -> displacement in pixels per frame on a 64-pixel frame (scale with frame size / 64).
SPEEDS: dict[str, float] = {"slowly": 0.5, "steadily": 1.0, "quickly": 2.0}
DEFAULT_SPEED = "steadily"  # the reference speed of a prompt that names none (e.g. ground-truth renders)


def caption(color: str, shape: str, direction: str | None, speed: str | None = None,
            background: str | None = None) -> str:
    """Build a caption; direction None means a static object."""
    if color not in COLORS or shape not in SHAPES:
        raise ValueError(f"unknown colour {color!r} or shape {shape!r}; colours {list(COLORS)}, shapes {list(SHAPES)}")
    article = "an" if color[0] in "aeiou" else "a"
    if direction is None:
        text = f"{article} {color} {shape} staying still"
    else:
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}; accepted: {list(DIRECTIONS)}")
        text = f"{article} {color} {shape} moving {DIRECTION_PHRASES[direction]}"
        if speed is not None:
            if speed not in SPEEDS:
                raise ValueError(f"unknown speed {speed!r}; accepted: {list(SPEEDS)}")
            text += f" {speed}"
    if background is not None:
        text += f" on a {background} background"
    return text


_PATTERN = re.compile(
    r"\ban? (?P<color>\w+) (?P<shape>\w+) (?:(?P<still>staying still)|moving (?P<dir>to the right|to the left|up|down)"
    r"(?: (?P<speed>slowly|steadily|quickly))?)(?: on a (?P<bg>\w+) background)?"
)


def parse_caption(text: str) -> dict | None:
    """Inverse of `caption`: {color, shape, direction (None if still), speed, background} or None
    when the text is not in the vocabulary."""
    m = _PATTERN.search(text.lower())
    if not m or m["color"] not in COLORS or m["shape"] not in SHAPES:
        return None
    direction = None
    if not m["still"]:
        direction = {v: k for k, v in DIRECTION_PHRASES.items()}[m["dir"]]
    return {
        "color": m["color"],
        "shape": m["shape"],
        "direction": direction,
        "speed": None if direction is None else m["speed"],  # None: the prompt names no speed
        "background": m["bg"],
    }
