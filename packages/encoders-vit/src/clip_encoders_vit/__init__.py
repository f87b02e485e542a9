"""Vision Transformer image towers (tower kind `vit`: ViT-B/32 ... ViT-g-14) and any timm backbone as an image
tower (kind `timm`) for clip-sdk, with the ViT cards."""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from clip_encoders_vit.config import TimmTowerConfig, VitConfig

if TYPE_CHECKING:
    from clip_encoders_vit.model import VitTower
    from clip_encoders_vit.timm_model import TimmTower

try:
    __version__ = version("clip-encoders-vit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0+unknown"

__all__ = ["TimmTower", "TimmTowerConfig", "VitConfig", "VitTower", "__version__"]


def __getattr__(name: str) -> Any:
    """The tower modules are imported on first use: they import timm, which plugin discovery should not pay for."""
    if name == "VitTower":
        from clip_encoders_vit.model import VitTower

        return VitTower
    if name == "TimmTower":
        from clip_encoders_vit.timm_model import TimmTower

        return TimmTower
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
