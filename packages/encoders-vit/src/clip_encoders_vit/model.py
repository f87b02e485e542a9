"""OpenAI's / open_clip's vision transformer as an image tower, on timm's ``VisionTransformer``.

Configuration is data (:class:`VitConfig`), the module is code (:class:`VitTower`), as in timm. timm provides the
network (patch embedding without bias, class token, learned positional embedding, the LayerNorm before the blocks
that OpenAI calls ``ln_pre``, pre-norm blocks, final LayerNorm); this module adds the bias-free projection to the
shared embedding width and reads the class token.
"""

from __future__ import annotations

from functools import partial
from typing import Any, cast

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn
from torch.utils.checkpoint import checkpoint

from clip_encoders_vit.config import VitConfig

__all__ = ["VitTower"]


class VitTower(nn.Module):
    """Pixels ``[B, 3, image_size, image_size]`` to image features ``[B, embed_dim]``.

    ``trunk`` is timm's ``VisionTransformer`` configured as CLIP's (LayerNorm eps 1e-5, no classifier); the
    features are the final LayerNorm of the class token, projected by ``proj`` (no bias). The last block computes
    only the class token's output, the only one read: the same numbers, without the other tokens' MLP.
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
        x = trunk.norm_pre(trunk._pos_embed(trunk.patch_embed(pixels)))
        checkpointed = self.grad_checkpointing and self.training and torch.is_grad_enabled()
        for block in trunk.blocks[:-1]:
            x = checkpoint(block, x, use_reentrant=False) if checkpointed else block(x)
        token = _class_token_output(cast(Block, trunk.blocks[-1]), x, self.config.heads)
        return self.proj(trunk.norm(token))  # type: ignore[no-any-return]


def _class_token_output(block: Block, x: torch.Tensor, heads: int) -> torch.Tensor:
    """``block(x)[:, 0]`` without computing the other tokens' queries, projections and MLP."""
    attn: Any = block.attn  # timm's Attention (its module path moved between timm releases)
    qkv = attn.qkv
    batch, length, width = x.shape
    y = block.norm1(x)
    weight, bias = qkv.weight, qkv.bias
    q = F.linear(y[:, :1], weight[:width], None if bias is None else bias[:width])
    kv = F.linear(y, weight[width:], None if bias is None else bias[width:])
    q = q.view(batch, 1, heads, width // heads).transpose(1, 2)
    k, v = kv.view(batch, length, 2, heads, width // heads).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v).reshape(batch, width)
    norm = getattr(attn, "norm", None)  # timm >= 1.0.16 may normalise the heads' output (Identity for CLIP)
    token = x[:, 0] + block.ls1(attn.proj(out if norm is None else norm(out)))
    return token + block.ls2(block.mlp(block.norm2(token)))  # type: ignore[no-any-return]
