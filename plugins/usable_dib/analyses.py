"""Derived analyses of a ``track`` run (thesis figures 3.3 and 3.4)."""
from __future__ import annotations

import numpy as np
import xarray as xr

from usable import SpecError


def equi_separation(ds: xr.Dataset, var: str = "nc1", min_layer: int = 1) -> xr.DataArray:
    """Pearson correlation of log NC1 with the layer index, per (epoch, split) (thesis fig. 3.4).

    Layers below ``min_layer`` are left out (the thesis uses l = 1..L: the input is not a layer of
    the network). −1 means log NC1 falls exactly linearly with depth (the equi-separation law).
    """
    da = ds[var].where(ds.layer >= min_layer, drop=True)
    if da.sizes["layer"] < 2:
        raise SpecError(f"equi-separation needs at least 2 layers >= {min_layer}; this run has {list(ds.layer.values)}")
    logv = np.log(da.clip(min=np.finfo(float).tiny))
    l = xr.DataArray(da.layer.values.astype(float), dims="layer", coords={"layer": da.layer})
    out = xr.corr(logv, l.broadcast_like(logv), dim="layer")
    out.attrs = {"long_name": f"Pearson correlation of log {var} with layer index", "units": "1"}
    return out


def gaps(ds: xr.Dataset, var: str = "nc1") -> xr.Dataset:
    """Generalisation gap (test − train main-network loss) and compression gap (test − train of
    ``var`` per layer) per epoch (thesis fig. 3.3)."""
    gen = ds["loss"].sel(split="test") - ds["loss"].sel(split="train")
    comp = ds[var].sel(split="test") - ds[var].sel(split="train")
    return xr.Dataset({"generalisation_gap": gen, "compression_gap": comp})
