"""``ClipModel``: an image tower, a text tower and a learnable temperature."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from clip_core.cards import ModelCard
from clip_core.errors import InputError
from clip_core.towers import build_tower

__all__ = ["ClipModel", "ClipOutput"]


@dataclass
class ClipOutput:
    """What ``ClipModel(pixels, ids)`` returns."""

    #: L2-normalised image embeddings ``[B_image, embed_dim]``.
    image_embeds: torch.Tensor
    #: L2-normalised text embeddings ``[B_text, embed_dim]``.
    text_embeds: torch.Tensor
    #: The multiplier applied to cosine similarities: ``exp`` of the learnable log-scale (a scalar).
    logit_scale: torch.Tensor
    #: ``logit_scale * image_embeds @ text_embeds.T (+ logit_bias)``: ``[B_image, B_text]``.
    logits_per_image: torch.Tensor
    #: The transpose of ``logits_per_image``: ``[B_text, B_image]``.
    logits_per_text: torch.Tensor
    #: The learnable logit bias (SigLIP-style cards), else None.
    logit_bias: torch.Tensor | None = None


class ClipModel(nn.Module):
    """A CLIP model composed from a card: ``visual`` (image tower), ``text`` (text tower), ``logit_scale``.

    The logit scale is stored in log space and initialised from the card (ln(1/0.07) by default, as OpenAI).
    """

    logit_bias: nn.Parameter | None

    def __init__(self, card: ModelCard) -> None:
        super().__init__()
        self.card = card
        self.visual = build_tower(card.image, card.embed_dim)
        self.text = build_tower(card.text, card.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(card.init_logit_scale)))
        if card.init_logit_bias is None:
            self.register_parameter("logit_bias", None)
        else:
            self.logit_bias = nn.Parameter(torch.tensor(float(card.init_logit_bias)))

    @property
    def embed_dim(self) -> int:
        """Width of the shared embedding space."""
        return self.card.embed_dim

    def encode_image(self, pixels: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Embed preprocessed pixels ``[B, 3, H, W]`` as ``[B, embed_dim]`` (unit length if ``normalize``).

        Float pixels are cast to the image tower's dtype, so a bf16 model accepts float32 pixels.
        """
        if not isinstance(pixels, torch.Tensor) or pixels.ndim != 4 or pixels.shape[1] != 3:
            raise InputError(f"pixels must be a tensor [batch, 3, height, width], got {_describe(pixels)}")
        if not pixels.is_floating_point():
            raise InputError(f"pixels must be floating point (preprocessed), got {pixels.dtype}")
        dtype = _parameter_dtype(self.visual)
        features = self.visual(pixels.to(dtype) if dtype is not None else pixels)
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text(self, ids: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Embed token ids ``[B, L]`` (from the card's tokenizer) as ``[B, embed_dim]``."""
        if not isinstance(ids, torch.Tensor) or ids.ndim != 2:
            raise InputError(f"token ids must be a tensor [batch, length], got {_describe(ids)}")
        if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
            raise InputError(f"token ids must be integers, got {ids.dtype}")
        context = self.card.tokenizer.context_length
        if ids.shape[1] > context:
            raise InputError(f"token ids are {ids.shape[1]} long; card {self.card.name!r} reads at most {context}")
        features = self.text(ids)
        return F.normalize(features, dim=-1) if normalize else features

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor) -> ClipOutput:
        """Embed both modalities and score every image against every text."""
        image_embeds = self.encode_image(pixels, normalize=True)
        text_embeds = self.encode_text(ids, normalize=True)
        scale = self.logit_scale.exp()
        logits = scale * image_embeds @ text_embeds.to(image_embeds.dtype).T
        if self.logit_bias is not None:
            logits = logits + self.logit_bias
        return ClipOutput(image_embeds, text_embeds, scale, logits, logits.T, self.logit_bias)

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``card.json`` and ``model.safetensors`` to ``directory``, atomically; returns the path."""
        from clip_core.checkpoints.native import save_pretrained

        return save_pretrained(self, directory)

    def push_to_hub(
        self,
        repo_id: str,
        revision: str | None = None,
        private: bool | None = None,
        format: Literal["clip-sdk", "transformers", "open_clip", "onnx"] = "clip-sdk",
    ) -> str:
        """Upload this model to the Hugging Face hub repository ``repo_id`` (``ORG/NAME``, created if new) on branch
        ``revision`` (default ``main``), in ``format``'s layout, with a model card ``README.md``; returns the commit's
        URL. Loads back with ``clip_core.create_model("hf-hub:ORG/NAME")``. See :func:`clip_core.hub.push.push_to_hub`
        (a :class:`~clip_core.PretrainedError` when the hub cannot be reached or refuses)."""
        from clip_core.hub.push import push_to_hub

        return push_to_hub(self, repo_id, revision=revision, private=private, format=format)


def _parameter_dtype(module: nn.Module) -> torch.dtype | None:
    for parameter in module.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return None


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"
