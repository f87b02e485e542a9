"""Building a FAISS index of an embeddings file (``clip index build``): choosing its kind, tuning its search.

``kind="auto"`` chooses as autofaiss does, by size and a memory budget:

- ``flat`` (exact search) for files of at most :data:`FLAT_MAX_ROWS` rows, where comparing a query with every row
  costs little;
- ``hnsw`` (a graph over the full vectors, FAISS ``HNSW32``, built with ``efConstruction`` :data:`HNSW_CONSTRUCTION`)
  up to :data:`HNSW_MAX_ROWS` rows when the vectors and their links fit the budget; its build time grows fastest
  with the row count (about 10 minutes for 1,000,000 rows x 512 on two cores), so larger files go to
- ``ivf-pq`` (inverted lists of product-quantised codes, FAISS ``IVFn,PQmx8``), a fraction of the vectors' memory.
  The codes only approximate the rows, so each search re-ranks a few hundred candidates exactly against the rows of
  the embeddings file, memory-mapped: scores stay exact cosines and recall stays high.

Once built, the index is tuned: a sample of rows searches both the index and every row exactly, and the search
effort (HNSW's ``efSearch``, IVF's ``nprobe``) is raised until recall@10 reaches ``target_recall``. The chosen
parameters and the recall they reached are recorded in the index folder.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm  # type: ignore[import-untyped]

from clip_core.durable import staged_folder
from clip_core.embedding.file import read_embeddings
from clip_core.errors import InputError
from clip_core.index.store import (
    INDEX_FILE,
    INDEX_FORMAT,
    KINDS,
    META_FILE,
    EmbeddingIndex,
    default_index_path,
    describe_embeddings,
    faiss_module,
    open_index,
    search_rows,
)

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "FLAT_MAX_ROWS",
    "HNSW_CONSTRUCTION",
    "HNSW_MAX_ROWS",
    "build_index",
    "choose_kind",
    "parse_size",
]

#: ``auto`` searches files of at most this many rows exactly.
FLAT_MAX_ROWS = 10_000
#: ``auto`` builds an HNSW graph for at most this many rows (when it fits the budget), IVF-PQ beyond.
HNSW_MAX_ROWS = 2_000_000
#: The memory an index may take unless told otherwise.
DEFAULT_MEMORY_BUDGET = "4GB"
#: Links per node in the HNSW graph (FAISS ``HNSW32``).
HNSW_LINKS = 32
#: Candidates kept per node while the HNSW graph is built (FAISS's default is 40): on clustered embeddings a graph
#: built with 40 needed a search effort of 1,024 at 1,000,000 rows to reach recall@10 0.97; one built with 100 reaches
#: it with a small fraction of that (`benchmarks/bench_index.py`).
HNSW_CONSTRUCTION = 100
#: Candidates an IVF-PQ search re-ranks exactly, per query (at least ``top_k``).
RERANK = 200
#: Rows that search both the index and every row when the index is tuned.
TUNING_QUERIES = 256
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20}
_UNITS.update({"gib": 2**30, "tib": 2**40, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12})
#: Each approximate kind's search-effort parameter and the values tuning tries, in order.
_SEARCH_EFFORT = {
    "hnsw": ("efSearch", [16, 32, 64, 128, 256, 512, 1024]),
    "ivf-pq": ("nprobe", [2**i for i in range(13)]),
}


def parse_size(text: str | int) -> int:
    """Bytes from a size such as ``"4GB"``, ``"512MiB"``, ``"1.5g"`` or a plain number of bytes."""
    if isinstance(text, int):
        size = text
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _UNITS:
            raise InputError(f"{text!r} is not a size: write it as 4GB, 512MB, 1.5GiB or a number of bytes")
        size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise InputError(f"a memory budget must be positive, got {text!r}")
    return size


def choose_kind(rows: int, dim: int, budget: int) -> str:
    """The kind ``auto`` builds for ``rows`` vectors of width ``dim`` within ``budget`` bytes (module docstring)."""
    if rows <= FLAT_MAX_ROWS:
        return "flat"
    if rows <= HNSW_MAX_ROWS and _hnsw_bytes(rows, dim) <= budget:
        return "hnsw"
    return "ivf-pq"


def build_index(
    embeddings: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    kind: str = "auto",
    memory_budget: str | int = DEFAULT_MEMORY_BUDGET,
    target_recall: float = 0.97,
    progress: bool | None = None,
) -> EmbeddingIndex:
    """Build an index of the embeddings file ``embeddings`` in the folder ``out`` (default ``E.npy.faiss`` beside it),
    written atomically, and open it.

    ``kind`` is ``"auto"`` (chosen by :func:`choose_kind`), ``"flat"``, ``"hnsw"`` or ``"ivf-pq"``; the index may
    take ``memory_budget`` bytes (``"4GB"``); approximate kinds are tuned to reach ``target_recall`` of the exact
    top 10 on a sample of rows, or as close as their largest search effort gets (recorded either way).
    """
    if kind != "auto" and kind not in KINDS:
        raise InputError(f"unknown index kind {kind!r}; choose auto, {', '.join(KINDS)}")
    if not 0 < target_recall <= 1:
        raise InputError(f"target recall must be in (0, 1], got {target_recall}")
    faiss = faiss_module()
    source = read_embeddings(embeddings)
    rows, dim = source.vectors.shape
    if rows == 0:
        raise InputError(f"{source.path} holds no rows to index")
    budget = parse_size(memory_budget)
    chosen = choose_kind(rows, dim, budget) if kind == "auto" else kind
    vectors = np.ascontiguousarray(source.vectors.numpy(), dtype=np.float32).copy()
    del source
    faiss.normalize_L2(vectors)
    started = time.perf_counter()
    index = _new_index(faiss, chosen, vectors, budget)
    for start in _progress(range(0, rows, 16_384), rows, chosen, progress):
        index.add(vectors[start : start + 16_384])
    params, recall = _tune(faiss, index, chosen, vectors, target_recall)
    folder = Path(out) if out is not None else default_index_path(embeddings)
    meta = {
        "format": INDEX_FORMAT,
        "kind": chosen,
        "factory": _factory(chosen, rows, dim, budget),
        "metric": "cosine",
        "rows": rows,
        "dim": dim,
        "params": params,
        "recall_at_10": round(recall, 4),
        "target_recall": target_recall,
        "memory_budget": budget,
        "build_seconds": round(time.perf_counter() - started, 2),
        "embeddings": describe_embeddings(Path(embeddings), folder),
    }
    with staged_folder(folder) as staging:
        faiss.write_index(index, str(staging / INDEX_FILE))
        (staging / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return open_index(folder)


def _hnsw_bytes(rows: int, dim: int) -> int:
    """An HNSW graph's memory: the vectors, and about two links per neighbour slot on the base level."""
    return rows * (4 * dim + 2 * 4 * HNSW_LINKS + 16)


def _ivf_lists(rows: int) -> int:
    """Inverted lists for ``rows`` vectors: a power of two near √rows, each list trained on ≥ 39 rows."""
    lists: int = 2 ** max(0, round(math.log2(math.sqrt(rows))))
    while lists > 1 and rows < 39 * lists:
        lists //= 2
    return lists


def _pq_bytes(dim: int, rows: int, budget: int) -> int:
    """Bytes per code: the widest of dim/8, dim/16, ... that divides ``dim`` and fits the budget with the ids."""
    for width in (8, 16, 32, 64):
        if dim % width == 0 and rows * (dim // width + 8) <= budget:
            return dim // width
    candidates = [m for m in range(1, dim + 1) if dim % m == 0 and rows * (m + 8) <= budget]
    if not candidates:
        raise InputError(f"{rows:,} rows cannot be indexed within a memory budget of {budget:,} bytes")
    return max(candidates)


def _factory(kind: str, rows: int, dim: int, budget: int) -> str:
    if kind == "flat":
        return "Flat"
    if kind == "hnsw":
        return f"HNSW{HNSW_LINKS},Flat"
    return f"IVF{_ivf_lists(rows)},PQ{_pq_bytes(dim, rows, budget)}x8"


def _new_index(faiss: Any, kind: str, vectors: np.ndarray[Any, Any], budget: int) -> Any:
    rows, dim = vectors.shape
    index = faiss.index_factory(dim, _factory(kind, rows, dim, budget), faiss.METRIC_INNER_PRODUCT)
    if kind == "hnsw":
        index.hnsw.efConstruction = HNSW_CONSTRUCTION
    if kind == "ivf-pq":
        sample = np.random.default_rng(0).choice(rows, min(rows, max(256 * 39, 39 * _ivf_lists(rows))), replace=False)
        index.train(vectors[np.sort(sample)])
    return index


def _tune(
    faiss: Any, index: Any, kind: str, vectors: np.ndarray[Any, Any], target: float, k: int = 10
) -> tuple[dict[str, int], float]:
    """The least search effort reaching ``target`` recall@k on sampled rows (each query's own row left out)."""
    if kind == "flat":
        return {}, 1.0
    rows = vectors.shape[0]
    sample = np.sort(np.random.default_rng(1).choice(rows, min(TUNING_QUERIES, rows), replace=False))
    queries = vectors[sample]
    _, exact = faiss.knn(queries, vectors, min(k + 1, rows), metric=faiss.METRIC_INNER_PRODUCT)
    truth = [_others(line, row, k) for line, row in zip(exact.tolist(), sample.tolist(), strict=True)]
    name, efforts = _SEARCH_EFFORT[kind]
    params: dict[str, int] = {}
    recall = 0.0
    for effort in efforts:
        if kind == "ivf-pq" and effort > int(index.nlist):
            break
        params = {name: effort, **({"rerank": RERANK} if kind == "ivf-pq" else {})}
        _, found = search_rows(index, kind, params, queries, min(k + 1, rows), vectors)
        lines = zip(found, sample.tolist(), truth, strict=True)
        hits = [len(set(_others(line, row, k)) & set(want)) for line, row, want in lines]
        recall = sum(hits) / max(1, sum(len(want) for want in truth))
        if recall >= target:
            break
    return params, recall


def _others(line: list[int], row: int, k: int) -> list[int]:
    return [found for found in line if found != row][:k]


def _progress(starts: range, rows: int, kind: str, enabled: bool | None) -> Iterator[int]:
    bar = tqdm(total=rows, unit="rows", desc=f"indexing ({kind})", disable=None if enabled is None else not enabled)
    with bar:
        for start in starts:
            yield start
            bar.update(min(16_384, rows - start))
