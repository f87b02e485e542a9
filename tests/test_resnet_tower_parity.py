"""The modified-resnet tower gives open_clip's image features on the same random weights (relative error ≤ 1e-5)
for small configurations that are no card (the cards' parity, image and text, is in test_card_parity.py)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import clip_core
from clip_core.testing import randomize_batch_norms
from clip_encoders_resnet import ModifiedResNetConfig
from clip_encoders_resnet.build import convert_openai

open_clip = pytest.importorskip("open_clip")


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).abs().max() / reference.abs().max())


def our_tower(config: ModifiedResNetConfig, embed_dim: int, state: dict[str, torch.Tensor]) -> nn.Module:
    tower = clip_core.build_tower(config, embed_dim).eval()
    tower.load_state_dict(convert_openai(state, config), strict=True)
    return tower


def test_small_config_matches_open_clip_modified_resnet() -> None:
    config = ModifiedResNetConfig(image_size=64, layers=(1, 2, 1, 1), width=16)
    check_small_config(config, embed_dim=48, seed=0)


@settings(max_examples=10, deadline=None)
@given(
    width=st.sampled_from([8, 16, 24, 40]),
    layers=st.lists(st.integers(1, 2), min_size=4, max_size=4),
    image_size=st.sampled_from([32, 64, 96]),
    heads_per_default=st.sampled_from([1, 2, 4]),
    embed_dim=st.integers(1, 64),
    seed=st.integers(0, 2**16),
)
def test_any_small_config_matches_open_clip_modified_resnet(
    width: int, layers: list[int], image_size: int, heads_per_default: int, embed_dim: int, seed: int
) -> None:
    """For any small configuration (stem width a multiple of 8, any heads dividing the pool), open_clip's weights
    load strictly into our tower and give open_clip's features."""
    heads = max(1, width * 32 // 64 // heads_per_default)
    config = ModifiedResNetConfig(image_size=image_size, layers=tuple(layers), width=width, heads=heads)
    check_small_config(config, embed_dim, seed)


def check_small_config(config: ModifiedResNetConfig, embed_dim: int, seed: int) -> None:
    torch.manual_seed(seed)
    reference = open_clip.modified_resnet.ModifiedResNet(
        layers=list(config.layers),
        output_dim=embed_dim,
        heads=config.heads,
        image_size=config.image_size,
        width=config.width,
    ).eval()
    randomize_batch_norms(reference, seed)
    state = {f"visual.{key}": value for key, value in reference.state_dict().items()}
    tower = our_tower(config, embed_dim, state)
    pixels = torch.randn(2, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        assert relative_error(tower(pixels), reference(pixels)) <= 1e-5


def test_the_converter_names_a_missing_key() -> None:
    config = ModifiedResNetConfig(image_size=32, layers=(1, 1, 1, 1), width=8)
    reference = open_clip.modified_resnet.ModifiedResNet(
        layers=[1, 1, 1, 1], output_dim=8, heads=4, image_size=32, width=8
    )
    state = {f"visual.{k}": v for k, v in reference.state_dict().items() if k != "layer2.0.downsample.0.weight"}
    with pytest.raises(clip_core.CheckpointError, match=r"missing key 'visual\.layer2\.0\.downsample\.0\.weight'"):
        convert_openai(state, config)
