"""Feature-caching accumulation runs every micro-batch twice; these make both passes see the same network.

:func:`running_stats_kept` keeps BatchNorm running statistics out of the cache pass, and :func:`rng_state_of` /
:func:`set_rng_state_of` let the gradient pass replay the random state (dropout, drop-path) of the cache pass.
See :mod:`clip_core.training.trainer` for the accumulation itself and what stays inexact.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["rng_state_of", "running_stats_kept", "set_rng_state_of"]


@contextlib.contextmanager
def running_stats_kept(model: nn.Module) -> Iterator[None]:
    """BatchNorm layers in training mode normalise with the batch's statistics but leave their running ones alone.

    The cache pass of feature caching runs each micro-batch once more than the step does: it must not move the
    running statistics (or ``num_batches_tracked``), which the gradient pass then updates once per micro-batch.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for layer in layers:
        layer.track_running_stats = False
    try:
        yield
    finally:
        for layer in layers:
            layer.track_running_stats = True


def rng_state_of(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The random number generator states a forward pass on ``device`` draws from (CPU, and the GPU's if any)."""
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def set_rng_state_of(state: tuple[torch.Tensor, torch.Tensor | None], device: torch.device) -> None:
    """Put back the states :func:`rng_state_of` took."""
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)
