"""Cards to modules, and weights from OpenAI / open_clip (``visual.*``) and transformers (``vision_model.*``,
``visual_projection``) layouts to the towers' own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

from clip_core import CheckpointError
from clip_core.converters import hf_encoder_layer, key_reader, openai_resblock
from clip_encoders_vit.config import TimmTowerConfig, VitConfig

if TYPE_CHECKING:
    from clip_encoders_vit.model import VitTower
    from clip_encoders_vit.timm_model import TimmTower

__all__ = ["build_timm", "build_vit", "convert_timm_openai", "convert_vit_hf", "convert_vit_openai"]

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
