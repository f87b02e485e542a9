"""Durable writes: a file or a folder appears whole or not at all, and stays once written.

Each is written under a temporary name beside its target, synced, renamed into place, and the parent folder is
synced, so that a crash at any point leaves either the previous version or no version, never a partial one.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import torch

__all__ = [
    "safetensors_header",
    "staged_folder",
    "sync_path",
    "unshared_tensors",
    "write_atomically",
    "write_safetensors",
]


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


#: safetensors' names of torch's dtypes, in the order its files lay tensors out (its dtypes' order, reversed).
_SAFETENSORS_DTYPES = {
    torch.int64: "I64",
    torch.float64: "F64",
    torch.float32: "F32",
    torch.int32: "I32",
    torch.bfloat16: "BF16",
    torch.float16: "F16",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_LAYOUT_RANK = {dtype: rank for rank, dtype in enumerate(_SAFETENSORS_DTYPES)}


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """:func:`write_atomically` for a safetensors file, streamed: the header, then each tensor's bytes from its own
    memory, so no copy of the whole file is held (``safetensors.torch.save`` returns one as ``bytes``). The bytes
    are ``save``'s: tensors by dtype (wider first, so that each starts aligned), then by name."""
    for key, tensor in tensors.items():
        if tensor.dtype not in _LAYOUT_RANK:
            raise TypeError(f"{key}: no safetensors dtype for {tensor.dtype}")
    order = sorted(tensors, key=lambda key: (_LAYOUT_RANK[tensors[key].dtype], key))
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for key in order:
        tensor = tensors[key]
        size = tensor.numel() * tensor.element_size()
        dtype, shape = _SAFETENSORS_DTYPES[tensor.dtype], list(tensor.shape)
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    encoded = safetensors_header(header)

    def write(file: IO[bytes]) -> None:
        file.write(encoded)
        for key in order:
            tensor = tensors[key].detach().to("cpu").contiguous()
            if tensor.numel():
                file.write(tensor.reshape(-1).view(torch.uint8).numpy().data)

    write_atomically(path, write)


def safetensors_header(header: dict[str, object]) -> bytes:
    """The bytes a safetensors file starts with, for ``header`` (``__metadata__`` and each tensor's dtype, shape and
    data offsets): its length as 8 little-endian bytes, then its compact JSON padded with spaces so that the tensors'
    data starts 8-byte aligned, as safetensors writes it."""
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded


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
