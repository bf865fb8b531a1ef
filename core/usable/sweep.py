"""``usable sweep``: a grid over run options and plugin parameters, run as tasks on
dask.distributed (or serially), streamed cell by cell into one group of the results store.

The coordinator (this process) is the only writer. It submits every task at once; the first
result that comes back fixes the template's shapes (all cells of a grid share the metric's own
dims), the template is staged and renamed into place, and from then on each finished cell is
written into its own region and only then marked done. Re-running the same command skips done
cells; a grid that grows along a dim regrows the stored sweep; one that drops stored values is an
error. See docs/sweeps.md.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import click
import numpy as np
import xarray as xr

from .cli import fit_options, resolve_run_args, spec_options
from .params import SpecError
from .run import environment_attrs, now_iso, parse_float_list, parse_int_list
from .spec import parse_spec
from .sweep_grid import (BOOKKEEPING, FIT_FIELDS, STATUS_DONE, STATUS_FAILED, Axis, Base, Task, all_cells, build_axes,
                         default_sweep_id, definition, describe_cell, flatten_grid_table,
                         parse_grid_items, plan_tasks, task_settings)
from .sweep_store import SweepStore, normalise_dtype

# Provenance attrs a cell's Dataset carries that differ from cell to cell; the sweep stores the
# base settings instead (and the grid says what changed).
CELL_ATTRS = ("metric", "sources", "decoder", "divergence", "schedule", "betas", "seeds", "fit",
              "start_time", "end_time", "command_line")


class CellError(ValueError):
    pass


@dataclass
class SweepReport:
    sweep_id: str
    store: str
    executor: str
    cells: int
    tasks: int = 0
    skipped: int = 0
    done: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    pending: int = 0
    wall_seconds: float = 0.0
    startup_seconds: float = 0.0  # starting the executor (a LocalCluster's worker processes)
    compute_seconds: float = 0.0  # first submission to last cell written (no start-up, no shutdown)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.pending

    def table(self) -> str:
        rate = 60 * self.done / self.wall_seconds if self.wall_seconds > 0 else float("nan")
        head = ["cells", "tasks", "done", "skipped", "failed", "pending", "wall (s)", "cells/min"]
        row = [self.cells, self.tasks, self.done, self.skipped, len(self.failed), self.pending,
               f"{self.wall_seconds:.1f}", f"{rate:.1f}"]
        w = [max(len(str(h)), len(str(v))) for h, v in zip(head, row)]
        return ("  ".join(str(h).rjust(n) for h, n in zip(head, w)) + "\n"
                + "  ".join(str(v).rjust(n) for v, n in zip(row, w)))


# ------------------------------------------------------------------------------------ cells
def split_cells(ds: xr.Dataset, axes: Sequence[Axis], task: Task) -> dict[tuple[int, ...], xr.Dataset]:
    """A task's Dataset -> one Dataset per cell, grid dims in front with length 1, no grid coords."""
    ds = ds.reset_coords()
    grid_dims = [a.dim for a in axes]
    for a in axes:
        if not a.vectorised and a.dim in ds.dims:
            raise CellError(f"the metric's result already has a dimension {a.dim!r}; the grid key "
                            f"{a.key!r} would collide with it")
    # Dims without a coordinate get 0..n-1, so cells can be aligned (and a template regrown).
    ds = ds.assign_coords({d: np.arange(n) for d, n in ds.sizes.items() if d not in ds.coords})
    out = {}
    for cell in task.cells:
        sel = {}
        for a, i in zip(axes, cell):
            if a.vectorised and a.dim in ds.dims:
                sel[a.dim] = a.values[i]
        try:
            c = ds.sel(sel) if sel else ds
        except KeyError:
            raise CellError(f"the metric returned {', '.join(f'{d}={ds[d].values.tolist()}' for d in sel)}; "
                            f"asked for {sel}") from None
        c = c.drop_vars([d for d in sel if d in c.coords])
        c = c.expand_dims({d: 1 for d in grid_dims})
        c = xr.Dataset({v: normalise_dtype(c[v]).transpose(*grid_dims, ...) for v in c.data_vars},
                       coords={d: c[d] for d in c.coords if d not in grid_dims})
        out[cell] = c
    return out


def missing_vector_dims(ds: xr.Dataset, axes: Sequence[Axis], task: Task) -> set[str]:
    """Vectorised grid dims the metric's result lacks although the task asked for several values
    (e.g. a metric that ignores β): those tasks must be split, one value each."""
    n = {"seed": len(task.seeds), "beta": len(task.betas)}
    return {a.dim for a in axes if a.vectorised and a.dim not in ds.dims and n[a.key] > 1}


class Coordinator:
    """Owns the store while a sweep runs: template, regrowth, cell writes, failures."""

    def __init__(self, ss: SweepStore, axes: Sequence[Axis], attrs: dict[str, Any]):
        self.ss, self.axes, self.attrs = ss, list(axes), attrs
        self.grid_dims = [a.dim for a in axes]
        self.coords: dict[str, list] | None = None
        self.vars: set[str] = set()
        self.deferred: list[tuple[tuple[int, ...], str]] = []
        if ss.exists():
            self._refresh()

    def _refresh(self) -> None:
        ds = self.ss.open()
        self.coords = {d: ds[d].values.tolist() for d in ds.dims if d not in self.grid_dims}
        self.vars = set(ds.data_vars)

    @property
    def has_template(self) -> bool:
        return self.coords is not None

    def write(self, index: tuple[int, ...], cell: xr.Dataset, seconds: float,
              metric_attrs: dict[str, Any]) -> None:
        if not self.has_template:
            self.ss.create(self.axes, cell, self._with_metric_attrs(index, cell, metric_attrs))
            self._refresh()
            self.flush_failures()
        if set(cell.data_vars) - self.vars:
            self.ss.add_variables(self.axes, cell)
            self._refresh()
            if "headline" not in self.ss.attrs():  # the template came from failures only
                self.ss.finish(self._with_metric_attrs(index, cell, metric_attrs))
        grow = {}
        for d in cell.dims:
            if d in self.grid_dims or d not in self.coords:
                continue
            have, got = self.coords[d], cell[d].values.tolist()
            if got != have:
                union = have + [v for v in got if v not in have]
                if union != have:
                    grow[d] = union
        if grow:  # e.g. this cell ran more epochs than the template's first cell
            self.ss.regrow(self.axes, grow)
            self._refresh()
        cell = cell.reindex({d: self.coords[d] for d in cell.dims if d not in self.grid_dims})
        self.ss.write_cell(self.axes, index, cell, seconds)

    def _with_metric_attrs(self, index, cell: xr.Dataset, metric_attrs: dict[str, Any]) -> dict[str, Any]:
        """The metric's own attrs (null model, headline, ...) come from the first computed cell;
        those that name a grid dim or the cell's provenance vary by cell and are left out."""
        sources_vary = any(a.key.startswith("source") for a in self.axes)
        attrs = {k: v for k, v in metric_attrs.items() if k not in CELL_ATTRS and k not in self.grid_dims
                 and not (sources_vary and k.startswith("source_"))}
        attrs.update(self.attrs)
        attrs["metric_attrs_from_cell"] = describe_cell(self.axes, index)
        attrs["headline"] = _headline(metric_attrs, cell)
        return attrs

    def fail(self, index: tuple[int, ...], message: str) -> None:
        if self.has_template:
            self.ss.mark_failed(self.axes, index, message)
        else:  # nothing stored yet: keep the failure until a template exists
            self.deferred.append((index, message))

    def flush_failures(self) -> None:
        for index, message in self.deferred:
            self.ss.mark_failed(self.axes, index, message)
        self.deferred = []

    def close(self) -> None:
        if not self.has_template and self.deferred:  # every task failed: a status-only template
            self.ss.create(self.axes, None, self.attrs)
            self._refresh()
            self.flush_failures()


def sweep_attrs(base: Base, axes: Sequence[Axis], defn: dict[str, Any]) -> dict[str, Any]:
    grid = {a.key: a.values for a in axes}
    return {
        **environment_attrs(),
        "metric": base.metric, "sources": list(base.sources), "decoder": base.decoder,
        "divergence": base.divergence, "schedule": base.schedule,
        "betas": [float(b) for b in grid.get("beta", base.betas)],
        "seeds": [int(s) for s in grid.get("seed", base.seeds)],
        "fit": json.dumps(base.fit.to_attrs()),
        "kind": "sweep",
        "grid": json.dumps({a.dim: {"key": a.key, "values": list(a.values)} for a in axes}),
        "grid_dims": [a.dim for a in axes],
        "sweep_definition": json.dumps(defn, sort_keys=True, default=str),
        "start_time": now_iso(), "end_time": now_iso(),
    }


def make_executor(kind: str, workers: int, scheduler: str | None, retries: int, echo):
    from .sweep_exec import DaskExecutor, SerialExecutor
    if kind == "serial":
        if scheduler:
            raise SpecError("--scheduler needs --executor dask (the default), not serial")
        return SerialExecutor(retries)
    return DaskExecutor(workers=workers, scheduler=scheduler, retries=retries, echo=echo)


def run_sweep(store: str, base: Base, axes: Sequence[Axis], *, name: str | None = None,
              executor: str = "dask", workers: int = 2, scheduler: str | None = None, retries: int = 0,
              progress: bool = True, echo: Callable[[str], Any] = click.echo) -> SweepReport:
    """Run (or resume) a sweep into ``store``; returns the counts for the summary table."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    axes = list(axes)
    defn = definition(base, axes)
    sweep_id = name or default_sweep_id(base, axes)
    ss = SweepStore(store, sweep_id)
    report = SweepReport(sweep_id, str(store), executor, cells=len(all_cells(axes)))
    with ss.lock():
        split: set[str] = set()
        if ss.exists():
            grow = ss.check(axes, defn)
            if grow:
                echo(f"growing sweep {sweep_id!r}: " + "; ".join(f"{d} -> {v}" for d, v in grow.items()))
                ss.regrow(axes, grow)
            status = ss.status()
            split = set(json.loads(ss.attrs().get("split_dims", "[]")))
            attrs = {k: v for k, v in ss.attrs().items() if k not in ("end_time",)}
        else:
            status = np.zeros([len(a.values) for a in axes], dtype="int8")
            attrs = sweep_attrs(base, axes, defn)
        pending = {c for c in all_cells(axes) if status[c] != STATUS_DONE}
        report.skipped = report.cells - len(pending)
        tasks = plan_tasks(axes, pending, frozenset(split))
        report.tasks = len(tasks)
        coord = Coordinator(ss, axes, attrs)
        if not tasks:
            echo(f"sweep {sweep_id!r}: all {report.cells} cells already done in {store}")
        else:
            t_start = time.perf_counter()
            with make_executor(executor, workers, scheduler, retries, echo) as ex:
                report.startup_seconds = time.perf_counter() - t_start
                report.executor = ex.description
                echo(f"sweep {sweep_id!r}: {report.cells} cells, {len(pending)} to run in {len(tasks)} "
                     f"tasks on {ex.description}; {report.skipped} already done")
                live: dict[int, Task] = {}
                counter = iter(range(10**9))

                def submit(t: Task) -> None:
                    tid = next(counter)
                    live[tid] = t
                    ex.submit(tid, task_settings(base, axes, t))

                t_compute = time.perf_counter()
                for t in tasks:
                    submit(t)
                bar = tqdm(total=len(pending), unit="cell", desc=sweep_id, disable=not progress, file=sys.stderr)
                try:
                    for tid, result, err in ex.completed():
                        task = live.pop(tid, None)
                        if task is None:
                            continue
                        if err is None:
                            ds, seconds = result
                            missing = missing_vector_dims(ds, axes, task)
                            if missing:  # re-plan: this task and every queued one that needs it
                                split |= missing
                                for other_id, other in [(tid, task)] + list(live.items()):
                                    if other_id != tid and not _needs_split(other, missing):
                                        continue
                                    if other_id != tid:
                                        ex.cancel(other_id)
                                        live.pop(other_id)
                                    for sub in plan_tasks(axes, set(other.cells), frozenset(split)):
                                        submit(sub)
                                continue
                            try:
                                cells = split_cells(ds, axes, task)
                            except CellError as exc:
                                err = f"CellError: {exc}"
                        if err is not None:
                            for c in task.cells:
                                coord.fail(c, err)
                                report.failed.append((describe_cell(axes, c), err))
                            bar.update(len(task.cells))
                            continue
                        for c, cell in cells.items():
                            try:
                                coord.write(c, cell, seconds, ds.attrs)
                                report.done += 1
                            except (ValueError, KeyError, TypeError) as exc:
                                msg = f"{type(exc).__name__}: {exc}"
                                coord.fail(c, msg)
                                report.failed.append((describe_cell(axes, c), msg))
                            bar.update(1)
                finally:
                    bar.close()
                    coord.close()
                    report.compute_seconds = time.perf_counter() - t_compute
        if coord.has_template:
            final = ss.status()
            report.pending = int((final == 0).sum())
            ss.finish({"end_time": now_iso(), "split_dims": json.dumps(sorted(split)),
                       "cells_done": int((final == STATUS_DONE).sum()), "cells_failed": int((final == STATUS_FAILED).sum())})
        else:
            report.pending = len(pending)
    report.wall_seconds = time.perf_counter() - t0
    return report


def sweep_status_line(ds: xr.Dataset) -> str:
    """``sweep over source_task, beta, seed: 12 cells: 11 done, 1 failed, 0 pending``."""
    st = np.asarray(ds["status"].values) if "status" in ds else np.array([])
    dims = [d for d in ds.attrs.get("grid_dims", []) if d in ds.dims]
    line = (f"sweep over {', '.join(dims) or '(selected cell)'}: {st.size} cells: {int((st == STATUS_DONE).sum())} done, "
            f"{int((st == STATUS_FAILED).sum())} failed, {int((st == 0).sum())} pending")
    if (st == STATUS_FAILED).any():
        line += "  (failed cells: see the `error` variable)"
    return line


def _needs_split(task: Task, dims: set[str]) -> bool:
    return ("seed" in dims and len(task.seeds) > 1) or ("beta" in dims and len(task.betas) > 1)


def _headline(metric_attrs: dict[str, Any], cell: xr.Dataset) -> list[str]:
    from .table import headline_vars
    ds = xr.Dataset(cell.data_vars, attrs={"headline": metric_attrs["headline"]} if metric_attrs.get("headline") else {})
    return [v for v in headline_vars(ds) if v not in BOOKKEEPING]


# ------------------------------------------------------------------------------------ CLI
def _grid_from(cfg: dict, items: Sequence[str]) -> dict[str, Any]:
    raw = flatten_grid_table(cfg.get("grid", {}) or {})
    cli_items = parse_grid_items(items)
    raw.update(cli_items)  # a --grid flag replaces the config's values for that key
    return raw


def _validate_base(base: Base) -> None:
    """Unknown plugin names or parameters stop the sweep before anything starts."""
    from .registry import get_entry
    checks = [("metrics", base.metric), ("decoders", base.decoder), ("schedules", base.schedule),
              *[("sources", s) for s in base.sources]]
    if str(base.divergence).lower() != "none":
        checks.append(("divergences", base.divergence))
    for kind, text in checks:
        spec = parse_spec(text)
        get_entry(kind, spec.name).resolve(spec.params)


@click.command("sweep")
@spec_options
@click.option("--grid", "-g", multiple=True,
              help="KEY=VALUES grid axis (repeatable): beta=0,5,15  seed=0-4  source.width=2,4  epochs=10,30")
@click.option("--store", type=click.Path(), help="results store (zarr) the sweep streams into (required)")
@click.option("--name", help="sweep id in the store [sweep-METRIC-<hash of the settings>]")
@click.option("--config", "-c", type=click.Path(exists=True, dir_okay=False),
              help="TOML file: run options, a [grid] table and a [sweep] table (executor, workers, ...)")
@click.option("--executor", type=click.Choice(["dask", "serial"]), help="dask (default) or serial (debugging)")
@click.option("--workers", type=int, help="LocalCluster worker processes, 1 thread each [2]")
@click.option("--scheduler", help="address of a running dask scheduler, e.g. tcp://SCHEDULER_HOST:8786")
@click.option("--retries", type=int, help="re-run a failing task up to K more times [0]")
@click.option("--dry-run", is_flag=True, help="print the cells and tasks, run nothing")
@fit_options
@click.pass_context
def sweep_cmd(cctx, metric, source, decoder, divergence, schedule, beta, seed, grid, store, name, config,
              executor, workers, scheduler, retries, dry_run, **fit_kw):
    """Run METRIC over a grid of settings, resumably, into one group of a results store.

    \b
    Example:
      usable sweep rine --source pid:task=rdnxor --decoder linear --epochs 5 \\
          --grid source.task=rdnxor,and,unq --grid beta=0,5,15 --grid seed=0-4 \\
          --store results/sweep.zarr --workers 2
    Re-running the same command skips the cells already done.
    """
    a = resolve_run_args(config, metric, source, decoder, divergence, schedule, beta, seed, store, fit_kw)
    cfg, opts = a["cfg"], dict(a["cfg"].get("sweep", {}) or {})
    unknown = set(opts) - {"executor", "workers", "scheduler", "retries", "name"}
    if unknown:
        raise SpecError(f"config [sweep]: unknown keys {sorted(unknown)}; known: executor, workers, scheduler, retries, name")
    if not a["metric"]:
        raise click.UsageError("give a METRIC (see `usable list metrics`) or a --config with metric = ...")
    if not a["store"]:
        raise click.UsageError("a sweep streams into a results store: give --store PATH (or store = ... in the config)")
    raw = _grid_from(cfg, grid)
    if not raw:
        raise click.UsageError("give at least one --grid KEY=VALUES (or a [grid] table in the config)")
    for key, given in (("seed", seed or cfg.get("seed")), ("beta", beta or cfg.get("beta"))):
        if key in raw and given:
            raise SpecError(f"{key} is on the grid and also given as --{key}/{key} = ...; give it in one place")
    for key in raw:
        if key in FIT_FIELDS and (fit_kw.get(key) is not None or key in cfg):
            raise SpecError(f"{key} is on the grid and also set as an option; give it in one place")
    div = a["divergence"]
    base = Base(metric=str(parse_spec(a["metric"])), sources=tuple(str(parse_spec(s)) for s in a["sources"]),
                decoder=str(parse_spec(a["decoder"])),
                divergence="none" if str(div).lower() == "none" else str(parse_spec(div)),
                schedule=str(parse_spec(a["schedule"])),
                betas=tuple(parse_float_list(a["betas"]) or [0.0]), seeds=tuple(parse_int_list(a["seeds"]) or [0]),
                fit=a["fit_config"])
    _validate_base(base)
    axes = build_axes(raw, base)
    name = name or cfg.get("name") or opts.get("name")
    if dry_run:
        tasks = plan_tasks(axes, set(all_cells(axes)))
        click.echo(f"sweep {name or default_sweep_id(base, axes)}: {len(all_cells(axes))} cells in {len(tasks)} tasks")
        for t in tasks:
            s = task_settings(base, axes, t)
            click.echo(f"  {len(t.cells):>4} cells  sources={' '.join(s['sources'])} decoder={s['decoder']} "
                       f"seeds={s['seeds']} betas={s['betas']}"
                       + "".join(f" {k}={s['fit'][k]}" for k in (ax.key for ax in axes) if k in FIT_FIELDS))
        return
    progress = a["fit_config"].progress
    report = run_sweep(
        a["store"], base, axes, name=name,
        executor=executor or opts.get("executor", "dask"),
        workers=workers or int(opts.get("workers", 2)),
        scheduler=scheduler or opts.get("scheduler"),
        retries=retries if retries is not None else int(opts.get("retries", 0)),
        progress=True if progress is None else progress)
    click.echo(f"sweep {report.sweep_id!r} in {report.store} ({report.executor})")
    click.echo(report.table())
    if report.failed:
        click.echo(f"{len(report.failed)} failed cells:", err=True)
        for cell, msg in report.failed:
            click.echo(f"  {cell}: {msg}", err=True)
        cctx.exit(1)
    if report.pending:
        click.echo(f"{report.pending} cells still pending", err=True)
        cctx.exit(1)
