"""The metrics, with CLIP_benchmark's names and formulas.

- Classification: ``acc1``, ``acc5`` (share of images whose class is among the ``k`` highest logits, ties broken
  as ``torch.topk`` breaks them; ``acc5`` is NaN for fewer than 5 classes) and ``mean_per_class_recall`` (balanced
  accuracy: the mean over the classes present of the share of their images predicted as them).
- Retrieval: ``image_retrieval_recall@k`` (share of texts whose image is among their ``k`` most similar images)
  and ``text_retrieval_recall@k`` (share of images with any of their captions among their ``k`` most similar
  texts).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from clip_core.errors import InputError

__all__ = ["classification_metrics", "confusion_matrix", "retrieval_metrics", "topk_accuracy"]


def topk_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int) -> float:
    """Share of rows of ``logits`` ``[N, C]`` whose target is among their ``k`` largest entries."""
    top = logits.topk(k, dim=1, largest=True, sorted=True).indices
    return (top == targets.view(-1, 1)).any(dim=1).float().sum().item() / len(targets)


def mean_per_class_recall(predicted: torch.Tensor, targets: torch.Tensor) -> float:
    """Balanced accuracy: the mean over the classes in ``targets`` of the share of their rows predicted right."""
    recalls = []
    for c in torch.unique(targets).tolist():
        mine = predicted[targets == c]
        recalls.append(int((mine == c).sum()) / len(mine))
    return float(torch.tensor(recalls, dtype=torch.float64).mean())


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor, prefix: str = "") -> dict[str, float]:
    """``acc1``, ``acc5`` and ``mean_per_class_recall`` of ``logits`` ``[N, C]`` for class indices ``targets``."""
    classes = logits.shape[1]
    return {
        f"{prefix}acc1": topk_accuracy(logits, targets, 1),
        f"{prefix}acc5": topk_accuracy(logits, targets, 5) if classes >= 5 else float("nan"),
        f"{prefix}mean_per_class_recall": mean_per_class_recall(logits.argmax(dim=1), targets),
    }


def confusion_matrix(predicted: torch.Tensor, targets: torch.Tensor, classes: int) -> torch.Tensor:
    """``[classes, classes]`` counts: row = true class, column = predicted class."""
    flat = targets.long() * classes + predicted.long()
    return torch.bincount(flat, minlength=classes * classes).view(classes, classes)


def retrieval_metrics(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    text_image: Sequence[int],
    recall_k: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Recall@k both ways for normalised features; ``text_image[t]`` is the index of text ``t``'s image."""
    images, texts = len(image_features), len(text_features)
    for k in recall_k:
        if not 1 <= k <= min(images, texts):
            raise InputError(f"recall@{k} needs at least {k} images and texts; the data set has {images} and {texts}")
    scores = text_features @ image_features.T  # [texts, images]
    positives = torch.zeros(texts, images, dtype=torch.bool)
    positives[torch.arange(texts), torch.as_tensor(list(text_image), dtype=torch.long)] = True
    metrics: dict[str, float] = {}
    for k in recall_k:
        metrics[f"image_retrieval_recall@{k}"] = _hit_share(scores, positives, k)
        metrics[f"text_retrieval_recall@{k}"] = _hit_share(scores.T, positives.T, k)
    return metrics


def _hit_share(scores: torch.Tensor, positives: torch.Tensor, k: int, chunk: int = 1024) -> float:
    hits = []
    for start in range(0, len(scores), chunk):
        top = scores[start : start + chunk].topk(k, dim=1).indices
        hits.append(positives[start : start + chunk].gather(1, top).any(dim=1))
    return torch.cat(hits).float().mean().item()  # a float32 mean, as CLIP_benchmark reports it
