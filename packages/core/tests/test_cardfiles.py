"""Card files are read by suffix, from paths and from package data, and errors name the file."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from clip_core.cardfiles import CARD_SUFFIXES, read_card_file
from clip_core.errors import CardError


def test_suffixes_cover_json_yaml_and_toml() -> None:
    assert set(CARD_SUFFIXES) == {".json", ".yaml", ".yml", ".toml"}


def test_reads_traversables_such_as_cards_inside_a_zipped_package(tmp_path: Path) -> None:
    """Cards shipped as package data may live in a zip; anything with `name` and `read_text` is read."""
    archive = tmp_path / "plugin.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("cards/zipped.yaml", "name: zipped\nembed_dim: 4\n")
    assert read_card_file(zipfile.Path(archive, "cards/zipped.yaml")) == {"name": "zipped", "embed_dim": 4}


def test_same_content_in_each_format_gives_the_same_dict(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"name": "a", "image": {"kind": "k", "n": [1, 2]}}')
    (tmp_path / "a.yaml").write_text("name: a\nimage:\n  kind: k\n  n: [1, 2]\n")
    (tmp_path / "a.toml").write_text('name = "a"\n[image]\nkind = "k"\nn = [1, 2]\n')
    dicts = [read_card_file(tmp_path / f"a.{ext}") for ext in ("json", "yaml", "toml")]
    assert dicts[0] == dicts[1] == dicts[2]


def test_suffix_is_case_insensitive(tmp_path: Path) -> None:
    (tmp_path / "A.JSON").write_text('{"name": "a"}')
    assert read_card_file(tmp_path / "A.JSON") == {"name": "a"}


def test_undecodable_bytes_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_bytes(b"name: \xff\xfe")
    with pytest.raises(CardError, match=r"bad\.yaml: cannot read card file"):
        read_card_file(tmp_path / "bad.yaml")


def test_empty_yaml_is_not_a_card(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(CardError, match="holds a mapping"):
        read_card_file(tmp_path / "empty.yaml")
