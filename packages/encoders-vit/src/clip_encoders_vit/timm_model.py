"""Any timm backbone as an image tower, pooled and projected to the shared embedding width.

The module mirrors open_clip's ``TimmModel`` (``trunk`` + ``head``), so open_clip checkpoints of timm-based cards
load with a key rename only.
"""

from __future__ import annotations

import difflib
from collections import OrderedDict
from typing import Annotated, Any, Literal, cast

import timm
import torch
from pydantic import Field, model_validator
from timm.layers.mlp import Mlp
from torch import nn

from clip_core import TowerConfig

__all__ = ["TimmTower", "TimmTowerConfig"]


class TimmTowerConfig(TowerConfig):
    """A timm backbone by name (open_clip's ``timm_*`` vision fields)."""

    kind: Literal["timm"] = "timm"
    model_name: str = Field(description="timm model name, e.g. 'convnext_base' (see `timm.list_models()`).")
    image_size: Annotated[int, Field(gt=0)] = Field(default=224, description="Input image side in pixels.")
    pool: Literal["avg", "max", "avgmax", "token", ""] = Field(
        default="avg", description="timm global pooling of the backbone's features ('' keeps the model's default)."
    )
    proj: Literal["linear", "mlp", "classifier", "none"] = Field(
        default="linear",
        description="Projection to `embed_dim`: a linear layer, a 2-layer MLP, timm's own classifier head with "
        "`embed_dim` outputs (open_clip's empty `timm_proj`), or 'none' (backbone features already `embed_dim` wide).",
    )
    proj_bias: bool = Field(default=False, description="Whether the projection has a bias.")
    drop: Annotated[float, Field(ge=0, lt=1)] = Field(default=0.0, description="Dropout before the projection.")
    drop_path: Annotated[float, Field(ge=0, lt=1)] | None = Field(
        default=None, description="Stochastic depth rate of the backbone (timm's default when unset)."
    )
    model_args: dict[str, int | float | bool | str] = Field(
        default_factory=dict, description="Further keyword arguments for `timm.create_model`, e.g. {'img_size': 256}."
    )

    @model_validator(mode="after")
    def _known_model(self) -> TimmTowerConfig:
        if not timm.is_model(self.model_name):
            close = difflib.get_close_matches(self.model_name, timm.list_models(), n=5)
            hint = f"; similar names: {', '.join(close)}" if close else ""
            raise ValueError(f"timm has no model called {self.model_name!r}{hint}")
        return self


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
