"""`clip_core.converters`: the block key maps towers share, on tiny synthetic state dicts."""

from __future__ import annotations

import pytest
import torch

from clip_core import CheckpointError
from clip_core.converters import TIMM_BLOCK, hf_encoder_layer, key_reader, openai_resblock

PARTS = ("weight", "bias")
OPENAI = ["ln_1", "attn.in_proj", "attn.out_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"]
HF = ["layer_norm1", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"]
HF += ["layer_norm2", "mlp.fc1", "mlp.fc2"]


def numbered(keys: list[str]) -> dict[str, torch.Tensor]:
    """Each key holds a distinct one-element tensor, so that which source went where can be told apart."""
    return {key: torch.tensor([float(i)]) for i, key in enumerate(keys)}


def openai_block(prefix: str) -> dict[str, torch.Tensor]:
    joiner = {"attn.in_proj": "_"}
    return numbered([f"{prefix}{name}{joiner.get(name, '.')}{part}" for name in OPENAI for part in PARTS])


def hf_layer(prefix: str) -> dict[str, torch.Tensor]:
    return numbered([f"{prefix}{name}.{part}" for name in HF for part in PARTS])


def test_timm_block_names_the_parameters_of_timms_block() -> None:
    from timm.models.vision_transformer import Block

    named = {f"{name}.{part}" for name in TIMM_BLOCK.values() for part in PARTS}
    assert named == set(Block(dim=8, num_heads=2, qkv_bias=True).state_dict())


def test_openai_resblock_maps_each_role_onto_the_target_block() -> None:
    state = openai_block("visual.transformer.resblocks.3.")
    out = openai_resblock(key_reader(state, "test"), "visual.transformer.resblocks.3.", "trunk.blocks.3.")
    assert out.keys() == {f"trunk.blocks.3.{name}.{part}" for name in TIMM_BLOCK.values() for part in PARTS}
    source = "visual.transformer.resblocks.3."
    assert out["trunk.blocks.3.attn.qkv.weight"] is state[f"{source}attn.in_proj_weight"]
    assert out["trunk.blocks.3.attn.proj.bias"] is state[f"{source}attn.out_proj.bias"]
    assert out["trunk.blocks.3.norm2.weight"] is state[f"{source}ln_2.weight"]
    assert out["trunk.blocks.3.mlp.fc1.bias"] is state[f"{source}mlp.c_fc.bias"]
    assert out["trunk.blocks.3.mlp.fc2.weight"] is state[f"{source}mlp.c_proj.weight"]


def test_openai_resblock_takes_other_parameter_names() -> None:
    state = openai_block("transformer.resblocks.0.")
    names = {**TIMM_BLOCK, "fc1": "fc1", "fc2": "fc2"}
    out = openai_resblock(key_reader(state, "test"), "transformer.resblocks.0.", "blocks.0.", names)
    assert {"blocks.0.fc1.weight", "blocks.0.fc2.bias"} <= out.keys()
    assert not any(".mlp." in key for key in out)
    assert out["blocks.0.fc1.weight"] is state["transformer.resblocks.0.mlp.c_fc.weight"]


def test_hf_encoder_layer_concatenates_q_k_v_in_that_order() -> None:
    source = "vision_model.encoder.layers.1."
    state = hf_layer(source)
    out = hf_encoder_layer(key_reader(state, "test"), source, "trunk.blocks.1.")
    assert out.keys() == {f"trunk.blocks.1.{name}.{part}" for name in TIMM_BLOCK.values() for part in PARTS}
    for part in PARTS:
        expected = torch.cat([state[f"{source}self_attn.{p}_proj.{part}"] for p in "qkv"])
        assert torch.equal(out[f"trunk.blocks.1.attn.qkv.{part}"], expected)
    assert out["trunk.blocks.1.attn.proj.weight"] is state[f"{source}self_attn.out_proj.weight"]
    assert out["trunk.blocks.1.norm1.bias"] is state[f"{source}layer_norm1.bias"]
    assert out["trunk.blocks.1.mlp.fc2.bias"] is state[f"{source}mlp.fc2.bias"]


def test_a_missing_key_is_named_with_the_description() -> None:
    state = hf_layer("layers.0.")
    del state["layers.0.self_attn.k_proj.bias"]
    read = key_reader(state, "transformers image weights")
    with pytest.raises(
        CheckpointError, match=r"^transformers image weights: missing key 'layers\.0\.self_attn\.k_proj\.bias'$"
    ):
        hf_encoder_layer(read, "layers.0.", "blocks.0.")


def test_block_names_without_every_role_are_refused() -> None:
    state = openai_block("r.")
    with pytest.raises(ValueError, match="roles"):
        openai_resblock(key_reader(state, "test"), "r.", "b.", {"norm1": "norm1"})
