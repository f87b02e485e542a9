"""Contrastive losses for clip-sdk: CLIP's InfoNCE, NT-Xent and SigLIP, with torch.distributed gathering."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("clip-losses")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0+unknown"

__all__ = ["__version__"]
