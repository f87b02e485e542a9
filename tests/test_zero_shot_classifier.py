"""`clip_core.zero_shot_classifier`: OpenAI's prompt ensemble as a classifier weight matrix."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import clip_core


def test_each_class_row_is_the_renormalised_mean_of_its_normalised_prompt_embeddings() -> None:
    torch.manual_seed(0)
    model = clip_core.create_model("tiny").eval()
    tokenizer = clip_core.get_tokenizer("tiny")
    templates = ["a photo of a {}.", lambda name: f"a drawing of a {name}"]
    weights = clip_core.zero_shot_classifier(model, tokenizer, ["cat", "dog", "bird"], templates, batch_size=2)
    assert weights.shape == (3, model.embed_dim) and weights.dtype == torch.float32
    torch.testing.assert_close(weights.norm(dim=-1), torch.ones(3))
    with torch.no_grad():
        for row, name in enumerate(["cat", "dog", "bird"]):
            prompts = tokenizer([f"a photo of a {name}.", f"a drawing of a {name}"])
            expected = F.normalize(model.encode_text(prompts, normalize=True).mean(dim=0), dim=-1)
            torch.testing.assert_close(weights[row], expected)
    assert not weights.requires_grad


@pytest.mark.parametrize(
    ("classnames", "templates", "message"),
    [
        ([], ["a {}"], "at least one class name"),
        (["cat"], [], "at least one template"),
        (["cat"], ["a photo"], "template 'a photo' has no '{}' for the class name"),
    ],
)
def test_bad_arguments_are_refused(classnames: list[str], templates: list[str], message: str) -> None:
    model = clip_core.create_model("tiny")
    with pytest.raises(clip_core.InputError) as error:
        clip_core.zero_shot_classifier(model, clip_core.get_tokenizer("tiny"), classnames, templates)
    assert message in str(error.value)
