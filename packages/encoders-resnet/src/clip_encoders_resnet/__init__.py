"""OpenAI's modified ResNet image towers (RN50, RN101, RN50x4, RN50x16, RN50x64) for clip-sdk, on timm."""

from importlib.metadata import PackageNotFoundError, version

from clip_encoders_resnet.model import ModifiedResNet, ModifiedResNetConfig

try:
    __version__ = version("clip-encoders-resnet")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0+unknown"

__all__ = ["ModifiedResNet", "ModifiedResNetConfig", "__version__"]
