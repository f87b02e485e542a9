"""Contrastive losses for clip-sdk: CLIP's InfoNCE, NT-Xent and SigLIP, with torch.distributed gathering.

Registered with clip-core as the losses ``clip``, ``siglip`` and ``ntxent``
(``clip_core.registry.loss("clip").loss(**options)``).
"""

from importlib.metadata import PackageNotFoundError, version

from clip_losses.distributed import gather_with_grad
from clip_losses.infonce import ClipLoss
from clip_losses.ntxent import NTXentLoss
from clip_losses.siglip import SigLipLoss

try:
    __version__ = version("clip-losses")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0+unknown"

__all__ = ["ClipLoss", "NTXentLoss", "SigLipLoss", "__version__", "gather_with_grad"]
