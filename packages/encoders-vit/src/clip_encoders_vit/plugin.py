"""Hook implementations: the `vit` and `timm` tower kinds and the ViT cards."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import clip_core
from clip_encoders_vit.build import build_timm, build_vit, convert_timm_openai, convert_vit_hf, convert_vit_openai
from clip_encoders_vit.model import VitConfig
from clip_encoders_vit.timm_model import TimmTowerConfig

CLIP_PLUGIN_API = "1.0"


@clip_core.hookimpl
def clip_register_towers(register: Any) -> None:
    register(
        kind="vit",
        modality="image",
        config=VitConfig,
        build=build_vit,
        converters={"openai": convert_vit_openai, "hf": convert_vit_hf},
    )
    register(
        kind="timm",
        modality="image",
        config=TimmTowerConfig,
        build=build_timm,
        converters={"openai": convert_timm_openai},
    )


@clip_core.hookimpl
def clip_register_cards(register: Any) -> None:
    for card in sorted(files("clip_encoders_vit").joinpath("cards").iterdir(), key=lambda path: path.name):
        if card.name.endswith(".json"):
            register(card)
