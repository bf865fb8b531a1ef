"""Sweep grids: parse ``--grid KEY=VALUES`` / a TOML ``[grid]`` table, type the values, and plan
cells and tasks.

Keys (the dimension each becomes in the stored Dataset in brackets):

* ``seed`` [seed], ``beta`` [beta]: the *vectorised* keys. Cells that differ only in these share
  one task: the metric is called once with all their seeds/βs, and ``fit`` trains them as one
  batched ensemble.
* a FitConfig field, e.g. ``epochs``, ``lr``, ``batch_size`` [the same name].
* ``KIND.PARAM`` for a plugin parameter, KIND one of source, decoder, divergence, schedule,
  metric [``KIND_PARAM``]; ``sourceN.PARAM`` changes only the N-th ``--source`` (1-based)
  [``sourceN_PARAM``]; ``source.PARAM`` changes every source.
* ``decoder``, ``divergence``, ``schedule``, ``source`` for whole specs (``source`` replaces all
  ``--source`` specs with one) [``decoder``, ``divergence``, ``schedule``, ``source_spec``]. On
  the command line their values are split on ';' when one is present, else on ','.

Values: comma lists ``0,5,15``; integer keys also take ranges ``0-4``; TOML takes lists or the
same strings.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, fields, replace
from typing import Any, Sequence

from .fit import FitConfig
from .params import SpecError, _to_bool
from .run import parse_float_list, parse_int_list
from .spec import parse_spec

VECTOR_KEYS = ("seed", "beta")
PLUGIN_KINDS = {"source": "sources", "decoder": "decoders", "divergence": "divergences",
                "schedule": "schedules", "metric": "metrics"}
WHOLE_SPEC_KEYS = ("source", "decoder", "divergence", "schedule")
FIT_FIELDS = {f.name: f for f in fields(FitConfig)}
# Fit settings that do not change results: left out of a sweep's identity, so a resumed sweep
# may run with other threads/progress settings.
NON_RESULT_FIT = ("progress", "device", "threads", "eval_batch_size")
# Bookkeeping variables the sweep adds beside the metric's own (per cell, over the grid dims).
STATUS_PENDING, STATUS_DONE, STATUS_FAILED = 0, 1, 2
BOOKKEEPING = ("status", "error", "written_time", "task_seconds")


@dataclass(frozen=True)
class Axis:
    """One grid dimension: the key as the user wrote it, its dim name and typed values."""

    key: str
    dim: str
    values: tuple

    @property
    def vectorised(self) -> bool:
        return self.key in VECTOR_KEYS


@dataclass(frozen=True)
class Base:
    """The sweep's fixed settings (everything not on the grid), as spec text."""

    metric: str
    sources: tuple[str, ...]
    decoder: str
    divergence: str
    schedule: str
    betas: tuple[float, ...]
    seeds: tuple[int, ...]
    fit: FitConfig


# ------------------------------------------------------------------------------------ parsing
def parse_grid_items(items: Sequence[str]) -> dict[str, str]:
    """``["beta=0,5", "seed=0-4"]`` -> ``{"beta": "0,5", "seed": "0-4"}`` (raw text values)."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise SpecError(f"--grid {item!r}: write KEY=VALUES, e.g. --grid beta=0,5,15 or --grid source.width=2,4")
        key, _, vals = item.partition("=")
        key = _norm_key(key)
        if not key or not vals.strip():
            raise SpecError(f"--grid {item!r}: empty key or values; write KEY=VALUES")
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
        if isinstance(v, dict):
            out.update(flatten_grid_table(v, key))
        else:
            out[_norm_key(key)] = v
    return out


def _norm_key(key: str) -> str:
    key = key.strip()
    head, dot, param = key.partition(".")
    return (head.replace("-", "_") + dot + param) if dot else key.replace("-", "_")


def dim_name(key: str) -> str:
    if key == "source":
        return "source_spec"  # metrics already use a `source` dim for the source names
    return re.sub(r"[^0-9a-zA-Z_]", "_", key)


def _split_text(raw: Any, whole_spec: bool = False) -> list[str]:
    if isinstance(raw, (list, tuple)):
        return [str(v).strip() for v in raw]
    text = str(raw)
    sep = ";" if (whole_spec and ";" in text) else ","
    return [t.strip() for t in text.split(sep) if t.strip()]


def _typed(raw: Any, kind: type | None, key: str) -> list:
    """Values of one key as a list of int / float / bool / str."""
    try:
        if kind is int:
            items = list(raw) if isinstance(raw, (list, tuple)) else [raw]
            return parse_int_list([str(i) for i in items])
        if kind is float:
            items = list(raw) if isinstance(raw, (list, tuple)) else [raw]
            return parse_float_list([str(i) for i in items])
        if kind is bool:
            return [v if isinstance(v, bool) else _to_bool(v) for v in
                    (raw if isinstance(raw, (list, tuple)) else _split_text(raw))]
    except ValueError as exc:
        raise SpecError(f"--grid {key}: values {raw!r} are not valid {kind.__name__}s ({exc})") from None
    return _split_text(raw)


def _fit_kind(name: str) -> type | None:
    default = getattr(FitConfig(), name)
    if name in ("threads",):
        return int
    if name in ("stop_loss",):
        return float
    return type(default) if isinstance(default, (bool, int, float)) else None


def _plugin_param(kind: str, spec_text: str, param: str, key: str):
    from .registry import get_entry
    spec = parse_spec(spec_text)
    entry = get_entry(PLUGIN_KINDS[kind], spec.name)
    by_name = {p.name: p for p in entry.params}
    if param not in by_name:
        allowed = ", ".join(by_name) or "(none)"
        raise SpecError(f"--grid {key}: {kind} {spec.name!r} has no parameter {param!r}; it takes: {allowed}")
    return by_name[param]


def build_axes(raw: dict[str, Any], base: Base) -> list[Axis]:
    """Type and validate every grid key against the base settings; keep the user's order."""
    axes = []
    for key, vals in raw.items():
        head, dot, param = key.partition(".")
        if key == "seed":
            values = _typed(vals, int, key)
        elif key == "beta":
            values = _typed(vals, float, key)
        elif key in FIT_FIELDS:
            values = _typed(vals, _fit_kind(key), key)
        elif not dot and key in WHOLE_SPEC_KEYS:
            values = [str(parse_spec(v)) for v in _split_text(vals, whole_spec=True)]
        elif dot and (head in PLUGIN_KINDS or re.fullmatch(r"source\d+", head)):
            if not param:
                raise SpecError(f"--grid {key}: name the parameter, e.g. {head}.width")
            kind = "source" if head.startswith("source") else head
            if kind == "source":
                n = int(head[6:]) if head != "source" else None
                if n is not None and not 1 <= n <= len(base.sources):
                    raise SpecError(f"--grid {key}: there are {len(base.sources)} --source specs; "
                                    f"{head} must be source1..source{len(base.sources)}")
                if not base.sources:
                    raise SpecError(f"--grid {key}: give a --source for it to change")
                specs = base.sources if n is None else (base.sources[n - 1],)
            else:
                spec = getattr(base, kind)
                if kind == "divergence" and str(spec).lower() == "none":
                    raise SpecError(f"--grid {key}: the sweep has --divergence none")
                specs = (spec,)
            declared = [_plugin_param(kind, s, param, key) for s in specs]
            ptype = declared[0].type
            values = _typed(vals, ptype if ptype in (int, float, bool) else None, key)
            for p in declared:  # validate now: a typo should stop the sweep before it starts
                for v in values:
                    p.parse(str(v), f"--grid {key}")
        else:
            known = ["seed", "beta", *FIT_FIELDS, *(f"{k}.PARAM" for k in PLUGIN_KINDS), *WHOLE_SPEC_KEYS]
            raise SpecError(f"--grid {key!r}: unknown key; use one of: {', '.join(known)}")
        if not values:
            raise SpecError(f"--grid {key}: no values")
        if len(set(values)) != len(values):
            raise SpecError(f"--grid {key}: repeated values in {values}")
        axes.append(Axis(key, dim_name(key), tuple(values)))
    dims = [a.dim for a in axes]
    dup = {d for d in dims if dims.count(d) > 1}
    if dup:
        raise SpecError(f"--grid: keys {sorted(dup)} name the same dimension twice")
    return axes


# ------------------------------------------------------------------------------------ identity
def definition(base: Base, axes: Sequence[Axis]) -> dict[str, Any]:
    """What makes two sweep commands the same sweep (grid *values* left out: a grid may grow)."""
    grid_keys = {a.key for a in axes}
    fit = {k: v for k, v in base.fit.to_attrs().items() if k not in NON_RESULT_FIT and k not in grid_keys}
    return {
        "metric": base.metric, "sources": list(base.sources), "decoder": base.decoder,
        "divergence": base.divergence, "schedule": base.schedule,
        "betas": None if "beta" in grid_keys else [float(b) for b in base.betas],
        "seeds": None if "seed" in grid_keys else [int(s) for s in base.seeds],
        "fit": fit, "grid": [a.key for a in axes],
    }


def default_sweep_id(base: Base, axes: Sequence[Axis]) -> str:
    text = json.dumps(definition(base, axes), sort_keys=True, default=str)
    name = parse_spec(base.metric).name
    return f"sweep-{re.sub(r'[^0-9a-zA-Z_-]', '_', name)}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


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
        vec = {}
        for k, a in enumerate(axes):
            if a.vectorised:
                vec[a.key] = [a.values[i] for i in sorted({c[k] for c in cells})]
        tasks.append(Task(index, vec.get("seed", []), vec.get("beta", []), cells))
    return tasks


def all_cells(axes: Sequence[Axis]) -> list[tuple[int, ...]]:
    return list(itertools.product(*(range(len(a.values)) for a in axes)))


def task_settings(base: Base, axes: Sequence[Axis], task: Task) -> dict[str, Any]:
    """The plain-text settings of one task (what a worker needs to build its RunContext)."""
    metric, decoder, divergence, schedule = (parse_spec(base.metric), parse_spec(base.decoder),
                                             base.divergence, parse_spec(base.schedule))
    divergence = None if str(divergence).lower() == "none" else parse_spec(divergence)
    sources = [parse_spec(s) for s in base.sources]
    fit_changes: dict[str, Any] = {}
    for a in axes:
        if a.vectorised:
            continue
        v = a.values[task.index[a.dim]]
        head, dot, param = a.key.partition(".")
        if a.key in FIT_FIELDS:
            fit_changes[a.key] = v
        elif not dot:  # whole spec
            if a.key == "source":
                sources = [parse_spec(v)]
            elif a.key == "decoder":
                decoder = parse_spec(v)
            elif a.key == "divergence":
                divergence = None if str(v).lower() == "none" else parse_spec(v)
            elif a.key == "schedule":
                schedule = parse_spec(v)
        elif head == "source":
            sources = [s.with_params(**{param: v}) for s in sources]
        elif head.startswith("source"):
            n = int(head[6:]) - 1
            sources = [s.with_params(**{param: v}) if k == n else s for k, s in enumerate(sources)]
        elif head == "metric":
            metric = metric.with_params(**{param: v})
        elif head == "decoder":
            decoder = decoder.with_params(**{param: v})
        elif head == "divergence":
            divergence = divergence.with_params(**{param: v})
        elif head == "schedule":
            schedule = schedule.with_params(**{param: v})
    return {
        "metric": str(metric), "sources": [str(s) for s in sources], "decoder": str(decoder),
        "divergence": str(divergence) if divergence is not None else "none", "schedule": str(schedule),
        "betas": list(task.betas) if task.betas else list(base.betas),
        "seeds": list(task.seeds) if task.seeds else list(base.seeds),
        "fit": {k: v for k, v in {**base.fit.__dict__, **fit_changes}.items()},
    }


def describe_cell(axes: Sequence[Axis], cell: tuple[int, ...]) -> str:
    return ", ".join(f"{a.dim}={a.values[i]}" for a, i in zip(axes, cell))


def fit_config_from(values: dict[str, Any]) -> FitConfig:
    return replace(FitConfig(), **values)
