"""The learning-rate schedule: linear warm-up, then a cosine decay (open_clip's ``cosine_lr``)."""

from __future__ import annotations

import math

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["CosineWithWarmup", "cosine_with_warmup"]


def cosine_with_warmup(step: int, base_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0) -> float:
    """The learning rate of update ``step`` (0-based) of ``total_steps``.

    During warm-up (``step < warmup_steps``) it rises linearly, ``base_lr * (step + 1) / warmup_steps``, reaching
    ``base_lr`` at the last warm-up step; after that it follows half a cosine from ``base_lr`` down to ``min_lr``,
    which it would reach at ``step == total_steps``. The same values as open_clip's ``cosine_lr`` when
    ``min_lr == 0``.
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = total_steps - warmup_steps
    if decay_steps <= 0:
        return base_lr
    progress = min((step - warmup_steps) / decay_steps, 1.0)
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * progress))


class CosineWithWarmup(LRScheduler):
    """:func:`cosine_with_warmup` as a ``torch.optim`` scheduler: each parameter group's initial ``lr`` is its
    ``base_lr``; call ``step()`` after each ``optimizer.step()``. Its ``state_dict`` is all a resume needs."""

    def __init__(
        self, optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr: float = 0.0, last_epoch: int = -1
    ) -> None:
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.min_lr = min_lr
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float | torch.Tensor]:
        """The learning rate of each parameter group for update ``self.last_epoch``."""
        step = max(self.last_epoch, 0)
        return [
            cosine_with_warmup(step, float(base), self.warmup_steps, self.total_steps, self.min_lr)
            for base in self.base_lrs
        ]
