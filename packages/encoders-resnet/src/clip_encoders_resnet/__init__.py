"""OpenAI's modified ResNet image towers (RN50, RN101, RN50x4, RN50x16, RN50x64) for clip-sdk, on timm."""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from clip_encoders_resnet.config import ModifiedResNetConfig

if TYPE_CHECKING:
    from clip_encoders_resnet.model import ModifiedResNet

try:
    __version__ = version("clip-encoders-resnet")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0+unknown"

__all__ = ["ModifiedResNet", "ModifiedResNetConfig", "__version__"]


def __getattr__(name: str) -> Any:
    """The tower module is imported on first use: it imports timm, which plugin discovery should not pay for."""
    if name == "ModifiedResNet":
        from clip_encoders_resnet.model import ModifiedResNet

        return ModifiedResNet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
