"""Sharing embeddings between ``torch.distributed`` ranks, with gradients flowing back to their owners.

A contrastive loss over a batch split across ranks needs every rank's embeddings. The collectives here move
them **with gradients**, as open_clip's ``gather_with_grad``: whatever a rank's loss contributes to another rank's
embeddings is sent back in the backward pass and summed there. So each rank's local embeddings receive
``world_size`` times the single-process gradient of the whole-batch loss, which is what data parallelism wants:
``DistributedDataParallel`` averages the parameter gradients over ranks, and the average is then exactly the
gradient one process would compute on the whole batch.

Ranks may hold batches of different sizes (a last, smaller batch); the sizes are exchanged first. Everything here
is a no-op outside an initialised process group of more than one rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from clip_core import InputError

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup

__all__ = ["Shard", "current_shard", "exchange_with_grad", "gather_rows", "gather_with_grad", "mean_value_over_ranks"]


@dataclass(frozen=True)
class Shard:
    """This process's part of a batch split over the ranks of a process group."""

    #: This process's rank in ``group``.
    rank: int
    #: Batch size held by each rank, in rank order.
    sizes: tuple[int, ...]
    #: The process group (``None``: the default group).
    group: ProcessGroup | None

    @property
    def world_size(self) -> int:
        """Number of ranks."""
        return len(self.sizes)

    @property
    def total(self) -> int:
        """Size of the whole batch, over all ranks."""
        return sum(self.sizes)

    @property
    def offset(self) -> int:
        """Index of this rank's first row in the whole batch."""
        return sum(self.sizes[: self.rank])

    def global_rank(self, rank: int) -> int:
        """The rank ``rank`` of ``group`` in the default group (what point-to-point operations address)."""
        return rank if self.group is None else dist.get_global_rank(self.group, rank)


def current_shard(batch: torch.Tensor, group: ProcessGroup | None = None) -> Shard | None:
    """Where ``batch`` (``[B, D]``, this rank's rows) sits in the whole batch; ``None`` when not distributed.

    Not distributed means ``torch.distributed`` is unavailable or uninitialised, or ``group`` has a single rank.
    Otherwise every rank of ``group`` must call this together (it exchanges batch sizes), and an
    :class:`~clip_core.InputError` is raised on every rank if their embedding widths differ.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return None
    world_size = dist.get_world_size(group)
    if world_size <= 1:
        return None
    rank = dist.get_rank(group)
    if rank < 0:
        raise InputError("this process is not a member of the process group given to the loss")
    shape = torch.tensor(batch.shape, dtype=torch.long, device=batch.device)
    shapes = [torch.empty_like(shape) for _ in range(world_size)]
    dist.all_gather(shapes, shape, group=group)
    widths = [int(s[1]) for s in shapes]
    if len(set(widths)) > 1:
        raise InputError(f"ranks hold embeddings of different widths: {widths} (in rank order)")
    return Shard(rank, tuple(int(s[0]) for s in shapes), group)


def gather_with_grad(tensor: torch.Tensor, group: ProcessGroup | None = None) -> torch.Tensor:
    """Every rank's ``[B_rank, D]`` rows, concatenated in rank order, differentiable with respect to ``tensor``.

    The backward pass sums, over all ranks, the gradients with respect to this rank's rows. Ranks may hold
    different numbers of rows. Returns ``tensor`` itself when not distributed (see :func:`current_shard`).
    """
    shard = current_shard(tensor, group)
    return tensor if shard is None else _AllGather.apply(tensor, shard)


def gather_rows(tensor: torch.Tensor, shard: Shard) -> torch.Tensor:
    """:func:`gather_with_grad` for a rank whose :class:`Shard` is known."""
    return _AllGather.apply(tensor, shard)  # type: ignore[no-any-return]


def exchange_with_grad(tensor: torch.Tensor, send_to: int, receive_from: int, rows: int, shard: Shard) -> torch.Tensor:
    """Send ``tensor`` to rank ``send_to``; return the ``rows`` rows rank ``receive_from`` sends, with gradients.

    Ranks are ranks of ``shard.group``, and every rank calls this together (as in a ring: send right, receive
    from the left). In the backward pass the gradient travels the other way, back to the rank that sent the rows.
    """
    return _Exchange.apply(tensor, send_to, receive_from, rows, shard)  # type: ignore[no-any-return]


def mean_value_over_ranks(partial: torch.Tensor, shard: Shard) -> torch.Tensor:
    """A tensor whose value is the mean of ``partial`` over ranks and whose gradient is ``partial``'s.

    Losses computed on each rank's rows (``local_loss``) report the whole-batch value this way, on every rank,
    while each rank back-propagates only through its own terms.
    """
    total = partial.detach().clone()
    dist.all_reduce(total, group=shard.group)
    return partial + (total / shard.world_size - partial).detach()


class _AllGather(torch.autograd.Function):
    """All-gather of ``[B_rank, D]`` rows (padded to the longest batch on the wire); backward: sum, then scatter."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, shard: Shard) -> torch.Tensor:
        ctx.shard = shard
        padded = _pad_rows(tensor.detach(), max(shard.sizes))
        blocks = [torch.empty_like(padded) for _ in shard.sizes]
        dist.all_gather(blocks, padded, group=shard.group)
        return torch.cat([block[:size] for block, size in zip(blocks, shard.sizes, strict=True)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        shard: Shard = ctx.shard
        longest = max(shard.sizes)
        starts = [sum(shard.sizes[:rank]) for rank in range(shard.world_size)]
        blocks = [grad[start : start + size] for start, size in zip(starts, shard.sizes, strict=True)]
        stacked = torch.stack([_pad_rows(block, longest) for block in blocks])
        if grad.is_cuda and "nccl" in str(dist.get_backend(shard.group)):
            mine = torch.empty_like(stacked[0])
            dist.reduce_scatter_tensor(mine, stacked, group=shard.group)
        else:  # gloo and others lack reduce-scatter: reduce everything, keep this rank's block
            dist.all_reduce(stacked, group=shard.group)
            mine = stacked[shard.rank]
        return mine[: shard.sizes[shard.rank]], None


class _Exchange(torch.autograd.Function):
    """Point-to-point: send to one rank, receive from another; backward sends the gradient the other way."""

    @staticmethod
    def forward(
        ctx: Any, tensor: torch.Tensor, send_to: int, receive_from: int, rows: int, shard: Shard
    ) -> torch.Tensor:
        ctx.send_to, ctx.receive_from, ctx.shard, ctx.sent_shape = send_to, receive_from, shard, tensor.shape
        return _send_receive(tensor.detach(), send_to, receive_from, (rows, *tensor.shape[1:]), shard)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None]:
        returned = _send_receive(grad, ctx.receive_from, ctx.send_to, ctx.sent_shape, ctx.shard)
        return returned, None, None, None, None


def _send_receive(
    tensor: torch.Tensor, send_to: int, receive_from: int, shape: Sequence[int], shard: Shard
) -> torch.Tensor:
    received = tensor.new_empty(tuple(shape))
    ops = [
        dist.P2POp(dist.isend, tensor.contiguous(), shard.global_rank(send_to), shard.group),
        dist.P2POp(dist.irecv, received, shard.global_rank(receive_from), shard.group),
    ]
    for request in dist.batch_isend_irecv(ops):
        request.wait()
    return received


def _pad_rows(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    if tensor.shape[0] == rows:
        return tensor.contiguous()
    return torch.cat([tensor, tensor.new_zeros(rows - tensor.shape[0], *tensor.shape[1:])])
