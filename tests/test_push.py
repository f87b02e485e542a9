"""Pushing to the Hugging Face hub: the folder and model card that would be uploaded (written with no network, and
loaded back by its hub name once it sits in the cache), and failing fast with a ``ClipError`` when the hub is
unreachable or off limits. "Unreachable" is a closed loopback port; nothing here reaches the internet."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
import torch

import clip_core
from clip_core.cli import main
from clip_core.hub.push import model_card_readme, prepare_push, push_to_hub


@pytest.fixture(autouse=True)
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh Hugging Face home, the hub at a closed loopback port, and no proxy in between."""
    for name in ("HF_HUB_CACHE", "http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    return tmp_path / "hf-home"


@pytest.fixture
def tiny() -> clip_core.ClipModel:
    torch.manual_seed(0)
    return clip_core.create_model("tiny").eval()


def test_the_prepared_folder_holds_the_model_and_a_model_card(tiny: clip_core.ClipModel, tmp_path: Path) -> None:
    folder = prepare_push(tiny, tmp_path / "out", repo_id="someone/tiny-model")
    assert sorted(path.name for path in folder.iterdir()) == ["README.md", "card.json", "model.safetensors"]
    loaded = clip_core.load_checkpoint(folder)
    assert loaded.card == tiny.card
    assert all(torch.equal(loaded.state_dict()[key], value) for key, value in tiny.state_dict().items())
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("---\nlibrary_name: clip-sdk\ntags:\n- clip\n")
    assert "# tiny-model\n" in readme and "card `tiny`" in readme
    assert "| embedding width | 16 |" in readme
    assert "| image tower | `patch-mean`: image_size 32, patch_size 8, width 24 |" in readme
    assert 'model = clip_core.create_model("hf-hub:someone/tiny-model")' in readme


def test_a_pushed_folder_placed_in_the_cache_loads_back_by_its_hub_name(
    tiny: clip_core.ClipModel, tmp_path: Path, hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a push uploads is what `hf-hub:` reads: the prepared folder, as the cache would hold it, loads back."""
    folder = prepare_push(tiny, tmp_path / "out", repo_id="someone/tiny-model", revision="v1")
    commit = "a" * 40
    repo = hf_home / "hub" / "models--someone--tiny-model"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "v1").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = clip_core.create_model("hf-hub:someone/tiny-model@v1")
    assert all(torch.equal(model.state_dict()[key], value) for key, value in tiny.state_dict().items())


def test_the_model_card_of_a_vit_says_the_preprocessing_and_how_to_load_it_everywhere() -> None:
    readme = model_card_readme(clip_core.get_card("ViT-B-32-quickgelu"), repo_id="org/vit", revision="v2")
    assert "| image tower | `vit`: image_size 224, patch_size 32, width 768, layers 12, heads 12" in readme
    assert "activation quick_gelu |" in readme
    assert "| tokenizer | `clip-bpe`, context length 77 |" in readme
    assert "resize the shorter side to 224 pixels (bicubic), center crop 224 x 224" in readme
    assert "mean (0.48145466, 0.4578275, 0.40821073)" in readme
    assert 'clip_core.create_model("hf-hub:org/vit@v2")' in readme
    assert "clip convert hf-hub:org/vit@v2 model-open_clip --to open_clip" in readme
    assert "clip convert hf-hub:org/vit@v2 model-transformers --to transformers" in readme


def test_the_model_card_loads_each_layout_with_its_own_library() -> None:
    card = clip_core.get_card("ViT-B-16")
    open_clip_readme = model_card_readme(card, repo_id="org/m", format="open_clip")
    assert 'open_clip.create_model_and_transforms("hf-hub:org/m")' in open_clip_readme
    assert "library_name: open_clip" in open_clip_readme
    pinned = model_card_readme(card, repo_id="org/m", revision="v1", format="open_clip")
    assert 'snapshot_download("org/m", revision="v1")' in pinned
    transformers_readme = model_card_readme(card, repo_id="org/m", revision="v1", format="transformers")
    assert 'CLIPModel.from_pretrained("org/m", revision="v1")' in transformers_readme


def test_the_model_card_of_a_resnet_says_transformers_has_none() -> None:
    readme = model_card_readme(clip_core.get_card("RN50"), repo_id="org/rn")
    assert "transformers has no CLIP with a `modified-resnet` image tower" in readme
    assert "CLIPModel.from_pretrained" not in readme


def test_a_push_to_an_unreachable_hub_fails_with_a_clip_error_saying_why(
    tiny: clip_core.ClipModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(clip_core.PretrainedError) as excinfo:
        tiny.push_to_hub("someone/tiny-model", revision="v1", private=True)
    endpoint = clip_core.hub.hub_endpoint()
    assert str(excinfo.value).startswith(
        f"cannot push to {endpoint}/someone/tiny-model (revision 'v1'): cannot connect"
    )
    assert str(excinfo.value).endswith("(connection refused)")


def test_a_push_with_the_hub_offline_fails_with_a_clip_error(
    tiny: clip_core.ClipModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(clip_core.PretrainedError, match="HF_HUB_OFFLINE is set"):
        push_to_hub(tiny, "someone/tiny-model")


@pytest.mark.parametrize(("repo_id", "format"), [("no-org", "clip-sdk"), ("a/b", "keras")])
def test_a_bad_repository_or_format_is_refused_before_any_request(
    tiny: clip_core.ClipModel, repo_id: str, format: str
) -> None:
    with pytest.raises(clip_core.ClipError, match="expected"):
        push_to_hub(tiny, repo_id, format=format)  # type: ignore[arg-type]


def test_a_push_to_a_commit_is_refused_it_goes_to_a_branch(tiny: clip_core.ClipModel) -> None:
    with pytest.raises(clip_core.PretrainedError, match=r"a push goes to a branch; '0{40}' is a commit"):
        tiny.push_to_hub("someone/tiny-model", revision="0" * 40)


def test_clip_push_prepares_or_uploads_and_reports_a_failure_in_one_line(
    tiny: clip_core.ClipModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny.save_pretrained(tmp_path / "model")
    assert main(["push", str(tmp_path / "model"), "someone/tiny-model", "--prepare", str(tmp_path / "out")]) == 0
    assert "README.md, card.json, model.safetensors); nothing was uploaded" in capsys.readouterr().out
    assert (tmp_path / "out" / "README.md").is_file()
    assert main(["push", str(tmp_path / "model"), "someone/tiny-model", "--private"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("clip: error: cannot push to http://127.0.0.1:") and err.count("\n") == 1
