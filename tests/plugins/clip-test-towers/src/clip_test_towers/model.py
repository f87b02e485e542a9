"""Toy towers: small, fast, deterministic, and real enough to train."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from clip_core import TowerConfig
from clip_core.intermediates import Indices, TowerIntermediates, take_indices, to_output_format

Positive = Annotated[int, Field(gt=0)]


class PatchMeanConfig(TowerConfig):
    """Image tower: patchify with a strided convolution, average the patches, project."""

    kind: Literal["patch-mean"] = "patch-mean"
    image_size: Positive = Field(description="Input side in pixels.")
    patch_size: Positive = Field(description="Patch side in pixels; must divide image_size.")
    width: Positive = Field(description="Channels of the patch embedding.")


class BagOfWordsConfig(TowerConfig):
    """Text tower: embed ids, average the non-padding positions, project."""

    kind: Literal["bag-of-words"] = "bag-of-words"
    vocab_size: Positive = Field(default=259, description="Number of ids.")
    context_length: Positive = Field(default=32, description="Ids per text.")
    width: Positive = Field(description="Embedding width.")


class PatchMeanTower(nn.Module):
    def __init__(self, config: PatchMeanConfig, embed_dim: int) -> None:
        super().__init__()
        if config.image_size % config.patch_size:
            raise ValueError(f"patch_size {config.patch_size} does not divide image_size {config.image_size}")
        self.embed_dim = embed_dim
        self.patch = nn.Conv2d(3, config.width, config.patch_size, config.patch_size)
        self.norm = nn.LayerNorm(config.width)
        self.proj = nn.Linear(config.width, embed_dim, bias=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        features = self.patch(pixels).flatten(2).mean(-1)
        out: torch.Tensor = self.proj(self.norm(features))
        return out

    def forward_intermediates(
        self,
        pixels: torch.Tensor,
        indices: Indices = None,
        *,
        stop_early: bool = False,
        normalize_intermediates: bool = False,
        intermediates_only: bool = False,
        output_fmt: str = "NCHW",
        output_extra_tokens: bool = False,
    ) -> TowerIntermediates:
        """One block, the patch embedding: its map, and the features (the bag-of-words tower has no such method)."""
        take_indices(1, indices)
        patches = self.patch(pixels)
        grid = (patches.shape[-2], patches.shape[-1])
        intermediates = [to_output_format(patches.flatten(2).transpose(1, 2), grid, output_fmt)]
        features = None if intermediates_only else self.proj(self.norm(patches.flatten(2).mean(-1)))
        return TowerIntermediates(intermediates, features, [] if output_extra_tokens else None)


class BagOfWordsTower(nn.Module):
    def __init__(self, config: BagOfWordsConfig, embed_dim: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.embed = nn.Embedding(config.vocab_size, config.width, padding_idx=0)
        self.norm = nn.LayerNorm(config.width)
        self.proj = nn.Linear(config.width, embed_dim, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids != 0).unsqueeze(-1).to(self.embed.weight.dtype)
        mean = (self.embed(ids) * mask).sum(1) / mask.sum(1).clamp(min=1)
        out: torch.Tensor = self.proj(self.norm(mean))
        return out
