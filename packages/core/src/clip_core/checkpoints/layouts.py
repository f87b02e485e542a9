"""Foreign weight layouts: which one a state dict is in, and conversion to this SDK's through tower converters.

Each tower kind registers converters keyed by layout (see ``docs/plugins.md``): ``"openai"`` for OpenAI's and
open_clip's state dicts (image tower under ``visual.``, text tower at the top or under ``text.``) and ``"hf"`` for
transformers' ``CLIPModel`` (``vision_model.``, ``text_model.``, ``visual_projection``, ``text_projection``).
A converter receives the whole foreign state dict and returns its tower's own state dict. Every foreign key must be
read by some converter (or be a known leftover); anything else is an unexpected key and an error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Literal

import torch

from clip_core import registry
from clip_core.cards import ModelCard, TowerConfig
from clip_core.checkpoints.strict import listing
from clip_core.errors import CheckpointError

__all__ = ["Layout", "convert_state_dict", "detect_layout"]

Layout = Literal["native", "openai", "hf"]

_SCALARS = ("logit_scale", "logit_bias")

#: Entries foreign checkpoints carry that hold no weights: OpenAI's TorchScript metadata, transformers' buffers.
_LEFTOVERS = frozenset(
    {
        "input_resolution",
        "context_length",
        "vocab_size",
        "text_model.embeddings.position_ids",
        "vision_model.embeddings.position_ids",
    }
)


def detect_layout(state: Mapping[str, torch.Tensor], native_keys: set[str]) -> Layout:
    """The layout of ``state``: this SDK's when every key is under ``visual.`` / ``text.`` (or is the logit scale
    or bias) and each tower holds at least half of its own keys; transformers' when it has ``vision_model.`` /
    ``text_model.`` keys; OpenAI / open_clip's otherwise."""
    if all(key.startswith(("visual.", "text.")) or key in _SCALARS for key in state) and all(
        len({k for k in native_keys if k.startswith(prefix)} & state.keys()) * 2
        >= len({k for k in native_keys if k.startswith(prefix)})
        for prefix in ("visual.", "text.")
    ):
        return "native"
    if any(key.startswith(("vision_model.", "text_model.")) for key in state):
        return "hf"
    return "openai"


class _ReadTracker(Mapping[str, torch.Tensor]):
    """A read-only view of a state dict that remembers which keys were read."""

    def __init__(self, state: Mapping[str, torch.Tensor]) -> None:
        self._state = state
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> torch.Tensor:
        value = self._state[key]
        self.read.add(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._state)

    def __len__(self) -> int:
        return len(self._state)

    def __contains__(self, key: object) -> bool:
        return key in self._state


def _tower_state(state: _ReadTracker, config: TowerConfig, layout: Layout, source: str) -> dict[str, torch.Tensor]:
    kind = registry.tower_kind(config.kind)
    converter = kind.converters.get(layout)
    if converter is None:
        known = ", ".join(sorted(kind.converters)) or "none"
        raise CheckpointError(
            f"{source}: weights are in the {layout!r} layout, which tower kind {kind.kind!r} (plugin {kind.plugin!r}) "
            f"cannot convert (its converters: {known})"
        )
    if not isinstance(config, kind.config):
        config = kind.config.model_validate(config.model_dump())
    try:
        return dict(converter(state, config))
    except CheckpointError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    except KeyError as exc:
        raise CheckpointError(f"{source}: {layout} weights: missing key {exc}") from None


def convert_state_dict(
    state: Mapping[str, torch.Tensor], card: ModelCard, layout: Layout, source: str
) -> dict[str, torch.Tensor]:
    """``state`` in ``layout`` to this SDK's layout for ``card``: each tower's converter, plus the logit scale
    (and bias). :class:`CheckpointError` for a missing converter, missing keys, or keys no converter read."""
    if layout == "native":
        return dict(state)
    tracker = _ReadTracker(state)
    out = {f"visual.{key}": value for key, value in _tower_state(tracker, card.image, layout, source).items()}
    out |= {f"text.{key}": value for key, value in _tower_state(tracker, card.text, layout, source).items()}
    for name in _SCALARS:
        if name in state:
            out[name] = tracker[name].reshape(())
    unread = state.keys() - tracker.read - _LEFTOVERS
    if unread:
        raise CheckpointError(
            f"{source} does not fit card {card.name!r}: unexpected keys (read by no tower converter): "
            + listing(unread)
        )
    return out
