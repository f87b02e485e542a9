"""``create_model``: a card (and optionally weights) in, a ready ``ClipModel`` out."""

from __future__ import annotations

import os
from pathlib import Path

from clip_core import registry
from clip_core.cards import ModelCard
from clip_core.catalog import CardSpec, get_card
from clip_core.checkpoints import load_checkpoint
from clip_core.checkpoints.statedict import STATE_DICT_SUFFIXES
from clip_core.errors import PretrainedError
from clip_core.hub.cache import url_cache_path
from clip_core.hub.download import fetch_weights
from clip_core.hub.hfhub import is_hub_name
from clip_core.hub.pretrained import PretrainedWeights
from clip_core.model import ClipModel
from clip_core.sizing import check_size

__all__ = ["create_model", "pretrained_card"]


def create_model(card: CardSpec, pretrained: str | os.PathLike[str] | None = None) -> ClipModel:
    """Build the model a card describes.

    ``pretrained`` is None (random initialisation, train mode), a path to a checkpoint (loaded strictly, eval
    mode), or a pretrained tag registered for the card (e.g. ``"openai"``; ``clip pretrained list`` shows them):
    its file is taken from the cache or downloaded into it (see :mod:`clip_core.hub.download`), and loaded into the
    card the weights need (:func:`pretrained_card`: the card with the activation the weights were trained with,
    e.g. ``ViT-B-32`` with ``openai`` gives ``ViT-B-32-quickgelu``). Without a network, a tag whose file is not
    cached raises :class:`PretrainedError` within seconds, saying how to pass a copy of the file instead.

    ``card`` may also be a Hugging Face hub name, ``hf-hub:ORG/NAME[@REVISION]``: the model the repository holds
    (this SDK's, open_clip's or transformers' layout), loaded as :func:`~clip_core.load_checkpoint` loads it (eval
    mode, the card from the repository); ``pretrained`` may be one too, to load a repository into ``card``.

    Before anything is allocated, the model's size is estimated on the meta device: a card larger than the memory
    available, or with more parameters than ``CLIP_MAX_PARAMS``, raises :class:`CardError` naming its parameter
    count and the memory it needs (:func:`clip_core.sizing.check_size`).
    """
    if is_hub_name(card):
        if pretrained is not None:
            raise PretrainedError(f"{card}: a hub name brings its own weights; pretrained= goes with a card")
        return load_checkpoint(str(card))
    model_card = get_card(card)
    check_size(model_card)
    if pretrained is None:
        return ClipModel(model_card)
    if is_hub_name(pretrained):
        return load_checkpoint(pretrained, card=model_card)
    if isinstance(pretrained, os.PathLike) or Path(pretrained).exists() or _names_a_file(model_card, pretrained):
        return load_checkpoint(pretrained, card=model_card)
    weights = registry.pretrained_weights(model_card.name, pretrained)
    target = pretrained_card(model_card, weights)
    try:
        path = fetch_weights(weights)
    except PretrainedError as exc:
        raise PretrainedError(
            f"pretrained weights {model_card.name}:{pretrained}: {exc}. {_local_file_hint(model_card, weights, target)}"
        ) from None
    return load_checkpoint(path, card=target)


def pretrained_card(card: ModelCard, weights: PretrainedWeights) -> ModelCard:
    """The card ``weights`` must be loaded into: ``card`` with the activation the weights were trained with.

    ``card`` itself when the weights give no activation or the card already uses it; else the registered card of
    the same network with that activation when there is one (``ViT-B-32`` + quick_gelu is the registered
    ``ViT-B-32-quickgelu``), else ``card.with_activation(...)``, a derived card named for the change.
    """
    if weights.activation is None:
        return card
    derived = card.with_activation(weights.activation)
    if derived is card:
        return card
    if derived.name in registry.card_names():
        registered = get_card(derived.name)
        if _network(registered) == _network(derived):
            return registered
        return card.with_activation(weights.activation, name=f"{card.name}+{weights.activation}")
    return derived


def _network(card: ModelCard) -> dict[str, object]:
    """What decides a card's outputs: everything but its name, aliases and provenance."""
    return card.model_dump(exclude={"name", "aliases", "provenance"})


def _names_a_file(card: ModelCard, pretrained: str) -> bool:
    """A string that is no registered tag but looks like a path (so a missing file is reported as one)."""
    looks_like_path = os.sep in pretrained or "/" in pretrained or pretrained.endswith(STATE_DICT_SUFFIXES)
    return looks_like_path and pretrained not in registry.pretrained_tags(card.name)


def _local_file_hint(card: ModelCard, weights: PretrainedWeights, target: ModelCard) -> str:
    """How to use a copy of the weights' file obtained some other way."""
    name = (weights.url or weights.filename or "open_clip_pytorch_model.bin").rsplit("/", 1)[-1]
    path = f"/path/to/{name}"
    if target is card or target.name in registry.card_names():
        call = f"clip_core.create_model({target.name!r}, pretrained={path!r})"
    else:
        call = (
            f"clip_core.create_model(clip_core.get_card({card.name!r}).with_activation({weights.activation!r}), "
            f"pretrained={path!r})"
        )
    hint = f"With a copy of the file from elsewhere, load it with {call}"
    if weights.url is not None:
        hint += f", or put it at {url_cache_path(weights.url)} and ask for the tag again"
    return hint
