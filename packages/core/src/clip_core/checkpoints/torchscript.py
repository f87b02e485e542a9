"""TorchScript archives (the ``.pt`` files OpenAI publishes and ``clip.load`` downloads): their state dict only.

``torch.jit.load`` compiles the archive's TorchScript code (a typed subset of Python, compiled by TorchScript, never
given to the Python interpreter) and restores its tensors with TorchScript's own unpickler, which builds
TorchScript objects only, so no Python code of the archive runs; nothing is called on the loaded module but
``state_dict()``.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import torch

from clip_core.errors import CheckpointError

__all__ = ["is_torchscript", "read_torchscript"]

#: Buffers a traced or scripted open_clip model holds that are no weights: the causal mask, rebuilt from the
#: context length (``nn.Module.state_dict`` leaves such non-persistent buffers out; TorchScript's does not).
_DERIVED_BUFFERS = ("attn_mask",)


def is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive: a zip file whose one top folder holds a ``code/`` folder."""
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.split("/")[1:2] == ["code"] for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def read_torchscript(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of the TorchScript archive at ``path``, on the CPU, in the dtype it was saved in.

    Derived buffers (a traced open_clip model's ``attn_mask``) are left out; OpenAI's ``input_resolution``,
    ``context_length`` and ``vocab_size`` entries are kept (weight converters skip them). :class:`CheckpointError`
    names the file when the archive is truncated, corrupt or not TorchScript.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated", category=FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
        state = module.state_dict()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except Exception as exc:  # RuntimeError for truncated, corrupt or malformed archives, and anything else
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable TorchScript archive ({reason})") from None
    return {
        str(key): value.detach()
        for key, value in state.items()
        if isinstance(value, torch.Tensor) and str(key).rsplit(".", 1)[-1] not in _DERIVED_BUFFERS
    }
