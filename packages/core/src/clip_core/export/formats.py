"""``export_model``: a model written as a folder in one of the formats other libraries load, atomically.

Each format writes its files into a fresh hidden folder beside the target, which takes the target's place only
once every file is written and synced (:func:`clip_core.durable.staged_folder`, as ``save_pretrained``): a failed
export leaves the target as it was. The target may not exist yet, be empty, or hold an earlier export in the same
format (replaced); a folder holding anything else is refused rather than overwritten.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from clip_core.checkpoints.native import CARD_FILE
from clip_core.durable import staged_folder, write_atomically
from clip_core.errors import ExportError
from clip_core.export.open_clip import OPEN_CLIP_FILES, write_open_clip
from clip_core.export.transformers import PREPROCESSOR_FILE, write_transformers

if TYPE_CHECKING:
    from clip_core.model import ClipModel

__all__ = ["EXPORT_FORMATS", "ExportFormat", "export_model"]

ExportFormat = Literal["clip-sdk", "transformers", "open_clip", "onnx"]
#: The formats :func:`export_model` writes.
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)

Writer = Callable[["ClipModel", Path], list[Path]]


def _write_onnx(model: ClipModel, directory: Path) -> list[Path]:
    from clip_core.export.onnx import write_onnx

    paths = write_onnx(model, directory)
    card = directory / CARD_FILE
    text = model.card.model_dump_json(indent=2) + "\n"
    write_atomically(card, lambda file: file.write(text.encode("utf-8")))
    return [*paths, card]


@dataclass(frozen=True)
class _Format:
    write: Writer
    #: Whether a file name belongs to an export in this format (an earlier export may be replaced).
    owns: Callable[[str], bool]


_TRANSFORMERS_FILES = frozenset(
    {
        "config.json",
        "model.safetensors",
        PREPROCESSOR_FILE,
        "tokenizer.json",
        "vocab.json",
        "merges.txt",
        "tokenizer_config.json",
        "special_tokens_map.json",
    }
)

_FORMATS: dict[str, _Format] = {
    "transformers": _Format(write_transformers, lambda name: name in _TRANSFORMERS_FILES),
    "open_clip": _Format(write_open_clip, lambda name: name in OPEN_CLIP_FILES),
    "onnx": _Format(_write_onnx, lambda name: name == CARD_FILE or name.endswith((".onnx", ".onnx.data", ".data"))),
}


def export_model(model: ClipModel, directory: str | os.PathLike[str], format: ExportFormat | str = "clip-sdk") -> Path:
    """Write ``model`` to ``directory`` in ``format`` and return the directory.

    - ``"clip-sdk"``: this SDK's ``card.json`` + ``model.safetensors`` (``ClipModel.save_pretrained``);
    - ``"transformers"``: ``config.json``, ``model.safetensors``, ``preprocessor_config.json`` and the tokenizer's
      files, for ``transformers.CLIPModel`` / ``CLIPProcessor.from_pretrained`` (ViT cards only);
    - ``"open_clip"``: ``open_clip_config.json`` + ``open_clip_model.safetensors``, for
      ``open_clip.create_model_and_transforms("local-dir:DIR")``;
    - ``"onnx"``: ``image.onnx``, ``text.onnx`` and ``card.json`` (needs ``clip-core[onnx]``).

    Weights leave through the exporters the tower kinds register (see ``docs/plugins.md``). The write is atomic;
    ``directory`` may not exist, be empty, or hold an earlier export in the same format. :class:`ExportError` for an
    unknown format, a card the format cannot express (named in the message), or a folder holding other files.
    """
    if format == "clip-sdk":
        return model.save_pretrained(directory)
    if format not in _FORMATS:
        raise ExportError(f"unknown export format {format!r}; formats: {', '.join(EXPORT_FORMATS)}")
    spec = _FORMATS[format]
    target = Path(directory)
    if target.exists():
        if not target.is_dir():
            raise ExportError(f"{target} exists and is not a directory")
        foreign = sorted(name for name in os.listdir(target) if not spec.owns(name))
        if foreign:
            raise ExportError(
                f"refusing to overwrite {target}: it holds files that are not part of a {format} export "
                f"({', '.join(foreign[:5])}); export to a new or empty directory"
            )
    with staged_folder(target) as staging:
        spec.write(model, staging)
    return target
