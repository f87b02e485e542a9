"""CLIP's contrastive loss (InfoNCE): symmetric cross-entropy over image→text and text→image logits."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from clip_losses.distributed import current_shard, gather_rows, mean_value_over_ranks
from clip_losses.inputs import check_pair, check_scalar

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup

__all__ = ["ClipLoss"]


class ClipLoss(nn.Module):
    """CLIP's loss: image ``i`` should pick text ``i`` among all texts of the batch, and text ``i`` image ``i``.

    ``loss(image_embeds, text_embeds, logit_scale)`` with logits ``logit_scale * image_embeds @ text_embeds.T``
    (``[B, B]``) is the mean of ``cross_entropy(logits, arange(B))`` and ``cross_entropy(logits.T, arange(B))``:
    a scalar, ``0`` for a batch of one, ``log(B)`` when ``logit_scale`` is ``0``. It equals open_clip's
    ``ClipLoss``.

    - ``image_embeds``, ``text_embeds``: ``[B, D]``, row ``i`` of one paired with row ``i`` of the other, expected
      L2-normalised (``ClipModel``'s output is); they are used as given.
    - ``logit_scale``: the multiplier of the cosine similarities, i.e. the **exponentiated** learnable
      temperature, as ``ClipOutput.logit_scale`` and as open_clip passes it (``model.logit_scale.exp()``).
      A one-element tensor or a number. So ``ClipLoss()(out.image_embeds, out.text_embeds, out.logit_scale)``
      for ``out = model(pixels, ids)``.

    Under an initialised ``torch.distributed`` process group (``group``, default the default group) of more than
    one rank, each rank passes its own pairs and the loss is that of the whole batch, gathered from every rank
    with gradients (see :mod:`clip_losses.distributed`): the value on every rank is what one process computes on
    the whole batch, and ``DistributedDataParallel``'s gradient averaging gives the single-process gradient.
    ``local_loss=True`` computes only this rank's rows of the logits against all gathered columns (``B_rank x N``
    instead of ``N x N``), with the same value and training gradients; it changes how, never what.

    Raises :class:`~clip_core.InputError` for tensors that are not floating-point ``[B, D]`` pairs of one shape.
    """

    def __init__(self, local_loss: bool = False, group: ProcessGroup | None = None) -> None:
        super().__init__()
        self.local_loss = local_loss
        self.group = group

    def forward(
        self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor | float
    ) -> torch.Tensor:
        """The loss of the pairs ``(image_embeds[i], text_embeds[i])``, a scalar tensor."""
        images, texts = check_pair(image_embeds, text_embeds, ("image_embeds", "text_embeds"))
        scale = check_scalar(logit_scale, "logit_scale", like=images)
        shard = current_shard(images, self.group)
        if shard is None:
            return _symmetric_cross_entropy(scale * images @ texts.T)
        both = gather_rows(torch.cat([images, texts], dim=1), shard)
        width = images.shape[1]
        all_images, all_texts = both[:, :width], both[:, width:]
        if not self.local_loss:  # every rank computes the whole loss
            return _symmetric_cross_entropy(scale * all_images @ all_texts.T)
        targets = torch.arange(shard.offset, shard.offset + images.shape[0], device=images.device)
        image_to_text = F.cross_entropy(scale * images @ all_texts.T, targets, reduction="sum")
        text_to_image = F.cross_entropy(scale * texts @ all_images.T, targets, reduction="sum")
        # This rank's share of the whole-batch mean, times world_size (as each rank's whole loss is, above).
        partial = (image_to_text + text_to_image) * (shard.world_size / (2 * shard.total))
        return mean_value_over_ranks(partial, shard)

    def extra_repr(self) -> str:
        return f"local_loss={self.local_loss}"


def _symmetric_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    targets = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
