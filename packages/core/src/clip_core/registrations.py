"""What plugins register, and the ``register`` callbacks that take it.

The entries (:class:`TowerKind`, :class:`TokenizerKind`, :class:`CardEntry`, :class:`PretrainedEntry`,
:class:`LossEntry`) and :class:`PluginInfo`; the callbacks' protocols (``RegisterTower`` ...), which
``docs/plugins.md`` documents; and the callbacks themselves: each checks what a plugin gives it (kind names,
configuration classes, layouts, names another plugin holds) and raises a :class:`PluginError` naming the plugin.
:mod:`clip_core.registry` runs the hooks with them and owns the resulting :class:`Tables`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from pydantic import ValidationError
from torch import nn

from clip_core.cardfiles import read_card_file
from clip_core.cards import ModelCard, TokenizerConfig, TowerConfig, format_validation_error
from clip_core.errors import PluginError
from clip_core.hub.pretrained import PretrainedWeights
from clip_core.protocols import Tokenizer

__all__ = [
    "DISABLE_ENV",
    "REGISTRARS",
    "CardEntry",
    "LossEntry",
    "Modality",
    "PluginInfo",
    "PretrainedEntry",
    "RegisterCard",
    "RegisterLoss",
    "RegisterPretrained",
    "RegisterTokenizer",
    "RegisterTower",
    "Tables",
    "TokenizerExporter",
    "TokenizerKind",
    "TowerBuilder",
    "TowerKind",
    "WeightConverter",
    "WeightExporter",
    "card_registrar",
    "loss_registrar",
    "pretrained_registrar",
    "tokenizer_registrar",
    "tower_registrar",
]

#: Entry-point names to block, comma-separated; the fix the registry's messages suggest.
DISABLE_ENV = "CLIP_DISABLED_PLUGINS"

Modality = Literal["image", "text"]
TowerBuilder = Callable[[Any, int], nn.Module]
WeightConverter = Callable[[Mapping[str, torch.Tensor], Any], dict[str, torch.Tensor]]
#: ``exporter(tower_state, config) -> dict[str, Tensor]``: a tower's own state dict in a foreign layout (whole-model
#: keys, e.g. ``visual.conv1.weight``); the inverse of the converter registered for the same layout.
WeightExporter = Callable[[Mapping[str, torch.Tensor], Any], dict[str, torch.Tensor]]
#: ``exporter(config, directory) -> dict[str, Any]``: writes a tokenizer's files for a foreign layout into
#: ``directory`` and returns the settings that layout's text configuration takes from the tokenizer.
TokenizerExporter = Callable[[TokenizerConfig, Path], dict[str, Any]]
_KIND_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")


@dataclass(frozen=True)
class TowerKind:
    """A registered tower kind: its config class, its builder, and its foreign-weight converters (foreign layout to
    ours) and exporters (ours to a foreign layout), each keyed by layout (``"openai"``, ``"hf"``, ...)."""

    kind: str
    modality: Modality
    config: type[TowerConfig]
    build: TowerBuilder
    converters: Mapping[str, WeightConverter]
    plugin: str
    exporters: Mapping[str, WeightExporter] = field(default_factory=dict)


@dataclass(frozen=True)
class TokenizerKind:
    """A registered tokenizer kind: ``build(TokenizerConfig) -> Tokenizer``, and its exporters keyed by layout."""

    kind: str
    build: Callable[[TokenizerConfig], Tokenizer]
    plugin: str
    exporters: Mapping[str, TokenizerExporter] = field(default_factory=dict)


@dataclass(frozen=True)
class CardEntry:
    """A registered card, kept as raw data until it is asked for (it may use kinds of other plugins)."""

    name: str
    aliases: tuple[str, ...]
    data: Mapping[str, Any] | ModelCard
    origin: str
    plugin: str


@dataclass(frozen=True)
class PretrainedEntry:
    """Registered pretrained weights and the plugin that registered them."""

    weights: PretrainedWeights
    plugin: str


@dataclass(frozen=True)
class LossEntry:
    """A registered loss: ``loss(**options)`` returns an ``nn.Module``."""

    name: str
    loss: Callable[..., nn.Module]
    plugin: str


@dataclass
class PluginInfo:
    """What ``clip plugins`` shows: who a plugin is and what it registered."""

    name: str
    distribution: str | None
    version: str | None
    api_version: str
    towers: list[str] = field(default_factory=list)
    cards: list[str] = field(default_factory=list)
    tokenizers: list[str] = field(default_factory=list)
    pretrained: list[str] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)
    #: Why the plugin was left out (it registered nothing), or None for a working plugin.
    error: str | None = None


class RegisterTower(Protocol):
    """The ``register`` callback of ``clip_register_towers``."""

    def __call__(
        self,
        *,
        kind: str,
        modality: Modality,
        config: type[TowerConfig],
        build: TowerBuilder,
        converters: Mapping[str, WeightConverter] | None = None,
        exporters: Mapping[str, WeightExporter] | None = None,
    ) -> None: ...


class RegisterCard(Protocol):
    """The ``register`` callback of ``clip_register_cards``."""

    def __call__(self, card: str | os.PathLike[str] | Mapping[str, Any] | ModelCard | Any) -> None: ...


class RegisterTokenizer(Protocol):
    """The ``register`` callback of ``clip_register_tokenizers``."""

    def __call__(
        self,
        *,
        kind: str,
        build: Callable[[TokenizerConfig], Tokenizer],
        exporters: Mapping[str, TokenizerExporter] | None = None,
    ) -> None: ...


class RegisterPretrained(Protocol):
    """The ``register`` callback of ``clip_register_pretrained`` (fields of :class:`PretrainedWeights`)."""

    def __call__(self, *, card: str, tag: str, **fields: Any) -> None: ...


class RegisterLoss(Protocol):
    """The ``register`` callback of ``clip_register_losses``."""

    def __call__(self, *, name: str, loss: Callable[..., nn.Module]) -> None: ...


@dataclass
class Tables:
    """What the plugins registered, by name: built afresh from the hooks whenever the plugins change."""

    towers: dict[str, TowerKind] = field(default_factory=dict)
    tokenizers: dict[str, TokenizerKind] = field(default_factory=dict)
    cards: dict[str, CardEntry] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    pretrained: dict[tuple[str, str], PretrainedEntry] = field(default_factory=dict)
    losses: dict[str, LossEntry] = field(default_factory=dict)
    plugins: dict[str, PluginInfo] = field(default_factory=dict)


def tower_registrar(tables: Tables, plugin: str) -> RegisterTower:
    """The ``register`` of ``clip_register_towers`` for ``plugin``: checks a tower kind, adds it to ``tables``."""

    def register(
        *,
        kind: str,
        modality: Modality,
        config: type[TowerConfig],
        build: TowerBuilder,
        converters: Mapping[str, WeightConverter] | None = None,
        exporters: Mapping[str, WeightExporter] | None = None,
    ) -> None:
        where = f"plugin {plugin!r} registering tower kind {kind!r}"
        _check_kind_name(kind, where)
        if modality not in ("image", "text"):
            raise PluginError(f"{where}: modality must be 'image' or 'text', not {modality!r}")
        if not (isinstance(config, type) and issubclass(config, TowerConfig) and config is not TowerConfig):
            raise PluginError(f"{where}: config must be a subclass of clip_core.TowerConfig, not {config!r}")
        if config.model_fields["kind"].default != kind:
            raise PluginError(f"{where}: {config.__name__}.kind must default to {kind!r} (a Literal[{kind!r}])")
        if not callable(build):
            raise PluginError(f"{where}: build must be callable (config, embed_dim) -> nn.Module")
        converters, exporters = (
            _by_layout(converters, "converters", where),
            _by_layout(exporters, "exporters", where),
        )
        _no_duplicate(tables.towers, kind, plugin, "tower kind")
        tables.towers[kind] = TowerKind(kind, modality, config, build, converters, plugin, exporters)
        tables.plugins[plugin].towers.append(kind)

    return register


def tokenizer_registrar(tables: Tables, plugin: str) -> RegisterTokenizer:
    """The ``register`` of ``clip_register_tokenizers`` for ``plugin``: checks a tokenizer kind, adds it."""

    def register(
        *,
        kind: str,
        build: Callable[[TokenizerConfig], Tokenizer],
        exporters: Mapping[str, TokenizerExporter] | None = None,
    ) -> None:
        where = f"plugin {plugin!r} registering tokenizer kind {kind!r}"
        _check_kind_name(kind, where)
        if not callable(build):
            raise PluginError(f"{where}: build must be callable (TokenizerConfig) -> Tokenizer")
        checked = _by_layout(exporters, "exporters", where)
        _no_duplicate(tables.tokenizers, kind, plugin, "tokenizer kind")
        tables.tokenizers[kind] = TokenizerKind(kind, build, plugin, checked)
        tables.plugins[plugin].tokenizers.append(kind)

    return register


def card_registrar(tables: Tables, plugin: str) -> RegisterCard:
    """The ``register`` of ``clip_register_cards`` for ``plugin``: a card (kept raw until asked for) under its name
    and aliases, none of them taken."""

    def register(card: Any) -> None:
        data: Mapping[str, Any] | ModelCard
        if isinstance(card, ModelCard):
            data, origin, name, aliases = card, f"plugin {plugin!r}", card.name, tuple(card.aliases)
        else:
            if isinstance(card, Mapping):
                data, origin = card, f"plugin {plugin!r}"
            elif isinstance(card, (str, os.PathLike)) or hasattr(card, "read_text"):
                data, origin = read_card_file(card), f"{card} (plugin {plugin!r})"
            else:
                raise PluginError(f"plugin {plugin!r} registered a card of type {type(card).__name__}")
            raw_name, raw_aliases = data.get("name"), data.get("aliases", ())
            if not isinstance(raw_name, str) or not isinstance(raw_aliases, (list, tuple)):
                raise PluginError(f"card from {origin} needs a string `name` and a list of `aliases`")
            name, aliases = raw_name, tuple(str(a) for a in raw_aliases)
        for key in (name, *aliases):
            owner = tables.aliases.get(key) or (key if key in tables.cards else None)
            if owner is not None:
                raise PluginError(
                    f"card name or alias {key!r} from {origin} is already taken by card {owner!r} "
                    f"(plugin {tables.cards[owner].plugin!r})"
                )
        tables.cards[name] = CardEntry(name, aliases, data, origin, plugin)
        tables.aliases.update({alias: name for alias in aliases})
        tables.plugins[plugin].cards.append(name)

    return register


def pretrained_registrar(tables: Tables, plugin: str) -> RegisterPretrained:
    """The ``register`` of ``clip_register_pretrained`` for ``plugin``: validated pretrained weights of a card."""

    def register(*, card: str, tag: str, **fields: Any) -> None:
        try:
            weights = PretrainedWeights(card=card, tag=tag, **fields)
        except ValidationError as exc:
            raise PluginError(
                f"plugin {plugin!r} registered invalid pretrained weights {card}:{tag}: {format_validation_error(exc)}"
            ) from None
        if (card, tag) in tables.pretrained:
            raise PluginError(
                f"pretrained weights {card}:{tag} are registered by both {tables.pretrained[(card, tag)].plugin!r} "
                f"and {plugin!r}; disable one with {DISABLE_ENV}"
            )
        tables.pretrained[(card, tag)] = PretrainedEntry(weights, plugin)
        tables.plugins[plugin].pretrained.append(f"{card}:{tag}")

    return register


def loss_registrar(tables: Tables, plugin: str) -> RegisterLoss:
    """The ``register`` of ``clip_register_losses`` for ``plugin``: a loss factory under a free name."""

    def register(*, name: str, loss: Callable[..., nn.Module]) -> None:
        where = f"plugin {plugin!r} registering loss {name!r}"
        _check_kind_name(name, where)
        if not callable(loss):
            raise PluginError(f"{where}: loss must be callable (**options) -> nn.Module")
        _no_duplicate(tables.losses, name, plugin, "loss")
        tables.losses[name] = LossEntry(name, loss, plugin)
        tables.plugins[plugin].losses.append(name)

    return register


def _check_kind_name(kind: object, where: str) -> None:
    if not isinstance(kind, str) or not kind or not set(kind) <= _KIND_CHARS or not kind[0].isalnum():
        raise PluginError(f"{where}: names are lower-case letters, digits, '.', '_' and '-', got {kind!r}")


def _by_layout(functions: Mapping[str, Any] | None, what: str, where: str) -> dict[str, Any]:
    """``converters`` or ``exporters`` as a dict, checked: a mapping of layout names to callables."""
    if functions is None:
        return {}
    if not isinstance(functions, Mapping):
        raise PluginError(f"{where}: {what} must be a mapping {{layout: function}}, not {type(functions).__name__}")
    for layout, function in functions.items():
        if not isinstance(layout, str) or not layout:
            raise PluginError(f"{where}: {what} are keyed by layout name ('openai', 'hf', ...), got {layout!r}")
        if not callable(function):
            raise PluginError(f"{where}: {what}[{layout!r}] must be callable (state_dict, config) -> dict")
    return dict(functions)


def _no_duplicate(table: Mapping[Any, Any], key: object, plugin: str, what: str) -> None:
    if key in table:
        other = getattr(table[key], "plugin", None) or "another plugin"
        raise PluginError(
            f"{what} {key!r} is registered by both {other!r} and {plugin!r}; disable one with {DISABLE_ENV}"
        )


#: Each hook's name, and the factory of the ``register`` callback its implementations are called with.
REGISTRARS: Mapping[str, Callable[[Tables, str], Callable[..., None]]] = {
    "clip_register_towers": tower_registrar,
    "clip_register_cards": card_registrar,
    "clip_register_tokenizers": tokenizer_registrar,
    "clip_register_pretrained": pretrained_registrar,
    "clip_register_losses": loss_registrar,
}
