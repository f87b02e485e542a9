"""This SDK's checkpoint format: a directory holding ``card.json`` and ``model.safetensors``.

Saving writes both files into a fresh sibling directory, syncs them, then renames that directory into place, so
a crash at any point leaves either the previous checkpoint or no checkpoint, never a half-written one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file

from clip_core.catalog import CardSpec, get_card, validate_card
from clip_core.checkpoints.strict import model_from_state
from clip_core.durable import staged_folder, unshared_tensors
from clip_core.errors import CardError, CheckpointError

if TYPE_CHECKING:
    from clip_core.model import ClipModel

__all__ = [
    "CARD_FILE",
    "WEIGHTS_FILE",
    "is_native_checkpoint",
    "load_native",
    "read_json_object",
    "read_safetensors",
    "save_pretrained",
]

CARD_FILE = "card.json"
WEIGHTS_FILE = "model.safetensors"
_OURS = {CARD_FILE, WEIGHTS_FILE}


def is_native_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a directory in this SDK's format."""
    return path.is_dir() and (path / CARD_FILE).is_file()


def save_pretrained(model: ClipModel, directory: str | os.PathLike[str]) -> Path:
    """Save ``model`` to ``directory`` atomically and return the directory.

    ``directory`` may not exist yet, be empty, or hold an earlier checkpoint of this SDK (replaced); anything
    else is refused rather than overwritten.
    """
    target = Path(directory)
    if target.exists():
        if not target.is_dir():
            raise CheckpointError(f"{target} exists and is not a directory")
        foreign = sorted(set(os.listdir(target)) - _OURS)
        if foreign:
            raise CheckpointError(
                f"refusing to overwrite {target}: it holds files that are not part of a checkpoint "
                f"({', '.join(foreign[:5])}); save to a new or empty directory"
            )
    with staged_folder(target) as staging:
        metadata = {"format": "pt", "card": model.card.name}
        save_file(unshared_tensors(model.state_dict()), staging / WEIGHTS_FILE, metadata=metadata)
        (staging / CARD_FILE).write_text(model.card.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return target


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path`` (a checkpoint's ``card.json`` or ``config.json``); :class:`CheckpointError`
    naming the file and ``what`` it should hold when it cannot be read or holds something else."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read {what} ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: {what} is not a JSON object")
    return data


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file (no code runs); :class:`CheckpointError` naming the file if it is unreadable."""
    try:
        return load_file(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except Exception as exc:  # safetensors raises its own error types for truncated or corrupt files
        raise CheckpointError(f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc})") from None


def load_native(directory: Path, card: CardSpec | None = None) -> ClipModel:
    """Load a checkpoint directory written by :func:`save_pretrained` (strict), optionally with another card."""
    card_path = directory / CARD_FILE
    if card is None:
        data = read_json_object(card_path, "the card")
        try:
            model_card = validate_card(data, str(card_path))
        except CardError as exc:
            raise CheckpointError(str(exc)) from None
    else:
        model_card = get_card(card)
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"{directory}: no {WEIGHTS_FILE} beside {CARD_FILE}")
    return model_from_state(model_card, read_safetensors(weights_path), str(weights_path))
