"""Card to module, and weights from OpenAI / open_clip and Hugging Face transformers layouts to ours."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from clip_core import CheckpointError
from clip_encoders_text.model import TextTransformer, TextTransformerConfig

__all__ = ["build_text_transformer", "convert_hf", "convert_openai"]

State = Mapping[str, torch.Tensor]


def build_text_transformer(config: TextTransformerConfig, embed_dim: int) -> TextTransformer:
    """Build the text tower a `text-transformer` config describes."""
    return TextTransformer(config, embed_dim)


def _reader(state: State, layout: str) -> Callable[[str], torch.Tensor]:
    def read(key: str) -> torch.Tensor:
        if key not in state:
            raise CheckpointError(f"{layout} text weights: missing key {key!r}")
        return state[key]

    return read


def convert_openai(state: State, config: TextTransformerConfig) -> dict[str, torch.Tensor]:
    """OpenAI / open_clip layout (``token_embedding.weight``, ``transformer.resblocks.N...``, ``ln_final``,
    ``text_projection`` as ``[width, embed_dim]``; optionally under ``text.``) to this tower's state dict."""
    prefix = "text." if "text.token_embedding.weight" in state else ""
    read = _reader(state, "OpenAI/open_clip")
    out = {
        "token_embedding.weight": read(f"{prefix}token_embedding.weight"),
        "positional_embedding": read(f"{prefix}positional_embedding"),
        "ln_final.weight": read(f"{prefix}ln_final.weight"),
        "ln_final.bias": read(f"{prefix}ln_final.bias"),
        "text_projection.weight": read(f"{prefix}text_projection").T.contiguous(),
    }
    for i in range(config.layers):
        src, dst = f"{prefix}transformer.resblocks.{i}.", f"blocks.{i}."
        for ours, theirs in (
            ("norm1", "ln_1"),
            ("attn.qkv", "attn.in_proj"),
            ("attn.proj", "attn.out_proj"),
            ("norm2", "ln_2"),
            ("fc1", "mlp.c_fc"),
            ("fc2", "mlp.c_proj"),
        ):
            joiner = "_" if theirs == "attn.in_proj" else "."
            out[f"{dst}{ours}.weight"] = read(f"{src}{theirs}{joiner}weight")
            out[f"{dst}{ours}.bias"] = read(f"{src}{theirs}{joiner}bias")
    return out


def convert_hf(state: State, config: TextTransformerConfig) -> dict[str, torch.Tensor]:
    """Hugging Face transformers' CLIP layout (``text_model.*``, ``text_projection.weight``) to this tower's."""
    read = _reader(state, "transformers")
    root = "text_model."
    out = {
        "token_embedding.weight": read(f"{root}embeddings.token_embedding.weight"),
        "positional_embedding": read(f"{root}embeddings.position_embedding.weight"),
        "ln_final.weight": read(f"{root}final_layer_norm.weight"),
        "ln_final.bias": read(f"{root}final_layer_norm.bias"),
        "text_projection.weight": read("text_projection.weight"),
    }
    for i in range(config.layers):
        src, dst = f"{root}encoder.layers.{i}.", f"blocks.{i}."
        for part in ("weight", "bias"):
            out[f"{dst}attn.qkv.{part}"] = torch.cat([read(f"{src}self_attn.{p}_proj.{part}") for p in "qkv"])
            for ours, theirs in (
                ("norm1", "layer_norm1"),
                ("attn.proj", "self_attn.out_proj"),
                ("norm2", "layer_norm2"),
                ("fc1", "mlp.fc1"),
                ("fc2", "mlp.fc2"),
            ):
                out[f"{dst}{ours}.{part}"] = read(f"{src}{theirs}.{part}")
    return out
