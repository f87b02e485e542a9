"""Hook implementations: the `vit` and `timm` tower kinds, the ViT cards and their pretrained weights."""

from __future__ import annotations

from typing import Any

import clip_core
from clip_core.cardfiles import package_cards
from clip_core.hub import package_pretrained
from clip_encoders_vit.build import (
    build_timm,
    build_vit,
    convert_timm_openai,
    convert_vit_hf,
    convert_vit_openai,
    export_timm_openai,
    export_vit_hf,
    export_vit_openai,
)
from clip_encoders_vit.config import TimmTowerConfig, VitConfig

CLIP_PLUGIN_API = "1.0"


@clip_core.hookimpl
def clip_register_towers(register: Any) -> None:
    register(
        kind="vit",
        modality="image",
        config=VitConfig,
        build=build_vit,
        converters={"openai": convert_vit_openai, "hf": convert_vit_hf},
        exporters={"openai": export_vit_openai, "hf": export_vit_hf},
    )
    register(
        kind="timm",
        modality="image",
        config=TimmTowerConfig,
        build=build_timm,
        converters={"openai": convert_timm_openai},
        exporters={"openai": export_timm_openai},
    )


@clip_core.hookimpl
def clip_register_cards(register: Any) -> None:
    for card in package_cards("clip_encoders_vit"):  # one small file per card, package data
        register(card)


@clip_core.hookimpl
def clip_register_pretrained(register: Any) -> None:
    for entry in package_pretrained("clip_encoders_vit"):  # package data: {card: {tag: fields}}
        register(**entry)
