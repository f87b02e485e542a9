"""clip-losses gives open_clip's loss values and gradients, and takes `ClipModel`'s output as it is."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

import clip_core
from clip_losses import ClipLoss, SigLipLoss

open_clip_loss = pytest.importorskip("open_clip.loss")

# (batch, width, log of the logit scale, logit bias, dtype)
SHAPES = [
    (1, 8, 2.6592, -10.0, torch.float32),
    (2, 4, 0.0, 0.0, torch.float64),
    (7, 16, 2.6592, -10.0, torch.float32),
    (16, 32, 4.6052, -3.0, torch.float64),
    (33, 12, 1.0, 2.5, torch.float32),
]
IDS = [f"b{b}-d{d}-{str(dtype).removeprefix('torch.')}" for b, d, _, _, dtype in SHAPES]


def leaves(batch: int, width: int, log_scale: float, bias: float, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Unnormalised features and the log-parameter and bias, as a model holds them, all requiring gradients."""
    generator = torch.Generator().manual_seed(batch * 100 + width)
    return {
        "images": torch.randn(batch, width, generator=generator, dtype=dtype).requires_grad_(),
        "texts": torch.randn(batch, width, generator=generator, dtype=dtype).requires_grad_(),
        "log_scale": torch.tensor(log_scale, dtype=dtype, requires_grad=True),
        "bias": torch.tensor(bias, dtype=dtype, requires_grad=True),
    }


def run(loss: Any, inputs: dict[str, torch.Tensor], with_bias: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss as a training step computes it (normalised features, exp'd scale) and the gradients of the leaves."""
    images, texts = F.normalize(inputs["images"], dim=-1), F.normalize(inputs["texts"], dim=-1)
    scale = inputs["log_scale"].exp()  # open_clip's training loop passes model.logit_scale.exp()
    value = loss(images, texts, scale, inputs["bias"]) if with_bias else loss(images, texts, scale)
    value.backward()
    grads = {name: leaf.grad for name, leaf in inputs.items() if leaf.grad is not None}
    return value.detach(), grads


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    return {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}


@pytest.mark.parametrize(("batch", "width", "log_scale", "bias", "dtype"), SHAPES, ids=IDS)
def test_clip_loss_value_and_gradients_match_open_clip_clip_loss(
    batch: int, width: int, log_scale: float, bias: float, dtype: torch.dtype
) -> None:
    ours, our_grads = run(ClipLoss(), leaves(batch, width, log_scale, bias, dtype), with_bias=False)
    theirs, their_grads = run(open_clip_loss.ClipLoss(), leaves(batch, width, log_scale, bias, dtype), with_bias=False)
    torch.testing.assert_close(ours, theirs, **tolerance(dtype))
    assert sorted(our_grads) == sorted(their_grads) == ["images", "log_scale", "texts"]
    for name, grad in our_grads.items():
        torch.testing.assert_close(grad, their_grads[name], **tolerance(dtype))


@pytest.mark.parametrize(("batch", "width", "log_scale", "bias", "dtype"), SHAPES, ids=IDS)
def test_siglip_loss_value_and_gradients_match_open_clip_siglip_loss(
    batch: int, width: int, log_scale: float, bias: float, dtype: torch.dtype
) -> None:
    ours, our_grads = run(SigLipLoss(), leaves(batch, width, log_scale, bias, dtype), with_bias=True)
    theirs, their_grads = run(open_clip_loss.SigLipLoss(), leaves(batch, width, log_scale, bias, dtype), with_bias=True)
    torch.testing.assert_close(ours, theirs, **tolerance(dtype))
    assert sorted(our_grads) == sorted(their_grads) == ["bias", "images", "log_scale", "texts"]
    for name, grad in our_grads.items():
        torch.testing.assert_close(grad, their_grads[name], **tolerance(dtype))


def test_losses_take_clip_model_output_as_it_is(tiny_dict: dict[str, Any]) -> None:
    """``ClipOutput.logit_scale`` is already exponentiated and the embeddings unit length, so the losses take them
    directly: they equal the cross-entropy / sigmoid losses of the model's own ``logits_per_image``, and train
    the model's log-space ``logit_scale`` and its ``logit_bias``."""
    card = clip_core.get_card(tiny_dict | {"init_logit_bias": -10.0})
    model = clip_core.create_model(card)
    ids = clip_core.get_tokenizer(card)(["a cat", "a dog", "a diagram"])
    out = model(torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)), ids)
    assert out.logit_bias is not None
    targets = torch.arange(3)
    logits = out.logits_per_image

    clip_value = ClipLoss()(out.image_embeds, out.text_embeds, out.logit_scale)
    expected = (F.cross_entropy(logits, targets) + F.cross_entropy(out.logits_per_text, targets)) / 2
    torch.testing.assert_close(clip_value, expected)

    siglip_value = SigLipLoss()(out.image_embeds, out.text_embeds, out.logit_scale, out.logit_bias)
    torch.testing.assert_close(siglip_value, -F.logsigmoid((2 * torch.eye(3) - 1) * logits).sum() / 3)

    (clip_value + siglip_value).backward()
    assert model.logit_scale.grad is not None and model.logit_scale.grad != 0
    assert model.logit_bias is not None and model.logit_bias.grad is not None and model.logit_bias.grad != 0
