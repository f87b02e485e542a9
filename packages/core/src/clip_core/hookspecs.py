"""Hook specifications: what a clip-sdk plugin can register.

A plugin is a module (or object) named by an entry point in the group ``clip_core``. It declares the plugin
API version it was written for as ``CLIP_PLUGIN_API = "1.0"`` and implements any of the hooks below with
``@clip_core.hookimpl``. Each hook receives a ``register`` callback; the keyword arguments it takes are
documented in ``docs/plugins.md`` and on the matching ``clip_core.registry.Register*`` protocol.
"""

from __future__ import annotations

from typing import Any

import pluggy

__all__ = ["PLUGIN_API_VERSION", "hookimpl", "hookspec"]

#: The plugin API this clip-core provides. A plugin declaring the same major version and a minor version
#: no greater than this one is accepted; anything else is refused.
PLUGIN_API_VERSION = "1.0"

hookspec = pluggy.HookspecMarker("clip_core")
hookimpl = pluggy.HookimplMarker("clip_core")


@hookspec
def clip_register_towers(register: Any) -> None:
    """Register tower kinds: ``register(kind=, modality=, config=, build=, converters=None, exporters=None)``."""


@hookspec
def clip_register_cards(register: Any) -> None:
    """Register model cards: ``register(card)`` with a card file path, a dict or a ``ModelCard``."""


@hookspec
def clip_register_tokenizers(register: Any) -> None:
    """Register tokenizer kinds: ``register(kind=, build=, exporters=None)``."""


@hookspec
def clip_register_pretrained(register: Any) -> None:
    """Register pretrained weights for a card: ``register(card=, tag=, url= or hf_hub_id=, ...)``."""


@hookspec
def clip_register_losses(register: Any) -> None:
    """Register training losses: ``register(name=, loss=)``."""
