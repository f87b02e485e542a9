"""The `modified-resnet` tower: conformance, shapes and channel counts, configuration checks, weight conversion,
dtypes, and the RN cards."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from importlib.resources import files
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import clip_core
from clip_core.testing import TowerConformanceTests
from clip_encoders_resnet import ModifiedResNet, ModifiedResNetConfig
from clip_encoders_resnet.build import convert_openai, openai_names
from clip_encoders_text import TextTransformerConfig

CARDS = (
    "RN50",
    "RN101",
    "RN50x4",
    "RN50x16",
    "RN50x64",
    "RN50-quickgelu",
    "RN101-quickgelu",
    "RN50x4-quickgelu",
    "RN50x16-quickgelu",
    "RN50x64-quickgelu",
)


class TestModifiedResNetConformance(TowerConformanceTests):
    config = ModifiedResNetConfig(image_size=32, layers=(1, 1, 1, 1), width=8)


class TestDeeperModifiedResNetConformance(TowerConformanceTests):
    config = ModifiedResNetConfig(image_size=64, layers=(1, 2, 1, 1), width=16, heads=4)
    embed_dim = 8


@st.composite
def configs(draw: st.DrawFn) -> ModifiedResNetConfig:
    """Small valid configurations: any stem width that is a multiple of 8, any heads dividing the pool width."""
    width = draw(st.sampled_from([8, 16, 24]))
    pool_width = 32 * width
    heads = draw(st.one_of(st.none(), st.sampled_from([h for h in (1, 2, 3, 4, 6, 8, 12, 16) if pool_width % h == 0])))
    data: dict[str, Any] = {
        "image_size": draw(st.sampled_from([32, 64, 96])),
        "layers": draw(st.lists(st.integers(1, 2), min_size=4, max_size=4)),
        "width": width,
    }
    if heads is not None:
        data["heads"] = heads
    return ModifiedResNetConfig.model_validate(data)


def randomize_batch_norms(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random BatchNorm statistics and affine parameters: at initialisation every block's last BatchNorm has zero
    weight, which would hide the residual branches from any comparison."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.BatchNorm2d):
                shape = layer.num_features
                layer.weight.copy_(torch.rand(shape, generator=generator) * 0.8 + 0.2)
                layer.bias.copy_(torch.randn(shape, generator=generator) * 0.1)
                layer.running_mean.copy_(torch.randn(shape, generator=generator) * 0.1)
                layer.running_var.copy_(torch.rand(shape, generator=generator) * 1.5 + 0.5)
    return module


def openai_state(tower: ModifiedResNet) -> dict[str, torch.Tensor]:
    """The tower's weights written in OpenAI's layout, as a whole model's state dict (`visual.` prefix)."""
    names = openai_names(tower.config)
    return {f"visual.{names[key]}": value for key, value in tower.state_dict().items()}


@settings(max_examples=12, deadline=None)
@given(config=configs(), embed_dim=st.integers(1, 40), batch=st.integers(1, 3))
def test_any_small_config_maps_pixels_to_finite_embed_dim_features(
    config: ModifiedResNetConfig, embed_dim: int, batch: int
) -> None:
    """For any valid small configuration, pixels [B, 3, S, S] become finite features [B, embed_dim]."""
    torch.manual_seed(0)
    tower = randomize_batch_norms(clip_core.build_tower(config, embed_dim)).eval()
    with torch.no_grad():
        out = tower(torch.randn(batch, 3, config.image_size, config.image_size))
    assert out.shape == (batch, embed_dim)
    assert torch.isfinite(out).all()


@settings(max_examples=6, deadline=None)
@given(config=configs(), embed_dim=st.integers(2, 40))
def test_normalised_image_embeddings_have_unit_length(config: ModifiedResNetConfig, embed_dim: int) -> None:
    """Through a card, `encode_image(normalize=True)` gives unit vectors for any tower configuration."""
    card = clip_core.get_card(
        {
            "name": "tiny-rn",
            "embed_dim": embed_dim,
            "image": config.model_dump(),
            "text": {"kind": "text-transformer", "width": 32, "layers": 1, "heads": 2, "context_length": 8},
        }
    )
    model = clip_core.create_model(card).eval()
    with torch.no_grad():
        embeds = model.encode_image(torch.randn(3, 3, config.image_size, config.image_size), normalize=True)
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(3), rtol=0, atol=1e-5)


@pytest.mark.parametrize("width", [8, 16, 24, 40, 64, 80, 96, 128])
def test_channel_counts_are_openais_for_every_width(width: int) -> None:
    """For the cards' stem widths and small ones, timm's rounding leaves every channel count as OpenAI's: stem
    width/2, width/2, width; stage i with width * 2^i middle and 4 * width * 2^i output channels; a shortcut
    convolution in each stage's first block only; an attention pool 32 * width wide."""
    layers = (2, 1, 1, 1)
    config = ModifiedResNetConfig(image_size=32, layers=layers, width=width)
    shapes = {key: tuple(value.shape) for key, value in ModifiedResNet(config, 16).state_dict().items()}
    expected = {
        "trunk.stem.conv1.conv.weight": (width // 2, 3, 3, 3),
        "trunk.stem.conv2.conv.weight": (width // 2, width // 2, 3, 3),
        "trunk.stem.conv3.conv.weight": (width, width // 2, 3, 3),
        "attnpool.q_proj.weight": (32 * width, 32 * width),
        "attnpool.c_proj.weight": (16, 32 * width),
        "attnpool.positional_embedding": (2, 32 * width),
    }
    previous = width
    for stage, depth in enumerate(layers):
        mid, out = width * 2**stage, 4 * width * 2**stage
        for block in range(depth):
            prefix = f"trunk.stages.{stage}.{block}"
            expected[f"{prefix}.conv1_1x1.conv.weight"] = (mid, previous if block == 0 else out, 1, 1)
            expected[f"{prefix}.conv2_kxk.conv.weight"] = (mid, mid, 3, 3)
            expected[f"{prefix}.conv3_1x1.conv.weight"] = (out, mid, 1, 1)
        expected[f"trunk.stages.{stage}.0.shortcut.conv.conv.weight"] = (out, previous, 1, 1)
        previous = out
    assert {key: shapes[key] for key in expected} == expected
    shortcuts = {key for key in shapes if key.endswith(".shortcut.conv.conv.weight")}
    assert shortcuts == {f"trunk.stages.{stage}.0.shortcut.conv.conv.weight" for stage in range(4)}


# -- configuration ------------------------------------------------------------------------------------------------
def test_heads_default_to_one_per_64_channels_of_the_pool_and_are_stored() -> None:
    config = ModifiedResNetConfig(layers=(3, 4, 6, 3))
    assert (config.image_size, config.width, config.heads) == (224, 64, 32)
    assert ModifiedResNetConfig.model_validate({"layers": [1, 1, 1, 1], "width": 80}).heads == 40
    assert ModifiedResNetConfig.model_validate({"layers": [1, 1, 1, 1], "width": 96, "heads": None}).heads == 48
    assert ModifiedResNetConfig(layers=(1, 1, 1, 1), width=16, heads=2).model_dump()["heads"] == 2
    assert "heads" not in ModifiedResNetConfig.model_json_schema()["required"]


def card_with_image(image: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "bad-rn",
        "embed_dim": 16,
        "image": {"kind": "modified-resnet", "layers": [1, 1, 1, 1], "width": 8, "image_size": 32, **image},
        "text": {"kind": "text-transformer", "width": 32, "layers": 1, "heads": 2},
    }


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ({"width": 12}, r"image\.width: must be a multiple of 8"),
        ({"width": 0}, r"image\.width: Input should be greater than 0"),
        ({"image_size": 100}, r"image\.image_size: must be a multiple of 32"),
        ({"layers": [3, 4, 6]}, r"image\.layers: needs four block counts, one per stage, got 3"),
        ({"layers": [3, 4, 6, 3, 2]}, r"image\.layers: needs four block counts, one per stage, got 5"),
        ({"layers": [3, 0, 6, 3]}, r"image\.layers\[1\]: Input should be greater than 0"),
        ({"heads": 3}, r"image\.heads: 3 heads do not divide the attention pool's width 256"),
        ({"patch_size": 32}, r"image\.patch_size: Extra inputs are not permitted"),
    ],
)
def test_invalid_configs_name_the_field(image: dict[str, Any], message: str) -> None:
    with pytest.raises(clip_core.CardError, match=message):
        clip_core.get_card(card_with_image(image))


def test_config_is_frozen() -> None:
    config = ModifiedResNetConfig(layers=(1, 1, 1, 1))
    with pytest.raises(ValueError, match="frozen"):
        config.width = 16  # type: ignore[misc]


# -- the module ---------------------------------------------------------------------------------------------------
def test_pixels_of_another_size_are_refused() -> None:
    tower = ModifiedResNet(ModifiedResNetConfig(image_size=64, layers=(1, 1, 1, 1), width=8), 8).eval()
    with pytest.raises(ValueError, match=r"pixels are \(32, 32\); this tower reads 64x64 images"):
        tower(torch.randn(1, 3, 32, 32))


def test_attention_pool_query_is_the_mean_token() -> None:
    """The pool's output equals full multi-head attention over [mean; positions] read at the mean token."""
    torch.manual_seed(0)
    tower = randomize_batch_norms(ModifiedResNet(ModifiedResNetConfig(image_size=64, layers=(1, 1, 1, 1)), 24)).eval()
    pool = tower.attnpool
    features = torch.randn(2, 32 * 64, 2, 2)
    tokens = features.flatten(2).permute(2, 0, 1)
    tokens = torch.cat([tokens.mean(0, keepdim=True), tokens]) + pool.positional_embedding[:, None]
    expected, _ = nn.functional.multi_head_attention_forward(
        tokens,
        tokens,
        tokens,
        embed_dim_to_check=tokens.shape[-1],
        num_heads=pool.heads,
        q_proj_weight=pool.q_proj.weight,
        k_proj_weight=pool.k_proj.weight,
        v_proj_weight=pool.v_proj.weight,
        in_proj_weight=None,
        in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
        bias_k=None,
        bias_v=None,
        add_zero_attn=False,
        dropout_p=0.0,
        out_proj_weight=pool.c_proj.weight,
        out_proj_bias=pool.c_proj.bias,
        use_separate_proj_weight=True,
        need_weights=False,
    )
    with torch.no_grad():
        torch.testing.assert_close(pool(features), expected[0], rtol=0, atol=1e-5 * float(expected.abs().max()))


def test_initialisation_is_openais() -> None:
    """Attention pool: normal weights with std width^-0.5; every bottleneck's last BatchNorm starts at zero."""
    torch.manual_seed(0)
    tower = ModifiedResNet(ModifiedResNetConfig(image_size=32, layers=(2, 1, 1, 1), width=16), 16)
    pool, std = tower.attnpool, (32 * 16) ** -0.5
    for parameter in (pool.positional_embedding, pool.q_proj.weight, pool.k_proj.weight, pool.c_proj.weight):
        assert abs(float(parameter.detach().std()) / std - 1) < 0.1
    last_norms = [value for key, value in tower.state_dict().items() if key.endswith("conv3_1x1.bn.weight")]
    assert len(last_norms) == 5 and all(not value.any() for value in last_norms)


def test_the_trunk_runs_channels_last() -> None:
    tower = ModifiedResNet(ModifiedResNetConfig(image_size=32, layers=(1, 1, 1, 1), width=8), 8)
    weight = tower.trunk.stages[1][0].conv2_kxk.conv.weight
    assert weight.is_contiguous(memory_format=torch.channels_last)


def test_a_bfloat16_model_accepts_float32_pixels() -> None:
    """A model converted with `.to(torch.bfloat16)` embeds float32 pixels, close to the float32 model's output."""
    card = clip_core.get_card(
        {
            "name": "tiny-rn-bf16",
            "embed_dim": 16,
            "image": {"kind": "modified-resnet", "image_size": 64, "layers": [1, 1, 1, 1], "width": 16},
            "text": {"kind": "text-transformer", "width": 32, "layers": 1, "heads": 2, "context_length": 8},
        }
    )
    torch.manual_seed(0)
    model = clip_core.create_model(card).eval()
    randomize_batch_norms(model.visual)
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        reference = model.encode_image(pixels, normalize=True)
        model.to(torch.bfloat16)
        through_model = model.encode_image(pixels, normalize=True)
        tower_alone = model.visual(pixels)
    assert through_model.dtype == tower_alone.dtype == torch.bfloat16
    assert float(torch.cosine_similarity(through_model.float(), reference).min()) > 0.99


# -- weight conversion --------------------------------------------------------------------------------------------
class ReadOnlyState(Mapping[str, torch.Tensor]):
    """A state dict that records the keys read and refuses iteration, as core's wrapper detects unused keys."""

    def __init__(self, state: Mapping[str, torch.Tensor]) -> None:
        self.state, self.read = dict(state), set[str]()

    def __getitem__(self, key: str) -> torch.Tensor:
        self.read.add(key)
        return self.state[key]

    def __contains__(self, key: object) -> bool:
        return key in self.state

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("a converter reads keys by name")

    def __len__(self) -> int:
        raise AssertionError("a converter reads keys by name")


@pytest.mark.parametrize("layers", [(1, 1, 1, 1), (2, 3, 1, 2)])
def test_openai_layout_converts_to_exactly_the_towers_keys_and_reads_every_image_key(layers: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    config = ModifiedResNetConfig(image_size=64, layers=layers, width=8)
    source = randomize_batch_norms(ModifiedResNet(config, 12)).eval()
    other_towers = {"text_projection": torch.zeros(4, 12), "logit_scale": torch.ones(())}
    state = ReadOnlyState({**openai_state(source), **other_towers})
    converted = convert_openai(state, config)
    assert state.read == {key for key in state.state if key.startswith("visual.")}
    target = ModifiedResNet(config, 12).eval()
    target.load_state_dict(converted, strict=True)
    assert converted.keys() == target.state_dict().keys()
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(target(pixels), source(pixels))


def test_missing_batch_norm_counters_are_zero() -> None:
    config = ModifiedResNetConfig(image_size=32, layers=(1, 1, 1, 1), width=8)
    state = {k: v for k, v in openai_state(ModifiedResNet(config, 8)).items() if "num_batches_tracked" not in k}
    converted = convert_openai(state, config)
    counters = [value for key, value in converted.items() if key.endswith("num_batches_tracked")]
    assert len(counters) == 3 + 4 * 4 and all(c.dtype == torch.long and int(c) == 0 for c in counters)


@pytest.mark.parametrize("missing", ["visual.layer3.0.downsample.1.running_var", "visual.attnpool.k_proj.bias"])
def test_a_missing_key_is_named(missing: str) -> None:
    config = ModifiedResNetConfig(image_size=32, layers=(1, 1, 1, 1), width=8)
    state = {k: v for k, v in openai_state(ModifiedResNet(config, 8)).items() if k != missing}
    with pytest.raises(clip_core.CheckpointError, match=f"missing key '{missing}'"):
        convert_openai(state, config)


def test_the_openai_converter_is_registered() -> None:
    assert clip_core.registry.tower_kind("modified-resnet").converters["openai"] is convert_openai


# -- the cards ----------------------------------------------------------------------------------------------------
def test_every_card_file_is_registered_under_its_file_name() -> None:
    shipped = sorted(
        path.name.removesuffix(".json") for path in files("clip_encoders_resnet").joinpath("cards").iterdir()
    )
    assert shipped == sorted(CARDS)
    assert {name for name in clip_core.list_cards() if name.startswith("RN")} == set(CARDS)


@pytest.mark.parametrize("name", CARDS)
def test_cards_validate_and_give_openais_towers(name: str) -> None:
    card = clip_core.get_card(name)
    assert isinstance(card.image, ModifiedResNetConfig)
    assert card.image.heads == card.image.width // 2
    assert card.preprocess.image_size == card.image.image_size
    assert card.tokenizer.kind == "clip-bpe" and card.tokenizer.context_length == 77
    assert isinstance(card.text, TextTransformerConfig)
    assert card.text.activation == ("quick_gelu" if name.endswith("-quickgelu") else "gelu")
    assert card.provenance.paper is not None and "2103.00020" in card.provenance.paper
    if name not in ("RN50x4-quickgelu", "RN50x16-quickgelu", "RN50x64-quickgelu"):  # these tags live on the plain cards
        assert card.provenance.pretrained and card.provenance.pretrained[0].tag == "openai"


@pytest.mark.parametrize("name", ["RN50", "RN101", "RN50x4", "RN50x16", "RN50x64"])
def test_quickgelu_cards_differ_only_in_the_text_activation(name: str) -> None:
    base = json.loads(files("clip_encoders_resnet").joinpath("cards", f"{name}.json").read_text())
    quick = json.loads(files("clip_encoders_resnet").joinpath("cards", f"{name}-quickgelu.json").read_text())
    for card in (base, quick):
        card.pop("name"), card.pop("provenance"), card["text"].pop("activation")
    assert base == quick
