"""Plots of ``dib`` and ``track`` runs (thesis figures 3.2-3.6), matplotlib with the Agg backend.

``usable results plot STORE RUN --kind K``: for track, K is one of ``nc1`` (fig. 3.2), ``gap``
(3.3), ``equisep`` (3.4), ``dib`` (3.5), ``plane`` (3.6), ``curves`` (loss and accuracy); without
``--kind`` every plot the run has data for is written, as OUT-<kind>.png.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from usable import SpecError  # noqa: E402

from .analyses import equi_separation, gaps  # noqa: E402

STYLE = {"train": "-", "test": "--"}
MARK = {"train": "o", "test": "s"}
TRACK_KINDS = ("nc1", "gap", "equisep", "dib", "plane", "curves")


def _colour(k):
    return plt.get_cmap("tab10")(k % 10)


def _name(ds, l):
    try:
        return f"l={int(l)} ({ds.layer_name.sel(layer=l).item()})"
    except Exception:
        return f"l={int(l)}"


def _save(fig, out):
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return str(out)


def _path(out, kind, many):
    p = Path(out)
    return str(p.with_name(f"{p.stem}-{kind}{p.suffix or '.png'}")) if many else str(out)


def _over_epochs(ds, var, ax, log=False):
    for k, l in enumerate(ds.layer.values):
        for s in ("train", "test"):
            y = ds[var].sel(layer=l, split=s)
            ax.plot(ds.epoch.values, y.values, STYLE[s], color=_colour(k), marker=".",
                    label=_name(ds, l) if s == "train" else None)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{var} ({ds[var].attrs.get('units', '')})")
    ax.legend(fontsize=7, title="solid train, dashed test", title_fontsize=7)


def plot_nc1(ds, out):
    fig, ax = plt.subplots(figsize=(5, 3.6))
    _over_epochs(ds, "nc1", ax, log=True)
    ax.set_title("NC1 = tr(Σ_W Σ_B⁺)/C per layer", fontsize=9)
    return _save(fig, out)


def plot_gap(ds, out):
    g = gaps(ds)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    gen = g.generalisation_gap.values
    keep = gen > 0  # the thesis plots only positive generalisation gaps
    for k, l in enumerate(ds.layer.values):
        c = g.compression_gap.sel(layer=l).values
        ax.scatter(gen[keep], c[keep], color=_colour(k), s=14, label=_name(ds, l))
    ax.set_xlabel("generalisation gap: test − train loss (nat)")
    ax.set_ylabel("compression gap: test − train NC1")
    ax.legend(fontsize=7)
    return _save(fig, out)


def plot_equisep(ds, out):
    r = equi_separation(ds)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for s in ("train", "test"):
        ax.plot(ds.epoch.values, r.sel(split=s).values, STYLE[s], color="k", marker=".", label=s)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("epoch")
    ax.set_ylabel("Pearson r(log NC1, l)")
    ax.set_title("equi-separation: −1 = exponential decay with depth", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, out)


def plot_dib_curves(ds, out):
    fig, axes = plt.subplots(2, 1, figsize=(5, 6), sharex=True)
    _over_epochs(ds, "sufficiency", axes[0])
    _over_epochs(ds, "minimality", axes[1])
    C = ds.attrs.get("n_classes")
    if C:
        for ax in axes:
            ax.axhline(np.log2(int(C)), color="grey", lw=0.6)
    axes[0].set_title("I_V(h^l → y) and I_V(h^l → Dec(x, Y))", fontsize=9)
    return _save(fig, out)


def plot_plane(ds, out):
    fig, ax = plt.subplots(figsize=(5, 4.2))
    for k, l in enumerate(ds.layer.values):
        for s in ("train", "test"):
            x = ds.minimality.sel(layer=l, split=s).values
            y = ds.sufficiency.sel(layer=l, split=s).values
            ax.plot(x, y, STYLE[s], marker=MARK[s], ms=4, color=_colour(k),
                    label=_name(ds, l) if s == "train" else None)
    ax.set_xlabel("minimality I_V(h^l → Dec(x, Y)) (bit)")
    ax.set_ylabel("sufficiency I_V(h^l → y) (bit)")
    ax.set_title("information plane (circles train, squares test)", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, out)


def plot_curves(ds, out):
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    for ax, v in zip(axes, ("loss", "accuracy")):
        for s in ("train", "test"):
            ax.plot(ds.epoch.values, ds[v].sel(split=s).values, STYLE[s], color="k", marker=".", label=s)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{v} ({ds[v].attrs.get('units', '')})")
        ax.legend(fontsize=7)
    return _save(fig, out)


_TRACK = {"nc1": plot_nc1, "gap": plot_gap, "equisep": plot_equisep, "dib": plot_dib_curves,
          "plane": plot_plane, "curves": plot_curves}


def plot_track(ds: xr.Dataset, out: str, kind: str | None = None):
    ds = ds.load()
    if kind is not None and kind not in _TRACK:
        raise SpecError(f"track plots: unknown kind {kind!r}; choose one of {', '.join(TRACK_KINDS)}")
    kinds = [kind] if kind else [k for k in TRACK_KINDS
                                 if "nc1" in ds or k not in ("nc1", "gap", "equisep")]
    if kind is None and (ds.layer.values >= 1).sum() < 2 and "equisep" in kinds:
        kinds.remove("equisep")  # needs at least two network layers
    written = [_TRACK[k](ds, _path(out, k, kind is None)) for k in kinds]
    return written[0] if kind else written


def plot_dib(ds: xr.Dataset, out: str, kind: str | None = None):
    """Bars of sufficiency and minimality per layer, train and test (mean over seeds)."""
    ds = ds.load()
    if "seed" in ds.dims:
        ds = ds.mean("seed", keep_attrs=True)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    x = np.arange(ds.sizes["layer"])
    for ax, v in zip(axes, ("sufficiency", "minimality")):
        for j, s in enumerate(("train", "test")):
            ax.bar(x + (j - 0.5) * 0.38, ds[v].sel(split=s).values, width=0.38, label=s)
        ax.set_xticks(x, [_name(ds, l) for l in ds.layer.values], rotation=20, fontsize=7)
        ax.set_ylabel(f"{v} (bit)")
        ax.legend(fontsize=7)
    return _save(fig, out)
