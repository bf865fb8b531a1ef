"""``usable`` and ``rine``: V-information of each source and redundant information of n sources,
from one fit each, in bits on the test split."""
from __future__ import annotations

import numpy as np
import xarray as xr

from usable import DataError, SourceData, Split, bootstrap_ci, null_logp

from . import guards


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


def with_ci(ds: xr.Dataset, name: str, per_sample: xr.DataArray, level: float = 0.95) -> xr.Dataset:
    """``<name>_ci`` (…, ci): the held-out bootstrap interval of the seed-mean value."""
    mean = per_sample.mean("seed") if "seed" in per_sample.dims else per_sample
    mean = mean.transpose(..., "sample")
    ci = xr.DataArray(bootstrap_ci(mean.values, level), dims=(*mean.dims[:-1], "ci"),
                      coords={**{d: mean[d] for d in mean.dims[:-1] if d in mean.coords}, "ci": ["low", "high"]})
    ds[f"{name}_ci"] = named(ci, f"{level:.0%} held-out bootstrap interval of the mean over seeds of {name} "
                                 "(test samples resampled, decoders fixed)")
    return ds


def guarded(ds: xr.Dataset, variable: str, flags: xr.DataArray) -> xr.Dataset:
    """Store the flags beside the value and list the violations, with cause and fix, in attrs."""
    ds["flags"] = flags
    ds.attrs["warnings"] = guards.warnings_of(variable, ds[variable], flags)
    return ds


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
    gain = r.log_likelihood - null.double().numpy()  # per sample (PVI): its mean over samples is I_V
    if pvi:
        data_vars["pvi"] = named(gain, "pointwise V-information log2 f(y|x) − log2 p_null(y) per test sample")
    ds = xr.Dataset(data_vars)
    if null.ndim == 1:  # one class or real target per sample: intervals and bounds from the PVI
        ds = with_ci(ds, "usable_information", gain)
        ds = guarded(ds, "usable_information", guards.usable_flags(ds.usable_information, gain))
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


def pid_atoms(ds: xr.Dataset, joint_information: xr.DataArray) -> xr.Dataset:
    """Two-source PID atoms from RINE's I∩ and usable information: U_i = I_V(X_i→Y) − I∩,
    S = I_V(X_1,X_2→Y) − U_1 − U_2 − I∩; they sum to the joint usable information exactly."""
    ri = ds.redundant_information
    unique = ds.usable_information - ri
    ds["unique_information"] = named(unique, "unique information U_i = I_V(X_i→Y) − I∩")
    ds["synergy"] = named(joint_information - unique.sum("source") - ri,
                          "synergy S = I_V(X_1,X_2→Y) − U_1 − U_2 − I∩")
    ds["joint_information"] = named(joint_information, "usable information of both sources jointly "
                                                       "I_V(X_1,X_2→Y) (one decoder on the concatenation)")
    return ds


def joint_usable(ctx, data: SourceData, h_null: float) -> xr.DataArray:
    """I_V(X_1..X_n→Y) of one decoder on all sources concatenated, same seeds and settings."""
    r = fitted(ctx.fit(data.joint(), betas=[0.0], desc="rine: joint decoder")).isel(beta=0, source=0, drop=True)
    return h_null - r.cross_entropy


def rine_result(r: xr.Dataset, at: xr.Dataset, h_null, null: xr.DataArray | None,
                max_divergence: float) -> xr.Dataset:
    """The variables every RINE result has, its bootstrap interval and its guards.

    ``r``: the fit's arrays at every β trained (β = 0 among them), ``at``: at the requested βs;
    ``h_null``: H_V(Y|∅) (a number, or per task); ``null``: per-sample log2 p_null(y) (dim sample,
    and task where there are tasks), or None where a target has several heads (no interval, no
    guards: the per-sample terms are per head).
    """
    ds = xr.Dataset({
        "redundant_information": named(h_null - at.cross_entropy.mean("source"),
                                       "redundant information I∩ = H_V(Y|∅) − mean held-out cross-entropy"),
        "divergence": named(at.divergence, "held-out divergence D(f_1..f_n)", "1"),
        "cross_entropy": named(at.cross_entropy, "held-out cross-entropy of each decoder"),
        "usable_information": named(h_null - r.cross_entropy.sel(beta=0.0, drop=True),
                                    "each source's own usable information (β = 0 decoders)"),
        "null_entropy": named(h_null, "H_V(Y|∅) on the test split"),
    })
    if null is not None:
        gain = at.log_likelihood.mean("source") - null  # per sample: its mean over samples is I∩
        ds = with_ci(ds, "redundant_information", gain)
        ds = guarded(ds, "redundant_information", guards.rine_flags(
            ds.redundant_information, gain, ds.usable_information, ds.divergence, max_divergence))
    return ds


def compute_rine(ctx, per_class: bool, atoms: bool, max_divergence: float) -> xr.Dataset:
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
        raise DataError("rine needs a β > 0 (e.g. --beta 50): at β = 0 the decoders are unconstrained and "
                        "I∩ would be plain usable information; use the usable metric for that")
    if atoms and data.n_sources != 2:
        raise DataError(f"rine:atoms=true decomposes two sources; this data has {data.n_sources} "
                        f"({', '.join(data.names)})")
    r = fitted(ctx.fit(data, betas=sorted(set(requested) | {0.0})))  # β = 0: each source's own information
    null, null_attrs = null_logp(data, "test")
    h_null = float(-null.double().mean())
    at = r.sel(beta=requested)
    per_sample_null = xr.DataArray(null.double().numpy(), dims="sample") if null.ndim == 1 else None
    ds = rine_result(r, at, h_null, per_sample_null, max_divergence)
    ds = ds.assign(curves(at, with_beta=True))
    if atoms:
        ds = pid_atoms(ds, joint_usable(ctx, data, h_null))
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
    headline = ["redundant_information", "divergence", "usable_information"]
    headline += ["unique_information", "synergy", "joint_information"] if atoms else []
    ds.attrs.update({"headline": headline, "pid_measure": "RINE's I∩ (approximates Griffith et al.'s I∧; "
                     "docs/rine.md)" if atoms else "",
                     "divergence_form": ctx.fit_config.divergence_form,
                     "split_fitted": "train", "split_evaluated": "test", "target": data.target, **source_attrs(data)})
    return ds
