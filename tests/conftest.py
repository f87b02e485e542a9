"""Shared fixtures. The cards `tiny`, `tiny-wide` and `tiny-long` come from the installed test plugin."""

from __future__ import annotations

from typing import Any

import pytest


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
