"""CLIP's vocabulary, as open_clip's: 256 byte symbols, the same with ``</w>``, 48,894 merges, 2 special tokens.

The merges come from the package's data file; the byte-level alphabet maps each byte to a visible character.
"""

from __future__ import annotations

import gzip
from importlib.resources import files

__all__ = [
    "END_ID",
    "END_OF_WORD",
    "END_TEXT",
    "END_TOKEN",
    "MERGES_FILE",
    "N_MERGES",
    "PAD_ID",
    "START_ID",
    "START_TEXT",
    "START_TOKEN",
    "VOCAB_SIZE",
    "byte_symbols",
    "read_merges",
    "vocabulary",
]

VOCAB_SIZE = 49408
START_ID = 49406
END_ID = 49407
PAD_ID = 0
START_TOKEN = "<start_of_text>"  # the vocabulary's names, which open_clip also recognises written in a text
END_TOKEN = "<end_of_text>"
START_TEXT = "<|startoftext|>"  # how decode renders them: OpenAI's names (open_clip reads these as plain text)
END_TEXT = "<|endoftext|>"
END_OF_WORD = "</w>"
N_MERGES = VOCAB_SIZE - 2 * 256 - 2  # 48,894
MERGES_FILE = "bpe_simple_vocab_16e6.txt.gz"


def byte_symbols() -> list[tuple[int, str]]:
    """The byte-level alphabet as ``(byte, symbol)`` pairs in vocabulary order.

    Bytes that are visible Latin-1 characters (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) stand for themselves and come
    first, in byte order; the other 68 bytes (controls, space, DEL, C1 controls, no-break space, soft hyphen) follow
    in byte order as U+0100, U+0101, ...
    """
    visible = [b for b in range(256) if 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF]
    hidden = sorted(set(range(256)) - set(visible))
    return [(b, chr(b)) for b in visible] + [(b, chr(0x100 + i)) for i, b in enumerate(hidden)]


def read_merges() -> list[tuple[str, str]]:
    """The first 48,894 merges of the package's merges file (its first line is a version header)."""
    data = (files("clip_encoders_text") / "data" / MERGES_FILE).read_bytes()
    lines = gzip.decompress(data).decode("utf-8").split("\n")[1 : N_MERGES + 1]
    pairs = [line.split(" ") for line in lines]
    if len(pairs) != N_MERGES or any(len(pair) != 2 for pair in pairs):
        raise RuntimeError(f"clip_encoders_text/data/{MERGES_FILE} is damaged: reinstall clip-encoders-text")
    return [(left, right) for left, right in pairs]


def vocabulary(merges: list[tuple[str, str]]) -> list[str]:
    """Token strings by id: byte symbols, byte symbols ending a word, merges, start and end tokens."""
    symbols = [symbol for _, symbol in byte_symbols()]
    return [
        *symbols,
        *(symbol + END_OF_WORD for symbol in symbols),
        *(left + right for left, right in merges),
        START_TOKEN,
        END_TOKEN,
    ]
