"""CLIP's lower-case byte-level BPE tokenizer (kind ``clip-bpe``), giving the same ids as open_clip's for any text.

open_clip tokenizes a text in four steps: clean it (ftfy, ``html.unescape`` twice, whitespace runs folded to one
space, lower case), split it into words with one regex, map each word's UTF-8 bytes to the byte-level alphabet, and
apply BPE to each word. This module gives the same ids faster, in three stages:

1. **Cleaning only where it can change something.** A printable ASCII text without ``&`` is a fixed point of ftfy
   and ``html.unescape`` (every ftfy fixer needs ``&``, a control or a non-ASCII character): only lower-casing
   applies. For any other text, ftfy's passes are followed in Python as long as they only decode HTML and
   straighten curly quotes, and ftfy's own mojibake test finds nothing (:class:`_FtfyShortcut`); otherwise ftfy
   runs. Either way the result is open_clip's cleaning.
2. **Chunks.** No word can contain whitespace, so a cleaned text's words are the words of its space-separated
   chunks, in order, and a text's ids are its chunks' ids concatenated. Chunks repeat a lot (``a``, ``photo``,
   ``of``...), so their ids are kept in a bounded table shared by the process; a batch looks up all its chunks in
   one pass and sends the chunks it has not seen to Rust in one batch.
3. **Rust** (Hugging Face ``tokenizers``), for chunks not in the table:

   - a printable ASCII chunk goes to a pipeline that splits it with an ASCII transcription of open_clip's regex
     (on printable ASCII the byte-level alphabet maps each character to itself, so no mapping step is needed)
     and applies BPE with the ``</w>`` end-of-word suffix;
   - any other chunk, and any chunk holding a special token's name (``<start_of_text>``, ``<end_of_text>``), is
     split in Python by open_clip's own pattern run by the same ``regex`` module, so that Unicode tables and
     case-insensitive matching agree with open_clip by construction (Oniguruma, the Rust engine, has older
     Unicode tables and folds U+0345 differently). Its words go to Rust pre-tokenized: UTF-8 bytes to the
     byte-level alphabet, then BPE; a word equal to a special token's name becomes that token, as in open_clip.

The vocabulary is open_clip's, in its order: 256 byte symbols, the same with ``</w>``, 48,894 merges, 2 specials.
open_clip's BPE (merge the lowest-ranked pair everywhere, repeat) and the Rust one (merge the lowest-ranked pair at
its leftmost position, repeat) agree on these merges because every merge's parts are made by earlier merges and no
two merges make the same token.
"""

from __future__ import annotations

import functools
import gzip
import html
import importlib
import operator
import re
import sys
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from itertools import chain
from typing import Any

import ftfy
import ftfy.badness
import ftfy.chardata
import ftfy.fixes
import numpy as np
import numpy.typing as npt
import regex  # type: ignore[import-untyped]
import torch
from tokenizers import AddedToken, Regex, Tokenizer, models, pre_tokenizers

from clip_core import InputError, TokenizerConfig

__all__ = ["ClipBpeTokenizer", "clean_text"]

VOCAB_SIZE = 49408
START_ID = 49406
END_ID = 49407
PAD_ID = 0
START_TOKEN = "<start_of_text>"
END_TOKEN = "<end_of_text>"
END_OF_WORD = "</w>"
N_MERGES = VOCAB_SIZE - 2 * 256 - 2  # 48,894
MERGES_FILE = "bpe_simple_vocab_16e6.txt.gz"
CHUNK_TABLE_SIZE = 1 << 17  # chunks whose ids are kept; the table starts afresh when a batch would overflow it

# open_clip's words: a special token's name, a contraction, a run of letters, one digit, or a run of anything else
# but whitespace; case-insensitive. Run by the `regex` module, as open_clip runs it.
_WORDS = regex.compile(
    rf"{START_TOKEN}|{END_TOKEN}|'s|'t|'re|'ve|'m|'ll|'d|[\p{{L}}]+|[\p{{N}}]|[^\s\p{{L}}\p{{N}}]+", regex.IGNORECASE
)
# The same pattern for lower-case printable ASCII without a special token's name (letters a-z, digits 0-9, the only
# whitespace is the space). Oniguruma runs it about 2.5 times faster than the Unicode-property form.
_ASCII_WORDS = r"'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+"


def clean_text(text: str) -> str:
    """open_clip's cleaning: ftfy, HTML entities unescaped twice, whitespace runs folded to one space, lower case."""
    text = html.unescape(html.unescape(ftfy.fix_text(text)))
    return " ".join(text.split()).lower()


# --- Running ftfy only where it changes something ---------------------------------------------------------------
#
# ftfy 6 repairs a text line by line, repeating one pass until the pass changes nothing. The pass: decode HTML
# entities (`&name;`, `&#123;`; not at all in a line holding `<`), repair mojibake (only where
# `ftfy.badness.is_bad` finds some), then C1 controls, Latin ligatures, character width, curly quotes, line breaks,
# surrogates, terminal escapes, control characters, and NFC. On one line holding none of the characters that the
# C1, ligature, width, line-break, surrogate, escape and control-character fixers change, and no mojibake, a pass
# reduces to HTML decoding, quote straightening and NFC, which `_FtfyShortcut` follows (and checks, NFC included).
# Those characters come from ftfy's own tables and patterns, and the mojibake test is ftfy's own regex, searched
# only near the characters every match needs (`_Badness`, proven from the regex's parse tree). If ftfy's
# configuration has fields other than those known here (a new fixer), ftfy always runs.

_FTFY_FIELDS = frozenset(
    {
        "unescape_html",
        "remove_terminal_escapes",
        "fix_encoding",
        "restore_byte_a0",
        "replace_lossy_sequences",
        "decode_inconsistent_utf8",
        "fix_c1_controls",
        "fix_latin_ligatures",
        "fix_character_width",
        "uncurl_quotes",
        "fix_line_breaks",
        "fix_surrogates",
        "remove_control_chars",
        "normalization",
        "max_decode_length",
        "explain",
    }
)
_SHORTCUT_MAX_LENGTH = 100_000  # ftfy cuts longer lines into 1,000,000-character pieces; stay well inside one
_SHORTCUT_MAX_PASSES = 4  # then leave it to ftfy


def _parse_regex(pattern: re.Pattern[str]) -> Any:
    """The parse tree of a pattern from Python's own regex parser (`re._parser`; `sre_parse` on Python 3.10)."""
    name = "re._parser" if sys.version_info >= (3, 11) else "sre_parse"
    return importlib.import_module(name).parse(pattern.pattern, pattern.flags)


def _item_chars(item: tuple[Any, Any]) -> set[str] | None:
    """The characters a one-character regex item matches: a literal or a class of literals and ranges, else None."""
    op, arg = item
    if str(op) == "LITERAL":
        return {chr(arg)}
    if str(op) != "IN":
        return None
    chars: set[str] = set()
    for sub_op, sub_arg in arg:
        if str(sub_op) == "LITERAL":
            chars.add(chr(sub_arg))
        elif str(sub_op) == "RANGE":
            chars.update(map(chr, range(sub_arg[0], sub_arg[1] + 1)))
        else:
            return None
    return chars


_CONTEXT_FREE_OPS = frozenset({"LITERAL", "NOT_LITERAL", "IN", "ANY", "MAX_REPEAT", "MIN_REPEAT", "SUBPATTERN"})


def _context_free(items: Any) -> bool:
    """Whether matches of these regex items depend on nothing outside them (``^`` too: `search(pos=...)` keeps it)."""
    for op, arg in items:
        name = str(op)
        if name == "AT" and str(arg) in ("AT_BEGINNING", "AT_BEGINNING_STRING"):
            continue
        if name not in _CONTEXT_FREE_OPS:
            return False
        if name in ("MAX_REPEAT", "MIN_REPEAT") and not _context_free(arg[2]):
            return False
        if name == "SUBPATTERN" and not _context_free(arg[-1]):
            return False
    return True


@dataclass(frozen=True)
class _Badness:
    """Every match of ftfy's mojibake pattern is at most ``width`` long and holds a character ``anchors`` finds."""

    anchors: re.Pattern[str]
    width: int

    @classmethod
    def of_ftfy(cls) -> _Badness | None:
        """Proves the property for ``ftfy.badness.BADNESS_RE`` from its parse tree, or returns None."""
        pattern = ftfy.badness.BADNESS_RE
        if pattern.flags & re.IGNORECASE:
            return None
        tree = _parse_regex(pattern)
        items = list(tree.data)
        branches = items[0][1][1] if len(items) == 1 and str(items[0][0]) == "BRANCH" else [tree]
        anchors: set[str] = set()
        width = 0
        for branch in branches:
            longest = branch.getwidth()[1]
            # candidate anchors: the branch's top-level one-character items that only non-ASCII characters match
            sets = [chars for chars in map(_item_chars, branch.data) if chars and min(map(ord, chars)) >= 0x80]
            if longest > 64 or not sets or not _context_free(branch.data):
                return None
            anchors |= min(sets, key=len)
            width = max(width, longest)
        return cls(re.compile("[" + "".join(re.escape(c) for c in sorted(anchors)) + "]"), width)

    def is_bad(self, text: str) -> bool:
        """``ftfy.badness.is_bad(text)``, searching only the windows around the anchor characters."""
        search = ftfy.badness.BADNESS_RE.search
        reach = self.width - 1
        low = high = 0  # the current window is text[low:high]; high == 0 before the first
        for found in self.anchors.finditer(text):
            at = found.start()
            if high and at - reach <= high:
                high = at + reach + 1
                continue
            if high and search(text, low, high):
                return True
            low, high = max(0, at - reach), at + reach + 1
        return bool(high) and search(text, low, high) is not None


# Characters ftfy's code (not a table) changes: line breaks (it also works line by line), terminal escapes (they
# start with ESC), surrogates. C1 controls come from its pattern.
_FIXED_BY_CODE = "\n\r\x85\u2028\u2029\x1b" + "".join(map(chr, range(0xD800, 0xE000)))


@dataclass(frozen=True)
class _FtfyShortcut:
    """What ftfy's passes change, read from ftfy itself; ``fix_text`` follows the passes where that is enough."""

    fixed_chars: re.Pattern[str]  # characters a fixer other than HTML, mojibake and quotes changes, or a line break
    quotes: re.Pattern[str]  # the curly quotes ftfy straightens
    entity: re.Pattern[str]  # what ftfy's HTML decoder looks at
    badness: _Badness | None

    @classmethod
    def of_ftfy(cls) -> _FtfyShortcut | None:
        """The shortcut for the installed ftfy, or None when its fixers are not the known ones."""
        try:
            from ftfy import chardata

            if set(ftfy.TextFixerConfig._fields) != _FTFY_FIELDS:
                return None
            tables = (chardata.LIGATURES, chardata.WIDTH_MAP, chardata.CONTROL_CHARS)
            fixed = {chr(code) for table in tables for code in table} | set(_FIXED_BY_CODE)
            quotes: set[str] = set()
            for pattern in (chardata.SINGLE_QUOTE_RE, chardata.DOUBLE_QUOTE_RE, chardata.C1_CONTROL_RE):
                items = list(_parse_regex(pattern).data)
                found = _item_chars(items[0]) if len(items) == 1 else None
                if found is None:
                    return None
                if pattern is chardata.C1_CONTROL_RE:
                    fixed |= found
                else:
                    quotes |= found
            return cls(_char_class(fixed), _char_class(quotes), chardata.HTML_ENTITY_RE, _Badness.of_ftfy())
        except (ImportError, AttributeError, IndexError, TypeError, ValueError):  # pragma: no cover - another ftfy
            return None

    def is_bad(self, text: str) -> bool:
        """``ftfy.badness.is_bad(text)``."""
        return self.badness.is_bad(text) if self.badness is not None else bool(ftfy.badness.is_bad(text))

    def fix_text(self, text: str) -> str:
        """``ftfy.fix_text(text)``, without running ftfy when the passes' result is certain."""
        result = self._passes(text) if len(text) <= _SHORTCUT_MAX_LENGTH else None
        return ftfy.fix_text(text) if result is None else result

    def _passes(self, text: str) -> str | None:
        """ftfy's passes over a one-line text, when only HTML decoding and quote straightening change it; else None.

        Each pass below equals ftfy's: decode HTML (not in a line holding ``<``; decoding never removes a line
        break), find no mojibake, no character the other fixers change, straighten quotes, find the text in NFC.
        """
        decodes = "<" not in text
        current = text
        for _ in range(_SHORTCUT_MAX_PASSES):
            result = (
                ftfy.fixes.unescape_html(current)
                if decodes and "&" in current and self.entity.search(current)
                else current
            )
            if self.fixed_chars.search(result) or self.is_bad(result):
                return None
            if self.quotes.search(result):
                result = ftfy.fixes.uncurl_quotes(result)
            if not unicodedata.is_normalized("NFC", result):
                return None
            if result == current:
                return result
            current = result
        return None


def _char_class(chars: set[str]) -> re.Pattern[str]:
    """A pattern matching any one of ``chars``."""
    return re.compile("[" + "".join(re.escape(c) for c in sorted(chars)) + "]")


_FTFY = _FtfyShortcut.of_ftfy()


def _fix_text(text: str) -> str:
    """``ftfy.fix_text(text)``, computed without ftfy where the module's reasoning shows the result."""
    return _FTFY.fix_text(text) if _FTFY is not None else ftfy.fix_text(text)


def _prepare(text: str) -> str:
    """The text as open_clip's cleaning leaves it, except that whitespace runs may not be folded yet.

    Folding is left to ``str.split``, which the chunking does anyway: lower-casing neither makes nor removes
    whitespace, nor does its final-sigma rule look across whitespace, so it commutes with folding.
    """
    text = _fix_text(text)
    if "&" in text:
        text = html.unescape(html.unescape(text))
    return text.lower()


# --- Vocabulary and Rust pipelines ------------------------------------------------------------------------------


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


_TEXT_END = " "  # closes each text's chunks in a batch's chunk list (no chunk holds whitespace)
_SEPARATOR = " "  # closes each chunk's words in a group sent to Rust (no word holds whitespace either)
_SEPARATOR_ID = VOCAB_SIZE  # an id of Rust's only, never in the output
_GROUP = 256  # chunks per Rust sequence


class _ChunkTable:
    """Ids of the chunks seen so far: ``slots[chunk]`` is a slot; a slot's ids are ``store[start : start + length]``.

    Slot 0 is ``_TEXT_END``, with no ids. Writers add slots under the engine's lock: new arrays first, then the
    dictionary entries, so a reader that looks its slots up first and reads ``arrays`` afterwards finds them.
    """

    def __init__(self) -> None:
        self.slots: dict[str, int] = {_TEXT_END: 0}
        empty = np.zeros(1, np.int64)
        self.arrays: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]] = (
            empty,
            empty,
            np.zeros(0, np.int64),
        )

    def add(self, chunks: list[str], ids: npt.NDArray[np.int64], counts: npt.NDArray[np.int64]) -> None:
        """Adds chunks whose ids are ``ids``, concatenated, ``counts[k]`` for chunk k (caller holds the lock)."""
        starts, lengths, store = self.arrays
        self.arrays = (
            np.concatenate([starts, len(store) + np.cumsum(counts) - counts]),
            np.concatenate([lengths, counts]),
            np.concatenate([store, ids]),
        )
        self.slots.update(zip(chunks, range(len(starts), len(starts) + len(chunks)), strict=True))


class _Engine:
    """The Rust pipelines, the id -> bytes table for decoding, and the chunk table; one per process."""

    def __init__(self) -> None:
        merges = _read_merges()
        tokens = _vocabulary(merges)
        vocab = {token: i for i, token in enumerate(tokens)}
        if len(vocab) != VOCAB_SIZE:  # pragma: no cover - guards the file and the layout above
            raise RuntimeError(f"the vocabulary has {len(vocab)} distinct tokens, not {VOCAB_SIZE}")

        self.ascii = Tokenizer(models.BPE(vocab=vocab, merges=merges, end_of_word_suffix=END_OF_WORD))
        self.ascii.pre_tokenizer = pre_tokenizers.Split(Regex(_ASCII_WORDS), behavior="removed", invert=True)

        self.words = Tokenizer(models.BPE(vocab=vocab, merges=merges, end_of_word_suffix=END_OF_WORD))
        self.words.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        self.words.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (START_TOKEN, END_TOKEN)])
        for pipeline in (self.ascii, self.words):
            pipeline.add_special_tokens([AddedToken(_SEPARATOR, special=True, normalized=False)])
            if pipeline.token_to_id(_SEPARATOR) != _SEPARATOR_ID:  # pragma: no cover - guards the layout
                raise RuntimeError("the chunk separator did not get the first id after the vocabulary")

        byte_of = {symbol: b for b, symbol in _byte_symbols()}
        self.token_bytes = tuple(bytes(byte_of[c] for c in token) for token in tokens)
        self.table = _ChunkTable()
        self._lock = threading.Lock()

    def ids(self, chunks: list[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """``(ids, slots, ends)``: the chunks' ids concatenated; each chunk's slot; the ids up to each chunk's end."""
        table = self.table
        try:
            slots = np.fromiter(map(table.slots.__getitem__, chunks), np.int64, len(chunks))
        except KeyError:
            table = self._learn(chunks)
            slots = np.fromiter(map(table.slots.__getitem__, chunks), np.int64, len(chunks))
        starts, lengths, store = table.arrays  # read after the look-ups (see _ChunkTable)
        counts = lengths[slots]
        ends = np.cumsum(counts)
        # ids of chunk k: store[starts[slots[k]] + j] for j < counts[k]; they land at ends[k] - counts[k] + j
        sources = np.repeat(starts[slots] - (ends - counts), counts) + np.arange(int(ends[-1]) if len(ends) else 0)
        return store[sources], slots, ends

    def _learn(self, chunks: list[str]) -> _ChunkTable:
        """The table, after adding the chunks it lacks (a fresh table if they would overflow it)."""
        with self._lock:
            table = self.table
            missing = set(chunks).difference(table.slots)
            if len(table.slots) + len(missing) > CHUNK_TABLE_SIZE:
                table = self.table = _ChunkTable()  # readers holding the old table keep using it undisturbed
                missing = set(chunks).difference(table.slots)
            plain: list[str] = []
            other: list[str] = []
            for chunk in missing:
                if chunk.isascii() and chunk.isprintable() and ("<" not in chunk or not _names_special(chunk)):
                    plain.append(chunk)
                else:
                    other.append(chunk)
            if plain:
                table.add(plain, *self._encode(self.ascii, [[chunk] for chunk in plain]))
            if other:
                table.add(other, *self._encode(self.words, [_WORDS.findall(chunk) for chunk in other]))
            return table

    @staticmethod
    def _encode(pipeline: Tokenizer, words: list[list[str]]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """``(ids, counts)``: the ids of each chunk's words, concatenated, and how many each chunk has.

        Chunks go to Rust in groups, one pre-tokenized sequence per group with a separator token after each chunk
        (a space, which no word holds), so that Rust makes one encoding per group rather than per chunk.
        """
        sequences = [
            [word for chunk in words[i : i + _GROUP] for word in (*chunk, _SEPARATOR)]
            for i in range(0, len(words), _GROUP)
        ]
        encodings = pipeline.encode_batch_fast(sequences, is_pretokenized=True, add_special_tokens=False)
        ids = np.fromiter(chain.from_iterable(e.ids for e in encodings), np.int64)
        ends = np.flatnonzero(ids == _SEPARATOR_ID)  # one per chunk, in order
        counts = np.diff(ends, prepend=-1) - 1
        return ids[ids != _SEPARATOR_ID], counts


def _names_special(chunk: str) -> bool:
    return START_TOKEN in chunk or END_TOKEN in chunk


@functools.cache
def _engine() -> _Engine:
    return _Engine()


# --- Batches --------------------------------------------------------------------------------------------------------


class _Ids:
    """The ids of a batch of texts, flat: text ``i`` holds ``flat[starts[i] : starts[i] + counts[i]]``."""

    def __init__(self, texts: Sequence[str]) -> None:
        chunks: list[str] = []  # each text's chunks, then _TEXT_END
        extend, append = chunks.extend, chunks.append
        for text in texts:
            if text.isascii() and text.isprintable() and "&" not in text:  # ftfy and unescaping change nothing
                extend(text.lower().split())
            else:
                extend(_prepare(text).split())
            append(_TEXT_END)
        self.flat, slots, ends = _engine().ids(chunks)
        closing = ends[slots == 0]  # ids up to each text's _TEXT_END, which has none of its own
        self.starts: npt.NDArray[np.int64] = np.zeros_like(closing)
        self.starts[1:] = closing[:-1]
        self.counts: npt.NDArray[np.int64] = closing - self.starts

    def rows(self, length: int) -> npt.NDArray[np.int64]:
        """``[start, ids[:length - 2], end, 0...]`` per text; ``[end]`` when ``length == 1`` (as open_clip)."""
        out = np.zeros((len(self.counts), length), np.int64)
        if length == 1:
            out[:, 0] = END_ID
            return out
        room = length - 2
        kept = np.minimum(self.counts, room)
        offsets = np.arange(room)
        inside = offsets < kept[:, None]
        out[:, 1 : room + 1][inside] = self.flat[(self.starts[:, None] + offsets)[inside]]
        out[:, 0] = START_ID
        out[np.arange(len(kept)), kept + 1] = END_ID
        return out


def _as_texts(texts: object) -> list[str]:
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
    """CLIP's tokenizer: open_clip's cleaning and lower-case byte-level BPE, with the same ids, run in Rust.

    ``tok(texts)`` returns ``LongTensor[B, context_length]``: 49406 (start), the text's ids, 49407 (end), zeros. A
    text too long for the context keeps its first ``context_length - 2`` ids and still ends with 49407.
    """

    vocab_size: int = VOCAB_SIZE
    start_id: int = START_ID
    end_id: int = END_ID
    pad_id: int = PAD_ID

    def __init__(self, config: TokenizerConfig) -> None:
        self.context_length: int = config.context_length
        _engine()  # read the merges now: a damaged install fails here, and the first batch is not slowed

    def encode(self, text: str) -> list[int]:
        """The ids of one text, cleaned as open_clip cleans it, without start or end token."""
        if not isinstance(text, str):
            raise InputError(f"text must be a str, got {type(text).__name__}: {text!r:.60}")
        ids: list[int] = _Ids([text]).flat.tolist()
        return ids

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The text the ids spell, as open_clip decodes it.

        Each ``</w>`` becomes a space (so a decoded word ends with one), special tokens appear by name, and byte
        sequences that are not UTF-8 become U+FFFD. Padding is not skipped: 0 is the id of ``!``.
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
        return torch.from_numpy(_Ids(_as_texts(texts)).rows(length))
