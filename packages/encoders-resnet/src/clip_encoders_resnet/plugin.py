"""Hook implementations: the `modified-resnet` tower kind, OpenAI's ResNet cards and their pretrained weights."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

import clip_core
from clip_encoders_resnet.build import build_modified_resnet, convert_openai
from clip_encoders_resnet.config import ModifiedResNetConfig

CLIP_PLUGIN_API = "1.0"


@clip_core.hookimpl
def clip_register_towers(register: Any) -> None:
    register(
        kind="modified-resnet",
        modality="image",
        config=ModifiedResNetConfig,
        build=build_modified_resnet,
        converters={"openai": convert_openai},
    )


@clip_core.hookimpl
def clip_register_cards(register: Any) -> None:
    for card in sorted(files("clip_encoders_resnet").joinpath("cards").iterdir(), key=lambda path: path.name):
        if card.name.endswith(".json"):  # one small file per card, package data
            register(card)


@clip_core.hookimpl
def clip_register_pretrained(register: Any) -> None:
    table = json.loads(files("clip_encoders_resnet").joinpath("pretrained.json").read_text(encoding="utf-8"))
    for card, tags in table["weights"].items():  # package data: {card: {tag: fields of PretrainedWeights}}
        for tag, fields in tags.items():
            register(card=card, tag=tag, **fields)
