"""open_clip folders: ``open_clip_config.json`` and ``open_clip_model.safetensors``, as open_clip ≥ 3.0 loads them with
``open_clip.create_model_and_transforms("local-dir:PATH")`` (and from the hub as ``hf-hub:ORG/NAME``).

The configuration is open_clip's model config (``embed_dim``, ``quick_gelu``, ``vision_cfg``, ``text_cfg``) beside its
preprocessing (``preprocess_cfg``), mapped from the card by :func:`open_clip_model_cfg` and
:func:`open_clip_preprocess_cfg`; the weights are the towers' ``"openai"`` exporters' (open_clip keeps OpenAI's
layout). open_clip tokenizes with its own BPE, which is clip-bpe's; the tokenizer kind's ``"openai"`` exporter says
so (or adds its own ``text_cfg`` settings).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clip_core.cards import ModelCard, TowerConfig
from clip_core.durable import unshared_tensors, write_atomically, write_safetensors
from clip_core.errors import ExportError
from clip_core.export.layouts import export_state_dict, export_tokenizer

if TYPE_CHECKING:
    from clip_core.model import ClipModel

__all__ = [
    "OPEN_CLIP_CONFIG_FILE",
    "OPEN_CLIP_FILES",
    "OPEN_CLIP_WEIGHTS_FILE",
    "open_clip_model_cfg",
    "open_clip_preprocess_cfg",
    "write_open_clip",
]

OPEN_CLIP_CONFIG_FILE = "open_clip_config.json"
OPEN_CLIP_WEIGHTS_FILE = "open_clip_model.safetensors"
#: The files :func:`write_open_clip` writes.
OPEN_CLIP_FILES = (OPEN_CLIP_CONFIG_FILE, OPEN_CLIP_WEIGHTS_FILE)

#: This SDK's timm tower projections as open_clip's ``timm_proj`` (an empty one is timm's own classifier head).
_TIMM_PROJ = {"linear": "linear", "mlp": "mlp", "classifier": ""}


def _vit_cfg(config: TowerConfig) -> dict[str, Any]:
    fields = config.model_dump()
    width, heads = fields["width"], fields["heads"]
    return {
        "image_size": fields["image_size"],
        "layers": fields["layers"],
        "width": width,
        "head_width": width // heads,
        "mlp_ratio": fields["mlp_ratio"],
        "patch_size": fields["patch_size"],
    }


def _modified_resnet_cfg(config: TowerConfig) -> dict[str, Any]:
    fields = config.model_dump()
    width, heads = fields["width"], fields["heads"]
    return {
        "image_size": fields["image_size"],
        "layers": list(fields["layers"]),
        "width": width,
        "head_width": width * 32 // heads,  # open_clip: attention-pool heads = width * 32 // head_width
        "patch_size": None,
    }


def _timm_cfg(config: TowerConfig) -> dict[str, Any]:
    fields = config.model_dump()
    proj = fields["proj"]
    if proj not in _TIMM_PROJ or fields["model_args"]:
        raise ExportError(
            f"open_clip's timm towers have no equivalent of proj {proj!r} or model_args "
            f"{fields['model_args']!r} (it knows proj 'linear', 'mlp' and timm's classifier, and no model_args)"
        )
    return {
        "image_size": fields["image_size"],
        "timm_model_name": fields["model_name"],
        "timm_model_pretrained": False,
        "timm_pool": fields["pool"],
        "timm_proj": _TIMM_PROJ[proj],
        "timm_proj_bias": fields["proj_bias"],
        "timm_drop": fields["drop"],
        "timm_drop_path": fields["drop_path"],
    }


def _text_transformer_cfg(config: TowerConfig) -> dict[str, Any]:
    fields = config.model_dump()
    return {
        "context_length": fields["context_length"],
        "vocab_size": fields["vocab_size"],
        "width": fields["width"],
        "heads": fields["heads"],
        "layers": fields["layers"],
        "mlp_ratio": fields["mlp_ratio"],
    }


#: Tower kinds open_clip has an equivalent of, and their configs in open_clip's terms.
_VISION_CFGS: dict[str, Callable[[TowerConfig], dict[str, Any]]] = {
    "vit": _vit_cfg,
    "modified-resnet": _modified_resnet_cfg,
    "timm": _timm_cfg,
}
_TEXT_CFGS: dict[str, Callable[[TowerConfig], dict[str, Any]]] = {"text-transformer": _text_transformer_cfg}


def _tower_cfg(
    card: ModelCard, field: str, table: dict[str, Callable[[TowerConfig], dict[str, Any]]]
) -> dict[str, Any]:
    config: TowerConfig = getattr(card, field)
    if config.kind not in table:
        raise ExportError(
            f"card {card.name!r}: open_clip has no {field} tower like kind {config.kind!r} (it has "
            f"{', '.join(map(repr, table))}); export to 'clip-sdk' or 'onnx' instead"
        )
    return table[config.kind](config)


def _quick_gelu(card: ModelCard) -> bool:
    activations = {
        str(tower.model_dump()["activation"])
        for tower in (card.image, card.text)
        if "activation" in type(tower).model_fields
    }
    if len(activations) > 1:
        raise ExportError(
            f"card {card.name!r}: its towers use different activations ({', '.join(sorted(activations))}); "
            "open_clip has one `quick_gelu` switch for both"
        )
    return activations == {"quick_gelu"}


def open_clip_model_cfg(card: ModelCard) -> dict[str, Any]:
    """The card as open_clip's model config (the ``model_cfg`` of ``open_clip_config.json``): ``embed_dim``,
    ``quick_gelu``, ``vision_cfg`` (``vit``: layers, width, ``head_width`` = width / heads, mlp_ratio, patch_size;
    ``modified-resnet``: layers, width, ``head_width`` = 32 · width / heads; ``timm``: the ``timm_*`` fields) and
    ``text_cfg`` (``text-transformer``: context_length, vocab_size, width, heads, layers, mlp_ratio), plus
    ``init_logit_scale`` / ``init_logit_bias``.

    :class:`ExportError` for a tower kind open_clip has no equivalent of, or towers with different activations.
    """
    cfg: dict[str, Any] = {
        "embed_dim": card.embed_dim,
        "quick_gelu": _quick_gelu(card),
        "vision_cfg": _tower_cfg(card, "image", _VISION_CFGS),
        "text_cfg": _tower_cfg(card, "text", _TEXT_CFGS),
        "init_logit_scale": card.init_logit_scale,
    }
    if card.init_logit_bias is not None:
        cfg["init_logit_bias"] = card.init_logit_bias
    return cfg


def open_clip_preprocess_cfg(card: ModelCard) -> dict[str, Any]:
    """The card's preprocessing as open_clip's ``preprocess_cfg``: size, mode, mean, std, interpolation,
    resize_mode, fill_color."""
    preprocess = card.preprocess
    return {
        "size": preprocess.image_size,
        "mode": "RGB",
        "mean": list(preprocess.mean),
        "std": list(preprocess.std),
        "interpolation": preprocess.interpolation,
        "resize_mode": preprocess.resize_mode,
        "fill_color": preprocess.fill_color,
    }


def write_open_clip(model: ClipModel, directory: Path) -> list[Path]:
    """Write ``model`` as an open_clip folder into the existing ``directory``; returns the files written.

    :class:`ExportError` (before anything is written) when the card has no open_clip equivalent.
    """
    card = model.card
    model_cfg = open_clip_model_cfg(card)
    state = unshared_tensors(export_state_dict(model, "openai"))
    model_cfg["text_cfg"] |= export_tokenizer(card, "openai", directory)
    config = {"model_cfg": model_cfg, "preprocess_cfg": open_clip_preprocess_cfg(card)}
    config_path, weights_path = directory / OPEN_CLIP_CONFIG_FILE, directory / OPEN_CLIP_WEIGHTS_FILE
    text = json.dumps(config, indent=2) + "\n"
    write_atomically(config_path, lambda file: file.write(text.encode("utf-8")))
    write_safetensors(weights_path, state, {"format": "pt", "card": card.name})
    return [config_path, weights_path]
