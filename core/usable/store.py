"""Results store: many runs in one zarr (v3) store, one group per run, each an xarray Dataset.

A run becomes visible only when completely written: it is written as its own zarr group in the
store's ``.staging`` folder, then moved into place with one ``rename`` (atomic on a POSIX
filesystem). A crash mid-write leaves at most an orphan in ``.staging``, removed by the next
writer once its lock shows the writer is gone; nothing is ever written outside the store.
``xr.open_zarr(path, group=run_id, consolidated=False)`` reads any run directly (runs are not
consolidated at the store root, because runs from concurrent writers come and go).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import difflib
import fcntl
import json
import os
import re
import secrets
import shutil
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

from .errors import StoreError

ZARR_FORMAT = 3
STAGING = ".staging"
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}")


@contextlib.contextmanager
def quiet_zarr():
    """Silence zarr's notice that string arrays have no final v3 spec yet (we pin the format and
    read our own stores); real errors still raise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        warnings.filterwarnings("ignore", message=".*Consolidated metadata is currently not part.*")
        yield


def clean_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe attrs: numpy scalars to Python, dicts to JSON text (netCDF can't hold dicts)."""
    import numpy as np
    out = {}
    for k, v in attrs.items():
        if isinstance(v, dict):
            v = json.dumps(v, sort_keys=True, default=str)
        elif isinstance(v, np.generic):
            v = v.item()
        elif isinstance(v, (np.ndarray, tuple)):
            v = list(v.tolist() if isinstance(v, np.ndarray) else v)
        elif v is None:
            v = "none"
        out[k] = v
    return out


def storable(ds):
    """A copy of ``ds`` that zarr and netCDF can hold: clean attrs, fixed-width strings."""
    ds = ds.copy()
    ds.attrs = clean_attrs(ds.attrs)
    for name in list(ds.variables):
        ds[name].attrs = clean_attrs(ds[name].attrs)
        if ds[name].dtype == object:
            ds[name] = ds[name].astype(str)
    return ds


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id) or run_id == "zarr.json":
        raise StoreError(f"run name {run_id!r}: use 1-200 letters, digits, '_', '-', '.' or '+', starting with a "
                         "letter or digit (no '/', no spaces or newlines)")
    return run_id


def store_path(path: str | os.PathLike) -> Path:
    """Check, before any work, that ``path`` can be (or is) a results store; ``~`` is expanded."""
    path = Path(os.path.expanduser(str(path))).absolute()
    if path.parent == path:
        raise StoreError(f"--store {path}: a filesystem root cannot be a results store; name a folder, e.g. results/r.zarr")
    if path.exists() and not path.is_dir():
        raise StoreError(f"--store {path} is a file, not a results store; give a new path or an existing store")
    if path.is_dir() and not (path / "zarr.json").exists() and any(path.iterdir()):
        raise StoreError(f"--store {path} is a folder with other content, not a results store; give a new path")
    probe = path if path.exists() else next(p for p in path.parents if p.exists())
    if not os.access(probe, os.W_OK | os.X_OK):
        raise StoreError(f"--store {path}: {probe} is not writable; choose a store where you can write")
    return path


class Results:
    """A results store: ``res.runs``, ``res[run_id]``, ``res.table()``, and crash-safe writes."""

    def __init__(self, path: str | os.PathLike, create: bool = False):
        self.path = store_path(path) if create else Path(os.path.expanduser(str(path)))
        if create and not (self.path / "zarr.json").exists():
            import zarr
            self.path.mkdir(parents=True, exist_ok=True)
            zarr.open_group(str(self.path), mode="a", zarr_format=ZARR_FORMAT)
        if not (self.path / "zarr.json").is_file():
            what = "does not exist" if not self.path.exists() else "is not a results store (no zarr.json)"
            raise StoreError(f"{self.path} {what}; `usable run ... --store PATH` creates one")

    @property
    def runs(self) -> list[str]:
        return sorted(p.name for p in self.path.iterdir()
                      if p.is_dir() and _RUN_ID.fullmatch(p.name) and (p / "zarr.json").exists())

    def __getitem__(self, run_id: str):
        import xarray as xr
        runs = self.runs
        if run_id not in runs:
            close = difflib.get_close_matches(run_id, runs, n=3, cutoff=0.3)
            hint = f" Close matches: {', '.join(close)}." if close else ""
            raise StoreError(f"no run {run_id!r} in {self.path}.{hint} `usable results ls {self.path}` lists them.")
        self.attrs(run_id)  # a corrupt run names its file here, not deep inside zarr
        with quiet_zarr():
            return xr.open_zarr(str(self.path), group=run_id, consolidated=False)

    def __iter__(self) -> Iterator[str]:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)

    def attrs(self, run_id: str) -> dict[str, Any]:
        meta = self.path / run_id / "zarr.json"
        try:
            return json.loads(meta.read_text()).get("attributes", {})
        except (OSError, ValueError) as exc:
            raise StoreError(f"run {run_id!r}: its metadata {meta} is unreadable ({exc}); move or delete that run") from None

    def latest_run(self, metric: str | None = None) -> str:
        runs = [(self.attrs(r).get("end_time", ""), r) for r in self.runs
                if metric is None or str(self.attrs(r).get("metric", "")).split(":")[0] == metric]
        if not runs:
            raise StoreError(f"{self.path} holds no {metric + ' ' if metric else ''}runs")
        return max(runs)[1]

    def to_dataframe(self, where: str | Sequence[str] = (), *, values: bool = True):
        """One row per run (those passing ``where``, as ``usable results ls --where``): its settings
        flattened into columns and, with ``values``, each headline value's mean over seeds and sd.
        The columns of ``usable results ls STORE --json``; see ``query_runs``."""
        return query_runs([self], where, values)

    def rows(self, runs: Sequence[str] | None = None, values: bool = True) -> list[dict[str, Any]]:
        """The table's rows for ``runs`` (default all); a damaged run gives a row saying so."""
        return [self._row(r, values) for r in (self.runs if runs is None else runs)]

    def _row(self, run_id: str, values: bool) -> dict[str, Any]:
        try:
            a = self.attrs(run_id)
        except StoreError as exc:  # one damaged run must not hide the others
            return {"store": str(self.path), "run": run_id, "kind": "unreadable", "metric": str(exc)}
        sources = list(a.get("sources", []) or [])
        row = {"store": str(self.path), "run": run_id, "kind": a.get("kind", "run"), "metric": a.get("metric", "?"),
               "sources": " ".join(sources), **{f"source{i + 1}": s for i, s in enumerate(sources)},
               **{k: a.get(k, "") for k in ("decoder", "divergence", "schedule", "betas", "seeds")}}
        try:
            row.update(json.loads(a.get("fit", "{}")))
        except ValueError:
            pass
        row["end_time"] = a.get("end_time", "")
        if values:
            try:
                row.update(_headline_values(self[run_id]))
            except Exception as exc:  # a damaged array: say so in the row, list the rest
                row["kind"], row["metric"] = "unreadable", f"{row['metric']} ({type(exc).__name__}: {exc})"
        return row

    def table(self):
        """The runs with their metric and specs (``to_dataframe`` without the values)."""
        cols = ["run", "metric", "sources", "decoder", "divergence", "kind", "end_time"]
        return self.to_dataframe(values=False)[cols]

    # ------------------------------------------------------------------------ crash-safe writes
    @contextlib.contextmanager
    def lock(self, name: str):
        """An exclusive lock ``.staging/NAME.lock`` (flock: released by the kernel if the process
        dies); raises StoreError at once if another process holds it. The file goes on release."""
        folder, fh = self.path / STAGING, None
        path = folder / f"{name}.lock"
        for _ in range(20):  # another writer may remove the empty folder between mkdir and open
            folder.mkdir(exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                fh = open(path, "a")
                break
        busy = StoreError(f"another process is writing {name!r} in {self.path}; wait for it, or use another name")
        held = False
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise busy from None
            # the holder before us may have unlinked the file we opened: then we hold nothing
            if not path.exists() or os.stat(path).st_ino != os.fstat(fh.fileno()).st_ino:
                raise busy
            held = True
            yield
        finally:
            if held:
                with contextlib.suppress(OSError):
                    path.unlink()
            fh.close()
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: concurrent writers keep theirs

    @contextlib.contextmanager
    def staged(self, name: str) -> Iterator[Path]:
        """A fresh folder ``.staging/NAME.TOKEN.part`` to write into, removed when the block ends
        (commit it first to keep it). Stale parts of writers that died go first."""
        self.clean_staging()
        stage = self.path / STAGING / f"{name}.{secrets.token_hex(4)}.part"
        with self.lock(stage.name):
            try:
                yield stage
            finally:
                shutil.rmtree(stage, ignore_errors=True)

    def commit(self, stage: Path, run_id: str, replace: bool = False) -> None:
        """Move a staged group into place with one rename; ``replace`` swaps out an existing one
        (moved aside as ``.staging/RUN.TOKEN.old`` for the moment between the two renames)."""
        final = self.path / run_id
        if final.exists() and not replace:
            raise StoreError(f"run {run_id!r} already exists in {self.path}; choose another --name")
        if final.exists():
            old = self.path / STAGING / f"{run_id}.{secrets.token_hex(4)}.old"
            os.rename(final, old)
            os.rename(stage, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(stage, final)

    def clean_staging(self) -> None:
        """Remove the staged parts of writers that died (their lock is free)."""
        folder = self.path / STAGING
        for part in (folder.glob("*.part") if folder.is_dir() else []):
            with contextlib.suppress(StoreError, OSError):
                with self.lock(part.name):
                    shutil.rmtree(part)

    def write_run(self, ds, run_id: str | None = None) -> str:
        """Write ``ds`` as a new run; returns its id (the zarr group name)."""
        run_id = check_run_id(run_id or new_run_id(str(ds.attrs.get("metric", "run")).split(":")[0]))
        if (self.path / run_id).exists():
            raise StoreError(f"run {run_id!r} already exists in {self.path}; choose another --name")
        out = storable(ds)
        out.attrs["run_id"] = run_id
        out.attrs["stored_time"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        with self.staged(run_id) as stage:
            try:
                with quiet_zarr():
                    out.to_zarr(str(stage), mode="w", zarr_format=ZARR_FORMAT, consolidated=False)
            except OSError as exc:
                raise StoreError(f"writing run {run_id!r} into {self.path} failed: {exc.strerror or exc}") from None
            self.commit(stage, run_id)
        return run_id

    def __repr__(self) -> str:
        return f"Results({str(self.path)!r}, runs={self.runs})"


# Columns of ``summarise`` that describe a value rather than locate it: each becomes a column
# ``"var[dim=x] STAT"`` beside the mean (ci_*: a stored held-out interval, where a metric has one).
VALUE_STATS = ("sd", "ci_low", "ci_high")


def _headline_values(ds) -> dict[str, float]:
    """Each headline variable's mean over seeds as ``{"var[dim=x]": mean}``, with ``"var[dim=x] sd"``
    (and ``ci_low``/``ci_high``) beside it where known, for up to 8 coordinates per variable."""
    from .table import summarise
    df = summarise(ds)
    coords = [c for c in df.columns if c not in ("variable", "mean", "units", *VALUE_STATS) and not c.startswith("n_")]
    out: dict[str, float] = {}
    for v, rows in df.groupby("variable", sort=False):
        for _, row in rows.head(8).iterrows():
            key = ",".join(f"{c}={row[c]}" for c in coords if str(row[c]) != "nan")
            name = f"{v}[{key}]" if key else v
            out[name] = float(row["mean"])
            for stat in VALUE_STATS:
                if stat in row and row[stat] == row[stat]:  # not NaN: e.g. an sd needs several seeds
                    out[f"{name} {stat}"] = float(row[stat])
    return out


def settings_columns(frame_columns) -> list[str]:
    """The table's settings columns in order: where and what, then every training setting."""
    from .runspec import FitConfig
    sources = sorted((c for c in frame_columns if re.fullmatch(r"source\d+", str(c))), key=lambda c: int(c[6:]))
    return ["store", "run", "kind", "metric", "sources", *sources, "decoder", "divergence", "schedule", "betas",
            "seeds", *FitConfig.__dataclass_fields__, "end_time"]


def _frame(rows: list[dict[str, Any]]):
    """Rows as a DataFrame with the settings columns first (all of them, even for no rows)."""
    import pandas as pd
    df = pd.DataFrame(rows)
    settings = settings_columns(df.columns)
    return df.reindex(columns=settings + [c for c in df.columns if c not in settings])


def query_runs(stores, where: str | Sequence[str] = (), values: bool = True):
    """The runs of one or more stores (paths or Results) passing every ``where`` condition
    (``"metric=rine"``, ``"beta>=5"``, ``"decoder~mlp*"``; see ``usable.query``), as one pandas
    DataFrame: one row per run, its settings and each headline value's mean and sd over seeds.

    Settings filters run first, so headline values are read only for runs that can still match;
    value columns that no remaining run has are left out."""
    from .query import apply_where, parse_where
    stores = [s if isinstance(s, Results) else Results(s)
              for s in ([stores] if isinstance(stores, (str, os.PathLike, Results)) else stores)]
    conditions = [parse_where(w) for w in ([where] if isinstance(where, str) else where)]  # one condition alone
    df = _frame([row for s in stores for row in s.rows(values=False)])
    now = [c for c in conditions if c.column in df.columns]
    df = apply_where(df, now)
    if values and not df.empty:
        by_store = {str(s.path): s for s in stores}
        df = _frame([row for path, runs in df.groupby("store", sort=False)["run"]
                     for row in by_store[path].rows(list(runs), values=True)])
    df = apply_where(df, [c for c in conditions if c not in now])
    settings = settings_columns(df.columns)
    empty = [c for c in df.columns if c not in settings and df[c].isna().all()]
    return df.drop(columns=empty)


def new_run_id(prefix: str) -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in prefix) or "run"
    return f"{safe}-{stamp}-{secrets.token_hex(4)}"


def open_results(path: str | os.PathLike) -> Results:
    """Open a results store for querying: ``open_results("results/demo.zarr").runs``."""
    return Results(path)


def write_run(path: str | os.PathLike, ds, run_id: str | None = None) -> str:
    """Add ``ds`` to the store at ``path`` (created if needed) as a new run; returns its id."""
    return Results(path, create=True).write_run(ds, run_id)
