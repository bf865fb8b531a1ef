"""Plugin parameters, declared once: read from the factory's signature and validated from text.

A factory such as ``def make_pid(task: Literal["and", "xor"] = "and", n: Annotated[int, "samples"]
= 10000)`` declares two parameters: their types, choices, defaults and help come from the
annotations (``Annotated[T, "help"]``; ``Literal`` for choices; ``list[int]`` for lists; a
callable in ``Annotated`` parses a custom text form). One list grammar everywhere inside spec
values: items joined by ``+`` (``hidden=25+15+10``, ``window=50:150+150:250``); an integer item
may be an inclusive range ``a-b`` (``layers=0-3``).
"""
from __future__ import annotations

import difflib
import inspect
import re
import typing
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .errors import SpecError

REQUIRED = inspect.Parameter.empty
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}
_RANGE = re.compile(r"(-?\d+)-(-?\d+)")


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    low = str(value).strip().lower()
    if low in _TRUE or low in _FALSE:
        return low in _TRUE
    raise ValueError(f"expected one of true/false/yes/no/1/0, got {value!r}")


def int_range(text: str) -> list[int]:
    """'3' -> [3]; '0-4' -> [0, 1, 2, 3, 4] (inclusive; a descending range is an error)."""
    m = _RANGE.fullmatch(text.strip())
    if not m:
        try:
            return [int(text)]
        except ValueError:
            hint = "; join list items with '+' (25+15+10)" if "-" in text.strip()[1:] else ""
            raise ValueError(f"{text!r} is not an integer or a range a-b{hint}") from None
    a, b = int(m[1]), int(m[2])
    if b < a:
        raise ValueError(f"{text!r} is a descending range; write {b}-{a}, or join items with '+'")
    return list(range(a, b + 1))


@dataclass(frozen=True)
class ListOf:
    """A list value: items joined by '+' ('25+15+10'); integer items may be ranges ('0-3')."""

    item: type

    @property
    def __name__(self) -> str:
        return f"list of {self.item.__name__}"

    def __call__(self, value: Any) -> list:
        if isinstance(value, (list, tuple)):
            return [_PARSERS.get(self.item, self.item)(v) for v in value]
        text = str(value).strip()
        if text.lower() in ("", "none"):
            return []
        parts = [p.strip() for p in text.split("+")]
        if self.item is int:
            return [i for p in parts for i in int_range(p)]
        return [_PARSERS.get(self.item, self.item)(p) for p in parts]


def to_int(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"{value!r} is not an integer")
    return int(value) if isinstance(value, (int, float)) else int(str(value).strip())


def to_float(value: Any) -> float:
    out = float(value)
    if out != out or out in (float("inf"), float("-inf")):  # NaN or infinite: never a setting
        raise ValueError(f"{value!r} is not a finite number")
    return out


_PARSERS: dict[Any, Callable[[Any], Any]] = {int: to_int, float: to_float, str: str, bool: to_bool}


@dataclass(frozen=True)
class Param:
    """One parameter of a plugin: ``Param("n", 10000, int, "samples")``; usually read from a signature."""

    name: str
    default: Any = REQUIRED
    type: Any = str
    help: str = ""
    choices: Sequence[Any] | None = None
    optional: bool = False  # None ('none' in text) is allowed

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def parse(self, value: Any, owner: str) -> Any:
        if self.optional and (value is None or str(value).strip().lower() == "none"):
            return None
        if isinstance(value, str) or self.type in (int, float, bool) or isinstance(self.type, ListOf):
            try:
                value = _PARSERS.get(self.type, self.type)(value)
            except (TypeError, ValueError) as exc:
                raise SpecError(f"{owner}: parameter {self.name!r} got {value!r}, which is not a valid "
                                f"{self.type_name} ({exc}). {self.describe()}") from None
        if self.choices is not None and value not in self.choices:
            raise SpecError(f"{owner}: parameter {self.name!r} got {value!r}; allowed values: "
                            f"{', '.join(map(str, self.choices))}.")
        return value

    @property
    def type_name(self) -> str:
        return getattr(self.type, "__name__", str(self.type))

    @staticmethod
    def text(value: Any) -> str:
        """A value in the spec text form: list items joined by '+', booleans as true/false."""
        if isinstance(value, (list, tuple)):
            return "+".join(map(str, value))
        return str(value).lower() if isinstance(value, bool) else str(value)

    def default_text(self) -> str:
        return "(required)" if self.required else self.text(self.default)

    def describe(self) -> str:
        shown = repr(self.default) if isinstance(self.default, str) else self.default_text()
        text = f"{self.name} ({self.type_name}, " + ("required)" if self.required else f"default {shown})")
        if self.choices is not None:
            text += f" one of {list(self.choices)}"
        return text + (f": {self.help}" if self.help else "")


def param_from_annotation(name: str, annotation: Any, default: Any) -> Param:
    help_text, parser, choices, optional = "", None, None, False
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *meta = typing.get_args(annotation)
        help_text = " ".join(m for m in meta if isinstance(m, str))
        parser = next((m for m in meta if callable(m) and not isinstance(m, str)), None)
    args = typing.get_args(annotation)
    if type(None) in args:  # Optional[X] / X | None
        optional = True
        annotation = next(a for a in args if a is not type(None))
        args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        choices, kind = tuple(args), type(args[0])
    elif origin in (list, tuple, Sequence) or annotation in (list, tuple):
        kind = ListOf(args[0] if args else str)
    elif annotation in _PARSERS:
        kind = annotation
    else:
        kind = str
    return Param(name, default, parser or kind, help_text, choices, optional or default is None)


def params_of(factory: Callable, skip: Sequence[str] = ("ctx",)) -> list[Param]:
    """The declared parameters of a factory, from its signature and annotations."""
    try:
        sig = inspect.signature(factory, eval_str=True)
    except (NameError, TypeError, ValueError):  # an annotation that cannot be evaluated here
        sig = inspect.signature(factory)
    out = []
    for p in sig.parameters.values():
        if p.name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        annotation = p.annotation if p.annotation is not p.empty else type(p.default) \
            if p.default not in (p.empty, None) else str
        out.append(param_from_annotation(p.name, annotation, p.default))
    return out


def resolve_params(owner: str, params: Sequence[Param], given: dict[str, Any]) -> dict[str, Any]:
    """Parse ``given`` (text or values) against ``params``; fill defaults; clear errors."""
    by_name = {p.name: p for p in params}
    out: dict[str, Any] = {}
    for key, value in given.items():
        if key not in by_name:
            close = difflib.get_close_matches(key, list(by_name), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            allowed = ", ".join(by_name) or "(none: this plugin takes no parameters)"
            raise SpecError(f"{owner}: unknown parameter {key!r}.{hint} Parameters it takes: {allowed}.")
        out[key] = by_name[key].parse(value, owner)
    for p in params:
        if p.name not in out:
            if p.required:
                raise SpecError(f"{owner}: parameter {p.name!r} is required. {p.describe()}")
            out[p.name] = p.default
    return out
