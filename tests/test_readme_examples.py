"""Every Python example of the READMEs runs on what the published packages register (no test-only card).

Each ```python block of README.md and of each package's README runs, in order, in a folder (one per README, as a
reader following it would have) holding the files the examples open (cat.jpg, dog.png), with the hub offline and an
empty weights cache, so an example reaching for downloaded
weights fails rather than passing on something cached. A block preceded by a ``<!-- docs-test: skip, REASON -->``
line is not run: the few that need downloaded weights or are fragments of the reader's code. (The plugin guide's
examples, docs/plugins.md, run in test_docs.py.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", *sorted(ROOT.glob("packages/*/README.md"))]
SKIP = re.compile(r"^<!-- docs-test: skip, [^>]+ -->$")


def examples() -> list[tuple[str, str, bool]]:
    """(file:line, code, skipped) for every ```python block of the READMEs."""
    found = []
    for readme in READMES:
        lines = readme.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            if line != "```python":
                continue
            end = lines.index("```", number + 1)
            skipped = number > 0 and bool(SKIP.match(lines[number - 1]))
            code = "\n".join(lines[number + 1 : end]) + "\n"
            found.append((f"{readme.relative_to(ROOT)}:{number + 1}", code, skipped))
    return found


EXAMPLES = examples()


def test_only_a_few_examples_are_skipped_and_none_uses_a_test_card() -> None:
    assert len(EXAMPLES) >= 6
    assert sum(skipped for _, _, skipped in EXAMPLES) <= 7
    test_cards = {"tiny", "tiny-wide", "tiny-long"}
    for where, code, _ in EXAMPLES:
        assert not test_cards & set(re.findall(r"[\"']([\w-]+)[\"']", code)), where


@pytest.fixture(scope="module")
def folders() -> dict[str, Path]:
    """The folder each README's examples run in, made by the first of them."""
    return {}


@pytest.mark.parametrize(("where", "code"), [(w, c) for w, c, skipped in EXAMPLES if not skipped])
def test_readme_example_runs(
    where: str,
    code: str,
    folders: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    readme = where.rsplit(":", 1)[0]
    if readme not in folders:
        folders[readme] = folder = tmp_path_factory.mktemp(readme.replace("/", "-"))
        Image.new("RGB", (320, 240), (200, 120, 40)).save(folder / "cat.jpg")
        Image.new("RGBA", (200, 260), (40, 90, 200, 255)).save(folder / "dog.png")
    folder = folders[readme]
    monkeypatch.chdir(folder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(folder / "hf"))
    monkeypatch.setenv("CLIP_CACHE", str(folder / "cache"))
    torch.manual_seed(0)
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(code, where, "exec"), namespace)  # the examples are this repository's own text
