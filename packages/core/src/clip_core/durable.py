"""Durable writes: a file or a folder appears whole or not at all, and stays once written.

Each is written under a temporary name beside its target, synced, renamed into place, and the parent folder is
synced, so that a crash at any point leaves either the previous version or no version, never a partial one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import torch
from safetensors.torch import save

__all__ = ["staged_folder", "sync_path", "unshared_tensors", "write_atomically", "write_safetensors"]


def sync_path(path: Path) -> None:
    """``fsync`` a file, or a folder so that renames in it are durable. Folders that cannot be opened or synced
    (Windows, some file systems) are passed over; a file that cannot be synced raises ``OSError``."""
    folder = path.is_dir()
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        if folder:
            return
        raise
    try:
        os.fsync(descriptor)
    except OSError:
        if not folder:
            raise
    finally:
        os.close(descriptor)


def write_atomically(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write ``path`` through a temporary file in its folder: written, synced, renamed over ``path``, folder synced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    sync_path(path.parent)


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """:func:`write_atomically` for a safetensors file."""
    write_atomically(path, lambda file: file.write(save(tensors, metadata=metadata)))


def unshared_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous tensors, each with storage of its own (safetensors refuses shared storage, e.g. tied weights)."""
    seen: set[int] = set()
    out = {}
    for key, tensor in state.items():
        tensor = tensor.detach().contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        out[key] = tensor.clone() if pointer in seen else tensor
        seen.add(pointer)
    return out


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """A fresh hidden folder beside ``target`` for the body of the ``with`` to fill.

    When the body succeeds, the folder's entries and the folder are synced and it takes ``target``'s place (an
    existing ``target`` is first moved aside, then removed), and the parent is synced; when the body or any of this
    fails, the folder is removed and ``target`` is left as it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield staging
        for path in [*sorted(staging.iterdir()), staging]:
            sync_path(path)
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.rename(target, retired / target.name)
            os.rename(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.rename(staging, target)
        sync_path(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
