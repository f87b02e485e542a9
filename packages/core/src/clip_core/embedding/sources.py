"""What gets embedded: image files (finding them, reading them the way open_clip's users do) and text files.

:func:`find_images` expands folders, globs and list files into image paths; :class:`ImageFiles` is the data set
of image files that the embed functions load in batches with :func:`collate_images`, an unreadable file among
them a failure rather than an error; :func:`read_texts` reads one text per line.

:func:`read_image` opens a file with Pillow and decodes it, nothing more: no EXIF rotation and no mode conversion,
so :class:`~clip_core.preprocess.ImagePreprocess` sees exactly the image ``open_clip``'s transform would see.
"""

from __future__ import annotations

import glob
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from clip_core.errors import InputError
from clip_core.shardfiles import SHARD_SEPARATOR, read_shard_image, shard_images

__all__ = [
    "IMAGE_SUFFIXES",
    "LIST_SUFFIXES",
    "ImageFiles",
    "LoadedImages",
    "collate_images",
    "find_images",
    "load_batch",
    "read_image",
    "read_pixels",
    "read_texts",
    "source_name",
]

#: File name endings taken as images when a folder is walked or a glob is expanded (compared case-insensitively).
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".ppm", ".pgm"}
)
#: File name endings of list files: one image path per line (blank lines and lines starting with ``#`` ignored).
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})

_GLOB_CHARACTERS = frozenset("*?[")
_SOME_SUFFIXES = ".jpg, .png, .webp, .gif, .tif"


def read_image(path: str | os.PathLike[str] | IO[bytes]) -> Image.Image:
    """Open and fully decode an image file (or binary file object); :class:`InputError` naming it and the reason if
    that fails.

    The image keeps its own mode (``P``, ``I;16``, ``CMYK``...) and, for animations, is the first frame: the same
    image ``PIL.Image.open`` gives open_clip's transform.
    """
    if isinstance(path, (str, os.PathLike)) and SHARD_SEPARATOR in os.fspath(path):
        return read_shard_image(os.fspath(path))
    try:
        image = Image.open(path)
        with image:  # closes the file (also of an animation), keeps the decoded frame
            image.load()
    except Exception as exc:  # Pillow's decoders raise OSError, ValueError, SyntaxError, struct.error, EOFError...
        raise InputError(f"{path}: {_reason(exc)}") from None
    return image


def source_name(path: str) -> str:
    """The source an image's row is listed under in the index: its path, or for an image in a webdataset shard
    (``SHARD.tar#KEY``) its key."""
    return path.rpartition("#")[2] if SHARD_SEPARATOR in path else path


def find_images(specs: Iterable[str | os.PathLike[str]]) -> list[str]:
    """The image paths ``specs`` name, in order, each once.

    Each spec is webdataset shards (a ``.tar`` path or brace pattern, see :func:`clip_core.shardfiles.expand_shards`:
    each image named ``SHARD.tar#KEY``), a folder (walked recursively, files with an :data:`IMAGE_SUFFIXES` ending,
    sorted), a list file (a :data:`LIST_SUFFIXES` ending: one path per line, relative paths read from the list
    file's folder), a glob pattern (``photos/**/*.jpg``; matches with image endings, sorted), or an image file.
    A spec that names nothing,
    a folder without images and a glob without matches raise :class:`InputError`. Paths are returned as found,
    normalised (``os.path.normpath``: relative specs give relative paths); files are not opened here.
    """
    found: dict[str, None] = {}
    for spec in specs:
        for path in _expand(os.fspath(spec)):
            found.setdefault(os.path.normpath(path), None)
    return list(found)


def _expand(spec: str) -> list[str]:
    if spec.startswith("file:") or spec.endswith(".tar") or ("{" in spec and ".tar" in spec):
        return shard_images(spec)  # webdataset shards: one source per sample, SHARD.tar#KEY
    path = Path(spec)
    if path.is_dir():
        images = sorted(_walk(path))
        if not images:
            raise InputError(f"{spec}: no image files in this folder (looked for {_SOME_SUFFIXES}...)")
        return images
    if path.is_file():
        return _read_list(path) if path.suffix.lower() in LIST_SUFFIXES else [spec]
    if _GLOB_CHARACTERS & set(spec):
        matches = sorted(
            match
            for match in glob.glob(spec, recursive=True)
            if Path(match).suffix.lower() in IMAGE_SUFFIXES and Path(match).is_file()
        )
        if not matches:
            raise InputError(f"{spec}: no image files match this pattern")
        return matches
    raise InputError(f"{spec}: no such file or folder")


def _walk(folder: Path) -> Iterable[str]:
    for root, _, names in os.walk(folder):
        for name in names:
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                yield os.path.join(root, name)


def _read_list(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read this list file ({_reason(exc)})") from None
    entries = [line.strip() for line in lines]
    folder = "" if path.parent == Path() else str(path.parent)
    paths = [os.path.join(folder, entry) for entry in entries if entry and not entry.startswith("#")]
    if not paths:
        raise InputError(f"{path}: this list file names no images")
    return paths


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "not an image file Pillow can read"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_pixels(
    path: str | os.PathLike[str] | IO[bytes], preprocess: Callable[[Image.Image], torch.Tensor]
) -> torch.Tensor:
    """:func:`read_image` then ``preprocess``; a bad file is an :class:`InputError` naming the file and why.

    Of ``preprocess``, what a malformed image makes Pillow raise (``OSError``, ``ValueError``) is the file's fault;
    any other exception is a bug in the preprocessing and propagates rather than passing for an unreadable file.

    Pillow's warning that a palette image's transparency is dropped on conversion to RGB is silenced.
    """
    image = read_image(path)
    try:
        with warnings.catch_warnings():  # Pillow's note on palette transparency: the pixels are open_clip's either way
            warnings.filterwarnings("ignore", "Palette images with Transparency", UserWarning)
            return preprocess(image)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    except (OSError, ValueError) as exc:  # what Pillow's conversions raise on a malformed file; a bug propagates
        raise InputError(f"{path}: {type(exc).__name__}: {_reason(exc)}") from None


def load_batch(
    paths: Sequence[str], preprocess: Callable[[Image.Image], torch.Tensor]
) -> tuple[list[str], torch.Tensor | None, list[tuple[str, str]]]:
    """Read and preprocess ``paths``: the readable paths, their pixels stacked (None if none), the others with why.

    An unreadable file (missing, unreadable, corrupt, truncated, not an image) never raises: it is returned among
    the failures as ``(path, reason)``.
    """
    good: list[str] = []
    tensors: list[torch.Tensor] = []
    failures: list[tuple[str, str]] = []
    for path in paths:
        try:
            tensors.append(read_pixels(path, preprocess))
        except InputError as exc:
            failures.append((path, str(exc).removeprefix(f"{path}: ")))
        else:
            good.append(path)
    return good, (torch.stack(tensors) if tensors else None), failures


def read_texts(path: str | os.PathLike[str]) -> list[str]:
    """The texts of a UTF-8 text file, one per line; blank lines are skipped. :class:`InputError` if there are none."""
    source = Path(path)
    try:
        lines = source.read_text(encoding="utf-8").split("\n")  # not splitlines: a text may hold \x0c or \u2028
    except FileNotFoundError:
        raise InputError(f"{source}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{source}: cannot read this text file ({exc})") from None
    texts = [line for line in lines if line.strip()]
    if not texts:
        raise InputError(f"{source}: no texts in this file")
    return texts


@dataclass
class LoadedImages:
    """A collated batch of image files: the good ones' dataset indices and pixels, the bad ones' errors."""

    indices: list[int]
    pixels: torch.Tensor | None
    failures: list[tuple[int, str]]


class ImageFiles(Dataset[tuple[int, torch.Tensor | None, str]]):
    """Image files read and preprocessed; an unreadable file gives ``(index, None, reason)`` instead of raising."""

    def __init__(self, paths: list[str], preprocess: Callable[[Image.Image], torch.Tensor]) -> None:
        self.paths = paths
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str]:
        path = self.paths[index]
        try:
            return index, read_pixels(path, self.preprocess), ""
        except InputError as exc:
            return index, None, str(exc).removeprefix(f"{path}: ")


def collate_images(items: list[tuple[int, torch.Tensor | None, str]]) -> LoadedImages:
    """Collate :class:`ImageFiles` items: the readable ones' pixels stacked (None if none), the others' reasons."""
    good = [(index, pixels) for index, pixels, _ in items if pixels is not None]
    failures = [(index, error) for index, pixels, error in items if pixels is None]
    pixels = torch.stack([pixels for _, pixels in good]) if good else None
    return LoadedImages([index for index, _ in good], pixels, failures)
