"""One measured epoch as an xarray Dataset with the names and dims of the ``track`` metric.

``track`` (plugin dib) stores, per epoch: ``nc1`` and the other NC scalars as ``nc_<name>`` (names
that start with ``nc`` kept as they are), ``sufficiency``, ``minimality``, ``cross_entropy``,
``minimality_digit``, ``sufficiency_heldout``, ``label_entropy``, ``digit_entropy``, the
network's ``loss`` and ``accuracy``; coordinates ``layer`` (integers, 0 = the input) with
``layer_name``. The tracker writes the same, plus NC's per-class arrays (dims ``..., class``) and
per-layer coordinates saying how each layer was read (``layer_pool``, ``layer_dim``,
``layer_shape``, ``layer_decoder``).
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import xarray as xr

from usable import plugin

SPLITS = ("train", "test")
NC_SKIP = {"confusion_ncc_classifier"}


def _var(data, dims, long_name, units="bit", **attrs):
    return xr.Variable(dims, np.asarray(data), {"long_name": long_name, "units": units, **attrs})


def nc_name(key: str) -> str:
    return key if key.startswith("nc") else f"nc_{key}"


def nc_vars(nc: dict[str, dict[str, dict[str, Any]]], names: list[str], n_classes: int) -> dict[str, xr.Variable]:
    """(layer, split) scalars and (layer, split, class) arrays from compute() dicts nc[split][layer]."""
    L, S = len(names), len(SPLITS)
    first = nc[SPLITS[0]][names[0]]
    out = {}
    for key, v in first.items():
        if key in NC_SKIP or isinstance(v, (str, bool)) or v is None:
            continue
        if isinstance(v, (int, float, np.integer, np.floating)):
            arr = np.array([[float(nc[s][n][key]) for s in SPLITS] for n in names])
            out[nc_name(key)] = _var(arr, ("layer", "split"), f"neural collapse: {key} (usable_nc)", units="1")
        elif np.ndim(v) == 1 and len(v) == n_classes:
            arr = np.array([[np.asarray(nc[s][n][key], dtype=float) for s in SPLITS] for n in names])
            out[nc_name(key)] = _var(arr.reshape(L, S, n_classes), ("layer", "split", "class"),
                                     f"neural collapse per class: {key} (usable_nc)", units="1")
    return out


def dib_vars(r, n_layers: int, measured: bool) -> dict[str, xr.Variable]:
    """The DIBResult arrays (layer, split[, digit]); NaN sufficiency/minimality when not measured,
    so a run without DIB still has the variables the track plots read."""
    if not measured:
        nan = np.full((n_layers, len(SPLITS)), np.nan)
        note = " (not measured: metrics without 'dib')"
        return {"sufficiency": _var(nan, ("layer", "split"), "sufficiency I_V(h^l → y)" + note),
                "minimality": _var(nan, ("layer", "split"), "minimality I_V(h^l → Dec(x,Y))" + note)}
    return plugin("dib").dib_variables(r, "layer's decoder")


def epoch_dataset(epoch: int, names: list[str], index: list[int], coords: dict[str, list], nc, dib,
                  dib_measured: bool, loss: list[float], accuracy: list[float], class_coord: list) -> xr.Dataset:
    """Every array of one measurement with a leading ``epoch`` dim of length 1."""
    dv: dict[str, xr.Variable] = {}
    if nc is not None:
        dv.update(nc_vars(nc, names, len(class_coord)))
    dv.update(dib_vars(dib, len(names), dib_measured))
    dv["loss"] = _var(loss, ("split",), "main network cross-entropy (its output read as logits)", units="nat")
    dv["accuracy"] = _var(accuracy, ("split",), "main network accuracy", units="1")
    c = {"layer": index, "split": list(SPLITS), "layer_name": ("layer", list(names)),
         **{k: ("layer", v) for k, v in coords.items()}}
    if nc is not None:
        c["class"] = class_coord
    if dib_measured:
        c["digit"] = np.arange(dib.digit_entropy.shape[1])
    ds = xr.Dataset(dv, coords=c)
    if dib_measured:
        ds.attrs["n_digits"] = list(dib.n_digits)
        ds.attrs["decoder_epochs"] = json.dumps(dib.decoder_epochs)
    return ds.expand_dims(epoch=[int(epoch)])
