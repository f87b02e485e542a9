"""Training checkpoints: a model checkpoint in this SDK's format with the training state beside it.

A checkpoint is a folder ``out/checkpoints/step-00001000`` holding ``card.json`` and ``model.safetensors`` (written
by ``ClipModel.save_pretrained``, so ``clip_core.load_checkpoint`` reads it as any model) and
``training_state.pt``: the update count, the optimizer's and the scheduler's state, every process's random
number generator states and the run's configuration, read back with ``torch.load(weights_only=True)``.

The whole folder is written under a hidden ``.step-….partial`` name, synced, and renamed into place, so a crash
leaves either a complete checkpoint or none; only complete ones carry the ``step-`` name.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from clip_core.durable import staged_folder
from clip_core.errors import CheckpointError

if TYPE_CHECKING:
    from clip_core.model import ClipModel

__all__ = [
    "STATE_FILE",
    "STATE_FORMAT",
    "checkpoint_name",
    "checkpoints",
    "latest_checkpoint",
    "read_training_state",
    "save_training_checkpoint",
]

STATE_FILE = "training_state.pt"
#: Version of the layout of ``training_state.pt``.
STATE_FORMAT = 1
_NAME = re.compile(r"^step-(\d{8,})$")


def checkpoint_name(step: int) -> str:
    """The folder name of the checkpoint written after update ``step``."""
    return f"step-{step:08d}"


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """The complete checkpoints in ``folder`` as ``(step, path)``, oldest first."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_dir() and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint in ``folder``, or None."""
    found = checkpoints(folder)
    return found[-1][1] if found else None


def save_training_checkpoint(
    folder: Path, step: int, model: ClipModel, state: dict[str, Any], keep: int | None = None
) -> Path:
    """Write the checkpoint of update ``step`` into ``folder`` atomically and return its path.

    ``state`` is what ``training_state.pt`` holds. With ``keep``, only the newest ``keep`` checkpoints are left.
    """
    from clip_core.checkpoints.native import save_pretrained

    target = folder / checkpoint_name(step)
    with staged_folder(target) as staging:
        save_pretrained(model, staging)
        torch.save(state, staging / STATE_FILE)
    if keep is not None:
        for _, old in checkpoints(folder)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return target


def read_training_state(checkpoint: Path) -> dict[str, Any]:
    """The training state of a checkpoint folder (no code runs: ``weights_only``)."""
    path = checkpoint / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{checkpoint}: not a training checkpoint (no {STATE_FILE})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise CheckpointError(f"{path}: unreadable training state ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not a training state of format {STATE_FORMAT}")
    return state
