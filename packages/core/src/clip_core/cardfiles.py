"""Reading card files: JSON, YAML or TOML, chosen by the file's suffix; finding those a package ships."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from clip_core.errors import CardError, PluginError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from importlib.resources.abc import Traversable
    else:
        from importlib.abc import Traversable

__all__ = ["CARD_SUFFIXES", "package_cards", "read_card_file"]


class _Readable(Protocol):
    name: str

    def read_text(self, encoding: str = ...) -> str: ...


def _yaml(text: str) -> Any:
    return yaml.safe_load(text)


_PARSERS: dict[str, Callable[[str], Any]] = {
    ".json": json.loads,
    ".yaml": _yaml,
    ".yml": _yaml,
    ".toml": tomllib.loads,
}
CARD_SUFFIXES = tuple(_PARSERS)


def read_card_file(path: str | os.PathLike[str] | _Readable) -> dict[str, Any]:
    """Parse a card file into a dict; :class:`CardError` naming the file for anything unreadable.

    ``path`` may be a filesystem path or an ``importlib.resources`` traversable (a card shipped as package data).
    """
    source: Any = path if hasattr(path, "read_text") else Path(path)
    suffix = Path(str(source.name)).suffix.lower()
    parse = _PARSERS.get(suffix)
    if parse is None:
        raise CardError(f"{path}: a card file must end in one of {', '.join(CARD_SUFFIXES)}")
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CardError(f"{path}: no such card file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CardError(f"{path}: cannot read card file: {exc}") from None
    try:
        data = parse(text)
    except (ValueError, yaml.YAMLError) as exc:  # json/toml raise ValueError subclasses
        raise CardError(f"{path}: not valid {suffix[1:].upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise CardError(f"{path}: a card file holds a mapping (object) at the top, not {type(data).__name__}")
    return data


def package_cards(package: str, folder: str = "cards") -> list[Traversable]:
    """The card files (every suffix in :data:`CARD_SUFFIXES`) in ``package``'s data folder ``folder``, sorted by
    name, ready for a ``clip_register_cards`` hook to ``register`` one by one; :class:`PluginError` naming the
    package and the path when the folder is missing."""
    directory = files(package).joinpath(folder)
    if not directory.is_dir():
        raise PluginError(f"package {package!r} has no card folder {folder!r} ({directory})")
    cards = (item for item in directory.iterdir() if item.is_file() and Path(item.name).suffix.lower() in CARD_SUFFIXES)
    return sorted(cards, key=lambda item: item.name)
