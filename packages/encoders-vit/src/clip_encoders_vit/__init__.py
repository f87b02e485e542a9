"""Vision Transformer image towers (ViT-B/32 ... ViT-g-14) and any timm backbone as an image tower for clip-sdk."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("clip-encoders-vit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0+unknown"

__all__ = ["__version__"]
