"""The tower kinds' configurations: data only (timm is imported only to check a timm model name), so that plugin
discovery, card listing and validation stay cheap."""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from clip_core import TowerConfig

__all__ = ["TimmTowerConfig", "VitConfig"]

Positive = Annotated[int, Field(gt=0)]
_HEAD_WIDTH = 64


class VitConfig(TowerConfig):
    """A CLIP vision transformer, with open_clip's field names (``vision_cfg``)."""

    kind: Literal["vit"] = "vit"
    image_size: Positive = Field(default=224, description="Input image side in pixels; a multiple of `patch_size`.")
    patch_size: Positive = Field(description="Side of the square patches the image is cut into.")
    width: Positive = Field(description="Transformer width.")
    layers: Positive = Field(description="Number of residual attention blocks.")
    heads: Positive = Field(description="Attention heads; must divide `width`. Defaults to width // 64, as open_clip.")
    mlp_ratio: Annotated[float, Field(gt=0)] = Field(
        default=4.0, description="MLP hidden width / `width` (hidden width is int(width * mlp_ratio), as open_clip)."
    )
    activation: Literal["gelu", "quick_gelu"] = Field(
        default="gelu", description="MLP activation; OpenAI's weights were trained with 'quick_gelu'."
    )

    @model_validator(mode="before")
    @classmethod
    def _default_heads(cls, data: Any) -> Any:
        if isinstance(data, dict) and "heads" not in data and isinstance(data.get("width"), int):
            return {**data, "heads": max(data["width"] // _HEAD_WIDTH, 1)}
        return data

    @model_validator(mode="after")
    def _shapes_fit(self) -> VitConfig:
        if self.width % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide width ({self.width})")
        if self.image_size % self.patch_size:
            raise ValueError(f"patch_size ({self.patch_size}) must divide image_size ({self.image_size})")
        return self


class TimmTowerConfig(TowerConfig):
    """A timm backbone by name (open_clip's ``timm_*`` vision fields)."""

    # `model_name` is open_clip's field name; pydantic < 2.10 reserves the `model_` prefix unless told otherwise.
    model_config = ConfigDict(protected_namespaces=())

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
        import timm  # here, not at plugin discovery: importing timm takes seconds

        if not timm.is_model(self.model_name):
            close = difflib.get_close_matches(self.model_name, timm.list_models(), n=5)
            hint = f"; similar names: {', '.join(close)}" if close else ""
            raise ValueError(f"timm has no model called {self.model_name!r}{hint}")
        return self
