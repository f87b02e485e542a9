"""FAISS indices of embeddings files on disk: the folder, what it records, and searching it.

An index of ``E.npy`` (or ``E.safetensors``) is a folder, by default ``E.npy.faiss/``, holding:

- ``index.faiss``: the FAISS index of the file's rows, unit-normalised, searched by inner product (cosine);
- ``index.json``: the format, the kind (``flat``, ``hnsw``, ``ivf-pq``), the search parameters chosen when it was
  built and the recall@10 they reached then, and the embeddings file it indexes: its path (relative to the folder),
  size, modification time and SHA-256, and the model that made it (from the file's manifest).

Opening an index checks that the embeddings file is still the one it was built from (a stale index is an
:class:`~clip_core.errors.InputError`); results carry each row's source from the file's index, and every score is
the exact cosine similarity of the query and the row.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from clip_core.embedding.file import (
    EMBEDDINGS_KEY,
    _read_index,
    _read_manifest,
    index_path,
    manifest_path,
    output_format,
)
from clip_core.errors import ClipError, InputError
from clip_core.index.exact import SearchHit

__all__ = [
    "INDEX_FILE",
    "INDEX_FORMAT",
    "KINDS",
    "META_FILE",
    "EmbeddingIndex",
    "FileSignature",
    "default_index_path",
    "faiss_module",
    "open_index",
    "search_rows",
]

#: The ``format`` an index folder's ``index.json`` declares.
INDEX_FORMAT = "clip-index/1"
#: The FAISS index inside the folder.
INDEX_FILE = "index.faiss"
#: What the folder records about the index and the embeddings file it indexes.
META_FILE = "index.json"
#: The kinds of index ``clip index build`` makes.
KINDS = ("flat", "hnsw", "ivf-pq")


def faiss_module() -> ModuleType:
    """The ``faiss`` module; :class:`ClipError` naming the extra that installs it when it is missing."""
    try:
        import faiss
    except ImportError:
        raise ClipError("FAISS indices need faiss: pip install 'clip-core[faiss]'") from None
    return faiss


def default_index_path(embeddings: str | os.PathLike[str]) -> Path:
    """Where ``clip index build E.npy`` puts the index of ``E.npy`` unless told: ``E.npy.faiss`` beside it."""
    path = Path(embeddings)
    return path.with_name(f"{path.name}.faiss")


@dataclass(frozen=True)
class FileSignature:
    """What identifies a file's content: its size, modification time and SHA-256."""

    size: int
    mtime_ns: int
    sha256: str

    @classmethod
    def of(cls, path: Path) -> FileSignature:
        """The signature of ``path`` as it is now."""
        stat = path.stat()
        return cls(stat.st_size, stat.st_mtime_ns, _sha256(path))

    def matches(self, path: Path) -> bool:
        """Whether ``path`` still holds the content signed: the same size, and the same modification time or, when
        only that changed (a copy, a touch), the same SHA-256."""
        stat = path.stat()
        if stat.st_size != self.size:
            return False
        return stat.st_mtime_ns == self.mtime_ns or _sha256(path) == self.sha256


class EmbeddingIndex:
    """An opened index: :meth:`search` it with query vectors. Made by :func:`open_index`."""

    def __init__(self, path: Path, meta: Mapping[str, Any], index: Any, embeddings: Path) -> None:
        self.path = path
        self.meta = dict(meta)
        self.embeddings = embeddings
        self._index = index
        self.kind: str = str(meta["kind"])
        self.rows: int = int(meta["rows"])
        self.dim: int = int(meta["dim"])
        self.params: dict[str, int] = {str(key): int(value) for key, value in meta["params"].items()}

    @property
    def manifest(self) -> dict[str, Any] | None:
        """The embeddings file's manifest as it was when the index was built (what made the embeddings)."""
        manifest = self.meta["embeddings"].get("manifest")
        return dict(manifest) if isinstance(manifest, dict) else None

    @property
    def recall(self) -> float:
        """The recall@10 against exact search that the chosen parameters reached when the index was built."""
        return float(self.meta["recall_at_10"])

    @cached_property
    def labels(self) -> list[str]:
        """Each row's source path or text, from the embeddings file's index."""
        entries = _read_index(index_path(self.embeddings))
        if len(entries) != self.rows:
            raise InputError(f"{index_path(self.embeddings)} lists {len(entries)} rows, the index {self.rows}")
        return [str(entry.get("source", entry.get("text", ""))) for entry in entries]

    @cached_property
    def _vectors(self) -> np.ndarray[Any, Any]:
        return memmap_embeddings(self.embeddings)

    def search(self, queries: torch.Tensor | np.ndarray[Any, Any], top_k: int = 10) -> list[list[SearchHit]]:
        """The ``top_k`` rows most similar to each query vector ``[Q, dim]``, best first, with exact cosine scores."""
        if top_k < 1:
            raise InputError(f"top-k must be at least 1, got {top_k}")
        matrix = queries.detach().float().cpu().numpy() if isinstance(queries, torch.Tensor) else np.asarray(queries)
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise InputError(f"queries of shape {tuple(matrix.shape)} cannot search {self.path}: it is {self.dim} wide")
        reference = self._vectors if self.kind == "ivf-pq" else None
        scores, rows = search_rows(self._index, self.kind, self.params, matrix, min(top_k, self.rows), reference)
        labels = self.labels
        return [
            [SearchHit(int(row), float(score), labels[int(row)]) for score, row in zip(line, found, strict=True)]
            for line, found in zip(scores, rows, strict=True)
        ]


def search_rows(
    index: Any,
    kind: str,
    params: Mapping[str, int],
    queries: np.ndarray[Any, Any],
    top_k: int,
    reference: np.ndarray[Any, Any] | None = None,
) -> tuple[list[list[float]], list[list[int]]]:
    """Scores and rows of the ``top_k`` nearest rows of each query, best first, as an index of ``kind`` finds them.

    Queries are unit-normalised first. An ``ivf-pq`` index, whose codes only approximate the rows, proposes
    ``params["rerank"]`` candidates per query that are scored exactly against ``reference`` (the rows themselves).
    """
    faiss = faiss_module()
    matrix = np.ascontiguousarray(queries, dtype=np.float32).copy()
    faiss.normalize_L2(matrix)
    space = faiss.ParameterSpace()
    for name, value in params.items():
        if name != "rerank":
            space.set_index_parameter(index, name, value)
    if kind != "ivf-pq":
        scores, rows = index.search(matrix, top_k)
        return _kept(scores, rows)
    if reference is None:
        raise ValueError("an ivf-pq index is searched with the rows it re-ranks against")
    _, candidates = index.search(matrix, max(top_k, params.get("rerank", top_k)))
    out_scores: list[list[float]] = []
    out_rows: list[list[int]] = []
    for query, found in zip(matrix, candidates, strict=True):
        found = found[found >= 0]
        vectors = np.asarray(reference[np.sort(found)], dtype=np.float32)
        exact = vectors @ query / np.maximum(np.linalg.norm(vectors, axis=1), 1e-12)
        order = np.argsort(-exact, kind="stable")[:top_k]
        out_scores.append(exact[order].tolist())
        out_rows.append(np.sort(found)[order].tolist())
    return out_scores, out_rows


def open_index(path: str | os.PathLike[str]) -> EmbeddingIndex:
    """Open an index folder written by :func:`~clip_core.index.build_index` (``clip index build``).

    :class:`InputError` when the folder is not an index, or when the embeddings file it indexes is missing or has
    changed since (rebuild the index).
    """
    folder = Path(path)
    meta_file = folder / META_FILE
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{folder}: not an index (no {META_FILE}; clip index build makes one)") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{meta_file}: unreadable ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT:
        raise InputError(f"{meta_file}: not a {INDEX_FORMAT} index description")
    recorded = meta["embeddings"]
    embeddings = (folder / recorded["path"]).resolve()
    if not embeddings.is_file():
        raise InputError(f"{folder} indexes {embeddings}, which is missing; an index searches beside its file")
    signature = FileSignature(int(recorded["size"]), int(recorded["mtime_ns"]), str(recorded["sha256"]))
    if not signature.matches(embeddings):
        raise InputError(
            f"{folder} is stale: {embeddings} has changed since the index was built; rebuild it with "
            f"clip index build {embeddings} --out {folder}"
        )
    faiss = faiss_module()
    try:
        index = faiss.read_index(str(folder / INDEX_FILE))
    except RuntimeError as exc:
        raise InputError(f"{folder / INDEX_FILE}: not a readable FAISS index ({exc})") from None
    if index.ntotal != meta["rows"] or index.d != meta["dim"]:
        raise InputError(f"{folder / INDEX_FILE} holds {index.ntotal} x {index.d}, {META_FILE} says otherwise")
    return EmbeddingIndex(folder, meta, index, embeddings)


def describe_embeddings(path: Path, folder: Path) -> dict[str, Any]:
    """What ``index.json`` records about the embeddings file ``path`` indexed by an index in ``folder``."""
    signature = FileSignature.of(path)
    return {
        "path": os.path.relpath(path.resolve(), folder.resolve()),
        "size": signature.size,
        "mtime_ns": signature.mtime_ns,
        "sha256": signature.sha256,
        "manifest": _read_manifest(manifest_path(path)),
    }


def memmap_embeddings(path: Path) -> np.ndarray[Any, Any]:
    """The matrix of an embeddings file, memory-mapped (rows are read from disk as they are used)."""
    if output_format(path) == "npy":
        matrix: np.ndarray[Any, Any] = np.load(path, mmap_mode="r", allow_pickle=False)
        return matrix
    with path.open("rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        header = json.loads(file.read(length))
    tensor = header[EMBEDDINGS_KEY]
    start = tensor["data_offsets"][0]
    shape = tuple(tensor["shape"])
    return np.memmap(path, dtype=np.float32, mode="r", offset=8 + length + start, shape=shape)


def _kept(scores: np.ndarray[Any, Any], rows: np.ndarray[Any, Any]) -> tuple[list[list[float]], list[list[int]]]:
    """Each line's results without FAISS's ``-1`` padding (fewer rows found than asked for)."""
    kept = [line >= 0 for line in rows]
    return (
        [line[keep].tolist() for line, keep in zip(scores, kept, strict=True)],
        [line[keep].tolist() for line, keep in zip(rows, kept, strict=True)],
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 23):
            digest.update(block)
    return digest.hexdigest()
