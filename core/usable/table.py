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
        df.insert(0, "variable", v)
        df["units"] = da.attrs.get("units", "")
        df["n_" + over] = n
        rows.append(df)
    if not rows:
        return pd.DataFrame()
    out = pd.concat(rows, ignore_index=True)
    front = ["variable"] + [c for c in out.columns if c not in ("variable", "mean", "sd", "units", "n_" + over)]
    return out[front + ["mean", "sd", "units", "n_" + over]]


def format_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "(no numeric variables to show)"
    return df.to_string(index=False, na_rep="", float_format=lambda x: f"{x:.4f}")
