"""The linear probe: logistic regression on frozen image features, trained as CLIP_benchmark trains it.

A ``torch.nn.Linear`` from the features to the classes (multinomial logistic regression) is trained with
cross-entropy and AdamW (``lr``, ``weight_decay``) for ``epochs`` passes over shuffled batches of ``batch_size``,
the learning rate following a cosine schedule without warm-up, from ``torch.manual_seed(seed)``. With a
validation set, the weight decay is chosen as in the CLIP paper (appendix A.3) and CLIP_benchmark: 7 values
spaced evenly on a log scale from 1e-6 to 1e2 are tried, then a binary search on a 97-point grid around the best;
the final probe is then trained on train + validation. Without one, the weight decay is 0. The hyper-parameters
are returned with the metrics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from clip_core.errors import InputError
from clip_core.eval.metrics import classification_metrics

__all__ = ["ProbeSettings", "linear_probe", "train_probe"]


@dataclass(frozen=True)
class ProbeSettings:
    """How the probe is trained (CLIP_benchmark's defaults)."""

    lr: float = 0.1
    epochs: int = 10
    batch_size: int = 64
    seed: int = 0


def train_probe(
    features: torch.Tensor, labels: torch.Tensor, classes: int, weight_decay: float, settings: ProbeSettings
) -> torch.nn.Linear:
    """A linear classifier of ``features`` ``[N, D]`` trained on ``labels`` (see the module's documentation)."""
    torch.manual_seed(settings.seed)
    probe = torch.nn.Linear(features.shape[1], classes)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=settings.lr, weight_decay=weight_decay)
    criterion = torch.nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(features, labels), batch_size=settings.batch_size, shuffle=True)
    total = settings.epochs * len(loader)
    for epoch in range(settings.epochs):
        for i, (x, y) in enumerate(loader):
            step = i + epoch * len(loader)
            for group in optimizer.param_groups:
                group["lr"] = 0.5 * (1 + np.cos(np.pi * step / total)) * settings.lr
            optimizer.zero_grad()
            loss = criterion(probe(x), y)
            loss.backward()
            optimizer.step()
    return probe


def _accuracy(probe: torch.nn.Linear, features: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        predicted = probe(features).argmax(dim=1)
    return int((predicted == labels).sum()) / len(labels)


def _best_weight_decay(
    train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor], classes: int, s: ProbeSettings
) -> float:
    grid: list[float] = np.logspace(-6, 2, num=97).tolist()
    first = [i for i, value in enumerate(grid) if value in np.logspace(-6, 2, num=7).tolist()]
    scores: dict[int, float] = {}

    def peak(candidates: list[int], best: int) -> int:
        top, top_score = best, 0.0
        for index in candidates:
            if index not in scores:
                scores[index] = _accuracy(train_probe(*train, classes, grid[index], s), *val)
            if top_score < scores[index]:
                top, top_score = index, scores[index]
        return top

    best = peak(first, 0)
    span = 8
    while span > 0:
        best = peak([max(best - span, 0), best, min(best + span, 96)], 0)
        span //= 2
    return grid[best]


def linear_probe(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    settings: ProbeSettings | None = None,
) -> dict[str, float]:
    """``lp_acc1``, ``lp_acc5``, ``lp_mean_per_class_recall`` and the hyper-parameters of a probe trained on
    ``train`` ``(features, labels)`` (weight decay chosen on ``val`` if given) and scored on ``test``."""
    s = settings or ProbeSettings()
    if len(train[0]) == 0 or len(test[0]) == 0:
        raise InputError("the linear probe needs images in both the train and the test split")
    classes = int(train[1].max()) + 1
    if int(test[1].max()) >= classes:
        raise InputError(f"the test split has class {int(test[1].max())}, which the train split never shows")
    weight_decay = 0.0
    fit = train
    if val is not None:
        weight_decay = _best_weight_decay(train, val, classes, s)
        fit = (torch.cat([train[0], val[0]]), torch.cat([train[1], val[1]]))
    probe = train_probe(*fit, classes, weight_decay, s)
    with torch.no_grad():
        logits = probe(test[0])
    metrics = classification_metrics(logits, test[1], prefix="lp_")
    if int(test[1].max()) < 5:
        metrics["lp_acc5"] = float("nan")  # CLIP_benchmark's rule for the probe: by the largest test label
    return {**metrics, "weight_decay": weight_decay, **{k: float(v) for k, v in asdict(s).items()}}
