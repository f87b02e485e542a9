"""SimCLR's NT-Xent: normalised, temperature-scaled cross-entropy between two views of each sample."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from clip_losses.distributed import current_shard, gather_rows, mean_value_over_ranks
from clip_losses.inputs import check_pair, check_positive

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup

__all__ = ["NTXentLoss"]


class NTXentLoss(nn.Module):
    """SimCLR's loss (Chen et al., 2020, https://arxiv.org/abs/2002.05709, eq. 1).

    ``NTXentLoss(temperature)(z1, z2)``: ``z1[i]`` and ``z2[i]`` are two views of sample ``i`` (``[N, D]``
    each). Each of the ``2N`` embeddings is an anchor whose positive is the other view of its sample, against the
    ``2N - 1`` others (the remaining ``2N - 2`` are its negatives)::

        loss(a) = -log( exp(sim(a, positive) / t) / sum over the 2N - 1 others o of exp(sim(a, o) / t) )

    with ``sim`` the cosine similarity (the embeddings are L2-normalised here, as the formula says, so any
    projection output can be passed). The result is the mean over the ``2N`` anchors: a scalar, ``0`` for
    ``N = 1``, tending to ``log(2N - 1)`` as the temperature grows. ``temperature`` defaults to SimCLR's 0.1.

    Under an initialised ``torch.distributed`` process group of more than one rank, each rank passes its own
    samples and the loss is that of the whole batch, as :class:`ClipLoss` (``local_loss`` likewise computes
    only this rank's anchors against every gathered embedding).
    """

    def __init__(self, temperature: float = 0.1, local_loss: bool = False, group: ProcessGroup | None = None) -> None:
        super().__init__()
        self.temperature = check_positive(temperature, "temperature")
        self.local_loss = local_loss
        self.group = group

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """The loss of the view pairs ``(z1[i], z2[i])``, a scalar tensor."""
        first, second = check_pair(z1, z2, ("z1", "z2"))
        first, second = F.normalize(first, dim=-1), F.normalize(second, dim=-1)
        shard = current_shard(first, self.group)
        if shard is None:
            views = torch.cat([first, second])
            return self._anchor_terms(views, views, offset=0) / views.shape[0]
        both = gather_rows(torch.cat([first, second], dim=1), shard)
        width = first.shape[1]
        all_first, all_second = both[:, :width], both[:, width:]
        candidates = torch.cat([all_first, all_second])
        if not self.local_loss:  # every rank computes the whole loss
            return self._anchor_terms(candidates, candidates, offset=0) / candidates.shape[0]
        total = self._anchor_terms(torch.cat([first, second]), candidates, offset=shard.offset)
        # This rank's share of the whole-batch mean, times world_size, as ClipLoss(local_loss=True).
        return mean_value_over_ranks(total * (shard.world_size / candidates.shape[0]), shard)

    def _anchor_terms(self, anchors: torch.Tensor, candidates: torch.Tensor, offset: int) -> torch.Tensor:
        """Sum of the anchors' losses. ``anchors``: ``n`` first views then their ``n`` second views, of samples
        ``offset ...``; ``candidates``: all ``N`` first views then all ``N`` second views."""
        n, total = anchors.shape[0] // 2, candidates.shape[0] // 2
        logits = anchors @ candidates.T / self.temperature
        samples = torch.arange(offset, offset + n, device=anchors.device)
        itself = torch.cat([samples, samples + total])
        positive = torch.cat([samples + total, samples])
        rows = torch.arange(2 * n, device=anchors.device)
        is_itself = torch.zeros_like(logits, dtype=torch.bool)
        is_itself[rows, itself] = True
        return F.cross_entropy(logits.masked_fill(is_itself, float("-inf")), positive, reduction="sum")

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, local_loss={self.local_loss}"
