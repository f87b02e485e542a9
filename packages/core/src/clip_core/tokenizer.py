"""Tokenizers per card: the card's ``tokenizer.kind`` selects a registered kind."""

from __future__ import annotations

from clip_core import registry
from clip_core.cards import ModelCard
from clip_core.catalog import CardSpec, get_card
from clip_core.errors import PluginError
from clip_core.protocols import Tokenizer

__all__ = ["get_tokenizer"]


def get_tokenizer(card: CardSpec | ModelCard) -> Tokenizer:
    """The tokenizer the card prescribes, producing ids ``[B, card.tokenizer.context_length]``."""
    config = get_card(card).tokenizer
    spec = registry.tokenizer_kind(config.kind)
    tokenizer = spec.build(config)
    if getattr(tokenizer, "context_length", None) != config.context_length:
        raise PluginError(
            f"tokenizer kind {spec.kind!r} (plugin {spec.plugin!r}) built a tokenizer with context_length "
            f"{getattr(tokenizer, 'context_length', None)!r}, not {config.context_length}"
        )
    return tokenizer
