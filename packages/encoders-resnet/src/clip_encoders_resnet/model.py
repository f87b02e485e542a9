"""OpenAI's modified ResNet image tower (kind `modified-resnet`): a timm ByobNet trunk and an attention-pool head.

Configuration is data (:class:`ModifiedResNetConfig`), the module is code (:class:`ModifiedResNet`), as in timm.
The network is OpenAI's (and open_clip's ``ModifiedResNet``): a three-convolution stem ending in a 2x2 average
pool, bottleneck stages whose strided blocks average-pool before striding (in the 3x3 branch after its
activation, and in the shortcut before its 1x1 convolution), and a head that attends from the mean-pooled feature
to every position of the last feature map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models.byobnet import ByoBlockCfg, ByobNet, ByoModelCfg
from torch import nn

from clip_core.converters import resample_position_embedding
from clip_core.intermediates import Indices, TowerIntermediates, take_indices, to_output_format
from clip_encoders_resnet.config import EXPANSION, ModifiedResNetConfig

__all__ = ["AttentionPool", "ModifiedResNet", "trunk_config"]


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
        return self.attnpool(self.trunk.forward_features(self._trunk_input(pixels)))  # type: ignore[no-any-return]

    def fit_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weights for another image size made to fit this one: the attention pool's position embedding resampled
        to this grid (bicubic, the mean token kept, as open_clip resamples a ViT's); everything else as it is."""
        key = "attnpool.positional_embedding"
        if key in state and state[key].dim() == 2:
            grid = self.config.image_size // 32
            state = {**state, key: resample_position_embedding(state[key], (grid, grid))}
        return state

    def _trunk_input(self, pixels: torch.Tensor) -> torch.Tensor:
        size = self.config.image_size
        if pixels.shape[-2:] != (size, size):
            raise ValueError(f"pixels are {tuple(pixels.shape[-2:])}; this tower reads {size}x{size} images")
        weight = self.attnpool.positional_embedding
        return pixels.to(dtype=weight.dtype, memory_format=torch.channels_last)

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
        """The outputs of the five feature stages (the stem, then the four residual stages), as open_clip's
        ``ModifiedResNet`` gives them: ``indices`` counts these five, and takes an int or a list alike.

        The maps come in the standard (contiguous) memory format; ``normalize_intermediates`` does nothing (the
        trunk ends in no norm) and there are no extra tokens.
        """
        taken, last = take_indices(1 + len(self.trunk.stages), indices, "stage")
        stages = [self.trunk.stem, *self.trunk.stages]
        x = self._trunk_input(pixels)
        outputs: list[torch.Tensor] = []
        for i, stage in enumerate(stages[: last + 1] if stop_early and intermediates_only else stages):
            x = stage(x)
            if i in taken:
                outputs.append(to_output_format(x.flatten(2).transpose(1, 2), (x.shape[-2], x.shape[-1]), output_fmt))
        features = None if intermediates_only else self.attnpool(self.trunk.final_conv(x))
        return TowerIntermediates(outputs, features, [] if output_extra_tokens else None)
