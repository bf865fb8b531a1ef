"""Plots of stored runs. A metric may register ``plot=callable(ds, out, kind)``; otherwise a
generic plot draws each headline variable against its first non-seed dimension (mean ± sd)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import xarray as xr  # noqa: E402

from usable import get_entry, headline_vars  # noqa: E402


def plot_run(ds: xr.Dataset, out: str, kind: str | None = None):
    metric = str(ds.attrs.get("metric", "")).split(":")[0]
    plotter = None
    if metric:
        try:
            plotter = get_entry("metrics", metric).extra.get("plot")
        except KeyError:
            plotter = None
    if plotter is not None:
        return plotter(ds, out, kind)
    return plot_generic(ds, out)


def plot_generic(ds: xr.Dataset, out: str) -> str:
    names = headline_vars(ds)
    if not names:
        raise ValueError("nothing numeric to plot in this run")
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    for ax, v in zip(axes[0], names):
        da = ds[v].load()
        mean = da.mean("seed") if "seed" in da.dims else da
        sd = da.std("seed") if "seed" in da.dims and da.sizes["seed"] > 1 else None
        if mean.ndim == 0:
            ax.bar([v], [float(mean)], yerr=None if sd is None else [float(sd)])
        else:
            x = mean.dims[0]
            rest = [d for d in mean.dims[1:]]
            m2 = mean.stack(_series=rest) if rest else mean.expand_dims(_series=[v])
            s2 = (sd.stack(_series=rest) if rest else sd.expand_dims(_series=[v])) if sd is not None else None
            xs = m2[x].values
            numeric = xs.dtype.kind in "fiu"
            pos = xs if numeric else range(len(xs))
            for k in range(m2.sizes["_series"]):
                y = m2.isel(_series=k).values
                lab = str(m2["_series"].values[k])
                e = s2.isel(_series=k).values if s2 is not None else None
                ax.errorbar(pos, y, yerr=e, marker="o", capsize=3, label=lab)
            if not numeric:
                ax.set_xticks(list(pos), [str(t) for t in xs], rotation=30)
            ax.set_xlabel(x)
            if m2.sizes["_series"] > 1:
                ax.legend(fontsize=7)
        ax.set_title(da.attrs.get("long_name", v)[:60] + (" (mean ± sd over seeds)" if sd is not None else ""),
                     fontsize=8)
        ax.set_ylabel(f"{v} ({da.attrs.get('units', '')})")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
