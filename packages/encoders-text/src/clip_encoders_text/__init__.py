"""CLIP's masked text transformer and its lower-case BPE tokenizer for clip-sdk."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("clip-encoders-text")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0+unknown"

__all__ = ["__version__"]
