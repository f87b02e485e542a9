"""Loading checkpoints: this SDK's directories, and state dicts in this SDK's or a foreign (OpenAI / open_clip,
transformers) layout."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from clip_core.catalog import CardSpec, get_card
from clip_core.checkpoints.layouts import convert_state_dict, detect_layout
from clip_core.checkpoints.native import is_native_checkpoint, load_native, save_pretrained
from clip_core.checkpoints.statedict import STATE_DICT_SUFFIXES, read_state_dict
from clip_core.checkpoints.strict import load_state_dict_strict, model_from_state, skeleton
from clip_core.errors import CheckpointError

if TYPE_CHECKING:
    from clip_core.model import ClipModel

__all__ = ["load_checkpoint", "load_state_dict_strict", "save_pretrained"]


def load_checkpoint(path: str | os.PathLike[str], card: CardSpec | None = None) -> ClipModel:
    """Load a model from ``path`` and return it in eval mode.

    ``path`` is a directory written by ``ClipModel.save_pretrained`` (its ``card.json`` is used unless ``card``
    is given), or a state-dict file (``.safetensors``, ``.pt``, ``.pth``, ``.bin``, ``.ckpt``) together with
    ``card``: in this SDK's layout, OpenAI's / open_clip's, or transformers' ``CLIPModel`` layout, converted by
    each tower's registered converter. Files are read without running code (safetensors, or ``torch.load`` with
    ``weights_only=True``). Loading is strict: missing, unexpected or mis-shaped keys raise
    :class:`CheckpointError` naming them.
    """
    source = Path(path)
    if not source.exists():
        raise CheckpointError(f"{source}: no such file or directory")
    if is_native_checkpoint(source):
        return load_native(source, card)
    if source.is_dir():
        raise CheckpointError(f"{source}: a checkpoint directory needs a card.json and a model.safetensors")
    if source.suffix not in STATE_DICT_SUFFIXES:
        raise CheckpointError(
            f"{source}: unsupported checkpoint format (expected a directory or a {', '.join(STATE_DICT_SUFFIXES)} file)"
        )
    if card is None:
        raise CheckpointError(f"{source}: a bare state dict does not say its configuration; pass card=")
    model_card = get_card(card)
    state = read_state_dict(source)
    model = skeleton(model_card)
    layout = detect_layout(state, set(model.state_dict()))
    converted = convert_state_dict(state, model_card, layout, str(source))
    return model_from_state(model_card, converted, str(source), model)
