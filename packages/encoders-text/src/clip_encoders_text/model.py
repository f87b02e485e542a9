"""CLIP's text tower: a causal (masked) pre-LayerNorm transformer read at the end-of-text token.

Configuration is data (:class:`TextTransformerConfig`), the module is code (:class:`TextTransformer`), as in timm.
"""

from __future__ import annotations

from typing import Annotated, Literal, cast

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn
from torch.utils.checkpoint import checkpoint

from clip_core import TowerConfig
from clip_core.inplace import PreNormBlock, blocks_in_place, runs_in_place, tracing
from clip_core.intermediates import Indices, TowerIntermediates, take_indices

__all__ = ["TextTransformer", "TextTransformerConfig"]

Positive = Annotated[int, Field(gt=0)]


class TextTransformerConfig(TowerConfig):
    """OpenAI's text tower, with open_clip's field names (`text_cfg`)."""

    kind: Literal["text-transformer"] = "text-transformer"
    context_length: Positive = Field(default=77, description="Token positions the tower reads.")
    vocab_size: Positive = Field(default=49408, description="Size of the token vocabulary.")
    width: Positive = Field(description="Transformer width.")
    layers: Positive = Field(description="Number of residual attention blocks.")
    heads: Positive = Field(description="Attention heads; must divide `width`.")
    mlp_ratio: Annotated[float, Field(gt=0)] = Field(
        default=4.0, description="MLP hidden width / `width` (hidden width is int(width * mlp_ratio), as open_clip)."
    )
    activation: Literal["gelu", "quick_gelu"] = Field(
        default="gelu", description="MLP activation; OpenAI's weights were trained with 'quick_gelu'."
    )

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TextTransformerConfig:
        if self.width % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide width ({self.width})")
        return self


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x): the GELU approximation OpenAI trained CLIP with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention with a fused QKV projection and a causal mask, through SDPA."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(out.transpose(1, 2).reshape(batch, length, width))  # type: ignore[no-any-return]

    def forward_at(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The attention output at one position per row ``[B, W]``: queries only there, keys up to there."""
        batch, length, width = x.shape
        head = width // self.heads
        w_q, w_kv = self.qkv.weight[:width], self.qkv.weight[width:]
        b_q, b_kv = self.qkv.bias[:width], self.qkv.bias[width:]
        rows = torch.arange(batch, device=x.device)
        q = F.linear(x[rows, positions], w_q, b_q).view(batch, self.heads, 1, head)
        k, v = F.linear(x, w_kv, b_kv).view(batch, length, 2, self.heads, head).permute(2, 0, 3, 1, 4)
        visible = torch.arange(length, device=x.device) <= positions[:, None]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=visible[:, None, None, :])
        return self.proj(out.reshape(batch, width))  # type: ignore[no-any-return]


class Block(nn.Module):
    """Pre-LayerNorm residual block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, width: int, heads: int, hidden: int, activation: str) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-5)
        self.attn = CausalSelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-5)
        self.fc1 = nn.Linear(width, hidden)
        self.act: nn.Module = QuickGELU() if activation == "quick_gelu" else nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))  # type: ignore[no-any-return]

    def in_place_parts(self) -> PreNormBlock:
        """This block's modules for :func:`clip_core.inplace.block_in_place` (causal attention)."""
        activation: Literal["gelu", "quick_gelu"] = "quick_gelu" if isinstance(self.act, QuickGELU) else "gelu"
        return PreNormBlock(
            self.norm1, self.attn.qkv, self.attn.proj, self.norm2, self.fc1, self.fc2, self.attn.heads, activation, True
        )

    def forward_at(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The block's output at one position per row, ``[B, W]``: the same numbers as ``forward(x)`` there,
        without computing the other positions' queries and MLPs (nothing downstream reads them)."""
        y = x[torch.arange(x.shape[0], device=x.device), positions] + self.attn.forward_at(self.norm1(x), positions)
        return y + self.fc2(self.act(self.fc1(self.norm2(y))))  # type: ignore[no-any-return]


class TextTransformer(nn.Module):
    """Token ids ``[B, L]`` to text features ``[B, embed_dim]``.

    Features are read at each text's end-of-text token, the highest id (``argmax``), as OpenAI does. Attention is
    causal, so positions after the last end token in the batch cannot change any output: the batch is cut to that
    length before the transformer, which is exact and, for short prompts, several times faster (a graph being
    traced for export keeps every position instead: see :func:`clip_core.inplace.tracing`). The last block
    computes only the end tokens' outputs, the only ones read. When no autograd graph is needed
    (``torch.no_grad``, ``torch.inference_mode``, or a frozen tower) and autocast is off, the other blocks run in
    place in one workspace (:mod:`clip_core.inplace`).
    """

    def __init__(self, config: TextTransformerConfig, embed_dim: int) -> None:
        super().__init__()
        self.config = config
        self.embed_dim = embed_dim
        width = config.width
        self.token_embedding = nn.Embedding(config.vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(config.context_length, width))
        hidden = int(width * config.mlp_ratio)  # as open_clip
        self.blocks = nn.ModuleList(Block(width, config.heads, hidden, config.activation) for _ in range(config.layers))
        self.ln_final = nn.LayerNorm(width, eps=1e-5)
        self.text_projection = nn.Linear(width, embed_dim, bias=False)
        self.init_weights()

    def init_weights(self) -> None:
        """OpenAI's initialisation (normal, widths scaled by depth), as open_clip uses for training from scratch."""
        width, layers = self.config.width, self.config.layers
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        proj_std = width**-0.5 * (2 * layers) ** -0.5
        for block in self.blocks:
            assert isinstance(block, Block)
            nn.init.normal_(block.attn.qkv.weight, std=width**-0.5)
            nn.init.zeros_(block.attn.qkv.bias)
            nn.init.normal_(block.attn.proj.weight, std=proj_std)
            nn.init.zeros_(block.attn.proj.bias)
            nn.init.normal_(block.fc1.weight, std=(2 * width) ** -0.5)
            nn.init.normal_(block.fc2.weight, std=proj_std)
        nn.init.normal_(self.text_projection.weight, std=width**-0.5)

    #: Whether training recomputes each block's activations in the backward pass (see `set_grad_checkpointing`).
    grad_checkpointing: bool = False

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Trade compute for memory in training: with gradients enabled, each block but the last runs under
        ``torch.utils.checkpoint`` (its activations are recomputed in the backward pass, not stored)."""
        self.grad_checkpointing = enable

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.shape[1] > self.config.context_length:
            raise ValueError(f"ids are {ids.shape[1]} long; this tower reads at most {self.config.context_length}")
        if ids.shape[0] == 0:
            return self.text_projection.weight.new_zeros(0, self.embed_dim)
        # int32 ids for the argmax: exact (ids < vocab_size), and an exported graph then needs no int64 ArgMax,
        # which some ONNX Runtime builds lack
        eot = ids.to(torch.int32).argmax(dim=-1)
        # a traced graph keeps every position: the cut's length is data, which would become a constant there
        length = ids.shape[1] if tracing() else int(eot.max()) + 1
        x = self.token_embedding(ids[:, :length]) + self.positional_embedding[:length]
        blocks = cast(list[Block], list(self.blocks))
        if runs_in_place(self, x):  # no autograd graph to record: the same blocks, in place
            blocks_in_place([block.in_place_parts() for block in blocks[:-1]], x)
        else:
            checkpointed = self.grad_checkpointing and self.training and torch.is_grad_enabled()
            for block in blocks[:-1]:
                x = checkpoint(block, x, use_reentrant=False) if checkpointed else block(x)
        pooled = blocks[-1].forward_at(x, eot)  # only the end tokens' features are read from the last block
        return self.text_projection(self.ln_final(pooled))  # type: ignore[no-any-return]

    def forward_intermediates(
        self,
        ids: torch.Tensor,
        indices: Indices = None,
        *,
        stop_early: bool = False,
        normalize_intermediates: bool = False,
        intermediates_only: bool = False,
        output_fmt: str = "NLC",
        output_extra_tokens: bool = False,
    ) -> TowerIntermediates:
        """The blocks' outputs ``[B, L, width]`` at every position (no cut to the longest text), and the features,
        as open_clip's text tower gives them. ``normalize_intermediates`` applies ``ln_final``."""
        if output_fmt != "NLC":
            raise ValueError(f"text intermediates come as NLC only, not {output_fmt!r}")
        if ids.shape[1] > self.config.context_length:
            raise ValueError(f"ids are {ids.shape[1]} long; this tower reads at most {self.config.context_length}")
        blocks = cast(list[Block], list(self.blocks))
        taken, last = take_indices(len(blocks), indices)
        x = self.token_embedding(ids) + self.positional_embedding[: ids.shape[1]]
        outputs: list[torch.Tensor] = []
        for i, block in enumerate(blocks[: last + 1] if stop_early and intermediates_only else blocks):
            x = block(x)
            if i in taken:
                outputs.append(self.ln_final(x) if normalize_intermediates else x)
        features = None
        if not intermediates_only:
            pooled = self.ln_final(x)[torch.arange(ids.shape[0], device=ids.device), ids.argmax(dim=-1)]
            features = self.text_projection(pooled)
        return TowerIntermediates(outputs, features, [] if output_extra_tokens else None)
