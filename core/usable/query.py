"""``--where`` filters over a table of runs (one row per run, settings and headline values).

``KEY=V``, ``KEY!=V``: equal / not equal, as numbers when both sides parse as numbers
(``lr=0.01`` matches ``1e-2``), else as text. ``KEY<V``, ``<=``, ``>``, ``>=``: ordered, as numbers
when both sides are numbers, else as text (``end_time>=2026-03``). ``KEY~GLOB``: shell-style
wildcards (``sources~pid:*xor*``). A spec column (metric, decoder, divergence, schedule,
sources, sourceN) also matches by its plugin name (``metric=rine`` matches ``rine:per_class=true``);
``sources`` by each of its specs. A list cell (``betas``, ``seeds``; ``beta``/``seed`` are
aliases) matches when any of its items does (``beta>=5`` keeps runs with some β of at least 5).
A missing cell matches only ``!=``.
"""
from __future__ import annotations

import fnmatch
import math
import operator
import re
from typing import Any, NamedTuple

from .errors import SpecError

ORDER = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
SPEC_COLUMNS = ("metric", "decoder", "divergence", "schedule", "sources")
ALIASES = {"beta": "betas", "seed": "seeds", "source": "sources"}
_WHERE = re.compile(r"\s*([A-Za-z_][\w\[\]=.,+ -]*?)\s*(<=|>=|!=|=|<|>|~)\s*(.*?)\s*")


class Where(NamedTuple):
    text: str
    column: str
    op: str
    value: str


def parse_where(text: str) -> Where:
    """``"beta>=5"`` -> Where(text, "betas", ">=", "5"). The key may be a value column with its
    coordinates, ``redundant_information[beta=15.0]>0.5``: the first operator after the key counts."""
    m = _WHERE.fullmatch(text)
    key = m and m[1]
    if m and "[" in key and "]" not in key:  # the '=' inside var[dim=x] is not the operator
        m = re.fullmatch(r"\s*([A-Za-z_]\w*\[[^\]]*\])\s*(<=|>=|!=|=|<|>|~)\s*(.*?)\s*", text)
        key = m and m[1]
    if not m or not m[3]:
        raise SpecError(f"--where {text!r}: write KEY=VALUE, KEY>=NUMBER or KEY~GLOB, e.g. --where metric=rine "
                        "--where 'beta>=5' (operators = != < <= > >= ~)")
    return Where(text, ALIASES.get(key, key), m[2], m[3])


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or type(v).__name__ == "bool_":
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _text(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) or type(v).__name__ == "bool_" else str(v)


def _items(cell: Any) -> list[Any]:
    items = list(cell) if isinstance(cell, (list, tuple)) or type(cell).__name__ == "ndarray" else [cell]
    return [v for v in items if not _missing(v)]


def _texts(cell: Any, column: str) -> list[str]:
    """What ``=`` and ``~`` compare with: the items, each spec of ``sources``, and plugin names."""
    texts = [_text(v) for v in _items(cell)]
    if column == "sources":
        texts += [s for t in texts for s in t.split()]
    if column in SPEC_COLUMNS or re.fullmatch(r"source\d+", column):
        texts += [t.split(":")[0] for t in texts]
    return texts


def _equal(a: Any, want: str) -> bool:
    x, y = _number(a), _number(want)
    return x == y if x is not None and y is not None else _text(a) == want


def _ordered(op: str, a: Any, want: str) -> bool:
    x, y = _number(a), _number(want)
    if x is not None and y is not None:
        return ORDER[op](x, y)
    return ORDER[op](_text(a), want)


def matches(cell: Any, where: Where) -> bool:
    """Whether one cell passes one condition."""
    if where.op == "!=":
        return not matches(cell, where._replace(op="="))
    if where.op == "=":
        return any(_equal(t, where.value) for t in _texts(cell, where.column))
    if where.op == "~":
        return any(fnmatch.fnmatchcase(t, where.value) for t in _texts(cell, where.column))
    return any(_ordered(where.op, v, where.value) for v in _items(cell))


def apply_where(df, conditions: list[Where]):
    """The rows of ``df`` passing every condition; an unknown column is an error listing them."""
    for w in conditions:
        if w.column not in df.columns:
            raise SpecError(f"--where {w.text!r}: no column {w.column!r}; columns: {', '.join(map(str, df.columns))}")
        df = df.loc[[matches(cell, w) for cell in df[w.column]]]  # .loc: an empty list selects rows, not columns
    return df.reset_index(drop=True)
