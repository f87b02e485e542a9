"""``--plots DIR``: a confusion matrix (classification) and recall@k curves (retrieval) as PNGs, with Pillow.

Drawn with the demo's picture helpers (:mod:`clip_core.demo.pictures`: its fonts, colour map and ticks).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from clip_core.demo.pictures import _colour, _font, _ticks
from clip_core.eval.result import EvalResult

__all__ = ["draw_confusion_matrix", "draw_recall_curves", "write_plots"]

_INK = (40, 40, 40)
_GRID = (225, 225, 225)
_LINES = {"image_retrieval": (25, 90, 170), "text_retrieval": (214, 96, 77)}
_MAX_LABELLED = 60


def write_plots(result: EvalResult, folder: str | os.PathLike[str]) -> list[Path]:
    """The pictures of ``result`` in ``folder`` (created): ``confusion_matrix.png`` or ``recall_at_k.png``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    title = f"{result.model} on {result.dataset}"
    if result.confusion:
        return [draw_confusion_matrix(result.confusion, result.classnames, out / "confusion_matrix.png", title)]
    if result.recall_curves:
        return [draw_recall_curves(result.recall_curves, out / "recall_at_k.png", title)]
    return []


def draw_confusion_matrix(counts: Sequence[Sequence[int]], classnames: Sequence[str], path: Path, title: str) -> Path:
    """A PNG of ``counts`` (row: true class, column: predicted), each row coloured by its share of the row's images."""
    n = len(counts)
    cell = max(6, min(40, 900 // max(n, 1)))
    labelled = n <= _MAX_LABELLED
    small = _font(12)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = (max((int(probe.textlength(c, font=small)) for c in classnames), default=0) + 16) if labelled else 20
    left, top = label_w + 30, 70
    width, height = left + n * cell + 20, top + n * cell + 40
    canvas = Image.new("RGB", (max(width, 420), height), "white")
    pen = ImageDraw.Draw(canvas)
    pen.text((10, 10), f"confusion matrix: {title}", fill=_INK, font=_font(16))
    pen.text((left, 40), "predicted class (columns)", fill=_INK, font=small)
    pen.text((8, top + n * cell / 2), "true", fill=_INK, font=small, anchor="lm")
    for i, row in enumerate(counts):
        total = max(sum(row), 1)
        y = top + i * cell
        if labelled:
            pen.text((left - 6, y + cell / 2), classnames[i], fill=_INK, font=small, anchor="rm")
        for j, count in enumerate(row):
            x = left + j * cell
            share = count / total
            pen.rectangle([x, y, x + cell - 1, y + cell - 1], fill=_colour(share) if count else (245, 245, 245))
            if labelled and cell >= 22 and count:
                ink = (255, 255, 255) if share < 0.6 else _INK
                pen.text((x + cell / 2, y + cell / 2), str(count), fill=ink, font=small, anchor="mm")
    canvas.save(path)
    return path


def draw_recall_curves(curves: Mapping[str, Sequence[float]], path: Path, title: str) -> Path:
    """A PNG of recall@k against k for image retrieval (text → image) and text retrieval (image → text)."""
    width, height = 900, 500
    left, right, top, bottom = 80, 30, 50, 60
    canvas = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(canvas)
    font, small = _font(18), _font(13)
    pen.text((left, 15), f"recall@k: {title}", fill=_INK, font=font)
    longest = max((len(values) for values in curves.values()), default=1)

    def x_of(k: float) -> float:
        return left + (k - 1) / max(longest - 1, 1) * (width - left - right)

    def y_of(v: float) -> float:
        return height - bottom - v * (height - top - bottom)

    for value in _ticks(0.0, 1.0):
        pen.line([left, y_of(value), width - right, y_of(value)], fill=_GRID)
        pen.text((left - 8, y_of(value)), f"{value:.0%}", fill=_INK, font=small, anchor="rm")
    for k in _ticks(1, longest):
        if k >= 1:
            pen.text((x_of(k), height - bottom + 8), f"{k:g}", fill=_INK, font=small, anchor="mt")
    pen.text(((left + width - right) / 2, height - 22), "k", fill=_INK, font=small, anchor="mm")
    for number, (name, values) in enumerate(curves.items()):
        colour = _LINES.get(name, _INK)
        points = [(x_of(k + 1), y_of(v)) for k, v in enumerate(values)]
        if len(points) > 1:
            pen.line(points, fill=colour, width=3)
        for x, y in points:
            pen.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        pen.text(
            (width - right - 10, top + 10 + 20 * number), name.replace("_", " "), fill=colour, font=small, anchor="ra"
        )
    canvas.save(path)
    return path
