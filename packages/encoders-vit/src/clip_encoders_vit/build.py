"""Cards to modules, and weights from OpenAI / open_clip (``visual.*``) and transformers (``vision_model.*``,
``visual_projection``) layouts to the towers' own and back (the exporters, each the inverse of its converter)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

from clip_core import CheckpointError
from clip_core.converters import (
    hf_encoder_layer,
    key_reader,
    openai_resblock,
    to_hf_encoder_layer,
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


def convert_vit_openai(state: State, config: VitConfig) -> dict[str, torch.Tensor]:
    """OpenAI / open_clip layout (``visual.conv1``, ``visual.class_embedding``, ``visual.ln_pre``,
    ``visual.transformer.resblocks.N...``, ``visual.ln_post``, ``visual.proj`` as ``[width, embed_dim]``)."""
    read = key_reader(state, "OpenAI/open_clip image weights")
    out = {
        "trunk.patch_embed.proj.weight": read("visual.conv1.weight"),
        "trunk.cls_token": read("visual.class_embedding").reshape(1, 1, -1),
        "trunk.pos_embed": read("visual.positional_embedding").unsqueeze(0),
        "trunk.norm_pre.weight": read("visual.ln_pre.weight"),
        "trunk.norm_pre.bias": read("visual.ln_pre.bias"),
        "trunk.norm.weight": read("visual.ln_post.weight"),
        "trunk.norm.bias": read("visual.ln_post.bias"),
        "proj.weight": read("visual.proj").T.contiguous(),
    }
    for i in range(config.layers):
        out |= openai_resblock(read, f"visual.transformer.resblocks.{i}.", f"trunk.blocks.{i}.")
    return out


def convert_vit_hf(state: State, config: VitConfig) -> dict[str, torch.Tensor]:
    """Hugging Face transformers' CLIP layout (``vision_model.*``, ``visual_projection.weight``)."""
    read = key_reader(state, "transformers image weights")
    root = "vision_model."
    out = {
        "trunk.patch_embed.proj.weight": read(f"{root}embeddings.patch_embedding.weight"),
        "trunk.cls_token": read(f"{root}embeddings.class_embedding").reshape(1, 1, -1),
        "trunk.pos_embed": read(f"{root}embeddings.position_embedding.weight").unsqueeze(0),
        "trunk.norm_pre.weight": read(f"{root}pre_layrnorm.weight"),
        "trunk.norm_pre.bias": read(f"{root}pre_layrnorm.bias"),
        "trunk.norm.weight": read(f"{root}post_layernorm.weight"),
        "trunk.norm.bias": read(f"{root}post_layernorm.bias"),
        "proj.weight": read("visual_projection.weight"),
    }
    for i in range(config.layers):
        out |= hf_encoder_layer(read, f"{root}encoder.layers.{i}.", f"trunk.blocks.{i}.")
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
    out = {
        "visual.conv1.weight": read("trunk.patch_embed.proj.weight"),
        "visual.class_embedding": read("trunk.cls_token").reshape(-1),
        "visual.positional_embedding": read("trunk.pos_embed").squeeze(0),
        "visual.ln_pre.weight": read("trunk.norm_pre.weight"),
        "visual.ln_pre.bias": read("trunk.norm_pre.bias"),
        "visual.ln_post.weight": read("trunk.norm.weight"),
        "visual.ln_post.bias": read("trunk.norm.bias"),
        "visual.proj": read("proj.weight").T.contiguous(),
    }
    for i in range(config.layers):
        out |= to_openai_resblock(read, f"trunk.blocks.{i}.", f"visual.transformer.resblocks.{i}.")
    return out


def export_vit_hf(tower: State, config: VitConfig) -> dict[str, torch.Tensor]:
    """The inverse of :func:`convert_vit_hf`: the tower's state dict in transformers' CLIP layout."""
    read = key_reader(tower, "vit tower weights")
    root = "vision_model."
    out = {
        f"{root}embeddings.patch_embedding.weight": read("trunk.patch_embed.proj.weight"),
        f"{root}embeddings.class_embedding": read("trunk.cls_token").reshape(-1),
        f"{root}embeddings.position_embedding.weight": read("trunk.pos_embed").squeeze(0),
        f"{root}pre_layrnorm.weight": read("trunk.norm_pre.weight"),
        f"{root}pre_layrnorm.bias": read("trunk.norm_pre.bias"),
        f"{root}post_layernorm.weight": read("trunk.norm.weight"),
        f"{root}post_layernorm.bias": read("trunk.norm.bias"),
        "visual_projection.weight": read("proj.weight"),
    }
    for i in range(config.layers):
        out |= to_hf_encoder_layer(read, f"trunk.blocks.{i}.", f"{root}encoder.layers.{i}.")
    return out


def export_timm_openai(tower: State, config: TimmTowerConfig) -> dict[str, torch.Tensor]:
    """The inverse of :func:`convert_timm_openai`: open_clip keeps timm towers' own names under ``visual.``."""
    return {f"visual.{key}": value for key, value in tower.items()}
