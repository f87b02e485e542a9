"""Cards to modules, and weights from OpenAI / open_clip (``visual.*``) and transformers (``vision_model.*``,
``visual_projection``) layouts to the towers' own and back (the exporters, each the inverse of its converter)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

from clip_core import CheckpointError
from clip_core.converters import (
    TRANSPOSED,
    LayoutKey,
    Reshape,
    from_layout,
    hf_encoder_layer,
    key_reader,
    openai_resblock,
    to_hf_encoder_layer,
    to_layout,
    to_openai_resblock,
)
from clip_encoders_vit.config import TimmTowerConfig, VitConfig

if TYPE_CHECKING:
    from clip_encoders_vit.model import VitTower
    from clip_encoders_vit.timm_model import TimmTower

__all__ = [
    "build_timm",
    "build_vit",
    "convert_timm_openai",
    "convert_vit_hf",
    "convert_vit_openai",
    "export_timm_openai",
    "export_vit_hf",
    "export_vit_openai",
]

State = Mapping[str, torch.Tensor]


def build_vit(config: VitConfig, embed_dim: int) -> VitTower:
    """Build the image tower a `vit` config describes (timm is imported here, not at plugin discovery)."""
    from clip_encoders_vit.model import VitTower

    return VitTower(config, embed_dim)


def build_timm(config: TimmTowerConfig, embed_dim: int) -> TimmTower:
    """Build the image tower a `timm` config describes."""
    from clip_encoders_vit.timm_model import TimmTower

    return TimmTower(config, embed_dim)


#: A class token stored ``[width]`` there and ``[1, 1, width]`` here.
_TOKEN = Reshape(lambda tensor: tensor.reshape(1, 1, -1), lambda tensor: tensor.reshape(-1))
#: A position embedding stored ``[tokens, width]`` there and ``[1, tokens, width]`` here.
_BATCHED = Reshape(lambda tensor: tensor.unsqueeze(0), lambda tensor: tensor.squeeze(0))
#: The tensors outside the blocks in OpenAI's / open_clip's layout (``proj`` stored ``[width, embed_dim]``).
_OPENAI = (
    LayoutKey("trunk.patch_embed.proj.weight", "visual.conv1.weight"),
    LayoutKey("trunk.cls_token", "visual.class_embedding", _TOKEN),
    LayoutKey("trunk.pos_embed", "visual.positional_embedding", _BATCHED),
    LayoutKey("trunk.norm_pre.weight", "visual.ln_pre.weight"),
    LayoutKey("trunk.norm_pre.bias", "visual.ln_pre.bias"),
    LayoutKey("trunk.norm.weight", "visual.ln_post.weight"),
    LayoutKey("trunk.norm.bias", "visual.ln_post.bias"),
    LayoutKey("proj.weight", "visual.proj", TRANSPOSED),
)
#: The same in transformers' ``CLIPModel`` (the projection sits beside ``vision_model``).
_HF = (
    LayoutKey("trunk.patch_embed.proj.weight", "vision_model.embeddings.patch_embedding.weight"),
    LayoutKey("trunk.cls_token", "vision_model.embeddings.class_embedding", _TOKEN),
    LayoutKey("trunk.pos_embed", "vision_model.embeddings.position_embedding.weight", _BATCHED),
    LayoutKey("trunk.norm_pre.weight", "vision_model.pre_layrnorm.weight"),
    LayoutKey("trunk.norm_pre.bias", "vision_model.pre_layrnorm.bias"),
    LayoutKey("trunk.norm.weight", "vision_model.post_layernorm.weight"),
    LayoutKey("trunk.norm.bias", "vision_model.post_layernorm.bias"),
    LayoutKey("proj.weight", "visual_projection.weight"),
)


def convert_vit_openai(state: State, config: VitConfig) -> dict[str, torch.Tensor]:
    """OpenAI / open_clip layout (``visual.conv1``, ``visual.class_embedding``, ``visual.ln_pre``,
    ``visual.transformer.resblocks.N...``, ``visual.ln_post``, ``visual.proj`` as ``[width, embed_dim]``)."""
    read = key_reader(state, "OpenAI/open_clip image weights")
    out = from_layout(read, _OPENAI)
    for i in range(config.layers):
        out |= openai_resblock(read, f"visual.transformer.resblocks.{i}.", f"trunk.blocks.{i}.")
    return out


def convert_vit_hf(state: State, config: VitConfig) -> dict[str, torch.Tensor]:
    """Hugging Face transformers' CLIP layout (``vision_model.*``, ``visual_projection.weight``)."""
    read = key_reader(state, "transformers image weights")
    out = from_layout(read, _HF)
    for i in range(config.layers):
        out |= hf_encoder_layer(read, f"vision_model.encoder.layers.{i}.", f"trunk.blocks.{i}.")
    return out


def convert_timm_openai(state: State, config: TimmTowerConfig) -> dict[str, torch.Tensor]:
    """open_clip's layout for timm-based image towers (``visual.trunk.*``, ``visual.head.*``): a prefix strip."""
    out = {
        key.removeprefix("visual."): state[key] for key in state if key.startswith(("visual.trunk.", "visual.head."))
    }
    if not out:
        raise CheckpointError("open_clip timm image weights: no 'visual.trunk.*' keys")
    return out


def export_vit_openai(tower: State, config: VitConfig) -> dict[str, torch.Tensor]:
    """The inverse of :func:`convert_vit_openai`: the tower's state dict in OpenAI's / open_clip's layout."""
    read = key_reader(tower, "vit tower weights")
    out = to_layout(read, _OPENAI)
    for i in range(config.layers):
        out |= to_openai_resblock(read, f"trunk.blocks.{i}.", f"visual.transformer.resblocks.{i}.")
    return out


def export_vit_hf(tower: State, config: VitConfig) -> dict[str, torch.Tensor]:
    """The inverse of :func:`convert_vit_hf`: the tower's state dict in transformers' CLIP layout."""
    read = key_reader(tower, "vit tower weights")
    out = to_layout(read, _HF)
    for i in range(config.layers):
        out |= to_hf_encoder_layer(read, f"trunk.blocks.{i}.", f"vision_model.encoder.layers.{i}.")
    return out


def export_timm_openai(tower: State, config: TimmTowerConfig) -> dict[str, torch.Tensor]:
    """The inverse of :func:`convert_timm_openai`: open_clip keeps timm towers' own names under ``visual.``."""
    return {f"visual.{key}": value for key, value in tower.items()}
