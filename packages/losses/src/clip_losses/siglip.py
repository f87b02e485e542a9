"""SigLIP's loss: an independent binary (sigmoid) decision for every image-text pair of the batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import nn

from clip_core import InputError
from clip_losses.distributed import current_shard, exchange_with_grad, gather_rows, mean_value_over_ranks
from clip_losses.inputs import check_pair, check_scalar

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup

__all__ = ["SigLipLoss"]

Exchange = Literal["ring", "gather"]
_NO_BIAS = "; SigLIP learns a logit bias: give the model card an init_logit_bias (SigLIP starts at -10)"


class SigLipLoss(nn.Module):
    """Sigmoid loss for language-image pre-training (Zhai et al., 2023, https://arxiv.org/abs/2303.15343).

    ``loss(image_embeds, text_embeds, logit_scale, logit_bias)`` with logits
    ``z = logit_scale * image_embeds @ text_embeds.T + logit_bias`` (``[B, B]``) and labels ``y`` (``+1`` on the
    diagonal, the matching pairs, ``-1`` elsewhere) is ``-sum(logsigmoid(y * z)) / B``: a scalar, ``B · ln 2``
    when scale and bias are ``0``. It equals open_clip's ``SigLipLoss``.

    - ``image_embeds``, ``text_embeds``: ``[B, D]`` pairs, expected L2-normalised, used as given.
    - ``logit_scale``: the **exponentiated** temperature, as ``ClipOutput.logit_scale`` (see :class:`ClipLoss`).
    - ``logit_bias``: the learnable bias, as ``ClipOutput.logit_bias`` (cards with ``init_logit_bias``).

    Under an initialised ``torch.distributed`` process group of more than one rank, each rank passes its own
    pairs and scores its images against every rank's texts: all of them negatives but its own. ``exchange``
    chooses how the texts travel, as open_clip's ``dist_impl``: ``"ring"`` passes them from neighbour to
    neighbour (``world_size - 1`` steps, one other rank's texts in memory at a time), ``"gather"`` gathers all
    of them at once. Either way, with gradients: the value on every rank is the whole batch's, and
    ``DistributedDataParallel``'s gradient averaging gives the single-process gradient.
    """

    def __init__(self, exchange: Exchange = "ring", group: ProcessGroup | None = None) -> None:
        super().__init__()
        if exchange not in ("ring", "gather"):
            raise InputError(f"exchange must be 'ring' or 'gather', got {exchange!r}")
        self.exchange: Exchange = exchange
        self.group = group

    def forward(
        self,
        image_embeds: torch.Tensor,
        text_embeds: torch.Tensor,
        logit_scale: torch.Tensor | float,
        logit_bias: torch.Tensor | float,
    ) -> torch.Tensor:
        """The loss of the pairs ``(image_embeds[i], text_embeds[i])``, a scalar tensor."""
        images, texts = check_pair(image_embeds, text_embeds, ("image_embeds", "text_embeds"))
        scale = check_scalar(logit_scale, "logit_scale", like=images)
        bias = check_scalar(logit_bias, "logit_bias", like=images, hint=_NO_BIAS if logit_bias is None else "")
        shard = current_shard(images, self.group)
        if shard is None:
            return _pair_terms(images, texts, scale, bias, positives_from=0) / images.shape[0]
        if self.exchange == "gather":
            all_texts = gather_rows(texts, shard)
            total = _pair_terms(images, all_texts, scale, bias, positives_from=shard.offset)
        else:
            total = _pair_terms(images, texts, scale, bias, positives_from=0)
            right, left = (shard.rank + 1) % shard.world_size, (shard.rank - 1) % shard.world_size
            block = texts
            for step in range(1, shard.world_size):  # each step passes the blocks one rank to the right
                rows = shard.sizes[(shard.rank - step) % shard.world_size]  # the block's owner
                block = exchange_with_grad(block, right, left, rows, shard)
                total = total + _pair_terms(images, block, scale, bias, positives_from=None)
        # This rank's share of the whole-batch loss, times world_size, as ClipLoss(local_loss=True).
        partial = total * (shard.world_size / shard.total)
        return mean_value_over_ranks(partial, shard)

    def extra_repr(self) -> str:
        return f"exchange={self.exchange!r}"


def _pair_terms(
    images: torch.Tensor, texts: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, positives_from: int | None
) -> torch.Tensor:
    """``-sum(logsigmoid(y * z))`` over images x texts; image ``i`` matches text ``positives_from + i``."""
    logits = scale * images @ texts.T + bias
    signs = -torch.ones_like(logits)
    if positives_from is not None:
        rows = torch.arange(images.shape[0], device=images.device)
        signs[rows, rows + positives_from] = 1.0
    return -F.logsigmoid(signs * logits).sum()
