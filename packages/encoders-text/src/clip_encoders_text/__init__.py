"""CLIP's masked text transformer (tower kind `text-transformer`) and lower-case BPE tokenizer (kind `clip-bpe`)."""

from importlib.metadata import PackageNotFoundError, version

from clip_encoders_text.model import TextTransformer, TextTransformerConfig
from clip_encoders_text.tokenizer import ClipBpeTokenizer

try:
    __version__ = version("clip-encoders-text")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0+unknown"

__all__ = ["ClipBpeTokenizer", "TextTransformer", "TextTransformerConfig", "__version__"]
