"""The coordinator of a sweep: plans tasks, hands them to an executor, and is the only writer.

It keeps a bounded number of tasks in flight; the first result that comes back fixes the
template's shapes (all cells of a grid share the metric's own dims), the template is staged and
renamed into place, and from then on each finished cell is written into its own region and only
then marked done. Re-running the same command skips done cells; a grid that grows along a dim
regrows the stored sweep; one that drops stored values is an error. See docs/sweeps.md.
"""
from __future__ import annotations

import json
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import xarray as xr

from usable import RunSpec, SpecError, environment_attrs, headline_vars, now_iso, progress

from .executors import open_executor
from .grid import Axis, Task, all_cells, default_sweep_id, definition, describe_cell, plan_tasks
from .store import BOOKKEEPING, STATUS_DONE, STATUS_FAILED, SweepStore, normalize_dtype
from .worker import run_task

# Provenance attrs a cell's Dataset carries that differ from cell to cell; the sweep stores the
# base settings instead (and the grid says what changed).
CELL_ATTRS = ("metric", "sources", "decoder", "divergence", "schedule", "betas", "seeds", "fit",
              "start_time", "end_time", "command_line")


class CellError(SpecError):
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
        c = xr.Dataset({v: normalize_dtype(c[v]).transpose(*grid_dims, ...) for v in c.data_vars},
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


def sweep_attrs(base: RunSpec, axes: Sequence[Axis], defn: dict[str, Any]) -> dict[str, Any]:
    grid = {a.key: a.values for a in axes}
    return {**environment_attrs(), **base.to_attrs(),
            "betas": [float(b) for b in grid.get("beta", base.betas)],
            "seeds": [int(s) for s in grid.get("seed", base.seeds)],
            "kind": "sweep",
            "grid": json.dumps({a.dim: {"key": a.key, "values": list(a.values)} for a in axes}),
            "grid_dims": [a.dim for a in axes],
            "sweep_definition": json.dumps(defn, sort_keys=True, default=str),
            "start_time": now_iso(), "end_time": now_iso()}


def _needs_split(task: Task, dims: set[str]) -> bool:
    return ("seed" in dims and len(task.seeds) > 1) or ("beta" in dims and len(task.betas) > 1)


def _headline(metric_attrs: dict[str, Any], cell: xr.Dataset) -> list[str]:
    ds = xr.Dataset(cell.data_vars, attrs={"headline": metric_attrs["headline"]} if metric_attrs.get("headline") else {})
    return [v for v in headline_vars(ds) if v not in BOOKKEEPING]


def run_sweep(store: str, base: RunSpec, axes: Sequence[Axis], *, name: str | None = None,
              executor: str = "dask", workers: int = 2, scheduler: str | None = None, retries: int = 0,
              show_progress: bool = True, echo: Callable[[str], Any] = print) -> SweepReport:
    """Run (or resume) a sweep into ``store``; returns the counts for the summary table."""
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
        queue = deque((t, 1) for t in plan_tasks(axes, pending, frozenset(split)))  # (task, attempt)
        report.tasks = len(queue)
        coord = Coordinator(ss, axes, attrs)
        if not queue:
            echo(f"sweep {sweep_id!r}: all {report.cells} cells already done in {store}")
        else:
            t_start = time.perf_counter()
            with open_executor(executor, workers, scheduler, echo) as (ex, description, max_in_flight):
                report.startup_seconds = time.perf_counter() - t_start
                report.executor = description
                echo(f"sweep {sweep_id!r}: {report.cells} cells, {len(pending)} to run in {len(queue)} "
                     f"tasks on {description}; {report.skipped} already done")
                t_compute = time.perf_counter()
                in_flight: dict = {}
                bar = progress(total=len(pending), desc=sweep_id, enabled=show_progress, unit="cell")

                def fill():
                    while queue and len(in_flight) < max_in_flight:
                        t, attempt = queue.popleft()
                        in_flight[ex.submit(run_task, t.spec(base, axes))] = (t, attempt)
                try:
                    fill()
                    while in_flight:
                        done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                        for fut in done:
                            task, attempt = in_flight.pop(fut)
                            try:
                                ds, seconds = fut.result()
                                err = None
                            except Exception as exc:  # one task's failure must not stop the sweep
                                err = f"{type(exc).__name__}: {exc}"
                            if err is not None and attempt <= retries:
                                queue.appendleft((task, attempt + 1))
                                continue
                            if err is not None and retries:
                                err += f" (after {retries + 1} attempts)"
                            if err is None:
                                missing = missing_vector_dims(ds, axes, task)
                                if missing:  # re-plan: this task and every queued one that needs it
                                    split |= missing
                                    waiting = [task] + [t for t, _ in queue]
                                    queue.clear()
                                    for t in waiting:
                                        again = t is task or _needs_split(t, missing)
                                        queue.extend((sub, 1) for sub in (plan_tasks(axes, set(t.cells), frozenset(split))
                                                                          if again else [t]))
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
                        fill()
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
