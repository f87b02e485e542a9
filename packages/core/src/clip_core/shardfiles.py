"""img2dataset's webdataset shards: naming them (brace patterns, list files) and reading their samples.

A shard is an uncompressed tar file holding samples as members named ``KEY.EXT``: ``KEY.jpg`` (or ``.jpeg``,
``.png``, ``.webp``) the image, ``KEY.txt`` its caption; other members (``KEY.json``, ``KEY.parquet``...) are
ignored. The key is the member's name up to the first dot of its last path part (webdataset's rule), directories
included, so ``a/0001.jpg`` and ``a/0001.txt`` form sample ``a/0001``.

The shards are read with the standard library's :mod:`tarfile`: :func:`scan_shard` reads a shard's headers once
(skipping over the data) and records where each member's bytes lie, and :class:`ShardReader` reads a member's
bytes by seeking to them. Knowing every sample's place lets the training stream start at any sample of any shard
(exact resume) and lets every process walk the same global order while decoding only its own samples. A shard
truncated or damaged midway keeps the samples read before the damage.
"""

from __future__ import annotations

import functools
import io
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image

from clip_core.errors import InputError

__all__ = [
    "SHARD_IMAGE_SUFFIXES",
    "SHARD_SEPARATOR",
    "ShardReader",
    "ShardSample",
    "decode_image",
    "expand_shards",
    "is_shard_spec",
    "read_shard_image",
    "scan_shard",
    "shard_images",
]

#: Member endings read as a sample's image (the first one present is used).
SHARD_IMAGE_SUFFIXES = ("jpg", "jpeg", "png", "webp")
_LIST_SUFFIXES = (".txt", ".lst", ".list")
#: Joins a shard's path and a sample's key into one source name (``shards/00000.tar#000000012``).
SHARD_SEPARATOR = ".tar#"
_BRACES = re.compile(r"\{([^{}]*)\}")
_BLOCK = 512
_EMPTY = bytes(_BLOCK)


def is_shard_spec(spec: str | os.PathLike[str]) -> bool:
    """Whether ``spec`` names webdataset shards: a ``.tar`` path or pattern, a ``file:`` URL, a brace pattern, or
    a list file (``.txt``, ``.lst``, ``.list``) of shard paths."""
    text = os.fspath(spec)
    if text.startswith("file:") or "{" in text:
        return True
    return text.endswith(".tar") or text.lower().endswith(_LIST_SUFFIXES)


def expand_shards(spec: str | os.PathLike[str]) -> list[Path]:
    """The shard files ``spec`` names, in order: a path (``file:`` prefix allowed), a brace pattern
    (``shards/{00000..00099}.tar``: zero-padded numeric ranges, or ``{a,b}`` alternatives; several per pattern, and
    several patterns separated by ``::`` as webdataset reads them), or a list file with one shard per line
    (relative to the list's folder; blank lines and ``#`` comments ignored).

    :class:`InputError` naming the first missing shard, or if there are none.
    """
    text = os.fspath(spec)
    paths: list[str] = []
    for part in text.split("::"):
        part = part.removeprefix("file://").removeprefix("file:")
        if "{" not in part and part.lower().endswith(_LIST_SUFFIXES) and Path(part).is_file():
            paths += _read_list(Path(part))
        else:
            paths += _expand_braces(part)
    if not paths:
        raise InputError(f"{text}: names no shards")
    missing = next((path for path in paths if not Path(path).is_file()), None)
    if missing is not None:
        raise InputError(f"{text}: shard {missing} does not exist ({len(paths)} shards named)")
    return [Path(path) for path in paths]


def _expand_braces(pattern: str) -> list[str]:
    match = _BRACES.search(pattern)
    if match is None:
        return [pattern]
    head, tail, body = pattern[: match.start()], pattern[match.end() :], match.group(1)
    numeric = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if numeric:
        first, last = numeric.groups()
        if int(last) < int(first):
            raise InputError(f"{pattern}: the range {{{body}}} runs backwards")
        width = len(first) if first.startswith("0") or len(first) == len(last) else 0
        options = [str(n).zfill(width) for n in range(int(first), int(last) + 1)]
    else:
        options = body.split(",")
    return [path for option in options for path in _expand_braces(head + option + tail)]


def _read_list(path: Path) -> list[str]:
    folder = path.parent
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [str(folder / line) for line in lines if line and not line.startswith("#")]


@dataclass(frozen=True)
class ShardSample:
    """One sample of a shard: its key, where its image's and caption's bytes lie (offset, size), and its image's
    member name. A sample missing its image or its caption has ``None`` there (it is skipped and counted)."""

    key: str
    image: tuple[int, int] | None
    caption: tuple[int, int] | None
    image_name: str = ""

    @property
    def complete(self) -> bool:
        """Whether the sample has both an image and a caption."""
        return self.image is not None and self.caption is not None


def scan_shard(path: Path) -> list[ShardSample]:
    """The samples of one shard in the order their first member appears, read from its headers.

    A shard that cannot be opened raises :class:`InputError`; one damaged midway keeps the samples before it.
    """
    found: dict[str, dict[str, tuple[int, int, str]]] = {}
    for name, offset, size in _members(path):
        folder, _, base = name.rpartition("/")
        stem, dot, suffix = base.partition(".")
        if dot:
            key = f"{folder}/{stem}" if folder else stem
            found.setdefault(key, {})[suffix.lower()] = (offset, size, name)
    samples = []
    for key, members in found.items():
        image = next((members[s] for s in SHARD_IMAGE_SUFFIXES if s in members), None)
        caption = members.get("txt")
        samples.append(
            ShardSample(
                key,
                None if image is None else image[:2],
                None if caption is None else caption[:2],
                "" if image is None else image[2],
            )
        )
    return samples


def _members(path: Path) -> list[tuple[str, int, int]]:
    """``(name, data offset, size)`` of the shard's regular files: read from the plain ustar headers directly (the
    headers img2dataset and webdataset write), through :mod:`tarfile` when a header is of another kind."""
    members: list[tuple[str, int, int]] = []
    try:
        with open(path, "rb") as file:
            offset = 0
            while True:
                file.seek(offset)
                header = file.read(_BLOCK)
                if len(header) < _BLOCK or header == _EMPTY:
                    return members
                kind = header[156:157]
                if kind not in (b"0", b"\0") or header[257:262] != b"ustar" or header[124] & 0x80:
                    return _members_by_tarfile(path)  # long names, pax headers, base-256 sizes...
                name = header[:100].split(b"\0", 1)[0]
                prefix = header[345:500].split(b"\0", 1)[0]
                size = int(header[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
                full = (prefix + b"/" + name if prefix else name).decode("utf-8", errors="replace")
                members.append((full, offset + _BLOCK, size))
                offset += _BLOCK + (size + _BLOCK - 1) // _BLOCK * _BLOCK
    except OSError as exc:
        raise InputError(f"{path}: not a readable tar shard ({exc})") from None
    except ValueError:  # a damaged header: fall back to tarfile, which keeps what comes before it
        return _members_by_tarfile(path)


def _members_by_tarfile(path: Path) -> list[tuple[str, int, int]]:
    members: list[tuple[str, int, int]] = []
    try:
        archive = tarfile.open(path, mode="r:")  # noqa: SIM115 (closed below)
    except (OSError, tarfile.TarError) as exc:
        raise InputError(f"{path}: not a readable tar shard ({exc})") from None
    with archive:
        try:
            for member in archive:
                if member.isfile():
                    members.append((member.name, member.offset_data, member.size))
        except (OSError, tarfile.TarError, EOFError):
            pass  # damaged midway: keep what was read
    return members


class ShardReader:
    """Reads members' bytes from shards, keeping the last shard open (samples are read shard by shard)."""

    def __init__(self) -> None:
        self._path: Path | None = None
        self._file: IO[bytes] | None = None

    def read(self, path: Path, place: tuple[int, int]) -> bytes:
        """The ``size`` bytes at ``offset`` of ``path`` (``place = (offset, size)``)."""
        if self._path != path or self._file is None:
            self.close()
            self._file, self._path = open(path, "rb"), path  # noqa: SIM115 (kept open: see close)
        offset, size = place
        self._file.seek(offset)
        data = self._file.read(size)
        if len(data) != size:
            raise InputError(f"{path}: truncated at byte {offset + len(data)}")
        return data

    def close(self) -> None:
        """Close the open shard, if any."""
        if self._file is not None:
            self._file.close()
        self._file, self._path = None, None

    def __getstate__(self) -> dict[str, object]:  # DataLoader workers get a reader without an open file
        return {"_path": None, "_file": None}


def decode_image(data: bytes, name: str) -> Image.Image:
    """Decode image bytes fully; :class:`InputError` naming the member if Pillow cannot."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError... on corrupt data
        raise InputError(f"{name}: cannot decode the image ({type(exc).__name__})") from None
    return image


def shard_images(spec: str | os.PathLike[str]) -> list[str]:
    """The images in the shards ``spec`` names (see :func:`expand_shards`), as ``SHARD.tar#KEY`` names in shard
    order, each shard's in the order stored; samples without an image are left out."""
    names = []
    for shard in expand_shards(spec):
        names += [f"{shard}#{sample.key}" for sample in _samples(str(shard)).values() if sample.image is not None]
    return names


def read_shard_image(name: str) -> Image.Image:
    """The decoded image of ``SHARD.tar#KEY`` (:class:`InputError` if it is gone or does not decode)."""
    shard, _, key = name.rpartition("#")
    sample = _samples(shard).get(key)
    if sample is None or sample.image is None:
        raise InputError(f"{name}: no image {key!r} in {shard}")
    with open(shard, "rb") as file:
        file.seek(sample.image[0])
        data = file.read(sample.image[1])
    return decode_image(data, name)


@functools.lru_cache(maxsize=4)
def _samples(shard: str) -> dict[str, ShardSample]:
    return {sample.key: sample for sample in scan_shard(Path(shard))}
