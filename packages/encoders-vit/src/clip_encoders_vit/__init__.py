"""Vision Transformer image towers (tower kind `vit`: ViT-B/32 ... ViT-g-14) and any timm backbone as an image
tower (kind `timm`) for clip-sdk, with the ViT cards."""

from importlib.metadata import PackageNotFoundError, version

from clip_encoders_vit.model import VitConfig, VitTower
from clip_encoders_vit.timm_model import TimmTower, TimmTowerConfig

try:
    __version__ = version("clip-encoders-vit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0+unknown"

__all__ = ["TimmTower", "TimmTowerConfig", "VitConfig", "VitTower", "__version__"]
