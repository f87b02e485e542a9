"""OpenAI's / open_clip's vision transformer as an image tower, on timm's ``VisionTransformer``.

Configuration is data (:class:`VitConfig`), the module is code (:class:`VitTower`), as in timm. timm provides the
network (patch embedding without bias, class token, learned positional embedding, the LayerNorm before the blocks
that OpenAI calls ``ln_pre``, pre-norm blocks, final LayerNorm); this module adds the bias-free projection to the
shared embedding width and reads the class token.
"""

from __future__ import annotations

from functools import partial
from typing import cast

import torch
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn
from torch.utils.checkpoint import checkpoint

from clip_core.converters import resample_position_embedding
from clip_core.inplace import blocks_in_place, runs_in_place
from clip_core.intermediates import Indices, TowerIntermediates, take_indices, to_output_format
from clip_encoders_vit.blocks import class_token_output, in_place_parts, patch_tokens
from clip_encoders_vit.config import VitConfig

__all__ = ["VitTower"]


class VitTower(nn.Module):
    """Pixels ``[B, 3, image_size, image_size]`` to image features ``[B, embed_dim]``.

    ``trunk`` is timm's ``VisionTransformer`` configured as CLIP's (LayerNorm eps 1e-5, no classifier); the
    features are the final LayerNorm of the class token, projected by ``proj`` (no bias). The last block computes
    only the class token's output, the only one read: the same numbers, without the other tokens' MLP. When no
    autograd graph is needed (``torch.no_grad``, ``torch.inference_mode``, or a frozen tower) and autocast is off,
    the other blocks run in place in one workspace (:mod:`clip_core.inplace`), allocating a fraction of the memory
    timm's modules would.
    """

    def __init__(self, config: VitConfig, embed_dim: int) -> None:
        super().__init__()
        self.config = config
        self.embed_dim = embed_dim
        self.trunk = VisionTransformer(
            img_size=config.image_size,
            patch_size=config.patch_size,
            num_classes=0,
            global_pool="token",
            embed_dim=config.width,
            depth=config.layers,
            num_heads=config.heads,
            mlp_ratio=config.mlp_ratio,
            pre_norm=True,
            norm_layer=partial(nn.LayerNorm, eps=1e-5),
            act_layer="quick_gelu" if config.activation == "quick_gelu" else "gelu",
        )
        self.proj = nn.Linear(config.width, embed_dim, bias=False)
        nn.init.normal_(self.proj.weight, std=config.width**-0.5)

    #: Whether training recomputes each block's activations in the backward pass (see `set_grad_checkpointing`).
    grad_checkpointing: bool = False

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Trade compute for memory in training: with gradients enabled, each block but the last runs under
        ``torch.utils.checkpoint`` (its activations are recomputed in the backward pass, not stored)."""
        self.grad_checkpointing = enable

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        trunk = self.trunk
        x = trunk.norm_pre(trunk._pos_embed(patch_tokens(trunk.patch_embed, pixels)))
        blocks = cast(list[Block], list(trunk.blocks))
        if runs_in_place(self, pixels):  # no autograd graph to record: the same blocks, in place
            blocks_in_place(
                [in_place_parts(block, self.config.heads, self.config.activation) for block in blocks[:-1]], x
            )
        else:
            checkpointed = self.grad_checkpointing and self.training and torch.is_grad_enabled()
            for block in blocks[:-1]:
                x = checkpoint(block, x, use_reentrant=False) if checkpointed else block(x)
        token = class_token_output(blocks[-1], x, self.config.heads)
        return self.proj(trunk.norm(token))  # type: ignore[no-any-return]

    def fit_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weights for another image size made to fit this one: the position embedding resampled to this grid
        (bicubic, class token kept, as open_clip's ``resize_pos_embed``); everything else as it is."""
        key = "trunk.pos_embed"
        if key in state and state[key].dim() == 3:
            grid = cast(tuple[int, int], tuple(self.trunk.patch_embed.grid_size))
            state = {**state, key: resample_position_embedding(state[key][0], grid)[None]}
        return state

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
        """The blocks' outputs (``[B, width, grid, grid]`` in NCHW) and the features, as open_clip's ViT gives them.

        Every block runs module by module (all tokens, no in-place path), so the numbers are those of timm's blocks.
        """
        trunk = self.trunk
        blocks = cast(list[Block], list(trunk.blocks))
        taken, last = take_indices(len(blocks), indices)
        x = trunk.norm_pre(trunk._pos_embed(patch_tokens(trunk.patch_embed, pixels)))
        outputs: list[torch.Tensor] = []
        for i, block in enumerate(blocks[: last + 1] if stop_early and intermediates_only else blocks):
            x = block(x)
            if i in taken:
                outputs.append(trunk.norm(x) if normalize_intermediates else x)
        prefix = trunk.num_prefix_tokens
        grid = cast(tuple[int, int], tuple(trunk.patch_embed.grid_size))
        spatial = [to_output_format(y[:, prefix:], grid, output_fmt) for y in outputs]
        extra = [y[:, :prefix] for y in outputs] if output_extra_tokens else None
        features = None if intermediates_only else self.proj(trunk.norm(x)[:, 0])
        return TowerIntermediates(spatial, features, extra)
