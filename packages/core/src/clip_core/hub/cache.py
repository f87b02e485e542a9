"""Where downloaded weights are kept.

Weights downloaded from URLs go to one cache directory shared by every clip-sdk process: ``$CLIP_CACHE`` if set,
else ``$XDG_CACHE_HOME/clip-sdk``, else ``~/.cache/clip-sdk``. Inside it:

- ``downloads/<key>/<file name>``: files downloaded from URLs (``<key>``: the first 16 hex digits of the URL's
  SHA-256); ``<file name>.partial`` while a download is under way or was interrupted (the next one resumes it);
- ``locks/<key>.lock``: held while a URL is downloaded, so that two processes never write the same file.

A file is in ``downloads/`` only once it is complete and its SHA-256 (when the entry gives one) was checked.

Weights on the Hugging Face hub go to the standard Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``,
else ``~/.cache/huggingface/hub``; see :func:`clip_core.hub.settings.hub_cache`), which open_clip and transformers
share: a file one of them downloaded is not downloaded again.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from clip_core.hub.pretrained import PretrainedWeights
from clip_core.hub.settings import hub_cache

__all__ = ["CACHE_ENV", "cache_dir", "cached_file", "lock_path", "url_cache_path"]

#: The environment variable naming the cache directory.
CACHE_ENV = "CLIP_CACHE"

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def cache_dir() -> Path:
    """The cache directory: ``$CLIP_CACHE``, else ``$XDG_CACHE_HOME/clip-sdk``, else ``~/.cache/clip-sdk``.

    It is not created here; downloading creates what it needs.
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "clip-sdk"


def _url_key(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def url_cache_path(url: str, root: Path | None = None) -> Path:
    """The file ``url`` is downloaded to: ``downloads/<key>/<the URL's file name>`` under the cache directory."""
    name = _UNSAFE.sub("_", unquote(urlsplit(url).path.rsplit("/", 1)[-1])).lstrip(".") or "download"
    return (root or cache_dir()) / "downloads" / _url_key(url) / name


def lock_path(url: str, root: Path | None = None) -> Path:
    """The lock file held while ``url`` is downloaded."""
    return (root or cache_dir()) / "locks" / f"{_url_key(url)}.lock"


def cached_file(weights: PretrainedWeights, root: Path | None = None) -> Path | None:
    """The cached file of ``weights`` if it is complete in the cache (``root``, default :func:`cache_dir`, for URLs;
    the Hugging Face cache for hub files), else None. Makes no network request."""
    if weights.url is not None:
        path = url_cache_path(weights.url, root)
        return path if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    for filename in weights.hub_filenames():
        found = try_to_load_from_cache(str(weights.hf_hub_id), filename, cache_dir=hub_cache())
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None
