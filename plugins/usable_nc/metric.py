"""The ``nc`` metric: train a decoder with the one training loop (or load a checkpoint), then
measure neural collapse of every layer on the train and test splits.

Result dims: (seed, layer, split) for scalars, plus ``class`` for per-class variables.
"""
from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from usable import DataError, Memberwise, SpecError, load_networks, save_checkpoint

from .accumulator import DEFAULT_GRAM_MAX_DIM, DEFAULT_RANK_TOL
from .amortised import amortised_fit
from .measure import measure_layers

# name -> (long_name, units); every scalar the accumulator reports for a layer and split
SCALARS = {
    "nc1": ("NC1 = tr(Σ_W Σ_B⁺)/C, exact (rank-r pseudo-inverse)", "1"),
    "trace_quotient": ("tr Σ_W / tr Σ_B", "1"),
    "trace_within": ("tr Σ_W (within-class scatter / N)", "feature²"),
    "trace_between": ("tr Σ_B = ‖A‖_F²/C", "feature²"),
    "cdnv_mean": ("CDNV mean over class pairs: (Var_c + Var_c')/(2‖μ_c − μ_c'‖²)", "1"),
    "cdnv_max": ("CDNV max over class pairs", "1"),
    "nc2_equinorm_cv": ("NC2 coefficient of variation of centred-mean norms", "1"),
    "nc2_cos_std": ("NC2 std of pairwise cosines of centred means", "1"),
    "nc2_cos_shift": ("NC2 mean |cos + 1/(C−1)| over class pairs", "1"),
    "nc2_etf_error": ("NC2 ‖AAᵀ/‖AAᵀ‖_F − (I − 11ᵀ/C)/√(C−1)‖_F", "1"),
    "nc3": ("NC3 ‖W/‖W‖_F − A/‖A‖_F‖_F (layer feeding the classifier only)", "1"),
    "nc4": ("NC4 rate of nearest-class-centre ≠ classifier argmax (bias included)", "1"),
    "ncc_error": ("nearest-class-centre error rate against the labels", "1"),
    "rank": ("rank r of the centred class means kept by rank_tol", "1"),
    "sigma_max": ("largest singular value of A", "feature"),
    "sigma_min_kept": ("smallest kept singular value of A", "feature"),
    "sigma_max_dropped": ("largest dropped singular value of A (0 if none)", "feature"),
    "n_samples": ("samples measured", "samples"),
}
PER_CLASS = {
    "class_count": ("samples per class", "samples"),
    "class_within_variance": ("within-class variance Var_c = mean ‖h − μ_c‖²", "feature²"),
    "class_nc1": ("per-class NC1 term mean ‖Pᵀ(h − μ_c)‖² (nc1 = count-weighted mean)", "1"),
    "class_centred_mean_norm": ("‖μ_c − μ̄‖", "feature"),
    "class_nc4": ("per-class NC4 disagreement rate", "1"),
}
HEADLINE = ["nc1", "trace_quotient", "cdnv_mean", "nc2_etf_error", "nc3", "nc4"]


def _networks_from_fit(res) -> list[torch.nn.Module]:
    members = getattr(res.models[0], "members", None)
    if members is None:
        raise TypeError(f"expected a member-wise ensemble, got {type(res.models[0]).__name__}")
    return list(members)


def load_trained(ctx, checkpoint: str, in_shape, n_out: int):
    """(networks, seeds) saved by ``nc:save=PATH`` (or a plain state dict of one network)."""
    dec = ctx.decoder_obj()
    nets, meta = load_networks(checkpoint, lambda: dec.build(tuple(in_shape), int(n_out)),
                               expect={"in_shape": list(in_shape), "n_out": int(n_out)})
    return nets, [int(s) for s in meta.get("seeds", range(len(nets)))]


def compute_nc(ctx, checkpoint: str, save: str, layers: list[str], splits: list[str], rank_tol: float,
               weighting: str, method: str, gram_max_dim: int, batch_size: int, amortised: bool) -> xr.Dataset:
    """Neural collapse of every layer of the decoder on each split (dims seed, layer, split[, class])."""
    data = ctx.data
    if data.n_sources != 1:
        raise DataError(f"nc measures one network on one source, got {data.n_sources} sources "
                         f"({', '.join(data.names)}); give a single --source")
    if data.target != "classes" or data.train.y.ndim != 1:
        raise DataError("nc needs a class target (one label per sample)")
    split_names = list(splits)
    bad = [s for s in split_names if s not in ("train", "test")]
    if bad or not split_names:
        raise SpecError(f"nc: splits {'+'.join(splits)!r}: use train, test or train+test")
    K, in_shape = int(data.n_classes), data.in_shape(0)
    measure_kwargs = dict(layers=list(layers) or None, n_classes=K, batch_size=batch_size, rank_tol=rank_tol,
               weighting=weighting, method=method, gram_max_dim=gram_max_dim)
    extra_vars, attrs = {}, {}
    pass1_train = None
    if checkpoint:
        if amortised:
            raise SpecError("amortised=true folds pass 1 into training; it cannot be used with a checkpoint")
        nets, seeds = load_trained(ctx, checkpoint, in_shape, K)
        attrs["checkpoint"] = str(checkpoint)
        attrs["measurement"] = "separate eval-mode passes with the checkpoint's fixed weights"
    else:
        if amortised:
            res, nets, pass1_train = amortised_fit(ctx, data, ctx.decoder_obj(), measure_kwargs)
            attrs["measurement"] = ("amortised: train-split pass 1 folded into the last training epoch (train mode, "
                                    "moving weights, as the thesis does; Σ_W is biased); pass 2 and the test split "
                                    "in eval mode with the final weights")
        else:
            res = ctx.fit(data, betas=[0.0], decoders=Memberwise(ctx.decoder_obj()))
            nets = _networks_from_fit(res)
            attrs["measurement"] = "separate eval-mode passes after training, fixed final weights"
        seeds = res.seeds
        ce = res.to_dataset().cross_entropy.isel(dataset=0, beta=0, source=0, drop=True)
        extra_vars["test_cross_entropy"] = ce.assign_attrs(long_name="held-out cross-entropy of the trained network")
        if save:
            save_checkpoint(save, [n.state_dict() for n in nets], decoder=str(ctx.decoder), in_shape=list(in_shape),
                            n_out=K, seeds=[int(s) for s in seeds])
            attrs["saved_checkpoint"] = str(save)
    progress = bool(ctx.fit_config.progress)
    device = None if ctx.fit_config.device == "auto" else ctx.fit_config.device
    results = []  # [seed][split] -> MeasureResult
    for e, net in enumerate(nets):
        row = []
        for sp in split_names:
            split = getattr(data, sp)
            p1 = pass1_train[e] if (pass1_train is not None and sp == "train") else None
            row.append(measure_layers(net, (split.xs[0], split.y), device=device, progress=progress,
                                      desc=f"nc seed {seeds[e]} {sp}", pass1_states=p1, **measure_kwargs))
        results.append(row)
    layer_names = results[0][0].layers
    for row in results:
        for r in row:
            if r.layers != layer_names:
                raise RuntimeError(f"layers differ between measurements: {r.layers} vs {layer_names}")

    def stack(key, per_class=False):
        return np.array([[[r.metrics[l][key] for r in row] for l in layer_names] for row in results], dtype=float) \
            .transpose((0, 1, 2, 3) if per_class else (0, 1, 2))

    data_vars = {}
    for k, (ln, units) in SCALARS.items():
        data_vars[k] = xr.Variable(("seed", "layer", "split"), stack(k), {"long_name": ln, "units": units})
    for k, (ln, units) in PER_CLASS.items():
        data_vars[k] = xr.Variable(("seed", "layer", "split", "class"), stack(k, True), {"long_name": ln, "units": units})
    conf = np.array([[[r.metrics[l]["confusion_ncc_classifier"] for r in row] for l in layer_names] for row in results])
    data_vars["confusion_ncc_classifier"] = xr.Variable(
        ("seed", "layer", "split", "ncc_class", "classifier_class"), conf,
        {"long_name": "counts: nearest class centre (row) vs classifier argmax (column)", "units": "samples"})
    data_vars.update(extra_vars)
    first = results[0][0].metrics
    class_coord = list(data.class_names) if data.class_names and len(data.class_names) == K else list(range(K))
    ds = xr.Dataset(data_vars, coords={
        "seed": [int(s) for s in seeds], "layer": layer_names, "split": split_names, "class": class_coord,
        "ncc_class": list(range(K)), "classifier_class": list(range(K)),
        "layer_dim": ("layer", [int(first[l]["dim"]) for l in layer_names]),
        "layer_method": ("layer", [str(first[l]["method"]) for l in layer_names]),
    })
    ds.attrs.update(attrs)
    ds.attrs.update({
        "headline": HEADLINE, "weighting": weighting,
        "weighting_meaning": ("global mean = mean over samples (Σ_c n_c μ_c / N)" if weighting == "sample"
                              else "global mean = mean of the class means (class-balanced)"),
        "sigma_w": "Σ_W = (1/N) Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ (sample-weighted)",
        "sigma_b": "Σ_B = AᵀA/C, A = rows μ_c − μ̄ over classes with samples",
        "rank_tol": float(rank_tol), "rank_rule": "keep singular values σ_i > rank_tol·σ_max of A",
        "method": method, "gram_max_dim": int(gram_max_dim),
        "batch_norm_mode": "eval (running statistics, not updated) for every measurement pass",
        "cdnv_exponent": 2, "amortised": bool(amortised),
        "classifier_layer": str(results[0][0].classifier_layer or "none"),
        "target": data.target,
        **{f"source_{k}": v for k, v in data.attrs.items() if isinstance(v, (int, float, str))},
    })
    return ds


def plot_nc(ds: xr.Dataset, out: str, kind: str | None = None):
    """``nc1`` (default): NC1 per layer for each split (log scale); ``all``: every headline variable."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = ["nc1"] if kind in (None, "nc1") else (HEADLINE if kind == "all" else [kind])
    missing = [n for n in names if n not in ds.data_vars]
    if missing:
        raise SpecError(f"plot kind {kind!r}: no variable {missing}; kinds: nc1, all, or one of {', '.join(HEADLINE)}")
    fig, axes = plt.subplots(1, len(names), figsize=(4.4 * len(names), 3.6), squeeze=False)
    layers = [str(v) for v in ds["layer"].values]
    for ax, v in zip(axes[0], names):
        da = ds[v].load()
        for sp in ds["split"].values:
            sel = da.sel(split=sp)
            m = sel.mean("seed").values
            ax.plot(range(len(layers)), m, marker="o", label=str(sp))
            if ds.sizes["seed"] > 1:
                s = sel.std("seed").values
                ax.fill_between(range(len(layers)), m - s, m + s, alpha=0.2)
        ax.set_xticks(range(len(layers)), layers, rotation=30)
        if v in ("nc1", "trace_quotient", "cdnv_mean") and np.nanmin(da.values) > 0:
            ax.set_yscale("log")
        ax.set_title(da.attrs.get("long_name", v)[:55], fontsize=8)
        ax.set_ylabel(v)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
