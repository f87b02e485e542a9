"""What ``/v1/search`` and the search page search: an embeddings file (exact) or an index.

A :class:`Searcher` ranks rows for query vectors and says which rows are image files (and so may be shown as
thumbnails). Anything with ``search(queries, top_k) -> list[list[SearchHit]]`` can stand behind one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import torch

from clip_core.embedding.file import Embeddings, read_embeddings
from clip_core.index import EmbeddingIndex, SearchHit, nearest, open_index

__all__ = ["EmbeddingsSearcher", "IndexSearcher", "Searcher", "open_index_searcher"]


class Searcher(Protocol):
    """Ranks the served rows by similarity to query vectors."""

    #: What is searched, for people (the file's path).
    name: str

    def search(self, queries: torch.Tensor, top_k: int) -> list[list[SearchHit]]:
        """The ``top_k`` best rows for each unit-length query ``[Q, embed_dim]``, best first."""
        ...

    def image_file(self, row: int) -> Path | None:
        """The image file of ``row`` if it is a listed image file the service may show, else None."""
        ...


class EmbeddingsSearcher:
    """Exact cosine search over an embeddings file written by ``clip embed`` (:func:`clip_core.index.nearest`).

    Rows of an image file are their sources; relative sources are read from the current directory, as
    ``clip embed`` wrote them. Rows of a text file have no image.
    """

    def __init__(self, embeddings: Embeddings | str | os.PathLike[str]) -> None:
        self.embeddings = embeddings if isinstance(embeddings, Embeddings) else read_embeddings(embeddings)
        self.name = str(self.embeddings.path)
        self._images = [entry.get("source") for entry in self.embeddings.entries]

    def __len__(self) -> int:
        return len(self._images)

    def search(self, queries: torch.Tensor, top_k: int) -> list[list[SearchHit]]:
        """The ``top_k`` nearest rows of each query, best first."""
        return nearest(self.embeddings, queries, top_k)

    def image_file(self, row: int) -> Path | None:
        """The source of ``row`` when the file lists one (an image row), else None."""
        source = self._images[row] if 0 <= row < len(self._images) else None
        return Path(source) if isinstance(source, str) and source else None


class IndexSearcher:
    """Search through an index (:func:`clip_core.open_index`), built by ``clip index build``; the rows' image files
    are the sources the indexed embeddings file lists."""

    def __init__(self, index: EmbeddingIndex, name: str) -> None:
        self.index = index
        self.name = name
        self._images = [entry.get("source") for entry in index.entries]

    def search(self, queries: torch.Tensor, top_k: int) -> list[list[SearchHit]]:
        """The index's ``top_k`` hits for each query."""
        return self.index.search(queries, top_k)

    def image_file(self, row: int) -> Path | None:
        """The source of ``row`` when the file lists one (an image row), else None."""
        source = self._images[row] if 0 <= row < len(self._images) else None
        return Path(source) if isinstance(source, str) and source else None


def open_index_searcher(path: str | os.PathLike[str]) -> IndexSearcher:
    """An :class:`IndexSearcher` over the index at ``path`` (the ``clip-core[faiss]`` extra)."""
    return IndexSearcher(open_index(path), str(path))
