"""The registered loss, as a training step calls it: built with the run's options, and which of the temperature
and bias its ``forward`` takes after the two embedding batches."""

from __future__ import annotations

import inspect

from torch import nn

from clip_core import registry
from clip_core.errors import InputError, PluginError
from clip_core.training.config import TrainConfig

__all__ = ["build_loss"]


def build_loss(config: TrainConfig, world_size: int) -> tuple[nn.Module, frozenset[str]]:
    """The registered loss, and which of (scale, bias) its ``forward`` takes after the two embedding batches."""
    entry = registry.loss(config.loss)
    options = dict(config.loss_options)
    accepts = inspect.signature(entry.loss).parameters
    if world_size > 1 and "local_loss" in accepts and "local_loss" not in options:
        options["local_loss"] = True
    try:
        loss_fn = entry.loss(**options)
    except TypeError as exc:
        raise InputError(f"loss {config.loss!r} does not take these options {sorted(options)}: {exc}") from None
    positional = [
        parameter
        for parameter in inspect.signature(loss_fn.forward).parameters.values()
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    ]
    if not 2 <= len(positional) <= 4:
        raise PluginError(
            f"loss {config.loss!r} (plugin {entry.plugin!r}) takes {len(positional)} inputs; a training loss takes "
            "(image_embeds, text_embeds[, logit_scale[, logit_bias]])"
        )
    return loss_fn, frozenset(("scale", "bias")[: len(positional) - 2])
