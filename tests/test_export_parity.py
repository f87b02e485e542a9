"""Exported folders load in the peer libraries themselves, with their own loaders, and give our embeddings.

For every seed card and small variants of each family: ours → open_clip folder → ``open_clip.create_model_and_transforms
("local-dir:DIR")`` and ours → transformers folder → ``transformers.CLIPModel.from_pretrained(DIR)`` give the same
image and text embeddings (relative error ≤ 1e-5); open_clip's preprocessing and tokenizer read from the folder give
our pixels and ids, transformers' ``CLIPProcessor`` our ids; and ours → folder → ``clip_core.load_checkpoint`` is the
identity. Seed cards other than RN50 and ViT-B-32 (with its quickgelu twin) are marked ``slow`` and run once, in
``nox -s parity``: each family is covered on every Python by the small cards.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

import clip_core
from clip_core import ClipModel, ModelCard, registry
from clip_core.testing import randomize_batch_norms

open_clip = pytest.importorskip("open_clip")
transformers = pytest.importorskip("transformers")

#: The seed cards: every card of clip-encoders-vit and clip-encoders-resnet with published weights (pretrained tags).
SEED_CARDS = [
    name
    for name in clip_core.list_cards()
    if registry.card_entry(name).plugin in {"vit", "resnet"} and registry.pretrained_tags(name)
]
#: Seed cards checked on every Python; the others (each family is covered by the small cards too) run once, in the
#: `parity` session, with the largest.
EVERY_PYTHON = {"RN50", "ViT-B-32", "ViT-B-32-quickgelu"}
SLOW = set(SEED_CARDS) - EVERY_PYTHON
TEXTS = ["", "a photo of a cat.", "a diagram of " + "a very long caption " * 20]


def _text(activation: str, **fields: Any) -> dict[str, Any]:
    return {"kind": "text-transformer", "width": 48, "layers": 2, "heads": 4, "activation": activation, **fields}


#: One small card per family and variant of the seed cards: ViT (gelu, quick_gelu, a B-16-plus-240-like size with
#: g-14's fractional MLP ratio and other mean / std), modified ResNet (gelu, quick_gelu with other heads).
SMALL_CARDS: dict[str, dict[str, Any]] = {
    "small-vit": {
        "embed_dim": 40,
        "image": {"kind": "vit", "image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "heads": 2},
        "text": _text("gelu", context_length=32),
    },
    "small-vit-quickgelu": {
        "embed_dim": 24,
        "image": {
            "kind": "vit",
            "image_size": 48,
            "patch_size": 16,
            "width": 96,
            "layers": 2,
            "heads": 3,
            "mlp_ratio": 4.3637,
            "activation": "quick_gelu",
        },
        "text": _text("quick_gelu"),
        "preprocess": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.5, 0.75], "interpolation": "bilinear"},
    },
    "small-rn": {
        "embed_dim": 32,
        "image": {"kind": "modified-resnet", "image_size": 64, "layers": [1, 2, 1, 1], "width": 16},
        "text": _text("gelu", context_length=20),
    },
    "small-rn-quickgelu": {
        "embed_dim": 32,
        "image": {"kind": "modified-resnet", "image_size": 64, "layers": [1, 1, 1, 1], "width": 16, "heads": 4},
        "text": _text("quick_gelu"),
    },
}
ALL = [*SMALL_CARDS, *SEED_CARDS]
CARDS = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in ALL]
VIT_CARDS = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in ALL if "vit" in n.lower()]


def card_of(name: str) -> ModelCard:
    return clip_core.get_card({"name": name, **SMALL_CARDS[name]}) if name in SMALL_CARDS else clip_core.get_card(name)


def random_model(card: ModelCard) -> ClipModel:
    torch.manual_seed(0)
    model = clip_core.create_model(card).eval()
    randomize_batch_norms(model)
    with torch.no_grad():
        model.logit_scale.fill_(3.5)
    return model


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).abs().max() / reference.abs().max())


def picture(seed: int = 0) -> Image.Image:
    generator = torch.Generator().manual_seed(seed)
    array = torch.randint(0, 256, (45, 70, 3), dtype=torch.uint8, generator=generator)
    return Image.fromarray(array.numpy())


def inputs(card: ModelCard, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    size = card.preprocess.image_size
    pixels = torch.randn(1 if name in SLOW else 2, 3, size, size, generator=torch.Generator().manual_seed(1))
    return pixels, clip_core.get_tokenizer(card)(TEXTS)


def features(output: Any) -> torch.Tensor:
    """transformers 5 returns an output object holding the projected features in ``pooler_output``."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def check_open_clip(model: ClipModel, name: str, folder: Path) -> None:
    card = model.card
    clip_core.export_model(model, folder, format="open_clip")
    reference, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    reference.eval()
    pixels, ids = inputs(card, name)
    with torch.no_grad():
        assert relative_error(model.encode_image(pixels), reference.encode_image(pixels)) <= 1e-5
        assert relative_error(model.encode_text(ids), reference.encode_text(ids)) <= 1e-5
    assert torch.equal(preprocess(picture()), clip_core.get_preprocess(card)(picture()))
    assert torch.equal(open_clip.get_tokenizer(f"local-dir:{folder}")(TEXTS), ids)
    del reference  # at most two copies of the weights in memory at once: ViT-g-14's are 5.5 GB
    gc.collect()
    check_reads_back(model, folder)  # the card read back from open_clip_config.json


def check_reads_back(model: ClipModel, folder: Path) -> None:
    """``clip_core.load_checkpoint`` reads the folder back as the same network and weights."""
    loaded = clip_core.load_checkpoint(folder)
    assert network(loaded.card) == network(model.card)
    assert_same_weights(loaded, model)
    del loaded
    gc.collect()


def check_transformers(model: ClipModel, name: str, folder: Path) -> None:
    card = model.card
    clip_core.export_model(model, folder, format="transformers")
    reference, info = transformers.CLIPModel.from_pretrained(folder, output_loading_info=True)
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    reference.eval()
    pixels, ids = inputs(card, name)
    with torch.no_grad():
        ours, theirs = model.encode_image(pixels), features(reference.get_image_features(pixel_values=pixels))
        assert relative_error(ours, theirs) <= 1e-5
        ours, theirs = model.encode_text(ids), features(reference.get_text_features(input_ids=ids))
        assert relative_error(ours, theirs) <= 1e-5
    del reference
    gc.collect()
    check_reads_back(model, folder)


def network(card: ModelCard) -> dict[str, Any]:
    """What decides the network a card builds: its towers with MLP widths (ratios are read back rounded), and width."""
    towers = {}
    for field in ("image", "text"):
        config = getattr(card, field).model_dump()
        if "mlp_ratio" in config:  # a ResNet has none
            config["mlp_ratio"] = int(config["width"] * config.pop("mlp_ratio"))
        towers[field] = config
    return {**towers, "embed_dim": card.embed_dim}


def assert_same_weights(loaded: ClipModel, model: ClipModel) -> None:
    expected, actual = model.state_dict(), loaded.state_dict()
    assert actual.keys() == expected.keys()
    assert all(torch.equal(actual[key], value) for key, value in expected.items())


def test_the_seed_cards_read_from_the_registry_include_those_checked_on_every_python() -> None:
    """A lookup that found too few seed cards would leave them unchecked without failing."""
    assert set(SEED_CARDS) > EVERY_PYTHON


@pytest.mark.parametrize("name", CARDS)
def test_open_clip_folder_loads_in_open_clip_with_our_embeddings_pixels_and_ids(name: str, scratch_path: Path) -> None:
    model = random_model(card_of(name))
    check_open_clip(model, name, scratch_path / "open_clip")


@pytest.mark.parametrize("name", VIT_CARDS)
def test_transformers_folder_loads_in_transformers_with_our_embeddings(name: str, scratch_path: Path) -> None:
    model = random_model(card_of(name))
    check_transformers(model, name, scratch_path / "transformers")


@pytest.mark.parametrize("name", ["small-vit", "small-vit-quickgelu"])
def test_clip_processor_from_the_folder_gives_our_ids_and_pixels_within_its_resizing(name: str, tmp_path: Path) -> None:
    """CLIPProcessor reads the folder offline: its ids are ours without the padding, its pixels ours up to its own
    resizing code (FACTS: within ~0.015 of open_clip's), and the configured settings are the card's."""
    card = card_of(name)
    clip_core.export_model(random_model(card), tmp_path, format="transformers")
    processor = transformers.CLIPProcessor.from_pretrained(tmp_path)
    ours = clip_core.get_tokenizer(card)(TEXTS)
    encoded = processor.tokenizer(TEXTS, truncation=True, max_length=card.tokenizer.context_length)
    for row, theirs in zip(ours, encoded["input_ids"], strict=True):
        assert row[: len(theirs)].tolist() == theirs and not row[len(theirs) :].any()
    pixels = processor.image_processor(picture(), return_tensors="pt")["pixel_values"][0]
    expected = clip_core.get_preprocess(card)(picture())
    assert pixels.shape == expected.shape
    assert float((pixels - expected).abs().max()) < 0.05
    assert list(processor.image_processor.image_mean) == list(card.preprocess.mean)
    assert list(processor.image_processor.image_std) == list(card.preprocess.std)


@pytest.mark.parametrize("proj", ["linear", "mlp", "classifier"])
def test_a_timm_image_tower_exports_to_open_clip_with_our_embeddings(proj: str, tmp_path: Path) -> None:
    """The `timm` kind's projections map onto open_clip's `timm_proj` ('linear', 'mlp', and '' for timm's head)."""
    card = clip_core.get_card(
        {
            "name": "small-timm",
            "embed_dim": 16,
            "image": {"kind": "timm", "model_name": "test_convnext", "image_size": 32, "proj": proj},
            "text": _text("gelu", context_length=16),
        }
    )
    model = random_model(card)
    clip_core.export_model(model, tmp_path, format="open_clip")
    reference = open_clip.create_model_and_transforms(f"local-dir:{tmp_path}")[0].eval()
    pixels, ids = inputs(card, "small-timm")
    with torch.no_grad():
        assert relative_error(model.encode_image(pixels), reference.encode_image(pixels)) <= 1e-5
        assert relative_error(model.encode_text(ids), reference.encode_text(ids)) <= 1e-5
