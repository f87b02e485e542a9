"""Zero-shot classification: class names and prompt templates in, a classifier's weight matrix out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from clip_core.errors import InputError
from clip_core.model import ClipModel
from clip_core.protocols import Tokenizer

__all__ = ["Template", "zero_shot_classifier", "zero_shot_predict", "zero_shot_probabilities"]

#: A prompt template: a format string with one ``{}`` for the class name, or a function of the class name.
Template = str | Callable[[str], str]


def zero_shot_classifier(
    model: ClipModel,
    tokenizer: Tokenizer,
    classnames: Sequence[str],
    templates: Sequence[Template],
    batch_size: int = 256,
) -> torch.Tensor:
    """The zero-shot classifier of ``classnames``: a unit-length weight row per class, ``[num_classes, embed_dim]``.

    Each class's row is OpenAI's prompt ensemble: the class name is put into every template (``"a photo of a {}."``
    or a callable), each prompt is embedded by the text tower and normalised, the embeddings are averaged and the
    mean is normalised again. Logits of images are then ``image_embeds @ weights.T`` (times the logit scale if
    wanted). Runs without gradients, in the model's current mode (call ``model.eval()`` first for a model with
    dropout), on its device, in float32, encoding at most ``batch_size`` prompts at a time.
    """
    if not classnames:
        raise InputError("zero_shot_classifier needs at least one class name")
    if not templates:
        raise InputError("zero_shot_classifier needs at least one template")
    for template in templates:
        if isinstance(template, str) and "{}" not in template:
            raise InputError(f"template {template!r} has no '{{}}' for the class name")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    prompts = [_fill(template, name) for name in classnames for template in templates]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with torch.no_grad():
        embeddings = torch.cat(
            [
                model.encode_text(tokenizer(prompts[start : start + batch_size]).to(device), normalize=True).float()
                for start in range(0, len(prompts), batch_size)
            ]
        )
    per_class = embeddings.view(len(classnames), len(templates), -1)
    return F.normalize(per_class.mean(dim=1), dim=-1)


def zero_shot_predict(
    model: ClipModel,
    pixels: torch.Tensor,
    classifier: torch.Tensor,
    activation: Literal["auto", "softmax", "sigmoid"] = "auto",
) -> torch.Tensor:
    """Class probabilities of preprocessed images ``[B, 3, H, W]``: ``[B, num_classes]`` in float32.

    The logits are ``logit_scale * image_embeds @ classifier.T (+ logit_bias)``, with the image embeddings normalised
    in float32 and ``classifier`` from :func:`zero_shot_classifier`. ``activation`` turns them into probabilities:
    ``"softmax"`` over the classes (each row sums to 1; CLIP's training objective), ``"sigmoid"`` per class (each
    label judged on its own; SigLIP's objective, whose learnt bias places the threshold), or ``"auto"``: sigmoid for
    models with a logit bias (SigLIP-style cards), softmax otherwise. Rankings are the same either way. Runs without
    gradients, in the model's current mode, on its device; returns a tensor on that device.
    """
    if activation not in ("auto", "softmax", "sigmoid"):
        raise InputError(f"activation must be 'auto', 'softmax' or 'sigmoid', got {activation!r}")
    if classifier.ndim != 2 or classifier.shape[1] != model.embed_dim:
        raise InputError(
            f"classifier must be [num_classes, {model.embed_dim}] for card {model.card.name!r}, "
            f"got shape {tuple(classifier.shape)}"
        )
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with torch.no_grad():
        image_embeds = model.encode_image(pixels.to(device))
    return zero_shot_probabilities(model, image_embeds, classifier, activation)


def zero_shot_probabilities(
    model: ClipModel,
    image_embeds: torch.Tensor,
    classifier: torch.Tensor,
    activation: Literal["auto", "softmax", "sigmoid"] = "auto",
) -> torch.Tensor:
    """Class probabilities ``[B, num_classes]`` of image embeddings ``[B, embed_dim]`` (normalised here in float32),
    as :func:`zero_shot_predict` computes them from pixels; on ``image_embeds``' device."""
    if activation not in ("auto", "softmax", "sigmoid"):
        raise InputError(f"activation must be 'auto', 'softmax' or 'sigmoid', got {activation!r}")
    device = image_embeds.device
    with torch.no_grad():
        image_embeds = F.normalize(image_embeds.float(), dim=-1)
        logits = model.logit_scale.exp().float().to(device) * image_embeds @ classifier.to(device, torch.float32).T
        if model.logit_bias is not None:
            logits = logits + model.logit_bias.float().to(device)
    if activation == "sigmoid" or (activation == "auto" and model.logit_bias is not None):
        return logits.sigmoid()
    return logits.softmax(dim=-1)


def _fill(template: Template, name: str) -> str:
    return template.format(name) if isinstance(template, str) else template(name)
