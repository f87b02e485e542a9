"""Image-caption data sets: reading pairs from a CSV, a JSONL file or a folder, and batching them by update step.

A data set is a list of :class:`Pair` (an image file and its caption). ``read_pairs`` reads one from

- a **CSV** file with a header row: one column holds image paths, another the captions;
- a **JSONL** file: one JSON object per line, with the same two keys;
- a **folder** of images (``.png``, ``.jpg``, ``.jpeg``, ``.webp``, ``.bmp``, ``.gif``, searched recursively),
  each captioned by the ``.txt`` file of the same name beside it.

Relative image paths in a CSV or JSONL file are relative to that file's folder. Every image file is checked to
exist when the pairs are read, so a typo fails at once, naming the file and the line.

Which pairs form each update is a function of the seed and the step only (:class:`StepBatches`): the data are
shuffled once per epoch by a generator seeded from ``(seed, epoch)``, cut into global batches, and each process
takes its contiguous slice of each global batch. A run resumed at step ``k`` therefore sees exactly the batches an
uninterrupted run sees from step ``k`` on, whatever the number of processes.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from clip_core.errors import InputError
from clip_core.protocols import Tokenizer

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageCaptionDataset",
    "Pair",
    "PairCollator",
    "StepBatches",
    "TensorPairs",
    "read_pairs",
]

#: Image file suffixes a folder data set is made of.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


@dataclass(frozen=True)
class Pair:
    """One training example: an image file and its caption."""

    image: Path
    caption: str


def read_pairs(
    source: str | os.PathLike[str], image_column: str = "image", caption_column: str = "caption"
) -> list[Pair]:
    """The image-caption pairs of a CSV file, a JSONL file or a folder (see the module's documentation).

    ``image_column`` and ``caption_column`` name the CSV columns or JSON keys. Raises :class:`InputError` for a
    missing file, an unknown format, a missing column, an empty caption, a missing image or an empty data set,
    naming the file (and line).
    """
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path}: no such data file or folder")
    if path.is_dir():
        pairs = _read_folder(path)
    elif path.suffix.lower() == ".csv":
        pairs = _read_csv(path, image_column, caption_column)
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        pairs = _read_jsonl(path, image_column, caption_column)
    else:
        raise InputError(f"{path}: unknown data format (expected a .csv or .jsonl file, or a folder of images)")
    if not pairs:
        raise InputError(f"{path}: no image-caption pairs")
    return pairs


def _read_csv(path: Path, image_column: str, caption_column: str) -> list[Pair]:
    pairs = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        for column, option in ((image_column, "--image-column"), (caption_column, "--caption-column")):
            if column not in columns:
                raise InputError(
                    f"{path}: no column {column!r} (columns: {', '.join(columns) or 'none'}); name it with {option}"
                )
        for row in reader:
            pairs.append(_pair(path, reader.line_num, row.get(image_column), row.get(caption_column)))
    return pairs


def _read_jsonl(path: Path, image_key: str, caption_key: str) -> list[Pair]:
    pairs = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise InputError(f"{path}:{number}: not JSON ({exc})") from None
            if not isinstance(record, dict):
                raise InputError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            for key, option in ((image_key, "--image-column"), (caption_key, "--caption-column")):
                if key not in record:
                    raise InputError(
                        f"{path}:{number}: no key {key!r} (keys: {', '.join(map(str, record)) or 'none'}); "
                        f"name it with {option}"
                    )
            pairs.append(_pair(path, number, record[image_key], record[caption_key]))
    return pairs


def _pair(path: Path, line: int, image: object, caption: object) -> Pair:
    where = f"{path}:{line}"
    if not isinstance(image, str) or not image:
        raise InputError(f"{where}: the image path is empty or not a string")
    if not isinstance(caption, str) or not caption.strip():
        raise InputError(f"{where}: the caption is empty or not a string")
    file = Path(image) if Path(image).is_absolute() else path.parent / image
    if not file.is_file():
        raise InputError(f"{where}: image {file} does not exist")
    return Pair(file, caption)


def _read_folder(folder: Path) -> list[Pair]:
    pairs = []
    for file in sorted(folder.rglob("*")):
        if file.suffix.lower() not in IMAGE_SUFFIXES or not file.is_file():
            continue
        text = file.with_suffix(".txt")
        if not text.is_file():
            raise InputError(f"{file}: no caption file {text.name} beside it")
        caption = text.read_text(encoding="utf-8").strip()
        if not caption:
            raise InputError(f"{text}: the caption is empty")
        pairs.append(Pair(file, caption))
    return pairs


class ImageCaptionDataset(Dataset[tuple[torch.Tensor, str]]):
    """Pairs as ``(pixels [3, H, W], caption)``: each image read with Pillow and preprocessed when asked for."""

    def __init__(self, pairs: Sequence[Pair], preprocess: Callable[[Image.Image], torch.Tensor]) -> None:
        self.pairs = list(pairs)
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        pair = self.pairs[index]
        try:
            with Image.open(pair.image) as image:
                image.load()
                return self.preprocess(image), pair.caption
        except OSError as exc:
            raise InputError(f"{pair.image}: cannot read the image ({exc})") from None


class TensorPairs(Dataset[tuple[torch.Tensor, str]]):
    """Pairs held in memory: preprocessed pixels ``[N, 3, H, W]`` and ``N`` captions (e.g. a generated set)."""

    def __init__(self, pixels: torch.Tensor, captions: Sequence[str]) -> None:
        if pixels.ndim != 4 or pixels.shape[0] != len(captions):
            raise InputError(
                f"TensorPairs needs pixels [N, 3, H, W] and N captions, got {tuple(pixels.shape)} and {len(captions)}"
            )
        self.pixels = pixels
        self.captions = list(captions)

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        return self.pixels[index], self.captions[index]


class PairCollator:
    """Turns a list of ``(pixels, caption)`` into ``(pixels [B, 3, H, W], ids [B, L])``, tokenizing the batch's
    captions in one call."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, items: Sequence[tuple[torch.Tensor, str]]) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = torch.stack([pixels for pixels, _ in items])
        return pixels, self.tokenizer([caption for _, caption in items])


class StepBatches(Sampler[list[int]]):
    """This process's indices for each update from ``start_step`` to ``total_steps - 1``.

    Update ``s`` uses global batch ``s % steps_per_epoch`` of epoch ``s // steps_per_epoch``, where an epoch is a
    permutation of the data drawn from a generator seeded with ``(seed, epoch)`` and cut into
    ``len(data) // global_batch`` global batches (the remainder is left out of that epoch). Process ``rank`` of
    ``world_size`` takes the ``rank``-th contiguous slice of each global batch, so the processes' slices,
    concatenated in rank order, are the global batch.
    """

    def __init__(
        self,
        size: int,
        global_batch: int,
        *,
        seed: int,
        start_step: int = 0,
        total_steps: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if global_batch % world_size:
            raise InputError(f"the batch size ({global_batch}) must be a multiple of the process count ({world_size})")
        if size < global_batch:
            raise InputError(f"the data set has {size} pairs, fewer than one batch ({global_batch})")
        self.size = size
        self.global_batch = global_batch
        self.seed = seed
        self.start_step = start_step
        self.total_steps = total_steps
        self.rank = rank
        self.world_size = world_size

    @property
    def steps_per_epoch(self) -> int:
        """Updates per pass over the data."""
        return self.size // self.global_batch

    def __len__(self) -> int:
        return max(self.total_steps - self.start_step, 0)

    def permutation(self, epoch: int) -> torch.Tensor:
        """The order of the data in ``epoch``."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.size, generator=generator)

    def indices(self, step: int) -> list[int]:
        """This process's slice of update ``step``'s global batch."""
        epoch, batch = divmod(step, self.steps_per_epoch)
        return self._slice(self.permutation(epoch), batch)

    def _slice(self, order: torch.Tensor, batch: int) -> list[int]:
        local = self.global_batch // self.world_size
        start = batch * self.global_batch + self.rank * local
        return [int(i) for i in order[start : start + local]]

    def __iter__(self) -> Iterator[list[int]]:
        epoch, order = -1, torch.empty(0, dtype=torch.long)
        for step in range(self.start_step, self.total_steps):
            step_epoch, batch = divmod(step, self.steps_per_epoch)
            if step_epoch != epoch:
                epoch, order = step_epoch, self.permutation(step_epoch)
            yield self._slice(order, batch)
