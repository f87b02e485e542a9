"""The processes of a job that runs in several (``torchrun``): this process's place among them, its device, and what
they share. Training (:mod:`clip_core.training`) and embedding (:mod:`clip_core.embedding.ranks`) use it alike.

With ``WORLD_SIZE > 1`` (``torchrun``) :func:`start_processes` starts the process group (NCCL on GPUs, gloo on
CPU) unless one is running already, and :func:`end_processes` ends what it started; a single process needs none.
:func:`barrier` and :func:`gather_objects` are no-ops for one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from clip_core.errors import InputError

__all__ = [
    "Processes",
    "barrier",
    "end_processes",
    "gather_objects",
    "process_device",
    "start_processes",
]


@dataclass(frozen=True)
class Processes:
    """This process's rank, the number of processes, its rank on its node, and whether it started the group."""

    rank: int
    world_size: int
    local_rank: int
    started_here: bool

    @property
    def main(self) -> bool:
        """Whether this is the first process (the one that writes files and shows progress)."""
        return self.rank == 0


def start_processes() -> Processes:
    """This process's place among the job's processes; starts the process group under torchrun."""
    started = False
    if not (dist.is_available() and dist.is_initialized()):
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return Processes(0, 1, 0, False)
        if not dist.is_available():
            raise InputError("WORLD_SIZE > 1 but this torch has no torch.distributed")
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
            dist.init_process_group("nccl")
        else:
            dist.init_process_group("gloo")
        started = True
    return Processes(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), started)


def end_processes(processes: Processes) -> None:
    """End the process group if :func:`start_processes` started it."""
    if processes.started_here and dist.is_initialized():
        dist.destroy_process_group()


def process_device(requested: str | None, processes: Processes) -> torch.device:
    """The device this process works on: ``requested`` (``"cuda"``: this process's GPU), else its GPU or the CPU."""
    if requested is not None:
        return torch.device("cuda", processes.local_rank) if requested == "cuda" else torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda", processes.local_rank)
    return torch.device("cpu")


def gather_objects(value: dict[str, Any], processes: Processes) -> list[dict[str, Any]]:
    """Every process's ``value``, in rank order (every process must call this)."""
    if processes.world_size == 1:
        return [value]
    out: list[Any] = [None] * processes.world_size
    dist.all_gather_object(out, value)
    return out


def barrier(processes: Processes) -> None:
    """Wait for every process (nothing to wait for with one)."""
    if processes.world_size > 1:
        dist.barrier()
