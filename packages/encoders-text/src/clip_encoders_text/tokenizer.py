"""CLIP's lower-case byte-level BPE tokenizer (kind ``clip-bpe``), giving the same ids as open_clip's for any text.

open_clip tokenizes a text in four steps: clean it (ftfy, ``html.unescape`` twice, whitespace runs folded to one
space, lower case), split it into words with one regex, map each word's UTF-8 bytes to the byte-level alphabet, and
apply BPE to each word. This module gives the same ids, in three stages:

1. **Cleaning only where it can change something** (:mod:`clip_encoders_text.cleaning`): an ASCII text without
   ``&`` or control characters is only lower-cased; other texts get open_clip's cleaning, mostly without ftfy.
2. **Chunks, looked up without a Python object each.** No word holds whitespace, so a cleaned text's words are the
   words of its space-separated chunks, in order, and a text's ids are its chunks' ids concatenated. Chunks repeat a
   lot (``a``, ``photo``, ``of``...), so their ids are kept in a bounded table shared by the process
   (:class:`~clip_encoders_text.chunks.ChunkTable`), seeded with the whole-word tokens (below). A batch's cleaned
   texts become one UTF-8 buffer; numpy finds its chunks, packs each chunk of at most 15 bytes into an exact 128-bit
   key and looks the keys up in a hash table of numpy arrays (:class:`~clip_encoders_text.hashtable.PackedIndex`).
   Only the chunks it lacks (new or long ones) become ``str``: looked up in a dictionary, the new ones learnt in one
   go. numpy then gathers every text's ids. (Rust's pipeline spends about 1 µs per word even on words it has cached:
   whole batches are not sent to it.)
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

The stages live in their own modules: :mod:`~clip_encoders_text.vocab` (the vocabulary),
:mod:`~clip_encoders_text.hashtable` (packed keys and their hash table), :mod:`~clip_encoders_text.chunks` (the
chunk table and the Rust pipelines); this one holds the public tokenizer.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from clip_core import InputError, TokenizerConfig
from clip_encoders_text.chunks import engine
from clip_encoders_text.hashtable import Int32s, Int64s
from clip_encoders_text.vocab import END_ID, END_OF_WORD, PAD_ID, START_ID, VOCAB_SIZE

__all__ = ["ClipBpeTokenizer"]


def _rows(ids: Int32s, counts: Int64s, length: int) -> Int64s:
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
    text too long for the context keeps its first ``context_length - 2`` ids and still ends with 49407
    (``truncate="end"``, the default, as open_clip), or raises :class:`InputError` naming the text and its length
    in tokens (``truncate="error"``, as OpenAI's ``clip.tokenize``). Instances share one process-wide engine and may
    be called from several threads at once.
    """

    vocab_size: int = VOCAB_SIZE
    start_id: int = START_ID
    end_id: int = END_ID
    pad_id: int = PAD_ID

    def __init__(self, config: TokenizerConfig) -> None:
        """A tokenizer whose rows have ``config.context_length`` ids; reads the merges now (not in the first call)."""
        self.context_length: int = config.context_length
        engine()

    def encode(self, text: str) -> list[int]:
        """The ids of one text, cleaned as open_clip cleans it, without start or end token."""
        if not isinstance(text, str):
            raise InputError(f"text must be a str, got {type(text).__name__}: {text!r:.60}")
        ids: list[int] = engine().ids([text])[0].tolist()
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
        table = engine().token_bytes
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

    def __call__(
        self, texts: str | Sequence[str], context_length: int | None = None, truncate: str = "end"
    ) -> torch.Tensor:
        """Ids ``LongTensor[len(texts), context_length]`` (a single str is a batch of one); see the class docstring."""
        length = self.context_length if context_length is None else context_length
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise InputError(f"context_length must be a positive int, got {length!r}")
        if truncate not in ("end", "error"):
            raise InputError(f"truncate must be 'end' or 'error', got {truncate!r}")
        batch = _as_texts(texts)
        ids, counts = engine().ids(batch)
        if truncate == "error":
            _refuse_long(batch, counts, length)
        return torch.from_numpy(_rows(ids, counts, length))


def _refuse_long(texts: list[str], counts: Int64s, length: int) -> None:
    """An :class:`InputError` naming the first text whose ids, with the start and end tokens, exceed ``length``."""
    too_long = np.flatnonzero(counts + 2 > length)
    if len(too_long):
        i = int(too_long[0])
        more = f" (and {len(too_long) - 1} more)" if len(too_long) > 1 else ""
        raise InputError(
            f"text {i} is {int(counts[i]) + 2} tokens long (start and end included); the context reads {length}: "
            f"{texts[i]!r:.80}{more}"
        )
