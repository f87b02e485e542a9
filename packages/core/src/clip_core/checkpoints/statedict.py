"""Reading state-dict files without running code: safetensors, TorchScript archives (their state dict only), or
``torch.load(weights_only=True)``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from clip_core.checkpoints.native import read_safetensors
from clip_core.checkpoints.torchscript import is_torchscript, read_torchscript
from clip_core.errors import CheckpointError

__all__ = ["STATE_DICT_SUFFIXES", "read_state_dict", "unwrap_state_dict"]

#: File suffixes read as state dicts.
STATE_DICT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
_WRAPPERS = ("state_dict", "model", "module")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors in a state-dict file, unwrapped (see :func:`unwrap_state_dict`).

    Safetensors files are read as such, TorchScript archives (OpenAI's published ``.pt`` files) through
    :func:`~clip_core.checkpoints.torchscript.read_torchscript`, anything else through
    ``torch.load(weights_only=True)``, which refuses to unpickle arbitrary objects, so a malicious payload never
    runs. :class:`CheckpointError` names the file when it is truncated, corrupt or holds something other than
    tensors.
    """
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    if is_torchscript(path):
        return read_torchscript(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except Exception as exc:  # pickle.UnpicklingError (refused object), RuntimeError (truncated zip), EOFError, ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable weights-only state dict ({reason})") from None
    return unwrap_state_dict(loaded, str(path))


def unwrap_state_dict(loaded: Any, source: str) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint: under a ``state_dict`` / ``model`` / ``module`` key (as training
    scripts save it) or at the top, with a DataParallel ``module.`` prefix on every key removed."""
    while isinstance(loaded, Mapping) and not _all_tensors(loaded):
        inner = next((loaded[key] for key in _WRAPPERS if isinstance(loaded.get(key), Mapping)), None)
        if inner is None:
            break
        loaded = inner
    if not isinstance(loaded, Mapping) or not loaded:
        raise CheckpointError(f"{source}: holds no state dict (a mapping of names to tensors)")
    if not _all_tensors(loaded):
        bad = sorted(str(key) for key, value in loaded.items() if not isinstance(value, torch.Tensor))
        raise CheckpointError(f"{source}: entries that are not tensors: {', '.join(bad[:8])}")
    state = {str(key): value for key, value in loaded.items()}
    if all(key.startswith("module.") for key in state):
        state = {key.removeprefix("module."): value for key, value in state.items()}
    return state


def _all_tensors(mapping: Mapping[Any, Any]) -> bool:
    return all(isinstance(value, torch.Tensor) for value in mapping.values())
