"""The plugin registry: pluggy underneath, a typed facade on top.

Callers use the functions of this module (``tower_kind``, ``card_entry``, ``plugins`` ...), never ``pm.hook``. What
plugins register, and the ``register`` callbacks the hooks are called with, are in :mod:`clip_core.registrations`.
Plugins are discovered through the entry-point group ``clip_core`` on first use; ``register_plugin`` adds one at
run time (for notebooks). ``CLIP_DISABLED_PLUGINS`` (comma-separated entry-point names) blocks plugins.

An installed plugin that fails to import, declares an incompatible API, breaks inside a hook or registers a name
another plugin holds is left out with one :class:`PluginWarning` naming it and the fix; ``plugins()`` lists it with
the reason, and the rest of the SDK works. ``CLIP_STRICT_PLUGINS=1`` raises the :class:`PluginError` instead.
"""

from __future__ import annotations

import difflib
import os
import threading
import warnings
from collections.abc import Iterable, Mapping
from importlib import metadata

import pluggy

from clip_core import hookspecs
from clip_core.errors import CardError, PluginError, PretrainedError
from clip_core.hookspecs import PLUGIN_API_VERSION
from clip_core.hub.pretrained import PretrainedWeights
from clip_core.registrations import (
    DISABLE_ENV,
    REGISTRARS,
    CardEntry,
    LossEntry,
    Modality,
    PluginInfo,
    PretrainedEntry,
    Tables,
    TokenizerKind,
    TowerKind,
)
from clip_core.registrations import RegisterCard as RegisterCard  # the protocols docs/plugins.md names here
from clip_core.registrations import RegisterLoss as RegisterLoss
from clip_core.registrations import RegisterPretrained as RegisterPretrained
from clip_core.registrations import RegisterTokenizer as RegisterTokenizer
from clip_core.registrations import RegisterTower as RegisterTower

__all__ = [
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "KNOWN_PROVIDERS",
    "STRICT_ENV",
    "CardEntry",
    "LossEntry",
    "PluginInfo",
    "PluginWarning",
    "PretrainedEntry",
    "TokenizerKind",
    "TowerKind",
    "card_entry",
    "card_names",
    "loss",
    "losses",
    "plugins",
    "pretrained_tags",
    "pretrained_weights",
    "register_plugin",
    "reload",
    "tokenizer_kind",
    "tower_kind",
    "tower_kinds",
    "unregister_plugin",
]

ENTRY_POINT_GROUP = "clip_core"
#: Set to 1 to make a broken installed plugin an error instead of a warning (the test suites do).
STRICT_ENV = "CLIP_STRICT_PLUGINS"


class PluginWarning(UserWarning):
    """An installed plugin is broken and was left out (``clip plugins`` says why)."""


#: Which distribution provides the kinds and losses clip-sdk publishes, for "install X" hints.
KNOWN_PROVIDERS: Mapping[str, str] = {
    "vit": "clip-encoders-vit",
    "timm": "clip-encoders-vit",
    "modified-resnet": "clip-encoders-resnet",
    "text-transformer": "clip-encoders-text",
    "clip-bpe": "clip-encoders-text",
    "clip": "clip-losses",
    "siglip": "clip-losses",
    "ntxent": "clip-losses",
}


def _check_api_version(name: str, plugin: object, origin: str) -> str:
    declared = getattr(plugin, "CLIP_PLUGIN_API", None)
    fix = f'declare CLIP_PLUGIN_API = "{PLUGIN_API_VERSION}" in it'
    if declared is None:
        raise PluginError(f"plugin {name!r} ({origin}) does not declare the plugin API it was written for; {fix}")
    parts = str(declared).split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise PluginError(f"plugin {name!r} ({origin}) declares CLIP_PLUGIN_API = {declared!r}; {fix}")
    major, minor = map(int, parts)
    core_major, core_minor = map(int, PLUGIN_API_VERSION.split("."))
    if major != core_major or minor > core_minor:
        raise PluginError(
            f"plugin {name!r} ({origin}) was written for clip-core plugin API {declared}, but this clip-core "
            f"provides API {PLUGIN_API_VERSION}; install a version of the plugin made for it, or disable the plugin "
            f"with {DISABLE_ENV}={name}"
        )
    return str(declared)


class _Registry:
    """Owns the pluggy plugin manager and the tables built from the plugins' registrations."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._pm: pluggy.PluginManager | None = None
        self._tables: Tables | None = None
        self._meta: dict[str, tuple[str | None, str | None, str]] = {}
        self._broken: dict[str, PluginInfo] = {}
        self._installed: set[str] = set()

    # -- loading ---------------------------------------------------------------------------------------------
    def manager(self) -> pluggy.PluginManager:
        with self._lock:
            if self._pm is None:
                self._pm = self._load_entry_points()
            return self._pm

    def _load_entry_points(self) -> pluggy.PluginManager:
        pm = pluggy.PluginManager("clip_core")
        pm.add_hookspecs(hookspecs)
        for name in filter(None, (n.strip() for n in os.environ.get(DISABLE_ENV, "").split(","))):
            pm.set_blocked(name)
        seen: set[str] = set()
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in seen or pm.is_blocked(ep.name):
                continue
            seen.add(ep.name)
            dist = getattr(ep, "dist", None)
            dist_name, dist_version = (dist.metadata["Name"], dist.version) if dist is not None else (None, None)
            origin = f"entry point {ep.value!r}" + (f" of {dist_name} {dist_version}" if dist_name else "")
            self._meta[ep.name] = (dist_name, dist_version, "?")
            self._installed.add(ep.name)
            try:
                try:
                    plugin = ep.load()
                except Exception as exc:
                    raise PluginError(
                        f"plugin {ep.name!r} ({origin}) failed to import: {type(exc).__name__}: {exc}; fix or "
                        f"uninstall it, or disable it with {DISABLE_ENV}={ep.name}"
                    ) from exc
                api = _check_api_version(ep.name, plugin, origin)
                self._register(pm, plugin, ep.name, origin)
            except PluginError as exc:
                self._leave_out(ep.name, exc)
                continue
            self._meta[ep.name] = (dist_name, dist_version, api)
        return pm

    def _leave_out(self, name: str, error: PluginError) -> None:
        """Record an installed plugin as broken and warn once, or raise ``error`` under ``CLIP_STRICT_PLUGINS``."""
        if _strict():
            raise error
        dist_name, dist_version, api = self._meta.pop(name, (None, None, "?"))
        self._broken[name] = PluginInfo(name, dist_name, dist_version, api, error=str(error))
        fix = f"fix or uninstall it, or disable it with {DISABLE_ENV}={name}"
        message = f"{error}; plugin {name!r} is left out" + ("" if DISABLE_ENV in str(error) else f" ({fix})")
        warnings.warn(message, PluginWarning, stacklevel=2)

    @staticmethod
    def _register(pm: pluggy.PluginManager, plugin: object, name: str, origin: str) -> None:
        try:
            pm.register(plugin, name=name)
            pm.check_pending()
        except (pluggy.PluginValidationError, ValueError) as exc:  # ValueError: already registered under another name
            if pm.get_plugin(name) is not None:
                pm.unregister(name=name)
            lines = str(exc).splitlines()  # one line: pluggy's messages span several, ValueError's ends in a dump
            detail = lines[0] if isinstance(exc, ValueError) else "; ".join(lines)
            raise PluginError(f"plugin {name!r} ({origin}) is invalid: {detail}") from exc

    # -- run-time registration -------------------------------------------------------------------------------
    def register_plugin(self, plugin: object, name: str | None = None) -> str:
        with self._lock:
            pm = self.manager()
            name = name or str(getattr(plugin, "__name__", None) or type(plugin).__name__)
            origin = "registered at run time"
            api = _check_api_version(name, plugin, origin)
            if pm.is_blocked(name):
                raise PluginError(f"plugin name {name!r} is blocked by {DISABLE_ENV}; register it under another name")
            previous, previous_meta = pm.get_plugin(name), self._meta.get(name)
            if previous is not None:
                pm.unregister(name=name)
            try:
                self._register(pm, plugin, name, origin)
                self._meta[name] = (None, None, api)
                self._tables = self._collect_isolated(pm)
            except PluginError:
                if pm.get_plugin(name) is not None:
                    pm.unregister(name=name)
                self._meta.pop(name, None)
                if previous is not None and previous_meta is not None:
                    pm.register(previous, name=name)
                    self._meta[name] = previous_meta
                self._tables = None
                raise
            return name

    def unregister_plugin(self, name: str) -> None:
        with self._lock:
            pm = self.manager()
            if pm.get_plugin(name) is None:
                raise PluginError(f"no plugin named {name!r} is registered; registered: {sorted(self._meta)}")
            pm.unregister(name=name)
            self._meta.pop(name, None)
            self._tables = None

    def reload(self) -> None:
        with self._lock:
            self._pm = None
            self._tables = None
            self._meta = {}
            self._broken = {}
            self._installed = set()

    # -- the tables ------------------------------------------------------------------------------------------
    def tables(self) -> Tables:
        with self._lock:
            if self._tables is None:
                self._tables = self._collect_isolated(self.manager())
            return self._tables

    def _collect_isolated(self, pm: pluggy.PluginManager) -> Tables:
        """The tables; an installed plugin whose registrations fail is left out (see :meth:`_leave_out`) and the
        tables are collected again without it."""
        while True:
            try:
                return self._collect_tables(pm)
            except _RegistrationFailed as failure:
                if failure.plugin not in self._installed or pm.get_plugin(failure.plugin) is None:
                    raise failure.error from failure.error.__cause__
                pm.unregister(name=failure.plugin)
                self._leave_out(failure.plugin, failure.error)

    def _collect_tables(self, pm: pluggy.PluginManager) -> Tables:
        tables = Tables()
        for name, plugin in pm.list_name_plugin():
            if plugin is None:
                continue
            dist_name, dist_version, api = self._meta.get(name, (None, None, "?"))
            tables.plugins[name] = PluginInfo(name, dist_name, dist_version, api)
        for hook_name, make_register in REGISTRARS.items():
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                register = make_register(tables, impl.plugin_name)
                try:
                    impl.function(*[register for _ in impl.argnames])
                except PluginError as exc:
                    raise _RegistrationFailed(impl.plugin_name, exc) from exc
                except Exception as exc:
                    error = PluginError(
                        f"plugin {impl.plugin_name!r} failed in {hook_name}: {type(exc).__name__}: {exc}"
                    )
                    error.__cause__ = exc
                    raise _RegistrationFailed(impl.plugin_name, error) from exc
        for (card, tag), entry in tables.pretrained.items():
            if card not in tables.cards:
                error = PluginError(
                    f"plugin {entry.plugin!r} registered pretrained weights {tag!r} for card {card!r}, which no plugin "
                    "registers"
                )
                raise _RegistrationFailed(entry.plugin, error)
        tables.plugins.update(self._broken)
        return tables


class _RegistrationFailed(Exception):
    """A plugin's registrations failed: which plugin, and the error a user sees."""

    def __init__(self, plugin: str | None, error: PluginError) -> None:
        super().__init__(str(error))
        self.plugin, self.error = plugin, error


def _strict() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _unknown(what: str, name: str, known: Iterable[str]) -> str:
    known = sorted(known)
    message = f"unknown {what} {name!r}"
    close = difflib.get_close_matches(name, known, n=3)
    if close:
        message += f"; did you mean {', '.join(map(repr, close))}?"
    if what == "card" and name.startswith(("ViT", "RN")):
        package = "clip-encoders-vit" if name.startswith("ViT") else "clip-encoders-resnet"
        message += f"; OpenAI's and open_clip's cards come with {package} (pip install {package})"
    elif name in KNOWN_PROVIDERS:
        message += f"; it is provided by {KNOWN_PROVIDERS[name]} (pip install {KNOWN_PROVIDERS[name]})"
    else:
        message += f"; installed: {', '.join(known) if known else 'none'}"
    return message


_REGISTRY = _Registry()


# -- the facade --------------------------------------------------------------------------------------------------
def tower_kind(kind: str) -> TowerKind:
    """The registered tower kind ``kind``; :class:`CardError` naming the providing package if unknown."""
    towers = _REGISTRY.tables().towers
    if kind not in towers:
        raise CardError(_unknown("tower kind", kind, towers))
    return towers[kind]


def tower_kinds(modality: Modality | None = None) -> dict[str, TowerKind]:
    """All registered tower kinds, optionally only those of one modality."""
    return {k: v for k, v in _REGISTRY.tables().towers.items() if modality in (None, v.modality)}


def tokenizer_kind(kind: str) -> TokenizerKind:
    """The registered tokenizer kind ``kind``; :class:`CardError` if unknown."""
    tokenizers = _REGISTRY.tables().tokenizers
    if kind not in tokenizers:
        raise CardError(_unknown("tokenizer kind", kind, tokenizers))
    return tokenizers[kind]


def card_names() -> list[str]:
    """Names of all registered cards, sorted."""
    return sorted(_REGISTRY.tables().cards)


def card_entry(name: str) -> CardEntry:
    """The registered card called ``name`` (or with ``name`` as an alias); :class:`CardError` if unknown."""
    tables = _REGISTRY.tables()
    key = tables.aliases.get(name, name)
    if key not in tables.cards:
        raise CardError(_unknown("card", name, [*tables.cards, *tables.aliases]))
    return tables.cards[key]


def pretrained_tags(card: str) -> list[str]:
    """Pretrained tags registered for the card named ``card``."""
    return sorted(tag for name, tag in _REGISTRY.tables().pretrained if name == card)


def pretrained_weights(card: str, tag: str) -> PretrainedWeights:
    """The pretrained weights registered as ``card``/``tag``; :class:`PretrainedError` if none."""
    table = _REGISTRY.tables().pretrained
    if (card, tag) not in table:
        tags = pretrained_tags(card)
        raise PretrainedError(
            f"no pretrained weights {tag!r} for card {card!r}; "
            + (f"known tags: {', '.join(tags)}" if tags else "none are registered for this card")
            + "; pass a local checkpoint path instead"
        )
    return table[(card, tag)].weights


def loss(name: str) -> LossEntry:
    """The registered loss ``name``; :class:`PluginError` naming the providing package if unknown."""
    table = _REGISTRY.tables().losses
    if name not in table:
        raise PluginError(_unknown("loss", name, table))
    return table[name]


def losses() -> dict[str, LossEntry]:
    """All registered losses."""
    return dict(_REGISTRY.tables().losses)


def plugins() -> list[PluginInfo]:
    """Every registered plugin with its distribution, version, declared API and registrations, and every installed
    plugin left out as broken, with the reason in ``error``."""
    return list(_REGISTRY.tables().plugins.values())


def register_plugin(plugin: object, name: str | None = None) -> str:
    """Register a plugin (a module or object with ``@hookimpl`` functions) at run time; returns its name.

    A plugin already registered under the same name is replaced. The plugin must declare ``CLIP_PLUGIN_API``;
    its registrations are checked at once, and a plugin whose registrations conflict is not kept.
    """
    return _REGISTRY.register_plugin(plugin, name)


def unregister_plugin(name: str) -> None:
    """Remove the plugin registered as ``name`` and everything it registered."""
    _REGISTRY.unregister_plugin(name)


def reload() -> None:
    """Forget all plugins; they are discovered again (entry points, ``CLIP_DISABLED_PLUGINS``) on next use."""
    _REGISTRY.reload()
