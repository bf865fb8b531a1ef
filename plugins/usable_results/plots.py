"""Plots of stored runs, for any metric: ``usable results plot STORE [RUN] --kind K``.

Kinds (``GENERIC_KINDS``), drawn from what the run holds:

- ``summary``: the run's result (``compared_variable`` or the first headline variable), mean over
  seeds with error bars, against its numeric dim (β, a crop width) as lines or its text dim
  (source, task) as bars; dims that reference values differ along become panels.
- ``all``: every headline variable the same way, in a wrapped grid.
- ``heatmap``: a two-dim variable (a redundancy matrix) as an annotated heatmap, a panel per β.
- ``training``: the per-epoch variables (training and held-out curves), mean ± sd band over seeds.

Every figure carries the references the run knows (ground truth, the paper's numbers, the null
model's entropy), marks cells a ``flags`` variable calls implausible, and ends in a caption of
run details. A metric that registered ``plot=callable(ds, out, kind)`` draws its own kinds (and
the default, where it has one); the generic kinds above are drawn here for every metric.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from usable import SpecError, get_entry, headline_vars  # noqa: E402

from . import plotkit as kit  # noqa: E402

GENERIC_KINDS = ("summary", "all", "heatmap", "training")
PANEL_W, PANEL_H = 3.4, 2.7      # inches per panel: two-column paper figures at 120 dpi
MAX_COLUMNS = 3                  # wrap wider grids: 4 panels as 2 × 2, 5 as 3 + 2 (a page is ~7 in wide)
MAX_PANELS = 16
PAIR_DIMS = ("source_a", "source_b")


# ------------------------------------------------------------------------------- entry points
def plot_run(ds: xr.Dataset, out: str, kind: str | None = None, **options) -> str | list[str]:
    """Draw ``kind`` of a run to ``out`` (PNG). Generic kinds for every metric; other kinds and
    the default go to the metric's own plot where it registered one. ``options``: ``variables``,
    ``col_wrap``, ``dpi``, ``caption`` (see ``make_figure``)."""
    plotter = None if kind in GENERIC_KINDS else _metric_plotter(ds)
    if plotter is not None:
        return plotter(ds, out, kind)
    if kind == "curves":  # the name the dib/track plots use for their training curves
        kind = "training"
    dpi = options.pop("dpi", 120)
    return kit.save(make_figure(ds, kind, **options), out, dpi)


def plot_generic(ds: xr.Dataset, out: str, kind: str | None = None, **options) -> str:
    """The generic plot whatever the metric (the fallback for sweeps a metric's plot can't draw)."""
    dpi = options.pop("dpi", 120)
    return kit.save(make_figure(ds, kind, **options), out, dpi)


def make_figure(ds: xr.Dataset, kind: str | None = None, variables: list[str] | None = None,
                col_wrap: int | None = None, caption: bool = True):
    """The matplotlib Figure of a generic ``kind`` (default: ``heatmap`` for pair matrices, else
    ``summary``); the caller saves and closes it. ``variables`` overrides which are drawn,
    ``col_wrap`` the panels per row, ``caption=False`` drops the run-details line."""
    ds = _readable(ds)
    kind = kind or default_kind(ds)
    if kind not in GENERIC_KINDS:
        raise SpecError(f"plot kind {kind!r}: choose one of {', '.join(GENERIC_KINDS)}"
                        + ("" if _metric_plotter(ds) is None else " or one of the metric's own kinds"))
    draw = {"summary": _summary, "all": _all, "heatmap": _heatmap, "training": _training}[kind]
    with plt.rc_context(kit.STYLE):
        return draw(ds, list(variables) if variables else None, col_wrap, caption)


def default_kind(ds: xr.Dataset) -> str:
    main = _main_variable(ds)
    return "heatmap" if main and all(d in ds[main].dims for d in PAIR_DIMS) else "summary"


def _metric_plotter(ds: xr.Dataset):
    metric = str(ds.attrs.get("metric", "")).split(":")[0]
    try:
        return get_entry("metrics", metric).extra.get("plot") if metric else None
    except KeyError:
        return None


def _readable(ds: xr.Dataset) -> xr.Dataset:
    """Loaded, with numpy-2 StringDType text as plain str (matplotlib and ``.sel`` want that)."""
    ds = ds.load()
    text = {n: (ds[n].dims, ds[n].values.astype(object).astype(str), ds[n].attrs)
            for n in ds.variables if ds[n].dtype.kind == "T"}
    return ds.assign_coords({n: v for n, v in text.items() if n in ds.coords}).assign(
        {n: v for n, v in text.items() if n not in ds.coords})


# -------------------------------------------------------------------------- which variables
def _plottable(ds: xr.Dataset, name: str) -> bool:
    v = ds[name]
    return v.dtype.kind in "fiu" and not kit.is_reference(name) and "epoch" not in v.dims and "sample" not in v.dims


def _main_variable(ds: xr.Dataset) -> str | None:
    compared = ds.attrs.get("compared_variable")
    if compared in ds.data_vars and _plottable(ds, compared):
        return compared
    names = [v for v in headline_vars(ds) if _plottable(ds, v)]
    return names[0] if names else None


def _chosen(ds: xr.Dataset, variables: list[str] | None, default: list[str]) -> list[str]:
    if not variables:
        if not default:
            raise SpecError("nothing numeric to plot in this run; `usable results show` lists what it holds")
        return default
    missing = [v for v in variables if v not in ds.data_vars]
    if missing:
        raise SpecError(f"--var {', '.join(missing)}: not in this run; it holds {', '.join(map(str, ds.data_vars))}")
    return variables


def _pick(da: xr.DataArray | None, at: dict) -> xr.DataArray | None:
    """``da`` at the coordinates of ``at`` it has (the others don't concern it)."""
    if da is None:
        return None
    return da.sel({d: v for d, v in at.items() if d in da.dims})


def _facets(ds: xr.Dataset, dims: list[str]) -> list[dict]:
    """Every combination of the facet dims' values, as selections."""
    combos = [{}]
    for d in dims:
        combos = [{**c, d: v} for c in combos for v in ds[d].values]
    if len(combos) > MAX_PANELS:
        raise SpecError(f"{len(combos)} panels (one per {' × '.join(dims)}): too many to read; narrow the "
                        f"plot with --sel {dims[0]}=VALUE")
    return combos


# ------------------------------------------------------------------------- summary and all
class ValuePlan:
    """How one variable is laid out: the x dim, the colour (hue) dim, the panel (facet) dims."""

    def __init__(self, ds: xr.Dataset, var: str):
        self.var = var
        self.stats = kit.seed_stats(ds, var)
        self.refs = kit.references(ds, var)
        self.mask = kit.flag_mask(ds, var)
        mean = self.stats.mean
        self.fixed = {d: mean[d].values[0] for d in mean.dims if mean.sizes[d] == 1 and d in mean.coords}
        dims = [d for d in mean.dims if mean.sizes[d] > 1]
        self.x = self._x_dim(ds, dims)
        rest = [d for d in dims if d != self.x]
        # a reference that differs along a dim needs a panel per value, or its lines pile up
        panel_dims = [d for d in rest if any(kit.varies_along(r, d) for r in self.refs)]
        rest = [d for d in rest if d not in panel_dims]
        rest.sort(key=lambda d: mean.sizes[d])
        self.hue = rest[0] if rest and mean.sizes[rest[0]] <= 10 else None
        self.panel_dims = panel_dims + [d for d in rest if d != self.hue]
        self.panels = _facets(ds, self.panel_dims)
        self.categorical_x = self.x is None or kit.is_categorical(ds, self.x)
        self.log = kit.wants_log(mean.values, mean.attrs.get("units", ""))

    @staticmethod
    def _x_dim(ds, dims):
        """A numeric dim (β, a width) makes a curve: the longest one. Else the longest text dim."""
        numeric = [d for d in dims if not kit.is_categorical(ds, d)]
        pool = numeric or dims
        return max(pool, key=lambda d: ds.sizes[d]) if pool else None

    def limits(self):
        s, arrays = self.stats, [self.stats.mean.values]
        if s.below is not None:
            arrays += [(s.mean - s.below).values, (s.mean + s.above).values]
        for r in self.refs:
            arrays.append(r.value.values)
            if r.spread is not None:
                arrays += [(r.value - r.spread).values, (r.value + r.spread).values]
        return kit.value_limits(arrays, self.log, self.stats.mean.attrs.get("units", ""))


def _summary(ds, variables, col_wrap, caption):
    main = _main_variable(ds)
    return _values_figure(ds, _chosen(ds, variables, [main] if main else []), col_wrap, caption)


def _all(ds, variables, col_wrap, caption):
    names = [v for v in headline_vars(ds) if _plottable(ds, v)]
    return _values_figure(ds, _chosen(ds, variables, names), col_wrap, caption)


def _values_figure(ds, names, col_wrap, caption):
    plans = [ValuePlan(ds, v) for v in names]
    cells = [(p, where) for p in plans for where in p.panels]
    if len(cells) > MAX_PANELS:
        raise SpecError(f"{len(cells)} panels: too many to read; choose variables with --var or narrow with --sel")
    blocks = _blocks(plans)
    cols = col_wrap or (kit.balanced_columns(len(cells), MAX_COLUMNS) if len(blocks) == 1
                        else min(MAX_COLUMNS, max(blocks)))
    fig, axes = kit.panel_grid(len(cells), cols, PANEL_W, PANEL_H, blocks)
    palette = kit.Palette()
    for ax, (plan, where) in zip(axes, cells):
        _draw_values(ax, ds, plan, where, palette)
        ax.set_title(_panel_title(ds, plan, where, several=len(plans) > 1))
        if where and not kit.first_in_row(ax):
            ax.set_ylabel("")  # panels of one variable share its range: one label per row
    one_var_facets = len(plans) == 1 and len(cells) > 1
    title = ds[names[0]].attrs.get("long_name", names[0]) if one_var_facets else ""
    errors = "; ".join(dict.fromkeys(p.stats.how for p in plans if p.stats.how))
    kit.finish(fig, title, _caption(ds, errors) if caption else "")
    return fig


def _blocks(plans) -> list[int]:
    """Panel counts, each block starting a row: single-panel variables share rows, a variable
    with panels (one per task, say) gets rows of its own."""
    blocks: list[int] = []
    for p in plans:
        if len(p.panels) == 1 and blocks and blocks[-1] > 0:
            blocks[-1] += 1
        else:
            blocks.append(len(p.panels) if len(p.panels) > 1 else 1)
            if len(p.panels) > 1:
                blocks.append(0)  # the next single-panel variable starts a new row
    return [b for b in blocks if b]


def _panel_title(ds, plan, where, several: bool) -> str:
    """The long_name alone, or the panel's coordinates (with the variable when there are several)."""
    if where:
        text = kit.where_text(ds, where)
        if several:
            text = plan.var.replace("_", " ") + "\n" + text
    else:
        text = kit.wrap(ds[plan.var].attrs.get("long_name", plan.var), PANEL_W - 0.4)
    fixed = kit.where_text(ds, plan.fixed)
    return kit.display(text) + (f"\n({fixed})" if fixed else "")


def _draw_values(ax, ds, plan: ValuePlan, where: dict, palette):
    at = {**plan.fixed, **where}
    s = plan.stats
    mean, below, above = _pick(s.mean, at), _pick(s.below, at), _pick(s.above, at)
    mask = _pick(plan.mask, at)
    hue_values = list(mean[plan.hue].values) if plan.hue else [None]
    colour = palette.colours(ds, plan.hue, hue_values)
    if plan.categorical_x:
        positions, width = _bars(ax, ds, plan, mean, below, above, mask, hue_values, colour)
    else:
        positions, width = _lines(ax, ds, plan, mean, below, above, mask, hue_values, colour), None
    for ref in plan.refs:
        _draw_reference(ax, ds, plan, ref, at, positions, width, hue_values, colour)
    if s.interval:  # a stored interval is not the usual seed sd: the legend says so, not only the caption
        ax.plot([], [], ls="none", marker="|", ms=12, mew=1.2, color="0.2", label=s.how)
    if plan.log:
        ax.set_yscale("log")
    else:
        ax.set_ylim(*plan.limits())
    ax.set_ylabel(kit.axis_label(ds[plan.var], plan.var))
    if plan.x is not None:
        ax.set_xlabel(kit.dim_label(ds, plan.x))


def _series(da, hue, hv):
    return (da.sel({hue: hv}) if hue and da is not None and hue in da.dims else da)


def _errors(below, above):
    if below is None:
        return None
    return np.vstack([np.nan_to_num(below.values), np.nan_to_num(above.values)])


def _flagged(mask, hue, hv, shape):
    m = _series(mask, hue, hv)
    return np.broadcast_to(m.values, shape) if m is not None else np.zeros(shape, bool)


def _lines(ax, ds, plan, mean, below, above, mask, hue_values, colour):
    """A numeric x: mean over seeds joined by lines, error bars at each point."""
    xs = mean[plan.x].values.astype(float)
    for hv in hue_values:
        m = _series(mean, plan.hue, hv)
        label = _series_label(ds, plan, hv)
        ax.errorbar(xs, m.values, yerr=_errors(_series(below, plan.hue, hv), _series(above, plan.hue, hv)),
                    color=colour[hv], marker="o", ms=4.5, lw=1.4, capsize=3, elinewidth=1, label=label, zorder=3)
        bad = _flagged(mask, plan.hue, hv, m.shape)
        if bad.any():
            ax.plot(xs[bad], m.values[bad], **kit.flag_point_style(ds))
    ax.set_xticks(xs)
    ax.set_xticklabels([kit.value_text(v) for v in mean[plan.x].values])
    return xs


def _series_label(ds, plan, hv):
    """``β = 5`` for a colour; "this run" beside references (so ours is told from theirs)."""
    if plan.hue:
        return kit.coord_text(ds, plan.hue, hv)
    return "this run" if plan.refs else None


def _bars(ax, ds, plan, mean, below, above, mask, hue_values, colour):
    """A text x (sources, tasks): grouped bars from 0 (dodged markers on a log axis)."""
    names = [plan.var.replace("_", " ")] if plan.x is None else [kit.value_text(v) for v in mean[plan.x].values]
    positions = np.arange(len(names), dtype=float)
    width = 0.8 / len(hue_values)
    for k, hv in enumerate(hue_values):
        m = _series(mean, plan.hue, hv)
        vals = np.atleast_1d(m.values)
        pos = positions + (k - (len(hue_values) - 1) / 2) * width
        err = _errors(_series(below, plan.hue, hv), _series(above, plan.hue, hv))
        err = None if err is None else err.reshape(2, -1)
        label = _series_label(ds, plan, hv)
        bad = np.atleast_1d(_flagged(mask, plan.hue, hv, m.shape))
        if plan.log:
            ax.errorbar(pos, vals, yerr=err, color=colour[hv], marker="o", ls="none", capsize=3, label=label)
            if bad.any():
                ax.plot(pos[bad], vals[bad], **kit.flag_point_style(ds))
            continue
        bars = ax.bar(pos, vals, width * 0.92, yerr=err, color=colour[hv], label=label, capsize=3,
                      error_kw=dict(elinewidth=1, ecolor="0.2"), zorder=2)
        for bar, b in zip(bars, bad):
            if b:
                bar.set_hatch("///")
                bar.set_edgecolor(kit.FLAG_COLOUR)
                bar.set_linewidth(1.2)
        if bad.any():
            _add_proxy(ax, kit.flag_patch(ds))
    ax.set_xticks(positions)
    long = len(names) > 1 and (max(len(n) for n in names) > 6 or len(names) > 5)
    ax.set_xticklabels(names, rotation=30 if long else 0, ha="right" if long else "center")
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.grid(axis="x", visible=False)
    return positions, width


def _add_proxy(ax, handle):
    """A legend-only artist (the figure legend collects it from the panel)."""
    proxy = Rectangle((0, 0), 0, 0, facecolor=handle.get_facecolor(), edgecolor=handle.get_edgecolor(),
                      hatch=handle.get_hatch(), label=handle.get_label(), visible=True, lw=1.2)
    ax.add_patch(proxy)


def _draw_reference(ax, ds, plan, ref, at, positions, width, hue_values, colour):
    value, spread = _pick(ref.value, at), _pick(ref.spread, at)
    line = {"truth": "--", "bound": ":", "paper": "none"}[ref.style]
    grey = "0.2"
    hue_dims = plan.hue is not None and plan.hue in value.dims
    for k, hv in enumerate(hue_values if hue_dims else [None]):
        v = _series(value, plan.hue, hv)
        sd = _series(spread, plan.hue, hv)
        c = colour[hv] if hue_dims and ref.style != "paper" else grey
        label = ref.label if k == 0 else None
        if plan.x is not None and plan.x in v.dims:
            offset = 0.0 if width is None else (k - (len(hue_values) - 1) / 2) * width if hue_dims else 0.0
            xs = positions + offset
            if ref.style == "paper":
                ax.errorbar(xs, v.values, yerr=None if sd is None else np.nan_to_num(sd.values), ls="none",
                            marker="D", ms=7, mfc="none", mec="black", mew=1.1, ecolor="black", elinewidth=0.8,
                            capsize=2, zorder=6, label=label)
            elif plan.categorical_x:
                half = (width if hue_dims else 0.8) / 2
                ax.hlines(v.values, xs - half, xs + half, colors=c, linestyles=line, lw=1.4, zorder=6, label=label)
            else:
                ax.plot(xs, v.values, ls=line, color=c, lw=1.2, zorder=2, label=label)
        elif v.ndim == 0 and np.isfinite(float(v)):
            if ref.style == "paper":
                ax.axhline(float(v), color="black", lw=0.8, ls="-.", label=label)
            else:
                ax.axhline(float(v), ls=line, color=c, lw=1.2, zorder=1, label=label)


def _caption(ds, errors):
    extra = []
    if ds.attrs.get("diagonal"):
        extra.append(f"diagonal: {ds.attrs['diagonal']}")
    reasons = kit.flag_reasons(ds)
    if reasons:
        extra.append("flagged: " + "; ".join(reasons))
    return kit.run_caption(ds, "; ".join([e for e in [errors] if e] + extra))


# ------------------------------------------------------------------------------------ heatmap
def _heatmap(ds, variables, col_wrap, caption):
    names = _chosen(ds, variables, [v for v in [_main_variable(ds)] if v])
    var = names[0]
    stats = kit.seed_stats(ds, var)
    mean = stats.mean
    dims = [d for d in mean.dims if mean.sizes[d] > 1]
    if len(dims) < 2:
        raise SpecError(f"heatmap: {var} varies along {dims or 'no dim'}; a heatmap needs two "
                        "(try --kind summary)")
    rows, cols = PAIR_DIMS if all(d in dims for d in PAIR_DIMS) else sorted(dims, key=lambda d: -mean.sizes[d])[:2]
    fixed = {d: mean[d].values[0] for d in mean.dims if mean.sizes[d] == 1 and d in mean.coords}
    panels = _facets(ds, [d for d in dims if d not in (rows, cols)])
    n_r, n_c = mean.sizes[rows], mean.sizes[cols]
    # an interval ("0.50–0.60") is wider than "±0.05"
    cell = (0.75 if stats.interval else 0.55) if max(n_r, n_c) <= 8 else 0.35
    w, h = max(3.0, 1.9 + cell * n_c), max(2.4, 1.2 + cell * n_r)
    fig, axes = kit.panel_grid(len(panels), col_wrap or kit.balanced_columns(len(panels), MAX_COLUMNS), w, h)
    mask = kit.flag_mask(ds, var)
    # one colour scale for every panel, from 0 and never zoomed into noise (0.00 vs -0.01 bit)
    vmin, vmax = kit.info_range(mean.values, ds[var].attrs.get("units", ""))
    vmax = max(vmax, vmin + 1e-9)
    for ax, where in zip(axes, panels):
        at = {**fixed, **where}
        m = _pick(mean, at).transpose(rows, cols)
        spread = _cell_spread(stats, at, rows, cols)
        # cells at integer positions whatever the coordinates (β 0, 5, 15 would set the extent);
        # xarray's imshow labels the colour bar from long_name/units
        cells = m.drop_vars([rows, cols]).assign_coords({rows: np.arange(n_r), cols: np.arange(n_c)})
        cells.plot.imshow(ax=ax, vmin=vmin, vmax=vmax, cmap="viridis", add_colorbar=True, yincrease=False,
                      cbar_kwargs={"label": kit.axis_label(ds[var], var), "shrink": 0.9})
        _annotate(ax, m, spread, vmin, vmax)
        bad = _pick(mask, at)
        if bad is not None:
            _hatch_cells(ax, ds, bad.broadcast_like(m).transpose(rows, cols).values)
        ticks = [kit.value_text(v) for v in m[cols].values]
        slanted = max(len(t) for t in ticks) > 3
        ax.set_xticks(range(n_c), ticks, rotation=45 if slanted else 0, ha="right" if slanted else "center")
        ax.set_yticks(range(n_r), [kit.value_text(v) for v in m[rows].values])
        ax.set_xlabel(kit.dim_label(ds, cols))
        ax.set_ylabel(kit.dim_label(ds, rows))
        ax.grid(False)
        label = kit.where_text(ds, at)
        ax.set_title(label)
    title = ds[var].attrs.get("long_name", var)
    # a heatmap has no error bars: the interval is the second line of each cell
    how = stats.how.replace("error bars: ", "range under each value: ")
    kit.finish(fig, title, _caption(ds, how) if caption else "")
    return fig


def _cell_spread(stats, at, rows, cols):
    """The second line of each cell: ``±sd`` over seeds, or the stored interval ``low–high``."""
    mean, below, above = (_pick(a, at) for a in (stats.mean, stats.below, stats.above))
    if below is None:
        return None
    mean, below, above = (a.broadcast_like(mean).transpose(rows, cols).values for a in (mean, below, above))
    if stats.interval:
        return np.vectorize(lambda m, b, a: f"{m - b:.2f}–{m + a:.2f}")(mean, below, above)
    return np.vectorize(lambda b: f"±{b:.2f}")(below)


def _annotate(ax, m, spread, vmin, vmax):
    """Each cell's mean (and its spread below it, where there is one), dark on light cells."""
    small = m.size <= 64
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            v = float(m.values[i, j])
            if not np.isfinite(v):
                continue
            text = f"{v:.2f}" + (f"\n{spread[i, j]}" if spread is not None and small else "")
            light = (v - vmin) / ((vmax - vmin) or 1) > 0.6
            ax.text(j, i, text, ha="center", va="center", fontsize=7 if small else 5.5,
                    color="black" if light else "white", linespacing=0.95)


def _hatch_cells(ax, ds, bad):
    for i, j in zip(*np.nonzero(bad)):
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//", edgecolor=kit.FLAG_COLOUR, lw=1.5))
    if bad.any():
        _add_proxy(ax, kit.flag_patch(ds))


# ----------------------------------------------------------------------------------- training
SPLIT_STYLE = {"train": "-", "test": "--", None: "-"}


def _curve_groups(ds, variables):
    """Per-epoch variables, a training curve with its held-out twin in one group:
    ``train_cross_entropy`` + ``test_cross_entropy_curve`` -> ("cross_entropy", {train, test})."""
    names = variables or [v for v in ds.data_vars if "epoch" in ds[v].dims and ds[v].dtype.kind in "fiu"
                          and "sample" not in ds[v].dims and not kit.is_reference(v)]
    names = [v for v in names if "epoch" in ds[v].dims]
    if not names:
        raise SpecError("this run stores no per-epoch variables (dim `epoch`) to draw training curves of")
    twins = {}
    for v in names:  # pairs first: the held-out curve may come before its training twin
        stem = v[len("train_"):] if v.startswith("train_") else None
        twin = next((t for t in (f"test_{stem}_curve", f"test_{stem}") if t in names), None) if stem else None
        if twin and ds[twin].dims == ds[v].dims:
            twins[v], twins[twin] = stem, stem
    groups, done = [], set()
    for v in names:
        stem = twins.get(v)
        if stem is None:
            groups.append((v, {None: v}))
        elif stem not in done:
            done.add(stem)
            groups.append((stem, {"train": f"train_{stem}", "test": next(t for t in twins if twins[t] == stem
                                                                         and t != f"train_{stem}")}))
    return groups


def _training(ds, variables, col_wrap, caption):
    groups = _curve_groups(ds, variables)
    cells = []
    for stem, members in groups:
        first = ds[next(iter(members.values()))]
        dims = [d for d in first.dims if d not in ("epoch", "seed") and first.sizes[d] > 1]
        numeric = [d for d in dims if not kit.is_categorical(ds, d)]
        hue = (numeric or dims or [None])[0]
        fixed = {d: first[d].values[0] for d in first.dims if first.sizes[d] == 1 and d in first.coords}
        for where in _facets(ds, [d for d in dims if d != hue]):
            cells.append((stem, members, hue, {**fixed, **where}, where))
    if len(cells) > MAX_PANELS:
        raise SpecError(f"{len(cells)} training-curve panels: choose variables with --var or narrow with --sel")
    fig, axes = kit.panel_grid(len(cells), col_wrap or kit.balanced_columns(len(cells), MAX_COLUMNS), PANEL_W, PANEL_H)
    paired = any(None not in m for _, m, *_ in cells)
    seeds = ds.sizes.get("seed", 1)
    palette = kit.Palette()
    for ax, (stem, members, hue, at, where) in zip(axes, cells):
        _draw_curves(ax, ds, stem, members, hue, at, palette)
        base = ds[next(iter(members.values()))].attrs.get("long_name", stem) if None in members \
            else f"{stem.replace('_', ' ')} per epoch"
        ax.set_title(kit.display(kit.wrap(base, PANEL_W - 0.4)) + (f"\n{kit.where_text(ds, where)}" if where else ""))
    if paired:
        axes[0].plot([], [], "-", color="0.3", label="training split (solid)")
        axes[0].plot([], [], "--", color="0.3", label="held-out split (dashed)")
    how = f"mean ± sd band over {seeds} seeds" if seeds > 1 else ""
    kit.finish(fig, "training curves", _caption(ds, how) if caption else "")
    return fig


def _draw_curves(ax, ds, stem, members, hue, at, palette):
    epochs = ds["epoch"].values
    hue_values = list(ds[hue].values) if hue else [None]
    # a curve without a hue is dark grey: blue would read as the first hue value of other panels
    colour = palette.colours(ds, hue, hue_values) if hue else {None: "0.25"}
    arrays = []
    for split, name in members.items():
        da = _pick(ds[name].astype(float), at)
        for hv in hue_values:
            y = _series(da, hue, hv)
            mean = y.mean("seed") if "seed" in y.dims else y
            label = kit.coord_text(ds, hue, hv) if hue else None
            ax.plot(epochs, mean.values, SPLIT_STYLE[split], color=colour[hv], lw=1.4, marker="." if len(epochs) < 15 else None,
                    label=label)
            arrays.append(mean.values)
            if "seed" in y.dims and y.sizes["seed"] > 1:
                sd = y.std("seed", ddof=1).values
                ax.fill_between(epochs, mean.values - sd, mean.values + sd, color=colour[hv], alpha=0.18, lw=0)
                arrays += [mean.values - sd, mean.values + sd]
    units = ds[next(iter(members.values()))].attrs.get("units", "")
    null = _pick(kit._named(ds, "null_entropy"), at) if "cross_entropy" in stem else None
    if null is not None and null.ndim == 0 and units == "bit":
        ax.axhline(float(null), ls=":", color="0.2", lw=1.2, label="H_V(Y|∅): entropy of the null model")
        arrays.append(np.atleast_1d(float(null)))
    log = kit.wants_log(np.concatenate([np.ravel(a) for a in arrays]), units)
    if log:
        ax.set_yscale("log")
    else:
        ax.set_ylim(*kit.value_limits(arrays, units=units))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(kit.axis_label(ds[next(iter(members.values()))], stem))
