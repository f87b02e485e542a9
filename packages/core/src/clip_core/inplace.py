"""Pre-norm transformer blocks computed in place, for towers' forward passes that record no autograd graph.

A pre-norm block is ``x = x + proj(attention(qkv(norm1(x))))``, then ``x = x + fc2(act(fc1(norm2(x))))``: CLIP's
blocks in both towers. Computed module by module, it allocates about seven activations per block; on CPU, the page
faults of freshly allocated memory cost up to a tenth of a ViT's forward pass. :func:`block_in_place` computes the
same block from the same modules into ``x`` itself: the residual sums are accumulated by the matrix products
(``addmm_``) and every other intermediate lives in one :class:`Workspace` that all blocks of the pass share.

Use it only when :func:`runs_in_place` says so: when no graph is needed (``torch.no_grad``,
``torch.inference_mode``, or a frozen tower fed inputs that need no gradient), since it overwrites ``x``, and
outside autocast, which it would not follow, and not while a graph is being traced or exported (:func:`tracing`),
which must record the module-by-module operators. The results equal the module-by-module ones up to float rounding
(the bias of each residual branch is added before its product rather than after).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PreNormBlock", "Workspace", "block_in_place", "blocks_in_place", "runs_in_place", "tracing"]

try:  # the in-place erf GELU, as an ATen operator (torch has no public Python name for it)
    _gelu_: Any = torch.ops.aten.gelu_
except (AttributeError, RuntimeError):  # pragma: no cover - a torch without it
    _gelu_ = None


_jit_is_tracing: Callable[[], bool] = torch.jit.is_tracing  # type: ignore[attr-defined]
_exporting: Callable[[], bool] = getattr(torch.compiler, "is_exporting", lambda: False)  # torch >= 2.5


def tracing() -> bool:
    """Whether the forward pass running now is being recorded as a graph (``torch.jit.trace``, ``torch.export``
    or ``torch.onnx.export``) rather than computed: towers then take their plain module-by-module path and keep
    every shape symbolic (no data-dependent cuts), so that the graph holds for any batch and length."""
    if _jit_is_tracing() or _exporting():
        return True
    onnx = sys.modules.get("torch.onnx")  # not imported, then not exporting (and importing it takes a second)
    return onnx is not None and bool(onnx.is_in_onnx_export())


def runs_in_place(module: nn.Module, *inputs: torch.Tensor) -> bool:
    """Whether ``module`` may compute its blocks with :func:`block_in_place` on these inputs: no autograd graph
    would be recorded (gradients are disabled, or neither its parameters nor the inputs require them), autocast
    is off for the inputs' device (in-place and ``out=`` operations do not autocast, so a frozen tower in a bf16
    autocast training step keeps its module-by-module forward, which does) and no graph is being traced
    (:func:`tracing`)."""
    if tracing():
        return False
    if torch.is_grad_enabled() and (
        any(x.requires_grad for x in inputs) or any(p.requires_grad for p in module.parameters())
    ):
        return False
    return not any(_autocast_enabled(x.device.type) for x in inputs)


def _autocast_enabled(device_type: str) -> bool:
    try:
        return bool(torch.is_autocast_enabled(device_type))  # torch >= 2.4
    except TypeError:  # pragma: no cover - older torch: one flag per device type
        cpu = torch.is_autocast_cpu_enabled()  # type: ignore[attr-defined,unused-ignore]
        return bool(cpu if device_type == "cpu" else torch.is_autocast_enabled())


@dataclass(frozen=True)
class PreNormBlock:
    """The modules of one pre-norm block (see the module's docstring), as a tower holds them."""

    norm1: nn.Module
    qkv: nn.Linear  #: the fused query, key and value projection, ``[3 * width, width]`` (q, k, v in that order)
    proj: nn.Linear  #: the attention output projection
    norm2: nn.Module
    fc1: nn.Linear
    fc2: nn.Linear
    heads: int
    activation: Literal["gelu", "quick_gelu"] = "gelu"  #: erf GELU, or OpenAI's x * sigmoid(1.702 x)
    causal: bool = False  #: whether each position attends only to itself and those before it
    head_norm: nn.Module | None = None  #: a norm applied to the heads' concatenated output before ``proj``


class Workspace:
    """Scratch matrices for :func:`block_in_place`, for activations ``x`` of shape ``[B, L, width]`` and an MLP
    ``hidden`` wide: the QKV projection and the MLP's hidden activations take turns in one region, the attention
    output has its own, and QuickGELU's gate a third."""

    def __init__(self, x: torch.Tensor, hidden: int, quick_gelu: bool = False) -> None:
        batch, length, width = x.shape
        self.rows, self.width, self.hidden = batch * length, width, hidden
        self._shared = max(3 * width, hidden)
        self.memory = x.new_empty(self.rows * (self._shared + width + (hidden if quick_gelu else 0)))

    def _matrix(self, start: int, columns: int) -> torch.Tensor:
        """A ``[rows, columns]`` view of the workspace from its row-block ``start`` (in columns) on."""
        offset = self.rows * start
        return self.memory[offset : offset + self.rows * columns].view(self.rows, columns)

    def qkv(self) -> torch.Tensor:
        return self._matrix(0, 3 * self.width)

    def hidden_activations(self, columns: int) -> torch.Tensor:
        """The MLP's hidden activations of a block ``columns`` wide (at most the workspace's ``hidden``)."""
        if columns > self.hidden:
            raise ValueError(f"this workspace was sized for an MLP {self.hidden} wide, not {columns}")
        return self._matrix(0, columns)

    def attention_output(self) -> torch.Tensor:
        return self._matrix(self._shared, self.width)

    def gate(self, columns: int) -> torch.Tensor:
        """QuickGELU's gate for a hidden activation ``columns`` wide."""
        if self.memory.numel() < self.rows * (self._shared + self.width + self.hidden):
            raise ValueError("this workspace has no QuickGELU gate: create it with quick_gelu=True")
        if columns > self.hidden:
            raise ValueError(f"this workspace was sized for an MLP {self.hidden} wide, not {columns}")
        return self._matrix(self._shared + self.width, columns)


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


def block_in_place(block: PreNormBlock, x: torch.Tensor, workspace: Workspace) -> None:
    """``x = block(x)`` for activations ``[B, L, width]`` (contiguous), written into ``x``; no autograd."""
    batch, length, width = x.shape
    head = width // block.heads
    flat = x.view(batch * length, width)
    qkv = _linear_into(block.qkv, block.norm1(flat), workspace.qkv())
    q, k, v = qkv.view(batch, length, 3, block.heads, head).permute(2, 0, 3, 1, 4)
    out = workspace.attention_output()
    attended = F.scaled_dot_product_attention(q, k, v, is_causal=block.causal)
    out.view(batch, length, block.heads, head).copy_(attended.transpose(1, 2))
    _add_linear_(flat, block.proj, out if block.head_norm is None else block.head_norm(out))
    columns = block.fc1.out_features
    hidden = _linear_into(block.fc1, block.norm2(flat), workspace.hidden_activations(columns))
    if block.activation == "quick_gelu":  # x * sigmoid(1.702 * x), as OpenAI's QuickGELU, without allocating
        hidden.mul_(torch.mul(hidden, 1.702, out=workspace.gate(columns)).sigmoid_())
    elif _gelu_ is not None:
        _gelu_(hidden)
    else:  # pragma: no cover
        hidden.copy_(F.gelu(hidden))
    _add_linear_(flat, block.fc2, hidden)


def blocks_in_place(blocks: Sequence[PreNormBlock], x: torch.Tensor) -> None:
    """``x = block(x)`` for each of ``blocks`` in turn, written into ``x``, through one :class:`Workspace` sized
    for all of them; no autograd."""
    if not blocks:
        return
    hidden = max(block.fc1.out_features for block in blocks)
    workspace = Workspace(x, hidden, any(block.activation == "quick_gelu" for block in blocks))
    for block in blocks:
        block_in_place(block, x, workspace)
