"""transformers ``CLIPModel`` directories: ``config.json`` beside ``model.safetensors`` or ``pytorch_model.bin`` (or
their sharded ``*.index.json`` forms), as ``CLIPModel.save_pretrained`` writes them and the Hugging Face hub holds
them.

The card comes from ``config.json``: ``projection_dim`` is the embedding width, ``logit_scale_init_value`` the
initial logit scale; ``vision_config`` gives a ``vit`` tower and ``text_config`` a ``text-transformer`` tower
(``hidden_size`` → width, ``num_hidden_layers`` → layers, ``num_attention_heads`` → heads, ``intermediate_size`` →
MLP ratio, ``hidden_act`` → activation, ``image_size``, ``patch_size``, ``max_position_embeddings`` → context
length, ``vocab_size``). Keys a config leaves out take transformers' defaults. Weights load through the towers'
``"hf"`` converters. Other model types (SigLIP, CLIPSeg, a lone vision or text model, ...) are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from clip_core.checkpoints.infer import InferredCard, inferred_name, mlp_ratio, resolve_card
from clip_core.checkpoints.native import read_json_object, read_safetensors
from clip_core.checkpoints.statedict import read_state_dict
from clip_core.checkpoints.strict import listing
from clip_core.errors import CheckpointError

__all__ = ["CONFIG_FILE", "WEIGHT_FILES", "hf_card_data", "infer_from_hf_config", "is_hf_directory", "read_hf_weights"]

CONFIG_FILE = "config.json"
#: Weight files looked for, in this order.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)

#: transformers' ``CLIPVisionConfig`` / ``CLIPTextConfig`` / ``CLIPConfig`` defaults, for keys a config.json omits.
_VISION_DEFAULTS: Mapping[str, Any] = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "image_size": 224,
    "patch_size": 32,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}
_TEXT_DEFAULTS: Mapping[str, Any] = {
    "hidden_size": 512,
    "intermediate_size": 2048,
    "num_hidden_layers": 12,
    "num_attention_heads": 8,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}
_PROJECTION_DIM = 512
_LOGIT_SCALE = 2.6592
_ACTIVATIONS = ("gelu", "quick_gelu")
_LAYER_NORM_EPS = 1e-5


def is_hf_directory(path: Path) -> bool:
    """Whether ``path`` is a directory holding a transformers ``config.json``."""
    return path.is_dir() and (path / CONFIG_FILE).is_file()


def infer_from_hf_config(directory: Path) -> InferredCard:
    """The card for the transformers ``CLIPModel`` in ``directory``, read from its ``config.json``: the registered
    card with that architecture if there is one, else a card named ``inferred-<directory name>``."""
    config_path = directory / CONFIG_FILE
    config = read_json_object(config_path, "the configuration")
    data = hf_card_data(config, config_path)
    return resolve_card(data, directory, origin=f"{config_path.name}", assumed=None)


def hf_card_data(config: Mapping[str, Any], source: Path) -> dict[str, Any]:
    """Card data for a transformers ``CLIPConfig`` (a parsed ``config.json`` read from ``source``).

    :class:`CheckpointError` for another model type, an activation the towers do not have, or a LayerNorm epsilon
    other than OpenAI's 1e-5.
    """
    model_type = config.get("model_type")
    if model_type != "clip":
        raise CheckpointError(
            f"{source}: model_type {model_type!r} is not transformers' CLIP; clip-core reads CLIPModel directories "
            "(model_type 'clip') only"
        )
    architectures = config.get("architectures")
    if isinstance(architectures, list) and architectures and "CLIPModel" not in architectures:
        raise CheckpointError(
            f"{source}: architectures {architectures} hold no CLIPModel; clip-core reads CLIPModel (both towers) only"
        )
    vision = _sub_config(config, "vision_config", _VISION_DEFAULTS, source)
    text = _sub_config(config, "text_config", _TEXT_DEFAULTS, source)
    return {
        "name": inferred_name(source.parent),
        "embed_dim": config.get("projection_dim", _PROJECTION_DIM),
        "image": {
            "kind": "vit",
            "image_size": vision["image_size"],
            "patch_size": vision["patch_size"],
            "width": vision["hidden_size"],
            "layers": vision["num_hidden_layers"],
            "heads": vision["num_attention_heads"],
            "mlp_ratio": _ratio(vision, "vision_config", source),
            "activation": vision["hidden_act"],
        },
        "text": {
            "kind": "text-transformer",
            "context_length": text["max_position_embeddings"],
            "vocab_size": text["vocab_size"],
            "width": text["hidden_size"],
            "layers": text["num_hidden_layers"],
            "heads": text["num_attention_heads"],
            "mlp_ratio": _ratio(text, "text_config", source),
            "activation": text["hidden_act"],
        },
        "tokenizer": {"kind": "clip-bpe"},
        "init_logit_scale": config.get("logit_scale_init_value", _LOGIT_SCALE),
        "provenance": {
            "notes": f"Inferred by clip-core from {source.parent.name}/{source.name} (transformers CLIPModel)."
        },
    }


def _sub_config(config: Mapping[str, Any], name: str, defaults: Mapping[str, Any], source: Path) -> dict[str, Any]:
    """A tower's section with transformers' defaults filled in (a legacy ``<name>_dict`` overrides, as there)."""
    sub = dict(defaults)
    for key in (name, f"{name}_dict"):
        given = config.get(key)
        if isinstance(given, Mapping):
            sub.update(given)
        elif given is not None:
            raise CheckpointError(f"{source}: {key} is not a JSON object")
    if sub["hidden_act"] not in _ACTIVATIONS:
        raise CheckpointError(
            f"{source}: {name}.hidden_act {sub['hidden_act']!r} is not one of the towers' activations "
            f"({', '.join(_ACTIVATIONS)})"
        )
    eps = sub["layer_norm_eps"]
    if not isinstance(eps, (int, float)) or abs(eps - _LAYER_NORM_EPS) > 1e-12:
        raise CheckpointError(
            f"{source}: {name}.layer_norm_eps is {eps!r}; clip-sdk's towers use OpenAI's 1e-5, so this model would "
            "give other numbers"
        )
    return sub


def _ratio(sub: Mapping[str, Any], name: str, source: Path) -> float:
    hidden, width = sub["intermediate_size"], sub["hidden_size"]
    if not (isinstance(hidden, int) and isinstance(width, int) and hidden > 0 and width > 0):
        raise CheckpointError(f"{source}: {name}.intermediate_size and hidden_size must be positive integers")
    return mlp_ratio(hidden, width)


def read_hf_weights(directory: Path) -> dict[str, torch.Tensor]:
    """The weights of the transformers model in ``directory`` (the first of :data:`WEIGHT_FILES` present), read
    without running code; :class:`CheckpointError` naming the directory if there are none, or the file if one is
    unreadable."""
    for name in WEIGHT_FILES:
        path = directory / name
        if not path.is_file():
            continue
        read: Callable[[Path], dict[str, torch.Tensor]] = (
            read_safetensors if name.startswith("model.safetensors") else read_state_dict
        )
        return _read_shards(path, read) if name.endswith(".index.json") else read(path)
    raise CheckpointError(
        f"{directory}: a {CONFIG_FILE} but no weights beside it (looked for {', '.join(WEIGHT_FILES)})"
    )


def _read_shards(index: Path, read: Callable[[Path], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    weight_map = read_json_object(index, "the shard index").get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index}: no weight_map")
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(map(str, weight_map.values()))):
        if Path(shard).name != shard or shard in ("", ".", ".."):
            raise CheckpointError(f"{index}: shard {shard!r} is not a file name in {index.parent}")
        state.update(read(index.parent / shard))
    missing = weight_map.keys() - state.keys()
    if missing:
        raise CheckpointError(f"{index}: keys its weight_map lists are in no shard: {listing(missing)}")
    return state
