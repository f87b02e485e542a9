"""The resumable, sharded embedding job: batches of embedded sources to an embeddings file, resumable after a kill.

The embed functions (:mod:`clip_core.embedding.functions`) and anything else that embeds many sources hand an
:class:`EmbeddingJob` an ``encode(positions)`` that yields :class:`EmbeddedBatch` es; the job decides which
sources are still to do, keeps the work durable and gathers the result.

The work happens in a folder beside the output, ``OUT.partial/`` (e.g. ``embeddings.safetensors.partial/``):

- ``manifest.json``: the job (modality, the model's card and weight fingerprint, ``normalize``, ``dtype``, output
  format), written once when the job starts. A restart whose job differs in any of these is refused.
- ``NNNNNN.safetensors``: the embeddings of one shard (``shard_size`` sources), written to a temporary name,
  synced and renamed into place.
- ``progress.jsonl``: append-only, one line per shard, appended (and synced) only after the shard's file is
  durable: the shard's file name, the sources whose rows it holds, in order, and the sources found unreadable.
- ``lock``: locked by the running job (an OS lock, released by a kill), so that two jobs never write one output.

Under ``torchrun`` (see :mod:`clip_core.embedding.ranks`) process ``r > 0`` writes ``NNNNNN.rR.safetensors``,
``progress.R.jsonl`` and ``lock.R`` of its own beside process 0's, so that no two processes write one file.

A restart with the same job reads the progress, skips every source already recorded, and carries on with the
rest; a shard written but not recorded is simply redone, and so is one whose record the kill tore (the last line,
dropped). Any other damage (a corrupt record before the last, a recorded shard gone or unreadable) is an
:class:`~clip_core.errors.InputError` leaving the log as it is, and an I/O error propagates: finished work is never
discarded on a guess. So no source is lost or embedded twice. At the end the rows are gathered in the order of the
sources given (the same file an uninterrupted run writes), written beside their index and manifest (see
:mod:`clip_core.embedding.file`), and the folder is removed. The sources may change between runs: rows of sources
no longer given are left out.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from clip_core.durable import write_atomically, write_safetensors
from clip_core.embedding.file import (
    EMBEDDINGS_FORMAT,
    EMBEDDINGS_KEY,
    index_path,
    manifest_path,
    output_format,
    write_embeddings,
)
from clip_core.errors import InputError
from clip_core.fingerprint import model_fingerprint
from clip_core.model import ClipModel, tower_dtype
from clip_core.processes import start_processes

__all__ = ["EmbedResult", "EmbeddedBatch", "EmbeddingJob", "Skipped", "partial_folder"]

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


@dataclass
class EmbeddedBatch:
    """Embedded sources (positions in the job's source list), their rows, and the sources that failed."""

    positions: list[int]
    vectors: torch.Tensor
    failures: list[tuple[int, str]]


@dataclass
class _Done:
    """What earlier runs recorded: the shard and row of each embedded source, the error of each skipped one."""

    rows: dict[str, tuple[str, int]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    #: Shards recorded in this process's own progress file.
    own_shards: int = 0

    def __contains__(self, key: str) -> bool:
        return key in self.rows or key in self.skipped


class EmbeddingJob:
    """One embedding job: its identity, its sources, its work folder.

    ``keys`` name the sources, one each (what the progress log records), and ``entries`` are their rows in the
    index; ``model``, ``normalize`` (and any further ``options``, such as a text job's ``long_text``), the output
    format and ``fingerprint`` make the job's identity, which a resumed run must match. ``batch_size`` is how many
    sources the ``encode`` given to :meth:`run` embeds at a time (it cuts the positions it is given into batches of
    that size, in order): under ``torchrun`` each process's share is whole batches of it.
    """

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
        batch_size: int,
        model_source: str | None,
        fingerprint: str | None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.modality = modality
        self.keys = keys
        self.entries = entries
        self.output = output
        self.shard_size = shard_size
        self.batch_size = batch_size
        self.folder = partial_folder(output)
        dtype = tower_dtype(model.visual) or torch.float32
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
                    "options": {"normalize": normalize, "dtype": str(dtype).removeprefix("torch."), **(options or {})},
                }
            )
        )
        self.model_source = model_source or model.card.name
        #: This process's rank among the job's processes (see :mod:`clip_core.embedding.ranks`).
        self.rank = 0

    @property
    def progress_file(self) -> Path:
        """This process's progress log."""
        return self.folder / (_PROGRESS if self.rank == 0 else f"progress.{self.rank}.jsonl")

    def run(
        self,
        encode: Callable[[list[int]], Iterator[EmbeddedBatch]],
        *,
        overwrite: bool,
        progress: bool | None,
        on_shard: Callable[[int], None] | None,
    ) -> EmbedResult:
        """Embed the sources not yet recorded, ``encode(positions)`` yielding their batches, and write the output.

        ``overwrite``, ``progress`` and ``on_shard`` as in :func:`~clip_core.embedding.functions.embed_images`.
        """
        started = time.monotonic()
        processes = start_processes()
        if processes.world_size > 1:
            from clip_core.embedding.ranks import run_ranks

            return run_ranks(self, encode, processes, overwrite=overwrite, progress=progress, on_shard=on_shard)
        with self._lock():
            self._start(overwrite)
            done = self._resume()
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
        lock = FileLock(self.folder / (_LOCK if self.rank == 0 else f"{_LOCK}.{self.rank}"))
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

    def _start(self, overwrite: bool) -> None:
        """Start the job (or find it started); with ``overwrite`` discard earlier work first."""
        if overwrite:
            for path in self.folder.iterdir():
                if path.is_dir():
                    shutil.rmtree(path)
                elif not path.name.startswith(_LOCK):
                    path.unlink()
        if (self.folder / _JOB).exists():
            return
        beside = (self.output, index_path(self.output), manifest_path(self.output))
        existing = [path for path in beside if path.exists()]
        if existing and not overwrite:
            raise InputError(f"{existing[0]} exists; pass --overwrite (overwrite=True) to replace it")
        write_atomically(self.folder / _PROGRESS, lambda file: None)
        job = json.dumps(self.identity, indent=2) + "\n"
        write_atomically(self.folder / _JOB, lambda file: file.write(job.encode("utf-8")))  # last: the job exists

    def _resume(self) -> _Done:
        """What every process of this job recorded; this process's own progress file is cut after its last
        valid line (a line torn by a kill is dropped with its shard)."""
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
        for progress in sorted(self.folder.glob("progress*.jsonl")):
            recorded_shards = self._read_progress(progress, done)
            if progress == self.progress_file:
                done.own_shards = recorded_shards
        return done

    def _read_progress(self, progress: Path, done: _Done) -> int:
        """Add one process's progress file to ``done``; the number of shards it records.

        A last line torn by a kill is dropped (its shard is redone), and only then is the file rewritten, and only
        this process's own; any other damage is an :class:`InputError` leaving the file as it is.
        """
        lines = [line for line in progress.read_bytes().split(b"\n") if line.strip()]
        for number, line in enumerate(lines, 1):
            record = _parse_record(line)
            if record is None:
                if number == len(lines):  # the last line, torn by a kill mid-write: its shard is redone
                    if progress == self.progress_file:
                        kept = b"".join(line + b"\n" for line in lines[:-1])
                        write_atomically(progress, lambda file: file.write(kept))  # noqa: B023 (called at once)
                    return number - 1
                raise InputError(f"{progress}: line {number} is not a progress record; pass --overwrite to start over")
            self._check_shard(record, f"{progress}: line {number}")
            shard = record["shard"]
            for row, key in enumerate(record["done"]):
                done.rows[key] = (shard, row)
            for key, error in record["skipped"]:
                done.skipped[key] = error
        return len(lines)

    def _check_shard(self, record: dict[str, Any], where: str) -> None:
        """The shard ``record`` names holds its rows; else :class:`InputError` (an I/O error reading it propagates)."""
        from safetensors import SafetensorError

        shard, keys = record["shard"], record["done"]
        if not keys:
            return
        try:
            with safe_open(str(self.folder / shard), framework="pt") as file:
                rows = file.get_slice(EMBEDDINGS_KEY).get_shape()[0]
        except FileNotFoundError:
            raise InputError(f"{where} records {shard}, which is missing; pass --overwrite to start over") from None
        except SafetensorError as exc:
            raise InputError(f"{where} records {shard}, which is unreadable ({exc}); pass --overwrite") from None
        if rows != len(keys):
            raise InputError(f"{where} records {len(keys)} rows but {shard} holds {rows}; pass --overwrite")

    def _embed(
        self,
        batches: Iterator[EmbeddedBatch],
        done: _Done,
        bar: Any,
        on_shard: Callable[[int], None] | None,
    ) -> None:
        written = 0
        buffered: list[EmbeddedBatch] = []
        with open(self.progress_file, "ab") as log:
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

    def _write_shard(self, batches: list[EmbeddedBatch], done: _Done, log: IO[bytes]) -> None:
        done.own_shards += 1
        keys = [self.keys[position] for batch in batches for position in batch.positions]
        failures = [[self.keys[position], error] for batch in batches for position, error in batch.failures]
        rank = "" if self.rank == 0 else f".r{self.rank}"
        shard = f"{done.own_shards:06d}{rank}.safetensors"
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
        if not positions and skipped:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise InputError(
                f"none of the {len(skipped)} {self.modality}s could be read (the first: {skipped[0].source}: "
                f"{skipped[0].error}); nothing written to {self.output}"
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


def _parse_record(line: bytes) -> dict[str, Any] | None:
    """A progress line as its record, or None if it is not one (a line torn mid-write, or damaged)."""
    try:
        record = json.loads(line)
    except ValueError:  # not JSON, or not UTF-8
        return None
    fields = ("shard", str), ("done", list), ("skipped", list)
    if not (isinstance(record, dict) and all(isinstance(record.get(name), kind) for name, kind in fields)):
        return None
    return record


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


def _progress_bar(total: int, initial: int, modality: str, enabled: bool | None) -> Any:
    if enabled is False:
        return None
    if enabled is None and not sys.stderr.isatty():
        return None
    from tqdm import tqdm  # type: ignore[import-untyped]

    return tqdm(total=total, initial=initial, unit=f" {modality}s", dynamic_ncols=True, desc="embedding")
