"""CLIP_benchmark's ``wds`` data set layout, read (and written) with the standard library's ``tarfile``.

The layout::

    NAME/
        test/nshards.txt          the number of shards of the split
        test/0.tar, 1.tar, ...    samples: KEY.png (or .jpg, .jpeg, .webp) with KEY.cls (class index, text)
                                  or KEY.txt (captions, one per line)
        classnames.txt            one class name per line (classification)
        zeroshot_classification_templates.txt   one template per line, {c} for the class name
        dataset_type.txt          "retrieval" for a retrieval data set (else classification)

Samples are read in CLIP_benchmark's order (shards in order, members in each shard's order); a sample's files
share the key before the first dot of their names, as webdataset groups them. Images are not decoded here: an
image is a :class:`~clip_core.eval.data.TarMember`, read later by the embedding pipeline's workers.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from clip_core.errors import InputError
from clip_core.eval.data import DataKind, EvalData, ImageSource, TarMember, read_templates
from clip_core.templates import IMAGENET_TEMPLATES

__all__ = ["MIN_SHARDS", "is_wds", "read_wds", "write_wds"]

#: Shards :func:`write_wds` writes at the least (given as many samples): CLIP_benchmark's default ``--num_workers``.
MIN_SHARDS = 4

_IMAGE_EXTENSIONS = ("webp", "png", "jpg", "jpeg")  # CLIP_benchmark's order of preference


def is_wds(root: Path, split: str) -> bool:
    """Whether ``root`` is a data set in the ``wds`` layout with the split ``split``."""
    return (root / split / "nshards.txt").is_file()


def read_wds(
    root: Path, split: str, *, classnames: list[str] | None = None, templates: list[str] | None = None
) -> EvalData:
    """The ``split`` of the ``wds`` data set at ``root``; ``classnames``/``templates`` override its files."""
    kind: DataKind = "classification"
    type_file = root / "dataset_type.txt"
    if type_file.is_file():
        declared = type_file.read_text(encoding="utf-8").strip().lower()
        if declared not in ("classification", "retrieval"):
            raise InputError(f"{type_file}: dataset type {declared!r} is not supported (classification, retrieval)")
        kind = "retrieval" if declared == "retrieval" else "classification"
    count_file = root / split / "nshards.txt"
    try:
        shards = int(count_file.read_text(encoding="utf-8").strip())
    except ValueError:
        raise InputError(f"{count_file}: expected the number of shards") from None
    if shards < 1:
        raise InputError(f"{count_file}: the split has no shards")
    images: list[ImageSource] = []
    values: list[str] = []
    for number in range(shards):
        for member, value in _samples(root / split / f"{number}.tar", "txt" if kind == "retrieval" else "cls"):
            images.append(member)
            values.append(value)
    if kind == "retrieval":
        captions = [value.splitlines() for value in values]
        return EvalData(root.name, kind, images, captions=captions)
    labels = []
    for source, value in zip(images, values, strict=True):
        try:
            labels.append(int(value.strip()))
        except ValueError:
            raise InputError(f"{source}: class index {value.strip()!r} is not an integer") from None
    if classnames is None:
        names_file = root / "classnames.txt"
        if not names_file.is_file():
            raise InputError(f"{root}: no classnames.txt (give --classnames FILE)")
        classnames = [line.strip() for line in names_file.read_text(encoding="utf-8").splitlines()]
    if templates is None:
        templates_file = root / "zeroshot_classification_templates.txt"
        templates = read_templates(templates_file) if templates_file.is_file() else list(IMAGENET_TEMPLATES)
    return EvalData(root.name, kind, images, labels, classnames, templates)


def _samples(shard: Path, label: str) -> list[tuple[TarMember, str]]:
    groups: dict[str, dict[str, tarfile.TarInfo]] = {}
    try:
        with tarfile.open(shard) as archive:
            for info in archive:
                if not info.isfile():
                    continue
                folder, _, base = info.name.rpartition("/")
                stem, dot, extension = base.partition(".")
                if not dot:
                    continue
                groups.setdefault(f"{folder}/{stem}", {})[extension.lower()] = info
            samples = []
            for key, files in groups.items():
                image = next((files[e] for e in _IMAGE_EXTENSIONS if e in files), None)
                if image is None or label not in files:
                    wanted = "image (.png, .jpg, .jpeg, .webp)" if image is None else f".{label} file"
                    raise InputError(f"{shard}: sample {key.lstrip('/')!r} has no {wanted}")
                reader = archive.extractfile(files[label])
                assert reader is not None
                value = reader.read().decode("utf-8")
                samples.append((TarMember(str(shard), image.offset_data, image.size, image.name), value))
    except FileNotFoundError:
        raise InputError(f"{shard}: no such shard (nshards.txt names it)") from None
    except (tarfile.TarError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{shard}: cannot read this shard ({exc})") from None
    return samples


def write_wds(
    root: str | os.PathLike[str],
    samples: Sequence[tuple[Image.Image | bytes, int | Sequence[str]]],
    *,
    split: str = "test",
    classnames: Sequence[str] = (),
    templates: Sequence[str] = (),
    shard_size: int = 1000,
    min_shards: int = MIN_SHARDS,
) -> Path:
    """Write ``samples`` (image, class index or captions) as the ``split`` of a ``wds`` data set at ``root``.

    Images are stored as PNG (bytes are stored as given, as ``.png``); a classification data set (class indices)
    also gets ``classnames.txt`` and, if given, ``zeroshot_classification_templates.txt`` (``{c}`` templates); a
    retrieval one (caption lists) ``dataset_type.txt``. Returns ``root``.

    The samples are spread evenly, in order, over shards of at most ``shard_size``, and over at least
    ``min_shards`` when there are that many samples: CLIP_benchmark's reader gives each of its ``--num_workers``
    (4 by default) whole shards and fails when a worker gets none.
    """
    if shard_size < 1 or min_shards < 1:
        raise InputError(f"shard_size and min_shards must be at least 1, got {shard_size} and {min_shards}")
    folder = Path(root)
    (folder / split).mkdir(parents=True, exist_ok=True)
    retrieval = bool(samples) and not isinstance(samples[0][1], int)
    shards = max(1, -(-len(samples) // shard_size), min(min_shards, len(samples)))
    for number in range(shards):
        with tarfile.open(folder / split / f"{number}.tar", "w") as archive:
            for index in range(number * len(samples) // shards, (number + 1) * len(samples) // shards):
                image, target = samples[index]
                if isinstance(image, Image.Image):
                    buffer = io.BytesIO()
                    image.save(buffer, format="PNG")
                    image = buffer.getvalue()
                text = str(target) if isinstance(target, int) else "\n".join(target)
                _add(archive, f"s{index:07d}.png", image)
                _add(archive, f"s{index:07d}.{'txt' if retrieval else 'cls'}", text.encode("utf-8"))
    (folder / split / "nshards.txt").write_text(f"{shards}\n", encoding="utf-8")
    if retrieval:
        (folder / "dataset_type.txt").write_text("retrieval\n", encoding="utf-8")
    else:
        (folder / "classnames.txt").write_text("".join(f"{name}\n" for name in classnames), encoding="utf-8")
        if templates:
            text = "".join(f"{t}\n" for t in templates)
            (folder / "zeroshot_classification_templates.txt").write_text(text, encoding="utf-8")
    return folder


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))
