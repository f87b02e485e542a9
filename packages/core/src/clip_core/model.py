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
from clip_core.intermediates import Indices
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
        features = self.visual(self.image_input(pixels))
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text(self, ids: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Embed token ids ``[B, L]`` (from the card's tokenizer) as ``[B, embed_dim]``."""
        features = self.text(self.text_input(ids))
        return F.normalize(features, dim=-1) if normalize else features

    def image_input(self, pixels: torch.Tensor) -> torch.Tensor:
        """``pixels`` checked (a float tensor ``[B, 3, H, W]``, else :class:`InputError`) and cast to the image
        tower's dtype: what the image tower is given."""
        if not isinstance(pixels, torch.Tensor) or pixels.ndim != 4 or pixels.shape[1] != 3:
            raise InputError(f"pixels must be a tensor [batch, 3, height, width], got {_describe(pixels)}")
        if not pixels.is_floating_point():
            raise InputError(f"pixels must be floating point (preprocessed), got {pixels.dtype}")
        dtype = tower_dtype(self.visual)
        return pixels.to(dtype) if dtype is not None else pixels

    def text_input(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` checked (an integer tensor ``[B, L]`` no longer than the card's context, else
        :class:`InputError`): what the text tower is given."""
        if not isinstance(ids, torch.Tensor) or ids.ndim != 2:
            raise InputError(f"token ids must be a tensor [batch, length], got {_describe(ids)}")
        if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
            raise InputError(f"token ids must be integers, got {ids.dtype}")
        context = self.card.tokenizer.context_length
        if ids.shape[1] > context:
            raise InputError(f"token ids are {ids.shape[1]} long; card {self.card.name!r} reads at most {context}")
        return ids

    def forward_intermediates(
        self,
        image: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        image_indices: Indices = None,
        text_indices: Indices = None,
        stop_early: bool = False,
        normalize: bool = True,
        normalize_intermediates: bool = False,
        intermediates_only: bool = False,
        image_output_fmt: str = "NCHW",
        image_output_extra_tokens: bool = False,
        text_output_fmt: str = "NLC",
        text_output_extra_tokens: bool = False,
        output_logits: bool = False,
        output_logit_scale_bias: bool = False,
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """The outputs of inner blocks (dense features), with open_clip's arguments and keys.

        ``image_indices`` / ``text_indices`` choose the blocks: None for all, an int ``n`` for the last ``n``, or a
        list of block numbers (negative from the end); every tower takes both forms (a ViT's blocks, a ResNet's five
        stages: the stem and four stages, a text transformer's blocks). Returns ``image_intermediates`` (a list of
        ``[B, C, H, W]``, or ``[B, H*W, C]`` with ``image_output_fmt="NLC"``; a ViT's class token left out, returned
        as ``image_intermediates_prefix`` with ``image_output_extra_tokens``), ``text_intermediates`` (a list of
        ``[B, L, C]``, every position), and unless ``intermediates_only``, ``image_features`` / ``text_features``
        (unit length if ``normalize``), with ``image_logits`` / ``text_logits`` if ``output_logits`` and
        ``logit_scale`` (and ``logit_bias``) if ``output_logit_scale_bias``. ``normalize_intermediates`` applies
        the tower's final LayerNorm to each intermediate (transformers; a ResNet has none). ``stop_early`` stops
        after the last requested block when only intermediates are asked for (features need every block).

        A tower whose plugin does not provide ``forward_intermediates`` raises :class:`PluginError` naming it.
        """
        from clip_core.intermediates import forward_intermediates

        return forward_intermediates(
            self,
            image,
            text,
            image_indices,
            text_indices,
            stop_early,
            normalize,
            normalize_intermediates,
            intermediates_only,
            image_output_fmt,
            image_output_extra_tokens,
            text_output_fmt,
            text_output_extra_tokens,
            output_logits,
            output_logit_scale_bias,
        )

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor) -> ClipOutput:
        """Embed both modalities and score every image against every text (the logits in float32 at least)."""
        image_embeds = self.encode_image(pixels, normalize=True)
        text_embeds = self.encode_text(ids, normalize=True)
        scale = self.logit_scale.exp()
        dtype = torch.promote_types(image_embeds.dtype, torch.float32)
        logits = scale.to(dtype) * image_embeds.to(dtype) @ text_embeds.to(dtype).T
        if self.logit_bias is not None:
            logits = logits + self.logit_bias.to(dtype)
        return ClipOutput(image_embeds, text_embeds, scale, logits, logits.T, self.logit_bias)

    def to_bf16(self) -> ClipModel:
        """Convert the towers to bfloat16 for inference, keeping float32 where bf16 would cost accuracy; returns self.

        The towers' weights become bf16 except LayerNorm layers', which stay float32 and normalise in float32, as
        OpenAI's and open_clip's LayerNorm do: torch's layer norm takes a bf16 input with float32 weights, computes
        the statistics and the affine transform in float32 and rounds once to bf16 (what casting the input up and
        the output back gives, without the two copies; `benchmarks/bench_layer_norm.py`). The logit scale and bias
        stay float32 and :meth:`forward` computes the logits in float32; the embeddings come out in bf16. This is
        what ``clip ... --dtype bf16`` does. Plain ``model.to(torch.bfloat16)`` converts every parameter instead: the
        logit scale rounds (ln 100 becomes 4.59375, a scale 1.1% too low) and LayerNorm runs in bf16.
        ``model.float()`` undoes either.
        """
        for tower in (self.visual, self.text):
            tower.to(torch.bfloat16)
            for module in tower.modules():
                if isinstance(module, nn.LayerNorm):
                    module.float()
        return self

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


def tower_dtype(module: nn.Module) -> torch.dtype | None:
    """The dtype ``module`` computes in: its first floating-point parameter's outside LayerNorm layers (which
    :meth:`ClipModel.to_bf16` keeps in float32), else any floating-point parameter's."""
    for part in module.modules():
        if not isinstance(part, nn.LayerNorm):
            for parameter in part.parameters(recurse=False):
                if parameter.is_floating_point():
                    return parameter.dtype
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), None)


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"
