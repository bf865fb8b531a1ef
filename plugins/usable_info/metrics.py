"""Metric implementations. Each takes a RunContext and returns an xarray Dataset in bits."""
from __future__ import annotations

import numpy as np
import xarray as xr

from usable import Param, SourceData, Split
from usable.info import null_logp


def _var(data, dims, long_name, units="bit", **attrs):
    return xr.Variable(dims, np.asarray(data), {"long_name": long_name, "units": units, **attrs})


def with_joint(data: SourceData) -> SourceData:
    """The sources plus one more: all of them concatenated (the joint decoder's input)."""
    joint = data.joint()
    return SourceData(Split(data.train.xs + joint.train.xs, data.train.y),
                      Split(data.test.xs + joint.test.xs, data.test.y),
                      data.names + joint.names, data.target, data.n_classes, data.class_names,
                      dict(data.attrs))


def curves(res, betas_axis: bool) -> dict[str, xr.Variable]:
    """Per-epoch training curves of a FitResult as variables with an ``epoch`` dim."""
    h = res.history
    def shape(a):
        a = np.asarray(a)
        if betas_axis:
            return a.reshape(a.shape[0], len(res.seeds), len(res.betas), *a.shape[2:])
        return a.reshape(a.shape[0], len(res.seeds), *a.shape[2:]) if len(res.betas) == 1 else a
    lead = ("epoch", "seed", "beta") if betas_axis else ("epoch", "seed")
    return {
        "train_loss": _var(shape(h["train_loss"]), lead, "training objective per epoch (nats)", units="nat"),
        "train_cross_entropy": _var(shape(h["train_ce"]), lead + ("source",), "training cross-entropy per epoch"),
        "test_cross_entropy_curve": _var(shape(h["test_ce"]), lead + ("source",), "held-out cross-entropy per epoch"),
        **({"train_divergence": _var(shape(h["train_divergence"]), lead, "training divergence per epoch", units="1"),
            "beta_in_force": _var(shape(h["beta"]), lead, "β applied per epoch (schedule)", units="1")}
           if betas_axis else {}),
    }


def compute_usable(ctx, joint: bool = False, pvi: bool = True) -> xr.Dataset:
    """I_V(X→Y) = H_V(Y|∅) − H_V(Y|X) for each source (and all sources jointly if joint=true)."""
    data = ctx.data
    fit_data = with_joint(data) if joint and data.n_sources > 1 else data
    res = ctx.fit(fit_data, betas=[0.0])
    null, null_attrs = null_logp(data, "test")
    h_null = float(-null.double().mean())
    logp = res.test_logp.double().numpy()  # (seed, source, sample[, head])
    ce = -logp.mean(axis=2)
    coords = {"seed": res.seeds, "source": fit_data.names}
    data_vars = {
        "usable_information": _var(h_null - ce, ("seed", "source"), "usable information I_V(X→Y) on the test split"),
        "cross_entropy": _var(ce, ("seed", "source"), "held-out cross-entropy H_V(Y|X)"),
        "null_entropy": _var(h_null, (), "H_V(Y|∅): test cross-entropy of the training class frequencies"
                             if data.target == "classes" else "H_V(Y|∅): test cross-entropy of the fitted marginal Gaussian"),
        **curves(res, betas_axis=False),
    }
    if pvi:
        data_vars["pvi"] = _var(logp - null.double().numpy()[None, None, :], ("seed", "source", "sample"),
                                "pointwise V-information log2 f(y|x) − log2 p_null(y) per test sample")
        coords["sample"] = np.arange(len(data.test))
    ds = xr.Dataset(data_vars, coords={**coords, "epoch": np.arange(res.epochs_run)})
    ds.attrs.update(null_attrs)
    ds.attrs.update({"headline": ["usable_information", "cross_entropy", "null_entropy"],
                     "split_fitted": "train", "split_evaluated": "test", "target": data.target,
                     **{f"source_{k}": v for k, v in data.attrs.items() if isinstance(v, (int, float, str))}})
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
        raise ValueError(f"rine needs at least 2 sources, got {data.n_sources} ({', '.join(data.names)}); "
                         "give several --source specs or one that yields several sources")
    requested = [float(b) for b in ctx.betas]
    betas = sorted(set(requested) | {0.0})  # β = 0 gives each source's own usable information
    res = ctx.fit(data, betas=betas)
    null, null_attrs = null_logp(data, "test")
    h_null = float(-null.double().mean())
    ce = res.by_seed_beta(res.test_ce)  # (seed, beta_all, source)
    div = res.by_seed_beta(res.test_divergence)
    keep = [betas.index(b) for b in requested]
    b0 = betas.index(0.0)
    ds = xr.Dataset(
        {
            "redundant_information": _var(h_null - ce[:, keep].mean(axis=2), ("seed", "beta"),
                                          "redundant information I∩ = H_V(Y|∅) − mean held-out cross-entropy"),
            "divergence": _var(div[:, keep], ("seed", "beta"), "held-out divergence D(f_1..f_n)", units="1"),
            "cross_entropy": _var(ce[:, keep], ("seed", "beta", "source"), "held-out cross-entropy of each decoder"),
            "usable_information": _var(h_null - ce[:, b0], ("seed", "source"),
                                       "each source's own usable information (β = 0 decoders)"),
            "null_entropy": _var(h_null, (), "H_V(Y|∅) on the test split"),
        },
        coords={"seed": res.seeds, "beta": requested, "source": data.names, "epoch": np.arange(res.epochs_run)},
    )
    hist = curves(res, betas_axis=True)
    for k, v in hist.items():
        ds[k] = xr.Variable(v.dims, np.take(v.values, keep, axis=2), v.attrs)
    if per_class:
        if data.target != "classes" or data.test.y.ndim != 1:
            raise ValueError("rine:per_class=true needs a single class target (this source has a "
                             f"{data.target} target of shape {tuple(data.test.y.shape)})")
        logp = res.by_seed_beta(res.test_logp.double().numpy())[:, keep]  # (seed, beta, source, N)
        ri_c, h_c = per_class_redundancy(logp, null.double().numpy(), data.test.y.numpy(), data.n_classes)
        ds["redundant_information_per_class"] = _var(
            ri_c, ("seed", "beta", "class"), "redundant information per class: H_null(c) − mean held-out "
            "cross-entropy on the test samples of class c")
        ds["null_entropy_per_class"] = _var(h_c, ("class",), "−log2 p_null(c): the null cross-entropy of class c")
        ds = ds.assign_coords({"class": np.arange(data.n_classes)})
        if data.class_names:
            ds = ds.assign_coords(class_name=("class", [str(c) for c in data.class_names]))
    ds.attrs.update(null_attrs)
    ds.attrs.update({"headline": ["redundant_information", "divergence", "usable_information"],
                     "divergence_form": ctx.fit_config.divergence_form,
                     "split_fitted": "train", "split_evaluated": "test", "target": data.target,
                     **{f"source_{k}": v for k, v in data.attrs.items() if isinstance(v, (int, float, str))}})
    return ds


def register_all(register):
    register("usable", compute_usable, params=[
        Param("joint", False, bool, "also fit one decoder on all sources concatenated"),
        Param("pvi", True, bool, "store per-sample pointwise V-information (dim sample)"),
    ], help="usable information I_V(X→Y) of each source, in bits on the test split")
    register("rine", compute_rine, params=[
        Param("per_class", False, bool, "also report redundant information per class (dim class)"),
    ], help="redundant information of n ≥ 2 sources (RINE), in bits")
