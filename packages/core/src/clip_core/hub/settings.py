"""The Hugging Face hub settings clip-sdk follows, read from the environment when they are needed.

The variables are huggingface_hub's own, so that clip-sdk, open_clip and transformers share one cache:
``HF_HUB_CACHE`` (else ``HF_HOME/hub``), ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``).
huggingface_hub reads them once, when it is imported; here they are read at each call, so that a variable set
later in the process (a notebook, a test) counts too. Unset, huggingface_hub's values apply
(``~/.cache/huggingface/hub``, https://huggingface.co).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["hub_cache", "hub_endpoint", "hub_offline"]

_TRUE = {"1", "ON", "YES", "TRUE"}


def hub_cache() -> Path:
    """The standard Hugging Face hub cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else huggingface_hub's."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.path.expandvars(os.environ["HF_HUB_CACHE"])).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.path.expandvars(os.environ["HF_HOME"])).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_endpoint() -> str:
    """The hub's address: ``$HF_ENDPOINT``, else huggingface_hub's (https://huggingface.co by default)."""
    if os.environ.get("HF_ENDPOINT"):
        return os.environ["HF_ENDPOINT"].rstrip("/")
    from huggingface_hub import constants

    return str(constants.ENDPOINT).rstrip("/")


def hub_offline() -> bool:
    """Whether the hub is off limits: ``$HF_HUB_OFFLINE`` (or, as huggingface_hub reads it, ``$TRANSFORMERS_OFFLINE``)
    is 1, on, yes or true when set, else huggingface_hub's setting."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    if value is not None and value.strip():
        return value.strip().upper() in _TRUE
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)
