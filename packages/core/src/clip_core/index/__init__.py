"""Search over embeddings files: exactly, over every row (:mod:`~clip_core.index.exact`), or through a FAISS index
built once and searched many times (:func:`build_index`, :func:`open_index`; the ``clip-core[faiss]`` extra)."""

from __future__ import annotations

from clip_core.index.build import DEFAULT_MEMORY_BUDGET, build_index, choose_kind, parse_size
from clip_core.index.exact import (
    Searchable,
    SearchHit,
    check_made_by,
    check_model,
    nearest,
    search_by_image,
    search_by_text,
)
from clip_core.index.store import KINDS, EmbeddingIndex, default_index_path, open_index

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "KINDS",
    "EmbeddingIndex",
    "SearchHit",
    "Searchable",
    "build_index",
    "check_made_by",
    "check_model",
    "choose_kind",
    "default_index_path",
    "nearest",
    "open_index",
    "parse_size",
    "search_by_image",
    "search_by_text",
]
