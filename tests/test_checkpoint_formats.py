"""Every checkpoint format loads, with or without a card, and gives its source implementation's embeddings.

Sources: open_clip state dicts (``.pt``, ``.safetensors``, training-script wrappers), TorchScript archives of open_clip
models (as OpenAI publishes its weights), and transformers ``CLIPModel`` directories. Without a card, the
configuration is inferred from the weights' shapes or ``config.json`` and a registered card with the same
architecture is preferred; ``clip convert`` turns any of them into this SDK's format.
"""

from __future__ import annotations

import json
import pickle
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import clip_core
from clip_core import CardError, CheckpointError, ClipModel
from clip_core.checkpoints import open_checkpoint
from clip_core.checkpoints.hf import infer_from_hf_config
from clip_core.checkpoints.infer import (
    STATE_DICT_ACTIVATION,
    TORCHSCRIPT_ACTIVATION,
    infer_from_state_dict,
    mlp_ratio,
)
from clip_core.cli import main
from clip_core.testing import randomize_batch_norms

open_clip = pytest.importorskip("open_clip")
transformers = pytest.importorskip("transformers")

SIZE = 64
TEXTS = ["", "a photo of a cat.", "a diagram of " + "a very long caption " * 20]


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).abs().max() / reference.abs().max())


def pixels() -> torch.Tensor:
    return torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def token_ids() -> torch.Tensor:
    return clip_core.get_tokenizer("ViT-B-32")(TEXTS)


# -- source models ------------------------------------------------------------------------------------------------
#: Small open_clip configurations no registered card has. Text heads are width // 64: weights do not record heads,
#: and inference uses OpenAI's rule.
VISION_CFGS: dict[str, dict[str, Any]] = {
    "vit": {"image_size": SIZE, "patch_size": 16, "width": 128, "layers": 2, "mlp_ratio": 3.0},
    "resnet": {"image_size": SIZE, "layers": [1, 2, 1, 1], "width": 16},
}
TEXT_CFG = {"width": 128, "heads": 2, "layers": 2}


def open_clip_model(tower: str, quick_gelu: bool) -> nn.Module:
    torch.manual_seed(0)
    model = open_clip.model.CLIP(40, VISION_CFGS[tower], TEXT_CFG, quick_gelu=quick_gelu).eval()
    randomize_batch_norms(model)
    return model


def torchscript_archive(model: nn.Module, path: Path) -> Path:
    """A real TorchScript archive of ``model`` (``encode_image`` and ``encode_text`` traced), as OpenAI publishes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings
        traced = torch.jit.trace_module(
            model, {"encode_image": (pixels(),), "encode_text": (token_ids(),)}, check_trace=False
        )
    traced.save(str(path))
    return path


def save_pt(model: nn.Module, directory: Path) -> Path:
    torch.save(model.state_dict(), directory / "model.pt")
    return directory / "model.pt"


def save_safetensors(model: nn.Module, directory: Path) -> Path:
    save_file({key: value.contiguous() for key, value in model.state_dict().items()}, directory / "model.safetensors")
    return directory / "model.safetensors"


def save_wrapped(model: nn.Module, directory: Path) -> Path:
    state = {f"module.{key}": value for key, value in model.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": state}, directory / "epoch_3.pth")
    return directory / "epoch_3.pth"


def save_torchscript(model: nn.Module, directory: Path) -> Path:
    return torchscript_archive(model, directory / "model.pt")


WRITERS: dict[str, Callable[[nn.Module, Path], Path]] = {
    "pt": save_pt,
    "safetensors": save_safetensors,
    "wrapped": save_wrapped,
    "torchscript": save_torchscript,
}


def assert_same_embeddings(ours: ClipModel, reference: nn.Module) -> None:
    with torch.no_grad():
        assert relative_error(ours.encode_image(pixels()), reference.encode_image(pixels())) <= 1e-5
        assert relative_error(ours.encode_text(token_ids()), reference.encode_text(token_ids())) <= 1e-5


# -- open_clip state dicts and TorchScript archives, without a card -----------------------------------------------
@pytest.mark.parametrize("fmt", list(WRITERS))
@pytest.mark.parametrize("tower", list(VISION_CFGS))
def test_open_clip_checkpoints_load_without_a_card(tower: str, fmt: str, tmp_path: Path) -> None:
    """TorchScript archives are taken to be OpenAI's (QuickGELU), other state dicts open_clip's default (GELU)."""
    quick_gelu = fmt == "torchscript"
    reference = open_clip_model(tower, quick_gelu)
    loaded = open_checkpoint(WRITERS[fmt](reference, tmp_path))
    assert loaded.inferred is not None and not loaded.inferred.registered
    assert loaded.model.card.name == f"inferred-{loaded.source.stem}"
    assert loaded.model.card.image.kind == {"vit": "vit", "resnet": "modified-resnet"}[tower]
    assert getattr(loaded.model.card.text, "activation") == ("quick_gelu" if quick_gelu else "gelu")  # noqa: B009
    assert loaded.format == ("TorchScript archive" if quick_gelu else "state dict")
    assert not loaded.model.training
    assert_same_embeddings(loaded.model, reference)


def test_torchscript_archives_with_half_weights_load_in_float32(tmp_path: Path) -> None:
    """OpenAI's archives hold fp16 weights; the model stays float32, holding exactly those values."""
    reference = open_clip_model("vit", quick_gelu=True).half()
    for name, value in (("input_resolution", SIZE), ("context_length", 77), ("vocab_size", 49408)):
        reference.__dict__.pop(name, None)  # open_clip keeps the last two as plain attributes
        reference.register_buffer(name, torch.tensor(value))  # OpenAI's archives hold them: they are dropped
    reference.temperature = types.MethodType(lambda self, x: x * self.logit_scale.exp(), reference)
    path = tmp_path / "ViT-small.pt"
    torch.jit.trace_module(reference, {"temperature": (torch.ones(1, dtype=torch.half),)}).save(str(path))
    model = clip_core.load_checkpoint(path)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert torch.equal(model.logit_scale.data, reference.logit_scale.float())
    assert torch.equal(model.text.token_embedding.weight, reference.token_embedding.weight.float())


def test_the_inferred_card_round_trips_through_save_pretrained(tmp_path: Path) -> None:
    reference = open_clip_model("vit", quick_gelu=False)
    model = clip_core.load_checkpoint(save_pt(reference, tmp_path))
    assert model.card.name == "inferred-model"
    assert "activation 'gelu' assumed" in (model.card.provenance.notes or "")
    model.save_pretrained(tmp_path / "converted")
    again = clip_core.load_checkpoint(tmp_path / "converted")
    assert again.card == model.card
    assert_same_embeddings(again, reference)


def test_mlp_ratios_give_back_the_hidden_width() -> None:
    """For every width and hidden width, ``int(width * mlp_ratio(hidden, width)) == hidden`` (open_clip's rule)."""
    for width in (48, 64, 768, 1280, 1408):
        for hidden in range(width, 5 * width, 7):
            assert int(width * mlp_ratio(hidden, width)) == hidden
    assert mlp_ratio(3072, 768) == 4.0
    assert mlp_ratio(6144, 1408) == 4.364


# -- matching registered cards ------------------------------------------------------------------------------------
def test_a_vit_b_32_state_dict_is_card_vit_b_32_and_its_archive_vit_b_32_quickgelu(tmp_path: Path) -> None:
    reference = open_clip.create_model("ViT-B-32").eval()
    loaded = open_checkpoint(save_pt(reference, tmp_path))
    assert loaded.model.card == clip_core.get_card("ViT-B-32")
    assert loaded.inferred is not None and loaded.inferred.registered
    assert loaded.inferred.alternative == "ViT-B-32-quickgelu"  # offered in the message, for OpenAI's weights
    del loaded
    reference.half()  # as OpenAI publishes them; one cheap traced method keeps the archive quick to make
    reference.temperature = types.MethodType(lambda self, x: x * self.logit_scale.exp(), reference)
    path = tmp_path / "ViT-B-32.pt"
    torch.jit.trace_module(reference, {"temperature": (torch.ones(1, dtype=torch.half),)}).save(str(path))
    del reference
    assert clip_core.load_checkpoint(path).card.name == "ViT-B-32-quickgelu"


PUBLISHED = ["RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "RN50-quickgelu", "RN101-quickgelu", "ViT-B-32"]
PUBLISHED += ["ViT-B-32-quickgelu", "ViT-B-16", "ViT-B-16-plus-240", "ViT-L-14", "ViT-L-14-336", "ViT-H-14", "ViT-g-14"]


def test_every_published_card_is_recognised_from_the_shapes_of_open_clips_weights() -> None:
    """Including ViT-H-14's and ViT-g-14's heads (80- and 88-wide, not OpenAI's 64) and ViT-g-14's MLP ratio 4.3637,
    which the shapes alone do not give. Weights on the meta device: shapes only."""
    for name in PUBLISHED:
        with torch.device("meta"):
            reference = open_clip.create_model(name, device="meta")
        guess = TORCHSCRIPT_ACTIVATION if name.endswith("quickgelu") else STATE_DICT_ACTIVATION
        inferred = infer_from_state_dict(reference.state_dict(), Path(f"{name}.pt"), guess)
        assert inferred.registered and inferred.card == clip_core.get_card(name), name


def test_an_rn50_state_dict_is_card_rn50(tmp_path: Path) -> None:
    reference = open_clip.create_model("RN50").eval()
    path = save_safetensors(reference, tmp_path)
    del reference
    loaded = open_checkpoint(path)
    assert loaded.model.card == clip_core.get_card("RN50")
    assert loaded.inferred is not None and loaded.inferred.alternative == "RN50-quickgelu"


@pytest.fixture
def wide_heads_card() -> Iterator[str]:
    """A registered card (its name yielded, its plugin removed afterwards) whose image tower has 128-wide heads,
    not OpenAI's 64: weights do not record heads."""
    card = {
        "name": "test-wide-heads",
        "embed_dim": 40,
        "image": {"kind": "vit", "image_size": SIZE, "patch_size": 16, "width": 256, "layers": 1, "heads": 2},
        "text": {"kind": "text-transformer", **TEXT_CFG, "layers": 1},
        "tokenizer": {"kind": "clip-bpe"},
    }
    plugin = types.SimpleNamespace(
        CLIP_PLUGIN_API="1.0", clip_register_cards=clip_core.hookimpl(lambda register: register(card))
    )
    clip_core.register_plugin(plugin, name="test_formats_cards")
    try:
        yield card["name"]
    finally:
        clip_core.unregister_plugin("test_formats_cards")


def test_a_matching_registered_card_supplies_the_heads_weights_do_not_record(
    wide_heads_card: str, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    vision = {"image_size": SIZE, "patch_size": 16, "width": 256, "layers": 1, "head_width": 128}
    reference = open_clip.model.CLIP(40, vision, {**TEXT_CFG, "layers": 1}).eval()
    model = clip_core.load_checkpoint(save_pt(reference, tmp_path))
    assert model.card.name == wide_heads_card
    assert_same_embeddings(model, reference)


# -- transformers CLIPModel directories -----------------------------------------------------------------------------
def hf_model(**vision: Any) -> Any:
    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        projection_dim=40,
        logit_scale_init_value=2.5,
        vision_config={
            "hidden_size": 64,
            "intermediate_size": 200,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": SIZE,
            "patch_size": 16,
            "hidden_act": "gelu",
            **vision,
        },
        text_config={"hidden_size": 48, "intermediate_size": 192, "num_hidden_layers": 2, "num_attention_heads": 4},
    )
    return transformers.CLIPModel(config).eval()


def save_hf_safetensors(model: Any, directory: Path) -> Path:
    model.save_pretrained(directory)
    return directory


def save_hf_bin(model: Any, directory: Path) -> Path:
    """As ``save_pretrained(safe_serialization=False)`` wrote it (transformers 5 always writes safetensors)."""
    model.config.save_pretrained(directory)
    torch.save(model.state_dict(), directory / "pytorch_model.bin")
    return directory


def save_hf_sharded(model: Any, directory: Path) -> Path:
    model.save_pretrained(directory, max_shard_size="100KB")
    assert (directory / "model.safetensors.index.json").is_file()
    return directory


def hf_embeddings(model: Any) -> tuple[torch.Tensor, torch.Tensor]:
    ids = token_ids()
    hf_ids = torch.where(ids == 0, torch.full_like(ids, 49407), ids)  # transformers pads with the end token
    with torch.no_grad():
        image = model.get_image_features(pixel_values=pixels())
        text = model.get_text_features(input_ids=hf_ids)
    image = image if isinstance(image, torch.Tensor) else image.pooler_output
    text = text if isinstance(text, torch.Tensor) else text.pooler_output
    return image, text


@pytest.mark.parametrize(
    "save", [save_hf_safetensors, save_hf_bin, save_hf_sharded], ids=["safetensors", "bin", "sharded"]
)
def test_transformers_directories_load_without_a_card(save: Callable[[Any, Path], Path], tmp_path: Path) -> None:
    reference = hf_model()
    loaded = open_checkpoint(save(reference, tmp_path / "hf-small"))
    card = loaded.model.card
    assert loaded.format == "transformers CLIPModel directory"
    assert card.name == "inferred-hf-small" and card.embed_dim == 40 and card.init_logit_scale == 2.5
    assert card.image.model_dump() == {
        "kind": "vit",
        "image_size": SIZE,
        "patch_size": 16,
        "width": 64,
        "layers": 2,
        "heads": 4,
        "mlp_ratio": 3.125,
        "activation": "gelu",
    }
    assert getattr(card.text, "heads") == 4 and getattr(card.text, "activation") == "quick_gelu"  # noqa: B009
    image, text = hf_embeddings(reference)
    with torch.no_grad():
        assert relative_error(loaded.model.encode_image(pixels()), image) <= 1e-5
        assert relative_error(loaded.model.encode_text(token_ids()), text) <= 1e-5
        assert torch.allclose(loaded.model.logit_scale, reference.logit_scale)


def test_a_transformers_weights_file_beside_its_config_loads_without_a_card(tmp_path: Path) -> None:
    reference = hf_model()
    directory = save_hf_safetensors(reference, tmp_path / "hf")
    model = clip_core.load_checkpoint(directory / "model.safetensors")
    assert model.card.name == "inferred-hf"
    with torch.no_grad():
        assert relative_error(model.encode_image(pixels()), hf_embeddings(reference)[0]) <= 1e-5


def test_transformers_default_config_is_card_vit_b_32_quickgelu(tmp_path: Path) -> None:
    """transformers' CLIPConfig defaults are OpenAI's ViT-B/32 (QuickGELU); config.json alone decides the card."""
    transformers.CLIPConfig().save_pretrained(tmp_path)
    inferred = infer_from_hf_config(tmp_path)
    assert inferred.registered and inferred.card.name == "ViT-B-32-quickgelu" and inferred.assumed is None


def test_a_transformers_directory_loads_with_a_given_card(tmp_path: Path) -> None:
    reference = hf_model()
    card = open_checkpoint(save_hf_safetensors(reference, tmp_path / "hf")).model.card
    renamed = card.model_copy(update={"name": "given"})
    assert clip_core.load_checkpoint(tmp_path / "hf", card=renamed).card.name == "given"


# -- errors ---------------------------------------------------------------------------------------------------------
def test_a_timm_tower_state_dict_needs_a_card(tmp_path: Path) -> None:
    torch.manual_seed(0)
    vision = {"timm_model_name": "test_convnext", "timm_pool": "avg", "timm_proj": "linear", "image_size": SIZE}
    reference = open_clip.model.CLIP(embed_dim=24, vision_cfg=vision, text_cfg={"width": 32, "layers": 1, "heads": 2})
    path = save_pt(reference, tmp_path)
    with pytest.raises(CheckpointError, match=r"model\.pt: image weights under 'visual\.trunk\.' .* pass card="):
        clip_core.load_checkpoint(path)


def write_config(directory: Path, config: dict[str, Any]) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    save_file({"x": torch.zeros(1)}, directory / "model.safetensors")
    return directory


@pytest.mark.parametrize("model_type", ["siglip", "clipseg", None])
def test_other_transformers_model_types_are_refused(model_type: str | None, tmp_path: Path) -> None:
    directory = write_config(tmp_path / "other", {"model_type": model_type} if model_type else {})
    with pytest.raises(CheckpointError, match=rf"config\.json: model_type {model_type!r} is not transformers' CLIP"):
        clip_core.load_checkpoint(directory)


def test_a_lone_transformers_tower_is_refused(tmp_path: Path) -> None:
    directory = write_config(tmp_path / "vision", {"model_type": "clip", "architectures": ["CLIPVisionModel"]})
    with pytest.raises(CheckpointError, match=r"architectures \['CLIPVisionModel'\] hold no CLIPModel"):
        clip_core.load_checkpoint(directory)


@pytest.mark.parametrize(
    ("vision", "message"),
    [
        ({"layer_norm_eps": 1e-6}, r"vision_config\.layer_norm_eps is 1e-06; clip-sdk's towers use OpenAI's 1e-5"),
        ({"hidden_act": "gelu_new"}, r"vision_config\.hidden_act 'gelu_new' is not one of the towers' activations"),
    ],
)
def test_transformers_configs_the_towers_cannot_follow_are_refused(
    vision: dict[str, Any], message: str, tmp_path: Path
) -> None:
    directory = write_config(tmp_path / "hf", {"model_type": "clip", "vision_config": vision})
    with pytest.raises(CheckpointError, match=message):
        clip_core.load_checkpoint(directory)


def test_a_transformers_directory_without_weights_is_named(tmp_path: Path) -> None:
    transformers.CLIPConfig().save_pretrained(tmp_path / "hf")
    with pytest.raises(CheckpointError, match=r"hf: a config\.json but no weights beside it \(looked for model\."):
        clip_core.load_checkpoint(tmp_path / "hf")


def test_a_truncated_safetensors_file_in_a_transformers_directory_is_named(tmp_path: Path) -> None:
    directory = save_hf_safetensors(hf_model(), tmp_path / "hf")
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"hf/model\.safetensors: not a readable safetensors file"):
        clip_core.load_checkpoint(directory)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (str(self.marker), "pwned"))  # type: ignore[return-value]


def test_a_pickle_payload_in_a_transformers_bin_never_runs(tmp_path: Path) -> None:
    directory = save_hf_bin(hf_model(), tmp_path / "hf")
    marker = tmp_path / "marker"
    state: dict[str, object] = dict(torch.load(directory / "pytorch_model.bin", weights_only=True))
    state["evil"] = _Payload(marker)
    torch.save(state, directory / "pytorch_model.bin", pickle_protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin: not a readable weights-only state dict"):
        clip_core.load_checkpoint(directory)
    assert not marker.exists()


def test_a_truncated_torchscript_archive_is_named(tmp_path: Path) -> None:
    path = save_torchscript(open_clip_model("vit", quick_gelu=True), tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"model\.pt: "):
        clip_core.load_checkpoint(path)


def test_keys_the_inferred_towers_do_not_have_are_unexpected(tmp_path: Path) -> None:
    state = open_clip_model("vit", quick_gelu=False).state_dict()
    state["visual.attn_pool.query"] = torch.zeros(1, 128)
    torch.save(state, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match=r"unexpected keys \(read by no tower converter\): visual\.attn_pool"):
        clip_core.load_checkpoint(tmp_path / "extra.pt")


def test_an_uninstalled_tower_kind_names_its_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = save_pt(open_clip_model("resnet", quick_gelu=False), tmp_path)
    monkeypatch.setenv("CLIP_DISABLED_PLUGINS", "resnet")
    clip_core.registry.reload()
    try:
        with pytest.raises(CardError, match=r"unknown tower kind 'modified-resnet'.*pip install clip-encoders-resnet"):
            clip_core.load_checkpoint(path)
    finally:
        monkeypatch.delenv("CLIP_DISABLED_PLUGINS")
        clip_core.registry.reload()


# -- clip convert ---------------------------------------------------------------------------------------------------
def test_clip_convert_writes_this_sdks_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reference = open_clip_model("vit", quick_gelu=False)
    source = save_pt(reference, tmp_path)
    assert main(["convert", str(source), str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"read {source} (state dict)"
    assert out[1].startswith("card 'inferred-model': inferred from the shapes of the weights")
    assert out[2].startswith("activation 'gelu' assumed") and "activation 'quick_gelu' (card= or --card" in out[2]
    assert out[3] == f"wrote {tmp_path / 'out'} (card.json + model.safetensors)"
    assert_same_embeddings(clip_core.load_checkpoint(tmp_path / "out"), reference)


def test_clip_convert_takes_a_card_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reference = open_clip_model("resnet", quick_gelu=True)
    source = save_pt(reference, tmp_path)
    card = clip_core.load_checkpoint(source).card.model_dump(mode="json")
    card |= {"name": "my-rn", "text": {**card["text"], "activation": "quick_gelu"}}
    (tmp_path / "my-rn.json").write_text(json.dumps(card))
    assert main(["convert", str(source), str(tmp_path / "out"), "--card", str(tmp_path / "my-rn.json")]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "card 'my-rn'"
    assert_same_embeddings(clip_core.load_checkpoint(tmp_path / "out"), reference)


def test_clip_convert_of_a_missing_source_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["convert", str(tmp_path / "nope.pt"), str(tmp_path / "out")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"clip: error: {tmp_path / 'nope.pt'}: no such file or directory\n"
    assert not (tmp_path / "out").exists()
