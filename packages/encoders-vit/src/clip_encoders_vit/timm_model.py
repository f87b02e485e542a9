"""Any timm backbone as an image tower, pooled and projected to the shared embedding width.

The module mirrors open_clip's ``TimmModel`` (``trunk`` + ``head``), so open_clip checkpoints of timm-based cards
load with a key rename only.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, cast

import timm
import torch
from timm.layers.mlp import Mlp
from torch import nn

from clip_encoders_vit.config import TimmTowerConfig

__all__ = ["TimmTower"]


class TimmTower(nn.Module):
    """Pixels ``[B, 3, H, W]`` to ``[B, embed_dim]`` through ``trunk`` (the timm model) and ``head``."""

    def __init__(self, config: TimmTowerConfig, embed_dim: int) -> None:
        super().__init__()
        self.config = config
        self.embed_dim = embed_dim
        kwargs: dict[str, Any] = dict(config.model_args)
        if config.drop_path is not None:
            kwargs["drop_path_rate"] = config.drop_path
        if config.pool:
            kwargs["global_pool"] = config.pool
        num_classes = embed_dim if config.proj == "classifier" else 0
        self.trunk = timm.create_model(config.model_name, pretrained=False, num_classes=num_classes, **kwargs)
        width = embed_dim if config.proj == "classifier" else cast(int, self.trunk.num_features)
        if config.proj == "none" and width != embed_dim:
            raise ValueError(
                f"timm model {config.model_name!r} gives {width} features; with proj 'none' embed_dim must be {width}"
            )
        head: OrderedDict[str, nn.Module] = OrderedDict()
        if config.proj == "linear":
            head["drop"] = nn.Dropout(config.drop)
            head["proj"] = nn.Linear(width, embed_dim, bias=config.proj_bias)
        elif config.proj == "mlp":
            head["mlp"] = Mlp(width, 2 * embed_dim, embed_dim, drop=(config.drop, 0.0), bias=(True, config.proj_bias))
        self.head = nn.Sequential(head)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(pixels))  # type: ignore[no-any-return]
