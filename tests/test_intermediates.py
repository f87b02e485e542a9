"""Dense features: ``ClipModel.forward_intermediates`` gives open_clip's numbers and keys on the same weights, for a
ViT, a ModifiedResNet and the text tower, and takes an int or a list of indices for every tower."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import clip_core
from clip_core.testing import randomize_batch_norms

open_clip = pytest.importorskip("open_clip")

TEXT_CFG = {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 3}
VIT_CFG = {"image_size": 64, "patch_size": 16, "width": 64, "layers": 4}
RESNET_CFG = {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16}


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).abs().max() / reference.abs().max())


@pytest.fixture(scope="module")
def vit_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, clip_core.ClipModel]:
    return pair(VIT_CFG, "vit", tmp_path_factory.mktemp("vit"))


@pytest.fixture(scope="module")
def resnet_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, clip_core.ClipModel]:
    return pair(RESNET_CFG, "modified-resnet", tmp_path_factory.mktemp("resnet"))


def pair(image: dict[str, Any], kind: str, tmp_path: Path, seed: int = 0) -> tuple[Any, clip_core.ClipModel]:
    """An open_clip CLIP with random weights and our model loading them."""
    torch.manual_seed(seed)
    reference = open_clip.model.CLIP(embed_dim=24, vision_cfg=image, text_cfg=TEXT_CFG).eval()
    randomize_batch_norms(reference, seed)
    torch.save(reference.state_dict(), tmp_path / "open_clip.pt")
    card = {"name": f"small-{kind}", "embed_dim": 24, "image": {"kind": kind, **image}}
    card["text"] = {"kind": "text-transformer", **TEXT_CFG}
    if kind == "modified-resnet":
        card["image"]["heads"] = 8
    return reference, clip_core.load_checkpoint(tmp_path / "open_clip.pt", card=card)


def inputs(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    ids = open_clip.tokenize(["a photo of a cat", "two dogs playing in the snow at night"])
    return pixels, ids


def assert_same(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        if isinstance(value, list):
            assert len(ours[key]) == len(value), key
            for mine, reference in zip(ours[key], value, strict=True):
                assert mine.shape == reference.shape, key
                assert relative_error(mine, reference) <= 1e-5, key
        else:
            assert relative_error(ours[key], value) <= 1e-5, key


@pytest.mark.parametrize("indices", [None, 2, [0, 2], [-1]])
@pytest.mark.parametrize("options", [{}, {"normalize_intermediates": True, "image_output_fmt": "NLC"}])
def test_vit_and_text_intermediates_match_open_clip(vit_pair: Any, indices: Any, options: dict[str, Any]) -> None:
    reference, ours = vit_pair
    pixels, ids = inputs(64)
    kwargs = {"image_indices": indices, "text_indices": indices, "output_logits": True, **options}
    with torch.no_grad():
        theirs = reference.forward_intermediates(pixels, ids, **kwargs)
        mine = ours.forward_intermediates(pixels, ids, **kwargs)
    assert_same(mine, theirs)
    assert mine["image_intermediates"][0].shape[1:] == ((64, 4, 4) if "image_output_fmt" not in options else (16, 64))
    assert mine["text_intermediates"][0].shape == (2, 77, 32)


def test_vit_class_tokens_and_intermediates_only_match_open_clip(vit_pair: Any) -> None:
    reference, ours = vit_pair
    pixels, ids = inputs(64)
    kwargs = {"image_indices": [1], "image_output_extra_tokens": True, "intermediates_only": True, "stop_early": True}
    with torch.no_grad():
        assert_same(ours.forward_intermediates(pixels, **kwargs), reference.forward_intermediates(pixels, **kwargs))
        kwargs = {
            "output_logit_scale_bias": True,
            "normalize": False,
            "text_indices": 1,
            "text_output_extra_tokens": True,
        }
        assert_same(ours.forward_intermediates(text=ids, **kwargs), reference.forward_intermediates(text=ids, **kwargs))


@pytest.mark.parametrize("indices", [None, 1, 3, 5])
def test_resnet_stages_match_open_clip_for_last_n(resnet_pair: Any, indices: int | None) -> None:
    reference, ours = resnet_pair
    pixels, _ = inputs(64)
    with torch.no_grad():
        theirs = reference.forward_intermediates(pixels, image_indices=indices)
        mine = ours.forward_intermediates(pixels, image_indices=indices)
    assert_same(mine, theirs)
    assert all(t.is_contiguous() for t in mine["image_intermediates"])  # not the trunk's channels_last


def test_resnet_extra_tokens_and_nlc_add_nothing_open_clip_lacks(resnet_pair: Any) -> None:
    """open_clip's ModifiedResNet has no extra tokens (no key for them) and gives NCHW only; ours adds NLC."""
    reference, ours = resnet_pair
    pixels, _ = inputs(64)
    with torch.no_grad():
        theirs = reference.forward_intermediates(pixels, image_indices=2, image_output_extra_tokens=True)
        mine = ours.forward_intermediates(pixels, image_indices=2, image_output_extra_tokens=True)
        flat = ours.forward_intermediates(pixels, image_indices=1, image_output_fmt="NLC", intermediates_only=True)
    assert_same(mine, theirs)
    assert list(flat) == ["image_intermediates"]
    torch.testing.assert_close(flat["image_intermediates"][0], theirs["image_intermediates"][-1].flatten(2).mT)


def test_resnet_takes_a_list_of_stages_where_open_clip_fails(resnet_pair: Any) -> None:
    """open_clip's ModifiedResNet fails on a list of stage indices; ours returns the stages the list names, the same
    maps as open_clip gives for "the last n"."""
    reference, ours = resnet_pair
    pixels, _ = inputs(64)
    with torch.no_grad():
        every = reference.forward_intermediates(pixels, image_indices=5)
        mine = ours.forward_intermediates(pixels, image_indices=[1, -2])
        with pytest.raises(RuntimeError):
            reference.forward_intermediates(pixels, image_indices=[1, 3])
    assert [t.shape[1] for t in mine["image_intermediates"]] == [64, 256]
    for mine_map, index in zip(mine["image_intermediates"], [1, 3], strict=True):
        assert relative_error(mine_map, every["image_intermediates"][index]) <= 1e-5
    assert relative_error(mine["image_features"], every["image_features"]) <= 1e-5


@pytest.mark.parametrize(
    ("indices", "message"),
    [(0, r"the last 0 blocks: this tower has 4"), ([4], r"block index 4 is out of range"), ("x", "must be None")],
)
def test_indices_out_of_range_raise_input_error(vit_pair: Any, indices: Any, message: str) -> None:
    _, ours = vit_pair
    with pytest.raises(clip_core.InputError, match=message):
        ours.forward_intermediates(torch.zeros(1, 3, 64, 64), image_indices=indices)


def test_a_tower_without_forward_intermediates_raises_a_clip_error_naming_it() -> None:
    model = clip_core.create_model("tiny").eval()
    ids = clip_core.get_tokenizer("tiny")(["a"])
    with pytest.raises(clip_core.PluginError, match=r"text tower of card 'tiny' \(kind 'bag-of-words', plugin"):
        model.forward_intermediates(text=ids)
