"""Which two variables an MI metric measures, as a two-source dataset, and the labelled result.

X and Y are named by ``x`` and ``y``: a source name (or its index) or ``target``. By default X is
the first source and Y the second, or the target when there is only one source. Class targets
become one-hot vectors; every variable is flattened to (N, features) floats. Standardising each
feature with training-split statistics is an invertible map of X and of Y, so it leaves I(X;Y)
unchanged and only helps optimisation and the k-NN metric.
"""
from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from usable import DataError, SourceData, SpecError, Split


def _pick(data: SourceData, which: str, what: str) -> tuple[str, torch.Tensor, torch.Tensor]:
    """(name, train, test) of a source or of the target, as float (N, features)."""
    if which == "target":
        ytr, yte = data.train.y, data.test.y
        if data.target == "classes":
            k = int(data.n_classes)
            ytr, yte = (torch.nn.functional.one_hot(v, k).reshape(len(v), -1).float() for v in (ytr, yte))
        return "target", ytr.reshape(len(ytr), -1).float(), yte.reshape(len(yte), -1).float()
    if which in data.names:
        i = data.names.index(which)
    elif which.isdigit() and int(which) < data.n_sources:
        i = int(which)
    else:
        raise SpecError(f"{what}={which!r} names no source of this data (sources: {', '.join(data.names)}); give a "
                        "source name, its index or 'target'")
    a, b = data.train.xs[i], data.test.xs[i]
    return data.names[i], a.reshape(len(a), -1).float(), b.reshape(len(b), -1).float()


def resolve_pair(data: SourceData, x: str = "", y: str = "") -> tuple[str, str]:
    x = x or data.names[0]
    y = y or (data.names[1] if data.n_sources > 1 else "target")
    if x == y:
        raise SpecError(f"x and y both name {x!r}; I(X;X) is the entropy, not what these metrics estimate")
    return x, y


def standardized(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Both splits with training mean 0 and sd 1 per feature, and Σ log2 sd (the entropy shift)."""
    mu = train.double().mean(dim=0)
    sd = train.double().std(dim=0)
    sd = torch.where(sd > 0, sd, torch.ones_like(sd))
    return ((train.double() - mu) / sd).float(), ((test.double() - mu) / sd).float(), float(torch.log2(sd).sum())


def pair_of(data: SourceData, x: str = "", y: str = "", standardize: bool = True) -> SourceData:
    """The two variables as a two-source dataset (sources ``x`` and ``y``; a placeholder real target)."""
    x, y = resolve_pair(data, x, y)
    nx, xtr, xte = _pick(data, x, "x")
    ny, ytr, yte = _pick(data, y, "y")
    shift_x = shift_y = 0.0
    if standardize:
        xtr, xte, shift_x = standardized(xtr, xte)
        ytr, yte, shift_y = standardized(ytr, yte)
    attrs = {k: v for k, v in data.attrs.items() if isinstance(v, (int, float, str))}
    truth = attrs.get("true_mi_bits") if attrs.get("mi_between", "x,y") == f"{nx},{ny}" else None
    attrs = {k: v for k, v in attrs.items() if k not in ("true_mi_bits", "mi_between")}
    if truth is not None:
        attrs["true_mi_bits"] = float(truth)
    attrs.update({"mi_x": nx, "mi_y": ny, "mi_standardized": int(standardize),
                  "mi_log2_scale_x": shift_x, "mi_log2_scale_y": shift_y})
    return SourceData(Split([xtr, ytr], torch.zeros(len(xtr))), Split([xte, yte], torch.zeros(len(xte))),
                      ["x", "y"], "real", None, None, attrs)


def as_classes(v: torch.Tensor) -> torch.Tensor | None:
    """Class indices if ``v`` (N, K) is one-hot (every row a single 1), else None."""
    if v.ndim != 2 or v.shape[1] < 2:
        return None
    ones = (v == 1).sum(dim=1)
    if bool(((v == 0) | (v == 1)).all()) and bool((ones == 1).all()):
        return v.argmax(dim=1)
    return None


def joint_all(pair: SourceData) -> tuple[np.ndarray, np.ndarray]:
    """X and Y over both splits (train then test), float64."""
    x = torch.cat([pair.train.xs[0], pair.test.xs[0]]).double().numpy()
    y = torch.cat([pair.train.xs[1], pair.test.xs[1]]).double().numpy()
    return x, y


def truth_of(pair: SourceData) -> float | None:
    v = pair.attrs.get("true_mi_bits")
    return None if v is None else float(v)


def check_pair(pair: SourceData) -> None:
    if len(pair.train) < 2 or len(pair.test) < 2:
        raise DataError("MI estimates need at least 2 training and 2 held-out samples")


def result(estimate: xr.DataArray, what: str, pair: SourceData, extra: dict | None = None,
           headline_extra: tuple[str, ...] = ()) -> xr.Dataset:
    """The metric's Dataset: the estimate, the truth and bias where the source knows it, extras."""
    data = {"mutual_information": estimate.assign_attrs(units="bit", long_name=what)}
    truth = truth_of(pair)
    head = ["mutual_information"]
    if truth is not None:
        data["true_mutual_information"] = xr.DataArray(truth, attrs={"units": "bit", "long_name":
                                                                     "ground-truth I(X;Y) of the source"})
        data["bias"] = (estimate - truth).assign_attrs(units="bit", long_name="estimate − ground truth")
        head += ["true_mutual_information", "bias"]
    data.update(extra or {})
    ds = xr.Dataset(data)
    ds.attrs.update({k: v for k, v in pair.attrs.items() if isinstance(v, (int, float, str))})
    ds.attrs["headline"] = head + list(headline_extra)
    return ds
