"""The `clip-bpe` tokenizer gives open_clip's ids (`open_clip.tokenize`) for every text and context length."""

# ruff: noqa: RUF001 - look-alike characters are test data here

from __future__ import annotations

import string

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clip_core
from clip_encoders_text.chunks import _WORDS, _split_ascii, engine
from clip_encoders_text.tokenizer import ClipBpeTokenizer
from clip_encoders_text.vocab import read_merges, vocabulary

open_clip = pytest.importorskip("open_clip")

CONTEXT_LENGTHS = (77, 1, 2, 3, 8, 33, 200)


@pytest.fixture(scope="module")
def tok() -> ClipBpeTokenizer:
    return ClipBpeTokenizer(clip_core.TokenizerConfig(kind="clip-bpe", context_length=77))


def assert_same_ids(tok: ClipBpeTokenizer, texts: list[str], context_length: int = 77) -> None:
    ours = tok(texts, context_length=context_length)
    reference = open_clip.tokenize(texts, context_length=context_length)
    assert ours.dtype == reference.dtype == torch.long
    differ = [texts[i] for i in range(len(texts)) if not torch.equal(ours[i], reference[i])]
    assert not differ, f"{len(differ)} texts differ from open_clip at context {context_length}, e.g. {differ[:3]!r}"


# --- Hand-picked texts -----------------------------------------------------------------------------------------------

SPECIALS = [
    "<start_of_text>", "<end_of_text>", "<START_OF_TEXT>", "<End_Of_Text>", "<<end_of_text>", "<end_of_text>>",
    "a<end_of_text>b", "!<end_of_text>", "x <start_of_text> y", "<start_of_text><end_of_text>", "<ſtart_of_text>",
    "<end_of_text", "end_of_text>", "&lt;end_of_text&gt;", "&amp;lt;start_of_text&amp;gt;", "<|startoftext|>",
    "<|endoftext|>", "'s<end_of_text>", "1<end_of_text>2", "é<end_of_text>", "<end_of_text>é", "<\u0000end_of_text>",
    "<end_\u00adof_text>", "ＥＮＤ<end_of_text>", "<ｅnd_of_text>",
]  # fmt: skip
CLEANING = [
    "", " ", "\t\n\r\x0b\x0c", "   a   b   ", "\u00a0\u2000\u3000x\u2028y\u2029z\x85w",
    "\x00\x01\x1b[31mred\x1b[0m\x7f", "&amp;", "&amp;amp;", "&amp;amp;amp;", "&lt;b&gt;", "<b>&amp;</b>", "AT&T",
    "AT&T;", "&copy 2019", "&#39;", "&#x27;", "x < y\n&amp;amp; z", "&amp;\n<b>", "&lt;\n&amp;lt;",
    "&#0;", "&#128;", "&#x110000;", "&nbsp;&nbsp;", "&NTILDE;", "&ntilde; &Ntilde; &nTILDE;", "salt & pepper",
    "â€™", "Ã©tÃ©", "cafÃ©", "Ã\xa0 la", "âœ” No problems", "ÃºnicoÂ", "Â£10", "ГўВЂВ™s", "×²",
    "The Mona Lisa doesnÃƒÂ¢Ã¢â€šÂ¬Ã¢â€žÂ¢t have eyebrows.",
    "it’s “quoted” ‘single’ „low“", "ﬁne ﬂour ﬀ", "ＬＯＵＤ　ＮＯＩＳＥＳ", "ｶﾀｶﾅ", "e\u0301", "\u212b", "Å",
    "\ufeffbom", "zero\u200bwidth", "rtl\u200f\u202emark", "\ufffc", "\ud7ff", "\U0010ffff", "\ue000private",
    "\ud800 lone", "a\udcffb", "\ud83d\ude00 pair", "x \udfff", "\xff", "ÿ\xa0ÿ", "\x7f", "a\x7fb",
]  # fmt: skip
UNICODE = [
    "ΣΑΣ ΟΔΟΣ. Σ", "ὈΔΥΣΣΕΎΣ", "İstanbul", "ǅ ǈ ǋ", "ß ẞ", "ſ 'ſ 'S 'D 'LL 'Ve", "K Å", "\u0345", "a\u0345b",
    "\u0558", "\u058b", "\u088f", "\u0c5c", "\u209d", "\ua7ce", "\uab6c", "\U000107bb", "\U00010940", "\U00010ec5",
    "東京タワー 寿司", "김치 한국어", "Москва", "αλεπού", "עברית", "العربية", "हिन्दी", "ไทย", "🐶🍕👍",
    "👨\u200d👩\u200d👧", "🇯🇵🇫🇷", "❤️", "👍🏽", "1️⃣", "½ ² ³ ① Ⅻ ٣ ᠑", "١٢٣", "x²", "₂", "🙂" * 40,
]  # fmt: skip
ASCII = [
    "a photo of a cat.", "A PHOTO OF A CAT.", "don't stop believin'", "I'm we're they've she'll he'd it's",
    "'s 't 're 've 'm 'll 'd", "''s", "'", "''", "123456", "3.14159", "$19.99", "1080p 4k", "hello...world!!!",
    "(2019) [x] {y} <z>", "e-mail@example.com http://x.y/z?a=1&b=2", "#hashtag @user",
    "~`!@#$%^*()_+-={}|[]\\:\";'<>?,./",
    "a" * 300, "ab " * 400, " ".join(string.ascii_letters), "x" * 5000,
]  # fmt: skip


@pytest.mark.parametrize("context_length", CONTEXT_LENGTHS)
def test_hand_picked_texts_get_open_clip_ids(tok: ClipBpeTokenizer, context_length: int) -> None:
    assert_same_ids(tok, SPECIALS + CLEANING + UNICODE + ASCII, context_length)


def test_every_printable_ascii_pair_gets_open_clip_ids(tok: ClipBpeTokenizer) -> None:
    """Exhaustive over printable ASCII: the ASCII pipeline's regex splits as open_clip's does."""
    chars = [chr(c) for c in range(0x20, 0x7F)]
    texts = [a + b for a in chars for b in chars] + [f"{a}'{b}" for a in "a1!' " for b in "stremldvx"]
    assert_same_ids(tok, texts)
    chunks = [text.lower() for text in texts if " " not in text and text != "<"]
    ids, counts = engine()._encode_plain(chunks)  # the Rust pipeline, whole-word tokens or not
    assert counts.tolist() == [len(tok.encode(chunk)) for chunk in chunks]
    assert ids.tolist() == [i for chunk in chunks for i in tok.encode(chunk)]


def test_whole_word_tokens_are_their_own_words_ids(tok: ClipBpeTokenizer) -> None:
    """Exhaustive over the 33,275 whole-word tokens whose text is lower-case printable ASCII (``photo</w>``,
    ``,</w>``...): the word alone is that one token for open_clip, which lets the tokenizer learn them without BPE."""
    words = engine().whole_words
    assert len(words) == 33_275
    texts = list(words)
    reference = open_clip.tokenize(texts, context_length=3)
    assert reference[:, 1].tolist() == list(words.values()) and (reference[:, 2] == 49407).all()
    assert_same_ids(tok, texts, context_length=3)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1), max_size=20))
def test_rust_ascii_pipeline_gives_open_clip_ids(chunks: list[str]) -> None:
    """For any printable ASCII chunks (taken lower-case, without a special token's name): the Rust pipeline that
    learns them when not made of whole-word tokens gives open_clip's ids, chunk by chunk."""
    chunks = [chunk.lower() for chunk in chunks if "<" not in chunk]
    ids, counts = engine()._encode_plain(chunks) if chunks else (np.zeros(0), np.zeros(0))
    rows = [open_clip.tokenize(chunk, context_length=200)[0].tolist() for chunk in chunks]
    expected = [row[1 : row.index(49407)] for row in rows]  # between the start and the end token
    assert ids.tolist() == [i for row in expected for i in row]
    assert counts.tolist() == [len(row) for row in expected]


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30))
def test_python_ascii_split_is_open_clips_regex_on_printable_ascii(chunk: str) -> None:
    """For any lower-case printable ASCII chunk without a special token's name: Python's ``re`` running the ASCII
    pattern splits it into open_clip's words."""
    chunk = chunk.lower()
    if "<start_of_text>" not in chunk and "<end_of_text>" not in chunk:
        assert _split_ascii(chunk) == _WORDS.findall(chunk)


def test_single_texts_and_empty_batches_match(tok: ClipBpeTokenizer) -> None:
    for text in ["a photo of a dog", "", "<end_of_text>"]:
        assert torch.equal(tok(text), open_clip.tokenize(text))
    assert tok([]).shape == open_clip.tokenize([]).shape == (0, 77)


def test_vocabulary_is_open_clips_in_its_order() -> None:
    reference = open_clip.get_tokenizer("ViT-B-32")
    assert vocabulary(read_merges()) == list(reference.encoder)


def test_decode_matches_open_clip_but_names_start_and_end_as_openai_does(tok: ClipBpeTokenizer) -> None:
    """open_clip 3.3 decodes the start and end tokens as ``<start_of_text>`` and ``<end_of_text>``; ours renders
    OpenAI's ``<|startoftext|>`` and ``<|endoftext|>``; everything else is open_clip's text."""
    reference = open_clip.get_tokenizer("ViT-B-32")

    def openai_names(text: str) -> str:
        return text.replace("<start_of_text>", "<|startoftext|>").replace("<end_of_text>", "<|endoftext|>")

    ids = tok(["a photo of a café 🐶", "<end_of_text> ÃƒÂ©", "<|endoftext|>"]).tolist()
    broken = [188, 49406, 5, 300, 49407, 0]  # a lone continuation byte among others
    for row in [*ids, broken]:
        assert tok.decode(row) == openai_names(reference.decode(row))
    assert tok.decode([49406, 49407]) == "<|startoftext|><|endoftext|>"


# --- Generated texts -------------------------------------------------------------------------------------------------

fragments = st.one_of(
    st.sampled_from(SPECIALS + CLEANING + UNICODE + ASCII[:-3]),
    st.text(alphabet=st.characters(codec="ascii"), max_size=12),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
    st.text(alphabet=st.characters(categories=("Mn", "Me", "Lm", "Sk", "Cf", "Zs", "Cc", "Co", "Cn")), max_size=4),
    st.sampled_from(
        ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&#8217;", "&hellip;", "&eacute;", "&", ";", "&#", "#"]
    ),
    st.sampled_from(["Ã", "Â", "â€", "œ", "™", "©", "€", "°", "Ð", "Ø", "\xa0", "\x80", "\x9d", "’", "“", "ﬁ", "Ｗ"]),
    st.sampled_from(
        ["'s", "'T", "'re", "'VE", "'m", "'Ll", "'d", "ſ", "K", "Σ", "\u0345", "\u0301", "\u200d", "\ufe0f"]
    ),
    st.sampled_from([" ", "  ", "\t", "\n", "\r\n", "\u3000", "\u2028", "\x1c", "\x85", "<", ">", "_", "/"]),
)
texts = st.lists(fragments, max_size=24).map("".join)
long_texts = st.lists(
    st.sampled_from(ASCII[:-3] + UNICODE[:30] + CLEANING[:20] + SPECIALS[:8]), min_size=30, max_size=400
).map(" ".join)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(texts, min_size=1, max_size=16), context_length=st.sampled_from(CONTEXT_LENGTHS))
def test_generated_texts_get_open_clip_ids(tok: ClipBpeTokenizer, batch: list[str], context_length: int) -> None:
    """For any batch of texts mixing arbitrary Unicode, emoji, combining marks, controls, whitespace runs, HTML
    entities, mojibake, contractions and special-token names, and any context length: open_clip's ids."""
    assert_same_ids(tok, batch, context_length)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(long_texts, min_size=1, max_size=4), context_length=st.sampled_from((77, 200, 1000)))
def test_long_texts_get_open_clip_ids(tok: ClipBpeTokenizer, batch: list[str], context_length: int) -> None:
    """For texts of hundreds of words, truncated or not: open_clip's ids."""
    assert_same_ids(tok, batch, context_length)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=200), max_size=8))
def test_arbitrary_unicode_gets_open_clip_ids(tok: ClipBpeTokenizer, batch: list[str]) -> None:
    """For any surrogate-free Unicode text: open_clip's ids."""
    assert_same_ids(tok, batch)
