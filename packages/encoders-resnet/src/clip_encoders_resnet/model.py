"""OpenAI's modified ResNet image tower (kind `modified-resnet`): a timm ByobNet trunk and an attention-pool head.

Configuration is data (:class:`ModifiedResNetConfig`), the module is code (:class:`ModifiedResNet`), as in timm.
The network is OpenAI's (and open_clip's ``ModifiedResNet``): a three-convolution stem ending in a 2x2 average
pool, bottleneck stages whose strided blocks average-pool before striding (in the 3x3 branch after its
activation, and in the shortcut before its 1x1 convolution), and a head that attends from the mean-pooled feature
to every position of the last feature map.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, ValidationInfo, field_validator, model_validator
from timm.models.byobnet import ByoBlockCfg, ByobNet, ByoModelCfg
from torch import nn

from clip_core import TowerConfig

__all__ = ["AttentionPool", "ModifiedResNet", "ModifiedResNetConfig", "trunk_config"]

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


def trunk_config(config: ModifiedResNetConfig) -> ByoModelCfg:
    """The timm ByobNet configuration of the stem and the four stages (as timm's own ``resnet50_clip``).

    Channel counts are given outright (``width_factor`` 1), so timm's rounding leaves them as open_clip's.
    """
    width = config.width
    stages = tuple(
        ByoBlockCfg(type="bottle", d=depth, c=EXPANSION * width * 2**i, s=1 if i == 0 else 2, br=1 / EXPANSION)
        for i, depth in enumerate(config.layers)
    )
    return ByoModelCfg(
        blocks=stages,
        stem_chs=(width // 2, width // 2, width),
        stem_type="",  # three 3x3 convolutions, the first with stride 2 ...
        stem_pool="avg2",  # ... then a 2x2 average pool
        downsample="avg",  # shortcut: 2x2 average pool, then 1x1 convolution and BatchNorm
        aa_layer="avg",  # strided 3x3 branch: convolution with stride 1, BatchNorm, ReLU, then 2x2 average pool
        head_type="classifier",  # built without classes and pooling: the tower's own head is `AttentionPool`
    )


class AttentionPool(nn.Module):
    """Multi-head attention from the mean of a feature map to all its positions (and to the mean itself).

    Parameters are OpenAI's (``positional_embedding``, ``q_proj``, ``k_proj``, ``v_proj``, ``c_proj``); the
    query and the output projection are computed for the mean token only, the only output OpenAI reads, through
    ``scaled_dot_product_attention``.
    """

    def __init__(self, grid: int, width: int, heads: int, out_dim: int) -> None:
        super().__init__()
        self.heads = heads
        self.positional_embedding = nn.Parameter(torch.empty(grid * grid + 1, width))
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.c_proj = nn.Linear(width, out_dim)
        self.init_weights()

    def init_weights(self) -> None:
        """OpenAI's initialisation: normal with std width^-0.5 for the embedding and the projection weights
        (biases keep ``nn.Linear``'s default)."""
        std = self.c_proj.in_features**-0.5
        nn.init.normal_(self.positional_embedding, std=std)
        for linear in (self.q_proj, self.k_proj, self.v_proj, self.c_proj):
            nn.init.normal_(linear.weight, std=std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map ``[B, C, H, W]`` to ``[B, out_dim]``."""
        batch, width = x.shape[:2]
        tokens = x.flatten(2).transpose(1, 2)  # [B, HW, C]; a view without copy when x is channels_last
        tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)
        tokens = tokens + self.positional_embedding.to(tokens.dtype)
        head = width // self.heads
        q = self.q_proj(tokens[:, :1]).view(batch, 1, self.heads, head).transpose(1, 2)
        k = self.k_proj(tokens).view(batch, -1, self.heads, head).transpose(1, 2)
        v = self.v_proj(tokens).view(batch, -1, self.heads, head).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)  # [B, heads, 1, head]
        return self.c_proj(out.reshape(batch, width))  # type: ignore[no-any-return]


class ModifiedResNet(nn.Module):
    """Pixels ``[B, 3, image_size, image_size]`` to image features ``[B, embed_dim]``.

    ``trunk`` is a timm ``ByobNet`` (stem and stages, without classifier); ``attnpool`` is OpenAI's attention
    pool. The trunk runs in channels_last memory format, measured faster on CPU for float32 and bfloat16 (the
    package README has the figures); inputs are converted to it, and cast to the tower's dtype, on the way in.
    """

    def __init__(self, config: ModifiedResNetConfig, embed_dim: int) -> None:
        super().__init__()
        self.config = config
        self.embed_dim = embed_dim
        self.trunk = ByobNet(trunk_config(config), num_classes=0, global_pool="")
        self.attnpool = AttentionPool(config.image_size // 32, config.width * 32, config.heads, embed_dim)
        self.trunk.to(memory_format=torch.channels_last)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        size = self.config.image_size
        if pixels.shape[-2:] != (size, size):
            raise ValueError(f"pixels are {tuple(pixels.shape[-2:])}; this tower reads {size}x{size} images")
        weight = self.attnpool.positional_embedding
        x = pixels.to(dtype=weight.dtype, memory_format=torch.channels_last)
        return self.attnpool(self.trunk.forward_features(x))  # type: ignore[no-any-return]
