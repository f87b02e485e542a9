"""ClipModel: composition, the learnable temperature, outputs and input checks."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import clip_core
from clip_core import ClipModel, InputError


@pytest.fixture(scope="module")
def model() -> ClipModel:
    torch.manual_seed(0)
    return clip_core.create_model("tiny").eval()


def pixels(batch: int = 2, size: int = 32) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))


def test_logit_scale_is_learnable_and_starts_at_ln_1_over_0_07(model: ClipModel) -> None:
    assert isinstance(model.logit_scale, torch.nn.Parameter) and model.logit_scale.requires_grad
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert model.logit_bias is None
    assert {name.split(".")[0] for name, _ in model.named_parameters()} == {"visual", "text", "logit_scale"}


def test_forward_scores_every_image_against_every_text(model: ClipModel) -> None:
    ids = clip_core.get_tokenizer("tiny")(["a red square", "a blue circle", "nothing"])
    with torch.no_grad():
        out = model(pixels(2), ids)
        image, text = model.encode_image(pixels(2)), model.encode_text(ids)
    torch.testing.assert_close(out.image_embeds, F.normalize(image, dim=-1))
    torch.testing.assert_close(out.text_embeds, F.normalize(text, dim=-1))
    assert out.logit_scale.item() == pytest.approx(1 / 0.07, rel=1e-6)
    expected = F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T / 0.07
    torch.testing.assert_close(out.logits_per_image, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(out.logits_per_text, out.logits_per_image.T)
    assert out.logit_bias is None


def test_card_with_logit_bias_adds_it_to_the_logits() -> None:
    model = clip_core.create_model("tiny-long").eval()
    assert model.logit_bias is not None and model.logit_bias.item() == -10.0
    ids = clip_core.get_tokenizer("tiny-long")(["x", "y"])
    with torch.no_grad():
        out = model(torch.randn(3, 3, 24, 24), ids)
    torch.testing.assert_close(out.logits_per_image, out.logit_scale * out.image_embeds @ out.text_embeds.T - 10.0)


def test_bf16_model_accepts_float32_pixels(model: ClipModel) -> None:
    bf16 = clip_core.create_model("tiny").eval()
    bf16.load_state_dict(model.state_dict())
    bf16 = bf16.to(torch.bfloat16)
    with torch.no_grad():
        low = bf16.encode_image(pixels(4), normalize=True).float()
        full = model.encode_image(pixels(4), normalize=True)
    assert low.dtype == torch.float32
    assert F.cosine_similarity(low, full).min() > 0.99


@settings(max_examples=20, deadline=None)
@given(batch=st.integers(1, 5), scale=st.floats(-5, 5))
def test_normalised_embeddings_have_unit_length(model: ClipModel, batch: int, scale: float) -> None:
    """For any batch and input magnitude, normalised image embeddings have unit L2 norm."""
    with torch.no_grad():
        embeds = model.encode_image(pixels(batch) * 10**scale, normalize=True)
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(batch))


@pytest.mark.parametrize(
    ("call", "value", "message"),
    [
        (
            "image",
            torch.zeros(3, 32, 32),
            r"pixels must be a tensor \[batch, 3, height, width\], got a tensor of shape",
        ),
        ("image", torch.zeros(1, 1, 32, 32), "pixels must be a tensor"),
        ("image", [[0.0]], "got a list"),
        ("image", torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "floating point"),
        ("text", torch.zeros(5, dtype=torch.long), r"token ids must be a tensor \[batch, length\]"),
        ("text", torch.zeros(1, 5), "must be integers"),
        ("text", torch.zeros(1, 25, dtype=torch.long), "are 25 long; card 'tiny' reads at most 24"),
    ],
)
def test_bad_inputs_raise_input_errors(model: ClipModel, call: str, value: Any, message: str) -> None:
    encode = model.encode_image if call == "image" else model.encode_text
    with pytest.raises(InputError, match=message):
        encode(value)


def test_create_model_with_unknown_pretrained_tag_lists_none_registered() -> None:
    with pytest.raises(clip_core.PretrainedError, match="no pretrained weights 'openai' for card 'tiny'"):
        clip_core.create_model("tiny", pretrained="openai")


def test_tower_builder_contract_is_checked() -> None:
    card = clip_core.get_card("tiny")
    tower = clip_core.build_tower(card.image, 7)
    assert tower.embed_dim == 7


def test_to_bf16_keeps_zero_shot_probabilities_within_0_01_of_float32() -> None:
    """`to_bf16` keeps the logit scale and LayerNorm in float32 (and `forward`'s logits): zero-shot probabilities of
    the same weights stay within 0.01 of float32's, while `model.to(torch.bfloat16)` rounds the scale (ln 100 ->
    4.59375)."""
    from clip_core.zeroshot import zero_shot_classifier, zero_shot_predict

    card = {
        "name": "small-vit",
        "embed_dim": 64,
        "init_logit_scale": math.log(100),
        "image": {"kind": "vit", "image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "heads": 2},
        "text": {"kind": "text-transformer", "width": 64, "layers": 2, "heads": 2, "context_length": 16},
        "tokenizer": {"kind": "clip-bpe"},
    }
    torch.manual_seed(0)
    model = clip_core.create_model(card).eval()
    tokenizer = clip_core.get_tokenizer(model.card)
    labels = ["cat", "dog", "car", "tree", "boat", "house", "bird", "chair"]
    pixels = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ids = tokenizer(labels)

    def probabilities(m: clip_core.ClipModel) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            classifier = zero_shot_classifier(m, tokenizer, labels, ["a photo of a {}."])
            return zero_shot_predict(m, pixels, classifier), m(pixels, ids).logits_per_image

    expected, logits = probabilities(model)
    plain = copy.deepcopy(model).to(torch.bfloat16)
    converted = copy.deepcopy(model).to_bf16()
    assert converted.logit_scale.dtype == torch.float32 and torch.equal(converted.logit_scale, model.logit_scale)
    layer_norms = [m for m in converted.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert layer_norms and all(m.weight.dtype == torch.float32 for m in layer_norms)
    assert converted.encode_image(pixels).dtype == torch.bfloat16
    got, got_logits = probabilities(converted)
    assert got_logits.dtype == torch.float32
    assert (got - expected).abs().max() <= 0.01
    torch.testing.assert_close(got_logits, logits, rtol=0, atol=0.5)
    assert plain.logit_scale.item() == 4.59375  # what the plain cast does to ln 100
    norm = layer_norms[0]
    inputs = torch.randn(64, norm.normalized_shape[0], generator=torch.Generator().manual_seed(2)).mul(3).add(20)
    with torch.no_grad():  # a bf16 input is normalised in float32 and rounded once, not normalised in bf16
        ours = norm(inputs.bfloat16())
        in_float32 = F.layer_norm(inputs.bfloat16().float(), norm.normalized_shape, norm.weight, norm.bias, norm.eps)
    assert ours.dtype == torch.bfloat16  # (in bf16 throughout, about a third of the values would differ)
    assert (ours == in_float32.bfloat16()).float().mean() >= 0.99
    assert converted.float().encode_image(pixels).dtype == torch.float32
