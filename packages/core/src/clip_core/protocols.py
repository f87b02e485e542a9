"""Structural types that towers and tokenizers provided by plugins must satisfy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:
    from clip_core.intermediates import Indices, TowerIntermediates

__all__ = ["ImageEncoder", "IntermediatesEncoder", "TextEncoder", "Tokenizer"]


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
class IntermediatesEncoder(Protocol):
    """A tower that also gives its inner blocks' outputs (optional; ``ClipModel.forward_intermediates`` needs it).

    ``indices`` goes through :func:`clip_core.intermediates.take_indices` (None, last n, or a list of block
    numbers). Image towers return spatial intermediates in ``output_fmt`` (``"NCHW"`` or ``"NLC"``) with any
    prefix tokens (a class token) left out, and give those as ``extra_tokens`` when ``output_extra_tokens``; text
    towers return ``[B, L, C]`` for every position. ``normalize_intermediates`` applies the tower's final norm to
    each intermediate, where it has one. ``features`` equal the tower's forward output, and are None when
    ``intermediates_only``; ``stop_early`` may then skip the blocks after the last requested one.
    """

    def forward_intermediates(
        self,
        inputs: torch.Tensor,
        indices: Indices = None,
        *,
        stop_early: bool = False,
        normalize_intermediates: bool = False,
        intermediates_only: bool = False,
        output_fmt: str = "NCHW",
        output_extra_tokens: bool = False,
    ) -> TowerIntermediates: ...


@runtime_checkable
class Tokenizer(Protocol):
    """Turns texts into the fixed-length id tensors a text tower reads.

    ``tok(texts)`` returns ``LongTensor[B, context_length]``: start token, ids, end token, zero padding. A text that
    is too long is truncated so that the end token stays last (``truncate="end"``, the default), or, with
    ``truncate="error"``, raises :class:`clip_core.InputError` naming the text and its length in tokens.
    """

    context_length: int
    vocab_size: int

    def __call__(
        self, texts: str | Sequence[str], context_length: int | None = None, truncate: str = "end"
    ) -> torch.Tensor: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...
