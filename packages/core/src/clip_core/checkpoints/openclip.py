"""open_clip folders: ``open_clip_config.json`` beside ``open_clip_model.safetensors`` or
``open_clip_pytorch_model.bin``, as open_clip's hub repositories hold them and open_clip reads them
(``hf-hub:ORG/NAME``, ``local-dir:PATH``).

``open_clip_config.json`` is ``{"model_cfg": ..., "preprocess_cfg": ...}``: ``model_cfg`` is open_clip's model
configuration (``embed_dim``, ``quick_gelu``, ``vision_cfg``, ``text_cfg``), ``preprocess_cfg`` its preprocessing
(``mean``, ``std``, ``interpolation``, ``resize_mode``). The card follows them: a ``vision_cfg`` whose ``layers``
is a list gives a ``modified-resnet`` tower, an integer a ``vit`` tower (heads = width // ``head_width``, 64 by
default, as open_clip), a ``timm_model_name`` a ``timm`` tower (``timm_pool``, ``timm_proj``, ...); ``text_cfg``
gives a ``text-transformer`` tower; ``quick_gelu`` sets the activation of the transformers. Options this SDK's
towers do not implement (Hugging Face text towers, layer scale, attentional pooling,
other poolings or norms, custom attention blocks, another tokenizer) are refused naming the field, rather than
loaded into a network that would give other numbers. Keys a config leaves out take open_clip's defaults. The
weights are in open_clip's layout and load through the towers' converters.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from clip_core.catalog import validate_card
from clip_core.checkpoints.infer import InferredCard, inferred_name, resolve_card
from clip_core.checkpoints.native import read_json_object, read_safetensors
from clip_core.checkpoints.statedict import read_state_dict
from clip_core.errors import CheckpointError

__all__ = [
    "CONFIG_FILE",
    "WEIGHT_FILES",
    "infer_from_open_clip_config",
    "is_open_clip_directory",
    "open_clip_card_data",
    "read_open_clip_weights",
]

CONFIG_FILE = "open_clip_config.json"
#: Weight files looked for, in this order (open_clip 3.3 prefers the safetensors file too).
WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")

_HEAD_WIDTH = 64
#: Fields that change the network, with the only value this SDK's towers implement (open_clip's default).
_VISION_FIXED: Mapping[str, Any] = {
    "ls_init_value": None,
    "attentional_pool": False,
    "no_ln_pre": False,
    "pos_embed_type": "learnable",
    "final_ln_after_pool": False,
    "pool_type": "tok",
    "act_kwargs": None,
    "norm_kwargs": None,
    "qk_norm": False,
    "scaled_cosine_attn": False,
    "scale_heads": False,
    "scale_attn_inner": False,
    "scale_attn": False,
    "scale_fc": False,
}
_TEXT_FIXED: Mapping[str, Any] = {
    "hf_model_name": None,
    "hf_tokenizer_name": None,
    "tokenizer_mode": None,
    "ls_init_value": None,
    "embed_cls": False,
    "no_causal_mask": False,
    "final_ln_after_pool": False,
    "pool_type": "argmax",
    "proj_bias": False,
    "proj_type": "linear",
    "act_kwargs": None,
    "norm_kwargs": None,
    "qk_norm": False,
    "scaled_cosine_attn": False,
    "scale_heads": False,
    "scale_attn_inner": False,
    "scale_attn": False,
    "scale_fc": False,
}
#: Fields read into the card, or that leave the network as it is (training-time or output options).
_VISION_READ = {"layers", "width", "head_width", "mlp_ratio", "patch_size", "image_size", "timm_model_name"}
_VISION_READ |= {"timm_pool", "timm_proj", "timm_proj_bias", "timm_drop", "timm_drop_path"}
_VISION_FREE = {"patch_dropout", "output_tokens", "block_type", "attn_pooler_queries", "attn_pooler_heads"}
_VISION_FREE |= {"timm_model_pretrained"}  # the file's weights replace whatever timm starts from
_TEXT_READ = {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio"}
_TEXT_FREE = {"tokenizer_kwargs", "pad_id", "eos_id", "output_tokens", "block_type", "hf_model_pretrained"}
_TEXT_FREE |= {"hf_proj_type", "hf_pooler_type"}
_MODEL_READ = {"embed_dim", "quick_gelu", "vision_cfg", "text_cfg", "init_logit_scale", "init_logit_bias"}
_MODEL_FREE = {"custom_text", "cast_dtype"}
_PREPROCESS = {"mean", "std", "interpolation", "resize_mode", "fill_color", "size", "mode"}


def is_open_clip_directory(path: Path) -> bool:
    """Whether ``path`` is a directory holding an ``open_clip_config.json``."""
    return path.is_dir() and (path / CONFIG_FILE).is_file()


def infer_from_open_clip_config(directory: Path) -> InferredCard:
    """The card for the open_clip model in ``directory``, read from its ``open_clip_config.json``: the registered
    card with that architecture and preprocessing if there is one, else a card named
    ``inferred-<directory name>``."""
    config_path = directory / CONFIG_FILE
    config = read_json_object(config_path, "open_clip's configuration")
    model_cfg = config.get("model_cfg")
    preprocess_cfg = config.get("preprocess_cfg", {})
    if not isinstance(model_cfg, Mapping):
        raise CheckpointError(f"{config_path}: model_cfg is missing or not a JSON object")
    if not isinstance(preprocess_cfg, Mapping):
        raise CheckpointError(f"{config_path}: preprocess_cfg is not a JSON object")
    data = open_clip_card_data(model_cfg, preprocess_cfg, config_path)
    found = resolve_card(data, directory, origin=CONFIG_FILE, assumed=None)
    inferred = validate_card(data, f"inferred from {config_path}")
    if found.registered and found.card.preprocess != inferred.preprocess:  # same network, other pixels: keep ours
        return InferredCard(inferred, False, CONFIG_FILE)
    return found


def open_clip_card_data(
    model_cfg: Mapping[str, Any], preprocess_cfg: Mapping[str, Any], source: Path
) -> dict[str, Any]:
    """Card data for open_clip's ``model_cfg`` and ``preprocess_cfg`` (read from ``source``).

    :class:`CheckpointError` naming the field for anything this SDK's towers would not reproduce.
    """
    _check_keys(model_cfg, _MODEL_READ, {}, _MODEL_FREE, "model_cfg", source)
    vision = _section(model_cfg, "vision_cfg", source)
    text = _section(model_cfg, "text_cfg", source)
    _check_keys(vision, _VISION_READ, _VISION_FIXED, _VISION_FREE, "model_cfg.vision_cfg", source)
    _check_keys(text, _TEXT_READ, _TEXT_FIXED, _TEXT_FREE, "model_cfg.text_cfg", source)
    if "embed_dim" not in model_cfg:
        raise CheckpointError(f"{source}: model_cfg.embed_dim is missing")
    activation = "quick_gelu" if model_cfg.get("quick_gelu", False) else "gelu"
    data: dict[str, Any] = {
        "name": inferred_name(source.parent),
        "embed_dim": model_cfg["embed_dim"],
        "image": _image_tower(vision, activation, source),
        "text": {
            "kind": "text-transformer",
            "context_length": text.get("context_length", 77),
            "vocab_size": text.get("vocab_size", 49408),
            "width": text.get("width", 512),
            "layers": text.get("layers", 12),
            "heads": text.get("heads", 8),
            "mlp_ratio": text.get("mlp_ratio", 4.0),
            "activation": activation,
        },
        "preprocess": _preprocess(preprocess_cfg, source),
        "tokenizer": {"kind": "clip-bpe"},
        "provenance": {"notes": f"Read by clip-core from {source.parent.name}/{source.name} (open_clip)."},
    }
    for key in ("init_logit_scale", "init_logit_bias"):
        if model_cfg.get(key) is not None:
            data[key] = model_cfg[key]
    return data


def _section(model_cfg: Mapping[str, Any], name: str, source: Path) -> Mapping[str, Any]:
    section = model_cfg.get(name, {})
    if not isinstance(section, Mapping):
        raise CheckpointError(f"{source}: model_cfg.{name} is not a JSON object")
    return section


def _check_keys(
    section: Mapping[str, Any],
    read: set[str],
    fixed: Mapping[str, Any],
    free: set[str],
    where: str,
    source: Path,
) -> None:
    """Refuse a field set to what the towers do not implement, and an unknown field that is switched on."""
    for key, value in section.items():
        if key in read or key in free:
            continue
        if key in fixed:
            if value != fixed[key]:
                raise CheckpointError(
                    f"{source}: {where}.{key} is {value!r}; clip-sdk's towers implement only {fixed[key]!r} "
                    "(open_clip's default), so this model cannot be loaded as it is"
                )
        elif value not in (None, False, 0, "", [], {}):
            raise CheckpointError(
                f"{source}: {where}.{key} ({value!r}) is an open_clip option clip-sdk does not know; the model "
                "cannot be loaded as it is"
            )


def _image_tower(vision: Mapping[str, Any], activation: str, source: Path) -> dict[str, Any]:
    size = vision.get("image_size", 224)
    if isinstance(size, list):
        if len(size) != 2 or size[0] != size[1]:
            raise CheckpointError(f"{source}: model_cfg.vision_cfg.image_size {size} is not square")
        size = size[0]
    if vision.get("timm_model_name"):
        proj = vision.get("timm_proj", "linear")
        return {
            "kind": "timm",
            "model_name": vision["timm_model_name"],
            "image_size": size,
            "pool": vision.get("timm_pool", "avg"),
            "proj": "classifier" if proj == "" else proj,  # open_clip's empty timm_proj: timm's own head
            "proj_bias": vision.get("timm_proj_bias", False),
            "drop": vision.get("timm_drop", 0.0),
            "drop_path": vision.get("timm_drop_path"),
        }
    layers = vision.get("layers", 12)
    width = vision.get("width", 768)
    head_width = vision.get("head_width", _HEAD_WIDTH)
    if not (isinstance(width, int) and isinstance(head_width, int) and head_width > 0):
        raise CheckpointError(f"{source}: model_cfg.vision_cfg.width and head_width must be integers")
    if isinstance(layers, list):
        return {
            "kind": "modified-resnet",
            "image_size": size,
            "layers": layers,
            "width": width,
            "heads": width * 32 // head_width,
        }
    return {
        "kind": "vit",
        "image_size": size,
        "patch_size": vision.get("patch_size", 16),
        "width": width,
        "layers": layers,
        "heads": max(width // head_width, 1),
        "mlp_ratio": vision.get("mlp_ratio", 4.0),
        "activation": activation,
    }


def _preprocess(preprocess_cfg: Mapping[str, Any], source: Path) -> dict[str, Any]:
    unknown = sorted(set(preprocess_cfg) - _PREPROCESS)
    if unknown:
        raise CheckpointError(f"{source}: preprocess_cfg fields clip-sdk does not know: {', '.join(unknown)}")
    if preprocess_cfg.get("mode", "RGB") != "RGB":
        raise CheckpointError(f"{source}: preprocess_cfg mode {preprocess_cfg['mode']!r}; clip-sdk reads RGB images")
    data = {key: preprocess_cfg.get(key) for key in ("mean", "std", "interpolation", "resize_mode", "fill_color")}
    size = preprocess_cfg.get("size")
    if isinstance(size, list) and len(size) == 2 and size[0] == size[1]:
        size = size[0]
    data["image_size"] = size  # must agree with the image tower's (the card says so if not)
    return {key: value for key, value in data.items() if value is not None}


def read_open_clip_weights(directory: Path) -> dict[str, torch.Tensor]:
    """The weights of the open_clip model in ``directory`` (the first of :data:`WEIGHT_FILES` present), read without
    running code; :class:`CheckpointError` naming the directory if there are none."""
    for name in WEIGHT_FILES:
        path = directory / name
        if path.is_file():
            return read_safetensors(path) if name.endswith(".safetensors") else read_state_dict(path)
    raise CheckpointError(
        f"{directory}: a {CONFIG_FILE} but no weights beside it (looked for {', '.join(WEIGHT_FILES)})"
    )
