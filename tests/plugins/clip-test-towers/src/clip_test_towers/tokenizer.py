"""A byte-level tokenizer: 0 pads, 1..256 are UTF-8 bytes, 257 starts and 258 ends a text."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from clip_core import InputError, TokenizerConfig

START, END = 257, 258


class ByteTokenizer:
    vocab_size = 259

    def __init__(self, config: TokenizerConfig) -> None:
        self.context_length = config.context_length

    def encode(self, text: str) -> list[int]:
        return [b + 1 for b in text.encode("utf-8")]

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i - 1 for i in ids if 1 <= i <= 256).decode("utf-8", errors="replace")

    def __call__(
        self, texts: str | Sequence[str], context_length: int | None = None, truncate: str = "end"
    ) -> torch.Tensor:
        length = context_length or self.context_length
        batch = [texts] if isinstance(texts, str) else list(texts)
        out = torch.zeros(len(batch), length, dtype=torch.long)
        for row, text in enumerate(batch):
            if truncate == "error" and len(self.encode(text)) + 2 > length:
                raise InputError(f"text {row} is {len(self.encode(text)) + 2} tokens long, more than {length}")
            ids = [*[START, *self.encode(text)][: length - 1], END]
            out[row, : len(ids)] = torch.tensor(ids)
        return out
