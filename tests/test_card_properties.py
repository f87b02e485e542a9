"""Properties of whole models built from random small cards of both image families (vit, modified-resnet)."""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clip_core

_SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def small_cards(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        patch = draw(st.sampled_from([8, 16]))
        heads = draw(st.integers(1, 3))
        image = {
            "kind": "vit",
            "image_size": patch * draw(st.integers(1, 3)),
            "patch_size": patch,
            "width": 8 * heads,
            "layers": draw(st.integers(1, 2)),
            "heads": heads,
            "activation": draw(st.sampled_from(["gelu", "quick_gelu"])),
        }
    else:
        image = {
            "kind": "modified-resnet",
            "image_size": 32 * draw(st.integers(1, 2)),
            "layers": draw(st.lists(st.integers(1, 2), min_size=4, max_size=4)),
            "width": draw(st.sampled_from([8, 16])),
        }
    text_heads = draw(st.integers(1, 2))
    return {
        "name": "small",
        "embed_dim": draw(st.integers(1, 32)),
        "image": image,
        "text": {
            "kind": "text-transformer",
            "width": 8 * text_heads,
            "layers": draw(st.integers(1, 2)),
            "heads": text_heads,
            "context_length": draw(st.integers(8, 77)),
        },
        "tokenizer": {"kind": "clip-bpe"},
    }


@_SETTINGS
@given(spec=small_cards(), images=st.integers(1, 3), texts=st.sampled_from([["a cat"], ["", "two red squares"]]))
def test_any_small_card_embeds_to_unit_vectors_of_its_width(
    spec: dict[str, Any], images: int, texts: list[str]
) -> None:
    """For any small card of either family, a model maps ``images`` pictures and the texts to ``[n, embed_dim]``
    embeddings of unit length when normalised, and scores them as ``[images, texts]`` logits."""
    card = clip_core.get_card(spec)
    torch.manual_seed(0)
    model = clip_core.ClipModel(card).eval()
    size = card.preprocess.image_size
    ids = clip_core.get_tokenizer(card)(texts)
    assert ids.shape == (len(texts), card.tokenizer.context_length)
    with torch.no_grad():
        out = model(torch.rand(images, 3, size, size), ids)
    assert out.image_embeds.shape == (images, card.embed_dim)
    assert out.text_embeds.shape == (len(texts), card.embed_dim)
    assert out.logits_per_image.shape == (images, len(texts))
    for embeds in (out.image_embeds, out.text_embeds):
        torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(len(embeds)), atol=1e-5, rtol=0)


@_SETTINGS
@given(spec=small_cards())
def test_any_small_card_round_trips_through_a_checkpoint(spec: dict[str, Any], tmp_path_factory: Any) -> None:
    """For any small card, a saved model loads back (from the card it saved) with bit-identical embeddings."""
    torch.manual_seed(1)
    model = clip_core.create_model(spec).eval()
    path = model.save_pretrained(tmp_path_factory.mktemp("ckpt") / "model")
    loaded = clip_core.load_checkpoint(path)
    size = model.card.preprocess.image_size
    pixels = torch.rand(2, 3, size, size)
    with torch.no_grad():
        assert torch.equal(loaded.encode_image(pixels), model.encode_image(pixels))
