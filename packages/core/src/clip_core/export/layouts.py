"""A model's weights and tokenizer in a foreign layout, through the exporters the tower and tokenizer kinds register.

Each tower kind registers, beside its converters (foreign layout to ours), exporters keyed by the same layouts:
``"openai"`` for OpenAI's / open_clip's state dicts, ``"hf"`` for transformers' ``CLIPModel``. An exporter receives
the tower's own state dict (without the ``visual.`` / ``text.`` prefix) and returns its weights under the foreign
layout's whole-model keys. A tokenizer kind's exporter for a layout writes that layout's tokenizer files and returns
the settings the layout's text configuration takes from it (e.g. transformers' ``eos_token_id``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from clip_core import registry
from clip_core.cards import ModelCard, TowerConfig
from clip_core.errors import ExportError

if TYPE_CHECKING:
    from clip_core.model import ClipModel

__all__ = ["ExportLayout", "export_state_dict", "export_tokenizer"]

ExportLayout = Literal["openai", "hf"]

#: What each layout is called in messages.
_NAMES = {"openai": "OpenAI / open_clip", "hf": "transformers"}


def _tower_weights(
    state: dict[str, torch.Tensor], config: TowerConfig, prefix: str, layout: str, card: str
) -> dict[str, torch.Tensor]:
    kind = registry.tower_kind(config.kind)
    exporter = kind.exporters.get(layout)
    if exporter is None:
        known = ", ".join(sorted(kind.exporters)) or "none"
        raise ExportError(
            f"card {card!r}: tower kind {kind.kind!r} (plugin {kind.plugin!r}) has no exporter to the "
            f"{_NAMES.get(layout, layout)} layout {layout!r} (its exporters: {known})"
        )
    tower = {key.removeprefix(prefix): value for key, value in state.items() if key.startswith(prefix)}
    out = dict(exporter(tower, config))
    for key, value in out.items():
        if not isinstance(value, torch.Tensor):
            raise ExportError(
                f"tower kind {kind.kind!r}: its {layout!r} exporter returned a {type(value).__name__} "
                f"for {key!r}, not a tensor"
            )
    return out


def export_state_dict(model: ClipModel, layout: ExportLayout) -> dict[str, torch.Tensor]:
    """``model``'s weights in ``layout``: each tower's exporter, plus ``logit_scale`` (and ``logit_bias``).

    :class:`ExportError` when a tower kind has no exporter for the layout, or two towers write the same key.
    """
    card = model.card
    state = {key: value.detach() for key, value in model.state_dict().items()}
    image = _tower_weights(state, card.image, "visual.", layout, card.name)
    text = _tower_weights(state, card.text, "text.", layout, card.name)
    clash = image.keys() & text.keys()
    if clash:
        raise ExportError(f"card {card.name!r}: both towers export the keys {sorted(clash)[:5]} in layout {layout!r}")
    out = image | text
    out["logit_scale"] = state["logit_scale"]
    if "logit_bias" in state:
        out["logit_bias"] = state["logit_bias"]
    return out


def export_tokenizer(card: ModelCard, layout: ExportLayout, directory: Path) -> dict[str, Any]:
    """Write the card's tokenizer's files for ``layout`` into ``directory``; returns the settings the layout's text
    configuration takes from the tokenizer. :class:`ExportError` when the tokenizer kind has no exporter for it."""
    kind = registry.tokenizer_kind(card.tokenizer.kind)
    exporter = kind.exporters.get(layout)
    if exporter is None:
        known = ", ".join(sorted(kind.exporters)) or "none"
        raise ExportError(
            f"card {card.name!r}: tokenizer kind {kind.kind!r} (plugin {kind.plugin!r}) has no exporter to the "
            f"{_NAMES.get(layout, layout)} layout {layout!r} (its exporters: {known})"
        )
    return dict(exporter(card.tokenizer, directory))
