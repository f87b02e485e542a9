"""Hook implementations: the losses `clip`, `siglip` and `ntxent`."""

from __future__ import annotations

from typing import Any

import clip_core
from clip_losses.infonce import ClipLoss
from clip_losses.ntxent import NTXentLoss
from clip_losses.siglip import SigLipLoss

CLIP_PLUGIN_API = "1.0"


@clip_core.hookimpl
def clip_register_losses(register: Any) -> None:
    register(name="clip", loss=ClipLoss)
    register(name="siglip", loss=SigLipLoss)
    register(name="ntxent", loss=NTXentLoss)
