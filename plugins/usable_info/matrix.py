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

import numpy as np
import torch
import xarray as xr
from torch import nn

from usable import DataError, SourceData, Split, make_ensemble, null_logp

from . import guards
from .metrics import named


class PairStack(nn.Module):
    """P problems side by side: input (E, B, P, *shape) -> inner ensemble of E·P members ->
    output (E, B, P·K), i.e. P target heads of K classes for ``fit``, which sums the heads'
    losses (``head_reduction="sum"``) so each problem's decoders get exactly their own gradient."""

    def __init__(self, inner: nn.Module, n_problems: int, in_shape, n_out: int):
        super().__init__()
        self.inner, self.P, self.in_shape, self.K = inner, int(n_problems), tuple(in_shape), int(n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        E, B, P = x.shape[0], x.shape[1], self.P
        x = x.reshape(E, B, P, *self.in_shape).movedim(2, 1).reshape(E * P, B, *self.in_shape)
        return self.inner(x).reshape(E, P, B, self.K).transpose(1, 2).reshape(E, B, P * self.K)


def _stacked(data: SourceData, groups: list[list[int]]) -> SourceData:
    """One source per side of the groups: side s holds the groups' s-th sources stacked on dim 1;
    the target is repeated as one head per group."""
    def split(sp: Split) -> Split:
        xs = [torch.stack([sp.xs[g[s]] for g in groups], dim=1) for s in range(len(groups[0]))]
        return Split(xs, sp.y.unsqueeze(1).expand(-1, len(groups)).contiguous())
    return SourceData(split(data.train), split(data.test), [f"side{s}" for s in range(len(groups[0]))],
                      data.target, data.n_classes, data.class_names, dict(data.attrs))


def _fit_groups(ctx, data: SourceData, groups: list[list[int]], betas: list[float]) -> xr.Dataset:
    """Fit all ``groups`` (tuples of source indices of equal shapes) at once: the labelled fit
    result, with ``source`` = the side of a pair and ``head`` = the group."""
    P, K = len(groups), int(data.n_classes)
    member_seeds = [int(s) for s in ctx.seeds for _ in betas]
    inner_seeds = [s for s in member_seeds for _ in range(P)]  # member (e, p) = e·P + p
    decoder = ctx.decoder_obj()
    # side s gets salt s, as source s of a separate fit would: the same initial weights.
    models = [PairStack(make_ensemble(decoder, data.in_shape(groups[0][s]), K, inner_seeds, salt=s),
                        P, data.in_shape(groups[0][s]), K) for s in range(len(groups[0]))]
    res = ctx.fit(_stacked(data, groups), betas=betas, decoders=[decoder] * len(models), models=models,
                  head_reduction="sum", desc=f"{ctx.metric} ×{P}")
    return res.to_dataset().isel(dataset=0, drop=True)


def _shape_groups(keys: list) -> dict:
    out: dict = {}
    for k, key in enumerate(keys):
        out.setdefault(key, []).append(k)
    return out


def matrix_flags(ri: xr.DataArray, own: xr.DataArray | None, tol: np.ndarray) -> xr.DataArray:
    """Each pair: −tol ≤ I∩ ≤ min(I_V(a), I_V(b)) + tol (the upper bound where the diagonal was fitted)."""
    v = ri.values
    flags = guards.add_reason(np.full(v.shape, "", dtype=object), v < -tol, guards.NEGATIVE)
    if own is not None:
        u = own.transpose("source", "seed").values
        smallest = np.minimum(u[:, None, :], u[None, :, :])[..., None]  # (a, b, seed, 1)
        off = ~np.eye(v.shape[0], dtype=bool)[:, :, None, None] & (ri.beta.values > 0)[None, None, None, :]
        flags = guards.add_reason(flags, off & (v > smallest + tol), guards.ABOVE_MIN)
    return guards.as_flags(flags, ri.dims, "−tol ≤ I∩ ≤ min(I_V(a), I_V(b)) + tol")


def compute_redundancy_matrix(ctx, diagonal: bool = True) -> xr.Dataset:
    data = ctx.data
    n = data.n_sources
    if n < 2:
        raise DataError(f"redundancy_matrix needs at least 2 sources, got {n} ({', '.join(data.names)}); "
                        "give several --source specs or one that yields several sources")
    if data.target != "classes" or data.train.y.ndim != 1:
        raise DataError("redundancy_matrix works on single-head class targets for now; "
                        f"this source has a {data.target} target of shape {tuple(data.train.y.shape)}")
    betas = [float(b) for b in ctx.betas]
    seeds = [int(s) for s in ctx.seeds]
    null, null_attrs = null_logp(data, "test")
    h_null = float(-null.double().mean())
    S, B = len(seeds), len(betas)
    ri = np.full((n, n, S, B), np.nan)
    dv = np.full((n, n, S, B), np.nan)
    tol = np.full((n, n, S, B), guards.FLOOR)
    usable = np.full((n, S), np.nan)
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    by_shape = _shape_groups([(data.in_shape(a), data.in_shape(b)) for a, b in pairs])
    for members in by_shape.values():
        group = [list(pairs[k]) for k in members]
        r = _fit_groups(ctx, data, group, betas)
        for p, (a, b) in enumerate(group):
            pair = r.sel(head=p)
            ri[a, b] = ri[b, a] = h_null - pair.cross_entropy.mean("source").transpose("seed", "beta").values
            gain = pair.log_likelihood.mean("source").transpose("seed", "beta", "sample").values - null.double().numpy()
            tol[a, b] = tol[b, a] = guards.tolerance(gain)
            if ctx.divergence is not None:
                dv[a, b] = dv[b, a] = pair.divergence.transpose("seed", "beta").values
    if diagonal:
        for members in _shape_groups([data.in_shape(i) for i in range(n)]).values():
            r = _fit_groups(ctx, data, [[i] for i in members], [0.0])
            for p, i in enumerate(members):
                usable[i] = h_null - r.cross_entropy.sel(head=p, beta=0.0, source="side0").values
                ri[i, i] = usable[i][:, None]
    names = list(data.names)
    ds = xr.Dataset(
        {
            "redundant_information": named(xr.DataArray(ri, dims=("source_a", "source_b", "seed", "beta")),
                                           "redundant information I∩ of each pair; diagonal: usable information"),
            "divergence": named(xr.DataArray(dv, dims=("source_a", "source_b", "seed", "beta")),
                                "held-out divergence of each pair's decoders (NaN on the diagonal)", "1"),
            "usable_information": named(xr.DataArray(usable, dims=("source", "seed")),
                                        "each source's own usable information"),
            "null_entropy": named(h_null, "H_V(Y|∅) on the test split"),
        },
        coords={"source_a": names, "source_b": names, "source": names, "seed": seeds, "beta": betas},
    )
    ds["flags"] = matrix_flags(ds.redundant_information, ds.usable_information if diagonal else None, tol)
    ds.attrs["warnings"] = guards.warnings_of("redundant_information", ds.redundant_information, ds["flags"])
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
