"""The `modified-resnet` tower's configuration: data only (no torch or timm import), so plugin discovery is cheap."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from clip_core import TowerConfig

__all__ = ["EXPANSION", "ModifiedResNetConfig"]

Positive = Annotated[int, Field(gt=0)]

#: Bottleneck blocks expand their middle width four times (ResNet-50's ratio): stage ``i`` of a tower with stem
#: width ``w`` has ``w * 2**i`` middle and ``4 * w * 2**i`` output channels; the trunk ends with ``32 * w``.
EXPANSION = 4


def _optional_without_default(schema: dict[str, Any]) -> None:
    """JSON Schema of `heads`: optional, without the placeholder default (the validator fills it from `width`)."""
    schema.pop("default", None)


class ModifiedResNetConfig(TowerConfig):
    """OpenAI's modified ResNet, with open_clip's field names (`vision_cfg` of its RN cards)."""

    kind: Literal["modified-resnet"] = Field(
        default="modified-resnet", description="Tower kind: OpenAI's modified ResNet (clip-encoders-resnet)."
    )
    image_size: Positive = Field(
        default=224,
        description="Side of the square input, in pixels; a multiple of 32 (the trunk's stride), since the "
        "attention pool holds one positional embedding per cell of the (image_size / 32)^2 grid plus the mean.",
    )
    layers: tuple[Positive, Positive, Positive, Positive] = Field(
        description="Bottleneck blocks in each of the four stages, e.g. [3, 4, 6, 3] for RN50.",
    )
    width: Positive = Field(
        default=64,
        description="Stem width: the stem's convolutions have width/2, width/2 and width channels, stage i has "
        "width * 2^i middle and 4 * width * 2^i output channels, and the attention pool is 32 * width wide. A "
        "multiple of 8: timm rounds channel counts to multiples of 8 (make_divisible), which would change any "
        "other width's first stage.",
    )
    heads: Positive = Field(  # type: ignore[assignment]  # the None placeholder never survives `_default_heads`
        default=None,
        description="Attention heads of the attention pool; must divide its width 32 * width. Defaults to "
        "width * 32 // 64 (one head per 64 channels), as open_clip.",
        json_schema_extra=_optional_without_default,
    )

    @model_validator(mode="before")
    @classmethod
    def _default_heads(cls, data: Any) -> Any:
        """Fill `heads` from `width` when it is left out (or null), so that a stored config always holds it."""
        if isinstance(data, Mapping) and data.get("heads") is None:
            try:
                width = int(data.get("width", cls.model_fields["width"].default))
            except (TypeError, ValueError):
                return data  # `width`'s own validation says what is wrong with it
            if width > 0:
                data = {**data, "heads": max(1, width * 32 // 64)}
        return data

    @field_validator("layers", mode="before")
    @classmethod
    def _four_stages(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)) and len(value) != 4:
            raise ValueError(f"needs four block counts, one per stage, got {len(value)}: {list(value)}")
        return value

    @field_validator("image_size")
    @classmethod
    def _image_size_is_a_multiple_of_32(cls, value: int) -> int:
        if value % 32:
            raise ValueError(f"must be a multiple of 32 (the trunk's stride), got {value}")
        return value

    @field_validator("width")
    @classmethod
    def _width_is_a_multiple_of_8(cls, value: int) -> int:
        if value % 8:
            raise ValueError(f"must be a multiple of 8 (timm keeps channel counts at multiples of 8), got {value}")
        return value

    @field_validator("heads")
    @classmethod
    def _heads_divide_the_pool_width(cls, value: int, info: ValidationInfo) -> int:
        width = info.data.get("width")
        if width is not None and (width * 32) % value:
            raise ValueError(f"{value} heads do not divide the attention pool's width {width * 32} (32 * width)")
        return value
