"""Checkpoints: this SDK's directory format, strict loading and atomic saving."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save, save_file

import clip_core
from clip_core import CheckpointError, ClipModel, durable
from clip_core.checkpoints import native


@pytest.fixture
def model() -> ClipModel:
    torch.manual_seed(1)
    return clip_core.create_model("tiny").eval()


def embeddings(model: ClipModel) -> tuple[torch.Tensor, torch.Tensor]:
    ids = clip_core.get_tokenizer(model.card)(["a photo", "of a cat"])
    with torch.no_grad():
        return model.encode_image(torch.ones(1, 3, 32, 32)), model.encode_text(ids)


def test_saved_model_loads_back_with_identical_outputs(tmp_path: Path, model: ClipModel) -> None:
    path = model.save_pretrained(tmp_path / "ckpt")
    assert sorted(os.listdir(path)) == ["card.json", "model.safetensors"]
    assert json.loads((path / "card.json").read_text())["name"] == "tiny"
    loaded = clip_core.load_checkpoint(path)
    assert not loaded.training
    assert loaded.card == model.card
    for ours, theirs in zip(embeddings(loaded), embeddings(model), strict=True):
        assert torch.equal(ours, theirs)
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]  # no staging or retired directories left behind


def test_create_model_loads_a_local_checkpoint(tmp_path: Path, model: ClipModel) -> None:
    path = model.save_pretrained(tmp_path / "ckpt")
    assert torch.equal(embeddings(clip_core.create_model("tiny", pretrained=path))[0], embeddings(model)[0])
    assert torch.equal(embeddings(clip_core.create_model("tiny", pretrained=str(path)))[1], embeddings(model)[1])


def test_saving_replaces_an_earlier_checkpoint(tmp_path: Path, model: ClipModel) -> None:
    clip_core.create_model("tiny").save_pretrained(tmp_path / "ckpt")
    model.save_pretrained(tmp_path / "ckpt")
    assert torch.equal(embeddings(clip_core.load_checkpoint(tmp_path / "ckpt"))[0], embeddings(model)[0])
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]


def test_saving_into_an_empty_directory_works(tmp_path: Path, model: ClipModel) -> None:
    (tmp_path / "empty").mkdir()
    model.save_pretrained(tmp_path / "empty")
    assert clip_core.load_checkpoint(tmp_path / "empty").card.name == "tiny"


def test_saving_refuses_to_overwrite_other_files(tmp_path: Path, model: ClipModel) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match=r"refusing to overwrite .*notes\.txt"):
        model.save_pretrained(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("fail_in", ["save_file", "fsync"])
def test_a_crash_mid_save_leaves_no_loadable_directory(
    tmp_path: Path, model: ClipModel, monkeypatch: pytest.MonkeyPatch, fail_in: str
) -> None:
    """A failure at any point while writing leaves the target absent, and no partial directory behind."""

    def crash(*args: object, **kwargs: object) -> None:
        if fail_in == "save_file":
            Path(str(args[1])).write_bytes(b"partial")
        raise KeyboardInterrupt

    if fail_in == "save_file":
        monkeypatch.setattr(native, "save_file", crash)
    else:
        monkeypatch.setattr(durable, "sync_path", crash)
    with pytest.raises(KeyboardInterrupt):
        model.save_pretrained(tmp_path / "ckpt")
    assert os.listdir(tmp_path) == []
    with pytest.raises(CheckpointError, match="no such file or directory"):
        clip_core.load_checkpoint(tmp_path / "ckpt")


def test_a_crash_while_replacing_keeps_the_previous_checkpoint(
    tmp_path: Path, model: ClipModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = clip_core.create_model("tiny").eval()
    previous.save_pretrained(tmp_path / "ckpt")

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(native, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save_pretrained(tmp_path / "ckpt")
    assert torch.equal(embeddings(clip_core.load_checkpoint(tmp_path / "ckpt"))[0], embeddings(previous)[0])
    assert os.listdir(tmp_path) == ["ckpt"]


def _tamper(path: Path, change: str) -> None:
    weights = path / "model.safetensors"
    state = load_file(weights)
    if change == "drop":
        del state["text.proj.weight"]
    elif change == "add":
        state["text.extra"] = torch.zeros(2)
    else:
        state["visual.proj.weight"] = torch.zeros(3, 3)
    save_file(state, weights)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("drop", "missing keys: text.proj.weight"),
        ("add", "unexpected keys: text.extra"),
        ("shape", r"mis-shaped keys: visual.proj.weight \(3, 3\) \(model has \(16, 24\)\)"),
    ],
)
def test_loading_is_strict_and_names_the_keys(tmp_path: Path, model: ClipModel, change: str, message: str) -> None:
    path = model.save_pretrained(tmp_path / "ckpt")
    _tamper(path, change)
    with pytest.raises(CheckpointError, match=message):
        clip_core.load_checkpoint(path)


def test_truncated_weights_name_the_file(tmp_path: Path, model: ClipModel) -> None:
    path = model.save_pretrained(tmp_path / "ckpt")
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors file"):
        clip_core.load_checkpoint(path)


def test_corrupt_card_names_the_file(tmp_path: Path, model: ClipModel) -> None:
    path = model.save_pretrained(tmp_path / "ckpt")
    (path / "card.json").write_text('{"name": "tiny", "embed_dim": -1}')
    with pytest.raises(CheckpointError, match=r"card\.json.*embed_dim"):
        clip_core.load_checkpoint(path)
    (path / "card.json").write_text("{")
    with pytest.raises(CheckpointError, match=r"card\.json: cannot read the card"):
        clip_core.load_checkpoint(path)


def test_a_card_given_explicitly_must_fit_the_weights(tmp_path: Path, model: ClipModel) -> None:
    path = model.save_pretrained(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="does not fit the model"):
        clip_core.load_checkpoint(path, card="tiny-wide")


def test_bare_safetensors_state_dict_loads_with_a_card(tmp_path: Path, model: ClipModel) -> None:
    save_file(model.state_dict(), tmp_path / "weights.safetensors")
    with pytest.raises(CheckpointError, match="pass card="):
        clip_core.load_checkpoint(tmp_path / "weights.safetensors")
    loaded = clip_core.load_checkpoint(tmp_path / "weights.safetensors", card="tiny")
    assert torch.equal(embeddings(loaded)[1], embeddings(model)[1])


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("absent", "no such file or directory"),
        ("weights.onnx", "unsupported checkpoint format"),
        ("dir", "needs a card.json"),
    ],
)
def test_unusable_paths_are_checkpoint_errors(tmp_path: Path, name: str, message: str) -> None:
    if name == "dir":
        (tmp_path / name).mkdir()
    elif name != "absent":
        (tmp_path / name).write_bytes(b"\x80\x04not really")
    with pytest.raises(CheckpointError, match=message):
        clip_core.load_checkpoint(tmp_path / name)


def test_tied_weights_are_saved(tmp_path: Path) -> None:
    """Parameters sharing storage (tied weights) save without safetensors' shared-tensor error and load back."""
    shared = clip_core.create_model("tiny-wide").eval()
    shared.text.norm.weight = shared.visual.norm.weight  # both 40 wide in tiny-wide
    path = shared.save_pretrained(tmp_path / "tied")
    assert torch.equal(clip_core.load_checkpoint(path).text.norm.weight, shared.visual.norm.weight)


_DTYPES = [torch.int64, torch.float64, torch.float32, torch.int32, torch.bfloat16, torch.float16, torch.int16]
_DTYPES += [torch.int8, torch.uint8, torch.bool]


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.text(st.sampled_from("ab.c_0"), min_size=1, max_size=6),
        st.tuples(st.sampled_from(_DTYPES), st.lists(st.integers(0, 4), max_size=3)),
        max_size=8,
    ),
    st.booleans(),
)
def test_streamed_safetensors_are_the_bytes_safetensors_save_writes(
    specs: dict[str, tuple[torch.dtype, list[int]]], with_metadata: bool
) -> None:
    """``durable.write_safetensors`` writes from the tensors' own memory, one at a time, yet its file is byte for
    byte what ``safetensors.torch.save`` returns: the same layout (dtype order, then names) and header (whose
    metadata keys ``save`` writes in no fixed order, so one key is used here)."""
    generator = torch.Generator().manual_seed(len(specs))
    tensors = {
        name: (torch.randint(0, 2, shape, generator=generator) * 3).to(dtype) for name, (dtype, shape) in specs.items()
    }
    metadata = {"format": "pt"} if with_metadata else {}  # one key: save() orders several as a hash map does
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.safetensors"
        durable.write_safetensors(path, tensors, metadata)
        assert path.read_bytes() == save(tensors, metadata=metadata or None)
