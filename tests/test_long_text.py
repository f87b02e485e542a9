"""Long texts: tokenizers truncate (keeping the end token last) or refuse them; ``embed_texts`` and ``clip embed
--texts`` take ``long_text`` / ``--long-text`` truncate | error | chunk, chunk being the normalised mean of the
embeddings of the text's context-sized pieces."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import clip_core
from clip_core.cli import main
from clip_core.embedding.longtext import encode_texts, text_pieces

LONG = "a photograph of a very small cat sitting on a rather large red chair in the garden " * 8


@pytest.fixture(scope="module")
def bpe_model() -> clip_core.ClipModel:
    """A small model reading CLIP's BPE ids in a context of 16."""
    torch.manual_seed(0)
    card = {
        "name": "small-bpe",
        "embed_dim": 8,
        "image": {"kind": "patch-mean", "image_size": 8, "patch_size": 4, "width": 4},
        "text": {
            "kind": "text-transformer",
            "context_length": 16,
            "vocab_size": 49408,
            "width": 16,
            "layers": 1,
            "heads": 2,
        },
    }
    return clip_core.create_model(card).eval()


def test_the_tokenizer_truncates_keeping_the_end_token_by_default(bpe_model: clip_core.ClipModel) -> None:
    tok = clip_core.get_tokenizer(bpe_model.card)
    ids = tok([LONG])
    assert ids.shape == (1, 16) and int(ids[0, 0]) == 49406 and int(ids[0, -1]) == 49407
    assert torch.equal(tok([LONG], truncate="end"), ids)
    assert ids[0, 1:-1].tolist() == tok.encode(LONG)[:14]


def test_the_tokenizer_refuses_a_text_too_long_naming_it_and_its_length(bpe_model: clip_core.ClipModel) -> None:
    tok = clip_core.get_tokenizer(bpe_model.card)
    length = len(tok.encode(LONG)) + 2
    with pytest.raises(clip_core.InputError, match=rf"text 1 is {length} tokens long .* reads 16: 'a photograph of a"):
        tok(["a cat", LONG], truncate="error")
    assert torch.equal(tok(["a cat"], truncate="error"), tok(["a cat"]))
    with pytest.raises(clip_core.InputError, match="truncate must be 'end' or 'error'"):
        tok(["a cat"], truncate="start")


def test_long_texts_are_refused_by_the_error_policy(bpe_model: clip_core.ClipModel) -> None:
    with pytest.raises(clip_core.InputError, match="tokens long"):
        encode_texts(bpe_model, ["a cat", LONG], clip_core.get_tokenizer(bpe_model.card), "error")


def test_chunking_embeds_the_normalised_mean_of_the_pieces(bpe_model: clip_core.ClipModel) -> None:
    tok = clip_core.get_tokenizer(bpe_model.card)
    ids = tok.encode(LONG)
    rows, owners = text_pieces(["a cat", LONG], tok)
    pieces = [ids[i : i + 14] for i in range(0, len(ids), 14)]
    assert owners == [0] + [1] * len(pieces)
    for row, piece in zip(rows[1:], pieces, strict=True):
        assert row[: len(piece) + 2].tolist() == [49406, *piece, 49407] and not row[len(piece) + 2 :].any()
    with torch.no_grad():
        chunked = encode_texts(bpe_model, ["a cat", LONG], tok, "chunk")
        each = F.normalize(bpe_model.encode_text(rows[1:]), dim=-1)
        truncated = encode_texts(bpe_model, ["a cat", LONG], tok, "truncate")
    torch.testing.assert_close(chunked[1], F.normalize(each.mean(0), dim=0))
    torch.testing.assert_close(chunked[0], truncated[0])
    assert not torch.allclose(chunked[1], truncated[1])


@settings(max_examples=20, deadline=None)
@given(texts=st.lists(st.text(max_size=40), min_size=1, max_size=4), normalize=st.booleans())
def test_chunk_pooling_of_a_short_text_equals_its_plain_embedding(
    bpe_model: clip_core.ClipModel, texts: list[str], normalize: bool
) -> None:
    """For any texts that fit the context (12 ids at most here), chunking embeds each exactly as truncating does."""
    tok = clip_core.get_tokenizer(bpe_model.card)
    fitting = [text for text in texts if len(tok.encode(text)) <= 14] or ["a"]
    with torch.no_grad():
        chunked = encode_texts(bpe_model, fitting, tok, "chunk", normalize)
        plain = encode_texts(bpe_model, fitting, tok, "truncate", normalize)
    torch.testing.assert_close(chunked, plain, rtol=1e-5, atol=1e-6)


def test_embed_command_takes_a_long_text_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("a cat\n" + "x" * 40 + "\n")  # tiny reads 24 bytes: the second text is too long
    base = ["embed", "--model", "tiny", "--texts", str(texts)]
    assert main([*base, "--out", str(tmp_path / "e.npy"), "--long-text", "error"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("clip: warning:")]
    assert len(errors) == 1 and "text 1 is 42 tokens long" in errors[0]
    assert main([*base, "--out", str(tmp_path / "t.npy")]) == 0
    assert main([*base, "--out", str(tmp_path / "c.npy"), "--long-text", "chunk"]) == 0
    truncated = clip_core.read_embeddings(tmp_path / "t.npy")
    chunked = clip_core.read_embeddings(tmp_path / "c.npy")
    assert torch.allclose(torch.as_tensor(truncated.vectors[0]), torch.as_tensor(chunked.vectors[0]))
    assert not torch.allclose(torch.as_tensor(truncated.vectors[1]), torch.as_tensor(chunked.vectors[1]))
