"""Cards and pretrained tables shipped as package data: `package_cards` and `package_pretrained`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from clip_core import PluginError, registry
from clip_core.cardfiles import package_cards, read_card_file
from clip_core.hub.pretrained import PretrainedWeights, package_pretrained

PACKAGE = "clip_package_data_example"


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An importable, empty package `clip_package_data_example`; the test fills its folder."""
    folder = tmp_path / PACKAGE
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield folder
    sys.modules.pop(PACKAGE, None)


@pytest.mark.parametrize(
    ("package_name", "card"), [("clip_encoders_vit", "ViT-B-32"), ("clip_encoders_resnet", "RN50")]
)
def test_package_cards_lists_the_registered_cards_sorted(package_name: str, card: str) -> None:
    cards = package_cards(package_name)
    names = [path.name for path in cards]
    assert names == sorted(names) and f"{card}.json" in names
    for path in cards:
        assert registry.card_entry(read_card_file(path)["name"]).origin.startswith(f"{path} (plugin ")


def test_package_cards_takes_every_card_suffix_and_nothing_else(package: Path) -> None:
    (package / "cards").mkdir()
    for name in ("c.toml", "a.yaml", "b.JSON", "d.yml", "notes.txt", "README.md"):
        (package / "cards" / name).write_text("")
    (package / "cards" / "sub.json").mkdir()
    assert [path.name for path in package_cards(PACKAGE)] == ["a.yaml", "b.JSON", "c.toml", "d.yml"]


def test_package_cards_names_the_package_and_folder_when_missing(package: Path) -> None:
    with pytest.raises(PluginError, match=rf"{PACKAGE}.*'cards'.*{PACKAGE}[/\\]cards"):
        package_cards(PACKAGE)


@pytest.mark.parametrize("package_name", ["clip_encoders_vit", "clip_encoders_resnet"])
def test_package_pretrained_gives_the_registered_entries(package_name: str) -> None:
    entries = package_pretrained(package_name)
    assert entries
    for entry in entries:
        assert registry.pretrained_weights(entry["card"], entry["tag"]) == PretrainedWeights(**entry)


def test_package_pretrained_entries_carry_card_and_tag(package: Path) -> None:
    (package / "pretrained.json").write_text(
        '{"about": "x", "weights": {"c": {"t1": {"url": "https://a/b"}, "t2": {"hf_hub_id": "o/r"}}}}'
    )
    assert package_pretrained(PACKAGE) == [
        {"card": "c", "tag": "t1", "url": "https://a/b"},
        {"card": "c", "tag": "t2", "hf_hub_id": "o/r"},
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (None, "no such pretrained table"),
        ("{not json", "cannot read"),
        ('{"weights": []}', "'weights'"),
        ('["weights"]', "'weights'"),
        ('{"weights": {"c": ["t"]}}', r"weights\['c'\]"),
        ('{"weights": {"c": {"t": 1}}}', r"weights\['c'\]\['t'\]"),
        ('{"weights": {"c": {"t": {"card": "d"}}}}', r"weights\['c'\]\['t'\]"),
    ],
)
def test_package_pretrained_names_the_package_and_file_when_malformed(
    package: Path, text: str | None, problem: str
) -> None:
    if text is not None:
        (package / "pretrained.json").write_text(text)
    with pytest.raises(PluginError, match=rf"{PACKAGE}'.*pretrained\.json: .*{problem}"):
        package_pretrained(PACKAGE)
