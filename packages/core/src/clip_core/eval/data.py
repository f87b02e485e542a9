"""Evaluation data sets read locally: what an evaluation needs, and the image folder and caption-list layouts.

An :class:`EvalData` is a list of images (files, or members of tar shards) with either a class index each
(classification) or one or more captions each (retrieval), plus the class names and prompt templates.
:func:`load_data` reads any supported layout:

- CLIP_benchmark's ``wds`` layout (see :mod:`clip_core.eval.wds`): a folder holding ``SPLIT/nshards.txt``;
- an image folder with one sub-folder per class (``SPLIT/`` inside it is used when present), classes sorted by
  folder name as torchvision's ``ImageFolder`` sorts them;
- a retrieval caption list: a ``.csv`` with an ``image`` column and one or more ``caption`` columns (rows naming
  the same image add captions to it), or a ``.jsonl`` with ``{"image": PATH, "captions": [...]}`` (or
  ``"caption"``) per line; relative image paths are read from the list file's folder.

Templates hold ``{c}`` (CLIP_benchmark's files) or ``{}`` for the class name.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from clip_core.embedding.sources import IMAGE_SUFFIXES, find_images, read_texts
from clip_core.errors import InputError
from clip_core.templates import IMAGENET_TEMPLATES

__all__ = ["DataKind", "EvalData", "TarMember", "format_template", "load_data", "read_templates"]

DataKind = Literal["classification", "retrieval"]


@dataclass(frozen=True)
class TarMember:
    """An image stored in a tar shard: the shard, where its bytes start and how many, and its name in the shard."""

    tar: str
    offset: int
    size: int
    name: str

    def __str__(self) -> str:
        return f"{self.tar}:{self.name}"


#: Where an image is: a file path, or a member of a tar shard.
ImageSource = str | TarMember


@dataclass(frozen=True)
class EvalData:
    """A data set to evaluate on: images with class indices (classification) or captions (retrieval)."""

    #: The data set's name (its folder's or file's name) and what it holds.
    name: str
    kind: DataKind
    images: list[ImageSource]
    #: Classification: one class index per image, the class names and the prompt templates.
    labels: list[int] = field(default_factory=list)
    classnames: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    #: Retrieval: the captions of each image (at least one).
    captions: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.images:
            raise InputError(f"data set {self.name!r} holds no images")
        if self.kind == "classification":
            if not self.classnames:
                raise InputError(f"data set {self.name!r}: no class names (give classnames.txt or --classnames FILE)")
            if len(self.labels) != len(self.images):
                raise InputError(f"data set {self.name!r}: {len(self.labels)} labels for {len(self.images)} images")
            for image, label in zip(self.images, self.labels, strict=True):
                if not 0 <= label < len(self.classnames):
                    raise InputError(
                        f"{image}: class index {label} is out of range for {len(self.classnames)} class names"
                    )
            if not self.templates:
                raise InputError(f"data set {self.name!r}: no prompt templates")
        else:
            if len(self.captions) != len(self.images):
                raise InputError(f"data set {self.name!r}: {len(self.captions)} caption lists for {len(self.images)}")
            for image, texts in zip(self.images, self.captions, strict=True):
                if not texts:
                    raise InputError(f"{image}: this image has no captions")


def format_template(template: str, classname: str) -> str:
    """``template`` with the class name put in: ``{c}`` as CLIP_benchmark writes it, or ``{}``."""
    return template.format(c=classname) if "{c}" in template else template.format(classname)


def read_templates(path: str | os.PathLike[str]) -> list[str]:
    """Prompt templates, one per line (``{c}`` or ``{}`` for the class name); :class:`InputError` if one has none."""
    templates = [line.strip() for line in read_texts(path)]
    for template in templates:
        if "{c}" not in template and "{}" not in template:
            raise InputError(f"{path}: template {template!r} has no '{{c}}' (or '{{}}') for the class name")
    return templates


def load_data(
    path: str | os.PathLike[str],
    split: str = "test",
    *,
    classnames: str | os.PathLike[str] | None = None,
    templates: str | os.PathLike[str] | None = None,
) -> EvalData:
    """Read the data set at ``path`` (any layout this module's documentation lists), its ``split`` where it has some.

    ``classnames`` (a file, one name per line) overrides the data set's class names and ``templates`` (a file, one
    template per line) its templates; without either, the data set's ``zeroshot_classification_templates.txt`` is
    used, else OpenAI's 80 ImageNet templates.
    """
    from clip_core.eval.wds import is_wds, read_wds

    root = Path(path)
    names = [line.strip() for line in read_texts(classnames)] if classnames is not None else None
    chosen = read_templates(templates) if templates is not None else None
    if root.is_file():
        if root.suffix.lower() not in (".csv", ".jsonl"):
            raise InputError(f"{root}: a data set file must be a retrieval list (.csv or .jsonl)")
        listed, captions = _read_caption_list(root)
        return EvalData(root.stem, "retrieval", listed, captions=captions)
    if not root.is_dir():
        raise InputError(f"{root}: no such data set folder or file")
    if is_wds(root, split):
        return read_wds(root, split, classnames=names, templates=chosen)
    folder = root / split if (root / split).is_dir() else root
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    if not classes:
        raise InputError(
            f"{root}: not a data set: no {split}/nshards.txt (CLIP_benchmark's wds layout) and no class sub-folders"
        )
    images: list[ImageSource] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        found = find_images([folder / name])
        images.extend(found)
        labels.extend([label] * len(found))
    if names is not None and len(names) != len(classes):
        raise InputError(f"{classnames}: {len(names)} class names for {len(classes)} class folders in {folder}")
    default = chosen or _templates_beside(root) or list(IMAGENET_TEMPLATES)
    return EvalData(root.name, "classification", images, labels, names or classes, default)


def _templates_beside(root: Path) -> list[str] | None:
    path = root / "zeroshot_classification_templates.txt"
    return read_templates(path) if path.is_file() else None


def _read_caption_list(path: Path) -> tuple[list[ImageSource], list[list[str]]]:
    captions: dict[str, list[str]] = {}
    folder = path.parent
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read this file ({exc})") from None
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        fields = list(rows[0]) if rows else []
        caption_fields = [name for name in fields if name.lower().startswith("caption")]
        if "image" not in fields or not caption_fields:
            raise InputError(f"{path}: a retrieval CSV needs an 'image' column and 'caption' columns, has {fields}")
        for number, row in enumerate(rows, start=2):
            texts = [row[name].strip() for name in caption_fields if row[name] and row[name].strip()]
            _add(captions, folder, row["image"], texts, f"{path}:{number}")
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                image = record["image"]
                texts = record["captions"] if "captions" in record else [record["caption"]]
            except (ValueError, KeyError, TypeError):
                raise InputError(
                    f'{path}:{number}: expected {{"image": PATH, "captions": [...]}} (or "caption")'
                ) from None
            _add(captions, folder, image, [str(t) for t in texts], f"{path}:{number}")
    if not captions:
        raise InputError(f"{path}: this list names no images")
    return list(captions), list(captions.values())


def _add(captions: dict[str, list[str]], folder: Path, image: str, texts: list[str], where: str) -> None:
    if not image or Path(image).suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(f"{where}: {image!r} is not an image path")
    if not texts:
        raise InputError(f"{where}: {image} has no caption")
    captions.setdefault(os.path.normpath(folder / image), []).extend(texts)
