"""ONNX export: ONNX Runtime itself runs ``image.onnx`` and ``text.onnx`` and gives the model's embeddings.

Small cards of every image family (``vit``, ``modified-resnet``, ``timm``, and the test plugin's third-party kinds)
with the ``text-transformer`` text tower export in seconds; the seed cards (random weights) are ``slow``.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clip_core
from clip_core import ClipError, ClipModel, registry
from clip_core.export.onnx import IMAGE_FILE, TEXT_FILE, write_onnx

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

TOLERANCE = 1e-4  # absolute, on unit-length embeddings
END = 49407  # CLIP's end-of-text id

TEXT = {"kind": "text-transformer", "width": 32, "layers": 2, "heads": 2, "context_length": 20}
SMALL_CARDS: dict[str, dict[str, Any]] = {
    "vit": {"kind": "vit", "image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "heads": 2},
    "vit-quickgelu": {
        "kind": "vit",
        "image_size": 32,
        "patch_size": 16,
        "width": 32,
        "layers": 1,
        "heads": 2,
        "activation": "quick_gelu",
    },
    "modified-resnet": {"kind": "modified-resnet", "image_size": 64, "layers": [1, 1, 1, 1], "width": 8},
    "timm": {"kind": "timm", "model_name": "test_convnext", "pool": "avg", "proj": "linear", "image_size": 64},
}


def small_card(family: str) -> dict[str, Any]:
    return {
        "name": f"small-{family}",
        "embed_dim": 24,
        "image": SMALL_CARDS[family],
        "text": TEXT,
        "tokenizer": {"kind": "clip-bpe"},
    }


class Exported:
    """A model and ONNX Runtime sessions over the files :func:`write_onnx` wrote for it."""

    def __init__(self, model: ClipModel, directory: Path) -> None:
        self.model = model.eval()
        self.paths = write_onnx(model, directory)
        self.image = ort.InferenceSession(str(directory / IMAGE_FILE), providers=["CPUExecutionProvider"])
        self.text = ort.InferenceSession(str(directory / TEXT_FILE), providers=["CPUExecutionProvider"])

    def image_error(self, pixels: torch.Tensor) -> float:
        """Largest absolute difference between ONNX Runtime's and the model's unit image embeddings."""
        (ours,) = self.image.run(["image_embeds"], {"pixels": pixels.numpy()})
        with torch.no_grad():
            expected = self.model.encode_image(pixels, normalize=True).numpy()
        assert ours.shape == expected.shape
        return float(np.abs(ours - expected).max())

    def text_error(self, ids: torch.Tensor) -> float:
        """Largest absolute difference between ONNX Runtime's and the model's unit text embeddings."""
        (ours,) = self.text.run(["text_embeds"], {"ids": ids.numpy()})
        with torch.no_grad():
            expected = self.model.encode_text(ids, normalize=True).numpy()
        assert ours.shape == expected.shape
        return float(np.abs(ours - expected).max())


def exported(card: str | dict[str, Any], directory: Path) -> Exported:
    torch.manual_seed(0)
    return Exported(clip_core.create_model(card), directory)


@pytest.fixture(scope="module", params=[*SMALL_CARDS, "tiny"])
def small(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    family = request.param
    return exported("tiny" if family == "tiny" else small_card(family), tmp_path_factory.mktemp(family))


@pytest.fixture(scope="module")
def small_vit(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return exported(small_card("vit"), tmp_path_factory.mktemp("vit"))


def pixels_for(model: ClipModel, batch: int, seed: int = 0) -> torch.Tensor:
    size = model.card.preprocess.image_size
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def check_both_towers(export: Exported) -> None:
    """ONNX Runtime matches the model for batches of 1 and 3, on ids cut shorter than the context and on the whole
    context."""
    tokenizer = clip_core.get_tokenizer(export.model.card)
    texts = ["a photo of a cat", "two red squares on a blue ground", ""]
    context = export.model.card.tokenizer.context_length
    for batch in (1, 3):
        assert export.image_error(pixels_for(export.model, batch, seed=batch)) <= TOLERANCE
        ids = tokenizer(texts[:batch])
        for length in (ids.shape[1] // 2, context):  # the first cut still holds every end token
            assert export.text_error(ids[:, :length]) <= TOLERANCE, (batch, length)


def test_onnx_runtime_matches_the_model_for_small_cards_of_every_family(small: Exported) -> None:
    check_both_towers(small)


def test_export_writes_the_two_graphs_with_named_dynamic_inputs_and_outputs(small_vit: Exported) -> None:
    assert [path.name for path in small_vit.paths] == [IMAGE_FILE, TEXT_FILE]
    (pixels,) = small_vit.image.get_inputs()
    (ids,) = small_vit.text.get_inputs()
    assert (pixels.name, pixels.type, pixels.shape) == ("pixels", "tensor(float)", ["batch", 3, 32, 32])
    assert (ids.name, ids.type, ids.shape) == ("ids", "tensor(int64)", ["batch", "length"])
    assert [output.name for output in small_vit.image.get_outputs()] == ["image_embeds"]
    assert [output.name for output in small_vit.text.get_outputs()] == ["text_embeds"]
    assert small_vit.image.get_outputs()[0].shape[0] == small_vit.text.get_outputs()[0].shape[0] == "batch"


def test_text_graph_has_no_int64_argmax(small_vit: Exported, tmp_path: Path) -> None:
    """Some ONNX Runtime builds lack ArgMax for int64 (the ids' type): the end token is found on int32 ids."""
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(small_vit.paths[1]))).graph
    types = {value.name: value.type.tensor_type.elem_type for value in [*graph.input, *graph.value_info]}
    argmax_inputs = [node.input[0] for node in graph.node if node.op_type == "ArgMax"]
    assert argmax_inputs, "the text graph pools at the end token through an ArgMax"
    assert all(types[name] != onnx.TensorProto.INT64 for name in argmax_inputs)


_SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(data=st.data(), batch=st.integers(1, 4), length=st.integers(2, TEXT["context_length"]))
def test_text_graph_matches_for_any_batch_and_length(
    small_vit: Exported, data: st.DataObject, batch: int, length: int
) -> None:
    """For any batch of 1-4 id rows of any length up to the context, each a start token, random tokens, an end
    token at any position and zero padding after it, ONNX Runtime's text embeddings are the model's."""
    rows = []
    for _ in range(batch):
        end = data.draw(st.integers(1, length - 1))
        tokens = data.draw(st.lists(st.integers(1, END - 2), min_size=end - 1, max_size=end - 1))
        rows.append([END - 1, *tokens, END] + [0] * (length - end - 1))
    assert small_vit.text_error(torch.tensor(rows)) <= TOLERANCE


def test_export_of_a_bf16_model_in_training_mode_leaves_it_as_it_was(tmp_path: Path) -> None:
    """The graphs compute in float32, from a float32 copy; the model keeps its dtype and its training mode."""
    torch.manual_seed(0)
    model = clip_core.create_model(small_card("vit")).to(torch.bfloat16).train()
    write_onnx(model, tmp_path)
    assert model.training and all(module.training for module in model.modules())
    assert {parameter.dtype for parameter in model.parameters()} == {torch.bfloat16}
    session = ort.InferenceSession(str(tmp_path / IMAGE_FILE), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float)"
    pixels = pixels_for(model, 2)
    (ours,) = session.run(None, {"pixels": pixels.numpy()})
    with torch.no_grad():  # the bf16 weights, computed in float32
        expected = model.float().eval().encode_image(pixels, normalize=True).numpy()
    assert float(np.abs(ours - expected).max()) <= TOLERANCE


def test_export_without_onnx_installed_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # how Python marks a module that cannot be imported
    with pytest.raises(ClipError, match=r"pip install 'clip-core\[onnx\]'"):
        write_onnx(clip_core.create_model("tiny"), tmp_path)
    assert not list(tmp_path.iterdir())


def test_weights_the_exporter_writes_apart_are_packed_into_one_data_file(small_vit: Exported, tmp_path: Path) -> None:
    """A graph over 2 GB comes out of the exporter with one external file per tensor; the export folder holds them
    in one ``.data`` file beside the graph, which ONNX Runtime reads."""
    from clip_core.export.onnx import _pack

    staging = tmp_path / "staging"
    staging.mkdir()
    proto = onnx.load(str(small_vit.paths[0]))
    onnx.save_model(proto, str(staging / IMAGE_FILE), save_as_external_data=True, all_tensors_to_one_file=False)
    assert len(list(staging.iterdir())) > 2
    written = _pack(onnx, staging, tmp_path / IMAGE_FILE)
    assert [path.name for path in written] == [IMAGE_FILE, IMAGE_FILE + ".data"]
    pixels = pixels_for(small_vit.model, 2)
    session = ort.InferenceSession(str(tmp_path / IMAGE_FILE), providers=["CPUExecutionProvider"])
    (ours,) = session.run(None, {"pixels": pixels.numpy()})
    (reference,) = small_vit.image.run(None, {"pixels": pixels.numpy()})
    np.testing.assert_array_equal(ours, reference)


#: Seed cards checked with one copy of their weights in memory at a time (ViT-g-14: 1.4 B parameters, 5.5 GB): the
#: model's embeddings first, then the export, then ONNX Runtime with the model freed.
_LARGEST = {"ViT-g-14"}


def _seed_cards(largest: bool) -> list[Any]:
    names = [name for name in clip_core.list_cards() if registry.card_entry(name).plugin in {"vit", "resnet"}]
    return [pytest.param(name, marks=pytest.mark.slow) for name in names if (name in _LARGEST) == largest]


@pytest.mark.parametrize("name", _seed_cards(largest=False))
def test_onnx_runtime_matches_the_model_for_every_seed_card(name: str, scratch_path: Path) -> None:
    check_both_towers(exported(name, scratch_path))


@pytest.mark.parametrize("name", _seed_cards(largest=True))
def test_onnx_runtime_matches_the_largest_seed_card_with_the_model_freed(name: str, scratch_path: Path) -> None:
    torch.manual_seed(0)
    model = clip_core.create_model(name).eval()
    pixels = pixels_for(model, 2)
    ids = clip_core.get_tokenizer(model.card)(["a photo of a cat", ""])
    cut = ids[:, : ids.shape[1] // 2]
    with torch.no_grad():
        image = model.encode_image(pixels, normalize=True).numpy()
        text = [model.encode_text(tokens, normalize=True).numpy() for tokens in (ids, cut)]
    write_onnx(model, scratch_path)
    del model
    gc.collect()
    session = ort.InferenceSession(str(scratch_path / IMAGE_FILE), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(["image_embeds"], {"pixels": pixels.numpy()})[0] - image).max() <= TOLERANCE
    del session
    session = ort.InferenceSession(str(scratch_path / TEXT_FILE), providers=["CPUExecutionProvider"])
    for tokens, expected in zip((ids, cut), text, strict=True):
        assert np.abs(session.run(["text_embeds"], {"ids": tokens.numpy()})[0] - expected).max() <= TOLERANCE


def test_clip_convert_to_onnx_writes_both_graphs_and_the_card_beside_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from clip_core.cli import main

    torch.manual_seed(0)
    source = clip_core.create_model(small_card("vit")).save_pretrained(tmp_path / "model")
    assert main(["convert", str(source), str(tmp_path / "onnx"), "--to", "onnx"]) == 0
    assert sorted(path.name for path in (tmp_path / "onnx").iterdir()) == ["card.json", IMAGE_FILE, TEXT_FILE]
    assert "image.onnx" in capsys.readouterr().out
    model = clip_core.load_checkpoint(source)
    assert clip_core.get_card(tmp_path / "onnx" / "card.json") == model.card
    session = ort.InferenceSession(str(tmp_path / "onnx" / IMAGE_FILE), providers=["CPUExecutionProvider"])
    pixels = pixels_for(model, 2)
    (embeds,) = session.run(["image_embeds"], {"pixels": pixels.numpy()})
    with torch.no_grad():
        assert np.abs(embeds - model.encode_image(pixels, normalize=True).numpy()).max() <= TOLERANCE
