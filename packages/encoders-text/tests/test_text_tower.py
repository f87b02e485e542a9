"""The `text-transformer` tower: conformance, exact cutting to the longest text, configuration checks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import clip_core
from clip_core.testing import TowerConformanceTests
from clip_encoders_text.model import TextTransformer, TextTransformerConfig

SOT, EOT = 49406, 49407


class TestTextTransformerConformance(TowerConformanceTests):
    config = TextTransformerConfig(width=32, layers=2, heads=4, context_length=16)


class TestQuickGeluTextTransformerConformance(TowerConformanceTests):
    config = TextTransformerConfig(width=24, layers=1, heads=2, context_length=12, activation="quick_gelu")
    embed_dim = 8


def uncut_forward(tower: TextTransformer, ids: torch.Tensor) -> torch.Tensor:
    """The tower's computation over every position, as OpenAI's implementation runs it."""
    x = tower.token_embedding(ids) + tower.positional_embedding[: ids.shape[1]]
    for block in tower.blocks:
        x = block(x)
    x = tower.ln_final(x)
    return tower.text_projection(x[torch.arange(ids.shape[0]), ids.argmax(dim=-1)])  # type: ignore[no-any-return]


@st.composite
def id_batches(draw: st.DrawFn, context: int = 20) -> torch.Tensor:
    lengths = draw(st.lists(st.integers(0, context - 2), min_size=1, max_size=5))
    ids = torch.zeros(len(lengths), context, dtype=torch.long)
    for row, n in enumerate(lengths):
        tokens = draw(st.lists(st.integers(1, SOT - 1), min_size=n, max_size=n))
        ids[row, : n + 2] = torch.tensor([SOT, *tokens, EOT])
    return ids


@pytest.fixture(scope="module")
def tower() -> TextTransformer:
    torch.manual_seed(0)
    module = clip_core.build_tower(TextTransformerConfig(width=32, layers=2, heads=4, context_length=20), 16)
    assert isinstance(module, TextTransformer)
    return module.eval()


@settings(max_examples=30, deadline=None)
@given(ids=id_batches())
def test_cut_to_longest_changes_no_output(tower: TextTransformer, ids: torch.Tensor) -> None:
    """For any batch, cutting to the longest text gives the features of the full-length computation, and each
    text's features are the same alone (cut to its own length) as inside the batch."""
    with torch.no_grad():
        cut, full = tower(ids), uncut_forward(tower, ids)
        alone = torch.cat([tower(row[None]) for row in ids])
    tolerance = 1e-5 * float(full.abs().max())  # float rounding of differently shaped kernels, nothing more
    torch.testing.assert_close(cut, full, rtol=0, atol=tolerance)
    torch.testing.assert_close(alone, cut, rtol=0, atol=tolerance)


@settings(max_examples=20, deadline=None)
@given(ids=id_batches(), junk=st.integers(1, SOT - 1))
def test_tokens_after_the_end_token_do_not_matter(tower: TextTransformer, ids: torch.Tensor, junk: int) -> None:
    """Replacing the padding after every end token with any other (lower) id leaves every feature unchanged."""
    after_end = torch.arange(ids.shape[1]) > ids.argmax(dim=-1, keepdim=True)
    with torch.no_grad():
        reference = tower(ids)
        changed = tower(ids.masked_fill(after_end, junk))
    torch.testing.assert_close(changed, reference, rtol=0, atol=1e-5 * float(reference.abs().max()))


@pytest.mark.parametrize("activation", ["gelu", "quick_gelu"])
def test_in_place_inference_equals_the_autograd_forward(activation: str) -> None:
    """Without an autograd graph the blocks run in place; the features equal the graph-recording forward's, a
    frozen tower takes the in-place path too, and the weights do not change."""
    torch.manual_seed(0)
    config = TextTransformerConfig(width=32, layers=3, heads=4, context_length=12, activation=activation)
    tower = TextTransformer(config, 16).eval()
    ids = torch.tensor([[SOT, 5, 9, EOT, 0, 0], [SOT, 7, 3, 8, 2, EOT]])
    before = {k: v.clone() for k, v in tower.state_dict().items()}
    recorded = tower(ids)
    assert recorded.requires_grad
    with torch.inference_mode():
        in_place = tower(ids)
    tower.requires_grad_(False)
    frozen = tower(ids)
    torch.testing.assert_close(in_place, recorded.detach(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(frozen, in_place, atol=0, rtol=0)
    assert all(torch.equal(v, tower.state_dict()[k]) for k, v in before.items())


def test_empty_batch_gives_empty_features(tower: TextTransformer) -> None:
    assert tower(torch.zeros(0, 20, dtype=torch.long)).shape == (0, 16)


def test_too_long_ids_are_refused(tower: TextTransformer) -> None:
    with pytest.raises(ValueError, match="reads at most 20"):
        tower(torch.zeros(1, 21, dtype=torch.long))


def test_defaults_are_openais() -> None:
    config = TextTransformerConfig(width=512, layers=12, heads=8)
    assert (config.context_length, config.vocab_size, config.mlp_ratio, config.activation) == (77, 49408, 4.0, "gelu")


def test_heads_must_divide_width_and_the_card_names_the_field() -> None:
    card = {
        "name": "bad-heads",
        "embed_dim": 8,
        "image": {"kind": "patch-mean", "image_size": 8, "patch_size": 4, "width": 4},
        "text": {"kind": "text-transformer", "width": 30, "layers": 1, "heads": 4},
    }
    with pytest.raises(clip_core.CardError, match=r"text: heads \(4\) must divide width \(30\)"):
        clip_core.get_card(card)


def test_a_card_composes_the_text_tower_with_a_third_party_image_tower() -> None:
    """The acceptance case of the core issue: a plugin's image tower next to the SDK's text tower."""
    card = clip_core.get_card(
        {
            "name": "patch-and-text",
            "embed_dim": 16,
            "image": {"kind": "patch-mean", "image_size": 16, "patch_size": 4, "width": 8},
            "text": {"kind": "text-transformer", "width": 32, "layers": 1, "heads": 4},
            "tokenizer": {"kind": "bytes"},
        }
    )
    assert card.tokenizer.context_length == 77
    model = clip_core.create_model(card).eval()
    ids = torch.zeros(2, 77, dtype=torch.long)
    ids[:, :3] = torch.tensor([SOT, 320, EOT])
    with torch.no_grad():
        out = model(torch.randn(3, 3, 16, 16), ids)
    assert out.logits_per_image.shape == (3, 2)
