"""Cards: validation, error paths, file formats, round trips and the JSON Schema."""

from __future__ import annotations

import json
import math
import pickle
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import clip_core
from clip_core import CardError, ModelCard, registry

SETTINGS = settings(max_examples=25, deadline=None)


@st.composite
def valid_cards(draw: st.DrawFn) -> dict[str, Any]:
    patch = draw(st.integers(1, 8))
    card: dict[str, Any] = {
        "name": draw(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)),
        "embed_dim": draw(st.integers(1, 48)),
        "image": {
            "kind": "patch-mean",
            "patch_size": patch,
            "image_size": patch * draw(st.integers(1, 4)),
            "width": draw(st.integers(2, 32)),
        },
        "text": {
            "kind": "bag-of-words",
            "context_length": draw(st.integers(2, 40)),
            "width": draw(st.integers(2, 32)),
        },
        "tokenizer": {"kind": "bytes"},
    }
    if draw(st.booleans()):
        card["init_logit_bias"] = draw(st.floats(-20, 0))
    return card


@SETTINGS
@given(card=valid_cards(), batch=st.integers(1, 3), texts=st.lists(st.text(max_size=30), min_size=1, max_size=3))
def test_random_valid_cards_build_models_with_the_cards_embedding(
    card: dict[str, Any], batch: int, texts: list[str]
) -> None:
    """Any valid card builds a model whose embeddings have the card's width, and unit length when normalised."""
    model = clip_core.create_model(card).eval()
    size = card["image"]["image_size"]
    ids = clip_core.get_tokenizer(card)(texts)
    with torch.no_grad():
        image = model.encode_image(torch.randn(batch, 3, size, size), normalize=True)
        text = model.encode_text(ids, normalize=True)
        raw = model.encode_text(ids)
        out = model(torch.randn(batch, 3, size, size), ids)
    assert image.shape == (batch, card["embed_dim"])
    assert text.shape == raw.shape == (len(texts), card["embed_dim"])
    torch.testing.assert_close(image.norm(dim=-1), torch.ones(batch))
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(len(texts)))
    assert out.logits_per_image.shape == (batch, len(texts))


INVALID = [
    (("embed_dim",), 0, "embed_dim"),
    (("embed_dim",), "wide", "embed_dim"),
    (("name",), "has space", "name"),
    (("image", "width"), -3, "image.width"),
    (("image", "patch_size"), 1.5, "image.patch_size"),
    (("image", "colour"), "red", "image.colour"),
    (("text", "width"), None, "text.width"),
    (("text", "kind"), "no-such-kind", "text.kind"),
    (("preprocess", "mean"), [0.5, 0.5], "preprocess.mean[2]"),
    (("preprocess", "std"), [1.0, 0.0, 1.0], "preprocess.std[1]"),
    (("preprocess", "resize_mode"), "crop", "preprocess.resize_mode"),
    (("preprocess", "image_size"), 17, "preprocess.image_size"),
    (("tokenizer", "context_length"), 11, "tokenizer.context_length"),
    (("tokenizer", "context_length"), 1, "tokenizer.context_length"),
    (("aliases",), ["ok", "not ok"], "aliases[1]"),
    (("surprise",), 1, "surprise"),
]


@pytest.mark.parametrize(("path", "value", "named"), INVALID, ids=[case[2] for case in INVALID])
def test_invalid_cards_are_refused_naming_the_field(
    tiny_dict: dict[str, Any], path: tuple[str, ...], value: Any, named: str
) -> None:
    target = tiny_dict
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    with pytest.raises(CardError, match=rf"(^|[ ;]){path[0]}") as info:
        clip_core.get_card(tiny_dict)
    assert f"{named}:" in str(info.value)


@SETTINGS
@given(
    card=valid_cards(),
    field=st.sampled_from(["embed_dim", "image.width", "text.width", "image.image_size"]),
    value=st.one_of(st.integers(max_value=0), st.text(alphabet=string.ascii_letters + " ", max_size=3), st.none()),
)
def test_any_invalid_value_is_refused_with_its_path(card: dict[str, Any], field: str, value: Any) -> None:
    """Setting any of these fields to a non-positive, textual or missing value is refused, naming that field."""
    section, _, key = field.rpartition(".")
    (card[section] if section else card)[key] = value
    with pytest.raises(CardError) as info:
        clip_core.get_card(card)
    assert f"{field}:" in str(info.value)


def test_tower_kind_must_match_its_modality(tiny_dict: dict[str, Any]) -> None:
    tiny_dict["image"] = tiny_dict["text"]
    with pytest.raises(CardError, match="'bag-of-words' is a text tower; `image` needs an image tower"):
        clip_core.get_card(tiny_dict)


@pytest.fixture
def without_image_towers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The registry as if clip-encoders-vit and clip-encoders-resnet were not installed."""
    monkeypatch.setenv("CLIP_DISABLED_PLUGINS", "vit,resnet")
    registry.reload()
    yield
    monkeypatch.undo()
    registry.reload()


@pytest.mark.usefixtures("without_image_towers")
def test_unknown_kind_names_the_package_that_provides_it(tiny_dict: dict[str, Any]) -> None:
    tiny_dict["image"] = {"kind": "vit", "image_size": 224}
    with pytest.raises(CardError, match=r"image\.kind: unknown tower kind 'vit'.*pip install clip-encoders-vit"):
        clip_core.get_card(tiny_dict)


def test_unknown_card_name_suggests_close_names() -> None:
    with pytest.raises(CardError, match="did you mean 'tiny'"):
        clip_core.get_card("tiny-x")


@pytest.mark.usefixtures("without_image_towers")
def test_openai_names_point_to_the_encoder_packages() -> None:
    with pytest.raises(CardError, match="clip-encoders-resnet"):
        clip_core.get_card("RN50x4")


def test_card_loads_by_name_alias_dict_and_instance() -> None:
    card = clip_core.get_card("tiny")
    assert clip_core.get_card("Tiny/8") == card
    assert clip_core.get_card(card.model_dump()) == card
    assert clip_core.get_card(card) is card


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml", ".toml"])
def test_card_files_load_in_every_format(tmp_path: Path, tiny_dict: dict[str, Any], suffix: str) -> None:
    path = tmp_path / f"card{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(tiny_dict))
    elif suffix == ".toml":
        image, text = tiny_dict["image"], tiny_dict["text"]
        path.write_text(
            f'name = "{tiny_dict["name"]}"\nembed_dim = {tiny_dict["embed_dim"]}\n[image]\n'
            + "".join(f"{k} = {json.dumps(v)}\n" for k, v in image.items())
            + "[text]\n"
            + "".join(f"{k} = {json.dumps(v)}\n" for k, v in text.items())
            + '[tokenizer]\nkind = "bytes"\n'
        )
    else:
        path.write_text(yaml.safe_dump(tiny_dict))
    assert clip_core.get_card(path) == clip_core.get_card(tiny_dict)
    assert clip_core.get_card(str(path)).name == "tiny-dict"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("card.json", "{not json", "not valid JSON"),
        ("card.yaml", "name: [unclosed", "not valid YAML"),
        ("card.toml", "name = ", "not valid TOML"),
        ("card.json", "[1, 2]", "holds a mapping"),
        ("card.txt", "{}", "must end in one of"),
    ],
)
def test_unreadable_card_files_name_the_file(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(CardError, match=message) as info:
        clip_core.get_card(path)
    assert str(path) in str(info.value)


def test_missing_card_file_is_a_card_error(tmp_path: Path) -> None:
    with pytest.raises(CardError, match="no such card file"):
        clip_core.get_card(tmp_path / "absent.yaml")


@SETTINGS
@given(card=valid_cards())
def test_json_round_trip_gives_an_equal_card(card: dict[str, Any]) -> None:
    """model_dump_json() of any valid card validates back to an equal card, and pickling preserves it too."""
    validated = clip_core.get_card(card)
    assert ModelCard.model_validate_json(validated.model_dump_json()) == validated
    assert clip_core.get_card(json.loads(validated.model_dump_json())) == validated
    assert pickle.loads(pickle.dumps(validated)) == validated


def test_defaults_follow_openai() -> None:
    card = clip_core.get_card("tiny")
    assert card.init_logit_scale == pytest.approx(math.log(1 / 0.07))
    assert card.preprocess.mean == (0.48145466, 0.4578275, 0.40821073)
    assert card.preprocess.std == (0.26862954, 0.26130258, 0.27577711)
    assert (card.preprocess.interpolation, card.preprocess.resize_mode) == ("bicubic", "shortest")
    assert card.preprocess.image_size == card.image.image_size  # type: ignore[attr-defined]
    assert card.tokenizer.context_length == card.text.context_length  # type: ignore[attr-defined]


def test_cards_are_frozen() -> None:
    card = clip_core.get_card("tiny")
    with pytest.raises(ValueError, match="frozen"):
        card.embed_dim = 3  # type: ignore[misc]


def test_json_schema_offers_every_installed_tower_kind() -> None:
    schema = clip_core.card_json_schema()
    text = json.dumps(schema)
    assert '"patch-mean"' in text and '"bag-of-words"' in text
    assert set(schema["required"]) >= {"name", "embed_dim", "image", "text"}
    assert all("description" in prop for prop in schema["properties"].values())


def test_sections_follow_tower_defaults_when_not_given() -> None:
    """A text tower relying on its own default context length gives the tokenizer that length, not 77."""
    card = clip_core.get_card(
        {
            "name": "d",
            "embed_dim": 4,
            "image": {"kind": "patch-mean", "image_size": 8, "patch_size": 4, "width": 4},
            "text": {"kind": "bag-of-words", "width": 4},
            "tokenizer": {"kind": "bytes"},
        }
    )
    assert card.tokenizer.context_length == 32 == card.text.context_length  # type: ignore[attr-defined]
    assert card.preprocess.image_size == 8
    assert clip_core.get_card(card.model_dump()) == card
