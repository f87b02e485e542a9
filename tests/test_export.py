"""``clip_core.export_model`` and ``clip convert --to``: formats, atomic writes, refusals, and the exporters tower and
tokenizer kinds register (their peer-library parity is in ``test_export_parity.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import clip_core
from clip_core import ExportError
from clip_core.cli import main
from clip_core.converters import hf_encoder_layer, key_reader, openai_resblock, to_hf_encoder_layer, to_openai_resblock
from clip_core.export import export_state_dict
from clip_core.export.layouts import export_tokenizer
from clip_core.export.open_clip import open_clip_model_cfg
from clip_core.export.transformers import preprocessor_config

open_clip = pytest.importorskip("open_clip")

SMALL_VIT: dict[str, Any] = {
    "name": "small-vit",
    "embed_dim": 16,
    "image": {"kind": "vit", "image_size": 32, "patch_size": 16, "width": 32, "layers": 1, "heads": 2},
    "text": {"kind": "text-transformer", "context_length": 16, "width": 32, "layers": 1, "heads": 2},
}
SMALL_RN: dict[str, Any] = {
    "name": "small-rn",
    "embed_dim": 16,
    "image": {"kind": "modified-resnet", "image_size": 64, "layers": [1, 1, 1, 1], "width": 8},
    "text": {"kind": "text-transformer", "context_length": 16, "width": 32, "layers": 1, "heads": 2},
}


def model_of(data: dict[str, Any]) -> clip_core.ClipModel:
    torch.manual_seed(0)
    return clip_core.create_model(data).eval()


def names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


# -- export_model ---------------------------------------------------------------------------------------------------
def test_clip_sdk_format_is_save_pretrained(tmp_path: Path) -> None:
    model = model_of(SMALL_VIT)
    assert clip_core.export_model(model, tmp_path / "out") == tmp_path / "out"
    assert names(tmp_path / "out") == ["card.json", "model.safetensors"]
    loaded = clip_core.load_checkpoint(tmp_path / "out")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


def test_each_format_writes_its_files_and_nothing_else(tmp_path: Path) -> None:
    model = model_of(SMALL_VIT)
    clip_core.export_model(model, tmp_path / "oc", format="open_clip")
    clip_core.export_model(model, tmp_path / "hf", format="transformers")
    assert names(tmp_path / "oc") == ["open_clip_config.json", "open_clip_model.safetensors"]
    assert names(tmp_path / "hf") == [
        "config.json",
        "merges.txt",
        "model.safetensors",
        "preprocessor_config.json",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.json",
    ]
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]  # no staging folder left


def test_transformers_config_takes_every_setting_from_the_card(tmp_path: Path) -> None:
    data = {
        **SMALL_VIT,
        "image": {**SMALL_VIT["image"], "activation": "quick_gelu", "mlp_ratio": 3.0},
        "preprocess": {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.3, 0.4]},
    }
    clip_core.export_model(model_of(data), tmp_path, format="transformers")
    config = json.loads((tmp_path / "config.json").read_text())
    vision, text = config["vision_config"], config["text_config"]
    assert (vision["hidden_act"], text["hidden_act"]) == ("quick_gelu", "gelu")
    assert (vision["intermediate_size"], text["intermediate_size"]) == (96, 128)
    assert (vision["image_size"], vision["patch_size"], text["max_position_embeddings"]) == (32, 16, 16)
    assert vision["layer_norm_eps"] == text["layer_norm_eps"] == 1e-5
    assert (text["eos_token_id"], text["bos_token_id"]) == (49407, 49406)
    assert config["projection_dim"] == 16
    processor = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert (processor["image_mean"], processor["image_std"]) == ([0.5, 0.4, 0.3], [0.2, 0.3, 0.4])
    assert (processor["size"], processor["crop_size"]) == ({"shortest_edge": 32}, {"height": 32, "width": 32})


@pytest.mark.parametrize("name", ["RN50", "RN101-quickgelu", "ViT-B-32-quickgelu", "ViT-B-16-plus-240", "ViT-g-14"])
def test_open_clip_model_cfg_of_a_seed_card_is_open_clips_own_config(name: str) -> None:
    """open_clip ships a model config for each published card; ours says the same, defaults spelt out."""
    theirs = open_clip.get_model_config(name)
    ours = open_clip_model_cfg(clip_core.get_card(name))
    assert (ours["embed_dim"], ours["quick_gelu"]) == (theirs["embed_dim"], theirs.get("quick_gelu", False))
    assert ours["text_cfg"] == {"mlp_ratio": 4.0} | theirs["text_cfg"]
    defaults = {"head_width": 64} if name.startswith("RN") else {"head_width": 64, "mlp_ratio": 4.0}
    assert ours["vision_cfg"] == defaults | theirs["vision_cfg"]


def test_open_clip_refuses_towers_with_different_activations() -> None:
    """open_clip has one `quick_gelu` switch; transformers has one per tower and takes such a card."""
    card = clip_core.get_card({**SMALL_VIT, "image": {**SMALL_VIT["image"], "activation": "quick_gelu"}})
    with pytest.raises(ExportError, match=r"its towers use different activations \(gelu, quick_gelu\); open_clip"):
        open_clip_model_cfg(card)


def test_transformers_refuses_padding_to_a_square_it_cannot_do() -> None:
    card = clip_core.get_card({**SMALL_VIT, "preprocess": {"resize_mode": "longest"}})
    with pytest.raises(ExportError, match=r"resize_mode 'longest'.*CLIPImageProcessor cannot do"):
        preprocessor_config(card)
    squash = preprocessor_config(clip_core.get_card({**SMALL_VIT, "preprocess": {"resize_mode": "squash"}}))
    assert (squash["size"], squash["do_center_crop"]) == ({"height": 32, "width": 32}, False)


def test_a_resnet_card_is_refused_by_transformers_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as excinfo:
        clip_core.export_model(model_of(SMALL_RN), tmp_path / "hf", format="transformers")
    assert str(excinfo.value) == (
        "card 'small-rn' has a ResNet image tower and transformers has no ResNet CLIP; export it to 'open_clip' or "
        "'onnx' instead"
    )
    assert not (tmp_path / "hf").exists() and not list(tmp_path.iterdir())


def test_an_unknown_format_names_the_formats(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="unknown export format 'keras'; formats: clip-sdk, transformers, open_clip"):
        clip_core.export_model(model_of(SMALL_VIT), tmp_path, format="keras")


def test_an_earlier_export_is_replaced_and_a_folder_with_other_files_is_refused(tmp_path: Path) -> None:
    first, second = model_of(SMALL_VIT), model_of(SMALL_VIT)
    with torch.no_grad():
        second.logit_scale.fill_(1.0)
    clip_core.export_model(first, tmp_path / "oc", format="open_clip")
    clip_core.export_model(second, tmp_path / "oc", format="open_clip")
    state = clip_core.load_checkpoint(tmp_path / "oc" / "open_clip_model.safetensors", card=second.card).state_dict()
    assert float(state["logit_scale"]) == 1.0
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match=r"refusing to overwrite .*: it holds files that are not part of a "):
        clip_core.export_model(first, tmp_path, format="transformers")
    assert names(tmp_path) == ["notes.txt", "oc"]


def test_a_failed_export_leaves_the_earlier_export_as_it_was(tmp_path: Path) -> None:
    clip_core.export_model(model_of(SMALL_VIT), tmp_path / "hf", format="transformers")
    before = {name: (tmp_path / "hf" / name).read_bytes() for name in names(tmp_path / "hf")}
    with pytest.raises(ExportError, match="ResNet"):
        clip_core.export_model(model_of(SMALL_RN), tmp_path / "hf", format="transformers")
    assert {name: (tmp_path / "hf" / name).read_bytes() for name in names(tmp_path / "hf")} == before
    assert names(tmp_path) == ["hf"]


# -- the exporters the kinds register -------------------------------------------------------------------------------
def test_a_tower_kind_without_an_exporter_for_the_layout_is_named() -> None:
    """The test plugin's `patch-mean` exports to "openai"; its `bag-of-words` registers no exporter."""
    model = clip_core.create_model("tiny")
    with pytest.raises(ExportError) as excinfo:
        export_state_dict(model, "openai")
    assert str(excinfo.value) == (
        "card 'tiny': tower kind 'bag-of-words' (plugin 'test_towers') has no exporter to the OpenAI / open_clip "
        "layout 'openai' (its exporters: none)"
    )
    with pytest.raises(ExportError, match=r"tower kind 'patch-mean' .* layout 'hf' \(its exporters: openai\)"):
        export_state_dict(model, "hf")


def test_open_clip_refuses_a_tower_kind_it_has_no_equivalent_of(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="card 'tiny': open_clip has no image tower like kind 'patch-mean'"):
        clip_core.export_model(clip_core.create_model("tiny"), tmp_path, format="open_clip")


def test_a_tokenizer_kind_without_an_exporter_is_named(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as excinfo:
        export_tokenizer(clip_core.get_card("tiny"), "hf", tmp_path)
    assert "tokenizer kind 'bytes' (plugin 'test_towers') has no exporter to the transformers layout 'hf'" in str(
        excinfo.value
    )


@pytest.mark.parametrize("layout", ["openai", "hf"])
def test_exported_weights_convert_back_to_the_same_model(layout: str) -> None:
    """Each kind's exporter is the inverse of its converter: ours → layout → ours gives every tensor back."""
    from clip_core.checkpoints.layouts import convert_state_dict

    for data in (SMALL_VIT, SMALL_RN) if layout == "openai" else (SMALL_VIT,):
        model = model_of(data)
        exported = export_state_dict(model, layout)  # type: ignore[arg-type]
        back = convert_state_dict(exported, model.card, layout, "exported")  # type: ignore[arg-type]
        expected = model.state_dict()
        assert back.keys() == expected.keys()
        assert all(torch.equal(back[key], value) for key, value in expected.items())


@settings(max_examples=25, deadline=None)
@given(width=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_block_helpers_invert_each_other(width: int, seed: int) -> None:
    """to_openai_resblock and to_hf_encoder_layer are the inverses of openai_resblock and hf_encoder_layer: a block
    mapped out and back is the same tensors."""
    generator = torch.Generator().manual_seed(seed)
    roles = {"norm1": width, "qkv": 3 * width, "proj": width, "norm2": width, "fc1": 4 * width, "fc2": width}
    block = {}
    for role, rows in roles.items():
        name = {"qkv": "attn.qkv", "proj": "attn.proj", "fc1": "mlp.fc1", "fc2": "mlp.fc2"}.get(role, role)
        block[f"b.{name}.weight"] = torch.randn(rows, width, generator=generator)
        block[f"b.{name}.bias"] = torch.randn(rows, generator=generator)
    read = key_reader(block, "ours")
    openai = to_openai_resblock(read, "b.", "r.")
    hf = to_hf_encoder_layer(read, "b.", "l.")
    for back in (
        openai_resblock(key_reader(openai, "openai"), "r.", "b."),
        hf_encoder_layer(key_reader(hf, "hf"), "l.", "b."),
    ):
        assert back.keys() == block.keys() and all(torch.equal(value, block[key]) for key, value in back.items())


# -- clip convert --to ----------------------------------------------------------------------------------------------
def test_clip_convert_to_open_clip_writes_a_folder_open_clip_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card = tmp_path / "small-vit.json"
    card.write_text(json.dumps(SMALL_VIT))
    assert main(["convert", str(tmp_path / "ours"), str(tmp_path / "x")]) == 2  # no such checkpoint or card
    capsys.readouterr()
    assert main(["convert", str(card), str(tmp_path / "ours")]) == 0  # a card: random weights, seed 0
    assert main(["convert", str(tmp_path / "ours"), str(tmp_path / "oc"), "--to", "open_clip"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-3:] == [
        f"read {tmp_path / 'ours'} (clip-sdk directory)",
        "card 'small-vit'",
        f"wrote {tmp_path / 'oc'} (open_clip_config.json + open_clip_model.safetensors)",
    ]
    ours = clip_core.load_checkpoint(tmp_path / "ours")
    theirs = open_clip.create_model_and_transforms(f"local-dir:{tmp_path / 'oc'}")[0].eval()
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours.encode_image(pixels), theirs.encode_image(pixels), rtol=1e-5, atol=1e-6)


def test_clip_convert_of_a_resnet_to_transformers_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card = tmp_path / "small-rn.json"
    card.write_text(json.dumps(SMALL_RN))
    assert main(["convert", str(card), str(tmp_path / "hf"), "--to", "transformers"]) == 2
    err = capsys.readouterr().err  # after the note that a bare card's weights are random
    assert err.split("\n", 1)[1] == (
        "clip: error: card 'small-rn' has a ResNet image tower and transformers has no ResNet CLIP; export it to "
        "'open_clip' or 'onnx' instead\n"
    )
    assert not (tmp_path / "hf").exists()
