"""The one text form of a configured plugin: ``name`` or ``name:key=value,key=value``.

Values may not contain ',' or '='; a list inside a value joins its items with '+'
(``hidden=25+15+10``, ``window=0:100+100:200``). The same text is stored in results, so a run
can be recreated from it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import SpecError


@dataclass(frozen=True)
class Spec:
    name: str
    params: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return format_spec(self.name, self.params)

    def with_params(self, **changes) -> "Spec":
        merged = dict(self.params)
        merged.update({k: str(v) for k, v in changes.items()})
        return Spec(self.name, merged)


def parse_spec(text: str | Spec) -> Spec:
    if isinstance(text, Spec):
        return text
    text = str(text).strip()
    if not text:
        raise SpecError("empty plugin spec; write `name` or `name:key=value,key=value`.")
    name, _, rest = text.partition(":")
    params: dict[str, str] = {}
    if rest:
        for i, item in enumerate(rest.split(",")):
            if "=" not in item:
                if i == 0:
                    params["_"] = item.strip()  # a positional first value: timm:resnet18
                    continue
                raise SpecError(
                    f"spec {text!r}: {item!r} is not key=value. Write `name:key=value,key=value`."
                )
            key, _, value = item.partition("=")
            key = key.strip()
            if not key:
                raise SpecError(f"spec {text!r}: empty parameter name before '='.")
            if key in params:
                raise SpecError(f"spec {text!r}: parameter {key!r} given twice.")
            params[key] = value.strip()
    return Spec(name.strip(), params)


def format_spec(name: str, params: dict | None = None) -> str:
    if not params:
        return name
    items = []
    for k, v in params.items():
        items.append(str(v) if k == "_" else f"{k}={v}")
    return f"{name}:{','.join(items)}"
