"""How the demo scores a model: zero-shot top-1 accuracy and text-to-image recall@1 on held-out shapes.

- **Zero-shot top-1**: the classes are the 30 colour-shape combinations ("red circle"), seen in training or not;
  each class's weights are :func:`clip_core.zero_shot_classifier` over the templates "a photo of a {}" and "a {}"
  (prompt ensembling). An image is classified by its most similar class; the score is the fraction classified as
  the colour and shape it shows (its size is not part of the class).
- **Text-to-image recall@1**: each distinct caption of a set ("a photo of a small red circle") is a query over
  the gallery of all held-out images (seen and unseen combinations together); it scores if its most similar
  image shows what it says (colour, shape and size; images showing the same thing are interchangeable).

Both are computed separately on held-out images of combinations seen in training and on images of the
combinations never seen in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from clip_core.demo.shapes import COLOURS, SHAPES, Shape
from clip_core.model import ClipModel
from clip_core.protocols import Tokenizer
from clip_core.zeroshot import zero_shot_classifier

__all__ = ["CLASSNAMES", "TEMPLATES", "Scores", "score"]

CLASSNAMES = [f"{colour} {shape}" for colour in COLOURS for shape in SHAPES]
TEMPLATES = ("a photo of a {}", "a {}")


@dataclass(frozen=True)
class Scores:
    """A model's scores on the seen-combination and unseen-combination held-out sets."""

    zero_shot_top1_seen: float
    zero_shot_top1_unseen: float
    recall_at_1_seen: float
    recall_at_1_unseen: float


def score(
    model: ClipModel,
    tokenizer: Tokenizer,
    seen: tuple[torch.Tensor, Sequence[Shape]],
    unseen: tuple[torch.Tensor, Sequence[Shape]],
    batch_size: int = 512,
) -> Scores:
    """Score ``model`` (in eval mode, without gradients) on the held-out ``(pixels, shapes)`` sets."""
    model.eval()
    with torch.no_grad():
        seen_images = _embed_images(model, seen[0], batch_size)
        unseen_images = _embed_images(model, unseen[0], batch_size)
        classifier = zero_shot_classifier(model, tokenizer, CLASSNAMES, TEMPLATES)
        gallery = torch.cat([seen_images, unseen_images])
        gallery_shapes = [*seen[1], *unseen[1]]
        return Scores(
            zero_shot_top1_seen=_top1(seen_images, seen[1], classifier),
            zero_shot_top1_unseen=_top1(unseen_images, unseen[1], classifier),
            recall_at_1_seen=_recall_at_1(model, tokenizer, seen[1], gallery, gallery_shapes),
            recall_at_1_unseen=_recall_at_1(model, tokenizer, unseen[1], gallery, gallery_shapes),
        )


def _embed_images(model: ClipModel, pixels: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([model.encode_image(chunk, normalize=True).float() for chunk in torch.split(pixels, batch_size)])


def _top1(images: torch.Tensor, shapes: Sequence[Shape], classifier: torch.Tensor) -> float:
    predicted: list[int] = (images @ classifier.T).argmax(dim=1).tolist()
    hits = sum(CLASSNAMES[p] == shape.classname for p, shape in zip(predicted, shapes, strict=True))
    return hits / len(shapes)


def _recall_at_1(
    model: ClipModel, tokenizer: Tokenizer, queries: Sequence[Shape], gallery: torch.Tensor, shown: Sequence[Shape]
) -> float:
    distinct = sorted(set(queries), key=lambda s: s.caption)
    texts = model.encode_text(tokenizer([s.caption for s in distinct]), normalize=True).float()
    best: list[int] = (texts @ gallery.T).argmax(dim=1).tolist()
    return sum(shown[b] == query for b, query in zip(best, distinct, strict=True)) / len(distinct)
