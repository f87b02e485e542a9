"""The demo's pictures, drawn with Pillow: the training loss curve and an image-text similarity matrix."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

__all__ = ["draw_loss_curve", "draw_similarity_matrix"]

_INK = (40, 40, 40)
_GRID = (225, 225, 225)
_RAW = (170, 200, 235)
_SMOOTH = (25, 90, 170)
#: A perceptually ordered colour map (viridis at five stops), interpolated linearly.
_STOPS = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _colour(value: float) -> tuple[int, int, int]:
    """``value`` in [0, 1] on the colour map."""
    position = min(max(value, 0.0), 1.0) * (len(_STOPS) - 1)
    low = min(int(position), len(_STOPS) - 2)
    t = position - low
    a, b = _STOPS[low], _STOPS[low + 1]
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    span = max(high - low, 1e-9)
    raw = span / count
    step = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * step:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def draw_loss_curve(losses: Sequence[float], path: Path, title: str = "training loss") -> Path:
    """A PNG of the loss of each update (light) and its moving average (dark), with labelled axes."""
    width, height = 900, 500
    left, right, top, bottom = 80, 30, 50, 60
    image = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(image)
    font, small = _font(18), _font(13)
    pen.text((left, 15), title, fill=_INK, font=font)
    values = list(losses) or [0.0]
    low, high = min(values), max(values)
    if high - low < 1e-6:
        low, high = low - 0.5, high + 0.5
    plot_w, plot_h = width - left - right, height - top - bottom

    def x_of(i: float) -> float:
        return left + plot_w * (i / max(len(values) - 1, 1))

    def y_of(v: float) -> float:
        return top + plot_h * (1 - (v - low) / (high - low))

    for tick in _ticks(low, high):
        y = y_of(tick)
        pen.line([(left, y), (width - right, y)], fill=_GRID)
        pen.text((left - 8, y), f"{tick:g}", fill=_INK, font=small, anchor="rm")
    for tick in _ticks(1, max(len(values), 2)):
        x = x_of(tick - 1)
        pen.line([(x, top + plot_h), (x, top + plot_h + 5)], fill=_INK)
        pen.text((x, top + plot_h + 8), f"{int(tick)}", fill=_INK, font=small, anchor="mt")
    pen.rectangle([left, top, width - right, top + plot_h], outline=_INK)
    if len(values) > 1:
        pen.line([(x_of(i), y_of(v)) for i, v in enumerate(values)], fill=_RAW, width=1)
        window = max(len(values) // 50, 1)
        smooth, total = [], 0.0
        for i, value in enumerate(values):
            total += value - (values[i - window] if i >= window else 0.0)
            smooth.append(total / min(i + 1, window))
        pen.line([(x_of(i), y_of(v)) for i, v in enumerate(smooth)], fill=_SMOOTH, width=2)
    pen.text((left + plot_w / 2, height - 22), "update", fill=_INK, font=small, anchor="mm")
    pen.text((15, top + plot_h / 2), "loss", fill=_INK, font=small, anchor="lm")
    image.save(path)
    return path


def draw_similarity_matrix(
    images: Sequence[Image.Image],
    captions: Sequence[str],
    similarity: Sequence[Sequence[float]],
    path: Path,
    title: str = "cosine similarity: images (columns) x captions (rows)",
) -> Path:
    """A PNG of ``similarity[i][j]`` between caption ``i`` (rows, labelled) and image ``j`` (columns, shown).

    Cells are coloured from the smallest to the largest value and print it; each row's best image is outlined.
    """
    rows, columns = len(captions), len(images)
    cell = 56
    font, small = _font(16), _font(12)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = max((int(probe.textlength(c, font=small)) for c in captions), default=0) + 20
    left, top = label_w, 50 + cell + 10
    width, height = left + columns * cell + 20, top + rows * cell + 20
    canvas = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(canvas)
    pen.text((10, 12), title, fill=_INK, font=font)
    for j, image in enumerate(images):
        thumb = image.convert("RGB").resize((cell - 6, cell - 6), Image.Resampling.NEAREST)
        canvas.paste(thumb, (left + j * cell + 3, 50))
    values = [float(v) for row in similarity for v in row]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    span = max(high - low, 1e-9)
    for i, caption in enumerate(captions):
        y = top + i * cell
        pen.text((label_w - 10, y + cell / 2), caption, fill=_INK, font=small, anchor="rm")
        row = [float(v) for v in similarity[i]]
        best = max(range(columns), key=row.__getitem__) if row else -1
        for j, value in enumerate(row):
            x = left + j * cell
            fill = _colour((value - low) / span)
            pen.rectangle([x, y, x + cell - 1, y + cell - 1], fill=fill)
            text = (255, 255, 255) if (value - low) / span < 0.6 else _INK
            pen.text((x + cell / 2, y + cell / 2), f"{value:.2f}", fill=text, font=small, anchor="mm")
            if j == best:
                pen.rectangle([x + 1, y + 1, x + cell - 2, y + cell - 2], outline=(255, 255, 255), width=2)
    canvas.save(path)
    return path
