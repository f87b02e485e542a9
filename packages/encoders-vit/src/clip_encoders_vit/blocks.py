"""The pieces of :class:`~clip_encoders_vit.VitTower`'s forward that differ from timm's own modules.

Each computes what timm's module computes, from the module's own weights:

- :func:`patch_tokens` is ``patch_embed`` as one matrix product over the cut-out patches (the convolution's stride
  equals its kernel, so it is one);
- :func:`class_token_output` is ``block(x)[:, 0]`` without the other tokens' projections and MLP;
- :func:`in_place_parts` names a timm ``Block``'s modules for :func:`clip_core.inplace.block_in_place`, which
  computes ``x = block(x)`` into ``x`` when no autograd graph is recorded.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import nn

from clip_core import InputError
from clip_core.inplace import PreNormBlock

__all__ = ["class_token_output", "in_place_parts", "patch_tokens"]


def patch_tokens(patch_embed: Any, pixels: torch.Tensor) -> torch.Tensor:
    """timm's ``PatchEmbed`` (bias-free convolution, stride = kernel, no norm): ``[B, 3, S, S]`` → ``[B, N, width]``."""
    conv: nn.Conv2d = patch_embed.proj
    width, channels, patch, _ = conv.weight.shape
    side = patch_embed.img_size[0]
    if pixels.dim() != 4 or tuple(pixels.shape[1:]) != (channels, side, side):
        raise InputError(f"pixels must be [batch, {channels}, {side}, {side}] for this tower, got {list(pixels.shape)}")
    batch, grid = pixels.shape[0], side // patch
    cols = pixels.reshape(batch, channels, grid, patch, grid, patch).permute(0, 2, 4, 1, 3, 5)
    cols = cols.reshape(batch * grid * grid, channels * patch * patch)
    tokens = F.linear(cols, conv.weight.view(width, -1), conv.bias)
    return tokens.view(batch, grid * grid, width)


def class_token_output(block: Block, x: torch.Tensor, heads: int) -> torch.Tensor:
    """``block(x)[:, 0]``, computing only what the class token's output depends on.

    The class token's query meets every token's key and value, but those projections need not be computed per
    token: ``q·(W_k y + b_k) = (W_kᵀ q)·y + q·b_k``, whose last term is the same for every key and cancels in the
    softmax, and the attention weights sum to one, so ``Σ a (W_v y + b_v) = W_v (Σ a y) + b_v``. Attention thus
    runs on the normalised tokens ``y`` themselves, at a few percent of the cost of projecting them.
    """
    attn: Any = block.attn  # timm's Attention (its module path moved between timm releases)
    batch, width = x.shape[0], x.shape[2]
    head = width // heads
    y = block.norm1(x)
    weight, bias = attn.qkv.weight, attn.qkv.bias
    w_k, w_v = weight[width:].view(2, heads, head, width).unbind(0)
    q = F.linear(y[:, 0], weight[:width], None if bias is None else bias[:width]).view(batch, heads, head)
    keys = torch.einsum("bhd,hdw->bhw", q, w_k)  # [B, H, width]: each head's query seen in token space
    scores = torch.bmm(keys, y.transpose(1, 2)).mul_(head**-0.5)  # [B, H, L]
    pooled = torch.bmm(scores.softmax(dim=-1), y)  # [B, H, width]
    out = torch.einsum("bhw,hdw->bhd", pooled, w_v)
    if bias is not None:
        out = out + bias[2 * width :].view(heads, head)
    out = out.reshape(batch, width)
    norm = getattr(attn, "norm", None)  # timm >= 1.0.16 may normalise the heads' output (Identity for CLIP)
    token = x[:, 0] + block.ls1(attn.proj(out if norm is None else norm(out)))
    return token + block.ls2(block.mlp(block.norm2(token)))  # type: ignore[no-any-return]


def in_place_parts(block: Block, heads: int, activation: str) -> PreNormBlock:
    """A timm ``Block`` as CLIP's ViT builds it (no LayerScale, no drop path) for ``block_in_place``."""
    attn: Any = block.attn
    mlp: Any = block.mlp
    return PreNormBlock(
        norm1=block.norm1,
        qkv=attn.qkv,
        proj=attn.proj,
        norm2=block.norm2,
        fc1=mlp.fc1,
        fc2=mlp.fc2,
        heads=heads,
        activation="quick_gelu" if activation == "quick_gelu" else "gelu",
        head_norm=getattr(attn, "norm", None),  # timm >= 1.0.16 may normalise the heads' output (Identity for CLIP)
    )
