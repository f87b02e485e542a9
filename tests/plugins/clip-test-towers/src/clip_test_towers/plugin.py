"""Hook implementations of the test plugin."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import clip_core
from clip_test_towers.convert import convert_bag_of_words, convert_patch_mean, export_patch_mean
from clip_test_towers.model import BagOfWordsConfig, BagOfWordsTower, PatchMeanConfig, PatchMeanTower
from clip_test_towers.tokenizer import ByteTokenizer

CLIP_PLUGIN_API = "1.0"


@clip_core.hookimpl
def clip_register_towers(register: Any) -> None:
    register(
        kind="patch-mean",
        modality="image",
        config=PatchMeanConfig,
        build=PatchMeanTower,
        converters={"openai": convert_patch_mean},
        exporters={"openai": export_patch_mean},
    )
    register(
        kind="bag-of-words",
        modality="text",
        config=BagOfWordsConfig,
        build=BagOfWordsTower,
        converters={"openai": convert_bag_of_words},
    )


@clip_core.hookimpl
def clip_register_tokenizers(register: Any) -> None:
    register(kind="bytes", build=ByteTokenizer)


@clip_core.hookimpl
def clip_register_cards(register: Any) -> None:
    for name in ("tiny.json", "tiny-wide.yaml", "tiny-long.toml"):
        register(files("clip_test_towers") / "cards" / name)
