"""``redundancy_matrix``: RINE for every pair of a list of sources (RINE paper figures 3 and 4).

Entry (a, b) is the redundant information of sources a and b; the diagonal is each source's own
usable information. All pairs whose two sides have the same input shapes train as ONE fit: the
pair index becomes extra ensemble members (a ``PairStack`` around the decoder's ensemble) and
extra target heads, so P pairs × seeds × β run as one batched model. Because each pair's
decoders start from the seeds a separate two-source fit would use, draw the same mini-batches,
and receive exactly their own pair's gradient, every entry equals that separate fit's number up
to floating-point rounding (tests/test_redundancy_matrix.py checks it).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import xarray as xr
from torch import nn

from usable import Param, SourceData, Split
from usable.ensemble import make_ensemble
from usable.fit import combine_divergence, fit, predict
from usable.info import null_logp
from usable.params import SpecError

from .metrics import _var


class PairStack(nn.Module):
    """P problems side by side: input (E, B, P, *shape) -> inner ensemble of E·P members ->
    output (E, B, P·K), i.e. P target heads of K classes for ``fit``.

    ``fit`` averages the per-sample loss over heads, so each problem's loss arrives scaled by
    1/P; the backward hook multiplies the gradient by P so every problem's decoders get exactly
    the gradient they would get alone (and every optimiser behaves as it would alone).
    """

    def __init__(self, inner: nn.Module, n_problems: int, in_shape, n_out: int):
        super().__init__()
        self.inner, self.P, self.in_shape, self.K = inner, int(n_problems), tuple(in_shape), int(n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        E, B, P = x.shape[0], x.shape[1], self.P
        x = x.reshape(E, B, P, *self.in_shape).movedim(2, 1).reshape(E * P, B, *self.in_shape)
        out = self.inner(x).reshape(E, P, B, self.K).transpose(1, 2).reshape(E, B, P * self.K)
        if out.requires_grad and P > 1:
            out.register_hook(lambda g: g * P)
        return out


def _stacked(data: SourceData, groups: list[list[int]]) -> SourceData:
    """One source per side of the groups: side s holds the groups' s-th sources stacked on dim 1;
    the target is repeated as one head per group."""
    def split(sp: Split) -> Split:
        xs = [torch.stack([sp.xs[g[s]] for g in groups], dim=1) for s in range(len(groups[0]))]
        return Split(xs, sp.y.unsqueeze(1).expand(-1, len(groups)).contiguous())
    return SourceData(split(data.train), split(data.test), [f"side{s}" for s in range(len(groups[0]))],
                      data.target, data.n_classes, data.class_names, dict(data.attrs))


def _fit_groups(ctx, data: SourceData, groups: list[list[int]], betas: list[float]):
    """Fit all ``groups`` (tuples of source indices of equal shapes) at once.

    Returns test cross-entropy (seed, beta, side, group) in bits and, for several sides, the
    held-out divergence (seed, beta, group).
    """
    P, K = len(groups), int(data.n_classes)
    stacked = _stacked(data, groups)
    seeds = [int(s) for s in ctx.seeds]
    member_seeds = [s for s in seeds for _ in betas]
    inner_seeds = [s for s in member_seeds for _ in range(P)]  # member (e, p) = e·P + p
    decoder = ctx.decoder_obj()
    # side s gets salt s, as source s of a separate fit would: the same initial weights.
    models = [PairStack(make_ensemble(decoder, data.in_shape(groups[0][s]), K, inner_seeds, salt=s),
                        P, data.in_shape(groups[0][s]), K) for s in range(len(groups[0]))]
    needs_div = len(groups[0]) > 1 and any(b > 0 for b in betas)
    res = fit(stacked, [decoder] * len(models), models=models,
              divergence=ctx.divergence_fn(data.target) if needs_div else None,
              schedule=ctx.schedule_fn(), betas=betas, seeds=seeds,
              config=replace(ctx.fit_config), desc=f"{ctx.metric} ×{P}")
    E = len(member_seeds)
    ce = -res.test_logp.double().mean(dim=2).numpy()  # (E, side, P)
    ce = ce.reshape(len(seeds), len(betas), len(groups[0]), P)
    div = None
    if len(groups[0]) > 1:
        div_fn = ctx.divergence_fn(data.target) if ctx.divergence is not None else None
        if div_fn is not None:
            outs = predict(res.models, stacked.test.xs, E, ctx.fit_config.eval_batch_size)
            preds = [torch.softmax(o.reshape(E, o.shape[1], P, K), dim=-1) for o in outs]
            d = combine_divergence(div_fn, preds, ctx.fit_config.divergence_form)  # (E, N, P)
            div = d.double().mean(dim=1).numpy().reshape(len(seeds), len(betas), P)
    return ce, div


def _shape_groups(keys: list) -> dict:
    out: dict = {}
    for k, key in enumerate(keys):
        out.setdefault(key, []).append(k)
    return out


def compute_redundancy_matrix(ctx, diagonal: bool = True) -> xr.Dataset:
    data = ctx.data
    n = data.n_sources
    if n < 2:
        raise SpecError(f"redundancy_matrix needs at least 2 sources, got {n} ({', '.join(data.names)}); "
                        "give several --source specs or one that yields several sources")
    if data.target != "classes" or data.train.y.ndim != 1:
        raise SpecError("redundancy_matrix works on single-head class targets for now; "
                        f"this source has a {data.target} target of shape {tuple(data.train.y.shape)}")
    betas = [float(b) for b in ctx.betas]
    seeds = [int(s) for s in ctx.seeds]
    null, null_attrs = null_logp(data, "test")
    h_null = float(-null.double().mean())
    S, B = len(seeds), len(betas)
    ri = np.full((n, n, S, B), np.nan)
    dv = np.full((n, n, S, B), np.nan)
    usable = np.full((n, S), np.nan)
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    by_shape = _shape_groups([(data.in_shape(a), data.in_shape(b)) for a, b in pairs])
    for members in by_shape.values():
        group = [list(pairs[k]) for k in members]
        ce, div = _fit_groups(ctx, data, group, betas)  # ce: (seed, beta, side, P)
        for p, (a, b) in enumerate(group):
            ri[a, b] = ri[b, a] = h_null - ce[:, :, :, p].mean(axis=2)
            if div is not None:
                dv[a, b] = dv[b, a] = div[:, :, p]
    if diagonal:
        for members in _shape_groups([data.in_shape(i) for i in range(n)]).values():
            ce, _ = _fit_groups(ctx, data, [[i] for i in members], [0.0])  # (seed, 1, 1, P)
            for p, i in enumerate(members):
                usable[i] = h_null - ce[:, 0, 0, p]
                ri[i, i] = usable[i][:, None]
    names = list(data.names)
    ds = xr.Dataset(
        {
            "redundant_information": _var(ri, ("source_a", "source_b", "seed", "beta"),
                                          "redundant information I∩ of each pair; diagonal: usable information"),
            "divergence": _var(dv, ("source_a", "source_b", "seed", "beta"),
                               "held-out divergence of each pair's decoders (NaN on the diagonal)", units="1"),
            "usable_information": _var(usable, ("source", "seed"), "each source's own usable information"),
            "null_entropy": _var(h_null, (), "H_V(Y|∅) on the test split"),
        },
        coords={"source_a": names, "source_b": names, "source": names, "seed": seeds, "beta": betas},
    )
    ds.attrs.update(null_attrs)
    ds.attrs.update({
        "headline": ["redundant_information"],
        "report": format_matrix(ds),
        "divergence_form": ctx.fit_config.divergence_form, "diagonal": "usable information" if diagonal else "none",
        "split_fitted": "train", "split_evaluated": "test", "target": data.target,
        "pair_fits": len(by_shape),
        **{f"source_{k}": v for k, v in data.attrs.items() if isinstance(v, (int, float, str))},
    })
    return ds


def format_matrix(ds: xr.Dataset) -> str:
    """The matrix (mean over seeds) as text, one block per β."""
    m = ds["redundant_information"].mean("seed")
    names = [str(s) for s in ds.source_a.values]
    w = max(8, max(len(s) for s in names) + 1)
    lines = []
    for b in ds.beta.values:
        lines.append(f"redundant information (bits, mean over {ds.sizes['seed']} seeds), beta = {b:g}")
        lines.append(" " * w + "".join(f"{s:>{w}}" for s in names))
        for a in names:
            row = m.sel(beta=b, source_a=a).values
            lines.append(f"{a:<{w}}" + "".join(f"{v:>{w}.3f}" for v in row))
    return "\n".join(lines)


def plot_matrix(ds: xr.Dataset, out: str, kind: str | None = None) -> str:
    """Annotated heatmap of the redundancy matrix (mean over seeds), one panel per β."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = ds["redundant_information"].load()
    m = m.mean("seed") if "seed" in m.dims else m
    betas = list(np.atleast_1d(ds.beta.values)) if "beta" in m.dims else [None]
    names = [str(s) for s in ds.source_a.values]
    n = len(names)
    vmax = max(float(np.nanmax(m.values)), 1e-9)
    fig, axes = plt.subplots(1, len(betas), figsize=(1.0 + 0.7 * n * len(betas) + 1.2 * len(betas), 1.0 + 0.6 * n),
                             squeeze=False)
    for ax, b in zip(axes[0], betas):
        mat = (m.sel(beta=b) if b is not None else m).transpose("source_a", "source_b").values
        im = ax.imshow(mat, vmin=min(0.0, float(np.nanmin(mat))), vmax=vmax, cmap="viridis")
        for i in range(n):
            for j in range(n):
                v = mat[i, j]
                ax.text(j, i, "" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if v < 0.6 * vmax else "black")
        ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(n), names, fontsize=8)
        ax.set_title("redundant information (bits)" + ("" if b is None else f", β = {b:g}"), fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def register_all(register):
    register("redundancy_matrix", compute_redundancy_matrix, params=[
        Param("diagonal", True, bool, "fill the diagonal with each source's usable information"),
    ], help="RINE for every pair of sources as a (source_a, source_b) matrix; diagonal = usable information",
        plot=plot_matrix)
