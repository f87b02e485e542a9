"""``hf-hub:ORG/NAME[@REVISION]``: repositories in this SDK's, open_clip's and transformers' layouts, laid out by
hand in a temporary standard Hugging Face cache (``HF_HOME/hub/models--ORG--NAME/snapshots/<commit>/`` and
``refs/<revision>``, as huggingface_hub writes it), load by their hub name with the hub offline; a missing one fails
with a ``ClipError``. Nothing here reaches the internet: "unreachable" is a closed loopback port."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import open_clip
import pytest
import torch
import transformers

import clip_core
from clip_core.cli import main
from clip_core.hub.hfhub import HubName, cached_snapshot, layout_files, parse_hub_name
from clip_core.hub.settings import hub_cache, hub_endpoint, hub_offline

COMMIT_1 = "1" * 40
COMMIT_2 = "2" * 40
TEXT_CFG = {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1}
VIT_CFG = {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8}


@pytest.fixture(autouse=True)
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh Hugging Face home, the hub offline, and no proxy between the tests and the loopback interface."""
    for name in (
        "HF_HUB_CACHE",
        "HF_ENDPOINT",
        "TRANSFORMERS_OFFLINE",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


def place(home: Path, repo_id: str, files: Path, commit: str, *refs: str) -> Path:
    """Put the files of folder ``files`` in the cache as commit ``commit`` of ``repo_id``, with ``refs`` naming it."""
    repo = home / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    shutil.copytree(files, snapshot)
    for ref in refs:
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit, encoding="utf-8")
    return snapshot


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the three layouts ----------------------------------------------------------------------------------------------
def clip_sdk_folder(directory: Path, seed: int = 0) -> clip_core.ClipModel:
    torch.manual_seed(seed)
    model = clip_core.create_model("tiny").eval()
    model.save_pretrained(directory)
    return model


def open_clip_folder(directory: Path, seed: int = 0) -> Any:
    model_cfg = {"embed_dim": 24, "quick_gelu": True, "vision_cfg": VIT_CFG, "text_cfg": TEXT_CFG}
    torch.manual_seed(seed)
    model = open_clip.model.CLIP(**model_cfg).eval()
    directory.mkdir(parents=True)
    from safetensors.torch import save_file

    save_file(
        {key: value.contiguous() for key, value in model.state_dict().items()},
        directory / "open_clip_model.safetensors",
    )
    config = {"model_cfg": model_cfg, "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3}}
    (directory / "open_clip_config.json").write_text(json.dumps(config), encoding="utf-8")
    return model


def transformers_folder(directory: Path, seed: int = 0) -> Any:
    torch.manual_seed(seed)
    config = transformers.CLIPConfig(
        projection_dim=24,
        vision_config={
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2},
    )
    model = transformers.CLIPModel(config).eval()
    model.save_pretrained(directory)
    return model


def embeddings(model: Any, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Image and text embeddings of ``model`` (ours, open_clip's or transformers') on fixed pixels and texts."""
    torch.manual_seed(1)
    pixels = torch.randn(2, 3, size, size)
    ids = open_clip.get_tokenizer("ViT-B-32")(["a photo of a dog", "two cats"])
    with torch.no_grad():
        if isinstance(model, transformers.CLIPModel):
            hf_ids = torch.where(ids == 0, torch.full_like(ids, 49407), ids)  # transformers pads with the end token
            image = model.get_image_features(pixel_values=pixels).pooler_output
            text = model.get_text_features(input_ids=hf_ids).pooler_output
            return image, text
        return model.encode_image(pixels), model.encode_text(ids)


def assert_close(ours: tuple[torch.Tensor, torch.Tensor], theirs: tuple[torch.Tensor, torch.Tensor]) -> None:
    for a, b in zip(ours, theirs, strict=True):
        assert ((a - b).norm() / b.norm()).item() <= 1e-5


@pytest.mark.parametrize(
    ("layout", "build"),
    [("clip-sdk", clip_sdk_folder), ("open_clip", open_clip_folder), ("transformers", transformers_folder)],
)
def test_a_repo_in_each_layout_loads_offline_by_its_hub_name(
    layout: str, build: Any, hf_home: Path, tmp_path: Path
) -> None:
    reference = build(tmp_path / "repo")
    place(hf_home, f"someone/{layout}-small", tmp_path / "repo", COMMIT_1, "main")
    model = clip_core.load_checkpoint(f"hf-hub:someone/{layout}-small")
    size = model.card.preprocess.image_size
    if layout == "clip-sdk":
        assert model.card == reference.card
        assert all(torch.equal(model.state_dict()[k], v) for k, v in reference.state_dict().items())
    else:
        assert model.card.name == f"inferred-{layout}-small"
        assert_close(embeddings(model, size), embeddings(reference, size))
    assert not model.training


def test_create_model_takes_a_hub_name_as_the_card_or_as_the_weights(hf_home: Path, tmp_path: Path) -> None:
    reference = clip_sdk_folder(tmp_path / "repo")
    place(hf_home, "someone/tiny", tmp_path / "repo", COMMIT_1, "main")
    for model in (clip_core.create_model("hf-hub:someone/tiny"), clip_core.create_model("tiny", "hf-hub:someone/tiny")):
        assert torch.equal(model.logit_scale, reference.logit_scale) and model.card == reference.card
    with pytest.raises(clip_core.PretrainedError, match="brings its own weights"):
        clip_core.create_model("hf-hub:someone/tiny", pretrained="openai")


def test_a_pinned_revision_loads_that_commit_and_main_the_one_its_ref_names(hf_home: Path, tmp_path: Path) -> None:
    first = clip_sdk_folder(tmp_path / "first", seed=1)
    second = clip_sdk_folder(tmp_path / "second", seed=2)
    place(hf_home, "someone/tiny", tmp_path / "first", COMMIT_1, "v1.0")
    place(hf_home, "someone/tiny", tmp_path / "second", COMMIT_2, "main")
    loads = {
        "": second,
        "@main": second,
        "@v1.0": first,
        f"@{COMMIT_1}": first,
        f"@{COMMIT_2}": second,
    }
    for suffix, expected in loads.items():
        model = clip_core.load_checkpoint(f"hf-hub:someone/tiny{suffix}")
        assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.state_dict().items()), suffix


def test_a_repo_missing_from_the_cache_fails_offline_with_a_clip_error_naming_the_cache(hf_home: Path) -> None:
    with pytest.raises(clip_core.PretrainedError) as excinfo:
        clip_core.load_checkpoint("hf-hub:someone/missing@v2")
    assert str(excinfo.value) == (
        "cannot load hf-hub:someone/missing@v2 from the Hugging Face hub (https://huggingface.co/someone/missing): "
        f"HF_HUB_OFFLINE is set and revision 'v2' is not in the Hugging Face cache {hf_home / 'hub'}"
    )


def test_a_repo_missing_with_the_hub_unreachable_fails_with_a_clip_error_saying_why(
    hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    with pytest.raises(clip_core.PretrainedError) as excinfo:
        clip_core.create_model("hf-hub:someone/missing")
    message = str(excinfo.value)
    assert message.startswith(
        f"cannot load hf-hub:someone/missing from the Hugging Face hub ({endpoint}/someone/missing)"
    )
    assert "(connection refused), and revision 'main' is not in the Hugging Face cache" in message


def test_with_the_hub_unreachable_the_cached_revision_is_used(
    hf_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = clip_sdk_folder(tmp_path / "repo")
    place(hf_home, "someone/tiny", tmp_path / "repo", COMMIT_1, "main")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    model = clip_core.load_checkpoint("hf-hub:someone/tiny")
    assert torch.equal(model.logit_scale, reference.logit_scale)


@pytest.mark.parametrize(
    "name", ["hf-hub:tiny", "hf-hub:a/b/c", "hf-hub:a/b@", "hf-hub:a/../b", "hf-hub:/b", "hf-hub:a/b@../../x"]
)
def test_malformed_hub_names_are_refused_saying_the_form(name: str) -> None:
    with pytest.raises(clip_core.PretrainedError, match=r"expected hf-hub:ORG/NAME or hf-hub:ORG/NAME@REVISION"):
        clip_core.load_checkpoint(name)


def test_hub_names_parse_into_repository_and_revision() -> None:
    assert parse_hub_name("hf-hub:laion/CLIP-ViT-B-32") == HubName("laion/CLIP-ViT-B-32", None)
    assert parse_hub_name("hf-hub:a/b@refs/pr/1") == HubName("a/b", "refs/pr/1")
    assert str(HubName("a/b", "v1")) == "hf-hub:a/b@v1" and HubName("a/b").ref == "main"


def test_the_files_fetched_are_those_of_the_first_layout_the_repository_has() -> None:
    ours = {"card.json", "model.safetensors", "open_clip_config.json", "open_clip_model.safetensors", "README.md"}
    assert layout_files(ours) == ["card.json", "model.safetensors"]
    both = {"open_clip_config.json", "open_clip_pytorch_model.bin", "open_clip_model.safetensors", "config.json"}
    assert layout_files(both | {"pytorch_model.bin"}) == ["open_clip_config.json", "open_clip_model.safetensors"]
    sharded = {"config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors"}
    sharded |= {"model-00002-of-00002.safetensors", "pytorch_model.bin", "tokenizer.json"}
    assert layout_files(sharded) == [
        "config.json",
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    assert layout_files({"config.json", "README.md"}) is None
    assert layout_files({"open_clip_config.json"}) is None


def test_a_cached_snapshot_is_found_by_commit_or_by_ref_without_a_request(hf_home: Path, tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    snapshot = place(hf_home, "someone/x", tmp_path / "repo", COMMIT_1, "main")
    assert cached_snapshot(HubName("someone/x")) == snapshot
    assert cached_snapshot(HubName("someone/x", COMMIT_1)) == snapshot
    assert cached_snapshot(HubName("someone/x", COMMIT_2)) is None
    assert cached_snapshot(HubName("someone/x", "v9")) is None


def test_the_hub_settings_follow_the_environment_at_each_call(
    hf_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert hub_cache() == hf_home / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert hub_cache() == tmp_path / "elsewhere"
    for value, offline in (("1", True), ("yes", True), ("ON", True), ("0", False), ("false", False)):
        monkeypatch.setenv("HF_HUB_OFFLINE", value)
        assert hub_offline() is offline
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    assert hub_offline()
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9/")
    assert hub_endpoint() == "http://127.0.0.1:9"


# -- the command line -----------------------------------------------------------------------------------------------
def test_the_cli_runs_a_hub_model(hf_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip_sdk_folder(tmp_path / "repo")
    place(hf_home, "someone/tiny", tmp_path / "repo", COMMIT_1, "main")
    texts = tmp_path / "texts.txt"
    texts.write_text("a dog\na cat\n", encoding="utf-8")
    out = tmp_path / "out.safetensors"
    argv = ["embed", "--model", "hf-hub:someone/tiny", "--texts", str(texts), "-o", str(out), "--no-progress"]
    assert main(argv) == 0
    manifest = json.loads((tmp_path / "out.safetensors.manifest.json").read_text())
    assert manifest["model"]["source"] == "hf-hub:someone/tiny"
    assert main(["embed", "--model", "hf-hub:someone/gone", "--texts", str(texts), "-o", str(out)]) == 2
    assert "clip: error: cannot load hf-hub:someone/gone" in capsys.readouterr().err


def test_a_new_process_loads_a_cached_repo_offline_through_the_environment(hf_home: Path, tmp_path: Path) -> None:
    """As a user would: HF_HOME and HF_HUB_OFFLINE in the environment of a fresh interpreter."""
    reference = open_clip_folder(tmp_path / "repo")
    place(hf_home, "someone/open-clip-small", tmp_path / "repo", COMMIT_1, "main")
    script = (
        "import clip_core, torch; m = clip_core.create_model('hf-hub:someone/open-clip-small'); "
        "print(m.card.name, m.logit_scale.item())"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    name, scale = result.stdout.split()
    assert name == "inferred-open-clip-small" and float(scale) == pytest.approx(reference.logit_scale.item())
