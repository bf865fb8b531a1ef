"""The metrics: a RunContext in, a labelled Dataset in bits out (truth and bias where the source
knows the ground truth)."""
from __future__ import annotations

import xarray as xr

from usable import SpecError

from .pairs import as_classes, check_pair, joint_all, pair_of, result


def _one(ds: xr.Dataset, dims=("estimator", "task")) -> xr.Dataset:
    return ds.isel({d: 0 for d in dims if d in ds.dims}, drop=True)


def compute_critic(ctx, bound: str, x: str, y: str, embed: int, negatives: int, standardize: bool,
                   validation: float = 0.1, patience: int = 5, clip: float = 5.0, ema: float = 0.01) -> xr.Dataset:
    from .critics import train_critics
    pair = pair_of(ctx.data, x, y, standardize)
    check_pair(pair)
    r = _one(train_critics(ctx.fit, [pair], [bound], ctx.decoder_obj(), ctx.seeds, embed=embed, clip=clip, ema=ema,
                           negatives=negatives, validation=validation, patience=patience,
                           split_seed=0, desc=bound))
    names = {"infonce": "InfoNCE", "nwj": "NWJ", "mine": "MINE (Donsker-Varadhan)", "smile": f"SMILE (τ = {clip:g})"}
    extra = {k: r[k] for k in ("pointwise", "mutual_information_by_y", "train_bound_curve", "test_bound_curve",
                               "best_epoch", "validation_curve") if k in r}
    head: tuple[str, ...] = ()
    if bound == "infonce":
        extra["cap"] = r["infonce_cap"]
        head = ("cap",)
    ds = result(r.mutual_information, f"held-out {names[bound]} bound on I(X;Y)", pair, extra, head)
    ds.attrs.update({k: v for k, v in r.attrs.items() if isinstance(v, (int, float, str))})
    ds.attrs["estimator"] = bound
    return ds


def compute_doe(ctx, x: str, y: str, heads: str, validation: float = 0.1, patience: int = 5) -> xr.Dataset:
    from .entropies import train_doe
    raw = pair_of(ctx.data, x, y, standardize=False)
    one_hot = as_classes(raw.train.xs[1]) is not None and as_classes(raw.test.xs[1]) is not None
    pair = raw if one_hot else pair_of(ctx.data, x, y, standardize=True)
    check_pair(pair)
    r = _one(train_doe(ctx.fit, [pair], ctx.decoder_obj(), ctx.seeds, heads=heads, validation=validation,
                       patience=patience, split_seed=0))
    ds = result(r.mutual_information, "held-out difference of entropies H(Y) − H(Y|X)", pair,
                {k: r[k] for k in ("pointwise", "entropy", "conditional_entropy")}, ("entropy", "conditional_entropy"))
    ds.attrs.update({k: v for k, v in r.attrs.items() if isinstance(v, (int, float, str))})
    ds.attrs.update({"estimator": "doe", "heads": heads})
    return ds


def compute_ksg(ctx, k: int, x: str, y: str, split: str, standardize: bool) -> xr.Dataset:
    from .knn import ksg_estimate
    pair = pair_of(ctx.data, x, y, standardize)
    if split == "all":
        xs, ys = joint_all(pair)
    elif split in ("train", "test"):
        sp = getattr(pair, split)
        xs, ys = sp.xs[0].double().numpy(), sp.xs[1].double().numpy()
    else:
        raise SpecError(f"ksg: split {split!r}; choose all, train or test")
    threads = ctx.fit_config.threads or 1
    value, terms, variant = ksg_estimate(xs, ys, k, workers=int(threads))
    extra = {"pointwise": xr.DataArray(terms, dims=("sample",), attrs={
        "units": "bit", "long_name": "per-sample KSG term (mean = estimate)"})}
    ds = result(xr.DataArray(value), f"KSG k-nearest-neighbour estimate of I(X;Y) (k = {k})", pair, extra)
    ds.attrs.update({"estimator": "ksg", "k": int(k), "variant": variant, "split_used": split,
                     "n_samples_used": int(len(xs))})
    return ds
