"""CLIP's lower-case byte-level BPE tokenizer (kind ``clip-bpe``), giving the same ids as open_clip's for any text.

open_clip tokenizes a text in four steps: clean it (ftfy, ``html.unescape`` twice, whitespace runs folded to one
space, lower case), split it into words with one regex, map each word's UTF-8 bytes to the byte-level alphabet, and
apply BPE to each word. This module gives the same ids, in three stages:

1. **Cleaning only where it can change something** (:mod:`clip_encoders_text.cleaning`): an ASCII text without
   ``&`` or control characters is only lower-cased; other texts get open_clip's cleaning, mostly without ftfy.
2. **Chunks, looked up without a Python object each.** No word holds whitespace, so a cleaned text's words are the
   words of its space-separated chunks, in order, and a text's ids are its chunks' ids concatenated. Chunks repeat a
   lot (``a``, ``photo``, ``of``...), so their ids are kept in a bounded table shared by the process
   (:class:`_ChunkTable`), seeded with the whole-word tokens (below). A batch's cleaned texts become one UTF-8
   buffer; numpy finds its chunks, packs each chunk of at most 15 bytes into an exact 128-bit key and looks the keys
   up in a hash table of numpy arrays (:class:`_PackedIndex`). Only the chunks it lacks (new or long ones) become
   ``str``: looked up in a dictionary, the new ones learnt in one go. numpy then gathers every text's ids. (Rust's
   pipeline spends about 1 µs per word even on words it has cached: whole batches are not sent to it.)
3. **Learning a chunk**, in the cheapest way that gives open_clip's ids:

   - a printable ASCII chunk (without a special token's name) whose words are all *whole-word tokens* (a token
     ending a word whose text is the whole word, as ``photo</w>``: 33,275 of them) takes their ids, without BPE.
     That each such word alone is that one token holds for every one of them (a test checks all against open_clip);
   - other printable ASCII chunks are joined into one string per group, separated by a word no printable ASCII
     text holds, and go to Rust (Hugging Face ``tokenizers``): a pipeline that splits them with an ASCII
     transcription of open_clip's regex (on printable ASCII the byte-level alphabet maps each character to itself,
     so no mapping step is needed) and applies BPE with the ``</w>`` end-of-word suffix;
   - any other chunk is split in Python by open_clip's own pattern run by the same ``regex`` module, so that Unicode
     tables and case-insensitive matching agree with open_clip by construction (Oniguruma, the Rust engine, has
     older Unicode tables and folds U+0345 differently). Its words go to Rust pre-tokenized: UTF-8 bytes to the
     byte-level alphabet, then BPE; a word equal to a special token's name becomes that token, as in open_clip.

The vocabulary is open_clip's, in its order: 256 byte symbols, the same with ``</w>``, 48,894 merges, 2 specials.
open_clip's BPE (merge the lowest-ranked pair everywhere, repeat) and the Rust one (merge the lowest-ranked pair at
its leftmost position, repeat) agree on these merges because every merge's parts are made by earlier merges and no
two merges make the same token.
"""

from __future__ import annotations

import functools
import gzip
import operator
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from importlib.resources import files
from itertools import chain, compress, repeat

import numpy as np
import numpy.typing as npt
import regex  # type: ignore[import-untyped]
import torch
from tokenizers import AddedToken, Encoding, Regex, Tokenizer, models, pre_tokenizers

from clip_core import InputError, TokenizerConfig
from clip_encoders_text.cleaning import clean_texts

__all__ = ["ClipBpeTokenizer"]

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
_NUL_ID = -2  # its id in _Engine._split_words
_UNKNOWN = -1  # the id of a word not in _Engine._split_words
_GROUP = 256  # chunks per Rust sequence: few sequences, yet enough for Rust to share them between threads

_Int64s = npt.NDArray[np.int64]
_Int32s = npt.NDArray[np.int32]
_UInt64s = npt.NDArray[np.uint64]
_UInt8s = npt.NDArray[np.uint8]


# --- Vocabulary ------------------------------------------------------------------------------------------------------


def _byte_symbols() -> list[tuple[int, str]]:
    """The byte-level alphabet as ``(byte, symbol)`` pairs in vocabulary order.

    Bytes that are visible Latin-1 characters (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) stand for themselves and come
    first, in byte order; the other 68 bytes (controls, space, DEL, C1 controls, no-break space, soft hyphen) follow
    in byte order as U+0100, U+0101, ...
    """
    visible = [b for b in range(256) if 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF]
    hidden = sorted(set(range(256)) - set(visible))
    return [(b, chr(b)) for b in visible] + [(b, chr(0x100 + i)) for i, b in enumerate(hidden)]


def _read_merges() -> list[tuple[str, str]]:
    """The first 48,894 merges of the package's merges file (its first line is a version header)."""
    data = (files("clip_encoders_text") / "data" / MERGES_FILE).read_bytes()
    lines = gzip.decompress(data).decode("utf-8").split("\n")[1 : N_MERGES + 1]
    pairs = [line.split(" ") for line in lines]
    if len(pairs) != N_MERGES or any(len(pair) != 2 for pair in pairs):
        raise RuntimeError(f"clip_encoders_text/data/{MERGES_FILE} is damaged: reinstall clip-encoders-text")
    return [(left, right) for left, right in pairs]


def _vocabulary(merges: list[tuple[str, str]]) -> list[str]:
    """Token strings by id: byte symbols, byte symbols ending a word, merges, start and end tokens."""
    symbols = [symbol for _, symbol in _byte_symbols()]
    return [
        *symbols,
        *(symbol + END_OF_WORD for symbol in symbols),
        *(left + right for left, right in merges),
        START_TOKEN,
        END_TOKEN,
    ]


# --- Packed keys: looking chunks up without making a str of each -----------------------------------------------------
#
# A batch's cleaned texts are encoded as one UTF-8 buffer, chunks separated by spaces and each text's chunks followed
# by a lone byte 0xFF, which UTF-8 never holds (``_TEXT_END``). numpy finds the chunks, and a chunk of at most 15
# bytes has an exact key of two 64-bit words: its bytes, zero-padded, and its length in the top byte of the second.
# An open-addressing hash table of such keys gives most chunks' slots without Python touching them.

_TEXT_END = b"\xff"  # follows each text's chunks in a batch's buffer; never in UTF-8, so never in a chunk
_PADDING = bytes(16)  # after a buffer, so that every chunk's 16 bytes can be read
_KEY_BYTES = 15  # longest chunk with a packed key, in bytes
_PROBES = 8  # slots of the hash table a key may take, from its hash on; a key that finds none is not indexed
_HASH_BITS = 18  # the hash table's size: 2**18 entries (5 MB), for at most 33,275 + CHUNK_TABLE_SIZE keys
_MASKS = np.array([(1 << (8 * n)) - 1 for n in range(8)] + [(1 << 64) - 1], np.uint64)  # the first n bytes
_LENGTHS = np.arange(_KEY_BYTES + 1, dtype=np.uint64) << np.uint64(56)


def _packed(buffer: _UInt8s, starts: _Int64s, lengths: _Int64s) -> tuple[_UInt64s, _UInt64s]:
    """The keys of the chunks ``buffer[start : start + length]`` (lengths at most 15; 16 bytes readable after each)."""
    # 8 bytes from each offset
    words: _UInt64s = np.ndarray((len(buffer) - 7,), dtype="<u8", buffer=buffer, strides=(1,))
    first = words[starts] & _MASKS[np.minimum(lengths, 8)]
    second = (words[starts + 8] & _MASKS[np.maximum(lengths - 8, 0)]) | _LENGTHS[lengths]
    return first, second


def _packed_strs(chunks: list[str]) -> tuple[_UInt64s, _UInt64s, npt.NDArray[np.bool_]]:
    """The keys of the chunks whose UTF-8 has at most 15 bytes, and which chunks those are."""
    encoded = [chunk.encode() for chunk in chunks]
    lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
    short = lengths <= _KEY_BYTES
    buffer = np.frombuffer(b"".join(compress(encoded, short.tolist())) + _PADDING, np.uint8)
    kept = lengths[short]
    return (*_packed(buffer, np.cumsum(kept) - kept, kept), short)


def _hashed(first: _UInt64s, second: _UInt64s) -> npt.NDArray[np.intp]:
    """Each key's home slot."""
    mixed = (first ^ (second * np.uint64(0xC2B2AE3D27D4EB4F))) * np.uint64(0x9E3779B97F4A7C15)
    home: npt.NDArray[np.intp] = (mixed >> np.uint64(64 - _HASH_BITS)).astype(np.intp)
    return home


class _PackedIndex:
    """Slots by packed key, in an open-addressing hash table (linear probing, at most ``_PROBES`` slots per key).

    Keys are only ever added, under the engine's lock, each entry's slot value and first word before its second word
    (zero means an empty entry): a reader running alongside finds an entry complete, or not at all, or with its slot
    value not yet written (-1), and then takes the slow path. Either way it never finds a wrong slot.
    """

    def __init__(self) -> None:
        size = 1 << _HASH_BITS
        self.first = np.zeros(size, np.uint64)
        self.second = np.zeros(size, np.uint64)
        self.slots = np.full(size, -1, np.int32)

    def copy(self) -> _PackedIndex:
        """An index holding the same keys, changed independently from now on."""
        index = _PackedIndex.__new__(_PackedIndex)
        index.first, index.second, index.slots = self.first.copy(), self.second.copy(), self.slots.copy()
        return index

    def find(self, first: _UInt64s, second: _UInt64s) -> _Int64s:
        """The keys' slots, -1 for a key not indexed."""
        found = np.full(len(first), -1, np.int64)
        home = _hashed(first, second)
        seconds = self.second[home]
        hit = (seconds == second) & (self.first[home] == first)
        found[hit] = self.slots[home[hit]]
        todo = np.flatnonzero(~hit & (seconds != 0))  # an empty entry ends a key's search
        mask = len(self.first) - 1
        for probe in range(1, _PROBES):
            if not len(todo):
                break
            at = (home[todo] + probe) & mask
            seconds = self.second[at]
            hit = (seconds == second[todo]) & (self.first[at] == first[todo])
            found[todo[hit]] = self.slots[at[hit]]
            todo = todo[~hit & (seconds != 0)]
        return found

    def add(self, first: _UInt64s, second: _UInt64s, slots: _Int64s) -> None:
        """Indexes distinct keys not indexed yet (caller holds the lock); a key finding no free entry is left out."""
        home = _hashed(first, second)
        todo = np.arange(len(first))
        mask = len(self.first) - 1
        for probe in range(_PROBES):
            at = (home[todo] + probe) & mask
            free = self.second[at] == 0
            entries, firsts = np.unique(at[free], return_index=True)  # one key per free entry; the others go on
            placed = todo[free][firsts]
            self.slots[entries] = slots[placed]
            self.first[entries] = first[placed]
            self.second[entries] = second[placed]  # last: it makes the entry visible
            todo = np.setdiff1d(todo, placed, assume_unique=True)
            if not len(todo):
                break


# --- The chunk table and the Rust pipelines -------------------------------------------------------------------------


class _ChunkTable:
    """Ids of chunks: a chunk's slot comes from ``index`` (by packed key) or ``slots`` (by str, for every chunk); a
    slot's ids are ``store[start : start + length]`` in ``arrays``.

    Slot 0 is ``_TEXT_END``, with no ids; then come the whole-word tokens' words (the seed, always held), then the
    chunks learnt. Writers add chunks under the engine's lock: new arrays first, then the index and dictionary entries;
    arrays are replaced, never changed. So a reader that looks its slots up first and reads ``arrays`` afterwards finds
    them. A full table is replaced by a fresh copy of the seed, so readers still holding it are undisturbed.
    """

    def __init__(self, slots: dict[str, int], index: _PackedIndex, arrays: tuple[_Int64s, _Int64s, _Int32s]) -> None:
        self.slots = slots
        self.index = index
        self.arrays = arrays
        self.seeded = len(slots)  # chunks that do not count against CHUNK_TABLE_SIZE
        self.chars = 0  # characters in the chunks learnt

    @classmethod
    def seed(cls, words: dict[str, int]) -> _ChunkTable:
        """A table holding ``_TEXT_END`` and the words, each with its one id."""
        starts = np.arange(-1, len(words), dtype=np.int64)
        lengths = np.ones(len(words) + 1, np.int64)
        starts[0] = lengths[0] = 0
        table = cls({}, _PackedIndex(), (starts, lengths, np.fromiter(words.values(), np.int32, len(words))))
        end = np.frombuffer(_TEXT_END + _PADDING, np.uint8)
        table.index.add(*_packed(end, np.zeros(1, np.int64), np.ones(1, np.int64)), np.zeros(1, np.int64))
        table.slots.update(zip(words, range(1, len(words) + 1), strict=True))
        first, second, short = _packed_strs(list(words))
        table.index.add(first, second, np.arange(1, len(words) + 1)[short])
        table.seeded = len(table.slots)
        return table

    def copy(self) -> _ChunkTable:
        """A table holding what this one holds, whose chunks learnt from now on are its own."""
        table = _ChunkTable(dict(self.slots), self.index.copy(), self.arrays)
        table.seeded, table.chars = self.seeded, self.chars
        return table

    def has_room(self, chunks: Iterable[str]) -> bool:
        """Whether the chunks fit within ``CHUNK_TABLE_SIZE`` and ``CHUNK_TABLE_CHARS``."""
        chunks = list(chunks)
        return (
            len(self.slots) - self.seeded + len(chunks) <= CHUNK_TABLE_SIZE
            and self.chars + sum(map(len, chunks)) <= CHUNK_TABLE_CHARS
        )

    def gather(self, slots: _Int64s) -> tuple[_Int32s, _Int64s]:
        """``(ids, counts)`` of the texts whose chunks have these slots, each text's ending with slot 0: the ids
        concatenated, and how many each text has. Call it after looking the slots up (see the class docstring)."""
        starts, lengths, store = self.arrays
        counts = lengths[slots]
        ends = np.cumsum(counts)
        # the ids of chunk k are store[starts[slots[k]] + j] for j < counts[k]; they land at ends[k] - counts[k] + j
        ids = store[np.repeat(starts[slots] - (ends - counts), counts) + np.arange(int(ends[-1]))]
        return ids, np.diff(ends[slots == 0], prepend=0)

    def add(self, chunks: list[str], ids: _Int32s, counts: _Int64s) -> None:
        """Adds chunks whose ids are ``ids``, concatenated, ``counts[k]`` for chunk k (caller holds the lock)."""
        starts, lengths, store = self.arrays
        self.arrays = (
            np.concatenate([starts, len(store) + np.cumsum(counts) - counts]),
            np.concatenate([lengths, counts]),
            np.concatenate([store, ids]),
        )
        slots = np.arange(len(starts), len(starts) + len(chunks))
        first, second, short = _packed_strs(chunks)
        self.index.add(first, second, slots[short])
        self.slots.update(zip(chunks, slots.tolist(), strict=True))
        self.chars += sum(map(len, chunks))


class _Engine:
    """The Rust pipelines, the chunk table, and the id -> bytes table for decoding; one per process."""

    def __init__(self) -> None:
        merges = _read_merges()
        tokens = _vocabulary(merges)
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
        byte_of = {symbol: b for b, symbol in _byte_symbols()}
        self.token_bytes = (
            *(bytes(byte_of[c] for c in token) for token in tokens[:START_ID]),
            START_TEXT.encode(),
            END_TEXT.encode(),
        )
        self._seed = _ChunkTable.seed(self.whole_words)
        self.table = self._seed.copy()
        self._lock = threading.Lock()

    def ids(self, texts: list[str]) -> tuple[_Int32s, _Int64s]:
        """``(ids, counts)``: the texts' ids, concatenated, and how many ids each text has."""
        if not texts:
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        ending = b" " + _TEXT_END + b" "
        data = b" " + ending.join([text.encode() for text in clean_texts(texts)]) + ending
        buffer = np.frombuffer(data + _PADDING, np.uint8)
        space = buffer[: len(data)] == ord(" ")
        edges = np.flatnonzero(space[1:] != space[:-1]) + 1  # chunk starts and ends, alternately
        starts, ends = edges[0::2], edges[1::2]
        lengths = ends - starts
        short = lengths <= _KEY_BYTES

        def decoded(which: _Int64s) -> list[str]:
            return [data[s:e].decode() for s, e in zip(starts[which].tolist(), ends[which].tolist(), strict=True)]

        def every() -> list[str]:  # all the batch's chunks but the text ends
            return decoded(np.flatnonzero((lengths != 1) | (buffer[starts] != _TEXT_END[0])))

        while True:
            table = self.table
            slots = np.full(len(starts), -1, np.int64)
            slots[short] = table.index.find(*_packed(buffer, starts[short], lengths[short]))
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

    def _learn(self, seen: _ChunkTable, new: list[str], every: Callable[[], list[str]]) -> _ChunkTable:
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
            parts: list[tuple[list[str], _Int32s, _Int64s]] = []
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

    def _whole_word_chunks(self, chunks: list[str]) -> tuple[tuple[list[str], _Int32s, _Int64s], list[str]]:
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

    def _encode_plain(self, chunks: list[str]) -> tuple[_Int32s, _Int64s]:
        """``(ids, counts)`` of printable ASCII chunks: their ids concatenated, and how many each chunk has.

        Each group of chunks is one string, ``"c1 Ā c2 Ā ... Ā"``: the separator is a word of its own, and its id
        (``Ā</w>``) is no printable ASCII text's.
        """
        separated = f" {_ASCII_SEPARATOR} "
        sequences = [separated.join(chunks[i : i + _GROUP]) + separated for i in range(0, len(chunks), _GROUP)]
        encodings = self.ascii.encode_batch_fast(sequences, add_special_tokens=False)
        return _split_at(encodings, self.ascii_separator_id)

    def _encode_words(self, words: list[list[str]]) -> tuple[_Int32s, _Int64s]:
        """``(ids, counts)`` of chunks given as open_clip's words: their ids concatenated, and how many each has.

        Each group of chunks is one pre-tokenized sequence with a separator token after each chunk's words.
        """
        sequences = [
            [word for chunk in words[i : i + _GROUP] for word in (*chunk, _WORDS_SEPARATOR)]
            for i in range(0, len(words), _GROUP)
        ]
        encodings = self.words.encode_batch_fast(sequences, is_pretokenized=True, add_special_tokens=False)
        return _split_at(encodings, self.words_separator_id)


def _split_at(encodings: list[Encoding], separator: int) -> tuple[_Int32s, _Int64s]:
    """``(ids, counts)`` from encodings whose chunks each end with the separator id."""
    ids = np.fromiter(chain.from_iterable(e.ids for e in encodings), np.int32)
    ends = np.flatnonzero(ids == separator)  # one per chunk, in order
    return ids[ids != separator], np.diff(ends, prepend=-1) - 1


def _names_special(chunk: str) -> bool:
    """Whether a lower-case chunk holds a special token's name (open_clip reads it as that token)."""
    return START_TOKEN in chunk or END_TOKEN in chunk


@functools.cache
def _engine() -> _Engine:
    """The process's engine, made on first use."""
    return _Engine()


# --- Batches --------------------------------------------------------------------------------------------------------


def _rows(ids: _Int32s, counts: _Int64s, length: int) -> _Int64s:
    """``[start, ids[:length - 2], end, 0...]`` per text (text i's ids are the next ``counts[i]`` of ``ids``);
    ``[end]`` when ``length == 1``, as open_clip."""
    out = np.zeros((len(counts), length), np.int64)
    if length == 1:
        out[:, 0] = END_ID
        return out
    room = length - 2
    kept = np.minimum(counts, room)
    if int(kept.sum()) < len(ids):  # some texts are too long: drop their ids past the room
        firsts = np.cumsum(counts) - counts
        ids = ids[np.arange(len(ids)) - np.repeat(firsts, counts) < room]
    out[:, 1 : room + 1][np.arange(room) < kept[:, None]] = ids  # boolean masks fill in row-major order
    out[:, 0] = START_ID
    out[np.arange(len(kept)), kept + 1] = END_ID
    return out


def _as_texts(texts: object) -> list[str]:
    """The batch as a list of str, or an InputError naming what is not a str."""
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Iterable):
        raise InputError(f"texts must be a str or a sequence of str, got {type(texts).__name__}")
    batch = list(texts)
    for i, text in enumerate(batch):
        if not isinstance(text, str):
            raise InputError(f"texts[{i}] must be a str, got {type(text).__name__}: {text!r:.60}")
    return batch


class ClipBpeTokenizer:
    """CLIP's tokenizer: open_clip's cleaning and lower-case byte-level BPE, with the same ids, run over whole batches
    with numpy, and Rust's BPE for chunks never seen before.

    ``tok(texts)`` returns ``LongTensor[B, context_length]``: 49406 (start), the text's ids, 49407 (end), zeros. A
    text too long for the context keeps its first ``context_length - 2`` ids and still ends with 49407. Instances
    share one process-wide engine and may be called from several threads at once.
    """

    vocab_size: int = VOCAB_SIZE
    start_id: int = START_ID
    end_id: int = END_ID
    pad_id: int = PAD_ID

    def __init__(self, config: TokenizerConfig) -> None:
        """A tokenizer whose rows have ``config.context_length`` ids; reads the merges now (not in the first call)."""
        self.context_length: int = config.context_length
        _engine()

    def encode(self, text: str) -> list[int]:
        """The ids of one text, cleaned as open_clip cleans it, without start or end token."""
        if not isinstance(text, str):
            raise InputError(f"text must be a str, got {type(text).__name__}: {text!r:.60}")
        ids: list[int] = _engine().ids([text])[0].tolist()
        return ids

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The text the ids spell, as open_clip decodes it except for the start and end tokens' names.

        Each ``</w>`` becomes a space (so a decoded word ends with one), the start and end tokens appear as OpenAI
        names them, ``<|startoftext|>`` and ``<|endoftext|>``, and byte sequences that are not UTF-8 become U+FFFD.
        Padding is not skipped: 0 is the id of ``!``.
        """
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1 or ids.is_floating_point() or ids.is_complex():
                raise InputError(f"ids must be a 1-d integer tensor, got {ids.dtype} of shape {tuple(ids.shape)}")
            ids = ids.tolist()
        table = _engine().token_bytes
        pieces = []
        for i in ids:
            try:
                index = operator.index(i)
            except TypeError:
                index = -1
            if isinstance(i, bool) or not 0 <= index < VOCAB_SIZE:
                raise InputError(f"ids must be integers in [0, {VOCAB_SIZE}), got {i!r}")
            pieces.append(table[index])
        return b"".join(pieces).decode("utf-8", errors="replace").replace(END_OF_WORD, " ")

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> torch.Tensor:
        """Ids ``LongTensor[len(texts), context_length]`` (a single str is a batch of one); see the class docstring."""
        length = self.context_length if context_length is None else context_length
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise InputError(f"context_length must be a positive int, got {length!r}")
        return torch.from_numpy(_rows(*_engine().ids(_as_texts(texts)), length))
