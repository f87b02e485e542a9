"""Every published card, loaded through ``clip_core.load_checkpoint`` from a randomly initialised peer model's state
dict, gives that peer's image and text embeddings (relative error ≤ 1e-5).

The largest cards are marked ``slow``: ``nox -s parity`` runs them once, ``nox -s tests`` runs the rest on every
Python version.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

import clip_core
from clip_core import registry
from clip_core.testing import randomize_batch_norms

open_clip = pytest.importorskip("open_clip")
transformers = pytest.importorskip("transformers")

#: Every card of clip-encoders-vit and clip-encoders-resnet with published weights (pretrained tags).
PUBLISHED = [
    name
    for name in clip_core.list_cards()
    if registry.card_entry(name).plugin in {"vit", "resnet"} and registry.pretrained_tags(name)
]
SLOW = {"RN50x16", "RN50x64", "ViT-L-14", "ViT-L-14-336", "ViT-H-14", "ViT-g-14"}
TEXTS = ["", "a photo of a cat.", "a diagram of " + "a very long caption " * 20]


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).abs().max() / reference.abs().max())


def test_the_published_cards_read_from_the_registry_include_every_card_marked_slow() -> None:
    """The parametrisation below comes from the registry (which cards have published weights is checked against
    FACTS.md in test_pretrained.py): a lookup that found too few would leave cards unchecked without failing."""
    assert set(PUBLISHED) > SLOW


def test_openai_names_are_aliases() -> None:
    for alias, name in [("ViT-B/32", "ViT-B-32"), ("ViT-B/16", "ViT-B-16"), ("ViT-L/14", "ViT-L-14")]:
        assert clip_core.get_card(alias).name == name
    assert clip_core.get_card("ViT-L/14@336px").name == "ViT-L-14-336"


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in PUBLISHED])
def test_card_matches_open_clip(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = open_clip.create_model(name).eval()
    randomize_batch_norms(reference)
    card = clip_core.get_card(name)
    path = tmp_path / "open_clip.pt"
    torch.save(reference.state_dict(), path)
    ours = clip_core.load_checkpoint(path, card=name)
    path.unlink()
    batch = 1 if name in SLOW else 2
    size = card.preprocess.image_size
    pixels = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    ids = clip_core.get_tokenizer(card)(TEXTS)
    with torch.no_grad():
        image_error = relative_error(ours.encode_image(pixels), reference.encode_image(pixels))
        text_error = relative_error(ours.encode_text(ids), reference.encode_text(ids))
    del reference, ours
    gc.collect()
    assert image_error <= 1e-5
    assert text_error <= 1e-5


def _hf_config(card: clip_core.ModelCard) -> Any:
    image, text = card.image, card.text
    return transformers.CLIPConfig(
        projection_dim=card.embed_dim,
        vision_config={
            "hidden_size": image.width,  # type: ignore[attr-defined]
            "intermediate_size": int(image.width * image.mlp_ratio),  # type: ignore[attr-defined]
            "num_hidden_layers": image.layers,  # type: ignore[attr-defined]
            "num_attention_heads": image.heads,  # type: ignore[attr-defined]
            "image_size": image.image_size,  # type: ignore[attr-defined]
            "patch_size": image.patch_size,  # type: ignore[attr-defined]
            "hidden_act": image.activation,  # type: ignore[attr-defined]
            "layer_norm_eps": 1e-5,
        },
        text_config={
            "hidden_size": text.width,  # type: ignore[attr-defined]
            "intermediate_size": int(text.width * text.mlp_ratio),  # type: ignore[attr-defined]
            "num_hidden_layers": text.layers,  # type: ignore[attr-defined]
            "num_attention_heads": text.heads,  # type: ignore[attr-defined]
            "max_position_embeddings": text.context_length,  # type: ignore[attr-defined]
            "hidden_act": text.activation,  # type: ignore[attr-defined]
            "layer_norm_eps": 1e-5,
            "eos_token_id": 49407,
            "bos_token_id": 49406,
        },
    )


def _small_vit_card(activation: str) -> dict[str, Any]:
    return {
        "name": f"small-vit-{activation}",
        "embed_dim": 40,
        "image": {
            "kind": "vit",
            "image_size": 64,
            "patch_size": 16,
            "width": 64,
            "layers": 2,
            "heads": 4,
            "activation": activation,
        },
        "text": {"kind": "text-transformer", "width": 48, "layers": 2, "heads": 4, "activation": activation},
        "tokenizer": {"kind": "clip-bpe"},
    }


@pytest.mark.parametrize(
    "spec", ["ViT-B-32-quickgelu", _small_vit_card("gelu")], ids=["ViT-B-32-quickgelu", "small-gelu"]
)
def test_card_matches_transformers_clip_model(spec: Any, tmp_path: Path) -> None:
    torch.manual_seed(0)
    card = clip_core.get_card(spec)
    reference = transformers.CLIPModel(_hf_config(card)).eval()
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, tmp_path / "model.safetensors")
    ours = clip_core.load_checkpoint(tmp_path / "model.safetensors", card=card)
    size = card.preprocess.image_size
    pixels = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    ids = clip_core.get_tokenizer(card)(TEXTS)
    hf_ids = torch.where(ids == 0, torch.full_like(ids, 49407), ids)  # transformers pads with the end token
    with torch.no_grad():
        image, text = reference.get_image_features(pixel_values=pixels), reference.get_text_features(input_ids=hf_ids)
        image = image if isinstance(image, torch.Tensor) else image.pooler_output
        text = text if isinstance(text, torch.Tensor) else text.pooler_output
        assert relative_error(ours.encode_image(pixels), image) <= 1e-5
        assert relative_error(ours.encode_text(ids), text) <= 1e-5
        assert torch.allclose(ours.logit_scale, reference.logit_scale)


@pytest.mark.parametrize(
    ("backbone", "pool", "proj", "size"),
    [("test_convnext", "avg", "linear", 64), ("test_vit", "token", "mlp", 160), ("resnet18", "avg", "classifier", 64)],
)
def test_timm_tower_card_matches_open_clip_timm_model(
    backbone: str, pool: str, proj: str, size: int, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    text = {"width": 32, "layers": 1, "heads": 2}
    timm_proj = "" if proj == "classifier" else proj
    vision_cfg = {"timm_model_name": backbone, "timm_pool": pool, "timm_proj": timm_proj, "image_size": size}
    reference = open_clip.model.CLIP(embed_dim=24, vision_cfg=vision_cfg, text_cfg=text).eval()
    torch.save(reference.state_dict(), tmp_path / "timm.pt")
    card = {
        "name": f"{backbone}-clip",
        "embed_dim": 24,
        "image": {"kind": "timm", "model_name": backbone, "pool": pool, "proj": proj, "image_size": size},
        "text": {"kind": "text-transformer", **text},
        "tokenizer": {"kind": "clip-bpe"},
    }
    ours = clip_core.load_checkpoint(tmp_path / "timm.pt", card=card)
    pixels = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert relative_error(ours.encode_image(pixels), reference.encode_image(pixels)) <= 1e-5


def _our_cards() -> list[str]:
    return [name for name in clip_core.list_cards() if registry.card_entry(name).plugin in {"vit", "resnet"}]


@pytest.mark.parametrize("name", _our_cards())
def test_every_shipped_card_is_open_clips_configuration(name: str) -> None:
    """Each card (the quickgelu variants too) describes the network open_clip's configuration of that name builds."""
    expected: dict[str, Any] = open_clip.get_model_config(name)
    card = clip_core.get_card(name)
    vision, text = expected["vision_cfg"], expected["text_cfg"]
    image = card.image.model_dump()
    quick = "quick_gelu" if expected.get("quick_gelu", False) else "gelu"
    assert card.embed_dim == expected["embed_dim"]
    assert image["image_size"] == vision["image_size"]
    assert image["width"] == vision["width"]
    assert (list(image["layers"]) if image["kind"] == "modified-resnet" else image["layers"]) == vision["layers"]
    if image["kind"] == "vit":
        assert image["patch_size"] == vision["patch_size"]
        assert image["heads"] == vision["width"] // vision.get("head_width", 64)
        assert int(image["width"] * image["mlp_ratio"]) == int(vision["width"] * vision.get("mlp_ratio", 4.0))
        assert image["activation"] == quick
    for field in ("context_length", "vocab_size", "width", "heads", "layers"):
        assert card.text.model_dump()[field] == text[field], field
    assert card.text.model_dump()["activation"] == quick
