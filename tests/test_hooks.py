"""Each plugin hook, and the ways registering a plugin can fail.

Plugins here are small objects registered at run time with ``clip_core.register_plugin`` and removed again when
the test ends. They compose with the installed test plugin ``test_towers`` (tower kinds ``patch-mean`` and
``bag-of-words``, tokenizer ``bytes``, cards ``tiny``, ``tiny-wide`` and ``tiny-long``).
"""

from __future__ import annotations

import dataclasses
import json
import types
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import pytest
import torch
from pydantic import Field
from torch import nn

import clip_core
from clip_core import registry
from clip_core.registry import RegisterCard, RegisterLoss, RegisterPretrained, RegisterTokenizer, RegisterTower
from clip_test_towers.model import PatchMeanConfig
from clip_test_towers.tokenizer import ByteTokenizer

SHA256 = "0123456789abcdef" * 4
Register = Callable[[object, str], str]


# -- helpers ------------------------------------------------------------------------------------------------------
@pytest.fixture
def register() -> Iterator[Register]:
    """``register(plugin, name)`` registers at run time; every plugin still registered is removed at teardown."""
    names: list[str] = []

    def _register(plugin: object, name: str) -> str:
        names.append(name)
        return clip_core.register_plugin(plugin, name=name)

    yield _register
    registered = {info.name for info in registry.plugins()}
    for name in dict.fromkeys(names):
        if name in registered:
            clip_core.unregister_plugin(name)


def plugin(api: object = "1.0", **hooks: Callable[[Any], None]) -> types.SimpleNamespace:
    """A plugin object whose attributes are the given hook implementations, declaring plugin API ``api``."""
    namespace = types.SimpleNamespace(**{name: clip_core.hookimpl(hook) for name, hook in hooks.items()})
    if api is not None:
        namespace.CLIP_PLUGIN_API = api
    return namespace


def snapshot() -> dict[str, Any]:
    """Everything the registry shows: plugins with their registrations, and the tables looked up by name."""
    return {
        "plugins": [dataclasses.asdict(info) for info in registry.plugins()],
        "towers": {kind: spec.plugin for kind, spec in registry.tower_kinds().items()},
        "cards": registry.card_names(),
        "losses": sorted(registry.losses()),
    }


def card_data(name: str, **overrides: Any) -> dict[str, Any]:
    """A card composed from the test plugin's towers and tokenizer."""
    data: dict[str, Any] = {
        "name": name,
        "embed_dim": 12,
        "image": {"kind": "patch-mean", "image_size": 16, "patch_size": 4, "width": 8},
        "text": {"kind": "bag-of-words", "context_length": 10, "width": 8},
        "tokenizer": {"kind": "bytes"},
    }
    return data | overrides


# -- an image tower kind the test plugin does not have ------------------------------------------------------------
class RowMeanConfig(clip_core.TowerConfig):
    """Image tower: average each pixel row, project the rows."""

    kind: Literal["row-mean"] = "row-mean"
    image_size: int = Field(16, gt=0, description="Side of the square input, in pixels.")


class RowMean(nn.Module):
    def __init__(self, config: RowMeanConfig, embed_dim: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.proj = nn.Linear(3 * config.image_size, embed_dim)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.proj(pixels.mean(-1).flatten(1))
        return out


def rename_legacy(state: Mapping[str, torch.Tensor], config: RowMeanConfig) -> dict[str, torch.Tensor]:
    return {key.removeprefix("visual.").replace("linear.", "proj."): value for key, value in state.items()}


def export_legacy(tower: Mapping[str, torch.Tensor], config: RowMeanConfig) -> dict[str, torch.Tensor]:
    return {f"visual.{key.replace('proj.', 'linear.')}": value for key, value in tower.items()}


def register_row_mean(register: RegisterTower) -> None:
    register(
        kind="row-mean",
        modality="image",
        config=RowMeanConfig,
        build=RowMean,
        converters={"legacy": rename_legacy},
        exporters={"legacy": export_legacy},
    )


class RowMeanPlugin:
    """A plugin written as a class: its hook implementations are methods."""

    CLIP_PLUGIN_API = "1.0"

    @clip_core.hookimpl
    def clip_register_towers(self, register: RegisterTower) -> None:
        register_row_mean(register)


def towers_plugin(**arguments: Any) -> types.SimpleNamespace:
    """A plugin registering one tower kind; ``arguments`` override those of a valid ``row-mean`` registration."""
    values: dict[str, Any] = {"kind": "row-mean", "modality": "image", "config": RowMeanConfig, "build": RowMean}
    values |= arguments
    return plugin(clip_register_towers=lambda register: register(**values))


# -- clip_register_towers -----------------------------------------------------------------------------------------
def test_clip_register_towers_adds_a_kind_that_cards_compose(register: Register) -> None:
    """A card may name a tower kind only once a plugin registers it; then it validates and builds with the kind."""
    data = card_data("row-card", image={"kind": "row-mean", "image_size": 16})
    with pytest.raises(clip_core.CardError, match=r"image\.kind: unknown tower kind 'row-mean'"):
        clip_core.get_card(data)

    register(RowMeanPlugin(), "row_mean")
    card = clip_core.get_card(data)
    assert isinstance(card.image, RowMeanConfig)
    assert card.preprocess.image_size == 16
    spec = registry.tower_kind("row-mean")
    assert (spec.modality, spec.config, spec.plugin) == ("image", RowMeanConfig, "row_mean")
    assert "row-mean" in registry.tower_kinds("image") and "row-mean" not in registry.tower_kinds("text")

    model = clip_core.create_model(card)
    assert isinstance(model.visual, RowMean)
    output = model(torch.rand(2, 3, 16, 16), clip_core.get_tokenizer(card)(["a", "b", "c"]))
    assert output.logits_per_image.shape == (2, 3)


def test_clip_register_towers_keeps_the_converters_next_to_the_kind(register: Register) -> None:
    """A converter registered with a kind turns the foreign layout into a state dict the tower loads strictly."""
    register(RowMeanPlugin(), "row_mean")
    tower = RowMean(RowMeanConfig(), embed_dim=4)
    legacy = {key.replace("proj.", "linear."): torch.randn_like(value) for key, value in tower.state_dict().items()}
    converted = registry.tower_kind("row-mean").converters["legacy"](legacy, RowMeanConfig())
    tower.load_state_dict(converted, strict=True)
    assert torch.equal(tower.proj.weight, legacy["linear.weight"])


def test_clip_register_towers_keeps_the_exporters_beside_the_converters(register: Register) -> None:
    """An exporter registered with a kind writes the tower's weights in a foreign layout, whole-model keys; its
    layout's converter reads them back into the same tower, so a third-party tower exports as it loads."""
    register(RowMeanPlugin(), "row_mean")
    card = clip_core.get_card(card_data("rows", image={"kind": "row-mean"}))
    model = clip_core.create_model(card)
    kind = registry.tower_kind("row-mean")
    exported = kind.exporters["legacy"](
        {k[7:]: v for k, v in model.state_dict().items() if k.startswith("visual.")}, card.image
    )
    assert sorted(exported) == ["visual.linear.bias", "visual.linear.weight"]
    tower = RowMean(RowMeanConfig(), embed_dim=12)
    tower.load_state_dict(kind.converters["legacy"](exported, card.image), strict=True)
    assert torch.equal(tower.proj.weight, model.visual.proj.weight)


@pytest.mark.parametrize("kind", ["Row-Mean", "", "-row", "row mean", "row/mean", "rów", 7])
def test_clip_register_towers_rejects_bad_kind_names(register: Register, kind: object) -> None:
    with pytest.raises(clip_core.PluginError) as excinfo:
        register(towers_plugin(kind=kind), "bad_kind")
    assert f"plugin 'bad_kind' registering tower kind {kind!r}" in str(excinfo.value)
    assert "names are lower-case letters, digits, '.', '_' and '-'" in str(excinfo.value)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"kind": "col-mean"}, "RowMeanConfig.kind must default to 'col-mean' (a Literal['col-mean'])"),
        ({"modality": "audio"}, "modality must be 'image' or 'text', not 'audio'"),
        ({"config": dict}, "config must be a subclass of clip_core.TowerConfig"),
        ({"config": clip_core.TowerConfig}, "config must be a subclass of clip_core.TowerConfig"),
        ({"build": None}, "build must be callable (config, embed_dim) -> nn.Module"),
        ({"exporters": [export_legacy]}, "exporters must be a mapping {layout: function}, not list"),
        ({"exporters": {"openai": None}}, "exporters['openai'] must be callable (state_dict, config) -> dict"),
        ({"converters": {"": rename_legacy}}, "converters are keyed by layout name ('openai', 'hf', ...), got ''"),
    ],
    ids=[
        "kind-literal-differs",
        "modality",
        "not-a-tower-config",
        "the-base-class",
        "build",
        "exporters-list",
        "exporter-not-callable",
        "empty-layout",
    ],
)
def test_clip_register_towers_rejects_invalid_registrations(
    register: Register, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(clip_core.PluginError) as excinfo:
        register(towers_plugin(**arguments), "bad_tower")
    assert str(excinfo.value).startswith("plugin 'bad_tower' registering tower kind ")
    assert message in str(excinfo.value)


def test_clip_register_towers_refuses_a_kind_two_plugins_register(register: Register) -> None:
    """The plugin registered second is refused, with both plugins and the way out named."""
    register(RowMeanPlugin(), "first")
    with pytest.raises(clip_core.PluginError) as excinfo:
        register(RowMeanPlugin(), "second")
    assert str(excinfo.value) == (
        "tower kind 'row-mean' is registered by both 'first' and 'second'; disable one with CLIP_DISABLED_PLUGINS"
    )
    with pytest.raises(clip_core.PluginError, match="tower kind 'patch-mean' is registered by both 'test_towers'"):
        register(towers_plugin(kind="patch-mean", config=PatchMeanConfig), "copycat")
    assert registry.tower_kind("row-mean").plugin == "first"


# -- clip_register_cards ------------------------------------------------------------------------------------------
def test_clip_register_cards_accepts_file_dict_and_model_card(register: Register, tmp_path: Path) -> None:
    """Each form of card registers under its name and aliases, and comes back from get_card validated."""
    json_file = tmp_path / "from-json.json"
    json_file.write_text(json.dumps(card_data("from-json", aliases=["FromJson/1"])), encoding="utf-8")
    yaml_file = tmp_path / "from-yaml.yaml"
    yaml_file.write_text(
        "name: from-yaml\nembed_dim: 8\nimage: {kind: patch-mean, image_size: 8, patch_size: 4, width: 4}\n"
        "text: {kind: bag-of-words, context_length: 6, width: 4}\ntokenizer: {kind: bytes}\n",
        encoding="utf-8",
    )
    model_card = clip_core.get_card(card_data("from-model-card", aliases=["FromModelCard"]))

    class Cards:
        CLIP_PLUGIN_API = "1.0"

        @clip_core.hookimpl
        def clip_register_cards(self, register: RegisterCard) -> None:
            register(json_file)
            register(str(yaml_file))
            register(card_data("from-dict", embed_dim=20))
            register(model_card)

    assert "from-json" not in clip_core.list_cards()
    register(Cards(), "cards")
    names = ["from-dict", "from-json", "from-model-card", "from-yaml"]
    assert set(names) <= set(clip_core.list_cards())
    assert next(info for info in registry.plugins() if info.name == "cards").cards == [
        "from-json",
        "from-yaml",
        "from-dict",
        "from-model-card",
    ]
    assert clip_core.get_card("FromJson/1") == clip_core.get_card("from-json")
    assert clip_core.get_card("from-json").tokenizer.context_length == 10
    assert clip_core.get_card("from-yaml").preprocess.image_size == 8
    assert clip_core.get_card("from-dict").embed_dim == 20
    assert clip_core.get_card("FromModelCard") is model_card
    assert str(json_file) in registry.card_entry("from-json").origin
    assert {registry.card_entry(name).plugin for name in names} == {"cards"}


def test_clip_register_cards_validates_a_card_when_it_is_asked_for(register: Register) -> None:
    """A card is data until asked for (it may use other plugins' kinds); then its errors name the field path."""
    bad = card_data("bad-width", image={"kind": "patch-mean", "image_size": 16, "patch_size": 4, "width": -1})
    register(plugin(clip_register_cards=lambda register: register(bad)), "lazy")
    assert "bad-width" in clip_core.list_cards()
    with pytest.raises(clip_core.CardError, match=r"invalid card 'bad-width' \(plugin 'lazy'\): image\.width: "):
        clip_core.get_card("bad-width")


@pytest.mark.parametrize(
    ("card", "message"),
    [
        (
            card_data("tiny"),
            "card name or alias 'tiny' from plugin 'dup' is already taken by card 'tiny' (plugin 'test_towers')",
        ),
        (card_data("other", aliases=["Tiny/8"]), "card name or alias 'Tiny/8' from plugin 'dup' is already taken"),
        ({"embed_dim": 8}, "card from plugin 'dup' needs a string `name` and a list of `aliases`"),
        (42, "plugin 'dup' registered a card of type int"),
        ("no-such-dir/card.json", "no-such-dir/card.json: no such card file"),
        ("card.txt", "a card file must end in one of .json, .yaml, .yml, .toml"),
    ],
    ids=["name-taken", "alias-taken", "no-name", "wrong-type", "missing-file", "unknown-suffix"],
)
def test_clip_register_cards_rejects_clashing_and_unreadable_cards(
    register: Register, card: object, message: str
) -> None:
    with pytest.raises(clip_core.PluginError) as excinfo:
        register(plugin(clip_register_cards=lambda register: register(card)), "dup")
    assert message in str(excinfo.value)


# -- clip_register_tokenizers -------------------------------------------------------------------------------------
class ShoutTokenizer(ByteTokenizer):
    """The test plugin's byte tokenizer, upper-casing first."""

    def encode(self, text: str) -> list[int]:
        return super().encode(text.upper())


class FixedLengthTokenizer(ByteTokenizer):
    """A broken tokenizer: ignores the context length its config asks for."""

    def __init__(self, config: clip_core.TokenizerConfig) -> None:
        super().__init__(config)
        self.context_length = 5


def tokenizers_plugin(kind: str, build: Callable[[clip_core.TokenizerConfig], Any], **more: Any) -> object:
    class Tokenizers:
        CLIP_PLUGIN_API = "1.0"

        @clip_core.hookimpl
        def clip_register_tokenizers(self, register: RegisterTokenizer) -> None:
            register(kind=kind, build=build, **more)

    return Tokenizers()


def test_clip_register_tokenizers_adds_a_kind_that_cards_select(register: Register) -> None:
    """A card's tokenizer.kind selects the registered kind, built with the card's context length."""
    card = clip_core.get_card(card_data("shouting", tokenizer={"kind": "shout"}))
    with pytest.raises(clip_core.CardError, match="unknown tokenizer kind 'shout'"):
        clip_core.get_tokenizer(card)

    register(tokenizers_plugin("shout", ShoutTokenizer), "shout")
    tokenizer = clip_core.get_tokenizer(card)
    assert isinstance(tokenizer, ShoutTokenizer) and isinstance(tokenizer, clip_core.Tokenizer)
    assert tokenizer.context_length == card.tokenizer.context_length == 10
    ids = tokenizer(["hi", "HI"])
    assert ids.shape == (2, 10) and ids.dtype == torch.long
    assert torch.equal(ids[0], ids[1])
    assert registry.tokenizer_kind("shout").plugin == "shout"


def test_clip_register_tokenizers_keeps_the_exporters_of_the_kind(register: Register, tmp_path: Path) -> None:
    """A tokenizer kind's exporter for a layout writes that layout's files and returns its text settings."""

    def shout_files(config: clip_core.TokenizerConfig, directory: Path) -> dict[str, Any]:
        (directory / "shout.txt").write_text(f"upper case, {config.context_length} ids")
        return {"shouting": True}

    register(tokenizers_plugin("shout", ShoutTokenizer, exporters={"openai": shout_files}), "shout")
    from clip_core.export.layouts import export_tokenizer

    card = clip_core.get_card(card_data("shouting", tokenizer={"kind": "shout"}))
    assert export_tokenizer(card, "openai", tmp_path) == {"shouting": True}
    assert (tmp_path / "shout.txt").read_text() == "upper case, 10 ids"
    with pytest.raises(clip_core.ExportError, match=r"tokenizer kind 'shout' \(plugin 'shout'\) has no exporter"):
        export_tokenizer(card, "hf", tmp_path)


def test_clip_register_tokenizers_checks_the_context_length_of_what_it_builds(register: Register) -> None:
    register(tokenizers_plugin("fixed", FixedLengthTokenizer), "fixed")
    with pytest.raises(clip_core.PluginError) as excinfo:
        clip_core.get_tokenizer(card_data("fixed", tokenizer={"kind": "fixed"}))
    assert str(excinfo.value) == (
        "tokenizer kind 'fixed' (plugin 'fixed') built a tokenizer with context_length 5, not 10"
    )


@pytest.mark.parametrize(
    ("kind", "build", "message"),
    [
        ("bytes", ByteTokenizer, "tokenizer kind 'bytes' is registered by both 'test_towers' and 'tok'"),
        ("Shout", ShoutTokenizer, "plugin 'tok' registering tokenizer kind 'Shout': names are lower-case letters"),
        ("shout", "ShoutTokenizer", "plugin 'tok' registering tokenizer kind 'shout': build must be callable"),
        ("shout", ShoutTokenizer, "plugin 'tok' registering tokenizer kind 'shout': exporters['hf'] must be callable"),
    ],
    ids=["duplicate", "bad-name", "not-callable", "exporter-not-callable"],
)
def test_clip_register_tokenizers_rejects_invalid_registrations(
    register: Register, kind: str, build: Any, message: str
) -> None:
    more = {"exporters": {"hf": "files"}} if "exporters" in message else {}
    with pytest.raises(clip_core.PluginError) as excinfo:
        register(tokenizers_plugin(kind, build, **more), "tok")
    assert message in str(excinfo.value)


# -- clip_register_pretrained -------------------------------------------------------------------------------------
def pretrained_plugin(*entries: dict[str, Any]) -> object:
    class Pretrained:
        CLIP_PLUGIN_API = "1.0"

        @clip_core.hookimpl
        def clip_register_pretrained(self, register: RegisterPretrained) -> None:
            for entry in entries:
                register(**entry)

    return Pretrained()


def test_clip_register_pretrained_adds_entries_looked_up_by_card_and_tag(register: Register) -> None:
    web = {
        "card": "tiny",
        "tag": "web-v1",
        "url": "https://example.com/tiny.safetensors",
        "sha256": SHA256,
        "license": "MIT",
        "dataset": "toys",
    }
    hub = {"card": "tiny", "tag": "hub-v1", "hf_hub_id": "someone/tiny", "filename": "model.safetensors"}
    register(pretrained_plugin(web, hub), "weights")

    assert registry.pretrained_tags("tiny") == ["hub-v1", "web-v1"]
    assert registry.pretrained_weights("tiny", "web-v1") == clip_core.PretrainedWeights(**web)
    assert registry.pretrained_weights("tiny", "hub-v1").hf_hub_id == "someone/tiny"
    assert next(info for info in registry.plugins() if info.name == "weights").pretrained == [
        "tiny:web-v1",
        "tiny:hub-v1",
    ]
    with pytest.raises(
        clip_core.PretrainedError, match="no pretrained weights 'v2' for card 'tiny'; known tags: hub-v1, web-v1"
    ):
        registry.pretrained_weights("tiny", "v2")


def test_clip_register_pretrained_rejects_unknown_card(register: Register) -> None:
    """Weights must fit a card some plugin registers (checked once every plugin has registered)."""
    entry = {"card": "no-such-card", "tag": "v1", "url": "https://example.com/x.safetensors"}
    with pytest.raises(clip_core.PluginError) as excinfo:
        register(pretrained_plugin(entry), "orphan")
    assert str(excinfo.value) == (
        "plugin 'orphan' registered pretrained weights 'v1' for card 'no-such-card', which no plugin registers"
    )


def test_clip_register_pretrained_accepts_weights_for_a_card_of_the_same_plugin(register: Register) -> None:
    both = plugin(
        clip_register_cards=lambda register: register(card_data("own-card")),
        clip_register_pretrained=lambda register: register(card="own-card", tag="v1", url="https://example.com/w"),
    )
    register(both, "own")
    assert registry.pretrained_tags("own-card") == ["v1"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "https://example.com/w", "hf_hub_id": "a/b"}, "give exactly one of `url` or `hf_hub_id`"),
        ({}, "give exactly one of `url` or `hf_hub_id`"),
        ({"url": "https://example.com/w", "sha256": "abc123"}, "sha256: String should match pattern"),
        ({"url": "https://example.com/w", "sha256": SHA256.upper()}, "sha256: String should match pattern"),
        ({"url": "https://example.com/w", "tag": "V 1"}, "tag: String should match pattern"),
        ({"url": "https://example.com/w", "md5": "abc"}, "md5: Extra inputs are not permitted"),
    ],
    ids=["two-sources", "no-source", "short-sha256", "upper-case-sha256", "bad-tag", "unknown-field"],
)
def test_clip_register_pretrained_validates_fields(register: Register, fields: dict[str, Any], message: str) -> None:
    """An entry is validated as a PretrainedWeights; the error names the plugin, the entry and the field."""
    entry = {"card": "tiny", "tag": "v1"} | fields
    with pytest.raises(clip_core.PluginError) as excinfo:
        register(pretrained_plugin(entry), "invalid")
    prefix = f"plugin 'invalid' registered invalid pretrained weights tiny:{entry['tag']}: "
    assert str(excinfo.value).startswith(prefix)
    assert message in str(excinfo.value)


def test_clip_register_pretrained_refuses_a_card_and_tag_registered_twice(register: Register) -> None:
    entry = {"card": "tiny", "tag": "v1", "url": "https://example.com/w"}
    register(pretrained_plugin(entry), "first")
    with pytest.raises(clip_core.PluginError) as excinfo:
        register(pretrained_plugin(entry | {"url": "https://example.org/w"}), "second")
    assert str(excinfo.value) == (
        "pretrained weights tiny:v1 are registered by both 'first' and 'second'; disable one with CLIP_DISABLED_PLUGINS"
    )
    assert registry.pretrained_weights("tiny", "v1").url == "https://example.com/w"


# -- clip_register_losses -----------------------------------------------------------------------------------------
class MeanDistanceLoss(nn.Module):
    """Mean squared distance between paired image and text embeddings, times ``scale``."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, output: clip_core.ClipOutput) -> torch.Tensor:
        return self.scale * (output.image_embeds - output.text_embeds).pow(2).sum(-1).mean()


def losses_plugin(name: str, loss: Any) -> object:
    class Losses:
        CLIP_PLUGIN_API = "1.0"

        @clip_core.hookimpl
        def clip_register_losses(self, register: RegisterLoss) -> None:
            register(name=name, loss=loss)

    return Losses()


def test_clip_register_losses_adds_a_named_module_factory(register: Register) -> None:
    """``registry.loss(name).loss(**options)`` builds the registered module with the options given."""
    with pytest.raises(clip_core.PluginError, match="unknown loss 'mean-distance'"):
        registry.loss("mean-distance")
    register(losses_plugin("mean-distance", MeanDistanceLoss), "distance")

    entry = registry.loss("mean-distance")
    assert entry.plugin == "distance" and registry.losses()["mean-distance"] is entry
    loss = entry.loss(scale=2.0)
    assert isinstance(loss, MeanDistanceLoss) and loss.scale == 2.0
    model = clip_core.create_model("tiny")
    ids = clip_core.get_tokenizer("tiny")(["a", "b"])
    value = loss(model(torch.rand(2, 3, 32, 32), ids))
    assert value.shape == () and torch.isfinite(value)


def test_clip_register_losses_unknown_name_points_to_the_package_providing_it(
    disable: Callable[[str], None],
) -> None:
    disable("losses")
    with pytest.raises(clip_core.PluginError, match=r"unknown loss 'siglip'; it is provided by clip-losses"):
        registry.loss("siglip")


@pytest.mark.parametrize(
    ("name", "loss", "message"),
    [
        ("Mean Distance", MeanDistanceLoss, "registering loss 'Mean Distance': names are lower-case letters"),
        ("mean-distance", 3.0, "registering loss 'mean-distance': loss must be callable (**options) -> nn.Module"),
    ],
    ids=["bad-name", "not-callable"],
)
def test_clip_register_losses_rejects_invalid_registrations(
    register: Register, name: str, loss: Any, message: str
) -> None:
    with pytest.raises(clip_core.PluginError) as excinfo:
        register(losses_plugin(name, loss), "bad_loss")
    assert message in str(excinfo.value)


def test_clip_register_losses_refuses_a_name_two_plugins_register(register: Register) -> None:
    register(losses_plugin("mean-distance", MeanDistanceLoss), "first")
    with pytest.raises(clip_core.PluginError, match="loss 'mean-distance' is registered by both 'first' and 'second'"):
        register(losses_plugin("mean-distance", nn.MSELoss), "second")
    assert registry.loss("mean-distance").loss is MeanDistanceLoss


# -- registering plugins: the API version ------------------------------------------------------------------------
def test_register_plugin_refuses_a_plugin_without_clip_plugin_api(register: Register) -> None:
    with pytest.raises(clip_core.PluginError) as excinfo:
        register(plugin(api=None), "undeclared")
    assert str(excinfo.value) == (
        "plugin 'undeclared' (registered at run time) does not declare the plugin API it was written for; "
        'declare CLIP_PLUGIN_API = "1.0" in it'
    )


@pytest.mark.parametrize("api", ["2.0", "1.9", "0.9"])
def test_register_plugin_refuses_an_incompatible_plugin_api(register: Register, api: str) -> None:
    """Another major version, or a newer minor one, is refused, naming both versions and the way out."""
    assert clip_core.PLUGIN_API_VERSION == "1.0"
    with pytest.raises(clip_core.PluginError) as excinfo:
        register(plugin(api=api), "old_or_new")
    assert str(excinfo.value) == (
        f"plugin 'old_or_new' (registered at run time) was written for clip-core plugin API {api}, but this "
        "clip-core provides API 1.0; install a version of the plugin made for it, or disable the plugin with "
        "CLIP_DISABLED_PLUGINS=old_or_new"
    )


@pytest.mark.parametrize("api", ["1", "1.0.0", "one", "v1.0", 1])
def test_register_plugin_refuses_a_malformed_plugin_api(register: Register, api: object) -> None:
    with pytest.raises(clip_core.PluginError, match=rf"declares CLIP_PLUGIN_API = {api!r}; declare CLIP_PLUGIN_API"):
        register(plugin(api=api), "malformed")


@pytest.mark.parametrize("api", ["1.0", "1.00"])
def test_register_plugin_accepts_the_current_plugin_api(register: Register, api: str) -> None:
    assert register(plugin(api=api), "current") == "current"
    assert next(info for info in registry.plugins() if info.name == "current").api_version == api


# -- registering plugins: what pluggy checks, and hooks that fail ------------------------------------------------
def test_register_plugin_refuses_a_misspelled_hook(register: Register) -> None:
    """check_pending() after registering: a hookimpl matching no hookspec fails loudly instead of being ignored."""
    with pytest.raises(clip_core.PluginError) as excinfo:
        register(plugin(clip_register_tower=lambda register: None), "typo")
    assert str(excinfo.value).startswith(
        "plugin 'typo' (registered at run time) is invalid: unknown hook 'clip_register_tower' in plugin "
    )


def test_register_plugin_refuses_a_hook_with_a_wrong_argument_name(register: Register) -> None:
    with pytest.raises(clip_core.PluginError) as excinfo:
        register(plugin(clip_register_towers=lambda reg: None), "wrong_argument")
    message = str(excinfo.value)
    assert message.startswith("plugin 'wrong_argument' (registered at run time) is invalid: ")
    assert "Argument(s) {'reg'} are declared in the hookimpl but can not be found in the hookspec" in message
    assert "\n" not in message


def explode(register: Any) -> None:
    raise RuntimeError("kaboom")


def register_good_then_bad_loss(register: RegisterLoss) -> None:
    register(name="ok", loss=nn.MSELoss)
    register(name="Bad", loss=nn.L1Loss)


def test_register_plugin_names_the_plugin_whose_hook_raises(register: Register) -> None:
    with pytest.raises(clip_core.PluginError) as excinfo:
        register(plugin(clip_register_cards=explode), "boom")
    assert str(excinfo.value) == "plugin 'boom' failed in clip_register_cards: RuntimeError: kaboom"
    assert isinstance(excinfo.value.__cause__, RuntimeError)


def test_register_plugin_refuses_an_object_registered_under_another_name(register: Register) -> None:
    same = plugin()
    register(same, "one_name")
    with pytest.raises(clip_core.PluginError) as excinfo:
        register(same, "another_name")
    message = str(excinfo.value)
    assert message.startswith("plugin 'another_name' (registered at run time) is invalid: Plugin already registered")
    assert "\n" not in message


def test_register_plugin_under_a_taken_name_replaces_the_earlier_plugin(register: Register) -> None:
    register(losses_plugin("mean-distance", MeanDistanceLoss), "swap")
    register(losses_plugin("mse", nn.MSELoss), "swap")
    assert "mse" in registry.losses() and "mean-distance" not in registry.losses()
    assert [info.name for info in registry.plugins()].count("swap") == 1


def test_unregister_plugin_removes_everything_it_registered(register: Register) -> None:
    before = snapshot()
    register(RowMeanPlugin(), "row_mean")
    assert snapshot() != before
    clip_core.unregister_plugin("row_mean")
    assert snapshot() == before
    with pytest.raises(clip_core.CardError, match="unknown tower kind 'row-mean'"):
        registry.tower_kind("row-mean")
    with pytest.raises(clip_core.PluginError, match="no plugin named 'row_mean' is registered; registered: "):
        clip_core.unregister_plugin("row_mean")


FAILING_PLUGINS: dict[str, Callable[[], object]] = {
    "no-api": lambda: plugin(api=None, clip_register_towers=register_row_mean),
    "api-2.0": lambda: plugin(api="2.0", clip_register_towers=register_row_mean),
    "misspelled-hook": lambda: plugin(clip_register_tower=register_row_mean),
    "hook-raises": lambda: plugin(clip_register_towers=register_row_mean, clip_register_cards=explode),
    "duplicate-kind": lambda: towers_plugin(kind="patch-mean", config=PatchMeanConfig),
    "bad-name-after-a-good-one": lambda: plugin(clip_register_losses=register_good_then_bad_loss),
    "orphan-weights": lambda: pretrained_plugin({"card": "nope", "tag": "v1", "url": "https://example.com/w"}),
}


@pytest.mark.parametrize("replacing", [False, True], ids=["new-name", "replacing-a-plugin"])
@pytest.mark.parametrize("make_plugin", FAILING_PLUGINS.values(), ids=FAILING_PLUGINS.keys())
def test_a_failed_runtime_registration_leaves_the_registry_as_it_was(
    register: Register, make_plugin: Callable[[], object], replacing: bool
) -> None:
    """Whatever makes a registration fail, the registry shows exactly what it showed before, also once its tables
    are built again, and a plugin the failed one would have replaced is still registered."""
    if replacing:
        register(losses_plugin("mean-distance", MeanDistanceLoss), "target")
    before = snapshot()
    with pytest.raises(clip_core.PluginError):
        register(make_plugin(), "target")
    assert snapshot() == before
    register(plugin(), "rebuild")  # registering and removing a plugin builds the tables anew
    clip_core.unregister_plugin("rebuild")
    assert snapshot() == before
    if replacing:
        assert registry.loss("mean-distance").plugin == "target"


# -- CLIP_DISABLED_PLUGINS ----------------------------------------------------------------------------------------
@pytest.fixture
def disable(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """``disable("a,b")`` sets CLIP_DISABLED_PLUGINS and reloads; afterwards plugins are discovered anew."""

    def _disable(value: str) -> None:
        monkeypatch.setenv("CLIP_DISABLED_PLUGINS", value)
        registry.reload()

    yield _disable
    monkeypatch.undo()
    registry.reload()


@pytest.mark.parametrize("value", ["test_towers", " other , test_towers ", "test_towers,"])
def test_clip_disabled_plugins_blocks_an_installed_plugin(disable: Callable[[str], None], value: str) -> None:
    assert "test_towers" in {info.name for info in registry.plugins()}
    disable(value)
    assert "test_towers" not in {info.name for info in registry.plugins()}
    assert "tiny" not in clip_core.list_cards()
    with pytest.raises(clip_core.CardError, match="unknown tower kind 'patch-mean'"):
        registry.tower_kind("patch-mean")
    with pytest.raises(clip_core.CardError, match="unknown card 'tiny'"):
        clip_core.get_card("tiny")


def test_clip_disabled_plugins_leaves_other_plugins_loaded(disable: Callable[[str], None]) -> None:
    disable("some_other_plugin")
    assert "test_towers" in {info.name for info in registry.plugins()}
    assert clip_core.get_card("tiny").name == "tiny"


def test_clip_disabled_plugins_refuses_a_runtime_plugin_of_a_blocked_name(disable: Callable[[str], None]) -> None:
    disable("row_mean")
    with pytest.raises(clip_core.PluginError, match="plugin name 'row_mean' is blocked by CLIP_DISABLED_PLUGINS"):
        clip_core.register_plugin(RowMeanPlugin(), name="row_mean")
    assert "row-mean" not in registry.tower_kinds()


def test_reload_forgets_runtime_plugins_and_rediscovers_installed_ones(register: Register) -> None:
    register(RowMeanPlugin(), "row_mean")
    registry.reload()
    names = {info.name for info in registry.plugins()}
    assert "row_mean" not in names and "test_towers" in names
    assert "row-mean" not in registry.tower_kinds()


def test_plugins_report_where_each_plugin_comes_from(register: Register) -> None:
    register(RowMeanPlugin(), "row_mean")
    infos = {info.name: info for info in registry.plugins()}
    installed, runtime = infos["test_towers"], infos["row_mean"]
    assert (installed.distribution, installed.version, installed.api_version) == ("clip-test-towers", "0.1.0", "1.0")
    assert (runtime.distribution, runtime.version, runtime.api_version) == (None, None, "1.0")
    assert runtime.towers == ["row-mean"]
