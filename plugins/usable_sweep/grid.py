"""Sweep grids: parse ``--grid KEY=VALUES`` / a TOML ``[grid]`` table, type the values against the
base RunSpec, and plan cells and tasks.

Keys (the dimension each becomes in the stored Dataset in brackets) are RunSpec.with_param keys:

* ``seed`` [seed], ``beta`` [beta]: the *vectorised* keys. Cells that differ only in these share
  one task: the metric is called once with all their seeds/βs, and ``fit`` trains them as one
  batched ensemble.
* a training setting, e.g. ``epochs``, ``lr``, ``batch_size`` [the same name].
* ``KIND.PARAM`` for a plugin parameter, KIND one of source, decoder, divergence, schedule,
  metric [``KIND_PARAM``]; ``sourceN.PARAM`` changes only the N-th ``--source`` (1-based)
  [``sourceN_PARAM``]; ``source.PARAM`` changes every source.
* ``decoder``, ``divergence``, ``schedule``, ``source`` for whole specs (``source`` replaces all
  ``--source`` specs with one) [``decoder``, ``divergence``, ``schedule``, ``source_spec``]. On
  the command line their values are split on ';' when one is present, else on ','.

Values: comma lists ``0,5,15``; integer keys also take inclusive ranges ``0-4``; TOML takes lists
or the same strings.
"""
from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, fields
from typing import Any, Sequence

from usable import FitConfig, ListOf, RunSpec, SpecError, get_entry, parse_betas, parse_seeds, parse_spec

VECTOR_KEYS = ("seed", "beta")
WHOLE_SPEC_KEYS = ("source", "decoder", "divergence", "schedule")
PLUGIN_KINDS = {"source": "sources", "decoder": "decoders", "divergence": "divergences",
                "schedule": "schedules", "metric": "metrics"}
FIT_FIELDS = [f.name for f in fields(FitConfig)]


@dataclass(frozen=True)
class Axis:
    """One grid dimension: the key as the user wrote it, its dim name and typed values."""

    key: str
    dim: str
    values: tuple

    @property
    def vectorised(self) -> bool:
        return self.key in VECTOR_KEYS


# ------------------------------------------------------------------------------------ parsing
def _norm_key(key: str) -> str:
    head, dot, param = key.strip().partition(".")
    return head.replace("-", "_") + dot + param


def parse_grid_items(items: Sequence[str]) -> dict[str, str]:
    """``["beta=0,5", "seed=0-4"]`` -> ``{"beta": "0,5", "seed": "0-4"}`` (raw text values)."""
    out: dict[str, str] = {}
    for item in items:
        key, eq, vals = item.partition("=")
        key = _norm_key(key)
        if not eq or not key or not vals.strip():
            raise SpecError(f"--grid {item!r}: write KEY=VALUES, e.g. --grid beta=0,5,15 or --grid source.width=2,4")
        if key in out:
            raise SpecError(f"--grid {key!r} given twice; put all its values in one --grid {key}=a,b,c")
        out[key] = vals.strip()
    return out


def flatten_grid_table(table: dict, prefix: str = "") -> dict[str, Any]:
    """A TOML ``[grid]`` table -> flat keys. TOML reads ``source.width = [2, 4]`` as a nested
    table ``{"source": {"width": [2, 4]}}``; both that and a quoted ``"source.width"`` work."""
    out: dict[str, Any] = {}
    for k, v in table.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(flatten_grid_table(v, key) if isinstance(v, dict) else {_norm_key(key): v})
    return out


def dim_name(key: str) -> str:
    return "source_spec" if key == "source" else re.sub(r"[^0-9a-zA-Z_]", "_", key)


def _items(raw: Any, key: str) -> list:
    """The values of one key as items: TOML lists as they are; text split on ',' (whole specs on
    ';' when present); integer ranges expanded."""
    if isinstance(raw, (list, tuple)):
        return list(raw)
    sep = ";" if key in WHOLE_SPEC_KEYS and ";" in str(raw) else ","
    return [t.strip() for t in str(raw).split(sep) if t.strip()]


def _declared(base: RunSpec, key: str):
    """The Param a grid key sets (None for whole specs), checked to exist on the base run."""
    head, dot, param = key.partition(".")
    if key in FIT_FIELDS:
        return FitConfig.param(key)
    if not dot:
        return None
    kind = "source" if re.fullmatch(r"source\d*", head) else head
    specs = base.sources if kind == "source" else [getattr(base, head)]
    if kind == "source" and not base.sources:
        raise SpecError(f"--grid {key}: give a --source for it to change")
    if head != "source" and kind == "source":
        n = int(head[6:])
        if not 1 <= n <= len(base.sources):
            raise SpecError(f"--grid {key}: there are {len(base.sources)} --source specs; "
                            f"{head} must be source1..source{len(base.sources)}")
        specs = [base.sources[n - 1]]
    if specs[0] is None:
        raise SpecError(f"--grid {key}: the sweep has --{head} none")
    entry = get_entry(PLUGIN_KINDS[kind], specs[0].name)
    by_name = {p.name: p for p in entry.params}
    if param not in by_name:
        raise SpecError(f"--grid {key}: {kind} {entry.name!r} has no parameter {param!r}; it takes: "
                        f"{', '.join(by_name) or '(none)'}")
    return by_name[param]


def build_axes(raw: dict[str, Any], base: RunSpec) -> list[Axis]:
    """Type and validate every grid key against the base run; keep the user's order. Each value
    is tried on the base run now, so a typo stops the sweep before anything starts."""
    axes = []
    for key, vals in raw.items():
        head, dot, param = key.partition(".")
        valid = key in VECTOR_KEYS or key in FIT_FIELDS or (not dot and key in WHOLE_SPEC_KEYS) or \
            (dot and param and (head in PLUGIN_KINDS or re.fullmatch(r"source\d+", head)))
        if not valid:
            known = ["seed", "beta", *FIT_FIELDS, *(f"{k}.PARAM" for k in PLUGIN_KINDS), *WHOLE_SPEC_KEYS]
            raise SpecError(f"--grid {key!r}: unknown key; use one of: {', '.join(known)}")
        items = _items(vals, key)
        if key == "seed":
            values = list(parse_seeds([str(v) for v in items]))
        elif key == "beta":
            values = list(parse_betas([str(v) for v in items]))
        elif key in WHOLE_SPEC_KEYS and not dot:
            values = [str(parse_spec(v)) for v in items]
        else:
            p = _declared(base, key)
            if p.type is int:  # integer keys take ranges
                items = [i for v in items for i in ListOf(int)(str(v))]
            values = [p.parse(v if isinstance(v, (bool, int, float)) else str(v), f"--grid {key}") for v in items]
            if isinstance(p.type, ListOf):  # a list value is one coordinate: keep its text form
                values = [p.text(v) for v in values]
        if not values:
            raise SpecError(f"--grid {key}: no values")
        if len(set(map(str, values))) != len(values):
            raise SpecError(f"--grid {key}: repeated values in {values}")
        for v in values:  # each value must make a valid run
            spec_with(base, key, v).validate()
        axes.append(Axis(key, dim_name(key), tuple(values)))
    dims = [a.dim for a in axes]
    dup = sorted({d for d in dims if dims.count(d) > 1})
    if dup:
        raise SpecError(f"--grid: keys {dup} name the same dimension twice")
    return axes


def spec_with(base: RunSpec, key: str, value: Any) -> RunSpec:
    return base.with_param(key, value if key in FIT_FIELDS else str(value))


# ------------------------------------------------------------------------------------ identity
def definition(base: RunSpec, axes: Sequence[Axis]) -> dict[str, Any]:
    """What makes two sweep commands the same sweep (grid *values* left out: a grid may grow).
    Derived from the RunSpec: runtime settings never count."""
    grid = [a.key for a in axes]
    leave_out = tuple(k for k in grid if k in FIT_FIELDS) + (("betas",) if "beta" in grid else ()) + \
        (("seeds",) if "seed" in grid else ())
    return {**base.identity(leave_out), "grid": grid}


def default_sweep_id(base: RunSpec, axes: Sequence[Axis]) -> str:
    import hashlib
    text = json.dumps(definition(base, axes), sort_keys=True, default=str)
    return f"sweep-{re.sub(r'[^0-9a-zA-Z_-]', '_', base.metric.name)}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


# ------------------------------------------------------------------------------------ planning
@dataclass
class Task:
    """One call of the metric: fixed non-vectorised values + the seeds/βs to run together.

    ``index`` holds the position along each non-vectorised grid dim; ``cells`` the full grid
    index of every cell this task must write (only cells still pending)."""

    index: dict[str, int]
    seeds: list[int]
    betas: list[float]
    cells: list[tuple[int, ...]]

    def spec(self, base: RunSpec, axes: Sequence[Axis]) -> RunSpec:
        """The RunSpec the worker runs for this task."""
        spec = base
        for a in axes:
            if not a.vectorised:
                spec = spec_with(spec, a.key, a.values[self.index[a.dim]])
        if self.seeds:
            spec = spec.with_param("seed", ",".join(map(str, self.seeds)))
        if self.betas:
            spec = spec.with_param("beta", ",".join(map(repr, self.betas)))
        return spec


def plan_tasks(axes: Sequence[Axis], pending: set[tuple[int, ...]], split: frozenset[str] = frozenset()) -> list[Task]:
    """Group pending cells into tasks: one per combination of non-vectorised values (and per
    value of any vectorised dim in ``split``, for metrics that do not carry that dim)."""
    grouped: dict[tuple, list[tuple[int, ...]]] = {}
    for cell in sorted(pending):
        key = tuple(i if (not a.vectorised or a.dim in split) else None for a, i in zip(axes, cell))
        grouped.setdefault(key, []).append(cell)
    tasks = []
    for key, cells in grouped.items():
        index = {a.dim: i for a, i in zip(axes, key) if i is not None and not a.vectorised}
        vec = {a.key: [a.values[i] for i in sorted({c[k] for c in cells})] for k, a in enumerate(axes) if a.vectorised}
        tasks.append(Task(index, vec.get("seed", []), vec.get("beta", []), cells))
    return tasks


def all_cells(axes: Sequence[Axis]) -> list[tuple[int, ...]]:
    return list(itertools.product(*(range(len(a.values)) for a in axes)))


def describe_cell(axes: Sequence[Axis], cell: tuple[int, ...]) -> str:
    return ", ".join(f"{a.dim}={a.values[i]}" for a, i in zip(axes, cell))
