"""Other image sizes: ``ModelCard.with_image_size`` and weights of another grid loading into it, with the position
embedding resampled as open_clip resamples it (``create_model(..., force_image_size=S)`` on the same weights)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import clip_core
from clip_core.cli import main
from clip_core.converters import resample_position_embedding

open_clip = pytest.importorskip("open_clip")

TEXT = {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 1}
VISION = {"image_size": 64, "patch_size": 16, "width": 64, "layers": 2}


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).abs().max() / reference.abs().max())


@pytest.fixture(scope="module")
def small_vit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """open_clip weights of a small ViT at 64 pixels, its configuration registered with open_clip, and our card."""
    folder = tmp_path_factory.mktemp("open_clip")
    (folder / "configs").mkdir()
    config = {"embed_dim": 24, "vision_cfg": VISION, "text_cfg": TEXT}
    (folder / "configs" / "small-vit-test.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder / "configs")
    torch.manual_seed(0)
    reference = open_clip.create_model("small-vit-test")
    torch.save(reference.state_dict(), folder / "weights.pt")
    card = {"name": "small-vit", "embed_dim": 24, "image": {"kind": "vit", **VISION}}
    card["text"] = {"kind": "text-transformer", **TEXT}
    return folder / "weights.pt", card


@pytest.mark.parametrize("size", [96, 48])
def test_a_larger_or_smaller_card_loads_the_weights_as_open_clip_force_image_size(
    small_vit: tuple[Path, dict[str, Any]], size: int
) -> None:
    weights, card = small_vit
    reference = open_clip.create_model("small-vit-test", pretrained=str(weights), force_image_size=size).eval()
    ours = clip_core.create_model(clip_core.get_card(card).with_image_size(size), pretrained=weights)
    assert ours.card.preprocess.image_size == size and ours.card.name == f"small-vit-{size}"
    pixels = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert relative_error(ours.encode_image(pixels), reference.encode_image(pixels)) <= 1e-5
        resampled = ours.visual.trunk.pos_embed[0]
    torch.testing.assert_close(resampled, reference.visual.positional_embedding, rtol=0, atol=0)


@pytest.mark.slow
def test_vit_b_32_at_288_gives_open_clips_force_image_size_embeddings(tmp_path: Path) -> None:
    torch.manual_seed(0)
    torch.save(open_clip.create_model("ViT-B-32").state_dict(), tmp_path / "vit-b-32.pt")
    reference = open_clip.create_model("ViT-B-32", pretrained=str(tmp_path / "vit-b-32.pt"), force_image_size=288)
    ours = clip_core.create_model(
        clip_core.get_card("ViT-B-32").with_image_size(288), pretrained=tmp_path / "vit-b-32.pt"
    )
    pixels = torch.randn(1, 3, 288, 288, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert relative_error(ours.encode_image(pixels), reference.eval().encode_image(pixels)) <= 1e-5


def test_the_class_token_is_kept_and_the_same_grid_is_left_alone() -> None:
    embedding = torch.randn(1 + 16, 8)
    assert resample_position_embedding(embedding, (4, 4)) is embedding
    larger = resample_position_embedding(embedding, (6, 6))
    assert larger.shape == (37, 8) and torch.equal(larger[0], embedding[0])


def test_a_native_checkpoint_loads_into_a_resized_card(tmp_path: Path, small_vit: tuple[Path, dict[str, Any]]) -> None:
    _, card = small_vit
    model = clip_core.create_model(card)
    model.save_pretrained(tmp_path / "model")
    resized = clip_core.load_checkpoint(tmp_path / "model", card=clip_core.get_card(card).with_image_size(80))
    assert resized.visual.trunk.pos_embed.shape == (1, 26, 64)
    assert torch.equal(resized.text.token_embedding.weight, model.text.token_embedding.weight)


def test_the_resnet_attention_pool_is_resampled_too() -> None:
    card = clip_core.get_card(_resnet_card())
    model = clip_core.create_model(card)
    state = model.state_dict()
    resized = clip_core.checkpoints.strict.model_from_state(card.with_image_size(96), state, "memory")
    pos = resized.visual.attnpool.positional_embedding
    assert pos.shape == (1 + 9, 8 * 32) and torch.equal(pos[0], state["visual.attnpool.positional_embedding"][0])
    with torch.no_grad():
        assert resized.encode_image(torch.randn(1, 3, 96, 96)).shape == (1, 16)


def _resnet_card() -> dict[str, Any]:
    return {
        "name": "small-rn",
        "embed_dim": 16,
        "image": {"kind": "modified-resnet", "image_size": 64, "layers": [1, 1, 1, 1], "width": 8},
        "text": {"kind": "text-transformer", **TEXT},
    }


@pytest.mark.parametrize(
    ("size", "message"),
    [(100, "patch_size .16. must divide image_size .100."), (64, None)],
)
def test_with_image_size_refuses_sizes_the_tower_cannot_read(
    small_vit: tuple[Path, dict[str, Any]], size: int, message: str | None
) -> None:
    card = clip_core.get_card(small_vit[1])
    if message is None:
        assert card.with_image_size(size) is card
    else:
        with pytest.raises(clip_core.CardError, match=message):
            card.with_image_size(size)


def test_the_image_size_option_resizes_the_model_of_an_inference_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    (tmp_path / "images").mkdir()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "images" / "red.png")
    out = tmp_path / "emb.npy"
    assert main(["embed", "--model", "tiny", "--image-size", "48", str(tmp_path / "images"), "--out", str(out)]) == 0
    manifest = json.loads((tmp_path / "emb.npy.manifest.json").read_text())
    assert manifest["model"]["source"] == "tiny (random weights, seed 0) at 48x48 (card tiny-48)"
    assert manifest["model"]["card"]["preprocess"]["image_size"] == 48
    assert main(["embed", "--model", "tiny", "--image-size", "50", str(tmp_path / "images"), "--out", str(out)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("clip: warning:")]
    assert len(errors) == 1 and "does not divide image_size 50" in errors[0]
