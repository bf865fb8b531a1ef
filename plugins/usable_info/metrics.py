"""``usable`` and ``rine``: V-information of each source and redundant information of n sources,
from one fit each, in bits on the test split."""
from __future__ import annotations

import numpy as np
import xarray as xr

from usable import DataError, SourceData, Split, null_logp


def named(da, long_name: str, units: str = "bit") -> xr.DataArray:
    """A result variable: the array with its ``long_name`` and ``units``."""
    return xr.DataArray(da).assign_attrs(long_name=long_name, units=units)


def fitted(res) -> xr.Dataset:
    """The labelled arrays of a one-dataset fit (dims seed, beta, source, sample, epoch)."""
    return res.to_dataset().isel(dataset=0, drop=True)


def with_joint(data: SourceData) -> SourceData:
    """The sources plus one more: all of them concatenated (the joint decoder's input)."""
    joint = data.joint()
    return SourceData(Split(data.train.xs + joint.train.xs, data.train.y),
                      Split(data.test.xs + joint.test.xs, data.test.y),
                      data.names + joint.names, data.target, data.n_classes, data.class_names, dict(data.attrs))


def curves(r: xr.Dataset, with_beta: bool) -> dict[str, xr.DataArray]:
    """Per-epoch training curves (dim epoch first)."""
    names = ["train_loss", "train_cross_entropy", "test_cross_entropy_curve"]
    names += ["train_divergence", "beta_in_force"] if with_beta else []
    return {k: r[k] for k in names}


def source_attrs(data: SourceData) -> dict:
    return {f"source_{k}": v for k, v in data.attrs.items() if isinstance(v, (int, float, str))}


def compute_usable(ctx, joint: bool = False, pvi: bool = True) -> xr.Dataset:
    """I_V(X→Y) = H_V(Y|∅) − H_V(Y|X) for each source (and all sources jointly if joint=true)."""
    data = ctx.data
    fit_data = with_joint(data) if joint and data.n_sources > 1 else data
    r = fitted(ctx.fit(fit_data, betas=[0.0])).isel(beta=0, drop=True)
    null, null_attrs = null_logp(data, "test")
    h_null = float(-null.double().mean())
    ce = r.cross_entropy
    null_text = ("test cross-entropy of the training class frequencies" if data.target == "classes"
                 else "test cross-entropy of the fitted marginal Gaussian")
    data_vars = {
        "usable_information": named(h_null - ce, "usable information I_V(X→Y) on the test split"),
        "cross_entropy": named(ce, "held-out cross-entropy H_V(Y|X)"),
        "null_entropy": named(h_null, f"H_V(Y|∅): {null_text}"),
        **curves(r, with_beta=False),
    }
    if pvi:
        data_vars["pvi"] = named(r.log_likelihood - null.double().numpy(),
                                 "pointwise V-information log2 f(y|x) − log2 p_null(y) per test sample")
    ds = xr.Dataset(data_vars)
    if not pvi:
        ds = ds.drop_vars("sample", errors="ignore")
    ds.attrs.update(null_attrs)
    ds.attrs.update({"headline": ["usable_information", "cross_entropy", "null_entropy"],
                     "split_fitted": "train", "split_evaluated": "test", "target": data.target, **source_attrs(data)})
    return ds


def per_class_redundancy(logp: np.ndarray, null: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class c: H_null(c) − mean CE over the test samples of class c (RINE paper fig. 2C).

    ``logp``: (..., n_sources, N) log2 f_i(y|x) on the test split; ``null``: (N,) log2 p_null(y).
    Returns (redundancy (..., C), null entropy (C,)); classes absent from the test split are NaN.
    Weighted by the test class frequencies, the per-class values average to the overall I∩.
    """
    ce = -logp.mean(axis=-2)  # mean over sources, (..., N)
    out = np.full(ce.shape[:-1] + (n_classes,), np.nan)
    h = np.full(n_classes, np.nan)
    for c in range(n_classes):
        sel = y == c
        if sel.any():
            h[c] = float(-null[sel].mean())
            out[..., c] = h[c] - ce[..., sel].mean(axis=-1)
    return out, h


def compute_rine(ctx, per_class: bool = False) -> xr.Dataset:
    """I∩ = H_V(Y|∅) − (1/n) Σ_i H_{f_i}(Y|X_i) with decoders trained under β·D(f_1..f_n)."""
    data = ctx.data
    if data.n_sources < 2:
        raise DataError(f"rine needs at least 2 sources, got {data.n_sources} ({', '.join(data.names)}); "
                        "give several --source specs or one that yields several sources")
    if per_class and (data.target != "classes" or data.test.y.ndim != 1):
        raise DataError("rine:per_class=true needs a single class target (this source has a "
                        f"{data.target} target of shape {tuple(data.test.y.shape)})")
    requested = [float(b) for b in ctx.betas]
    if not any(b > 0 for b in requested):
        raise DataError("rine needs a β > 0 (e.g. --beta 15): at β = 0 the decoders are unconstrained and "
                        "I∩ would be plain usable information; use the usable metric for that")
    r = fitted(ctx.fit(data, betas=sorted(set(requested) | {0.0})))  # β = 0: each source's own information
    null, null_attrs = null_logp(data, "test")
    h_null = float(-null.double().mean())
    at = r.sel(beta=requested)
    ds = xr.Dataset({
        "redundant_information": named(h_null - at.cross_entropy.mean("source"),
                                       "redundant information I∩ = H_V(Y|∅) − mean held-out cross-entropy"),
        "divergence": named(at.divergence, "held-out divergence D(f_1..f_n)", "1"),
        "cross_entropy": named(at.cross_entropy, "held-out cross-entropy of each decoder"),
        "usable_information": named(h_null - r.cross_entropy.sel(beta=0.0, drop=True),
                                    "each source's own usable information (β = 0 decoders)"),
        "null_entropy": named(h_null, "H_V(Y|∅) on the test split"),
        **curves(at, with_beta=True),
    })
    if per_class:
        ri_c, h_c = per_class_redundancy(at.log_likelihood.transpose("seed", "beta", "source", "sample").values,
                                         null.double().numpy(), data.test.y.numpy(), data.n_classes)
        ds["redundant_information_per_class"] = named(xr.DataArray(ri_c, dims=("seed", "beta", "class")),
                                                      "redundant information per class: H_null(c) − mean held-out "
                                                      "cross-entropy on the test samples of class c")
        ds["null_entropy_per_class"] = named(xr.DataArray(h_c, dims=("class",)),
                                             "−log2 p_null(c): the null cross-entropy of class c")
        ds = ds.assign_coords({"class": np.arange(data.n_classes)})
        if data.class_names:
            ds = ds.assign_coords(class_name=("class", [str(c) for c in data.class_names]))
    ds.attrs.update(null_attrs)
    ds.attrs.update({"headline": ["redundant_information", "divergence", "usable_information"],
                     "divergence_form": ctx.fit_config.divergence_form,
                     "split_fitted": "train", "split_evaluated": "test", "target": data.target, **source_attrs(data)})
    return ds
