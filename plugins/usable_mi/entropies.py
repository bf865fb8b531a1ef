"""Difference of entropies (DoE, McAllester & Stratos 2020): I(X;Y) = H(Y) − H(Y|X), each entropy the
held-out cross-entropy of a trained density model, fitted by the loop's own objective.

- Y continuous (d coordinates): the chain rule over Y's coordinates,
  H(Y) = Σ_k H(Y_k | Y_<k) and H(Y|X) = Σ_k H(Y_k | X, Y_<k), each term a Gaussian decoder
  N(μ(·), σ²) of the real target Y_k (the loop's default objective, σ learned). Dataset k has two
  sources, Y_<k (zero-padded to d − 1 columns) and (X, Y_<k), so all d terms of all tasks train as
  ONE ensemble. ``heads=independent`` drops the Y_<k inputs: Σ_k I_V(X → Y_k), the usable
  information of a diagonal-Gaussian decoder family, which equals I(X;Y) only when Y's
  coordinates are independent and conditionally independent given X.
- Y a class target or one-hot: H(Y) from the training class frequencies, H(Y|X) a softmax
  decoder; DoE is then exactly the V-information I_V(X → Y).

Neither entropy is a bound when the density family is misspecified (a Gaussian for a non-Gaussian
Y), so DoE can land on either side of the truth; that is its known behaviour, not a bug.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import xarray as xr

from usable import DataError, Members, SourceData, Split, evaluate, null_logp

from .pairs import as_classes
from .selection import BestEpoch, carve_validation


def _chain_data(pair: SourceData, k: int, width: int) -> SourceData:
    """Target Y_k; sources Y_<k (zero-padded to ``width``) and (X, Y_<k)."""
    def split(sp: Split) -> Split:
        x, y = sp.xs[0], sp.xs[1]
        hist = torch.zeros(len(x), width)
        hist[:, :k] = y[:, :k]
        return Split([hist, torch.cat([x, hist], dim=1)], y[:, k].contiguous())
    return SourceData(split(pair.train), split(pair.test), ["y<k", "x,y<k"], "real", None, None, dict(pair.attrs))


def _head_data(pair: SourceData, k: int) -> SourceData:
    """Target Y_k; the one source X (independent heads: no Y_<k, the null in closed form)."""
    def split(sp: Split) -> Split:
        return Split([sp.xs[0]], sp.xs[1][:, k].contiguous())
    return SourceData(split(pair.train), split(pair.test), ["x"], "real", None, None, dict(pair.attrs))


def _class_data(pair: SourceData) -> SourceData | None:
    ytr, yte = as_classes(pair.train.xs[1]), as_classes(pair.test.xs[1])
    if ytr is None or yte is None:
        return None
    k = pair.train.xs[1].shape[1]
    return SourceData(Split([pair.train.xs[0]], ytr), Split([pair.test.xs[0]], yte), ["x"], "classes", k, None,
                      dict(pair.attrs))


def _fit_selected(fit, datas: list[SourceData], decoder, seeds, validation: float, patience: int, split_seed: int,
                  **kw):
    """``fit`` over ``datas``, each (member, decoder) kept at its best validation log-likelihood."""
    callbacks = []
    if validation:
        datas, val = carve_validation(datas, validation, split_seed)
        members = Members(len(datas), tuple(int(s) for s in seeds), (0.0,))
        member_data = torch.tensor(members.column("dataset"))
        val_xs = [torch.stack([v.xs[i] for v in val]) for i in range(datas[0].n_sources)]
        val_y = torch.stack([v.y for v in val])

        def score(state):
            logp, _ = evaluate(state.models, val_xs, val_y, state.objective, members.size, 4096, state.device,
                               member_data)
            return logp.double().mean(dim=2).numpy()  # (E, n_sources)
        callbacks.append(BestEpoch(score, patience))
    return fit(datas, decoders=decoder, betas=[0.0], seeds=list(seeds), callbacks=callbacks, **kw)


def train_doe(fit, pairs: Sequence[SourceData], decoder, seeds: Sequence[int], heads: str = "chain",
              task_names: Sequence[str] | None = None, desc: str = "doe", validation: float = 0.0,
              patience: int = 5, split_seed: int = 0) -> xr.Dataset:
    """DoE for every (task, seed) as one ensemble; dims (task, seed[, sample]) in bits.

    ``pairs`` come from ``pair_of`` with ``standardize=False`` for one-hot Y (class detection) or
    any setting for continuous Y; all of one shape. ``validation``: fraction of the training split
    that keeps every decoder at its best epoch (held-out log-likelihood), as for the critics."""
    sel = dict(validation=validation, patience=patience, split_seed=split_seed)
    pairs = list(pairs)
    if task_names is None:
        task_names = [str(p.attrs.get("task", i)) for i, p in enumerate(pairs)]
    task_names = list(task_names)
    classes = [_class_data(p) for p in pairs]
    if all(c is not None for c in classes):
        res = _fit_selected(fit, classes, decoder, seeds, dataset_names=task_names, desc=desc, **sel)
        ds = res.to_dataset().isel(beta=0, source=0, drop=True)
        null = torch.stack([null_logp(c, "test")[0] for c in classes]).double().numpy()  # (task, N)
        point = ds.log_likelihood.transpose("dataset", "seed", "sample").values - null[:, None, :]
        h_y = -null.mean(axis=1)[:, None] * np.ones((1, len(seeds)))
        h_yx = ds.cross_entropy.transpose("dataset", "seed").values
        kind = "categorical (class frequencies; softmax decoder)"
    elif any(c is not None for c in classes):
        raise DataError("doe: some tasks have a one-hot Y and others a continuous one; fit them separately")
    else:
        d = pairs[0].train.xs[1].shape[1]
        width = max(d - 1, 1)
        chain = [_chain_data(p, k, width) if heads == "chain" else _head_data(p, k) for p in pairs for k in range(d)]
        res = _fit_selected(fit, chain, decoder, seeds, desc=desc, **sel,
                            dataset_names=[f"{t}|y{k}" for t in task_names for k in range(d)])
        ds = res.to_dataset().isel(beta=0, drop=True)
        ll = ds.log_likelihood.transpose("dataset", "seed", "source", "sample").values
        ll = ll.reshape(len(pairs), d, *ll.shape[1:])  # task, coordinate, seed, source, sample
        if heads == "chain":
            point = (ll[:, :, :, 1] - ll[:, :, :, 0]).sum(axis=1)
            h_y = -ll[:, :, :, 0].mean(axis=-1).sum(axis=1)
        else:  # the null of each coordinate in closed form, as the `usable` metric does
            null = np.stack([np.stack([null_logp(c, "test")[0].double().numpy() for c in chain[t * d:(t + 1) * d]])
                             for t in range(len(pairs))])  # task, coordinate, sample
            point = (ll[:, :, :, -1] - null[:, :, None, :]).sum(axis=1)
            h_y = -null.mean(axis=-1).sum(axis=1)[:, None] * np.ones((1, len(seeds)))
        h_yx = -ll[:, :, :, -1].mean(axis=-1).sum(axis=1)
        shift = np.array([float(p.attrs.get("mi_log2_scale_y", 0.0)) for p in pairs])[:, None]
        h_y, h_yx = h_y + shift, h_yx + shift  # entropies of Y in its own units (standardising shifted them)
        kind = ("Gaussian chain rule over Y's coordinates" if heads == "chain"
                else "independent Gaussian heads (diagonal-Gaussian V-information)")
    coords = {"task": task_names, "seed": list(seeds), "sample": np.arange(point.shape[-1])}
    out = xr.Dataset({
        "mutual_information": (("task", "seed"), point.mean(axis=-1),
                               {"units": "bit", "long_name": "held-out H(Y) − H(Y|X) (difference of entropies)"}),
        "pointwise": (("task", "seed", "sample"), point,
                      {"units": "bit", "long_name": "per-test-sample log2 q(y|x) − log2 q(y) (mean = estimate)"}),
        "entropy": (("task", "seed"), h_y, {"units": "bit", "long_name": "held-out cross-entropy H_q(Y)"}),
        "conditional_entropy": (("task", "seed"), h_yx, {"units": "bit",
                                                         "long_name": "held-out cross-entropy H_q(Y|X)"}),
    }, coords=coords)
    out.attrs.update({"density_model": kind, "epochs_run": int(res.epochs_run), "validation": float(validation),
                      "patience": int(patience)})
    return out
