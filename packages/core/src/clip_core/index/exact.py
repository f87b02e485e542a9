"""Exact retrieval over an embeddings file: text → image and image → image, by cosine similarity over every row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from PIL import Image

from clip_core.embedding.file import Embeddings
from clip_core.errors import InputError
from clip_core.fingerprint import model_fingerprint
from clip_core.model import ClipModel
from clip_core.preprocess import ImagePreprocess, get_preprocess
from clip_core.protocols import Tokenizer
from clip_core.tokenizer import get_tokenizer

__all__ = ["SearchHit", "Searchable", "check_made_by", "check_model", "nearest", "search_by_image", "search_by_text"]


@dataclass(frozen=True)
class SearchHit:
    """One result: a row of the embeddings file, its cosine similarity to the query, and its source."""

    row: int
    score: float
    source: str


def check_model(embeddings: Embeddings, model: ClipModel, fingerprint: str | None = None) -> None:
    """Refuse (:class:`InputError`) a model that cannot query ``embeddings``.

    The width must match; and when the file's manifest records the model that made it, ``model`` must be that
    model: the same weights (its :func:`~clip_core.fingerprint.model_fingerprint`, computed unless ``fingerprint``
    is given) and the same card name.
    """
    check_made_by(embeddings.path, embeddings.vectors.shape[1], embeddings.manifest, model, fingerprint)


def check_made_by(
    path: Path, width: int, manifest: Mapping[str, Any] | None, model: ClipModel, fingerprint: str | None = None
) -> None:
    """:func:`check_model` for embeddings known by their file, width and manifest (an index of them, say)."""
    _check_width(path, width, model)
    recorded = (manifest or {}).get("model")
    if not isinstance(recorded, dict):
        return
    card = recorded.get("card")
    name = card.get("name") if isinstance(card, dict) else None
    made_by = recorded.get("fingerprint")
    if made_by is None and name is None:
        return
    mine = fingerprint or model_fingerprint(model)
    if (made_by is not None and made_by != mine) or (name is not None and name != model.card.name):
        source = recorded.get("source", name)
        raise InputError(
            f"{path} was made by another model ({source}, card {name!r}, weights {_short(made_by)}) than "
            f"this one (card {model.card.name!r}, weights {_short(mine)}); search with the model that made it"
        )


def nearest(embeddings: Embeddings, queries: torch.Tensor, top_k: int = 10) -> list[list[SearchHit]]:
    """The ``top_k`` rows most similar to each query vector ``[Q, embed_dim]``, best first, by cosine similarity."""
    if top_k < 1:
        raise InputError(f"top-k must be at least 1, got {top_k}")
    if queries.ndim != 2 or queries.shape[1] != embeddings.vectors.shape[1]:
        raise InputError(
            f"queries of shape {tuple(queries.shape)} cannot search {embeddings.vectors.shape[1]}-wide embeddings"
        )
    rows = F.normalize(embeddings.vectors.float(), dim=-1)
    scores = F.normalize(queries.detach().float().cpu(), dim=-1) @ rows.T
    values, indices = scores.topk(min(top_k, rows.shape[0]), dim=-1)
    labels = embeddings.labels
    return [
        [SearchHit(int(row), float(score), labels[int(row)]) for score, row in zip(line, picks, strict=True)]
        for line, picks in zip(values.tolist(), indices.tolist(), strict=True)
    ]


class Searchable(Protocol):
    """What a text or image query can search: an embeddings file, or an index of one (:func:`~clip_core.open_index`)."""

    @property
    def path(self) -> Path:
        """The file (or index folder) searched, for messages."""
        ...

    @property
    def dim(self) -> int:
        """The embeddings' width."""
        ...

    def search(self, queries: torch.Tensor, top_k: int = 10) -> list[list[SearchHit]]:
        """The ``top_k`` rows nearest each query ``[Q, dim]``, best first."""
        ...


def search_by_text(
    model: ClipModel,
    embeddings: Embeddings | Searchable,
    texts: Sequence[str],
    top_k: int = 10,
    tokenizer: Tokenizer | None = None,
) -> list[list[SearchHit]]:
    """The ``top_k`` rows nearest each text (embedded by ``model``'s text tower), best first: over every row of an
    embeddings file, or through an index of one."""
    _check_width(embeddings.path, _width(embeddings), model)
    tokenize = tokenizer or get_tokenizer(model.card)
    with torch.no_grad():
        queries = model.encode_text(tokenize(list(texts)).to(_device(model))).float()
    return _search(embeddings, queries, top_k)


def search_by_image(
    model: ClipModel,
    embeddings: Embeddings | Searchable,
    images: Sequence[Image.Image],
    top_k: int = 10,
    preprocess: ImagePreprocess | None = None,
) -> list[list[SearchHit]]:
    """The ``top_k`` rows nearest each image (embedded by ``model``'s image tower), best first: over every row of an
    embeddings file, or through an index of one."""
    _check_width(embeddings.path, _width(embeddings), model)
    pixels = (preprocess or get_preprocess(model.card)).batch(images)
    with torch.no_grad():
        queries = model.encode_image(pixels.to(_device(model))).float()
    return _search(embeddings, queries, top_k)


def _width(target: Embeddings | Searchable) -> int:
    return target.vectors.shape[1] if isinstance(target, Embeddings) else target.dim


def _search(target: Embeddings | Searchable, queries: torch.Tensor, top_k: int) -> list[list[SearchHit]]:
    return nearest(target, queries, top_k) if isinstance(target, Embeddings) else target.search(queries, top_k)


def _check_width(path: Path, width: int, model: ClipModel) -> None:
    if width != model.embed_dim:
        raise InputError(
            f"{path} holds {width}-wide embeddings but card {model.card.name!r} embeds "
            f"{model.embed_dim} wide; search with the model that made the file"
        )


def _device(model: ClipModel) -> torch.device:
    return next((parameter.device for parameter in model.parameters()), torch.device("cpu"))


def _short(fingerprint: object) -> str:
    text = str(fingerprint)
    return text[:19] + "…" if len(text) > 20 else text
