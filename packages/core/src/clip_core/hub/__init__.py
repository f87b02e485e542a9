"""Weights from elsewhere: pretrained tags (:mod:`~clip_core.hub.pretrained`), downloads
(:mod:`~clip_core.hub.download`) and the cache they land in (:mod:`~clip_core.hub.cache`)."""

from __future__ import annotations

from clip_core.hub.cache import CACHE_ENV, cache_dir, cached_file
from clip_core.hub.download import download_hub, download_url, fetch_weights, sha256_file
from clip_core.hub.pretrained import PretrainedWeights, package_pretrained

__all__ = [
    "CACHE_ENV",
    "PretrainedWeights",
    "cache_dir",
    "cached_file",
    "download_hub",
    "download_url",
    "fetch_weights",
    "package_pretrained",
    "sha256_file",
]
