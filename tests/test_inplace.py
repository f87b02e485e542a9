"""`clip_core.inplace`: pre-norm blocks computed into their input equal the module-by-module computation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from clip_core.inplace import PreNormBlock, Workspace, block_in_place, blocks_in_place, runs_in_place


def make_block(width: int, heads: int, hidden: int, activation: str, causal: bool, head_norm: bool) -> PreNormBlock:
    def linear(n_in: int, n_out: int) -> nn.Linear:
        layer = nn.Linear(n_in, n_out)
        nn.init.normal_(layer.bias, std=0.5)  # non-zero biases, so that where they are added counts
        return layer

    norms = [nn.LayerNorm(width) for _ in range(3)]
    for norm in norms:
        nn.init.normal_(norm.weight, mean=1.0, std=0.2)
        nn.init.normal_(norm.bias, std=0.2)
    return PreNormBlock(
        norms[0],
        linear(width, 3 * width),
        linear(width, width),
        norms[1],
        linear(width, hidden),
        linear(hidden, width),
        heads,
        "quick_gelu" if activation == "quick_gelu" else "gelu",
        causal,
        norms[2] if head_norm else None,
    )


def reference(block: PreNormBlock, x: torch.Tensor) -> torch.Tensor:
    """The block written out module by module, as the towers' own modules compute it."""
    batch, length = x.shape[:2]
    q, k, v = block.qkv(block.norm1(x)).view(batch, length, 3, block.heads, -1).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=block.causal).transpose(1, 2).reshape(x.shape)
    x = x + block.proj(out if block.head_norm is None else block.head_norm(out))
    hidden = block.fc1(block.norm2(x))
    hidden = hidden * torch.sigmoid(1.702 * hidden) if block.activation == "quick_gelu" else F.gelu(hidden)
    return x + block.fc2(hidden)


@settings(max_examples=30, deadline=None)
@given(
    heads=st.integers(1, 4),
    head_width=st.sampled_from([2, 8, 16]),
    hidden=st.integers(1, 70),
    batch=st.integers(1, 3),
    length=st.integers(1, 9),
    activation=st.sampled_from(["gelu", "quick_gelu"]),
    causal=st.booleans(),
    head_norm=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_a_block_in_place_equals_the_module_by_module_block(
    heads: int,
    head_width: int,
    hidden: int,
    batch: int,
    length: int,
    activation: str,
    causal: bool,
    head_norm: bool,
    seed: int,
) -> None:
    torch.manual_seed(seed)
    block = make_block(heads * head_width, heads, hidden, activation, causal, head_norm)
    x = torch.randn(batch, length, heads * head_width)
    with torch.no_grad():
        once = reference(block, x)
        twice = reference(block, once)
        workspace = Workspace(x, hidden, quick_gelu=activation == "quick_gelu")
        block_in_place(block, x, workspace)
        torch.testing.assert_close(x, once, atol=1e-5, rtol=1e-5)
        block_in_place(block, x, workspace)  # one workspace serves block after block
    torch.testing.assert_close(x, twice, atol=1e-5, rtol=1e-5)


def test_blocks_in_place_size_one_workspace_for_blocks_of_any_mlp_width_and_activation() -> None:
    torch.manual_seed(0)
    blocks = [make_block(8, 2, 5, "gelu", True, False), make_block(8, 2, 40, "quick_gelu", True, True)]
    blocks.append(make_block(8, 2, 12, "gelu", True, False))
    x = torch.randn(2, 6, 8)
    with torch.no_grad():
        expected = x
        for block in blocks:
            expected = reference(block, expected)
        blocks_in_place(blocks, x)
        blocks_in_place([], x)  # no blocks: x stays as it is
    torch.testing.assert_close(x, expected, atol=1e-5, rtol=1e-5)


def test_a_workspace_refuses_a_wider_mlp_than_it_was_sized_for() -> None:
    x = torch.randn(2, 3, 8)
    with torch.no_grad(), pytest.raises(ValueError, match="sized for an MLP 16 wide, not 17"):
        block_in_place(make_block(8, 2, 17, "gelu", False, False), x, Workspace(x, 16))


def test_a_quick_gelu_block_needs_a_workspace_with_a_gate() -> None:
    block = make_block(8, 2, 16, "quick_gelu", False, False)
    x = torch.randn(2, 3, 8)
    with torch.no_grad(), pytest.raises(ValueError, match="no QuickGELU gate: create it with quick_gelu=True"):
        block_in_place(block, x, Workspace(x, 16))


def test_blocks_run_in_place_only_where_no_graph_is_recorded_and_autocast_is_off() -> None:
    module = nn.Linear(4, 4)
    x = torch.randn(2, 4)
    assert not runs_in_place(module, x)  # its parameters need gradients
    with torch.no_grad():
        assert runs_in_place(module, x)
    with torch.inference_mode():
        assert runs_in_place(module, x)
    module.requires_grad_(False)  # a frozen module
    assert runs_in_place(module, x)
    assert not runs_in_place(module, x.clone().requires_grad_())  # its input needs gradients
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not runs_in_place(module, x)
        with torch.no_grad():
            assert not runs_in_place(module, x)
