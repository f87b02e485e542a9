"""Hook implementations: the `text-transformer` tower kind and the `clip-bpe` tokenizer kind."""

from __future__ import annotations

from typing import Any

import clip_core
from clip_encoders_text.build import build_text_transformer, convert_hf, convert_openai, export_hf, export_openai
from clip_encoders_text.layouts import export_hf_tokenizer, export_open_clip_tokenizer
from clip_encoders_text.model import TextTransformerConfig
from clip_encoders_text.tokenizer import ClipBpeTokenizer

CLIP_PLUGIN_API = "1.0"


@clip_core.hookimpl
def clip_register_towers(register: Any) -> None:
    register(
        kind="text-transformer",
        modality="text",
        config=TextTransformerConfig,
        build=build_text_transformer,
        converters={"openai": convert_openai, "hf": convert_hf},
        exporters={"openai": export_openai, "hf": export_hf},
    )


@clip_core.hookimpl
def clip_register_tokenizers(register: Any) -> None:
    register(
        kind="clip-bpe",
        build=ClipBpeTokenizer,
        exporters={"openai": export_open_clip_tokenizer, "hf": export_hf_tokenizer},
    )
