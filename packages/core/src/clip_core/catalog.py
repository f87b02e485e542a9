"""Finding cards: by registered name or alias, from a dict, or from a card file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from clip_core import registry
from clip_core.cardfiles import CARD_SUFFIXES, read_card_file
from clip_core.cards import ModelCard, format_validation_error
from clip_core.errors import CardError

__all__ = ["CardSpec", "get_card", "list_cards"]

#: Everything :func:`get_card` accepts.
CardSpec = str | os.PathLike[str] | Mapping[str, Any] | ModelCard


def list_cards() -> list[str]:
    """Names of every card the installed plugins register, sorted."""
    return registry.card_names()


def get_card(card: CardSpec) -> ModelCard:
    """Return a validated :class:`ModelCard`.

    ``card`` is a registered name or alias (``"ViT-B-32"``, ``"ViT-B/32"``), a path to a JSON / YAML / TOML card
    file, a dict, or a ``ModelCard`` (returned as is). Problems raise :class:`CardError` naming the field path.
    """
    if isinstance(card, ModelCard):
        return card
    if isinstance(card, Mapping):
        return validate_card(card, "the given dict")
    if isinstance(card, str) and not _looks_like_path(card):
        entry = registry.card_entry(card)
        if isinstance(entry.data, ModelCard):
            return entry.data
        return validate_card(entry.data, entry.origin)
    if isinstance(card, (str, os.PathLike)):
        return validate_card(read_card_file(card), str(card))
    raise CardError(f"a card is a name, a file path, a dict or a ModelCard, not {type(card).__name__}")


def validate_card(data: Mapping[str, Any], origin: str) -> ModelCard:
    """Validate card data read from ``origin``; :class:`CardError` listing each field path that is wrong."""
    try:
        return ModelCard.model_validate(data)
    except ValidationError as exc:
        name = data.get("name")
        label = f"card {name!r}" if isinstance(name, str) else "card"
        raise CardError(f"invalid {label} ({origin}): {format_validation_error(exc)}") from None


def _looks_like_path(text: str) -> bool:
    return Path(text).suffix.lower() in CARD_SUFFIXES or (os.sep in text and Path(text).exists())
