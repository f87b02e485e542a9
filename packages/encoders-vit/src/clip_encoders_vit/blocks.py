"""The pieces of :class:`~clip_encoders_vit.VitTower`'s forward that differ from timm's own modules.

Each computes what timm's module computes, from the module's own weights:

- :func:`patch_tokens` is ``patch_embed`` as one matrix product over the cut-out patches (the convolution's stride
  equals its kernel, so it is one);
- :func:`class_token_output` is ``block(x)[:, 0]`` without the other tokens' projections and MLP;
- :func:`block_in_place` is ``x = block(x)`` for inference, written into ``x`` with the residual sums accumulated
  by the matrix products themselves (``addmm_``) and every other intermediate in one reused workspace. timm's
  ``Block`` allocates about four times the activations per block; on CPU, the freshly allocated memory's page
  faults cost as much as a tenth of the forward pass.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import nn

from clip_core import InputError

__all__ = ["Workspace", "block_in_place", "class_token_output", "patch_tokens"]

try:  # the in-place erf GELU, as an ATen operator (torch has no public Python name for it)
    _gelu_: Any = torch.ops.aten.gelu_
except (AttributeError, RuntimeError):  # pragma: no cover - a torch without it
    _gelu_ = None


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


class Workspace:
    """Scratch matrices for :func:`block_in_place`, shared by every block of one forward pass: the QKV projection
    and the MLP's hidden activations take turns in one region, the attention output has its own."""

    def __init__(self, x: torch.Tensor, hidden: int, quick_gelu: bool) -> None:
        batch, length, width = x.shape
        self.rows, self.width, self.hidden = batch * length, width, hidden
        big = max(3 * width, hidden)
        # One more hidden-wide region for QuickGELU's sigmoid, which has no in-place form.
        size = self.rows * (big + width + (hidden if quick_gelu else 0))
        self.memory = x.new_empty(size)
        self.quick_gelu = quick_gelu

    def matrix(self, start: int, columns: int) -> torch.Tensor:
        """A ``[rows, columns]`` view of the workspace, from its element ``start`` on."""
        return self.memory[start : start + self.rows * columns].view(self.rows, columns)

    def qkv(self) -> torch.Tensor:
        return self.matrix(0, 3 * self.width)

    def hidden_activations(self) -> torch.Tensor:
        return self.matrix(0, self.hidden)

    def attention_output(self) -> torch.Tensor:
        return self.matrix(self.rows * max(3 * self.width, self.hidden), self.width)

    def gate(self) -> torch.Tensor:
        return self.matrix(self.rows * (max(3 * self.width, self.hidden) + self.width), self.hidden)


def _linear_into(linear: nn.Linear, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    bias: torch.Tensor | None = linear.bias
    if bias is None:
        return torch.mm(x, linear.weight.t(), out=out)
    return torch.addmm(bias, x, linear.weight.t(), out=out)


def _add_linear_(residual: torch.Tensor, linear: nn.Linear, x: torch.Tensor) -> None:
    """``residual += linear(x)``, the product accumulated into ``residual`` by the GEMM itself."""
    bias: torch.Tensor | None = linear.bias
    if bias is not None:
        residual.add_(bias)
    residual.addmm_(x, linear.weight.t())


def block_in_place(block: Block, x: torch.Tensor, heads: int, workspace: Workspace) -> None:
    """``x = block(x)`` for a pre-norm block without LayerScale (CLIP's), in place; inference only (no autograd)."""
    attn: Any = block.attn
    mlp: Any = block.mlp
    batch, length, width = x.shape
    flat = x.view(batch * length, width)
    qkv = _linear_into(attn.qkv, block.norm1(flat), workspace.qkv())
    q, k, v = qkv.view(batch, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
    out = workspace.attention_output()
    out.view(batch, length, heads, width // heads).copy_(F.scaled_dot_product_attention(q, k, v).transpose(1, 2))
    norm = getattr(attn, "norm", None)
    _add_linear_(flat, attn.proj, out if norm is None else norm(out))
    hidden = _linear_into(mlp.fc1, block.norm2(flat), workspace.hidden_activations())
    if workspace.quick_gelu:  # timm's quick_gelu, x * sigmoid(1.702 * x), without allocating
        hidden.mul_(torch.mul(hidden, 1.702, out=workspace.gate()).sigmoid_())
    elif _gelu_ is not None:
        _gelu_(hidden)
    else:  # pragma: no cover
        hidden.copy_(F.gelu(hidden))
    _add_linear_(flat, mlp.fc2, hidden)
