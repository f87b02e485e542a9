"""The `clip-bpe` tokenizer gives open_clip's ids (`open_clip.tokenize`) for every text and context length."""

# ruff: noqa: RUF001 - look-alike characters are test data here

from __future__ import annotations

import string

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clip_core
from clip_encoders_text.tokenizer import ClipBpeTokenizer, _read_merges, _vocabulary

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


def test_single_texts_and_empty_batches_match(tok: ClipBpeTokenizer) -> None:
    for text in ["a photo of a dog", "", "<end_of_text>"]:
        assert torch.equal(tok(text), open_clip.tokenize(text))
    assert tok([]).shape == open_clip.tokenize([]).shape == (0, 77)


def test_vocabulary_is_open_clips_in_its_order() -> None:
    reference = open_clip.get_tokenizer("ViT-B-32")
    assert _vocabulary(_read_merges()) == list(reference.encoder)


def test_decode_matches_open_clip(tok: ClipBpeTokenizer) -> None:
    reference = open_clip.get_tokenizer("ViT-B-32")
    ids = tok(["a photo of a café 🐶", "<end_of_text> ÃƒÂ©"])
    for row in ids:
        assert tok.decode(row.tolist()) == reference.decode(row.tolist())
    broken = [188, 49406, 5, 300, 49407, 0]  # a lone continuation byte among others
    assert tok.decode(broken) == reference.decode(broken)


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
