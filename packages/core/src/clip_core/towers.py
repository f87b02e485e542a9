"""Building a tower from its validated config through the kind the config names."""

from __future__ import annotations

from torch import nn

from clip_core import registry
from clip_core.cards import TowerConfig
from clip_core.errors import PluginError

__all__ = ["build_tower"]


def build_tower(config: TowerConfig, embed_dim: int) -> nn.Module:
    """Build the tower ``config`` describes, projecting to ``embed_dim``.

    Checks the plugin's side of the contract: the builder returns an ``nn.Module`` whose ``embed_dim`` attribute
    equals the requested width.
    """
    spec = registry.tower_kind(config.kind)
    if not isinstance(config, spec.config):
        config = spec.config.model_validate(config.model_dump())
    module = spec.build(config, embed_dim)
    where = f"tower kind {spec.kind!r} (plugin {spec.plugin!r})"
    if not isinstance(module, nn.Module):
        raise PluginError(f"{where} built a {type(module).__name__}, not a torch.nn.Module")
    if getattr(module, "embed_dim", None) != embed_dim:
        raise PluginError(
            f"{where} built a module whose embed_dim is {getattr(module, 'embed_dim', None)!r}, not {embed_dim}"
        )
    return module
