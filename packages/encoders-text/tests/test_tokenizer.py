"""The `clip-bpe` tokenizer: output layout, encode/decode, the chunk table, the card route, input checks, and the
cleaning shortcuts."""

# ruff: noqa: RUF001 - look-alike characters are test data here

from __future__ import annotations

import string
import threading
from typing import Any

import ftfy
import ftfy.badness
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clip_core
from clip_core import InputError
from clip_encoders_text import chunks, cleaning, hashtable
from clip_encoders_text.cleaning import clean_text, clean_texts, clean_unfolded
from clip_encoders_text.tokenizer import ClipBpeTokenizer

START, END = 49406, 49407


@pytest.fixture(scope="module")
def tok() -> ClipBpeTokenizer:
    return ClipBpeTokenizer(clip_core.TokenizerConfig(kind="clip-bpe", context_length=77))


def card(context_length: int = 77) -> dict[str, Any]:
    """A card with the test plugin's towers and the `clip-bpe` tokenizer."""
    return {
        "name": "tiny-bpe",
        "embed_dim": 8,
        "image": {"kind": "patch-mean", "image_size": 16, "patch_size": 4, "width": 8},
        "text": {"kind": "bag-of-words", "vocab_size": 49408, "context_length": context_length, "width": 8},
        "tokenizer": {"kind": "clip-bpe"},
    }


# texts without a special token's name; letters, digits, punctuation, some Unicode
plain_texts = st.text(
    alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyz ABC 0123456789 .,!?'-&;é日🙂\t")), max_size=120
)
words = st.from_regex(r"[a-z]{1,12}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(batch=st.lists(plain_texts, max_size=10), context_length=st.integers(2, 100))
def test_each_row_is_start_ids_end_then_zero_padding(
    tok: ClipBpeTokenizer, batch: list[str], context_length: int
) -> None:
    """Row i is [start, encode(text_i)[:L-2], end, 0, ...]: LongTensor [B, L], start first, the end token right
    after the (truncated) ids, zeros after it."""
    ids = tok(batch, context_length=context_length)
    assert ids.dtype == torch.long and ids.shape == (len(batch), context_length)
    for row, text in zip(ids.tolist(), batch, strict=True):
        body = tok.encode(text)[: context_length - 2]
        assert START not in body and END not in body and all(0 <= i < 49406 for i in body)
        assert row == [START, *body, END] + [0] * (context_length - 2 - len(body))


@settings(max_examples=40, deadline=None)
@given(text=plain_texts, context_length=st.integers(2, 12))
def test_too_long_texts_keep_their_first_ids_and_end_with_the_end_token(
    tok: ClipBpeTokenizer, text: str, context_length: int
) -> None:
    """A text longer than the context keeps its first L-2 ids; the end token is last and no padding follows."""
    long_text = " ".join([text, "lorem ipsum dolor sit amet"] * 8)
    row = tok(long_text, context_length=context_length)[0].tolist()
    assert row[0] == START and row[-1] == END
    assert row[1:-1] == tok.encode(long_text)[: context_length - 2]


def test_default_context_length_comes_from_the_config() -> None:
    tok16 = ClipBpeTokenizer(clip_core.TokenizerConfig(kind="clip-bpe", context_length=16))
    assert tok16.context_length == 16 and tok16("a photo").shape == (1, 16)
    assert tok16("a photo", context_length=5).shape == (1, 5)


def test_context_length_one_leaves_only_the_end_token(tok: ClipBpeTokenizer) -> None:
    assert tok(["a photo of a cat", ""], context_length=1).tolist() == [[END], [END]]


def test_a_single_string_is_a_batch_of_one_and_an_empty_batch_has_no_rows(tok: ClipBpeTokenizer) -> None:
    assert torch.equal(tok("a photo of a cat"), tok(["a photo of a cat"]))
    assert tok([]).shape == (0, 77)
    assert tok(("a", "b")).shape == (2, 77)


def test_empty_and_blank_texts_are_start_and_end_only(tok: ClipBpeTokenizer) -> None:
    assert tok(["", "   ", "\t\n"], context_length=4).tolist() == [[START, END, 0, 0]] * 3


def test_a_photo_of_a_cat_gets_clips_ids_whatever_its_case_and_spacing(tok: ClipBpeTokenizer) -> None:
    assert tok.encode("a photo of a cat.") == [320, 1125, 539, 320, 2368, 269]
    assert tok.encode("A  PHOTO\tof a CAT.") == [320, 1125, 539, 320, 2368, 269]
    assert tok.encode("<end_of_text>") == [END]


@settings(max_examples=60, deadline=None)
@given(st.lists(words, min_size=1, max_size=20).map(" ".join))
def test_decode_inverts_encode_on_plain_lower_case_words(tok: ClipBpeTokenizer, text: str) -> None:
    """For lower-case words separated by single spaces, decode(encode(text)) is the text, each word followed by
    a space (as open_clip decodes)."""
    assert tok.decode(tok.encode(text)) == text + " "


def test_decode_accepts_tensors_and_names_the_start_and_end_tokens_as_openai_does(tok: ClipBpeTokenizer) -> None:
    assert tok.decode(tok("a cat", context_length=5)[0]) == "<|startoftext|>a cat <|endoftext|>!"
    assert tok.decode([START, END]) == "<|startoftext|><|endoftext|>"


def test_special_names_written_in_a_text_are_read_as_open_clip_3_3_reads_them(tok: ClipBpeTokenizer) -> None:
    """open_clip 3.3 names its specials ``<start_of_text>`` / ``<end_of_text>`` and reads those names in a text as the
    tokens; OpenAI's ``<|startoftext|>`` / ``<|endoftext|>`` are plain text to it, and so to us."""
    assert tok.encode("<start_of_text> <END_OF_TEXT>") == [START, END]
    for name in ("<|startoftext|>", "<|endoftext|>"):
        ids = tok.encode(name)
        assert len(ids) > 1 and START not in ids and END not in ids


@settings(max_examples=30, deadline=None)
@given(batch=st.lists(plain_texts, min_size=1, max_size=8))
def test_a_texts_row_does_not_depend_on_the_rest_of_the_batch(tok: ClipBpeTokenizer, batch: list[str]) -> None:
    """tok(batch)[i] == tok(batch[i]) for every i."""
    together = tok(batch)
    for i, text in enumerate(batch):
        assert torch.equal(together[i], tok(text)[0])


def test_results_do_not_depend_on_the_chunk_table(tok: ClipBpeTokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [f"photo number {i} of a cat, dog & bird — café" for i in range(50)]
    expected = tok(texts)
    monkeypatch.setattr(chunks, "CHUNK_TABLE_SIZE", 16)  # every batch overflows: the table starts afresh
    assert torch.equal(tok(texts), expected)
    assert torch.equal(tok(texts[:3]), expected[:3])


def test_threads_sharing_the_tokenizer_get_the_same_ids(tok: ClipBpeTokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    batches = [[f"thread {t} text {i} word{i * t} é{i}" for i in range(200)] for t in range(4)]
    expected = [tok(batch) for batch in batches]
    monkeypatch.setattr(chunks, "CHUNK_TABLE_SIZE", 300)  # tables are replaced while other threads read
    results: dict[int, list[torch.Tensor]] = {}

    def work(t: int) -> None:
        results[t] = [tok(batches[t]) for _ in range(5)]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(torch.equal(ids, expected[t]) for t in range(4) for ids in results[t])


def test_the_chunk_table_stays_within_its_bounds(tok: ClipBpeTokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever is tokenized, the table holds its seed (the whole-word tokens' words) and at most CHUNK_TABLE_SIZE
    chunks learnt, of CHUNK_TABLE_CHARS characters, or else only the chunks of the one batch that overflowed it (a
    batch's own chunks are held while it is tokenized)."""
    monkeypatch.setattr(chunks, "CHUNK_TABLE_SIZE", 100)
    monkeypatch.setattr(chunks, "CHUNK_TABLE_CHARS", 2_000)
    engine = chunks.engine()
    seed = set(engine.whole_words)
    for i in range(30):
        batch = [f"caption {i} word{i}x{j} café{j} {'z' * (j % 40)}" for j in range(20)]
        expected = tok(batch)
        table = engine.table
        learnt = set(table.slots) - seed
        assert len(learnt) == len(table.slots) - len(seed)
        within = len(learnt) <= 100 and table.chars <= 2_000
        assert within or learnt == {chunk for text in batch for chunk in clean_text(text).split()} - seed
        assert torch.equal(tok(batch), expected)


def test_chunks_of_whole_word_tokens_are_learnt_without_bpe(
    tok: ClipBpeTokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk whose words are all whole-word tokens (``photo</w>``, ``,</w>``...) never reaches Rust's BPE."""
    engine = chunks.engine()
    monkeypatch.setattr(engine, "table", chunks.ChunkTable.seed({}))

    def no_bpe(*args: object) -> None:
        raise AssertionError("BPE was run")

    monkeypatch.setattr(engine, "_encode_plain", no_bpe)
    monkeypatch.setattr(engine, "_encode_words", no_bpe)
    open_clip_ids = [320, 1125, 539, 518, 1929, 267, 2807, 530, 273, 271, 272, 280, 263, 2782, 7805]
    assert tok.encode("A photo of the dog, taken in 2019 (outside)!") == open_clip_ids


short_chunks = st.text(alphabet=st.characters(codec="utf-8", exclude_characters=" "), min_size=1, max_size=15).filter(
    lambda chunk: len(chunk.encode()) <= 15
)


@settings(max_examples=200, deadline=None)
@given(st.lists(short_chunks, min_size=1, max_size=30))
def test_packed_keys_are_exact_and_the_same_from_a_buffer_or_from_strs(chunks: list[str]) -> None:
    """For any chunks of at most 15 UTF-8 bytes: equal chunks have equal keys and distinct chunks distinct keys,
    whether packed from a space-separated buffer (as a batch is) or from the strs (as the table learns them)."""
    data = b" " + b" ".join(chunk.encode() for chunk in chunks) + b" "
    buffer = np.frombuffer(data + hashtable.PADDING, np.uint8)
    lengths = np.array([len(chunk.encode()) for chunk in chunks])
    starts = np.cumsum(lengths + 1) - lengths
    first, second = hashtable.packed(buffer, starts, lengths)
    first_strs, second_strs, short = hashtable.packed_strs(chunks)
    assert short.all() and (first == first_strs).all() and (second == second_strs).all()
    keys = list(zip(first.tolist(), second.tolist(), strict=True))
    assert len(set(keys)) == len(set(chunks))
    assert all((keys[i] == keys[j]) == (chunks[i] == chunks[j]) for i in range(len(chunks)) for j in range(i))


@settings(max_examples=50, deadline=None)
@given(st.lists(short_chunks, min_size=1, max_size=300, unique=True), st.integers(1, 299))
def test_the_packed_index_finds_the_slots_of_the_keys_it_holds_and_no_others(chunks: list[str], cut: int) -> None:
    """For any distinct chunks, the first ones added to a small index (so that keys collide): each held key's slot,
    and -1 for keys never added or that found no free entry; never another key's slot."""
    held = chunks[:cut]
    first, second, _ = hashtable.packed_strs(chunks)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hashtable, "_HASH_BITS", 6)  # 64 entries for up to 300 keys: collisions and full probes
        index = hashtable.PackedIndex()
        index.add(first[: len(held)], second[: len(held)], np.arange(len(held), dtype=np.int64) + 100)
        found = index.find(first, second)
    assert (found[len(held) :] == -1).all()
    indexed = found[: len(held)]
    assert ((indexed == np.arange(len(held)) + 100) | (indexed == -1)).all()
    assert (indexed != -1).sum() >= min(len(held), 8)  # the first keys always find a free entry


def test_texts_end_with_a_byte_no_chunk_holds_and_chunks_split_at_spaces_only(tok: ClipBpeTokenizer) -> None:
    """Each text's chunks are followed by byte 0xFF, which UTF-8 never holds; a chunk ends only at a space, so
    control characters that open_clip keeps (none, after ftfy) or Unicode spaces (folded) cannot cut a chunk."""
    assert hashtable.TEXT_END == b"\xff"
    assert tok.encode("a\u3000b\xa0c\u2028d") == tok.encode("a b c d")
    assert tok.encode("ÿ") == [127, 379]  # open_clip's ids: the bytes C3 BF (UTF-8 never holds FF)


# --- The card route and the protocol ---------------------------------------------------------------------------------


def test_get_tokenizer_builds_it_from_a_card_and_it_satisfies_the_protocol() -> None:
    tok = clip_core.get_tokenizer(card())
    assert isinstance(tok, ClipBpeTokenizer)
    assert isinstance(tok, clip_core.Tokenizer)
    assert tok.context_length == 77 and tok.vocab_size == 49408
    assert tok(["a photo of a cat"]).shape == (1, 77)


def test_card_context_length_sets_the_row_length() -> None:
    assert clip_core.get_tokenizer(card(context_length=24))("a photo").shape == (1, 24)


# --- Bad inputs ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["a", 3], r"texts\[1\] must be a str, got int"),
        ([None], r"texts\[0\] must be a str, got NoneType"),
        ([b"bytes"], r"texts\[0\] must be a str, got bytes"),
        (b"bytes", "texts must be a str or a sequence of str, got bytes"),
        (None, "texts must be a str or a sequence of str, got NoneType"),
        (42, "texts must be a str or a sequence of str, got int"),
    ],
)
def test_non_str_texts_raise_input_error(tok: ClipBpeTokenizer, texts: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        tok(texts)


@pytest.mark.parametrize("context_length", [0, -3, 2.5, True, "77"])
def test_bad_context_lengths_raise_input_error(tok: ClipBpeTokenizer, context_length: Any) -> None:
    with pytest.raises(InputError, match="context_length must be a positive int"):
        tok("a photo", context_length=context_length)


def test_encode_of_a_non_str_raises_input_error(tok: ClipBpeTokenizer) -> None:
    with pytest.raises(InputError, match="text must be a str, got list"):
        tok.encode(["a photo"])  # type: ignore[arg-type]


@pytest.mark.parametrize("ids", [[-1], [49408], [1.5], ["a"], [True], torch.zeros(2, 3, dtype=torch.long)])
def test_decode_of_bad_ids_raises_input_error(tok: ClipBpeTokenizer, ids: Any) -> None:
    with pytest.raises(InputError, match="ids must be"):
        tok.decode(ids)


def test_input_errors_are_clip_errors() -> None:
    assert issubclass(InputError, clip_core.ClipError)


# --- Cleaning: the ftfy shortcut gives ftfy's result -----------------------------------------------------------------


def _mojibake(text: str) -> list[str]:
    return [text.encode("utf-8").decode(codec, errors="replace") for codec in ("latin-1", "cp1252", "cp1251", "cp437")]


MOJIBAKE = sorted(
    {
        bad
        for good in ["café", "it’s", "“quoted”", "—", "…", "€", "Москва", "à la", "\xa0", "©"]
        for bad in _mojibake(good)
    }
)
BADNESS_CHARS = sorted({c for c in ftfy.badness.BADNESS_RE.pattern if ord(c) > 127})
cleaning_texts = st.lists(
    st.one_of(
        st.sampled_from(MOJIBAKE),
        st.text(alphabet=st.sampled_from([*BADNESS_CHARS, *" \tab.,!?-'\"Aa&;<#1"]), max_size=8),
        st.sampled_from(["&amp;", "&lt;", "&#39;", "&#8217;", "&eacute;", "&amp;amp;", "&nbsp;", "&NTILDE;", "&"]),
        st.sampled_from(["’", "‘", "“", "”", "ʼ", "\n", "\r", "<", " ", "e\u0301", "\u0301", "ﬁ", "Ｗ", "\x1b[1m"]),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=5),
    ),
    max_size=16,
).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cleaning_texts)
def test_cleaning_without_running_ftfy_gives_ftfys_result(text: str) -> None:
    """For any text, mojibake and HTML entities included: the tokenizer's cleaning, which runs ftfy only where its
    result is not certain, equals open_clip's (ftfy, html.unescape twice, whitespace folded, lower case)."""
    assert " ".join(clean_unfolded(text).split()) == clean_text(text)


@settings(max_examples=300, deadline=None)
@given(cleaning_texts)
def test_windowed_mojibake_search_agrees_with_ftfy(text: str) -> None:
    """For any text, searching for mojibake only around the characters every pattern needs finds what ftfy finds."""
    badness = cleaning._FTFY.badness if cleaning._FTFY is not None else None
    assert badness is not None, f"ftfy {ftfy.__version__} is not understood: every non-ASCII text would run ftfy"
    assert badness.is_bad(text) == ftfy.badness.is_bad(text)


ascii_texts = st.text(alphabet=st.characters(codec="ascii"), max_size=40) | st.text(
    alphabet=st.sampled_from([*"aB1 .,'&;#<>", "\t", "\n", "\r", "\x0b", "\x0c", "\x1b", "\x1c", "\x00", "\x7f"]),
    max_size=40,
)


@settings(max_examples=400, deadline=None)
@given(ascii_texts)
def test_ascii_cleaning_gives_open_clips_cleaning(text: str) -> None:
    """For any ASCII text, controls and entities included: the tokenizer's cleaning equals open_clip's."""
    assert " ".join(clean_unfolded(text).split()) == clean_text(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from([*string.printable.replace("&", "")]), max_size=60))
def test_ascii_without_ampersand_or_removed_controls_never_runs_ftfy(text: str) -> None:
    """For any ASCII text without ``&`` whose only non-printable characters are ``\\t \\n \\r \\f``
    (``string.printable`` also holds ``\\x0b``, which ftfy removes): cleaning is lower-casing, ftfy is not run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ftfy, "fix_text", None)
        patch.setattr(cleaning, "_FTFY", None)
        if "\x0b" in text:
            with pytest.raises(TypeError):
                clean_unfolded(text)
        else:
            assert clean_unfolded(text) == text.lower()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(cleaning_texts | ascii_texts, max_size=8))
def test_clean_texts_are_open_clips_cleanings_up_to_runs_of_spaces(texts: list[str]) -> None:
    """For any texts: each cleaned text's only whitespace is the space, and its space-separated chunks are those of
    open_clip's cleaning."""
    cleaned = clean_texts(texts)
    assert [[c for c in text.split(" ") if c] for text in cleaned] == [clean_text(text).split() for text in texts]
    assert all(text.split() == [c for c in text.split(" ") if c] for text in cleaned)


def test_clean_text_is_open_clips_cleaning() -> None:
    assert clean_text("  The Mona Lisa doesnÃƒÂ¢Ã¢â€šÂ¬Ã¢â€žÂ¢t\n\nhave &amp;amp; EYEBROWS  ") == (
        "the mona lisa doesn't have & eyebrows"
    )
