"""Registries of sources, decoders, divergences, schedules and metrics, filled from entry points.

Plugins (built-ins included) are modules named in the ``usable`` entry-point group, loaded
lazily, once, on first use. ``USABLE_LOAD_PLUGINS`` (comma list of entry-point or distribution
names; empty = none) limits what loads, as llm's LLM_LOAD_PLUGINS does. A plugin that fails to
import, or two plugins that register one name, are reported (``usable plugins``) and never break
the rest: the clashing name alone is unusable until one of them is removed.
"""
from __future__ import annotations

import difflib
import fnmatch
import os
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any, Callable, Iterable

import pluggy

from . import hookspecs
from .errors import PluginError, SpecError, UnknownName
from .params import Param, params_of, resolve_params
from .spec import Spec, parse_spec

KINDS = ("sources", "decoders", "divergences", "schedules", "metrics")
SINGULAR = {"sources": "source", "decoders": "decoder", "divergences": "divergence",
            "schedules": "schedule", "metrics": "metric"}


@dataclass
class Entry:
    """A registered plugin object: its factory, declared parameters and the plugin that provided it."""

    kind: str
    name: str
    factory: Callable[..., Any]
    params: list[Param] = field(default_factory=list)
    help: str = ""
    plugin: str = "?"
    distribution: str = "?"
    version: str = "?"
    requires: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def resolve(self, given: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validated parameter values from spec text (``_`` = the positional first value)."""
        given = dict(given or {})
        if "_" in given:  # `timm:resnet18`: a positional first value, if the plugin declares one
            positional = self.extra.get("positional")
            if not positional:
                raise SpecError(f"{self.kind} {self.name!r} takes no positional value (got {given['_']!r}); "
                                f"write {self.name}:key=value.")
            given[positional] = given.pop("_")
        return resolve_params(f"{self.kind} {self.name!r}", self.params, given)

    def create(self, given: dict[str, Any] | None = None, **kwargs):
        check_requirements(self)
        values = self.resolve(given)
        values.update(kwargs)
        return self.factory(**values)


@dataclass
class LoadedPlugin:
    name: str
    module: str
    distribution: str
    version: str
    error: str | None = None
    obj: ModuleType | None = None
    requires: set[str] = field(default_factory=set)


class Registry:
    """One kind of plugin object, by name."""

    def __init__(self, kind: str):
        self.kind = kind
        self.entries: dict[str, Entry] = {}
        self.clashes: dict[str, list[Entry]] = {}

    def add(self, entry: Entry) -> None:
        if entry.name in self.clashes:
            self.clashes[entry.name].append(entry)
        elif entry.name in self.entries:
            self.clashes[entry.name] = [self.entries.pop(entry.name), entry]
        else:
            self.entries[entry.name] = entry

    def clash_message(self, name: str) -> str:
        who = " and by ".join(f"plugin {e.plugin!r} ({e.distribution})" for e in self.clashes[name])
        return (f"duplicate {SINGULAR[self.kind]} name {name!r}: registered by {who}. Uninstall one, or "
                "limit loading with USABLE_LOAD_PLUGINS.")

    def get(self, name: str) -> Entry:
        if name in self.clashes:
            raise PluginError(self.clash_message(name))
        try:
            return self.entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self.entries), n=4, cutoff=0.5)
            hint = f" Close matches: {', '.join(close)}." if close else ""
            raise UnknownName(f"unknown {SINGULAR[self.kind]} {name!r}.{hint} "
                              f"Run `usable list {self.kind}` to see what is installed.") from None

    def names(self, pattern: str | None = None) -> list[str]:
        return sorted(n for n in self.entries if not pattern or fnmatch.fnmatchcase(n, pattern))


class PluginManager:
    """Loads the ``usable`` entry-point group into one registry per kind."""

    def __init__(self):
        self.pm = pluggy.PluginManager("usable")
        self.pm.add_hookspecs(hookspecs)
        self.registries = {k: Registry(k) for k in KINDS}
        self.plugins: list[LoadedPlugin] = []
        self._loaded = False

    def load(self) -> "PluginManager":
        if self._loaded:
            return self
        self._loaded = True
        raw = os.environ.get("USABLE_LOAD_PLUGINS")
        wanted = None if raw is None else {t.strip() for t in raw.split(",") if t.strip()}
        seen = set()
        for ep in sorted(metadata.entry_points(group="usable"), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            dist_name, version = (dist.metadata["Name"], dist.version) if dist is not None else ("?", "?")
            if (ep.name, ep.value) in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add((ep.name, ep.value))
            if wanted is not None and ep.name not in wanted and dist_name not in wanted:
                continue
            info = LoadedPlugin(ep.name, ep.value, dist_name, version)
            self.plugins.append(info)
            try:
                info.obj = ep.load()
                self.pm.register(info.obj, name=ep.name)
            except (Exception, SystemExit) as exc:  # a broken plugin is reported, not fatal
                info.error = f"{type(exc).__name__}: {exc}"
                info.traceback = traceback.format_exc()
                continue
            self._collect(info)
        return self

    def _collect(self, info: LoadedPlugin) -> None:
        for kind in KINDS:
            for impl in getattr(self.pm.hook, f"register_{kind}").get_hookimpls():
                if impl.plugin is not info.obj:
                    continue
                try:
                    impl.function(register=self._register_fn(kind, info))
                except Exception as exc:
                    info.error = f"register_{kind} failed: {type(exc).__name__}: {exc}"

    def _register_fn(self, kind: str, info: LoadedPlugin) -> Callable[..., None]:
        def register(name: str, factory: Callable[..., Any], help: str | None = None, requires: Iterable[str] = (),
                     **extra: Any) -> None:
            if not isinstance(name, str) or not name or ":" in name or "," in name:
                raise PluginError(f"plugin {info.name!r} registered a {SINGULAR[kind]} with an invalid name {name!r}")
            doc = help if help is not None else " ".join((factory.__doc__ or "").strip().split("\n\n")[0].split())
            info.requires.update(requires)
            self.registries[kind].add(Entry(SINGULAR[kind], name, factory, params_of(factory), doc, info.name,
                                            info.distribution, info.version, tuple(requires), extra))
        return register

    def registry(self, kind: str) -> Registry:
        self.load()
        kind = {v: k for k, v in SINGULAR.items()}.get(kind, kind)
        if kind not in self.registries:
            raise UnknownName(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
        return self.registries[kind]

    def plugin(self, name: str) -> LoadedPlugin | None:
        self.load()
        return next((p for p in self.plugins if p.name == name and not p.error), None)

    def versions(self) -> dict[str, str]:
        self.load()
        return {p.name: f"{p.distribution} {p.version}" for p in self.plugins if not p.error}


_MANAGER: PluginManager | None = None


def get_manager() -> PluginManager:
    global _MANAGER
    if _MANAGER is None:
        _MANAGER = PluginManager()
    return _MANAGER.load()


def reset_manager() -> None:
    """Forget loaded plugins (tests that change USABLE_LOAD_PLUGINS or sys.path use this)."""
    global _MANAGER
    _MANAGER = None


def plugin(name: str) -> ModuleType:
    """The module of a loaded plugin: how a plugin uses another's API without importing it
    (declare ``requires=("name",)`` when registering, so listings show the dependency)."""
    found = get_manager().plugin(name)
    if found is None:
        raise PluginError(f"plugin {name!r} is not loaded (not installed, failed to load, or left out by "
                          f"USABLE_LOAD_PLUGINS={os.environ.get('USABLE_LOAD_PLUGINS', '')!r}); "
                          "`usable plugins` lists what is loaded.")
    return found.obj


def lazy_exports(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """A package's PEP 562 ``__getattr__`` that loads each public name from its submodule on first
    use, so importing a plugin stays cheap: ``__getattr__ = lazy_exports(__name__, {"Tracker": "tracker"})``."""
    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        import importlib
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
    return __getattr__


def check_requirements(entry: Entry) -> None:
    for name in entry.requires:
        if get_manager().plugin(name) is None:
            raise PluginError(f"{entry.kind} {entry.name!r} (plugin {entry.plugin}) requires plugin {name!r}, "
                              "which is not loaded; install it or add it to USABLE_LOAD_PLUGINS.")


def list_names(kind: str, pattern: str | None = None) -> list[str]:
    """Registered names of a kind, optionally matching a wildcard: ``list_names("decoders", "ml*")``."""
    return get_manager().registry(kind).names(pattern)


def get_entry(kind: str, name: str) -> Entry:
    return get_manager().registry(kind).get(name)


def create(kind: str, spec: str | Spec, **kwargs: Any) -> Any:
    """Create a plugin object from its spec text: ``create("decoders", "mlp:hidden=25+15")``."""
    spec = parse_spec(spec)
    return get_entry(kind, spec.name).create(spec.params, **kwargs)
