"""State-dict files: read without running code, unwrapped, converted through tower converters, strictly checked."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import clip_core
from clip_core import CheckpointError, ClipModel
from clip_test_towers.convert import to_openai_like


@pytest.fixture
def model() -> ClipModel:
    torch.manual_seed(3)
    return clip_core.create_model("tiny").eval()


def embeddings(model: ClipModel) -> tuple[torch.Tensor, torch.Tensor]:
    ids = clip_core.get_tokenizer(model.card)(["a red circle", "two cats"])
    with torch.no_grad():
        return model.encode_image(
            torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        ), model.encode_text(ids)


def assert_same_model(loaded: ClipModel, model: ClipModel) -> None:
    assert not loaded.training
    for ours, theirs in zip(embeddings(loaded), embeddings(model), strict=True):
        assert torch.equal(ours, theirs)


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin", ".ckpt", ".safetensors"])
def test_foreign_layout_state_dicts_load_through_tower_converters(
    tmp_path: Path, model: ClipModel, suffix: str
) -> None:
    foreign = to_openai_like(model.state_dict())
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file(foreign, path)
    else:
        torch.save(foreign, path)
    assert_same_model(clip_core.load_checkpoint(path, card="tiny"), model)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda state: {"epoch": 3, "state_dict": state},
        lambda state: {"model": state, "optimizer": {"lr": torch.tensor(0.1)}},
        lambda state: {f"module.{key}": value for key, value in state.items()},
        lambda state: {"state_dict": {f"module.{key}": value for key, value in state.items()}},
    ],
    ids=["state_dict-key", "model-key", "module-prefix", "both"],
)
def test_training_checkpoint_wrappers_are_unwrapped(tmp_path: Path, model: ClipModel, wrap: object) -> None:
    torch.save(wrap(to_openai_like(model.state_dict())), tmp_path / "ckpt.pt")  # type: ignore[operator]
    assert_same_model(clip_core.load_checkpoint(tmp_path / "ckpt.pt", card="tiny"), model)


def test_native_layout_pt_file_loads(tmp_path: Path, model: ClipModel) -> None:
    torch.save(model.state_dict(), tmp_path / "native.pt")
    assert_same_model(clip_core.load_checkpoint(tmp_path / "native.pt", card="tiny"), model)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (str(self.marker), "pwned"))  # type: ignore[return-value]


def test_a_pickle_payload_never_runs(tmp_path: Path, model: ClipModel) -> None:
    marker = tmp_path / "marker"
    state: dict[str, object] = dict(to_openai_like(model.state_dict()))
    state["evil"] = _Payload(marker)
    torch.save(state, tmp_path / "evil.pt", pickle_protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(CheckpointError, match=r"evil\.pt: not a readable weights-only state dict"):
        clip_core.load_checkpoint(tmp_path / "evil.pt", card="tiny")
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_truncated_files_name_the_file(tmp_path: Path, model: ClipModel, suffix: str) -> None:
    path = tmp_path / f"weights{suffix}"
    foreign = to_openai_like(model.state_dict())
    save_file(foreign, path) if suffix == ".safetensors" else torch.save(foreign, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=rf"weights\{suffix}"):
        clip_core.load_checkpoint(path, card="tiny")


def test_non_tensor_entries_are_refused(tmp_path: Path, model: ClipModel) -> None:
    state: dict[str, object] = dict(to_openai_like(model.state_dict()))
    state["note"] = "hello"
    torch.save(state, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="entries that are not tensors: note"):
        clip_core.load_checkpoint(tmp_path / "odd.pt", card="tiny")


def test_missing_foreign_key_is_named(tmp_path: Path, model: ClipModel) -> None:
    foreign = to_openai_like(model.state_dict())
    del foreign["ln_final.bias"]
    torch.save(foreign, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"w\.pt: .*missing key 'ln_final\.bias'"):
        clip_core.load_checkpoint(tmp_path / "w.pt", card="tiny")


def test_keys_no_converter_reads_are_unexpected(tmp_path: Path, model: ClipModel) -> None:
    foreign = to_openai_like(model.state_dict())
    foreign["visual.extra.weight"] = torch.zeros(2)
    foreign["input_resolution"] = torch.tensor(32)  # OpenAI's metadata entries are dropped, not errors
    torch.save(foreign, tmp_path / "w.pt")
    with pytest.raises(
        CheckpointError, match=r"unexpected keys \(read by no tower converter\): visual\.extra\.weight$"
    ):
        clip_core.load_checkpoint(tmp_path / "w.pt", card="tiny")


def test_mis_shaped_foreign_weights_are_named(tmp_path: Path, model: ClipModel) -> None:
    foreign = to_openai_like(model.state_dict())
    foreign["ln_final.weight"] = torch.ones(3)
    torch.save(foreign, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"mis-shaped keys: text\.norm\.weight \(3,\)"):
        clip_core.load_checkpoint(tmp_path / "w.pt", card="tiny")


def test_a_layout_without_converter_names_the_tower_kind(tmp_path: Path, model: ClipModel) -> None:
    torch.save({"vision_model.x": torch.zeros(1), "text_model.y": torch.zeros(1)}, tmp_path / "hf.bin")
    with pytest.raises(CheckpointError, match="'hf' layout, which tower kind 'patch-mean'"):
        clip_core.load_checkpoint(tmp_path / "hf.bin", card="tiny")


def test_torchscript_archives_are_named_not_run(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/code/__torch__.py", "raise SystemExit")
        archive.writestr("model/data.pkl", b"")
    with pytest.raises(CheckpointError, match="TorchScript archive"):
        clip_core.load_checkpoint(path, card="tiny")


def test_loaded_weights_keep_the_models_dtype(tmp_path: Path, model: ClipModel) -> None:
    """Half-precision files (as OpenAI publishes) load into the float32 model the card builds."""
    foreign = {key: value.half() for key, value in to_openai_like(model.state_dict()).items()}
    torch.save(foreign, tmp_path / "half.pt")
    loaded = clip_core.load_checkpoint(tmp_path / "half.pt", card="tiny")
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    assert torch.equal(loaded.text.norm.weight, model.text.norm.weight.half().float())
