"""Dynamic batching: inputs of concurrent requests gathered into one call of a batch function.

Each input waits in its modality's queue. A collector takes the first input waiting, then more as they arrive,
until it holds ``max_batch`` inputs or ``max_wait`` seconds have passed since the first, and runs the batch
function on them in the executor (one worker thread, so the model never runs twice at once and the event loop
never blocks). Each input's future receives its own row of the result. While a batch runs, the next one gathers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

from clip_core.errors import InputError

__all__ = ["DynamicBatcher"]

In = TypeVar("In")
Out = TypeVar("Out")


class DynamicBatcher(Generic[In, Out]):
    """Gathers inputs from concurrent callers of :meth:`submit` into calls of ``run(inputs) -> outputs``.

    ``run`` returns one output per input, in order. ``on_batch(size)`` is called (on the event loop) after each
    batch, e.g. to record batch sizes. Start the collector with :meth:`start` inside the running event loop and end
    it with :meth:`stop`.
    """

    def __init__(
        self,
        run: Callable[[list[In]], Sequence[Out]],
        executor: Executor,
        *,
        max_batch: int = 64,
        max_wait: float = 0.005,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise InputError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait < 0:
            raise InputError(f"max_wait must not be negative, got {max_wait}")
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._run = run
        self._executor = executor
        self._on_batch = on_batch
        self._queue: asyncio.Queue[tuple[In, asyncio.Future[Out]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Inputs submitted whose outputs are not yet returned (queued, gathering, or in the running batch)."""
        return self._waiting

    def start(self) -> None:
        """Start the collector on the running event loop."""
        if self._task is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._collect())

    async def stop(self) -> None:
        """Stop the collector; inputs still waiting fail with a :class:`RuntimeError`."""
        if self._task is None or self._queue is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(RuntimeError("the service is shutting down"))
        self._task = None

    async def submit(self, inputs: Sequence[In]) -> list[Out]:
        """The outputs for ``inputs``, computed in batches shared with concurrent callers."""
        if self._queue is None:
            raise RuntimeError("DynamicBatcher.submit before start()")
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Out]] = [loop.create_future() for _ in inputs]
        for item, future in zip(inputs, futures, strict=True):
            self._queue.put_nowait((item, future))
        self._waiting += len(futures)
        try:
            return list(await asyncio.gather(*futures))
        finally:
            self._waiting -= len(futures)

    async def _collect(self) -> None:
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            live = [(item, future) for item, future in batch if not future.done()]  # callers may have gone
            if not live:
                continue
            try:
                outputs = await loop.run_in_executor(self._executor, self._run, [item for item, _ in live])
                if len(outputs) != len(live):
                    raise RuntimeError(f"the batch function returned {len(outputs)} outputs for {len(live)} inputs")
            except Exception as exc:  # the callers see the failure; the collector carries on
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), output in zip(live, outputs, strict=True):
                if not future.done():
                    future.set_result(output)
            if self._on_batch is not None:
                self._on_batch(len(live))
