"""Embedding: image and text sources through a model into an embeddings file (``clip embed``).

- :mod:`~clip_core.embedding.functions`: :func:`embed_images` and :func:`embed_texts`, the Python API.
- :mod:`~clip_core.embedding.longtext`: texts longer than the context, truncated, refused or embedded in chunks
  (:func:`~clip_core.embedding.longtext.encode_texts`).
- :mod:`~clip_core.embedding.sources`: finding and reading image files (:func:`find_images`, :func:`read_image`),
  the image data set, and text files (:func:`read_texts`).
- :mod:`~clip_core.embedding.job`: the resumable, sharded job (lock, manifest, progress log, shards, final gather)
  and what it returns (:class:`EmbedResult`, :class:`Skipped`).
- :mod:`~clip_core.embedding.ranks`: the same job in several processes under ``torchrun``, one output.
- :mod:`~clip_core.embedding.file`: the embeddings file, its index and manifest (:class:`Embeddings`,
  :func:`read_embeddings`, :func:`write_embeddings`).
"""

from __future__ import annotations

from clip_core.embedding.file import Embeddings, read_embeddings, write_embeddings
from clip_core.embedding.functions import embed_images, embed_texts
from clip_core.embedding.job import EmbedResult, Skipped, partial_folder
from clip_core.embedding.sources import find_images, read_image, read_texts

__all__ = [
    "EmbedResult",
    "Embeddings",
    "Skipped",
    "embed_images",
    "embed_texts",
    "find_images",
    "partial_folder",
    "read_embeddings",
    "read_image",
    "read_texts",
    "write_embeddings",
]
