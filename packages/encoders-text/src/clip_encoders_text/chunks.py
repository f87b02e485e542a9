"""The chunk pipeline: a batch of texts to ids by their space-separated chunks, each chunk's ids learnt once.

A process-wide :class:`Engine` keeps a bounded :class:`ChunkTable` of the chunks seen (found by packed key in a
:class:`~clip_encoders_text.hashtable.PackedIndex`, or by ``str``), learns new chunks from their whole-word tokens
or through Rust (Hugging Face ``tokenizers``) pipelines, and holds the id -> bytes table for decoding. See
:mod:`clip_encoders_text.tokenizer` for how the stages fit together.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable
from itertools import chain, compress, repeat

import numpy as np
import regex  # type: ignore[import-untyped]
from tokenizers import AddedToken, Encoding, Regex, Tokenizer, models, pre_tokenizers

from clip_encoders_text.cleaning import clean_texts
from clip_encoders_text.hashtable import (
    KEY_BYTES,
    PADDING,
    TEXT_END,
    Int32s,
    Int64s,
    PackedIndex,
    packed,
    packed_strs,
)
from clip_encoders_text.vocab import (
    END_OF_WORD,
    END_TEXT,
    END_TOKEN,
    START_ID,
    START_TEXT,
    START_TOKEN,
    VOCAB_SIZE,
    byte_symbols,
    read_merges,
    vocabulary,
)

__all__ = ["CHUNK_TABLE_CHARS", "CHUNK_TABLE_SIZE", "ChunkTable", "Engine", "engine"]

CHUNK_TABLE_SIZE = 1 << 17  # chunks learnt and kept; the table starts afresh when a batch would overflow it
CHUNK_TABLE_CHARS = 1 << 22  # and characters in those chunks (a chunk has at most 4 ids per character)

# open_clip's words: a special token's name, a contraction, a run of letters, one digit, or a run of anything else
# but whitespace; case-insensitive. Run by the `regex` module, as open_clip runs it.
_WORDS = regex.compile(
    rf"{START_TOKEN}|{END_TOKEN}|'s|'t|'re|'ve|'m|'ll|'d|[\p{{L}}]+|[\p{{N}}]|[^\s\p{{L}}\p{{N}}]+", regex.IGNORECASE
)
# The same pattern for lower-case printable ASCII without a special token's name (letters a-z, digits 0-9, the only
# whitespace is the space). Oniguruma runs it about 2.5 times faster than the Unicode-property form.
_ASCII_WORDS = r"'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+"
# Python's `re` runs it the same way (leftmost match, alternatives in order), three times faster than `regex`.
_split_ascii = re.compile(_ASCII_WORDS).findall

_ASCII_SEPARATOR = "\u0100"  # the byte-level symbol of byte 0: a word of its own between spaces; never in ASCII
_WORDS_SEPARATOR = " "  # a special token of the pre-tokenized pipeline, after each chunk's words (no word holds one)
_NUL = "\x00"  # a word of its own between spaces; never in a printable chunk
_NUL_ID = -2  # its id in Engine._split_words
_UNKNOWN = -1  # the id of a word not in Engine._split_words
_GROUP = 256  # chunks per Rust sequence: few sequences, yet enough for Rust to share them between threads


class ChunkTable:
    """Ids of chunks: a chunk's slot comes from ``index`` (by packed key) or ``slots`` (by str, for every chunk); a
    slot's ids are ``store[start : start + length]`` in ``arrays``.

    Slot 0 is ``TEXT_END``, with no ids; then come the whole-word tokens' words (the seed, always held), then the
    chunks learnt. Writers add chunks under the engine's lock: new arrays first, then the index and dictionary entries;
    arrays are replaced, never changed. So a reader that looks its slots up first and reads ``arrays`` afterwards finds
    them. A full table is replaced by a fresh copy of the seed, so readers still holding it are undisturbed.
    """

    def __init__(self, slots: dict[str, int], index: PackedIndex, arrays: tuple[Int64s, Int64s, Int32s]) -> None:
        self.slots = slots
        self.index = index
        self.arrays = arrays
        self.seeded = len(slots)  # chunks that do not count against CHUNK_TABLE_SIZE
        self.chars = 0  # characters in the chunks learnt

    @classmethod
    def seed(cls, words: dict[str, int]) -> ChunkTable:
        """A table holding ``TEXT_END`` and the words, each with its one id."""
        starts = np.arange(-1, len(words), dtype=np.int64)
        lengths = np.ones(len(words) + 1, np.int64)
        starts[0] = lengths[0] = 0
        table = cls({}, PackedIndex(), (starts, lengths, np.fromiter(words.values(), np.int32, len(words))))
        end = np.frombuffer(TEXT_END + PADDING, np.uint8)
        table.index.add(*packed(end, np.zeros(1, np.int64), np.ones(1, np.int64)), np.zeros(1, np.int64))
        table.slots.update(zip(words, range(1, len(words) + 1), strict=True))
        first, second, short = packed_strs(list(words))
        table.index.add(first, second, np.arange(1, len(words) + 1)[short])
        table.seeded = len(table.slots)
        return table

    def copy(self) -> ChunkTable:
        """A table holding what this one holds, whose chunks learnt from now on are its own."""
        table = ChunkTable(dict(self.slots), self.index.copy(), self.arrays)
        table.seeded, table.chars = self.seeded, self.chars
        return table

    def has_room(self, chunks: Iterable[str]) -> bool:
        """Whether the chunks fit within ``CHUNK_TABLE_SIZE`` and ``CHUNK_TABLE_CHARS``."""
        chunks = list(chunks)
        return (
            len(self.slots) - self.seeded + len(chunks) <= CHUNK_TABLE_SIZE
            and self.chars + sum(map(len, chunks)) <= CHUNK_TABLE_CHARS
        )

    def gather(self, slots: Int64s) -> tuple[Int32s, Int64s]:
        """``(ids, counts)`` of the texts whose chunks have these slots, each text's ending with slot 0: the ids
        concatenated, and how many each text has. Call it after looking the slots up (see the class docstring)."""
        starts, lengths, store = self.arrays
        counts = lengths[slots]
        ends = np.cumsum(counts)
        # the ids of chunk k are store[starts[slots[k]] + j] for j < counts[k]; they land at ends[k] - counts[k] + j
        ids = store[np.repeat(starts[slots] - (ends - counts), counts) + np.arange(int(ends[-1]))]
        return ids, np.diff(ends[slots == 0], prepend=0)

    def add(self, chunks: list[str], ids: Int32s, counts: Int64s) -> None:
        """Adds chunks whose ids are ``ids``, concatenated, ``counts[k]`` for chunk k (caller holds the lock)."""
        starts, lengths, store = self.arrays
        self.arrays = (
            np.concatenate([starts, len(store) + np.cumsum(counts) - counts]),
            np.concatenate([lengths, counts]),
            np.concatenate([store, ids]),
        )
        slots = np.arange(len(starts), len(starts) + len(chunks))
        first, second, short = packed_strs(chunks)
        self.index.add(first, second, slots[short])
        self.slots.update(zip(chunks, slots.tolist(), strict=True))
        self.chars += sum(map(len, chunks))


class Engine:
    """The Rust pipelines, the chunk table, and the id -> bytes table for decoding; one per process."""

    def __init__(self) -> None:
        merges = read_merges()
        tokens = vocabulary(merges)
        vocab = {token: i for i, token in enumerate(tokens)}
        if len(vocab) != VOCAB_SIZE:  # pragma: no cover - guards the file and the layout above
            raise RuntimeError(f"the vocabulary has {len(vocab)} distinct tokens, not {VOCAB_SIZE}")

        self.ascii = Tokenizer(models.BPE(vocab=vocab, merges=merges, end_of_word_suffix=END_OF_WORD))
        self.ascii.pre_tokenizer = pre_tokenizers.Split(Regex(_ASCII_WORDS), behavior="removed", invert=True)
        self.ascii_separator_id = vocab[_ASCII_SEPARATOR + END_OF_WORD]

        self.words = Tokenizer(models.BPE(vocab=vocab, merges=merges, end_of_word_suffix=END_OF_WORD))
        self.words.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        self.words.add_special_tokens(
            [AddedToken(t, special=True, normalized=False) for t in (START_TOKEN, END_TOKEN, _WORDS_SEPARATOR)]
        )
        self.words_separator_id = VOCAB_SIZE
        if self.words.token_to_id(_WORDS_SEPARATOR) != VOCAB_SIZE:  # pragma: no cover - guards the layout
            raise RuntimeError("the chunk separator did not get the first id after the vocabulary")

        # Whole-word tokens by their words, for those a cleaned text can hold as printable ASCII (33,275): each such
        # word alone is that one token, as test_whole_word_tokens_are_their_own_words_ids checks for all of them.
        self.whole_words = {
            token[: -len(END_OF_WORD)]: i
            for i, token in enumerate(tokens[:START_ID])
            if token.endswith(END_OF_WORD) and token.isascii() and token.isprintable() and token == token.lower()
        }
        self._split_words = {**self.whole_words, _NUL: _NUL_ID}
        byte_of = {symbol: b for b, symbol in byte_symbols()}
        self.token_bytes = (
            *(bytes(byte_of[c] for c in token) for token in tokens[:START_ID]),
            START_TEXT.encode(),
            END_TEXT.encode(),
        )
        self._seed = ChunkTable.seed(self.whole_words)
        self.table = self._seed.copy()
        self._lock = threading.Lock()

    def ids(self, texts: list[str]) -> tuple[Int32s, Int64s]:
        """``(ids, counts)``: the texts' ids, concatenated, and how many ids each text has."""
        if not texts:
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        ending = b" " + TEXT_END + b" "
        data = b" " + ending.join([text.encode() for text in clean_texts(texts)]) + ending
        buffer = np.frombuffer(data + PADDING, np.uint8)
        space = buffer[: len(data)] == ord(" ")
        edges = np.flatnonzero(space[1:] != space[:-1]) + 1  # chunk starts and ends, alternately
        starts, ends = edges[0::2], edges[1::2]
        lengths = ends - starts
        short = lengths <= KEY_BYTES

        def decoded(which: Int64s) -> list[str]:
            return [data[s:e].decode() for s, e in zip(starts[which].tolist(), ends[which].tolist(), strict=True)]

        def every() -> list[str]:  # all the batch's chunks but the text ends
            return decoded(np.flatnonzero((lengths != 1) | (buffer[starts] != TEXT_END[0])))

        while True:
            table = self.table
            slots = np.full(len(starts), -1, np.int64)
            slots[short] = table.index.find(*packed(buffer, starts[short], lengths[short]))
            missing = np.flatnonzero(slots < 0)  # new chunks, long ones, and the few the index could not hold
            if not len(missing):
                break
            chunks = decoded(missing)
            slots[missing] = np.fromiter(map(table.slots.get, chunks, repeat(-1)), np.int64, len(chunks))
            unknown = slots[missing] < 0
            if not unknown.any():
                break
            new = list(compress(chunks, unknown.tolist()))
            if self._learn(table, new, every) is table:
                slots[missing[unknown]] = np.fromiter(map(table.slots.__getitem__, new), np.int64, len(new))
                break
            # the table was replaced (full, by this thread or another): look everything up in the new one
        return table.gather(slots)

    def _learn(self, seen: ChunkTable, new: list[str], every: Callable[[], list[str]]) -> ChunkTable:
        """The table, holding all the batch's chunks (``every()``), of which ``seen`` (the caller's table) lacks
        ``new``: adds the ones the current table lacks; if they would overflow it, a fresh table takes its place."""
        with self._lock:
            table = self.table
            missing = set(new if table is seen else every()).difference(table.slots)
            if not table.has_room(missing):
                table = self.table = self._seed.copy()
                missing = set(every()).difference(table.slots)
            plain: list[str] = []
            other: list[str] = []
            for chunk in missing:
                if chunk.isascii() and chunk.isprintable() and ("<" not in chunk or not _names_special(chunk)):
                    plain.append(chunk)
                else:
                    other.append(chunk)
            parts: list[tuple[list[str], Int32s, Int64s]] = []
            if plain:
                known, plain = self._whole_word_chunks(plain)
                parts.append(known)
            if plain:
                parts.append((plain, *self._encode_plain(plain)))
            if other:
                parts.append((other, *self._encode_words([_WORDS.findall(chunk) for chunk in other])))
            if parts:
                names, ids, counts = zip(*parts, strict=True)
                table.add([chunk for part in names for chunk in part], np.concatenate(ids), np.concatenate(counts))
            return table

    def _whole_word_chunks(self, chunks: list[str]) -> tuple[tuple[list[str], Int32s, Int64s], list[str]]:
        """``((known, ids, counts), others)``: the printable ASCII chunks all of whose words are whole-word tokens,
        their ids concatenated and how many each has; and the other chunks.

        The chunks are split in one pass over one string, each followed by a separator word (NUL, which no printable
        chunk holds), so that no list is made per chunk.
        """
        separated = f" {_NUL} "
        words = _split_ascii(separated.join(chunks) + separated)
        ids = np.fromiter(map(self._split_words.get, words, repeat(_UNKNOWN)), np.int32, len(words))
        ends = np.flatnonzero(ids == _NUL_ID)  # one per chunk
        known = np.diff(np.cumsum(ids == _UNKNOWN)[ends], prepend=0) == 0  # no unknown word in the chunk
        counts = np.diff(ends, prepend=-1) - 1
        keep = np.repeat(known, counts + 1) & (ids != _NUL_ID)
        others = list(compress(chunks, (~known).tolist()))
        return (list(compress(chunks, known.tolist())), ids[keep], counts[known]), others

    def _encode_plain(self, chunks: list[str]) -> tuple[Int32s, Int64s]:
        """``(ids, counts)`` of printable ASCII chunks: their ids concatenated, and how many each chunk has.

        Each group of chunks is one string, ``"c1 Ā c2 Ā ... Ā"``: the separator is a word of its own, and its id
        (``Ā</w>``) is no printable ASCII text's.
        """
        separated = f" {_ASCII_SEPARATOR} "
        sequences = [separated.join(chunks[i : i + _GROUP]) + separated for i in range(0, len(chunks), _GROUP)]
        encodings = self.ascii.encode_batch_fast(sequences, add_special_tokens=False)
        return _split_at(encodings, self.ascii_separator_id)

    def _encode_words(self, words: list[list[str]]) -> tuple[Int32s, Int64s]:
        """``(ids, counts)`` of chunks given as open_clip's words: their ids concatenated, and how many each has.

        Each group of chunks is one pre-tokenized sequence with a separator token after each chunk's words.
        """
        sequences = [
            [word for chunk in words[i : i + _GROUP] for word in (*chunk, _WORDS_SEPARATOR)]
            for i in range(0, len(words), _GROUP)
        ]
        encodings = self.words.encode_batch_fast(sequences, is_pretokenized=True, add_special_tokens=False)
        return _split_at(encodings, self.words_separator_id)


def _split_at(encodings: list[Encoding], separator: int) -> tuple[Int32s, Int64s]:
    """``(ids, counts)`` from encodings whose chunks each end with the separator id."""
    ids = np.fromiter(chain.from_iterable(e.ids for e in encodings), np.int32)
    ends = np.flatnonzero(ids == separator)  # one per chunk, in order
    return ids[ids != separator], np.diff(ends, prepend=-1) - 1


def _names_special(chunk: str) -> bool:
    """Whether a lower-case chunk holds a special token's name (open_clip reads it as that token)."""
    return START_TOKEN in chunk or END_TOKEN in chunk


@functools.cache
def engine() -> Engine:
    """The process's engine, made on first use."""
    return Engine()
