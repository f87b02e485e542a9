"""Card to module, and weights from OpenAI / open_clip and Hugging Face transformers layouts to ours and back (the
exporters, each the inverse of its converter)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from clip_core.converters import (
    TIMM_BLOCK,
    TRANSPOSED,
    LayoutKey,
    from_layout,
    hf_encoder_layer,
    key_reader,
    openai_resblock,
    to_hf_encoder_layer,
    to_layout,
    to_openai_resblock,
)
from clip_encoders_text.model import TextTransformer, TextTransformerConfig

__all__ = ["build_text_transformer", "convert_hf", "convert_openai", "export_hf", "export_openai"]

State = Mapping[str, torch.Tensor]

#: This tower's blocks are timm's but for the MLP: ``fc1`` and ``fc2`` sit on the block itself.
_BLOCK = {**TIMM_BLOCK, "fc1": "fc1", "fc2": "fc2"}


def build_text_transformer(config: TextTransformerConfig, embed_dim: int) -> TextTransformer:
    """Build the text tower a `text-transformer` config describes."""
    return TextTransformer(config, embed_dim)


#: The tensors outside the blocks in OpenAI's / open_clip's layout (``text_projection`` stored ``[width, embed_dim]``).
_OPENAI = (
    LayoutKey("token_embedding.weight", "token_embedding.weight"),
    LayoutKey("positional_embedding", "positional_embedding"),
    LayoutKey("ln_final.weight", "ln_final.weight"),
    LayoutKey("ln_final.bias", "ln_final.bias"),
    LayoutKey("text_projection.weight", "text_projection", TRANSPOSED),
)
#: The same in transformers' ``CLIPModel`` (the projection sits beside ``text_model``, hence no prefix).
_HF = (
    LayoutKey("token_embedding.weight", "text_model.embeddings.token_embedding.weight"),
    LayoutKey("positional_embedding", "text_model.embeddings.position_embedding.weight"),
    LayoutKey("ln_final.weight", "text_model.final_layer_norm.weight"),
    LayoutKey("ln_final.bias", "text_model.final_layer_norm.bias"),
    LayoutKey("text_projection.weight", "text_projection.weight"),
)


def convert_openai(state: State, config: TextTransformerConfig) -> dict[str, torch.Tensor]:
    """OpenAI / open_clip layout (``token_embedding.weight``, ``transformer.resblocks.N...``, ``ln_final``,
    ``text_projection`` as ``[width, embed_dim]``; optionally under ``text.``) to this tower's state dict."""
    prefix = "text." if "text.token_embedding.weight" in state else ""
    read = key_reader(state, "OpenAI/open_clip text weights")
    out = from_layout(read, _OPENAI, prefix)
    for i in range(config.layers):
        out |= openai_resblock(read, f"{prefix}transformer.resblocks.{i}.", f"blocks.{i}.", _BLOCK)
    return out


def convert_hf(state: State, config: TextTransformerConfig) -> dict[str, torch.Tensor]:
    """Hugging Face transformers' CLIP layout (``text_model.*``, ``text_projection.weight``) to this tower's."""
    read = key_reader(state, "transformers text weights")
    out = from_layout(read, _HF)
    for i in range(config.layers):
        out |= hf_encoder_layer(read, f"text_model.encoder.layers.{i}.", f"blocks.{i}.", _BLOCK)
    return out


def export_openai(tower: State, config: TextTransformerConfig) -> dict[str, torch.Tensor]:
    """The inverse of :func:`convert_openai`: the tower's state dict in OpenAI's / open_clip's layout (at the top,
    as both write it)."""
    read = key_reader(tower, "text-transformer tower weights")
    out = to_layout(read, _OPENAI)
    for i in range(config.layers):
        out |= to_openai_resblock(read, f"blocks.{i}.", f"transformer.resblocks.{i}.", _BLOCK)
    return out


def export_hf(tower: State, config: TextTransformerConfig) -> dict[str, torch.Tensor]:
    """The inverse of :func:`convert_hf`: the tower's state dict in transformers' CLIP layout."""
    read = key_reader(tower, "text-transformer tower weights")
    out = to_layout(read, _HF)
    for i in range(config.layers):
        out |= to_hf_encoder_layer(read, f"blocks.{i}.", f"text_model.encoder.layers.{i}.", _BLOCK)
    return out
