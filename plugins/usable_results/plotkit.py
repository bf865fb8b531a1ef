"""Building blocks of the generic plots: labels, seed statistics, reference values, guard flags,
the run-details caption and a figure grid with room for one legend and the caption.

Everything here reads only what a stored run holds (dims, coordinates, ``long_name``/``units``
attrs, the run attrs), so it works on any metric's Dataset, sweeps included.
"""
from __future__ import annotations

import json
import math
import re
import textwrap
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.path import Path  # noqa: E402

FLAG_PREFIX = "flagged: "   # the legend entry is "flagged: <the run's reasons>"
FLAG_COLOUR = "#d62728"
MAX_REASON_CHARS = 60       # longer lists of reasons go to the caption, the legend says "+N more"
# Paper-sized defaults: 8-9 pt text at 120 dpi, no top/right spines.
STYLE = {"font.size": 8.5, "axes.titlesize": 9, "axes.labelsize": 8.5, "legend.fontsize": 8,
         "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False,
         "axes.grid": True, "grid.color": "0.9", "grid.linewidth": 0.6, "axes.axisbelow": True}
DIM_NAMES = {"beta": "β", "source_a": "source a", "source_b": "source b"}
NOT_VALUES = ("", "nan", "none", "None")
MIN_INFO_SPAN = 0.1  # bits: the smallest y range drawn, so noise of 1e-3 bit stays flat


# ------------------------------------------------------------------------------------ labels
def is_categorical(ds: xr.Dataset, dim: str) -> bool:
    """Text coordinates (sources, tasks, layers) have no distance between values: no lines."""
    return dim in ds.coords and ds[dim].dtype.kind not in "fiub"


def dim_label(ds: xr.Dataset, dim: str) -> str:
    attrs = ds[dim].attrs if dim in ds.coords else {}
    name = attrs.get("long_name") or DIM_NAMES.get(dim, dim.replace("_", " "))
    units = attrs.get("units", "")
    return f"{name} [{units}]" if units and units != "1" else name


def value_text(value) -> str:
    """``5.0`` -> ``5``, ``np.str_('left')`` -> ``left``: never a tuple or a numpy repr."""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    if isinstance(value, (np.integer, int)):
        return str(int(value))
    return str(value)


def coord_text(ds: xr.Dataset, dim: str, value) -> str:
    return f"{DIM_NAMES.get(dim, dim.replace('_', ' '))} = {value_text(value)}"


def where_text(ds: xr.Dataset, where: dict) -> str:
    return ", ".join(coord_text(ds, d, v) for d, v in where.items())


def axis_label(da: xr.DataArray, name: str | None = None) -> str:
    """Short y label: the variable's name and units (its long_name goes in the title)."""
    units = da.attrs.get("units", "")
    name = re.sub(r"\bbeta\b", "β", (name or str(da.name)).replace("_", " "))
    return f"{name} [{units}]" if units and units != "1" else name


def display(text: str) -> str:
    """Titles in the papers' notation: DejaVu Sans draws ∩ like an n, so I∩ becomes I with a
    subscript cap (mathtext)."""
    return text.replace("I∩", r"$I_\cap$")


def wrap(text: str, width_in: float, points: float = 9) -> str:
    """Wrap to a width in inches (a DejaVu Sans character is about 0.6 em wide on average), in
    lines of even length (no last line of one word), never inside ``β = 0``."""
    if not text:
        return ""
    text = text.replace(" = ", "\u00a0=\u00a0")  # textwrap does not break at no-break spaces
    chars = max(12, int(width_in * 72 / (0.6 * points)))
    lines = textwrap.wrap(text, chars, break_on_hyphens=False)
    for even in range(math.ceil(len(text) / len(lines)), chars):
        balanced = textwrap.wrap(text, even, break_on_hyphens=False)
        if len(balanced) == len(lines):
            lines = balanced
            break
    return "\n".join(lines).replace("\u00a0=\u00a0", " = ")


def singleton_text(ds: xr.Dataset, da: xr.DataArray) -> str:
    """The coordinates a panel is at without varying them (``β = 5`` of a one-β sweep)."""
    parts = []
    for d in da.dims:
        if d not in ("seed", "ci") and da.sizes[d] == 1 and d in da.coords:
            parts.append(coord_text(ds, d, da[d].values[0]))
    for name, c in da.coords.items():  # dims a --sel removed stay as scalar coordinates
        if c.ndim == 0 and name not in da.dims and name != "seed":
            parts.append(coord_text(ds, name, c.values[()]))
    return ", ".join(dict.fromkeys(parts))


# ---------------------------------------------------------------------------- seed statistics
@dataclass
class Stats:
    """Mean over seeds and the error bar below/above it (``None``: nothing to draw)."""
    mean: xr.DataArray
    below: xr.DataArray | None
    above: xr.DataArray | None
    how: str
    interval: bool = False   # the error bars are the run's stored interval, not the seed sd


def interval_of(ds: xr.Dataset, var: str, mean: xr.DataArray) -> xr.DataArray | None:
    """``<var>_ci`` with a ``ci`` dim of (low, high) over the same cells as the mean, else None."""
    ci = ds.get(f"{var}_ci")
    if ci is None or "ci" not in ci.dims or ci.sizes["ci"] != 2 or "seed" in ci.dims:
        return None
    if not set(ci.dims) - {"ci"} <= set(mean.dims):
        return None
    return ci.load().astype(float)


def interval_label(ci: xr.DataArray) -> str:
    """``95% bootstrap CI`` unless the interval's attrs say another level or method (its
    long_name is often the headline variable's, copied by arithmetic, so it is not used)."""
    level = ci.attrs.get("confidence_level", ci.attrs.get("level", 0.95))
    level = float(level) * 100 if float(level) <= 1 else float(level)
    return f"{level:g}% {ci.attrs.get('method', 'bootstrap')} CI"


def seed_stats(ds: xr.Dataset, var: str) -> Stats:
    """Mean over seeds; error bars from ``<var>_ci`` where the run stores one, else the seed sd
    (ddof 1, as ``usable results show`` prints it)."""
    da = ds[var].load().astype(float)
    n = da.sizes.get("seed", 1)
    mean = da.mean("seed", keep_attrs=True) if "seed" in da.dims else da
    ci = interval_of(ds, var, mean)
    if ci is not None:
        # by label where the run names the ends ("low", "high"), else in stored order
        named = "ci" in ci.coords and {"low", "high"} <= set(np.asarray(ci["ci"].values).astype(str))
        low, high = ((ci.sel(ci="low", drop=True), ci.sel(ci="high", drop=True)) if named
                     else (ci.isel(ci=0, drop=True), ci.isel(ci=1, drop=True)))
        return Stats(mean, (mean - low).clip(min=0), (high - mean).clip(min=0), f"error bars: {interval_label(ci)}",
                     interval=True)
    if n > 1:
        sd = da.std("seed", ddof=1)
        return Stats(mean, sd, sd, f"mean ± sd over {n} seeds")
    return Stats(mean, None, None, "one seed, no error bars" if "seed" in da.dims else "")


# ------------------------------------------------------------------------------- guard flags
def flag_mask(ds: xr.Dataset, var: str) -> xr.DataArray | None:
    """Which cells of ``var`` (seeds merged) are flagged implausible by the run's ``flags``
    variable ("" = plausible, else a one-line reason). A cell counts as flagged if any seed is.
    ``flags.attrs["variables"]`` may name the variables it speaks for; otherwise it speaks for
    every variable over (at least) its own cells, since a flagged cell is a suspect fit."""
    if "flags" not in ds.variables:
        return None
    flags = ds["flags"]
    named = flags.attrs.get("variables")
    if named is not None and var not in (named if isinstance(named, (list, tuple)) else str(named).split(",")):
        return None
    text = np.char.strip(np.asarray(flags.values).astype(str))
    bad = xr.DataArray(~np.isin(text, NOT_VALUES), dims=flags.dims, coords=flags.coords)
    if "seed" in bad.dims:
        bad = bad.any("seed")
    wanted = set(ds[var].dims) - {"seed"}
    return bad if set(bad.dims) <= wanted else None


def flag_reasons(ds: xr.Dataset) -> list[str]:
    """The distinct reasons of the ``flags`` variable, in order of first appearance."""
    if "flags" not in ds.variables:
        return []
    text = [t.strip() for t in np.asarray(ds["flags"].values).astype(str).ravel()]
    return list(dict.fromkeys(t for t in text if t not in NOT_VALUES))


def flag_label(ds: xr.Dataset) -> str:
    """``flagged: negative redundancy`` (reasons joined, the overflow counted: the caption has
    them all)."""
    reasons = flag_reasons(ds) or ["see `usable results show`"]
    shown = [reasons[0]]
    for r in reasons[1:]:
        if len("; ".join(shown + [r])) > MAX_REASON_CHARS:
            break
        shown.append(r)
    more = len(reasons) - len(shown)
    return display(FLAG_PREFIX + "; ".join(shown) + (f"; +{more} more" if more else ""))


def flag_marker() -> Path:
    """A circle with an x in it, one marker (so the legend shows exactly what the points do)."""
    cross = Path([(-0.62, -0.62), (0.62, 0.62), (-0.62, 0.62), (0.62, -0.62)],
                 [Path.MOVETO, Path.LINETO, Path.MOVETO, Path.LINETO])
    return Path.make_compound_path(Path.unit_circle(), cross)


def flag_point_style(ds: xr.Dataset) -> dict:
    """Keyword arguments of ``ax.plot`` for flagged points: hollow red circles crossed out."""
    return dict(ls="none", marker=flag_marker(), ms=11, mfc="none", mec=FLAG_COLOUR, mew=1.6, zorder=7,
                label=flag_label(ds))


def flag_patch(ds: xr.Dataset) -> Patch:
    """The legend entry of flagged bars and heatmap cells: red hatching."""
    return Patch(facecolor="white", edgecolor=FLAG_COLOUR, hatch="///", label=flag_label(ds), lw=1.2)


# --------------------------------------------------------------------------- reference values
@dataclass
class Reference:
    """A value the run knows the answer should be near: ground truth, or a published number."""
    label: str
    value: xr.DataArray
    spread: xr.DataArray | None = None   # the paper's sd, where published
    style: str = "truth"                 # truth: dashed line; paper: hollow diamonds; bound: dotted


def _named(ds: xr.Dataset, name: str) -> xr.DataArray | None:
    v = ds.get(name)
    return v.load().astype(float) if v is not None and v.dtype.kind in "fiu" else None


def _attr_truth(ds: xr.Dataset, var: str) -> xr.DataArray | None:
    """Ground truth a source wrote into the run attrs (``source_true_redundancy_bits``,
    ``source_mi_x1_bits`` per source of a gaussian task)."""
    a = ds.attrs
    if any(str(d).startswith("source_") for d in _listed(a.get("grid_dims"))):
        return None  # a sweep over the source: its attrs describe one cell, not every cell
    if var.startswith("redundant_information"):
        for key in ("true_redundancy_bits", "source_true_redundancy_bits"):
            if isinstance(a.get(key), (int, float)):
                return xr.DataArray(float(a[key]))
    if var == "usable_information" and "source" in ds.coords:
        per = [a.get(f"source_mi_{s}_bits") for s in ds["source"].values.astype(str)]
        if any(isinstance(v, (int, float)) for v in per):
            vals = [float(v) if isinstance(v, (int, float)) else np.nan for v in per]
            return xr.DataArray(vals, dims="source", coords={"source": ds["source"].values})
    return None


def references(ds: xr.Dataset, var: str) -> list[Reference]:
    refs = []
    truth = _named(ds, f"true_{var}")
    if truth is None and var.startswith("redundant_information"):
        truth = _named(ds, "true_redundancy")
    if truth is None:
        truth = _attr_truth(ds, var)
    if truth is not None and np.isfinite(truth.values).any():
        refs.append(Reference("ground truth", truth))
    paper_var = ds.attrs.get("compared_variable", "redundant_information")
    paper = _named(ds, f"paper_{var}")
    spread = _named(ds, f"paper_{var}_sd")
    if paper is None and var == paper_var:
        paper, spread = _named(ds, "paper_mean"), _named(ds, "paper_sd")
    if paper is not None and np.isfinite(paper.values).any():
        label = ds["paper_mean"].attrs.get("long_name", "paper") if "paper_mean" in ds else "paper"
        refs.append(Reference(label.replace(" mean over", ", mean over"), paper, spread, "paper"))
    null = _named(ds, "null_entropy")
    if null is not None and var in ("usable_information", "cross_entropy") and null.ndim <= 1:
        refs.append(Reference("H_V(Y|∅): entropy of the null model", null, style="bound"))
    return refs


def is_reference(name: str) -> bool:
    """Variables drawn as reference lines or error bars, not as panels of their own."""
    return name.startswith(("true_", "paper_")) or name.endswith("_ci") or name == "flags"


def varies_along(ref: Reference, dim: str) -> bool:
    if dim not in ref.value.dims:
        return False
    vals = ref.value.values
    axis = ref.value.dims.index(dim)
    return bool(np.nanmax(np.abs(vals - np.take(vals, [0], axis=axis)), initial=0) > 1e-12)


# ------------------------------------------------------------------------------------ caption
def _ranges(values) -> str:
    """``[0, 1, 2, 4]`` -> ``0-2, 4``."""
    vals = sorted(int(v) for v in values)
    out, start = [], None
    for i, v in enumerate(vals):
        start = v if start is None else start
        if i + 1 == len(vals) or vals[i + 1] != v + 1:
            out.append(f"{start}" if start == v else f"{start}–{v}")
            start = None
    return ", ".join(out)


def _listed(v) -> list:
    if isinstance(v, (list, tuple, np.ndarray)):
        return list(v)
    if isinstance(v, str) and v.startswith("["):
        try:
            return list(json.loads(v))
        except ValueError:
            return [v]
    return [] if v in (None, "", "none") else [v]


def run_caption(ds: xr.Dataset, errors: str = "") -> str:
    """One line of run details (wrapped by the figure): what was measured, on what, how."""
    a = ds.attrs
    parts = [f"{a.get('kind', 'run')} {a.get('run_id', '')}".strip(), f"metric {a.get('metric', '?')}"]
    sources = _listed(a.get("sources"))
    if sources:
        parts.append("source " + " ".join(map(str, sources)))
    betas = np.atleast_1d(ds["beta"].values if "beta" in ds.coords else _listed(a.get("betas")))
    # divergence and schedule only matter where some β > 0 (usable information trains at β = 0)
    weighted = any(float(b) != 0 for b in betas)
    for key in ("decoder", "divergence", "schedule") if weighted else ("decoder",):
        if a.get(key):
            parts.append(f"{key} {a[key]}")
    if weighted:
        parts.append("β " + ", ".join(value_text(b) for b in betas))
    if "seed" in ds.coords:  # a run without a seed dim (a k-NN estimate) had no seeds to use
        seeds = np.atleast_1d(ds["seed"].values)
        parts.append(f"seeds {_ranges(seeds)} (n = {len(seeds)})" if len(seeds) > 1 else f"seed {seeds[0]}")
    try:
        fit = json.loads(a.get("fit", "{}")) if isinstance(a.get("fit"), str) else dict(a.get("fit") or {})
    except ValueError:
        fit = {}
    # one part per setting, so that a line never ends in "lr" and starts with "0.01"
    parts += [f"{k.replace('_', ' ')} {fit[k]}" for k in ("epochs", "optimizer", "lr", "batch_size") if k in fit]
    if a.get("grid_dims"):
        parts.append("sweep over " + ", ".join(map(str, _listed(a["grid_dims"]))))
    if errors:
        parts.append(errors)
    # no-break spaces inside a part: the caption wraps between parts ("β 0, 5, 15" stays whole),
    # after a separator, never before one (no line starts with "·")
    return "\u00a0· ".join(p.replace(" ", "\u00a0") if len(p) < 40 else p for p in parts if p)


# ------------------------------------------------------------------------------- y axis range
def info_range(vals: np.ndarray, units: str = "") -> tuple[float, float]:
    """The finite values' range widened to include 0 and, in bits or nats, to span at least
    ``MIN_INFO_SPAN`` (for axes and colour bars alike)."""
    vals = np.asarray(vals, dtype=float)
    vals = vals[np.isfinite(vals)]
    lo, hi = min(0.0, float(vals.min(initial=0))), max(0.0, float(vals.max(initial=0)))
    if units in ("bit", "nat") and hi - lo < MIN_INFO_SPAN:
        lo, hi = (lo, lo + MIN_INFO_SPAN) if hi > 0 or lo == 0 else (hi - MIN_INFO_SPAN, hi)
    return lo, hi


def value_limits(arrays, log: bool = False, units: str = "") -> tuple[float, float] | None:
    """A range for bits and other magnitudes: it includes 0 and, in bits or nats, spans at
    least 0.1 (a 1e-3 bit difference should look like one), plus 6% headroom. Log axes keep
    matplotlib's range."""
    vals = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays if a is not None] or [np.zeros(0)])
    vals = vals[np.isfinite(vals)]
    if log or not vals.size:
        return None
    lo, hi = info_range(vals, units)
    span = (hi - lo) or 1.0
    # a little room below 0 too, so a reference line at 0 (no redundancy) is not hidden by the axis
    return (lo - 0.06 * span if lo < 0 else -0.03 * span, hi + 0.06 * span if hi > 0 else 0.03 * span)


def wants_log(values, units: str) -> bool:
    """Positive quantities over more than two decades (NC1, trace quotients); never bits."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return units not in ("bit", "nat") and v.size > 1 and v.min() > 0 and v.max() / v.min() > 100


# -------------------------------------------------------------------------------- hue colours
class Palette:
    """Colours for the values of each hue dim, distinct across dims within one figure (its one
    legend must not give blue to both ``task = unq`` and ``source = x1``): names take the next
    unused tab10 colours, numbers (β, widths) a sequential map, another map per numeric dim."""
    MAPS = ("viridis", "plasma", "cividis")

    def __init__(self):
        self.by_dim: dict[str, dict] = {}
        self.next_named = 0
        self.next_map = 0

    def colours(self, ds: xr.Dataset, dim: str | None, values) -> dict:
        if dim is None:
            return {None: "C0"}
        values = list(values)
        known = self.by_dim.setdefault(dim, {})
        fresh = [v for v in values if v not in known]
        if fresh and (is_categorical(ds, dim) or len(values) == 1):
            for v in fresh:
                known[v] = plt.get_cmap("tab10")(self.next_named % 10)
                self.next_named += 1
        elif fresh:
            cmap = plt.get_cmap(self.MAPS[self.next_map % len(self.MAPS)])
            self.next_map += 1
            for k, v in enumerate(values):
                known.setdefault(v, cmap(0.05 + 0.75 * k / max(1, len(values) - 1)))
        return {v: known[v] for v in values}


# ------------------------------------------------------------------------------ figure layout
def balanced_columns(n: int, max_cols: int) -> int:
    """Columns for ``n`` panels in rows of at most ``max_cols``, as even as possible (5 -> 3+2)."""
    rows = math.ceil(n / max_cols)
    return math.ceil(n / rows)


def panel_grid(n: int, cols: int, panel_w: float, panel_h: float, blocks: list[int] | None = None):
    """A figure of ``n`` panels, ``cols`` to a row; ``blocks`` (panel counts summing to n) each
    start on a new row. The unused cells are removed and remembered (``fig.free_cells``) so the
    legend can go there."""
    blocks = blocks or [n]
    cols = max(1, min(cols, max(blocks)))
    rows = sum(math.ceil(b / cols) for b in blocks)
    # constrained layout sizes every panel's margins to its own labels, titles and colour bar
    fig, axes = plt.subplots(rows, cols, figsize=(cols * panel_w, rows * panel_h), squeeze=False,
                             layout="constrained")
    used, row = [], 0
    for b in blocks:
        used += [axes[row + k // cols, k % cols] for k in range(b)]
        row += math.ceil(b / cols)
    spare = [ax for ax in axes.ravel() if not any(ax is u for u in used)]
    fig.free_cells = [ax.get_subplotspec() for ax in spare]
    for ax in spare:
        ax.remove()
    return fig, used


def first_in_row(ax) -> bool:
    return ax.get_subplotspec().is_first_col()


def unique_handles(fig) -> tuple[list, list[str]]:
    """Legend entries of every panel, each label once (flag entry last)."""
    seen: dict[str, object] = {}
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab and not lab.startswith("_") and lab not in seen:
                seen[lab] = h
    labels = sorted(seen, key=lambda s: (s != "this run", s.startswith(display(FLAG_PREFIX))))
    return [seen[k] for k in labels], labels


def legend_columns(labels: list[str], width_in: float) -> int:
    """As many entries to a row as fit the figure, rows balanced (6 entries, 4 fit -> 3 + 3).
    A column is as wide as its longest entry (8 pt text plus the handle); matplotlib fills the
    columns top to bottom."""
    def entry_in(text):
        return len(text) * 0.6 * 8 / 72 + 0.75

    for ncol in range(len(labels), 1, -1):
        rows = math.ceil(len(labels) / ncol)
        if math.ceil(len(labels) / rows) != ncol:
            continue  # the same rows as a smaller ncol: balanced columns only
        columns = [labels[k:k + rows] for k in range(0, len(labels), rows)]
        if sum(max(entry_in(t) for t in c) for c in columns) <= width_in - 0.2:
            return ncol
    return 1


def finish(fig, title: str = "", caption: str = "") -> None:
    """Title on top, one legend and the caption below the panels; the figure grows to hold
    them, so nothing overlaps and nothing is clipped."""
    w, h = fig.get_size_inches()
    handles, labels = unique_handles(fig)
    free = getattr(fig, "free_cells", [])
    if labels and free and len(labels) <= 10:  # an empty cell of the grid holds the legend
        box = fig.add_subplot(free[-1])
        box.axis("off")
        box.legend(handles, labels, loc="center", frameon=False, handlelength=2.2)
        labels = []
    ncol = legend_columns(labels, w) if labels else 1
    legend_h = math.ceil(len(labels) / ncol) * 0.19 + 0.1 if labels else 0.0
    caption = wrap(caption, w - 0.25, points=7)
    caption_h = (caption.count("\n") + 1) * 0.14 + 0.12 if caption else 0.0
    title = wrap(title, w - 0.3, points=10)
    title_h = (title.count("\n") + 1) * 0.2 + 0.05 if title else 0.0
    H = h + legend_h + caption_h + title_h
    fig.set_size_inches(w, H)
    if title:  # constrained layout makes room for a suptitle itself
        fig.suptitle(display(title), fontsize=10)
    # the panels are laid out above a strip kept for the legend and the caption, which are
    # placed in it by hand (constrained layout would put an outside legend under the caption)
    bottom = (legend_h + caption_h) / H
    fig.get_layout_engine().set(rect=(0, bottom, 1, 1 - bottom), h_pad=0.06, w_pad=0.06, hspace=0.04, wspace=0.04)
    if labels:
        legend = fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, caption_h / H), ncol=ncol,
                            frameon=False, handlelength=2.2)
        legend.set_in_layout(False)
    if caption:
        fig.text(0.01, 0.04 / H, display(caption), fontsize=7, color="0.3", ha="left", va="bottom")


def save(fig, out: str, dpi: int = 120) -> str:
    fig.savefig(out, dpi=dpi, bbox_inches="tight", pad_inches=0.08, pil_kwargs={"optimize": True})
    plt.close(fig)
    return str(out)
