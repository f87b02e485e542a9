"""The size guard: a card's parameters and bytes are counted on the meta device before anything is allocated, and
``create_model`` refuses a model that cannot fit (or is above ``CLIP_MAX_PARAMS``) with a one-line CardError."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import clip_core
from clip_core.cli import main
from clip_core.sizing import available_memory, estimate_size


def huge_card() -> dict[str, Any]:
    """ViT-B-32 with a typo'd image width: 65536 (six hundred billion parameters)."""
    card = clip_core.get_card("ViT-B-32").model_dump()
    card["image"].update(width=65536, heads=1024)
    return {**card, "name": "typo", "aliases": []}


@settings(max_examples=12, deadline=None)
@given(
    image=st.one_of(
        st.fixed_dictionaries(
            {
                "kind": st.just("vit"),
                "patch_size": st.sampled_from([4, 8]),
                "image_size": st.sampled_from([16, 32]),
                "width": st.sampled_from([16, 32, 48]),
                "layers": st.integers(1, 3),
                "heads": st.just(4),
                "mlp_ratio": st.sampled_from([2.0, 4.0, 4.3637]),
            }
        ),
        st.fixed_dictionaries(
            {
                "kind": st.just("modified-resnet"),
                "image_size": st.sampled_from([32, 64]),
                "layers": st.lists(st.integers(1, 2), min_size=4, max_size=4),
                "width": st.sampled_from([8, 16]),
            }
        ),
    ),
    text_width=st.sampled_from([8, 16, 32]),
    text_layers=st.integers(1, 3),
    embed_dim=st.integers(1, 40),
    bias=st.sampled_from([None, -10.0]),
)
def test_the_estimate_equals_the_built_models_parameter_count(
    image: dict[str, Any], text_width: int, text_layers: int, embed_dim: int, bias: float | None
) -> None:
    """For any small card, the parameters and bytes counted on the meta device are those of the model built."""
    card = clip_core.get_card(
        {
            "name": "random",
            "embed_dim": embed_dim,
            "image": image,
            "text": {
                "kind": "text-transformer",
                "context_length": 8,
                "vocab_size": 50,
                "width": text_width,
                "layers": text_layers,
                "heads": 4,
            },
            "init_logit_bias": bias,
        }
    )
    size = estimate_size(card)
    model = clip_core.create_model(card)
    assert size is not None
    assert size.parameters == sum(p.numel() for p in model.parameters())
    assert size.bytes == sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def test_a_65536_wide_image_tower_is_refused_naming_its_size() -> None:
    with pytest.raises(
        clip_core.CardError,
        match=r"card 'typo' describes a model of 618,787,427,841 parameters "
        r"\(2\.5 TB\), more than the .* of memory available",
    ):
        clip_core.create_model(huge_card())


def test_a_limit_on_parameters_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIP_MAX_PARAMS", "1e4")
    with pytest.raises(clip_core.CardError, match=r"10,605 parameters \(42\.4 kB\), above CLIP_MAX_PARAMS=10,000"):
        clip_core.create_model("tiny")
    monkeypatch.setenv("CLIP_MAX_PARAMS", "20000")
    assert clip_core.create_model("tiny").embed_dim == 16
    monkeypatch.setenv("CLIP_MAX_PARAMS", "lots")
    with pytest.raises(clip_core.CardError, match="CLIP_MAX_PARAMS='lots' is not a number"):
        clip_core.create_model("tiny")


def test_the_embed_command_exits_2_with_one_line_for_a_card_too_large(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "typo.json").write_text(json.dumps(huge_card()))
    (tmp_path / "texts.txt").write_text("a cat\n")
    argv = ["embed", "--model", str(tmp_path / "typo.json"), "--texts", str(tmp_path / "texts.txt")]
    assert main([*argv, "--out", str(tmp_path / "out.npy")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "618,787,427,841 parameters" in err
    assert not (tmp_path / "out.npy").exists()


def test_available_memory_is_read_from_the_system() -> None:
    memory = available_memory()
    assert memory is not None and memory > 0


def test_cards_show_prints_parameters_and_gflops(capsys: pytest.CaptureFixture[str]) -> None:
    """tiny's image tower is a 8x8 patch convolution to 24 channels over 16 patches and a 24x16 projection; its
    text tower's only product is its 20x16 projection (two FLOPs per multiply-add)."""
    assert main(["cards", "show", "tiny"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-3] == "size: 10,605 parameters (42.4 kB)"
    image = 2 * (16 * 3 * 8 * 8 * 24 + 24 * 16)
    assert lines[-2] == f"GFLOPs per image (32x32 pixels): {image / 1e9:,.2f} ({image / 2e9:,.2f} G multiply-adds)"
    assert lines[-1].startswith("GFLOPs per text (24 tokens): 0.00")
    size = estimate_size(clip_core.get_card("tiny"), flops=True)
    assert size is not None and size.image_gflops == image / 1e9 and size.text_gflops == 2 * 20 * 16 / 1e9


def test_vit_b_32_flops_are_twice_open_clips_published_multiply_adds() -> None:
    """open_clip's profile gives ViT-B-32 4.41 G multiply-adds per image and 2.96 per text (fvcore counts the
    products of the linear layers, convolutions and attention)."""
    size = estimate_size(clip_core.get_card("ViT-B-32"), flops=True)
    assert size is not None and size.image_gflops is not None and size.text_gflops is not None
    assert size.parameters == 151_277_313
    assert size.image_gflops / 2 == pytest.approx(4.41, abs=0.01)
    assert size.text_gflops / 2 == pytest.approx(2.96, abs=0.03)
