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

from clip_core.errors import InputError, PluginError
from clip_core.intermediates import Indices, TowerIntermediates
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
        """timm's own ``forward_intermediates`` of the backbone (its feature stages or blocks), then the head.

        timm gives the maps as NCHW (every backbone can); ``"NLC"`` flattens them here."""
        take = getattr(self.trunk, "forward_intermediates", None)
        if take is None:
            raise PluginError(f"timm model {self.config.model_name!r} has no forward_intermediates")
        if output_fmt not in ("NCHW", "NLC"):
            raise InputError(f"output format must be 'NCHW' or 'NLC', got {output_fmt!r}")
        options: dict[str, Any] = {"norm": normalize_intermediates, "output_fmt": "NCHW"}
        if output_extra_tokens:
            options["return_prefix_tokens"] = True
        try:
            result = take(
                pixels,
                indices=list(indices) if isinstance(indices, (list, tuple)) else indices,
                stop_early=stop_early and intermediates_only,
                intermediates_only=intermediates_only,
                **options,
            )
        except AssertionError as exc:  # timm checks indices and formats with asserts
            raise InputError(f"timm model {self.config.model_name!r}: {exc}") from None
        final, intermediates = (None, result) if intermediates_only else result
        extra = None
        if output_extra_tokens:
            extra = [prefix for _, prefix in intermediates]
            intermediates = [spatial for spatial, _ in intermediates]
        if output_fmt == "NLC":
            intermediates = [x.flatten(2).transpose(1, 2) for x in intermediates]
        trunk: Any = self.trunk
        features = None if final is None else self.head(trunk.forward_head(final))
        return TowerIntermediates(list(intermediates), features, extra)
