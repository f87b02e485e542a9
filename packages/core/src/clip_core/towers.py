"""Building a tower from its validated config through the kind the config names."""

from __future__ import annotations

from torch import nn

from clip_core import registry
from clip_core.cards import TowerConfig
from clip_core.errors import CardError, PluginError

__all__ = ["build_tower"]


def build_tower(config: TowerConfig, embed_dim: int) -> nn.Module:
    """Build the tower ``config`` describes, projecting to ``embed_dim``.

    A ``ValueError`` from the builder (a configuration it cannot build) becomes a :class:`CardError`. Checks the
    plugin's side of the contract: the builder returns an ``nn.Module`` whose ``embed_dim`` attribute
    equals the requested width.
    """
    spec = registry.tower_kind(config.kind)
    if not isinstance(config, spec.config):
        config = spec.config.model_validate(config.model_dump())
    where = f"tower kind {spec.kind!r} (plugin {spec.plugin!r})"
    try:
        module = spec.build(config, embed_dim)
    except CardError:
        raise
    except ValueError as exc:  # the builder found the configuration unusable (e.g. widths that do not fit)
        raise CardError(f"{where} cannot build this configuration: {exc}") from exc
    if not isinstance(module, nn.Module):
        raise PluginError(f"{where} built a {type(module).__name__}, not a torch.nn.Module")
    if getattr(module, "embed_dim", None) != embed_dim:
        raise PluginError(
            f"{where} built a module whose embed_dim is {getattr(module, 'embed_dim', None)!r}, not {embed_dim}"
        )
    return module
