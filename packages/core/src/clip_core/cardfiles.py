"""Reading card files: JSON, YAML or TOML, chosen by the file's suffix."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import yaml

from clip_core.errors import CardError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["CARD_SUFFIXES", "read_card_file"]


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
