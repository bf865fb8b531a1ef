"""Results store: many runs in one zarr (v3) store, one group per run, each an xarray Dataset.

A run becomes visible only when completely written: it is written as its own zarr store in a
staging folder beside the results store, then moved into place with one ``rename`` (atomic on a
POSIX filesystem). A crash mid-write leaves at most an orphan in the staging folder, never a
half run. ``xr.open_zarr(path, group=run_id, consolidated=False)`` reads any run directly (runs
are not consolidated at the store root, because runs from concurrent writers come and go).
"""
from __future__ import annotations

import contextlib
import json
import warnings
import os
import secrets
import shutil
import datetime as _dt
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import xarray as xr
import zarr

ZARR_FORMAT = 3


class StoreError(RuntimeError):
    pass


@contextlib.contextmanager
def quiet_zarr():
    """Silence zarr's notice that string arrays have no final v3 spec yet (we pin the format and
    read our own stores); real errors still raise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        warnings.filterwarnings("ignore", message=".*Consolidated metadata is currently not part.*")
        yield


def _clean_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe attrs: numpy scalars to Python, dicts to JSON text (netCDF can't hold dicts)."""
    out = {}
    for k, v in attrs.items():
        if isinstance(v, dict):
            v = json.dumps(v, sort_keys=True, default=str)
        elif isinstance(v, np.generic):
            v = v.item()
        elif isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, tuple):
            v = list(v)
        elif v is None:
            v = "none"
        out[k] = v
    return out


def prepare(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.copy()
    ds.attrs = _clean_attrs(ds.attrs)
    for name in list(ds.variables):
        ds[name].attrs = _clean_attrs(ds[name].attrs)
        if ds[name].dtype == object:  # variable-length strings: store as fixed-width unicode
            ds[name] = ds[name].astype(str)
    return ds


def ensure_store(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not (path / "zarr.json").exists():
        path.mkdir(parents=True, exist_ok=True)
        zarr.open_group(str(path), mode="a", zarr_format=ZARR_FORMAT)
    return path


def staging_dir(path: Path) -> Path:
    return path.parent / f".{path.name}.staging"


def new_run_id(prefix: str) -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in prefix)
    return f"{safe}-{stamp}-{secrets.token_hex(2)}"


def write_run(path: str | os.PathLike, ds: xr.Dataset, run_id: str | None = None) -> str:
    """Write ``ds`` as a new run; returns its id (the zarr group name)."""
    path = ensure_store(path)
    run_id = run_id or new_run_id(str(ds.attrs.get("metric", "run")).split(":")[0])
    if run_id.startswith((".", "_")) or "/" in run_id:
        raise StoreError(f"run id {run_id!r}: must not start with '.' or '_' or contain '/'")
    final = path / run_id
    if final.exists():
        raise StoreError(f"run {run_id!r} already exists in {path}; choose another --name")
    stage = staging_dir(path) / f"{run_id}-{secrets.token_hex(4)}"
    stage.parent.mkdir(parents=True, exist_ok=True)
    try:
        out = prepare(ds)
        out.attrs["run_id"] = run_id
        out.attrs["stored_time"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        with quiet_zarr():
            out.to_zarr(str(stage), mode="w", zarr_format=ZARR_FORMAT, consolidated=False)
        os.rename(stage, final)  # the commit: the run appears whole or not at all
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return run_id


def list_runs(path: str | os.PathLike) -> list[str]:
    path = Path(path)
    if not path.exists():
        raise StoreError(f"no results store at {path}")
    return sorted(p.name for p in path.iterdir()
                  if p.is_dir() and not p.name.startswith((".", "_")) and (p / "zarr.json").exists())


def open_run(path: str | os.PathLike, run_id: str) -> xr.Dataset:
    runs = list_runs(path)
    if run_id not in runs:
        import difflib
        close = difflib.get_close_matches(run_id, runs, n=3, cutoff=0.3)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise StoreError(f"no run {run_id!r} in {path}.{hint} `usable results ls {path}` lists them.")
    with quiet_zarr():
        return xr.open_zarr(str(path), group=run_id, consolidated=False)


class Results:
    """A view over the runs of one store: ``res.runs``, ``res[run_id]``, ``res.table()``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise StoreError(f"no results store at {self.path}")

    @property
    def runs(self) -> list[str]:
        return list_runs(self.path)

    def __getitem__(self, run_id: str) -> xr.Dataset:
        return open_run(self.path, run_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)

    def attrs(self, run_id: str) -> dict[str, Any]:
        meta = json.loads((self.path / run_id / "zarr.json").read_text())
        return meta.get("attributes", {})

    def table(self) -> pd.DataFrame:
        rows = []
        for r in self.runs:
            a = self.attrs(r)
            rows.append({"run": r, "metric": a.get("metric", "?"), "sources": " ".join(a.get("sources", []) or []),
                         "decoder": a.get("decoder", ""), "divergence": a.get("divergence", ""),
                         "kind": a.get("kind", "run"), "end_time": a.get("end_time", "")})
        return pd.DataFrame(rows, columns=["run", "metric", "sources", "decoder", "divergence", "kind", "end_time"])

    def latest(self, metric: str | None = None) -> xr.Dataset:
        t = self.table()
        if metric:
            t = t[t.metric.str.split(":").str[0] == metric]
        if t.empty:
            raise StoreError(f"no {metric or ''} runs in {self.path}")
        return self[t.sort_values("end_time").run.iloc[-1]]

    def __repr__(self) -> str:
        return f"Results({str(self.path)!r}, runs={self.runs})"


def open_results(path: str | os.PathLike) -> Results:
    """Open a results store for querying: ``open_results("results/demo.zarr").runs``."""
    return Results(path)
