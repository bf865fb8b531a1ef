"""A sweep in the results store: a run group written as a template first, then cell by cell.

Layout: the group holds the metric's variables with the grid dims in front (chunks of one cell
along every grid dim, whole along the metric's own dims), plus per-cell bookkeeping:
``status`` (0 pending, 1 done, 2 failed), ``error`` (the failure message), ``written_time``
(unix time the cell's data was committed) and ``task_seconds`` (the task's compute time).

Crash safety, all of it from one coordinator process per sweep (the store's lock enforces that):
* metadata is never consolidated (as for single runs), so nothing can go stale;
* the template (and any regrown copy) is written in the store's staging folder and renamed into
  place (``usable.Results.staged`` / ``commit``), so the group always appears whole;
* a cell's data is written into its own chunks first and its ``status`` chunk only afterwards.
  zarr's local store writes every chunk through a temporary file and a rename, so a kill leaves
  each chunk old or new, never torn, and a cell whose status is done has all of its data.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import warnings
from typing import Any, Sequence

import numpy as np
import xarray as xr
import zarr

from usable import ZARR_FORMAT, Results, SpecError, StoreError, clean_attrs, quiet_zarr, require

from .grid import Axis

STATUS_PENDING, STATUS_DONE, STATUS_FAILED = 0, 1, 2
# Bookkeeping variables the sweep adds beside the metric's own (per cell, over the grid dims).
BOOKKEEPING = ("status", "error", "written_time", "task_seconds")
STATUS_ATTRS = {"long_name": "cell status", "units": "1", "flag_values": [STATUS_DONE, STATUS_FAILED, STATUS_PENDING],
                "flag_meanings": "done failed pending"}


class SweepConflict(SpecError):
    """The grid or settings of a command do not match the sweep already in the store."""


def _fill(dtype: np.dtype):
    if dtype.kind in "OUST":
        return ""
    if dtype.kind == "M":
        return np.datetime64("NaT")
    return np.nan


def normalize_dtype(da: xr.DataArray) -> xr.DataArray:
    """Every stored variable must be able to hold "not yet computed": ints and bools become
    float64 (NaN), strings become variable-length text ("")."""
    kind = da.dtype.kind
    if kind in "biu":
        return da.astype("float64")
    if kind in "UST":
        return da.astype(object)
    if kind == "M":  # stored as ISO text: NaN-free "not computed" is ""
        return da.dt.strftime("%Y-%m-%dT%H:%M:%S").astype(object)
    if kind == "m":
        return (da / np.timedelta64(1, "s")).astype("float64")
    return da


def coord_array(values: Sequence) -> np.ndarray:
    arr = np.asarray(list(values))
    return arr.astype(object) if arr.dtype.kind in "UST" else arr


class SweepStore:
    def __init__(self, path: str | os.PathLike, sweep_id: str):
        self.results = Results(path, create=True)
        self.path = self.results.path
        if sweep_id.startswith((".", "_")) or "/" in sweep_id or not sweep_id.strip():
            raise SpecError(f"sweep name {sweep_id!r}: must not start with '.' or '_' or contain '/'")
        self.sweep_id = sweep_id
        self.group = self.path / sweep_id
        self._zgroup, self._arrays = None, {}

    # -------------------------------------------------------------------------------- locking
    @contextlib.contextmanager
    def lock(self):
        """One coordinator per sweep (the store's flock on the sweep's name)."""
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(self.results.lock(f"sweep-{self.sweep_id}"))
            except StoreError:
                raise SweepConflict(f"another process is running sweep {self.sweep_id!r} in {self.path}; "
                                    "wait for it, or give this one another --name") from None
            self._recover()
            yield self

    def _recover(self) -> None:
        """Undo a regrow that was killed between its two renames (old moved out, new not in)."""
        staging = self.path / ".staging"
        olds = sorted(staging.glob(f"{self.sweep_id}.*.old"), key=lambda p: p.stat().st_mtime) if staging.is_dir() else []
        if olds and not self.group.exists():
            os.rename(olds.pop(), self.group)
        for p in olds:
            shutil.rmtree(p, ignore_errors=True)

    # -------------------------------------------------------------------------------- reading
    def exists(self) -> bool:
        return (self.group / "zarr.json").exists()

    def open(self) -> xr.Dataset:
        with quiet_zarr():
            return xr.open_zarr(str(self.path), group=self.sweep_id, consolidated=False)

    def attrs(self) -> dict[str, Any]:
        return dict(zarr.open_group(str(self.group), mode="r").attrs)

    def status(self) -> np.ndarray:
        return np.asarray(zarr.open_group(str(self.group), mode="r")["status"][...])

    def variables(self) -> set[str]:
        return set(zarr.open_group(str(self.group), mode="r").array_keys())

    def check(self, axes: Sequence[Axis], definition: dict[str, Any]) -> dict[str, list]:
        """Compare a command with the stored sweep: returns the grid dims that must grow (dim ->
        new values); raises SweepConflict for anything else that differs."""
        attrs = self.attrs()
        if attrs.get("kind") != "sweep":
            raise SweepConflict(f"{self.sweep_id!r} in {self.path} is a single run, not a sweep; "
                                "give the sweep another --name")
        stored = json.loads(attrs.get("sweep_definition", "{}"))
        diffs = [k for k in sorted(set(stored) | set(definition)) if stored.get(k) != definition.get(k)]
        if diffs:
            lines = "; ".join(f"{k}: stored {stored.get(k)!r}, now {definition.get(k)!r}" for k in diffs)
            raise SweepConflict(f"sweep {self.sweep_id!r} in {self.path} was run with other settings ({lines}). "
                                "Re-run it with the stored settings, or give a new --name for a new sweep.")
        ds = self.open()
        grow = {}
        for a in axes:
            old = [_py(v) for v in ds[a.dim].values]
            new = [_py(v) for v in a.values]
            dropped = [v for v in old if v not in new]
            if dropped:
                raise SweepConflict(
                    f"--grid {a.key}: sweep {self.sweep_id!r} already holds {a.dim}={old}; the new grid "
                    f"{new} drops {dropped}. A stored grid can only grow: keep those values, or give "
                    "a new --name for a separate sweep.")
            if new != old:
                grow[a.dim] = list(a.values)
        return grow

    # -------------------------------------------------------------------------------- writing
    def _stage_and_swap(self, ds: xr.Dataset, encoding: dict, compute: bool = True) -> None:
        """Write ``ds`` as the whole group: staged, then renamed in (the old one moved aside)."""
        self._zgroup, self._arrays = None, {}
        with self.results.staged(self.sweep_id) as stage:
            with quiet_zarr(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*dask array with dtype=object.*")
                ds.to_zarr(str(stage), mode="w", zarr_format=ZARR_FORMAT, consolidated=False, encoding=encoding,
                           compute=compute)
            self.results.commit(stage, self.sweep_id, replace=True)

    def create(self, axes: Sequence[Axis], cell: xr.Dataset | None, attrs: dict[str, Any]) -> None:
        """Write the template: every variable of ``cell`` (one cell, grid dims of length 1) over
        the whole grid and the bookkeeping variables, as metadata only (``to_zarr(compute=False)``):
        a chunk not yet written reads as its fill value, NaN / "" / pending. Measured 2-4x faster
        than writing every NaN chunk for 120 cells (benchmarks/sweep_writes.py), and its cost does
        not grow with the grid."""
        ds = template(axes, cell, lazy=True)
        ds.attrs = clean_attrs({**attrs, "run_id": self.sweep_id, "kind": "sweep"})
        for v in ds.variables.values():
            v.attrs = clean_attrs(v.attrs)
        self._stage_and_swap(ds, encodings(ds, axes), compute=False)

    def regrow(self, axes: Sequence[Axis], new_coords: dict[str, list]) -> None:
        """Grow the stored sweep along grid dims (new grid values) or the metric's own dims (a
        cell with more epochs, say): copy, reindex with "not computed" fills, swap in."""
        ds = self.open().load()
        ds = ds.assign({v: ds[v].astype(object) for v in ds.data_vars if ds[v].dtype.kind in "UST"})
        fills = {v: (STATUS_PENDING if v == "status" else _fill(ds[v].dtype)) for v in ds.data_vars}
        ds = ds.reindex({d: coord_array(v) for d, v in new_coords.items()}, fill_value=fills)
        ds["status"] = ds["status"].astype("int8")
        for v in ds.variables.values():
            v.encoding = {}
        self._stage_and_swap(ds, encodings(ds, axes))

    def add_variables(self, axes: Sequence[Axis], cell: xr.Dataset) -> None:
        """A cell brought variables the group lacks (e.g. the template came from failures only)."""
        have = self.variables()
        new = [v for v in cell.data_vars if v not in have]
        if not new:
            return
        ds = self.open().load()
        full = template(axes, cell[new]).drop_vars(list(BOOKKEEPING))
        merged = ds.drop_vars([c for c in ds.coords if c in full.coords]).merge(full)
        merged.attrs = ds.attrs
        for v in merged.variables.values():
            v.encoding = {}
        self._stage_and_swap(merged, encodings(merged, axes))

    def _group(self):
        if self._zgroup is None:
            self._zgroup = zarr.open_group(str(self.group), mode="r+")
        return self._zgroup

    def _put(self, name: str, index: tuple[int, ...], values: np.ndarray, dims: Sequence[str]) -> None:
        """Write one cell of one variable straight into its chunk (one atomic file write)."""
        if name not in self._arrays:  # opening an array reads its metadata: once per variable
            self._arrays[name] = self._group()[name]
        arr = self._arrays[name]
        stored = list(arr.metadata.dimension_names or dims)
        if list(dims) != stored:
            values = np.moveaxis(values, [list(dims).index(d) for d in stored], range(len(stored)))
        n_grid = len(index)
        arr[tuple(slice(i, i + 1) for i in index) + (slice(None),) * (arr.ndim - n_grid)] = values

    def write_cell(self, axes: Sequence[Axis], index: tuple[int, ...], cell: xr.Dataset,
                   seconds: float) -> None:
        """Data first, then status=done: the order that makes a kill lose nothing.

        Cells go straight through zarr (a region write per variable) rather than through
        ``to_zarr(region=...)``: the same bytes, measured 1.7-2.9x faster per RINE-shaped cell
        (benchmarks/sweep_writes.py), and the write order is ours to choose."""
        with quiet_zarr():
            for name, da in cell.data_vars.items():
                self._put(name, index, np.asarray(da.values), da.dims)
            self._mark(axes, index, STATUS_DONE, "", seconds)

    def mark_failed(self, axes: Sequence[Axis], index: tuple[int, ...], message: str) -> None:
        with quiet_zarr():
            self._mark(axes, index, STATUS_FAILED, message, np.nan)

    def _mark(self, axes, index, status: int, message: str, seconds: float) -> None:
        shape = (1,) * len(axes)
        dims = [a.dim for a in axes]
        written = time.time() if status == STATUS_DONE else np.nan
        self._put("written_time", index, np.full(shape, written), dims)
        self._put("task_seconds", index, np.full(shape, seconds, dtype=float), dims)
        self._put("error", index, np.full(shape, message, dtype=object), dims)
        self._put("status", index, np.full(shape, status, dtype="int8"), dims)  # last: the commit

    def finish(self, attrs: dict[str, Any]) -> None:
        with quiet_zarr():
            zarr.open_group(str(self.group), mode="r+").attrs.update(clean_attrs(attrs))


def _py(v):
    return v.item() if isinstance(v, np.generic) else (str(v) if isinstance(v, str) else v)


def template(axes: Sequence[Axis], cell: xr.Dataset | None, lazy: bool = False) -> xr.Dataset:
    """Every variable over the whole grid, filled with "not computed"; ``lazy``: as dask arrays
    (chunks of one cell) that ``to_zarr(compute=False)`` stores as metadata only."""
    full = np.full
    if lazy:
        dsk = require("dask.array", extra="sweep", what="usable sweep")

        def full(shape, value, dtype=None):
            grid = len(axes)
            return dsk.full(shape, value, dtype=dtype, chunks=(1,) * grid + tuple(shape[grid:]))
    dims = [a.dim for a in axes]
    sizes = [len(a.values) for a in axes]
    coords = {a.dim: coord_array(a.values) for a in axes}
    data_vars = {}
    if cell is not None:
        for name, c in cell.coords.items():
            if name not in coords and name in cell.dims:
                coords[name] = coord_array(c.values)
        for name, da in cell.data_vars.items():
            own = [d for d in da.dims if d not in dims]
            shape = sizes + [cell.sizes[d] for d in own]
            data_vars[name] = xr.Variable(dims + own, full(shape, _fill(da.dtype), dtype=da.dtype), da.attrs)
    data_vars.update({
        "status": xr.Variable(dims, full(sizes, STATUS_PENDING, dtype="int8"), STATUS_ATTRS),
        "error": xr.Variable(dims, full(sizes, "", dtype=object),
                             {"long_name": "error message of a failed cell", "units": "1"}),
        "written_time": xr.Variable(dims, full(sizes, np.nan),
                                    {"long_name": "unix time (seconds since 1970-01-01 UTC) the cell's data was committed", "units": "s"}),
        "task_seconds": xr.Variable(dims, full(sizes, np.nan),
                                    {"long_name": "compute time of the task that produced the cell", "units": "s"}),
    })
    return xr.Dataset(data_vars, coords=coords)


def encodings(ds: xr.Dataset, axes: Sequence[Axis]) -> dict[str, dict]:
    """Chunks of one cell along the grid dims, whole along the metric's own dims."""
    grid = {a.dim for a in axes}
    out = {}
    for name, v in ds.data_vars.items():
        out[name] = {"chunks": tuple(1 if d in grid else max(1, n) for d, n in zip(v.dims, v.shape))}
    return out


