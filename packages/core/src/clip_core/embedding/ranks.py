"""An embedding job in several processes (``torchrun ... --no-python clip embed ...``): each its share, one output.

Every process runs the same command; under ``torchrun`` (``WORLD_SIZE > 1``) :meth:`EmbeddingJob.run
<clip_core.embedding.job.EmbeddingJob.run>` comes here. In order:

1. Process 0 takes the work folder's lock and starts the job (or finds it started); the others hear whether that
   worked, take locks of their own (``lock.R``), and every process reads what every process recorded so far.
2. The sources not yet done are cut into as many contiguous blocks as there are processes, in source order, each
   made of whole batches (the batches one process would embed: see :func:`share`); process ``r`` embeds block
   ``r`` into shards and a progress log of its own (``NNNNNN.rR.safetensors``, ``progress.R.jsonl``), so no two
   processes write one file, and each process's work survives a kill as a single process's does. A rerun, with
   any number of processes (or one), carries on with what is left.
3. When all are done, process 0 gathers every process's rows in source order and writes the embeddings file, its
   index and manifest: the same rows, order and index that one process writes for the same sources (the
   manifest's ``completed`` time aside). Every process returns the same :class:`EmbedResult`.

The work folder must be shared by the processes (one machine, or a file system every node mounts).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch.distributed as dist

from clip_core.errors import ClipError, InputError
from clip_core.processes import Processes, barrier, end_processes, gather_objects

if TYPE_CHECKING:
    from clip_core.embedding.job import EmbeddedBatch, EmbeddingJob, EmbedResult

__all__ = ["run_ranks", "share"]


def share(pending: list[int], rank: int, world_size: int, batch_size: int) -> list[int]:
    """Process ``rank``'s block of the ``pending`` positions: contiguous, in order, and made of the whole batches one
    process cuts ``pending`` into (``batch_size`` each, the last possibly short, which the last process gets); the
    processes' numbers of batches differ by at most one.

    Whole batches keep the output's bytes those of one process: a model's embedding of a source can differ in its
    last bits with the other sources of its batch (on the CPU a batch of one can take another kernel than two).
    """
    batches = -(-len(pending) // batch_size)
    first, end = rank * batches // world_size, (rank + 1) * batches // world_size
    return pending[first * batch_size : end * batch_size]


def run_ranks(
    job: EmbeddingJob,
    encode: Callable[[list[int]], Iterator[EmbeddedBatch]],
    processes: Processes,
    *,
    overwrite: bool,
    progress: bool | None,
    on_shard: Callable[[int], None] | None,
) -> EmbedResult:
    """Run ``job`` as process ``processes.rank`` of ``processes.world_size`` (see this module's documentation)."""
    from clip_core.embedding.job import _progress_bar

    started = time.monotonic()
    job.rank = processes.rank
    try:
        with contextlib.ExitStack() as first:
            _together(processes, lambda: _start(job, first, overwrite) if processes.main else None)
            with contextlib.ExitStack() as others:
                _together(processes, lambda: None if processes.main else others.enter_context(job._lock()))
                done = _together(processes, job._resume)
                pending = [position for position, key in enumerate(job.keys) if key not in done]
                mine = share(pending, processes.rank, processes.world_size, job.batch_size)
                resumed = len(job.keys) - len(pending)
                bar = _progress_bar(len(mine), 0, job.modality, progress) if processes.main else None
                try:
                    if mine:
                        job._embed(encode(mine), done, bar, on_shard)
                finally:
                    if bar is not None:
                        bar.close()
            barrier(processes)
            result = _together(
                processes,
                lambda: job._finish(job._resume(), resumed, time.monotonic() - started) if processes.main else None,
            )
        shared: EmbedResult = _from_first(result, processes)
        return shared
    finally:
        end_processes(processes)


def _start(job: EmbeddingJob, stack: contextlib.ExitStack, overwrite: bool) -> None:
    stack.enter_context(job._lock())
    job._start(overwrite)


def _together(processes: Processes, step: Callable[[], Any]) -> Any:
    """Run ``step`` in every process; if it raises a :class:`ClipError` in any, raise it in all (so that none
    waits for the others for ever)."""
    value, message = None, None
    try:
        value = step()
    except ClipError as exc:
        message = str(exc)
    messages = [item["error"] for item in gather_objects({"error": message}, processes) if item["error"]]
    if messages:
        raise InputError(messages[0])
    return value


def _from_first(value: Any, processes: Processes) -> Any:
    """Process 0's ``value``, in every process."""
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
