"""The conformance kit, applied to the test plugin's towers (as every tower package applies it to its own)."""

from __future__ import annotations

from clip_core.testing import TowerConformanceTests
from clip_test_towers.model import BagOfWordsConfig, PatchMeanConfig


class TestPatchMeanTower(TowerConformanceTests):
    config = PatchMeanConfig(image_size=16, patch_size=4, width=12)


class TestBagOfWordsTower(TowerConformanceTests):
    config = BagOfWordsConfig(context_length=12, width=10)
    embed_dim = 6
