"""Training from img2dataset's webdataset shards: one global stream of pairs, cut into updates as the other data
sets are, whatever the number of processes and workers.

**The stream.** Pass ``p`` over the data visits the shards in an order drawn from a generator seeded with
``(seed, p)``, and the samples of each shard in an order drawn from ``(seed, p, shard)``; the passes follow one
another without end. Update ``s`` uses the next ``batch_size`` complete samples of the stream; process ``rank``
takes the ``rank``-th contiguous slice of them (as :class:`~clip_core.training.data.StepBatches` does), so every
process runs every update (none runs out of shards) and the data of an update do not depend on the process count.
With ``workers`` data-loading workers, worker ``w`` prepares updates ``w, w + workers, ...``: every worker walks
the stream's headers, each decodes only its own updates' images, and only this process's slice of them.

**Epochs.** ``--train-num-samples`` sets the epoch length (for ``--epochs`` and the schedule); without it the
samples of every shard are counted from their headers. Passes over the shards need not line up with epochs.

**Resume.** A checkpoint records the stream's position after its update (pass, shard, sample), so a resumed run
reads from exactly the next sample on: nothing is repeated and nothing is skipped (0 samples), and it continues
bit for bit as the uninterrupted run on CPU.

**Damaged samples.** A sample without an image or a caption is passed over (every process agrees on it, from the
headers). An image that does not decode is skipped too; its place in the process's slice is taken by a copy of
another pair of the same slice, so every batch keeps its size. Both are counted (``skipped`` in ``log.jsonl``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from clip_core.errors import InputError
from clip_core.shardfiles import ShardReader, ShardSample, decode_image, scan_shard

__all__ = ["ShardBatch", "ShardPairs"]

#: Position in the stream: (pass, index in the pass's shard order, index in the shard's sample order).
Cursor = tuple[int, int, int]


@dataclass(frozen=True)
class ShardBatch:
    """One update's batch for this process: pixels, token ids, the stream's position after the update's samples,
    and how many samples were skipped on the way (damaged images of this slice; incomplete samples on process 0)."""

    pixels: torch.Tensor
    ids: torch.Tensor
    cursor: Cursor
    skipped: int


class ShardPairs:
    """Image-caption pairs in webdataset shards as a deterministic stream (see this module's documentation).

    ``len()`` is the epoch length: ``num_samples`` if given, else the complete samples counted in the shards.
    """

    def __init__(
        self,
        shards: Sequence[Path],
        preprocess: Callable[[Image.Image], torch.Tensor],
        *,
        num_samples: int | None = None,
        seed: int = 0,
    ) -> None:
        if not shards:
            raise InputError("no shards to train on")
        self.shards = list(shards)
        self.preprocess = preprocess
        self.num_samples = num_samples
        self.seed = seed
        self._reader = ShardReader()
        self._scanned: tuple[int, int, list[ShardSample]] | None = None

    def __len__(self) -> int:
        if self.num_samples is None:
            self.num_samples = sum(sum(s.complete for s in scan_shard(path)) for path in self.shards)
            if self.num_samples == 0:
                raise InputError(f"{self.shards[0].parent}: the shards hold no image-caption samples")
        return self.num_samples

    def shard_order(self, pass_: int) -> list[int]:
        """The order in which pass ``pass_`` visits the shards."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + pass_)
        return torch.randperm(len(self.shards), generator=generator).tolist()

    def shard_samples(self, pass_: int, shard: int) -> list[ShardSample]:
        """The samples of shard ``shard`` in the order pass ``pass_`` reads them."""
        if self._scanned is None or self._scanned[:2] != (pass_, shard):
            samples = scan_shard(self.shards[shard])
            generator = torch.Generator().manual_seed((self.seed * 1_000_003 + pass_) * 1_000_033 + shard)
            order = torch.randperm(len(samples), generator=generator).tolist()
            self._scanned = (pass_, shard, [samples[i] for i in order])
        return self._scanned[2]

    def stream(self, cursor: Cursor) -> Iterator[tuple[int, ShardSample, Cursor]]:
        """``(shard, sample, position after it)`` from ``cursor`` on, for ever; :class:`InputError` if a whole
        pass finds no sample."""
        pass_, position, index = cursor
        while True:
            order, found = self.shard_order(pass_), False
            while position < len(order):
                shard = order[position]
                samples = self.shard_samples(pass_, shard)
                while index < len(samples):
                    found = True
                    index += 1
                    yield shard, samples[index - 1], (pass_, position, index)
                position, index = position + 1, 0
            if not found and cursor == (pass_, 0, 0):
                raise InputError(f"{self.shards[0]}...: the shards hold no samples")
            pass_, position, index = pass_ + 1, 0, 0
            cursor = (pass_, 0, 0)

    def pixels(self, shard: int, sample: ShardSample) -> torch.Tensor:
        """The preprocessed image of ``sample`` (:class:`InputError` if it does not decode)."""
        assert sample.image is not None
        path = self.shards[shard]
        image = decode_image(self._reader.read(path, sample.image), f"{path}:{sample.image_name}")
        return self.preprocess(image)

    def caption(self, shard: int, sample: ShardSample) -> str:
        """The caption of ``sample``."""
        assert sample.caption is not None
        return self._reader.read(self.shards[shard], sample.caption).decode("utf-8", errors="replace").strip()

    def close(self) -> None:
        """Close the shard file held open for reading."""
        self._reader.close()

    def loader(
        self,
        *,
        cursor: Cursor,
        start_step: int,
        stop: int,
        global_batch: int,
        rank: int,
        world_size: int,
        workers: int,
        collate: Callable[[list[tuple[torch.Tensor, str]]], tuple[torch.Tensor, torch.Tensor]],
    ) -> DataLoader[ShardBatch]:
        """A loader of this process's :class:`ShardBatch` for updates ``start_step .. stop - 1``, the stream
        starting at ``cursor``."""
        if global_batch % world_size:
            raise InputError(f"the batch size ({global_batch}) must be a multiple of the process count ({world_size})")
        steps = _StepStream(self, cursor, start_step, stop, global_batch, rank, world_size, collate)
        return DataLoader(steps, batch_size=None, num_workers=workers, persistent_workers=False)


class _StepStream(IterableDataset[ShardBatch]):
    def __init__(
        self,
        pairs: ShardPairs,
        cursor: Cursor,
        start: int,
        stop: int,
        global_batch: int,
        rank: int,
        world_size: int,
        collate: Callable[[list[tuple[torch.Tensor, str]]], tuple[torch.Tensor, torch.Tensor]],
    ) -> None:
        self.pairs, self.start, self.stop = pairs, start, stop
        self.cursor: Cursor = (cursor[0], cursor[1], cursor[2])
        self.global_batch, self.rank, self.world_size, self.collate = global_batch, rank, world_size, collate

    def __iter__(self) -> Iterator[ShardBatch]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        stream = self.pairs.stream(self.cursor)
        try:
            yield from self._batches(stream, worker, workers)
        finally:
            self.pairs.close()

    def _batches(
        self, stream: Iterator[tuple[int, ShardSample, Cursor]], worker: int, workers: int
    ) -> Iterator[ShardBatch]:
        local = self.global_batch // self.world_size
        for step in range(self.start, self.stop):
            chosen: list[tuple[int, ShardSample]] = []
            incomplete = 0
            while len(chosen) < self.global_batch:
                shard, sample, cursor = next(stream)  # the stream never ends
                if sample.complete:
                    chosen.append((shard, sample))
                else:
                    incomplete += 1
            if (step - self.start) % workers != worker:
                continue
            mine = chosen[self.rank * local : (self.rank + 1) * local]
            items, failed = self._read(mine)
            pixels, ids = self.collate(items)
            yield ShardBatch(pixels, ids, cursor, failed + (incomplete if self.rank == 0 else 0))

    def _read(self, samples: list[tuple[int, ShardSample]]) -> tuple[list[tuple[torch.Tensor, str]], int]:
        items: list[tuple[torch.Tensor, str] | None] = []
        for shard, sample in samples:
            try:
                items.append((self.pairs.pixels(shard, sample), self.pairs.caption(shard, sample)))
            except InputError:
                items.append(None)
        good = [item for item in items if item is not None]
        if not good:
            where = ", ".join(f"{self.pairs.shards[shard]}:{sample.key}" for shard, sample in samples[:3])
            raise InputError(f"no image of a whole batch slice decodes ({where}...)")
        filled = [item if item is not None else good[i % len(good)] for i, item in enumerate(items)]
        return filled, len(items) - len(good)
