"""``create_model``: a card (and optionally weights) in, a ready ``ClipModel`` out."""

from __future__ import annotations

import os
from pathlib import Path

from clip_core import registry
from clip_core.catalog import CardSpec, get_card
from clip_core.checkpoints import load_checkpoint
from clip_core.errors import PretrainedError
from clip_core.model import ClipModel

__all__ = ["create_model"]


def create_model(card: CardSpec, pretrained: str | os.PathLike[str] | None = None) -> ClipModel:
    """Build the model a card describes.

    ``pretrained`` is None (random initialisation, train mode), a path to a checkpoint (loaded strictly, eval
    mode), or a pretrained tag registered for the card (e.g. ``"openai"``).
    """
    model_card = get_card(card)
    if pretrained is None:
        return ClipModel(model_card)
    if isinstance(pretrained, os.PathLike) or Path(pretrained).exists():
        return load_checkpoint(pretrained, card=model_card)
    weights = registry.pretrained_weights(model_card.name, pretrained)
    where = weights.url or f"{weights.hf_hub_id}/{weights.filename or ''}"
    raise PretrainedError(
        f"pretrained weights {model_card.name}:{pretrained} live at {where}, and this clip-core cannot download "
        "them; download the file yourself and pass its path as pretrained="
    )
