"""Structural types that towers and tokenizers provided by plugins must satisfy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch

__all__ = ["ImageEncoder", "TextEncoder", "Tokenizer"]


@runtime_checkable
class ImageEncoder(Protocol):
    """An image tower: maps pixels ``[B, 3, H, W]`` (float) to embeddings ``[B, embed_dim]``."""

    embed_dim: int

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class TextEncoder(Protocol):
    """A text tower: maps token ids ``[B, L]`` (integer) to embeddings ``[B, embed_dim]``."""

    embed_dim: int

    def __call__(self, ids: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Tokenizer(Protocol):
    """Turns texts into the fixed-length id tensors a text tower reads.

    ``tok(texts)`` returns ``LongTensor[B, context_length]``: start token, ids, end token, zero padding; a text
    that is too long is truncated so that the end token stays last.
    """

    context_length: int
    vocab_size: int

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> torch.Tensor: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...
