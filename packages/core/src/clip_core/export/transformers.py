"""transformers folders: what ``transformers.CLIPModel.from_pretrained`` and ``CLIPProcessor.from_pretrained`` load,
offline: ``config.json``, ``model.safetensors``, ``preprocessor_config.json`` and the tokenizer's files.

transformers' ``CLIPModel`` is a ViT image tower and a text transformer, so only cards with a ``vit`` image tower and a
``text-transformer`` text tower (and no logit bias) export; ResNet cards are refused. Every setting comes from the
model: widths, depths, heads and MLP widths from the towers' configs, ``hidden_act`` from their activations, the
LayerNorm epsilon from the towers' own LayerNorm modules, image size, mean and std from the card's preprocessing,
``max_position_embeddings`` from its context length, and the start, end and padding ids from the tokenizer kind's
``"hf"`` exporter, which writes the tokenizer files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from clip_core.cards import ModelCard, TowerConfig
from clip_core.durable import unshared_tensors, write_atomically, write_safetensors
from clip_core.errors import ExportError
from clip_core.export.layouts import export_state_dict, export_tokenizer

if TYPE_CHECKING:
    from clip_core.model import ClipModel

__all__ = [
    "PREPROCESSOR_FILE",
    "TRANSFORMERS_CONFIG_FILE",
    "TRANSFORMERS_WEIGHTS_FILE",
    "preprocessor_config",
    "transformers_config",
    "write_transformers",
]

TRANSFORMERS_CONFIG_FILE = "config.json"
TRANSFORMERS_WEIGHTS_FILE = "model.safetensors"
PREPROCESSOR_FILE = "preprocessor_config.json"

#: PIL's resampling filters by name, as ``CLIPImageProcessor.resample`` takes them.
_RESAMPLE = {"bilinear": 2, "bicubic": 3}


def _check_towers(card: ModelCard) -> None:
    image, text = card.image.kind, card.text.kind
    if image == "modified-resnet":
        raise ExportError(
            f"card {card.name!r} has a ResNet image tower and transformers has no ResNet CLIP; export it to "
            "'open_clip' or 'onnx' instead"
        )
    if image != "vit" or text != "text-transformer":
        raise ExportError(
            f"card {card.name!r}: transformers' CLIPModel is a 'vit' image tower and a 'text-transformer' text tower, "
            f"not {image!r} and {text!r}; export it to 'clip-sdk' or 'onnx' instead"
        )
    if card.init_logit_bias is not None:
        raise ExportError(f"card {card.name!r} has a logit bias, which transformers' CLIPModel does not have")


def _layer_norm_eps(tower: nn.Module, name: str) -> float:
    eps = {module.eps for module in tower.modules() if isinstance(module, nn.LayerNorm)}
    if len(eps) != 1:
        raise ExportError(f"the {name} tower's LayerNorms have epsilons {sorted(eps)}; transformers takes one")
    return float(eps.pop())


def _encoder(config: TowerConfig, eps: float, embed_dim: int) -> dict[str, Any]:
    fields = config.model_dump()
    return {
        "hidden_size": fields["width"],
        "intermediate_size": int(fields["width"] * fields["mlp_ratio"]),  # as the towers size their MLPs
        "num_hidden_layers": fields["layers"],
        "num_attention_heads": fields["heads"],
        "hidden_act": fields["activation"],
        "layer_norm_eps": eps,
        "projection_dim": embed_dim,
    }


def transformers_config(model: ClipModel, tokenizer: dict[str, Any]) -> dict[str, Any]:
    """``config.json`` of a transformers ``CLIPModel`` equal to ``model``; ``tokenizer`` holds the ids the text
    config takes from the tokenizer (``bos_token_id``, ``eos_token_id``, ``pad_token_id``).

    :class:`ExportError` for a card transformers has no equivalent of (see the module docstring).
    """
    card = model.card
    _check_towers(card)
    vision = _encoder(card.image, _layer_norm_eps(model.visual, "image"), card.embed_dim)
    vision |= {"image_size": card.preprocess.image_size, "patch_size": card.image.model_dump()["patch_size"]}
    vision |= {"num_channels": 3, "model_type": "clip_vision_model"}
    text = _encoder(card.text, _layer_norm_eps(model.text, "text"), card.embed_dim)
    text |= {
        "max_position_embeddings": card.tokenizer.context_length,
        "vocab_size": card.text.model_dump()["vocab_size"],
    }
    text |= {"model_type": "clip_text_model", **tokenizer}
    return {
        "architectures": ["CLIPModel"],
        "model_type": "clip",
        "projection_dim": card.embed_dim,
        "logit_scale_init_value": card.init_logit_scale,
        "text_config": text,
        "vision_config": vision,
    }


def preprocessor_config(card: ModelCard) -> dict[str, Any]:
    """``preprocessor_config.json``: a ``CLIPImageProcessor`` doing the card's resizing, cropping and normalising
    (:class:`ExportError` for the ``longest`` resize mode, which it cannot do)."""
    preprocess = card.preprocess
    size = preprocess.image_size
    if preprocess.resize_mode == "longest":
        raise ExportError(
            f"card {card.name!r} pads images to a square (resize_mode 'longest'), which transformers' "
            "CLIPImageProcessor cannot do"
        )
    squash = preprocess.resize_mode == "squash"
    return {
        "image_processor_type": "CLIPImageProcessor",
        "processor_class": "CLIPProcessor",
        "do_convert_rgb": True,
        "do_resize": True,
        "size": {"height": size, "width": size} if squash else {"shortest_edge": size},
        "resample": _RESAMPLE[preprocess.interpolation],
        "do_center_crop": not squash,
        "crop_size": {"height": size, "width": size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(preprocess.mean),
        "image_std": list(preprocess.std),
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2) + "\n"
    write_atomically(path, lambda file: file.write(text.encode("utf-8")))


def write_transformers(model: ClipModel, directory: Path) -> list[Path]:
    """Write ``model`` as a transformers ``CLIPModel`` folder into the existing ``directory``; returns the files
    written. :class:`ExportError` (before anything is written) for a card transformers has no equivalent of."""
    card = model.card
    _check_towers(card)
    preprocessor = preprocessor_config(card)
    state = unshared_tensors(export_state_dict(model, "hf"))
    before = set(directory.iterdir())
    tokenizer = export_tokenizer(card, "hf", directory)
    config = transformers_config(model, tokenizer)
    written = sorted(set(directory.iterdir()) - before)
    paths = {
        name: directory / name for name in (TRANSFORMERS_CONFIG_FILE, TRANSFORMERS_WEIGHTS_FILE, PREPROCESSOR_FILE)
    }
    _write_json(paths[TRANSFORMERS_CONFIG_FILE], config)
    _write_json(paths[PREPROCESSOR_FILE], preprocessor)
    write_safetensors(paths[TRANSFORMERS_WEIGHTS_FILE], state, {"format": "pt"})
    return [*paths.values(), *written]
