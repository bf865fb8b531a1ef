"""Declared plugin parameters and their validation (one place for every kind of plugin)."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence


class SpecError(ValueError):
    """A plugin spec names an unknown parameter or gives it a value it cannot take."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _to_bool(text: str) -> bool:
    low = str(text).strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"expected one of true/false/yes/no/1/0, got {text!r}")


def int_list(text: str) -> list[int]:
    """'25-15-10' or '25,15' -> [25, 15, 10]; '' or 'none' -> []."""
    text = str(text).strip()
    if text.lower() in ("", "none", "-"):
        return []
    return [int(t) for t in text.replace(",", "-").split("-") if t]


_PARSERS: dict[Any, Callable[[str], Any]] = {int: int, float: float, str: str, bool: _to_bool}


@dataclass(frozen=True)
class Param:
    """One declared parameter of a plugin: ``Param("hidden", "25-15-10", type=int_list, help=...)``.

    ``type`` is int, float, str, bool or any callable parsing the text form; ``choices`` restricts
    the parsed value. The default is given in its text form or as a value.
    """

    name: str
    default: Any = None
    type: Any = str
    help: str = ""
    choices: Sequence[Any] | None = None
    required: bool = False

    def parse(self, text: Any, owner: str) -> Any:
        if not isinstance(text, str):
            value = text
        else:
            parser = _PARSERS.get(self.type, self.type)
            try:
                value = parser(text)
            except (TypeError, ValueError) as exc:
                tname = getattr(self.type, "__name__", str(self.type))
                raise SpecError(
                    f"{owner}: parameter {self.name!r} got {text!r}, which is not a valid {tname} ({exc}). "
                    f"{self.describe()}"
                ) from None
        if self.choices is not None and value not in self.choices:
            raise SpecError(
                f"{owner}: parameter {self.name!r} got {text!r}; allowed values: "
                f"{', '.join(map(str, self.choices))}."
            )
        return value

    def describe(self) -> str:
        tname = getattr(self.type, "__name__", str(self.type))
        bits = [f"{self.name} ({tname}"]
        bits.append(", required)" if self.required else f", default {self.default!r})")
        if self.choices is not None:
            bits.append(f" one of {list(self.choices)}")
        if self.help:
            bits.append(f": {self.help}")
        return "".join(bits)


def resolve_params(owner: str, params: Sequence[Param], given: dict[str, Any]) -> dict[str, Any]:
    """Parse ``given`` (text or values) against declared ``params``; fill defaults; clear errors."""
    by_name = {p.name: p for p in params}
    out: dict[str, Any] = {}
    for key, text in given.items():
        if key not in by_name:
            close = difflib.get_close_matches(key, list(by_name), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            allowed = ", ".join(by_name) or "(none: this plugin takes no parameters)"
            raise SpecError(f"{owner}: unknown parameter {key!r}.{hint} Parameters it takes: {allowed}.")
        out[key] = by_name[key].parse(text, owner)
    for p in params:
        if p.name in out:
            continue
        if p.required:
            raise SpecError(f"{owner}: parameter {p.name!r} is required. {p.describe()}")
        out[p.name] = p.parse(p.default, owner) if isinstance(p.default, str) else p.default
    return out


@dataclass
class Entry:
    """A registered plugin object with its declared parameters and the plugin that provided it."""

    kind: str
    name: str
    factory: Callable[..., Any]
    params: list[Param] = field(default_factory=list)
    help: str = ""
    plugin: str = "?"
    distribution: str = "?"
    version: str = "?"
    extra: dict[str, Any] = field(default_factory=dict)

    def resolve(self, given: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validated parameter values from spec text (``_`` = the positional first value)."""
        given = dict(given or {})
        if "_" in given:  # `timm:resnet18`: a positional first value, if the plugin declares one
            positional = self.extra.get("positional")
            if not positional:
                raise SpecError(
                    f"{self.kind} {self.name!r} takes no positional value (got {given['_']!r}); "
                    f"write {self.name}:key=value."
                )
            given[positional] = given.pop("_")
        return resolve_params(f"{self.kind} {self.name!r}", self.params, given)

    def create(self, given: dict[str, Any] | None = None, **kwargs):
        values = self.resolve(given)
        values.update(kwargs)
        return self.factory(**values)
