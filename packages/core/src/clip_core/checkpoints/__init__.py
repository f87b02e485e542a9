"""Loading checkpoints: this SDK's directories and safetensors state dicts in this SDK's layout."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from clip_core.catalog import CardSpec, get_card
from clip_core.checkpoints.native import is_native_checkpoint, load_native, read_safetensors, save_pretrained
from clip_core.checkpoints.strict import load_state_dict_strict
from clip_core.errors import CheckpointError

if TYPE_CHECKING:
    from clip_core.model import ClipModel

__all__ = ["load_checkpoint", "load_state_dict_strict", "save_pretrained"]


def load_checkpoint(path: str | os.PathLike[str], card: CardSpec | None = None) -> ClipModel:
    """Load a model from ``path`` and return it in eval mode.

    ``path`` is a directory written by ``ClipModel.save_pretrained`` (its ``card.json`` is used unless ``card``
    is given), or a ``.safetensors`` state dict in this SDK's layout together with ``card``. Loading is strict:
    missing, unexpected or mis-shaped keys raise :class:`CheckpointError` naming them.
    """
    from clip_core.model import ClipModel

    source = Path(path)
    if not source.exists():
        raise CheckpointError(f"{source}: no such file or directory")
    if is_native_checkpoint(source):
        return load_native(source, card)
    if source.is_dir():
        raise CheckpointError(f"{source}: a checkpoint directory needs a card.json and a model.safetensors")
    if source.suffix != ".safetensors":
        raise CheckpointError(f"{source}: unsupported checkpoint format (expected a directory or a .safetensors file)")
    if card is None:
        raise CheckpointError(f"{source}: a bare state dict does not say its configuration; pass card=")
    model = ClipModel(get_card(card))
    load_state_dict_strict(model, read_safetensors(source), str(source))
    return model.eval()
