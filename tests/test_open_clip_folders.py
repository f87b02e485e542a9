"""open_clip folders (``open_clip_config.json`` + ``open_clip_model.safetensors`` or ``open_clip_pytorch_model.bin``)
load with ``load_checkpoint``: built here with open_clip's own code (ViT, modified ResNet and timm image towers),
they give open_clip's embeddings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import open_clip
import pytest
import torch
from safetensors.torch import save_file

import clip_core
from clip_core.checkpoints import open_checkpoint
from clip_core.checkpoints.openclip import infer_from_open_clip_config

TEXT_CFG = {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}
VIT_CFG = {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32}
RESNET_CFG = {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16}
TIMM_CFG = {"timm_model_name": "test_convnext", "timm_pool": "avg", "timm_proj": "linear", "image_size": 64}


def open_clip_folder(
    directory: Path,
    vision: dict[str, Any],
    *,
    quick_gelu: bool = False,
    preprocess: dict[str, Any] | None = None,
    weights: str = "open_clip_model.safetensors",
    seed: int = 0,
) -> Any:
    """A random open_clip CLIP saved as open_clip's hub repositories hold it; returns the open_clip model."""
    model_cfg = {"embed_dim": 24, "quick_gelu": quick_gelu, "vision_cfg": vision, "text_cfg": TEXT_CFG}
    torch.manual_seed(seed)
    model = open_clip.model.CLIP(**model_cfg).eval()
    directory.mkdir(parents=True, exist_ok=True)
    state = {key: value.contiguous() for key, value in model.state_dict().items()}
    if weights.endswith(".safetensors"):
        save_file(state, directory / weights)
    else:
        torch.save(state, directory / weights)
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess or {}}
    (directory / "open_clip_config.json").write_text(json.dumps(config), encoding="utf-8")
    return model


def assert_open_clip_embeddings(model: clip_core.ClipModel, reference: Any) -> None:
    """Our embeddings equal open_clip's on the same pixels and ids (relative error at most 1e-5)."""
    size = model.card.preprocess.image_size
    torch.manual_seed(1)
    pixels = torch.randn(3, 3, size, size)
    ids = open_clip.get_tokenizer("ViT-B-32")(["a photo of a dog", "a cat on a mat", "x"])
    with torch.no_grad():
        pairs = [(model.encode_image(pixels), reference.encode_image(pixels))]
        pairs.append((model.encode_text(ids), reference.encode_text(ids)))
    for ours, theirs in pairs:
        assert ((ours - theirs).norm() / theirs.norm()).item() <= 1e-5


@pytest.mark.parametrize("quick_gelu", [False, True], ids=["gelu", "quick_gelu"])
@pytest.mark.parametrize(
    ("vision", "kind"),
    [(VIT_CFG, "vit"), (RESNET_CFG, "modified-resnet"), (TIMM_CFG, "timm")],
    ids=["vit", "resnet", "timm"],
)
def test_an_open_clip_folder_loads_without_a_card_and_gives_open_clips_embeddings(
    vision: dict[str, Any], kind: str, quick_gelu: bool, tmp_path: Path
) -> None:
    reference = open_clip_folder(tmp_path / "small", vision, quick_gelu=quick_gelu)
    loaded = open_checkpoint(tmp_path / "small")
    card = loaded.model.card
    assert loaded.format == "open_clip directory"
    assert card.name == "inferred-small" and card.embed_dim == 24
    assert card.image.kind == kind
    assert card.text.model_dump()["activation"] == ("quick_gelu" if quick_gelu else "gelu")
    assert_open_clip_embeddings(loaded.model, reference)


def test_the_pytorch_bin_file_is_read_when_there_is_no_safetensors_file(tmp_path: Path) -> None:
    reference = open_clip_folder(tmp_path, VIT_CFG, weights="open_clip_pytorch_model.bin")
    assert_open_clip_embeddings(clip_core.load_checkpoint(tmp_path), reference)


def test_preprocess_cfg_becomes_the_cards_preprocessing(tmp_path: Path) -> None:
    preprocess = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bilinear"}
    open_clip_folder(tmp_path, VIT_CFG, preprocess={**preprocess, "resize_mode": "squash"})
    card = clip_core.load_checkpoint(tmp_path).card
    assert card.preprocess.mean == (0.5, 0.5, 0.5) and card.preprocess.std == (0.25, 0.25, 0.25)
    assert card.preprocess.interpolation == "bilinear" and card.preprocess.resize_mode == "squash"


def test_a_registered_architecture_loads_as_the_registered_card(tmp_path: Path) -> None:
    """open_clip's own ViT-B-32 config names the registered card (same network and preprocessing)."""
    data = {"model_cfg": open_clip.get_model_config("ViT-B-32"), "preprocess_cfg": {}}
    (tmp_path / "open_clip_config.json").write_text(json.dumps(data), encoding="utf-8")
    found = infer_from_open_clip_config(tmp_path)
    assert found.registered and found.card.name == "ViT-B-32"


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [
        ("vision_cfg", "ls_init_value", 0.1),
        ("vision_cfg", "no_ln_pre", True),
        ("text_cfg", "hf_tokenizer_name", "bert-base-uncased"),
        ("text_cfg", "pool_type", "last"),
        ("text_cfg", "a_new_option", True),
    ],
)
def test_options_the_towers_do_not_implement_are_refused_naming_the_field(
    section: str, field: str, value: Any, tmp_path: Path
) -> None:
    open_clip_folder(tmp_path, VIT_CFG)
    config = json.loads((tmp_path / "open_clip_config.json").read_text())
    config["model_cfg"][section][field] = value
    (tmp_path / "open_clip_config.json").write_text(json.dumps(config))
    with pytest.raises(clip_core.CheckpointError, match=rf"model_cfg\.{section}\.{field}"):
        clip_core.load_checkpoint(tmp_path)


def test_a_folder_without_weights_names_the_files_looked_for(tmp_path: Path) -> None:
    open_clip_folder(tmp_path, VIT_CFG)
    (tmp_path / "open_clip_model.safetensors").unlink()
    with pytest.raises(clip_core.CheckpointError, match=r"open_clip_model\.safetensors, open_clip_pytorch_model\.bin"):
        clip_core.load_checkpoint(tmp_path)
