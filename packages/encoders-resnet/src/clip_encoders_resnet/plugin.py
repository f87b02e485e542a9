"""Hook implementations: the `modified-resnet` tower kind, OpenAI's ResNet cards and their pretrained weights."""

from __future__ import annotations

from typing import Any

import clip_core
from clip_core.cardfiles import package_cards
from clip_core.hub import package_pretrained
from clip_encoders_resnet.build import build_modified_resnet, convert_openai, export_openai
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
        exporters={"openai": export_openai},
    )


@clip_core.hookimpl
def clip_register_cards(register: Any) -> None:
    for card in package_cards("clip_encoders_resnet"):  # one small file per card, package data
        register(card)


@clip_core.hookimpl
def clip_register_pretrained(register: Any) -> None:
    for entry in package_pretrained("clip_encoders_resnet"):  # package data: {card: {tag: fields}}
        register(**entry)
