"""Hook implementations: the `modified-resnet` tower kind and OpenAI's ResNet cards."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import clip_core
from clip_encoders_resnet.build import build_modified_resnet, convert_openai
from clip_encoders_resnet.model import ModifiedResNetConfig

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
