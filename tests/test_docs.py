"""Meta-tests keeping the plugin guide (docs/plugins.md) and the hookspecs from drifting apart.

- the guide shows every hookspec's exact signature line;
- every hookspec has a test of its own (a test function named after it, outside this file);
- the guide's example plugin is imported, registered and really used, as is its usage example.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy
import pytest
import torch
from torch import nn

import clip_core
from clip_core import hookspecs, registry
from clip_core.cli import main

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DOCS = ROOT / "docs" / "plugins.md"
TESTS = ROOT / "tests"
EXAMPLE_NAME = "docs_example"


def hookspec_names() -> list[str]:
    """The hooks pluggy finds in clip_core.hookspecs, as the registry's plugin manager does."""
    pm = pluggy.PluginManager("clip_core")
    pm.add_hookspecs(hookspecs)
    return sorted(
        name for name, caller in vars(pm.hook).items() if isinstance(caller, pluggy.HookCaller) and caller.has_spec()
    )


HOOKSPECS = hookspec_names()


def docs_text() -> str:
    return PLUGIN_DOCS.read_text(encoding="utf-8")


def python_blocks(text: str) -> list[str]:
    """The contents of the fenced ```python blocks of a Markdown text."""
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)


def example_source() -> str:
    blocks = [block for block in python_blocks(docs_text()) if block.startswith("# example_plugin.py\n")]
    assert len(blocks) == 1, "docs/plugins.md holds exactly one ```python block starting with `# example_plugin.py`"
    return blocks[0]


def signature_line(name: str) -> str:
    """``def <hook>(<parameters>) -> <return>:`` built from inspect, checked against the line in hookspecs.py."""
    function = getattr(hookspecs, name)
    line = f"def {name}{inspect.signature(function, eval_str=True)}:"
    assert line in [source_line.strip() for source_line in inspect.getsource(function).splitlines()]
    return line


def test_hookspecs_are_the_clip_register_functions() -> None:
    """pluggy sees exactly the module's `clip_register_*` functions as hookspecs (so the checks below see all)."""
    assert HOOKSPECS
    assert sorted(name for name in vars(hookspecs) if name.startswith("clip_register_")) == HOOKSPECS


@pytest.mark.parametrize("name", HOOKSPECS)
def test_docs_show_the_exact_signature_of_each_hookspec(name: str) -> None:
    lines = docs_text().splitlines()
    assert signature_line(name) in lines
    assert f"### {name}(register)" in lines


def names_of_test_functions() -> set[str]:
    """Names of the test functions under tests/, this file excepted (it cannot vouch for itself)."""
    names: set[str] = set()
    for path in TESTS.rglob("test_*.py"):
        if path.resolve() == Path(__file__).resolve():
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        names |= {
            node.name
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")
        }
    return names


@pytest.mark.parametrize("name", HOOKSPECS)
def test_every_hookspec_has_a_test_of_its_own(name: str) -> None:
    assert [test for test in names_of_test_functions() if name in test], f"no test under tests/ names {name}"


# -- the example plugin ---------------------------------------------------------------------------------------------
@pytest.fixture
def example_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The example plugin of docs/plugins.md, written to a file and imported as `example_plugin`."""
    path = tmp_path / "example_plugin.py"
    path.write_text(example_source(), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("example_plugin", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "example_plugin", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def example(example_module: ModuleType) -> Iterator[ModuleType]:
    """The example plugin, registered at run time as `docs_example` for the test."""
    assert clip_core.register_plugin(example_module, name=EXAMPLE_NAME) == EXAMPLE_NAME
    yield example_module
    clip_core.unregister_plugin(EXAMPLE_NAME)


def test_example_plugin_implements_every_hook(example_module: ModuleType) -> None:
    implemented = {name for name in HOOKSPECS if hasattr(getattr(example_module, name, None), "clip_core_impl")}
    assert implemented == set(HOOKSPECS)
    assert example_module.CLIP_PLUGIN_API == clip_core.PLUGIN_API_VERSION


def test_example_card_validates_and_composes_the_example_towers(example: ModuleType) -> None:
    card = clip_core.get_card("example-tiny")
    assert clip_core.get_card("Example/Tiny") == card
    assert isinstance(card.image, example.PooledPixelsConfig)
    assert isinstance(card.text, example.MeanEmbeddingConfig)
    assert (card.tokenizer.kind, card.tokenizer.context_length) == ("utf8-bytes", card.text.context_length)
    assert card.preprocess.image_size == card.image.image_size
    assert registry.card_entry("example-tiny").plugin == EXAMPLE_NAME


def test_example_model_runs_forward_with_logits_of_the_right_shape(example: ModuleType) -> None:
    card = clip_core.get_card("example-tiny")
    model = clip_core.create_model(card)
    assert isinstance(model.visual, example.PooledPixels) and isinstance(model.text, example.MeanEmbedding)
    ids = clip_core.get_tokenizer(card)(["a diagram", "a dog", "a cat"])
    size = card.preprocess.image_size
    output = model(torch.rand(2, 3, size, size), ids)
    assert output.image_embeds.shape == (2, card.embed_dim) and output.text_embeds.shape == (3, card.embed_dim)
    assert output.logits_per_image.shape == (2, 3) and output.logits_per_text.shape == (3, 2)
    assert torch.isfinite(output.logits_per_image).all()
    torch.testing.assert_close(output.image_embeds.norm(dim=-1), torch.ones(2))


def test_example_tokenizer_tokenizes_like_clip(example: ModuleType) -> None:
    """Start token, ids, end token, zero padding; a long text is cut so that the end token stays last."""
    tokenizer = clip_core.get_tokenizer("example-tiny")
    assert isinstance(tokenizer, example.ByteTokenizer) and isinstance(tokenizer, clip_core.Tokenizer)
    ids = tokenizer(["hi", "x" * 100])
    assert ids.shape == (2, 16) and ids.dtype == torch.long
    start, end = example.ByteTokenizer.start, example.ByteTokenizer.end
    assert ids[0, :4].tolist() == [start, ord("h") + 1, ord("i") + 1, end]
    assert ids[0, 4:].eq(0).all()
    assert ids[1, -1].item() == end and ids[1].ne(0).all()
    assert tokenizer.decode(tokenizer.encode("naïve café")) == "naïve café"


def test_example_pretrained_entry_is_registered_for_the_card(example: ModuleType) -> None:
    weights = registry.pretrained_weights("example-tiny", "v1")
    assert weights.url is not None and weights.url.startswith("https://")
    assert weights.sha256 is not None and re.fullmatch(r"[0-9a-f]{64}", weights.sha256)
    published = [info.tag for info in clip_core.get_card("example-tiny").provenance.pretrained]
    assert registry.pretrained_tags("example-tiny") == published == ["v1"]


def test_example_loss_builds_a_module_that_trains_the_model(example: ModuleType) -> None:
    loss = registry.loss("example-infonce").loss()
    assert isinstance(loss, nn.Module) and isinstance(loss, example.SymmetricInfoNCE)
    model = clip_core.create_model("example-tiny")
    ids = clip_core.get_tokenizer("example-tiny")(["a dog", "a cat"])
    value = loss(model(torch.rand(2, 3, 32, 32), ids))
    assert value.shape == () and torch.isfinite(value)
    value.backward()
    assert all(parameter.grad is not None for parameter in model.parameters())


def test_example_converter_maps_the_old_layout_onto_the_tower(example: ModuleType) -> None:
    config = example.PooledPixelsConfig()
    tower = clip_core.build_tower(config, 16)
    old = {key.replace("proj.", "linear."): torch.randn_like(value) for key, value in tower.state_dict().items()}
    converted = registry.tower_kind("pooled-pixels").converters["example-v0"](old, config)
    tower.load_state_dict(converted, strict=True)
    assert torch.equal(tower.state_dict()["proj.bias"], old["linear.bias"])


def test_example_exporter_is_the_inverse_of_its_converter(example: ModuleType) -> None:
    config = example.PooledPixelsConfig()
    tower = clip_core.build_tower(config, 16)
    kind = registry.tower_kind("pooled-pixels")
    old = kind.exporters["example-v0"](tower.state_dict(), config)
    assert sorted(old) == ["linear.bias", "linear.weight"]
    assert kind.converters["example-v0"](old, config).keys() == tower.state_dict().keys()


def test_clip_plugins_json_lists_what_the_example_registered(
    example: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plugins", "--json"]) == 0
    listed = {info["name"]: info for info in json.loads(capsys.readouterr().out)}
    assert listed[EXAMPLE_NAME] == {
        "name": EXAMPLE_NAME,
        "distribution": None,
        "version": None,
        "api_version": "1.0",
        "towers": ["pooled-pixels", "mean-embedding"],
        "cards": ["example-tiny"],
        "tokenizers": ["utf8-bytes"],
        "pretrained": ["example-tiny:v1"],
        "losses": ["example-infonce"],
        "error": None,
    }


def test_clip_plugins_output_shown_in_the_docs_is_what_the_example_prints(
    example: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{EXAMPLE_NAME}  "))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")), len(lines))
    shown = "\n".join(lines[start:end]).replace(EXAMPLE_NAME, "example", 1)
    assert f"$ clip plugins\n{shown}\n```" in docs_text()


def test_usage_example_in_the_docs_runs(example_module: ModuleType) -> None:
    """The "Using the example" block runs as written (it registers the example plugin as `example`)."""
    usage = [block for block in python_blocks(docs_text()) if "import example_plugin" in block]
    assert len(usage) == 2  # registering at run time, and using the example
    namespace: dict[str, Any] = {}
    try:
        exec(compile(usage[-1], str(PLUGIN_DOCS), "exec"), namespace)
    finally:
        if "example" in {info.name for info in registry.plugins()}:
            clip_core.unregister_plugin("example")
    assert namespace["output"].logits_per_image.shape == (2, 3)
    assert isinstance(namespace["loss"], example_module.SymmetricInfoNCE)


def test_example_towers_pass_the_conformance_kit(example: ModuleType) -> None:
    """The example's towers have every property `clip_core.testing.TowerConformanceTests` checks."""
    testing = pytest.importorskip("clip_core.testing")
    for config in (example.PooledPixelsConfig(), example.MeanEmbeddingConfig(width=16)):
        kit = type("Kit", (testing.TowerConformanceTests,), {"config": config})()
        checks = [name for name in dir(kit) if name.startswith("test_")]
        assert checks
        for name in checks:
            getattr(kit, name)()
