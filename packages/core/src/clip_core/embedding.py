"""The embedding job behind ``clip embed``: images or texts to an embeddings file, resumable after a kill.

The work happens in a folder beside the output, ``OUT.partial/`` (e.g. ``embeddings.safetensors.partial/``):

- ``manifest.json``: the job (modality, the model's card and weight fingerprint, ``normalize``, ``dtype``, output
  format), written once when the job starts. A restart whose job differs in any of these is refused.
- ``NNNNNN.safetensors``: the embeddings of one shard (``shard_size`` sources), written to a temporary name,
  synced and renamed into place.
- ``progress.jsonl``: append-only, one line per shard, appended (and synced) only after the shard's file is
  durable: the shard's file name, the sources whose rows it holds, in order, and the sources found unreadable.
- ``lock``: locked by the running job (an OS lock, released by a kill), so that two jobs never write one output.

A restart with the same job reads the progress (a line torn by the kill is dropped with its shard), skips every
source already recorded, and carries on with the rest; a shard written but not recorded is simply redone. So no
source is lost or embedded twice. At the end the rows are gathered in the order of the sources given (the same
file an uninterrupted run writes), written beside their index and manifest (see :mod:`clip_core.embeddingfile`),
and the folder is removed. The sources may change between runs: rows of sources no longer given are left out.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file
from torch.utils.data import DataLoader, Dataset

from clip_core.durable import write_atomically, write_safetensors
from clip_core.embeddingfile import (
    EMBEDDINGS_FORMAT,
    EMBEDDINGS_KEY,
    index_path,
    manifest_path,
    output_format,
    write_embeddings,
)
from clip_core.errors import InputError
from clip_core.fingerprint import model_fingerprint
from clip_core.imagefiles import read_pixels
from clip_core.model import ClipModel
from clip_core.preprocess import ImagePreprocess, get_preprocess
from clip_core.protocols import Tokenizer
from clip_core.tokenizer import get_tokenizer

__all__ = ["EmbedResult", "Skipped", "embed_images", "embed_texts", "partial_folder", "read_texts"]

_PROGRESS = "progress.jsonl"
_JOB = "manifest.json"
_LOCK = "lock"


@dataclass(frozen=True)
class Skipped:
    """A source that could not be embedded (an unreadable image), and why."""

    source: str
    error: str


@dataclass(frozen=True)
class EmbedResult:
    """What an embedding job wrote."""

    #: The embeddings file, its index and its manifest.
    output: Path
    index: Path
    manifest: Path
    #: Rows written (sources embedded) and their width.
    rows: int
    embed_dim: int
    #: Unreadable sources, in source order.
    skipped: tuple[Skipped, ...]
    #: Sources (embedded or skipped) found done by an earlier, interrupted run of the same job.
    resumed: int
    #: Wall time of this run, in seconds.
    seconds: float


def partial_folder(output: str | os.PathLike[str]) -> Path:
    """The work folder of a job writing ``output``: ``OUT.partial`` beside it (removed when the job completes)."""
    path = Path(output)
    return path.with_name(f"{path.name}.partial")


def embed_images(
    model: ClipModel,
    sources: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    preprocess: ImagePreprocess | None = None,
    batch_size: int = 32,
    workers: int = 0,
    normalize: bool = True,
    shard_size: int = 1024,
    overwrite: bool = False,
    progress: bool | None = False,
    model_source: str | None = None,
    fingerprint: str | None = None,
    on_shard: Callable[[int], None] | None = None,
) -> EmbedResult:
    """Embed image files into ``output`` (``.safetensors`` or ``.npy``) with an index and manifest beside it.

    Images are read as :func:`clip_core.imagefiles.read_image` reads them and preprocessed by ``preprocess``
    (default: the card's), ``batch_size`` at a time, in a ``DataLoader`` with ``workers`` worker processes, then
    embedded on the model's device in the model's dtype and mode (call ``model.eval()`` first) and stored as
    float32, L2-normalised unless ``normalize`` is false. Unreadable images are skipped and listed in the result
    and the manifest, never fatal. The job resumes after an interruption (see the module docstring): calling again
    with the same arguments carries on, while a different model or options raise :class:`InputError`; an existing
    output is replaced only with ``overwrite``, which also discards unfinished work.

    ``model_source`` says where the model came from (recorded in the manifest); ``fingerprint`` is the model's
    :func:`~clip_core.fingerprint.model_fingerprint`, computed here unless given (give it when the model was
    converted to another dtype after loading). ``progress``: a tqdm bar on stderr (None: when stderr is a terminal).
    ``on_shard(count)`` is called after each shard is durably recorded.
    """
    paths = [os.fspath(source) for source in sources]
    if not paths:
        raise InputError("there are no images to embed")
    pixels = preprocess or get_preprocess(model.card)
    _check_sizes(batch_size, shard_size, workers)

    def encode(positions: list[int]) -> Iterator[_Batch]:
        dataset = _ImageFiles([paths[position] for position in positions], pixels)
        device = _device(model)
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=workers,
            collate_fn=_collate,
            pin_memory=device.type == "cuda",
        )
        for loaded in loader:
            failures = [(positions[i], error) for i, error in loaded.failures]
            vectors = torch.empty(0, model.embed_dim)
            if loaded.pixels is not None:
                with torch.inference_mode():
                    features = model.encode_image(loaded.pixels.to(device, non_blocking=True)).float()
                vectors = (F.normalize(features, dim=-1) if normalize else features).cpu()
            yield _Batch([positions[i] for i in loaded.indices], vectors, failures)

    return _Job(
        model=model,
        modality="image",
        keys=paths,
        entries=[{"source": path} for path in paths],
        output=Path(output),
        normalize=normalize,
        shard_size=shard_size,
        model_source=model_source,
        fingerprint=fingerprint,
    ).run(encode, overwrite=overwrite, progress=progress, on_shard=on_shard)


def embed_texts(
    model: ClipModel,
    texts: Sequence[str],
    output: str | os.PathLike[str],
    *,
    tokenizer: Tokenizer | None = None,
    batch_size: int = 32,
    normalize: bool = True,
    shard_size: int = 1024,
    overwrite: bool = False,
    progress: bool | None = False,
    model_source: str | None = None,
    fingerprint: str | None = None,
    on_shard: Callable[[int], None] | None = None,
) -> EmbedResult:
    """Embed texts into ``output``, row ``i`` holding ``texts[i]``; the index lists each row's text.

    Tokenized by ``tokenizer`` (default: the card's); everything else as :func:`embed_images`.
    """
    if not texts:
        raise InputError("there are no texts to embed")
    tokenize = tokenizer or get_tokenizer(model.card)
    _check_sizes(batch_size, shard_size, 0)

    def encode(positions: list[int]) -> Iterator[_Batch]:
        device = _device(model)
        for start in range(0, len(positions), batch_size):
            chunk = positions[start : start + batch_size]
            with torch.inference_mode():
                ids = tokenize([texts[position] for position in chunk]).to(device)
                features = model.encode_text(ids).float()
            yield _Batch(chunk, (F.normalize(features, dim=-1) if normalize else features).cpu(), [])

    return _Job(
        model=model,
        modality="text",
        keys=[f"{position}:{text}" for position, text in enumerate(texts)],
        entries=[{"text": text} for text in texts],
        output=Path(output),
        normalize=normalize,
        shard_size=shard_size,
        model_source=model_source,
        fingerprint=fingerprint,
    ).run(encode, overwrite=overwrite, progress=progress, on_shard=on_shard)


def read_texts(path: str | os.PathLike[str]) -> list[str]:
    """The texts of a UTF-8 text file, one per line; blank lines are skipped. :class:`InputError` if there are none."""
    source = Path(path)
    try:
        lines = source.read_text(encoding="utf-8").split("\n")  # not splitlines: a text may hold \x0c or \u2028
    except FileNotFoundError:
        raise InputError(f"{source}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{source}: cannot read this text file ({exc})") from None
    texts = [line for line in lines if line.strip()]
    if not texts:
        raise InputError(f"{source}: no texts in this file")
    return texts


@dataclass
class _Batch:
    """Embedded sources (positions in the job's source list), their rows, and the sources that failed."""

    positions: list[int]
    vectors: torch.Tensor
    failures: list[tuple[int, str]]


@dataclass
class _Done:
    """What earlier runs recorded: the shard and row of each embedded source, the error of each skipped one."""

    rows: dict[str, tuple[str, int]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    shards: int = 0

    def __contains__(self, key: str) -> bool:
        return key in self.rows or key in self.skipped


class _Job:
    """One embedding job: its identity, its sources, its work folder."""

    def __init__(
        self,
        *,
        model: ClipModel,
        modality: str,
        keys: list[str],
        entries: list[dict[str, Any]],
        output: Path,
        normalize: bool,
        shard_size: int,
        model_source: str | None,
        fingerprint: str | None,
    ) -> None:
        self.model = model
        self.modality = modality
        self.keys = keys
        self.entries = entries
        self.output = output
        self.shard_size = shard_size
        self.folder = partial_folder(output)
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
        self.identity: dict[str, Any] = json.loads(
            json.dumps(
                {
                    "format": EMBEDDINGS_FORMAT,
                    "modality": modality,
                    "output_format": output_format(output),
                    "model": {
                        "card": model.card.model_dump(mode="json"),
                        "fingerprint": fingerprint or model_fingerprint(model),
                    },
                    "options": {"normalize": normalize, "dtype": str(dtype).removeprefix("torch.")},
                }
            )
        )
        self.model_source = model_source or model.card.name

    def run(
        self,
        encode: Callable[[list[int]], Iterator[_Batch]],
        *,
        overwrite: bool,
        progress: bool | None,
        on_shard: Callable[[int], None] | None,
    ) -> EmbedResult:
        started = time.monotonic()
        with self._lock():
            done = self._start(overwrite)
            pending = [position for position, key in enumerate(self.keys) if key not in done]
            resumed = len(self.keys) - len(pending)
            bar = _progress_bar(len(self.keys), resumed, self.modality, progress)
            try:
                if pending:
                    self._embed(encode(pending), done, bar, on_shard)
            finally:
                if bar is not None:
                    bar.close()
            return self._finish(done, resumed, time.monotonic() - started)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Hold the work folder's lock (an OS lock: a killed job leaves none); a folder left without a job goes."""
        from filelock import FileLock, Timeout

        self.folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.folder / _LOCK)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise InputError(f"another job is writing {self.output} right now (it holds {lock.lock_file})") from None
        try:
            yield
        finally:
            lock.release()
            if self.folder.exists() and not (self.folder / _JOB).exists():
                shutil.rmtree(self.folder, ignore_errors=True)

    def _start(self, overwrite: bool) -> _Done:
        if overwrite:
            for path in self.folder.iterdir():
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.name != _LOCK:
                    path.unlink()
        if (self.folder / _JOB).exists():
            return self._resume()
        beside = (self.output, index_path(self.output), manifest_path(self.output))
        existing = [path for path in beside if path.exists()]
        if existing and not overwrite:
            raise InputError(f"{existing[0]} exists; pass --overwrite (overwrite=True) to replace it")
        write_atomically(self.folder / _PROGRESS, lambda file: None)
        job = json.dumps(self.identity, indent=2) + "\n"
        write_atomically(self.folder / _JOB, lambda file: file.write(job.encode("utf-8")))  # last: the job exists
        return _Done()

    def _resume(self) -> _Done:
        try:
            recorded = json.loads((self.folder / _JOB).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise InputError(f"{self.folder / _JOB}: unreadable; pass --overwrite to start over") from None
        differences = _differences(recorded, self.identity)
        if differences:
            raise InputError(
                f"refusing to resume the unfinished job in {self.folder}: {'; '.join(differences[:3])}; "
                "rerun with the same model and options, or pass --overwrite to start over"
            )
        done = _Done()
        kept: list[bytes] = []
        progress = self.folder / _PROGRESS
        lines = progress.read_bytes().split(b"\n") if progress.exists() else []
        for line in lines:
            if not line.strip():
                continue
            record = self._valid_record(line)
            if record is None:  # torn by the kill, or its shard is gone: redo it and everything after it
                break
            kept.append(line + b"\n")
            done.shards += 1
            shard = record["shard"]
            for row, key in enumerate(record["done"]):
                done.rows[key] = (shard, row)
            for key, error in record["skipped"]:
                done.skipped[key] = error
        write_atomically(progress, lambda file: file.write(b"".join(kept)))
        return done

    def _valid_record(self, line: bytes) -> dict[str, Any] | None:
        try:
            record = json.loads(line)
            shard, keys, skipped = record["shard"], record["done"], record["skipped"]
            if not (isinstance(keys, list) and isinstance(skipped, list)):
                return None
            if keys:
                with safe_open(str(self.folder / shard), framework="pt") as file:
                    if file.get_slice(EMBEDDINGS_KEY).get_shape()[0] != len(keys):
                        return None
        except Exception:
            return None
        return dict(record)

    def _embed(
        self,
        batches: Iterator[_Batch],
        done: _Done,
        bar: Any,
        on_shard: Callable[[int], None] | None,
    ) -> None:
        written = 0
        buffered: list[_Batch] = []
        with open(self.folder / _PROGRESS, "ab") as log:
            for batch in batches:
                buffered.append(batch)
                if bar is not None:
                    bar.update(len(batch.positions) + len(batch.failures))
                if sum(len(b.positions) + len(b.failures) for b in buffered) >= self.shard_size:
                    self._write_shard(buffered, done, log)
                    buffered, written = [], written + 1
                    if on_shard is not None:
                        on_shard(written)
            if buffered:
                self._write_shard(buffered, done, log)
                if on_shard is not None:
                    on_shard(written + 1)

    def _write_shard(self, batches: list[_Batch], done: _Done, log: IO[bytes]) -> None:
        done.shards += 1
        keys = [self.keys[position] for batch in batches for position in batch.positions]
        failures = [[self.keys[position], error] for batch in batches for position, error in batch.failures]
        shard = f"{done.shards:06d}.safetensors"
        if keys:
            vectors = torch.cat([batch.vectors for batch in batches]).contiguous()
            write_safetensors(self.folder / shard, {EMBEDDINGS_KEY: vectors}, {"format": EMBEDDINGS_FORMAT})
        record = {"shard": shard, "done": keys, "skipped": failures}
        log.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
        log.flush()
        os.fsync(log.fileno())
        for row, key in enumerate(keys):
            done.rows[key] = (shard, row)
        for key, error in failures:
            done.skipped[key] = error

    def _stored_rows(self, places: list[tuple[str, int]]) -> Iterator[torch.Tensor]:
        """The stored embeddings at ``places`` (shard, row), in order, as runs of rows from one shard: one shard is
        in memory at a time, so the output is written without assembling the whole matrix."""
        loaded: tuple[str, torch.Tensor] | None = None
        for shard, run in itertools.groupby(places, key=lambda place: place[0]):
            if loaded is None or loaded[0] != shard:
                loaded = (shard, load_file(self.folder / shard)[EMBEDDINGS_KEY])
            yield loaded[1][[row for _, row in run]].to(torch.float32)

    def _finish(self, done: _Done, resumed: int, seconds: float) -> EmbedResult:
        positions = [position for position, key in enumerate(self.keys) if key in done.rows]
        skipped = tuple(
            Skipped(str(self.entries[position].get("source", key)), done.skipped[key])
            for position, key in enumerate(self.keys)
            if key in done.skipped and key not in done.rows
        )
        manifest = {
            "format": self.identity["format"],
            "modality": self.modality,
            "embeddings": self.output.name,
            "index": index_path(self.output).name,
            "rows": len(positions),
            "embed_dim": self.model.embed_dim,
            "skipped": [{"source": item.source, "error": item.error} for item in skipped],
            "completed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **self.identity,
            "model": {"source": self.model_source, **self.identity["model"]},
        }
        rows = self._stored_rows([done.rows[self.keys[position]] for position in positions])
        entries = [self.entries[position] for position in positions]
        write_embeddings(self.output, rows, entries, manifest, dim=self.model.embed_dim)
        shutil.rmtree(self.folder, ignore_errors=True)
        return EmbedResult(
            output=self.output,
            index=index_path(self.output),
            manifest=manifest_path(self.output),
            rows=len(positions),
            embed_dim=self.model.embed_dim,
            skipped=skipped,
            resumed=resumed,
            seconds=seconds,
        )


@dataclass
class _Loaded:
    """A collated batch of image files: the good ones' dataset indices and pixels, the bad ones' errors."""

    indices: list[int]
    pixels: torch.Tensor | None
    failures: list[tuple[int, str]]


class _ImageFiles(Dataset[tuple[int, torch.Tensor | None, str]]):
    """Image files read and preprocessed; an unreadable file gives ``(index, None, reason)`` instead of raising."""

    def __init__(self, paths: list[str], preprocess: ImagePreprocess) -> None:
        self.paths = paths
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str]:
        path = self.paths[index]
        try:
            return index, read_pixels(path, self.preprocess), ""
        except InputError as exc:
            return index, None, str(exc).removeprefix(f"{path}: ")


def _collate(items: list[tuple[int, torch.Tensor | None, str]]) -> _Loaded:
    good = [(index, pixels) for index, pixels, _ in items if pixels is not None]
    failures = [(index, error) for index, pixels, error in items if pixels is None]
    pixels = torch.stack([pixels for _, pixels in good]) if good else None
    return _Loaded([index for index, _ in good], pixels, failures)


def _differences(recorded: Mapping[str, Any], current: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Human-readable differences between two job descriptions (nested dicts)."""
    out: list[str] = []
    for key in sorted(set(recorded) | set(current)):
        was, now = recorded.get(key), current.get(key)
        if isinstance(was, Mapping) and isinstance(now, Mapping):
            out += _differences(was, now, f"{prefix}{key}.")
        elif was != now:
            out.append(f"{prefix}{key} was {_short(was)}, now {_short(now)}")
    return out


def _short(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _device(model: ClipModel) -> torch.device:
    return next((parameter.device for parameter in model.parameters()), torch.device("cpu"))


def _check_sizes(batch_size: int, shard_size: int, workers: int) -> None:
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    if shard_size < 1:
        raise InputError(f"shard size must be at least 1, got {shard_size}")
    if workers < 0:
        raise InputError(f"workers must be 0 or more, got {workers}")


def _progress_bar(total: int, initial: int, modality: str, enabled: bool | None) -> Any:
    if enabled is False:
        return None
    if enabled is None and not sys.stderr.isatty():
        return None
    from tqdm import tqdm  # type: ignore[import-untyped]

    return tqdm(total=total, initial=initial, unit=f" {modality}s", dynamic_ncols=True, desc="embedding")
