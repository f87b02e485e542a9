"""What an evaluation returns: :class:`EvalResult`, its JSON (CLIP_benchmark's shape plus ours) and its table."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clip_core.durable import write_atomically
from clip_core.embedding.job import Skipped

__all__ = ["EvalResult"]


@dataclass(frozen=True)
class EvalResult:
    """The metrics of one model on one data set for one task, and how they were obtained."""

    #: The data set's name, the task, the card's name and where the weights came from (CLIP_benchmark's fields).
    dataset: str
    task: str
    model: str
    pretrained: str | None
    #: CLIP_benchmark's metric names (``acc1``, ``image_retrieval_recall@5``, ``lp_acc1``...) to values; NaN where
    #: a metric is undefined (``acc5`` with fewer than 5 classes).
    metrics: dict[str, float]
    #: Images and texts evaluated (after skips), the images that could not be read, and the weights' fingerprint.
    images: int
    texts: int
    skipped: list[Skipped]
    fingerprint: str
    #: Wall time of the whole evaluation, and images embedded per second.
    seconds: float
    images_per_second: float
    #: Classification: the class names and the confusion matrix (row: true class, column: predicted class).
    classnames: list[str] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)
    #: Retrieval: recall@k for k = 1, 2, ... (``image_retrieval`` and ``text_retrieval``), for the plot.
    recall_curves: dict[str, list[float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """CLIP_benchmark's ``{"dataset", "model", "pretrained", "task", "metrics"}`` plus this SDK's extras.

        NaN metrics are written as ``null`` (JSON has no NaN).
        """
        return {
            "dataset": self.dataset,
            "model": self.model,
            "pretrained": self.pretrained,
            "task": self.task,
            "metrics": {name: None if math.isnan(value) else value for name, value in self.metrics.items()},
            "images": self.images,
            "texts": self.texts,
            "skipped": [{"source": s.source, "error": s.error} for s in self.skipped],
            "images_per_second": round(self.images_per_second, 2),
            "seconds": round(self.seconds, 3),
            "card": self.model,
            "fingerprint": self.fingerprint,
        }

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_json` to ``path`` (atomically); returns the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = (json.dumps(self.to_json(), indent=2) + "\n").encode("utf-8")
        write_atomically(target, lambda file: file.write(text))
        return target

    def table(self) -> str:
        """The metrics as an aligned two-column table, percentages for shares."""
        rows = [(name, _show(name, value)) for name, value in self.metrics.items()]
        width = max(len(name) for name, _ in rows)
        head = f"{self.task} of {self.model} on {self.dataset}: {self.images} images"
        if self.texts:
            head += f", {self.texts} texts"
        lines = [head, *(f"  {name:<{width}}  {value:>8}" for name, value in rows)]
        lines.append(f"  {self.images_per_second:.1f} images/s, {self.seconds:.1f} s in all")
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} unreadable images (listed in the JSON output)")
        return "\n".join(lines)


def _show(name: str, value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if "acc" in name or "recall" in name:
        return f"{100 * value:.2f}%"
    return f"{value:g}"
