"""Packed keys: looking chunks up without making a ``str`` of each, in a hash table of numpy arrays.

A batch's cleaned texts are encoded as one UTF-8 buffer, chunks separated by spaces and each text's chunks followed
by a lone byte 0xFF, which UTF-8 never holds (:data:`TEXT_END`). numpy finds the chunks, and a chunk of at most 15
bytes has an exact key of two 64-bit words: its bytes, zero-padded, and its length in the top byte of the second.
An open-addressing hash table of such keys gives most chunks' slots without Python touching them.
"""

from __future__ import annotations

from itertools import compress

import numpy as np
import numpy.typing as npt

__all__ = [
    "KEY_BYTES",
    "PADDING",
    "TEXT_END",
    "Int32s",
    "Int64s",
    "PackedIndex",
    "UInt8s",
    "UInt64s",
    "packed",
    "packed_strs",
]

TEXT_END = b"\xff"  # follows each text's chunks in a batch's buffer; never in UTF-8, so never in a chunk
PADDING = bytes(16)  # after a buffer, so that every chunk's 16 bytes can be read
KEY_BYTES = 15  # longest chunk with a packed key, in bytes
_PROBES = 8  # slots of the hash table a key may take, from its hash on; a key that finds none is not indexed
_HASH_BITS = 18  # the hash table's size: 2**18 entries (5 MB), for at most 33,275 + chunks.CHUNK_TABLE_SIZE keys
_MASKS = np.array([(1 << (8 * n)) - 1 for n in range(8)] + [(1 << 64) - 1], np.uint64)  # the first n bytes
_LENGTHS = np.arange(KEY_BYTES + 1, dtype=np.uint64) << np.uint64(56)

#: The numpy arrays the chunk pipeline passes around.
Int64s = npt.NDArray[np.int64]
Int32s = npt.NDArray[np.int32]
UInt64s = npt.NDArray[np.uint64]
UInt8s = npt.NDArray[np.uint8]


def packed(buffer: UInt8s, starts: Int64s, lengths: Int64s) -> tuple[UInt64s, UInt64s]:
    """The keys of the chunks ``buffer[start : start + length]`` (lengths at most 15; 16 bytes readable after each)."""
    # 8 bytes from each offset
    words: UInt64s = np.ndarray((len(buffer) - 7,), dtype="<u8", buffer=buffer, strides=(1,))
    first = words[starts] & _MASKS[np.minimum(lengths, 8)]
    second = (words[starts + 8] & _MASKS[np.maximum(lengths - 8, 0)]) | _LENGTHS[lengths]
    return first, second


def packed_strs(chunks: list[str]) -> tuple[UInt64s, UInt64s, npt.NDArray[np.bool_]]:
    """The keys of the chunks whose UTF-8 has at most 15 bytes, and which chunks those are."""
    encoded = [chunk.encode() for chunk in chunks]
    lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
    short = lengths <= KEY_BYTES
    buffer = np.frombuffer(b"".join(compress(encoded, short.tolist())) + PADDING, np.uint8)
    kept = lengths[short]
    return (*packed(buffer, np.cumsum(kept) - kept, kept), short)


def _hashed(first: UInt64s, second: UInt64s) -> npt.NDArray[np.intp]:
    """Each key's home slot."""
    mixed = (first ^ (second * np.uint64(0xC2B2AE3D27D4EB4F))) * np.uint64(0x9E3779B97F4A7C15)
    home: npt.NDArray[np.intp] = (mixed >> np.uint64(64 - _HASH_BITS)).astype(np.intp)
    return home


class PackedIndex:
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

    def copy(self) -> PackedIndex:
        """An index holding the same keys, changed independently from now on."""
        index = PackedIndex.__new__(PackedIndex)
        index.first, index.second, index.slots = self.first.copy(), self.second.copy(), self.slots.copy()
        return index

    def find(self, first: UInt64s, second: UInt64s) -> Int64s:
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

    def add(self, first: UInt64s, second: UInt64s, slots: Int64s) -> None:
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
