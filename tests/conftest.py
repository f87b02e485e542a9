"""Shared fixtures. The cards `tiny`, `tiny-wide` and `tiny-long` come from the installed test plugin."""

from __future__ import annotations

import importlib
import os
from typing import Any

import pytest

if os.environ.get("CLIP_REQUIRE_PEERS"):  # set by `nox -s tests`: peer-parity tests must run, never skip
    for peer in ("open_clip", "transformers", "clip_benchmark.datasets.builder"):
        importlib.import_module(peer)


@pytest.fixture
def tiny_dict() -> dict[str, Any]:
    """A valid card as a plain dict, composed from the test plugin's tower kinds."""
    return {
        "name": "tiny-dict",
        "embed_dim": 12,
        "image": {"kind": "patch-mean", "image_size": 16, "patch_size": 4, "width": 8},
        "text": {"kind": "bag-of-words", "context_length": 10, "width": 8},
        "tokenizer": {"kind": "bytes"},
    }
