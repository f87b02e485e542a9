"""Embeddings files as ``clip embed`` writes them: a matrix, an index of its rows' sources, and a manifest.

For an output ``OUT`` (``NAME.safetensors``: tensor ``"embeddings"``, float32 ``[rows, embed_dim]``; or
``NAME.npy``), two files sit beside it, named after it whole so that ``x.npy`` and ``x.safetensors`` can share a
folder:

- ``OUT.index.jsonl``: one JSON object per row, in row order: ``{"row": 0, "source": "photos/cat.jpg"}`` for an
  image, ``{"row": 0, "text": "a photo of a cat"}`` for a text.
- ``OUT.manifest.json``: what made the file (modality, model card and weight fingerprint, options such as
  ``normalize`` and ``dtype``), the row count, and the sources that were skipped as unreadable with the reason.

Each file is written to a temporary name, synced and renamed into place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from safetensors import safe_open

from clip_core.durable import safetensors_header, write_atomically
from clip_core.errors import InputError

__all__ = [
    "EMBEDDINGS_FORMAT",
    "EMBEDDINGS_KEY",
    "OUTPUT_SUFFIXES",
    "Embeddings",
    "index_path",
    "manifest_path",
    "output_format",
    "read_embeddings",
    "write_embeddings",
]

#: The ``format`` a manifest declares.
EMBEDDINGS_FORMAT = "clip-embeddings/1"
#: The tensor's name in a safetensors embeddings file.
EMBEDDINGS_KEY = "embeddings"
#: The output formats, by file name ending.
OUTPUT_SUFFIXES = (".safetensors", ".npy")


@dataclass(frozen=True)
class Embeddings:
    """An embeddings file read back: its vectors, the source of each row, and the manifest (if there is one)."""

    #: The embeddings file.
    path: Path
    #: ``[rows, embed_dim]``, float32.
    vectors: torch.Tensor
    #: One dict per row, from the index: ``{"row", "source"}`` (images) or ``{"row", "text"}`` (texts).
    entries: list[dict[str, Any]]
    #: The manifest's content, or None when the file has none beside it.
    manifest: dict[str, Any] | None

    @property
    def labels(self) -> list[str]:
        """Each row's source path or text."""
        return [str(entry.get("source", entry.get("text", ""))) for entry in self.entries]


def index_path(output: str | os.PathLike[str]) -> Path:
    """Where the index of ``output`` lives: ``OUT.index.jsonl`` beside it (``embeddings.npy.index.jsonl``)."""
    path = Path(output)
    return path.with_name(f"{path.name}.index.jsonl")


def manifest_path(output: str | os.PathLike[str]) -> Path:
    """Where the manifest of ``output`` lives: ``OUT.manifest.json`` beside it."""
    path = Path(output)
    return path.with_name(f"{path.name}.manifest.json")


def output_format(output: str | os.PathLike[str]) -> str:
    """``"safetensors"`` or ``"npy"`` from the file name; :class:`InputError` for any other ending."""
    suffix = Path(output).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise InputError(f"{output}: an embeddings file ends in {' or '.join(OUTPUT_SUFFIXES)}")
    return suffix[1:]


def write_embeddings(
    output: str | os.PathLike[str],
    vectors: torch.Tensor | Iterable[torch.Tensor],
    entries: Sequence[Mapping[str, Any]],
    manifest: Mapping[str, Any],
    *,
    dim: int | None = None,
) -> None:
    """Write the matrix (float32), then its index, then its manifest, each atomically.

    ``vectors`` is the matrix ``[rows, dim]``, or its rows as consecutive blocks ``[rows_i, dim]`` (then pass
    ``dim``), which are written as they come: the whole matrix is never held in memory. ``entries`` are the rows'
    index objects without ``"row"`` (added here), e.g. ``{"source": path}``.
    """
    path = Path(output)
    kind = output_format(path)
    blocks: Iterable[torch.Tensor]
    if isinstance(vectors, torch.Tensor):
        if vectors.ndim != 2 or vectors.shape[0] != len(entries):
            raise InputError(f"{len(entries)} index entries for embeddings of shape {tuple(vectors.shape)}")
        dim, blocks = vectors.shape[1], [vectors]
    elif dim is None:
        raise InputError("write_embeddings needs dim when the embeddings come as blocks")
    else:
        blocks = vectors
    write_atomically(path, lambda file: _write_matrix(file, kind, len(entries), dim, blocks))
    lines = "".join(json.dumps({"row": row, **entry}, ensure_ascii=False) + "\n" for row, entry in enumerate(entries))
    write_atomically(index_path(path), lambda file: file.write(lines.encode("utf-8")))
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    write_atomically(manifest_path(path), lambda file: file.write(text.encode("utf-8")))


def _write_matrix(file: IO[bytes], kind: str, rows: int, dim: int, blocks: Iterable[torch.Tensor]) -> None:
    """A float32 ``[rows, dim]`` matrix as ``.npy`` (format 1.0, as ``np.save``) or ``.safetensors`` (one tensor,
    as ``safetensors.torch.save_file``), its header first, then the blocks' bytes in order."""
    if kind == "npy":
        npy = {"descr": "<f4", "fortran_order": False, "shape": (rows, dim)}
        np.lib.format.write_array_header_1_0(file, npy)  # type: ignore[no-untyped-call,unused-ignore]
    else:
        tensor = {"dtype": "F32", "shape": [rows, dim], "data_offsets": [0, rows * dim * 4]}
        header = {"__metadata__": {"format": EMBEDDINGS_FORMAT}, EMBEDDINGS_KEY: tensor}
        file.write(safetensors_header(header))
    written = 0
    for block in blocks:
        if block.ndim != 2 or block.shape[1] != dim or written + block.shape[0] > rows:
            raise InputError(f"embeddings block of shape {tuple(block.shape)} after {written} of {rows} rows x {dim}")
        file.write(block.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        written += block.shape[0]
    if written != rows:
        raise InputError(f"the embeddings blocks held {written} rows, the index {rows}")


def read_embeddings(path: str | os.PathLike[str]) -> Embeddings:
    """Read an embeddings file with its index (required) and manifest (if present).

    :class:`InputError` names the file when it is missing or unreadable, or when the index does not match its rows.
    """
    source = Path(path)
    if not source.is_file():
        raise InputError(f"{source}: no such embeddings file")
    kind = output_format(source)
    try:
        if kind == "npy":
            vectors = torch.from_numpy(np.load(source, allow_pickle=False))
        else:
            with safe_open(str(source), framework="pt") as file:
                if EMBEDDINGS_KEY not in file.keys():  # noqa: SIM118 - safe_open is not a mapping
                    raise InputError(f"{source}: no tensor {EMBEDDINGS_KEY!r} in this safetensors file")
                vectors = file.get_tensor(EMBEDDINGS_KEY)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{source}: not a readable embeddings file ({exc})") from None
    if vectors.ndim != 2:
        raise InputError(f"{source}: embeddings must be a matrix [rows, dim], got shape {tuple(vectors.shape)}")
    entries = _read_index(index_path(source))
    if len(entries) != vectors.shape[0]:
        raise InputError(
            f"{index_path(source)}: the index lists {len(entries)} rows but {source} holds {vectors.shape[0]}"
        )
    manifest = _read_manifest(manifest_path(source))
    return Embeddings(source, vectors.to(torch.float32), entries, manifest)


def _read_index(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: no index beside the embeddings file (clip embed writes one)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the index ({exc})") from None
    entries: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            raise InputError(f"{path}:{number}: not a JSON object") from None
        if not isinstance(entry, dict) or entry.get("row") != len(entries):
            raise InputError(f'{path}:{number}: expected an object with "row": {len(entries)}')
        entries.append(entry)
    return entries


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a manifest is a JSON object")
    return data
