"""Weights from elsewhere: pretrained tags (:mod:`~clip_core.hub.pretrained`), downloads
(:mod:`~clip_core.hub.download`), the caches they land in (:mod:`~clip_core.hub.cache`,
:mod:`~clip_core.hub.settings`), models named ``hf-hub:ORG/NAME[@REVISION]`` (:mod:`~clip_core.hub.hfhub`) and
pushing models to the hub (:mod:`~clip_core.hub.push`)."""

from __future__ import annotations

from clip_core.hub.cache import CACHE_ENV, cache_dir, cached_file
from clip_core.hub.download import download_hub, download_url, fetch_weights, sha256_file
from clip_core.hub.hfhub import HUB_PREFIX, HubName, hub_snapshot, is_hub_name, parse_hub_name
from clip_core.hub.pretrained import PretrainedWeights, package_pretrained
from clip_core.hub.push import model_card_readme, prepare_push, push_to_hub
from clip_core.hub.settings import hub_cache, hub_endpoint, hub_offline

__all__ = [
    "CACHE_ENV",
    "HUB_PREFIX",
    "HubName",
    "PretrainedWeights",
    "cache_dir",
    "cached_file",
    "download_hub",
    "download_url",
    "fetch_weights",
    "hub_cache",
    "hub_endpoint",
    "hub_offline",
    "hub_snapshot",
    "is_hub_name",
    "model_card_readme",
    "package_pretrained",
    "parse_hub_name",
    "prepare_push",
    "push_to_hub",
    "sha256_file",
]
