"""The demo's synthetic data: coloured shapes at random places and sizes on a plain background, with captions.

Every image shows one shape (circle, square, triangle, star or cross) in one of six colours, small or large, at a
random place on a plain light-grey background, drawn at four times the size and scaled down (anti-aliased).
Its caption says what it shows, with or without the size, in one of four phrasings (:data:`CAPTIONS`): "a photo of
a small red circle", "a red circle"... Five colour-shape combinations, one per shape and colour, are never shown in
training (:data:`UNSEEN`): each of their colours and shapes is, in other combinations.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw

__all__ = [
    "BACKGROUND",
    "CAPTIONS",
    "COLOURS",
    "SHAPES",
    "SIZES",
    "UNSEEN",
    "Shape",
    "combinations",
    "draw",
    "generate",
]

#: Colour names and their RGB values (each image varies them slightly).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 230),
    "yellow": (235, 205, 30),
    "purple": (140, 60, 190),
    "orange": (245, 140, 30),
}
SHAPES = ("circle", "square", "triangle", "star", "cross")
SIZES = ("small", "large")
#: Colour-shape combinations left out of training.
UNSEEN: frozenset[tuple[str, str]] = frozenset(
    {("red", "star"), ("green", "circle"), ("blue", "triangle"), ("yellow", "cross"), ("purple", "square")}
)
#: The phrasings of training captions, one drawn at random per image.
CAPTIONS = (
    "a photo of a {size} {colour} {shape}",
    "a {size} {colour} {shape}",
    "a photo of a {colour} {shape}",
    "a {colour} {shape}",
)
BACKGROUND = (235, 235, 235)
_RADIUS = {"small": (0.2, 0.28), "large": (0.34, 0.45)}  # of the image side
_SUPERSAMPLE = 4


@dataclass(frozen=True)
class Shape:
    """What one image shows."""

    colour: str
    shape: str
    size: str

    @property
    def classname(self) -> str:
        """The zero-shot class: colour and shape ("red circle")."""
        return f"{self.colour} {self.shape}"

    @property
    def caption(self) -> str:
        """The full description ("a photo of a small red circle")."""
        return CAPTIONS[0].format(size=self.size, colour=self.colour, shape=self.shape)

    def random_caption(self, rng: random.Random) -> str:
        """A caption in one of the :data:`CAPTIONS` phrasings, drawn with ``rng``."""
        return rng.choice(CAPTIONS).format(size=self.size, colour=self.colour, shape=self.shape)


def combinations(seen: bool) -> list[tuple[str, str]]:
    """The colour-shape combinations shown in training (``seen``) or left out of it."""
    return [(c, s) for c in COLOURS for s in SHAPES if ((c, s) in UNSEEN) != seen]


def generate(
    count: int, combos: Sequence[tuple[str, str]], image_size: int, rng: random.Random
) -> list[tuple[Shape, Image.Image]]:
    """``count`` images of random combinations from ``combos``, random sizes and places."""
    out = []
    for _ in range(count):
        colour, shape = rng.choice(combos)
        what = Shape(colour, shape, rng.choice(SIZES))
        out.append((what, draw(what, image_size, rng)))
    return out


def draw(what: Shape, image_size: int, rng: random.Random) -> Image.Image:
    """An ``image_size`` square RGB image of ``what`` at a random place (and a randomly varied radius and hue)."""
    side = image_size * _SUPERSAMPLE
    image = Image.new("RGB", (side, side), BACKGROUND)
    pen = ImageDraw.Draw(image)
    low, high = _RADIUS[what.size]
    r = rng.uniform(low, high) * side
    x, y = rng.uniform(r, side - r), rng.uniform(r, side - r)
    fill = tuple(min(255, max(0, value + rng.randint(-15, 15))) for value in COLOURS[what.colour])
    if what.shape == "circle":
        pen.ellipse([x - r, y - r, x + r, y + r], fill=fill)
    elif what.shape == "square":
        half = 0.85 * r
        pen.rectangle([x - half, y - half, x + half, y + half], fill=fill)
    elif what.shape == "triangle":
        pen.regular_polygon((x, y, r), 3, rotation=rng.uniform(-10, 10), fill=fill)
    elif what.shape == "star":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else 0.42 * r
            points.append((x + radius * math.sin(math.pi * k / 5), y - radius * math.cos(math.pi * k / 5)))
        pen.polygon(points, fill=fill)
    elif what.shape == "cross":
        arm = 0.33 * r
        pen.rectangle([x - r, y - arm, x + r, y + arm], fill=fill)
        pen.rectangle([x - arm, y - r, x + arm, y + r], fill=fill)
    else:
        raise ValueError(f"unknown shape {what.shape!r}")
    return image.resize((image_size, image_size), Image.Resampling.LANCZOS)
