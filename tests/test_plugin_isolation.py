"""Plugin isolation: an installed plugin that fails to import, was written for another plugin API or registers a
name another plugin holds is left out with one warning naming it and the fix; ``clip plugins`` lists it as broken
with the reason and every other command works. ``CLIP_STRICT_PLUGINS=1`` makes it an error (the tests run so)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGINS = {
    # name: (module source, what `clip plugins` must say about it)
    "broken_import": ("import no_such_module_anywhere\n", "failed to import: ModuleNotFoundError"),
    "old_api": (
        "import clip_core\nCLIP_PLUGIN_API = '2.0'\n",
        "was written for clip-core plugin API 2.0, but this clip-core provides API 1.0",
    ),
    "copycat": (
        "from typing import Any\n"
        "import clip_core\n"
        "from clip_test_towers.model import PatchMeanConfig, PatchMeanTower\n"
        "CLIP_PLUGIN_API = '1.0'\n"
        "@clip_core.hookimpl\n"
        "def clip_register_towers(register: Any) -> None:\n"
        "    register(kind='patch-mean', modality='image', config=PatchMeanConfig, build=PatchMeanTower)\n",
        "tower kind 'patch-mean' is registered by both 'test_towers' and 'copycat'",
    ),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of installed distributions (as pip lays them out): three broken plugins, each with the
    ``clip_core`` entry point of a real package."""
    root = tmp_path_factory.mktemp("site")
    for name, (source, _) in PLUGINS.items():
        (root / f"{name}.py").write_text(source)
        info = root / f"clip_{name}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: clip-{name.replace('_', '-')}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[clip_core]\n{name} = {name}\n")
        (info / "RECORD").write_text("")
    return root


def clip(site: Path, *argv: str, strict: bool = False, disabled: str = "") -> subprocess.CompletedProcess[str]:
    """The ``clip`` command with ``site`` installed after the environment's own packages (so the plugins in it are
    discovered after clip-sdk's: of two plugins registering one name, the one discovered first keeps it)."""
    env = {key: value for key, value in os.environ.items() if key not in ("CLIP_STRICT_PLUGINS", "PYTHONPATH")}
    env["CLIP_SITE"], env["CLIP_DISABLED_PLUGINS"] = str(site), disabled
    if strict:
        env["CLIP_STRICT_PLUGINS"] = "1"
    code = "import os, sys; sys.path.append(os.environ['CLIP_SITE']); from clip_core.cli import main; "
    command = [sys.executable, "-c", code + "sys.exit(main(sys.argv[1:]))"]
    return subprocess.run([*command, *argv], capture_output=True, text=True, env=env, timeout=300)


def test_cards_list_works_with_broken_plugins_installed_and_warns_once_for_each(site: Path) -> None:
    result = clip(site, "cards", "list")
    assert result.returncode == 0, result.stderr
    assert any(line.split()[:1] == ["tiny"] for line in result.stdout.splitlines())
    warnings = result.stderr.splitlines()  # one line each, as the command line's errors, and nothing else
    assert len(warnings) == len(PLUGINS) and all(line.startswith("clip: warning: ") for line in warnings)
    for name in PLUGINS:
        warning = next(line for line in warnings if f"plugin {name!r} is left out" in line)
        assert "CLIP_DISABLED_PLUGINS" in warning


def test_plugins_lists_each_broken_plugin_with_the_reason(site: Path) -> None:
    result = clip(site, "plugins")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for name, (_, reason) in PLUGINS.items():
        line = next(line for line in lines if line.startswith(f"{name}  "))
        assert f"(clip-{name.replace('_', '-')} 0.1) BROKEN, left out: " in line and reason in line
    assert "test_towers  (clip-test-towers 0.1.0, plugin API 1.0)" in lines
    assert "  towers: patch-mean, bag-of-words" in lines  # the plugin that kept the kind keeps working


def test_strict_mode_turns_a_broken_plugin_into_a_one_line_error(site: Path) -> None:
    result = clip(site, "cards", "list", strict=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("clip: error: plugin ")


def test_a_disabled_broken_plugin_is_neither_loaded_nor_reported(site: Path) -> None:
    result = clip(site, "plugins", strict=True, disabled=",".join(PLUGINS))
    assert result.returncode == 0 and "BROKEN" not in result.stdout and result.stderr == ""
