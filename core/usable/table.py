"""Readable terminal tables of a result Dataset: mean (sd) over seeds for the headline variables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

SKIP_DIMS = ("sample", "epoch", "step")


def headline_vars(ds: xr.Dataset) -> list[str]:
    named = ds.attrs.get("headline")
    if named:
        names = named if isinstance(named, (list, tuple)) else [n.strip() for n in str(named).split(",")]
        return [n for n in names if n in ds.data_vars]
    return [v for v in ds.data_vars
            if not any(d in ds[v].dims for d in SKIP_DIMS) and ds[v].size <= 400 and ds[v].dtype.kind in "fiu"]


def summarise(ds: xr.Dataset, variables: list[str] | None = None, over: str = "seed") -> pd.DataFrame:
    """One row per variable × remaining coordinate combination: mean, sd and count over ``over``."""
    rows = []
    for v in variables or headline_vars(ds):
        da = ds[v].load()
        if da.dtype.kind not in "fiu":
            continue
        if over in da.dims:
            mean, sd = da.mean(over, skipna=True), da.std(over, ddof=1, skipna=True) if da.sizes[over] > 1 else None
            n = int(da.sizes[over])
        else:
            mean, sd, n = da, None, 1
        df = mean.to_dataframe(name="mean") if mean.dims else pd.DataFrame({"mean": [float(mean)]})
        df["sd"] = (sd.to_dataframe(name="sd")["sd"].values if (sd is not None and sd.dims)
                    else (float(sd) if sd is not None else np.nan))
        df = df.reset_index()
        keep = [c for c in df.columns if c in mean.dims or c in ("mean", "sd")]
        df = df[keep]
        df = with_interval(df, ds, v, list(mean.dims))
        df.insert(0, "variable", v)
        df["units"] = da.attrs.get("units", "")
        df["n_" + over] = n
        rows.append(df)
    if not rows:
        return pd.DataFrame()
    out = pd.concat(rows, ignore_index=True)
    tail = ["mean", "sd", *[c for c in ("ci_low", "ci_high") if c in out.columns], "units", "n_" + over]
    front = ["variable"] + [c for c in out.columns if c not in ("variable", *tail)]
    return out[front + tail]


def with_interval(df: pd.DataFrame, ds: xr.Dataset, v: str, dims: list[str]) -> pd.DataFrame:
    """Columns ci_low, ci_high from a stored ``<v>_ci`` (dim ``ci``: low, high) where there is one."""
    if f"{v}_ci" not in ds or "ci" not in ds[f"{v}_ci"].dims:
        return df
    ci = ds[f"{v}_ci"].load()
    if set(ci.dims) - {"ci"} - set(dims):
        return df
    wide = {f"ci_{b}": ci.sel(ci=b, drop=True) for b in ("low", "high")}
    if not dims:
        return df.assign(**{k: float(a) for k, a in wide.items()})
    right = pd.concat([a.to_dataframe(name=k)[k] for k, a in wide.items()], axis=1).reset_index()
    return df.merge(right, on=[d for d in dims if d in right.columns], how="left")


def format_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "(no numeric variables to show)"
    return df.to_string(index=False, na_rep="", float_format=lambda x: f"{x:.4f}")
