"""Registries of sources, decoders, divergences, schedules and metrics, filled from entry points.

Plugins (built-ins included) are modules named in the ``usable`` entry-point group. They are
loaded lazily, once, on first use. ``USABLE_LOAD_PLUGINS`` (comma list of entry-point names or
distribution names; empty = none) limits what loads, as llm's LLM_LOAD_PLUGINS does.
"""
from __future__ import annotations

import difflib
import fnmatch
import os
import traceback
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Iterable

import pluggy

from . import hookspecs
from .params import Entry, Param
from .spec import Spec, parse_spec

KINDS = ("sources", "decoders", "divergences", "schedules", "metrics")
SINGULAR = {"sources": "source", "decoders": "decoder", "divergences": "divergence",
            "schedules": "schedule", "metrics": "metric"}


class PluginError(RuntimeError):
    """Two plugins registered the same name, or a plugin broke the registration contract."""


class UnknownName(KeyError):
    """A name that no loaded plugin registered. The message lists close matches."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return str(self.args[0]) if self.args else ""


@dataclass
class LoadedPlugin:
    name: str
    module: str
    distribution: str
    version: str
    error: str | None = None


class Registry:
    """One kind of plugin object, by name."""

    def __init__(self, kind: str):
        self.kind = kind
        self.entries: dict[str, Entry] = {}

    def add(self, entry: Entry) -> None:
        if entry.name in self.entries:
            other = self.entries[entry.name]
            raise PluginError(
                f"duplicate {SINGULAR[self.kind]} name {entry.name!r}: registered by plugin "
                f"{other.plugin!r} ({other.distribution}) and by plugin {entry.plugin!r} "
                f"({entry.distribution}). Uninstall one, or limit loading with USABLE_LOAD_PLUGINS."
            )
        self.entries[entry.name] = entry

    def get(self, name: str) -> Entry:
        try:
            return self.entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self.entries), n=4, cutoff=0.5)
            hint = f" Close matches: {', '.join(close)}." if close else ""
            raise UnknownName(
                f"unknown {SINGULAR[self.kind]} {name!r}.{hint} "
                f"Run `usable list {self.kind}` to see what is installed."
            ) from None

    def names(self, pattern: str | None = None) -> list[str]:
        names = sorted(self.entries)
        if pattern:
            names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        return names


class PluginManager:
    """Loads the ``usable`` entry-point group into one registry per kind."""

    def __init__(self):
        self.pm = pluggy.PluginManager("usable")
        self.pm.add_hookspecs(hookspecs)
        self.registries = {k: Registry(k) for k in KINDS}
        self.plugins: list[LoadedPlugin] = []
        self._loaded = False

    # -- loading -----------------------------------------------------------------------------
    def _wanted(self) -> set[str] | None:
        raw = os.environ.get("USABLE_LOAD_PLUGINS")
        if raw is None:
            return None
        return {t.strip() for t in raw.split(",") if t.strip()}

    def load(self) -> "PluginManager":
        if self._loaded:
            return self
        self._loaded = True
        wanted = self._wanted()
        seen_eps = set()
        for ep in sorted(metadata.entry_points(group="usable"), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else "?"
            version = dist.version if dist is not None else "?"
            if (ep.name, ep.value) in seen_eps:  # the same dist visible twice on sys.path
                continue
            seen_eps.add((ep.name, ep.value))
            if wanted is not None and ep.name not in wanted and dist_name not in wanted:
                continue
            info = LoadedPlugin(ep.name, ep.value, dist_name, version)
            self.plugins.append(info)
            try:
                module = ep.load()
                self.pm.register(module, name=ep.name)
            except Exception as exc:  # a broken plugin is reported, not fatal
                info.error = f"{type(exc).__name__}: {exc}"
                info.traceback = traceback.format_exc()
                continue
            self._collect(module, info)
        return self

    def register_module(self, module: Any, name: str, distribution: str = "(in-process)",
                        version: str = "?") -> None:
        """Register a plugin object directly (tests, notebooks). Entry points are the normal way."""
        self.load()
        info = LoadedPlugin(name, getattr(module, "__name__", repr(module)), distribution, version)
        self.plugins.append(info)
        self.pm.register(module, name=name)
        self._collect(module, info)

    def _collect(self, module: Any, info: LoadedPlugin) -> None:
        for kind in KINDS:
            hook = getattr(self.pm.hook, f"register_{kind}")
            impls = [i for i in hook.get_hookimpls() if i.plugin is module]
            for impl in impls:
                try:
                    impl.function(register=self._register_fn(kind, info))
                except PluginError:
                    raise
                except Exception as exc:
                    info.error = f"register_{kind} failed: {type(exc).__name__}: {exc}"

    def _register_fn(self, kind: str, info: LoadedPlugin) -> Callable[..., None]:
        def register(name: str, factory: Callable[..., Any], params: Iterable[Param] = (),
                     help: str | None = None, **extra: Any) -> None:
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin {info.name!r} registered a {SINGULAR[kind]} with no name")
            doc = help if help is not None else (factory.__doc__ or "").strip().split("\n")[0]
            self.registries[kind].add(Entry(kind=SINGULAR[kind], name=name, factory=factory,
                                            params=list(params), help=doc, plugin=info.name,
                                            distribution=info.distribution, version=info.version,
                                            extra=extra))
        return register

    # -- queries -----------------------------------------------------------------------------
    def registry(self, kind: str) -> Registry:
        self.load()
        if kind not in self.registries:
            singular = {v: k for k, v in SINGULAR.items()}
            kind = singular.get(kind, kind)
        if kind not in self.registries:
            raise UnknownName(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
        return self.registries[kind]

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


def list_names(kind: str, pattern: str | None = None) -> list[str]:
    return get_manager().registry(kind).names(pattern)


def get_entry(kind: str, name: str) -> Entry:
    return get_manager().registry(kind).get(name)


def create(kind: str, spec: str | Spec, **kwargs: Any) -> Any:
    """Create a plugin object from its spec text, e.g. ``create("decoders", "mlp:hidden=25-15")``."""
    spec = parse_spec(spec)
    return get_entry(kind, spec.name).create(spec.params, **kwargs)


def list_sources(pattern=None): return list_names("sources", pattern)
def list_decoders(pattern=None): return list_names("decoders", pattern)
def list_divergences(pattern=None): return list_names("divergences", pattern)
def list_schedules(pattern=None): return list_names("schedules", pattern)
def list_metrics(pattern=None): return list_names("metrics", pattern)
def create_source(spec, **kw): return create("sources", spec, **kw)
def create_decoder(spec, **kw): return create("decoders", spec, **kw)
def create_divergence(spec, **kw): return create("divergences", spec, **kw)
def create_schedule(spec, **kw): return create("schedules", spec, **kw)
