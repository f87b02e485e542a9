"""The training processes: what they check together, beside what every job in several processes has.

This process's place among them, its device, starting and ending the process group, barriers and gathering live in
:mod:`clip_core.processes` (embedding uses them too) and are re-exported here. :func:`check_replicas_agree`
compares the weights every training process holds.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from clip_core.processes import (
    Processes,
    barrier,
    end_processes,
    gather_objects,
    process_device,
    start_processes,
)

__all__ = [
    "Processes",
    "barrier",
    "check_replicas_agree",
    "end_processes",
    "gather_objects",
    "process_device",
    "start_processes",
]


def check_replicas_agree(model: nn.Module, processes: Processes) -> None:
    """Every process must hold the same weights after an update; compare checksums, fail loudly if not."""
    if processes.world_size == 1:
        return
    with torch.no_grad():
        flat = torch.cat([p.detach().double().flatten() for p in model.parameters()])
        positions = torch.arange(1, flat.numel() + 1, dtype=torch.float64, device=flat.device)
        checksum = torch.stack([flat.sum(), (flat * positions).sum(), flat.square().sum()])
    gathered = [torch.empty_like(checksum) for _ in range(processes.world_size)]
    dist.all_gather(gathered, checksum)
    if any(not torch.equal(gathered[0], other) for other in gathered[1:]):
        raise RuntimeError("the training processes ended with different weights (a bug: please report it)")
