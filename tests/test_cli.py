"""The `clip` command line: listings, card commands, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clip_core.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_plugins_lists_the_third_party_plugin_and_its_registrations(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "plugins")
    assert status == 0
    assert "test_towers  (clip-test-towers 0.1.0, plugin API 1.0)" in out
    assert "towers: patch-mean, bag-of-words" in out and "tokenizers: bytes" in out
    status, out, _ = run(capsys, "plugins", "--json")
    info = next(p for p in json.loads(out) if p["name"] == "test_towers")
    assert info["distribution"] == "clip-test-towers" and info["cards"] == ["tiny", "tiny-wide", "tiny-long"]


def test_cards_list_shows_names_kinds_and_aliases(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "cards", "list")
    assert status == 0
    assert out.splitlines()[0].split() == ["card", "embed_dim", "image", "text", "aliases", "plugin"]
    rows = [line.split() for line in out.splitlines()[1:]]
    assert ["tiny", "16", "patch-mean", "bag-of-words", "Tiny/8", "test_towers"] in rows
    assert ["ViT-L-14-336", "768", "vit", "text-transformer", "ViT-L/14@336px", "vit"] in rows
    _, out, _ = run(capsys, "cards", "list", "--json")
    assert {
        "name": "tiny",
        "embed_dim": "16",
        "image": "patch-mean",
        "text": "bag-of-words",
        "aliases": "Tiny/8",
        "plugin": "test_towers",
    } in json.loads(out)


def test_cards_show_prints_the_validated_card(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "cards", "show", "Tiny/8", "--json")
    assert status == 0
    card = json.loads(out)
    assert card["name"] == "tiny" and card["preprocess"]["image_size"] == 32


def test_cards_schema_is_json_schema_with_installed_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "cards", "schema")
    schema = json.loads(out)
    assert status == 0 and schema["title"] == "ModelCard"
    assert "patch-mean" in out and "bag-of-words" in out


def test_cards_validate_accepts_good_files_and_refuses_bad_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "name: good\nembed_dim: 8\nimage: {kind: patch-mean, image_size: 8, patch_size: 4, width: 4}\n"
        "text: {kind: bag-of-words, width: 4}\ntokenizer: {kind: bytes}\n"
    )
    status, out, _ = run(capsys, "cards", "validate", str(good))
    assert status == 0 and f"{good}: ok (card 'good', embed_dim 8, patch-mean + bag-of-words)" in out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "bad", "embed_dim": 8, "image": {"kind": "patch-mean"}, "text": {"kind": "x"}}))
    status, _, err = run(capsys, "cards", "validate", str(bad))
    assert status == 2
    assert (
        err.startswith("clip: error: invalid card 'bad'")
        and "image.patch_size: Field required" in err
        and "text.kind: unknown tower kind 'x'" in err
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cards", "show", "nope"], "unknown card 'nope'"),
        (["cards", "validate", "missing.toml"], "missing.toml: no such card file"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and message in err


def test_the_installed_command_exits_2_without_a_traceback(tmp_path: Path) -> None:
    clip = Path(sys.executable).with_name("clip")
    result = subprocess.run([str(clip), "cards", "show", str(tmp_path / "x.json")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == f"clip: error: {tmp_path / 'x.json'}: no such card file\n"
    assert "Traceback" not in result.stderr


def test_version_and_usage_errors() -> None:
    clip = Path(sys.executable).with_name("clip")
    version = subprocess.run([str(clip), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("clip-core ")
    usage = subprocess.run([str(clip), "cards"], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage: clip cards" in usage.stderr


def test_every_inference_command_on_a_bare_card_warns_once_that_its_weights_are_random(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A card without --pretrained runs on random weights: each command says so on stderr, once, with the way to
    trained weights; a checkpoint gets no such warning."""
    import torch
    from PIL import Image

    import clip_core

    Image.new("RGB", (20, 20), "red").save(tmp_path / "red.png")
    out = tmp_path / "out.npy"
    warning = (
        "clip: warning: tiny has random weights (seed 0), so its outputs mean nothing; load trained weights with "
        "--pretrained TAG (the tags: clip pretrained list tiny)\n"
    )
    commands = [
        ["embed", str(tmp_path / "red.png"), "-o", str(out), "--workers", "0"],
        ["zero-shot", str(tmp_path / "red.png"), "--labels", "cat", "dog"],
        ["search", str(out), "--text", "a cat"],
    ]
    for argv in commands:
        status, _, err = run(capsys, *argv, "--model", "tiny")
        assert status == 0 and err.count(warning) == 1, (argv, err)
    torch.manual_seed(0)
    saved = clip_core.create_model("tiny").save_pretrained(tmp_path / "model")
    for argv in commands[1:]:
        status, _, err = run(capsys, *argv, "--model", str(saved))
        assert status == 0 and "warning" not in err, (argv, err)
