"""`usable results plot`: every generic plot kind rendered to PNG from real (small) runs.

Each image must be non-blank and of a sensible size (a wrapped grid, never one 3000-px row), its
text must speak in words (no ``(0.0,)`` tuple reprs anywhere), text dims must be bars not lines,
bits must be drawn on ranges that include 0, the references a run knows (ground truth, the paper's
numbers) must be there, a ``flags`` variable must mark the cells it flags, and a ``<var>_ci``
interval must replace the seed sd as the error bar.
"""
import re

import matplotlib.image as mpimg
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.text import Text

import usable
from usable.cli import make_cli
from usable_results import plotkit
from usable_results.plots import GENERIC_KINDS, make_figure, plot_run

MAX_W, MAX_H = 2000, 1700  # pixels at the default 120 dpi
TUPLE_REPR = re.compile(r"\(\s*['\"\d.-]|,\)")


def _run(args):
    out = CliRunner().invoke(make_cli(), args, catch_exceptions=False)
    assert out.exit_code == 0, out.output
    return out.output


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Real fits, small: a RINE β sweep, a Table A5 run, a redundancy matrix, usable information."""
    store = tmp_path_factory.mktemp("plots") / "r.zarr"
    quiet = ["--no-progress", "--threads", "1", "--store", str(store)]
    _run(["run", "rine", "--source", "pid:task=rdnxor,n=800", "--beta", "0,5,15", "--seed", "0-2",
          "--epochs", "3", "--name", "rine", *quiet])
    _run(["run", "rine_table:tasks=unq+rdnxor,n=800,average_last=2", "--decoder", "mlp:hidden=10",
          "--beta", "0,15", "--seed", "0-1", "--epochs", "2", "--name", "table", *quiet])
    _run(["run", "--config", "neural-fig3", "--epochs", "2", "--name", "matrix", *quiet])
    _run(["run", "usable", "--source", "digits:view=crops,width=4", "--seed", "0-1", "--epochs", "2",
          "--name", "usable", *quiet])
    res = usable.open_results(store)
    return store, {name: res[name].load() for name in res.runs}


def _check_png(path):
    img = mpimg.imread(path)
    h, w = img.shape[:2]
    assert 150 < w <= MAX_W and 150 < h <= MAX_H, (path, w, h)
    assert img[..., :3].std() > 0.05, f"{path} is blank"
    return w, h


def _caption(fig):
    return " ".join(t.get_text() for t in fig.texts).replace("\n", " ").replace("\u00a0", " ")


def _legend_texts(fig):
    """The figure's one legend: below the panels, or in an empty cell of the grid."""
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return [t.get_text() for leg in legends for t in leg.get_texts()]


def _all_texts(fig):
    """Every string drawn: titles, axis labels, tick labels, legends, the caption."""
    texts = [t.get_text() for t in fig.findobj(Text)]
    return [t for t in texts if t]


def _no_lines_between_categories(fig):
    """On an axis of text ticks, no solid Line2D in data coordinates may join two or more points
    (a bar chart's reference marks are LineCollections, a bound across the panel an axhline;
    markers have no line)."""
    for ax in fig.axes:
        ticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        if not ticks or all(re.fullmatch(r"[−\d.,e+-]+", t) for t in ticks):
            continue
        joined = [ln for ln in ax.lines if ln.get_transform() is ax.transData and len(ln.get_xdata()) > 1
                  and ln.get_linestyle() not in ("None", "none", "")]
        assert not joined, (ax.get_title(), ticks, [ln.get_label() for ln in joined])


def _render(ds, kind, path, **options):
    fig = make_figure(ds, kind, **options)
    plotkit.save(fig, str(path))  # drawing first: tick labels exist only once drawn
    texts = _legend_texts(fig)
    words = _all_texts(fig)
    assert not [t for t in words if TUPLE_REPR.search(t)], words
    _no_lines_between_categories(fig)
    _check_png(path)
    return fig, texts


CASES = [("rine", "summary"), ("rine", "all"), ("rine", "training"), ("table", "summary"), ("table", "all"),
         ("table", "heatmap"), ("matrix", "heatmap"), ("matrix", "summary"), ("usable", "summary"),
         ("usable", "all"), ("usable", "training")]


def test_every_kind_is_exercised():
    assert {k for _, k in CASES} == set(GENERIC_KINDS)


@pytest.mark.parametrize("run,kind", CASES)
def test_kind_renders_a_sensible_png(runs, run, kind, tmp_path):
    _, ds = runs
    _render(ds[run], kind, tmp_path / f"{run}-{kind}.png")


def test_the_rine_sweep_shows_truth_on_a_range_from_zero(runs, tmp_path):
    ds = runs[1]["rine"]
    fig, texts = _render(ds, "summary", tmp_path / "s.png")
    ax = fig.axes[0]
    assert "ground truth" in texts
    assert any(isinstance(ln, Line2D) and list(ln.get_ydata()) == [1.0, 1.0] for ln in ax.lines)  # 1 bit, rdnxor
    lo, hi = ax.get_ylim()
    assert -0.05 < lo <= 0 and hi >= 1.0
    assert ax.get_xlabel() == "β" and "bit" in ax.get_ylabel()
    caption = _caption(fig)
    # the run stores its bootstrap interval, which the error bars then show instead of the seed sd
    for token in ("metric rine", "pid:task=rdnxor", "decoder mlp", "β 0, 5, 15", "seeds 0–2", "epochs 3",
                  "95% bootstrap CI"):
        assert token in caption, token
    plain = ds.drop_vars(["redundant_information_ci"])
    assert "sd over 3 seeds" in _caption(_render(plain, "summary", tmp_path / "p.png")[0])


def test_text_dims_are_bars_not_lines(runs):
    fig = make_figure(runs[1]["usable"], "summary")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["left", "right"]
    assert len(ax.patches) >= 2
    assert not [ln for ln in ax.lines if len(ln.get_xdata()) > 1 and ln.get_linestyle() == "-"]


def test_table_a5_has_a_panel_per_task_with_paper_and_truth(runs, tmp_path):
    ds = runs[1]["table"]
    fig, texts = _render(ds, None, tmp_path / "t.png")
    assert [ax.get_title() for ax in fig.axes] == ["task = unq", "task = rdnxor"]
    assert "ground truth" in texts and any("paper" in t for t in texts)
    # the paper's β = 15 numbers as markers: unq 0.006, rdnxor 0.977
    marks = [ln for ax in fig.axes for ln in ax.lines if ln.get_marker() == "D"]
    assert sorted(round(float(y), 3) for ln in marks for y in ln.get_ydata()) == [0.006, 0.977, 0.981, 0.981]


def test_wide_grids_wrap(runs, tmp_path):
    w, _ = _check_png(plot_run(runs[1]["rine"], str(tmp_path / "a.png"), kind="training"))
    assert w <= 3 * 3.4 * 120 + 50  # 5 panels: 3 + 2


def _flag_entries(texts):
    return [t for t in texts if t.startswith(plotkit.FLAG_PREFIX)]


def _with_flags(da, where, reason):
    """A ``flags`` variable as the guard writes it: text over the variable's dims, "" = plausible."""
    flags = xr.full_like(da, "", dtype=object)
    flags.loc[where] = reason
    return flags


def test_flagged_points_are_hollow_red_crossed_markers(runs, tmp_path):
    rine = runs[1]["rine"].copy()
    rine["flags"] = _with_flags(rine.redundant_information, {"seed": 0, "beta": 15.0}, "negative redundancy")
    fig, texts = _render(rine, "summary", tmp_path / "f.png")
    assert texts[-1] == "flagged: negative redundancy"
    marked = [ln for ln in fig.axes[0].lines if ln.get_label() == texts[-1]]
    assert [list(ln.get_xdata()) for ln in marked] == [[15.0]]
    assert marked[0].get_markerfacecolor() == "none" and marked[0].get_markeredgecolor() == plotkit.FLAG_COLOUR
    assert "negative redundancy" in _caption(fig)


def test_flagged_bars_are_hatched(runs, tmp_path):
    use = runs[1]["usable"].copy()
    use["flags"] = _with_flags(use.usable_information, {"source": "right", "seed": 1}, "implausible")
    fig, texts = _render(use, "summary", tmp_path / "b.png")
    hatched = [p for p in fig.axes[0].patches if p.get_hatch() and p.get_height() > 0]
    assert len(hatched) == 1 and hatched[0].get_x() > 0.5 and _flag_entries(texts) == ["flagged: implausible"]


def test_flagged_heatmap_cells_are_hatched(runs, tmp_path):
    matrix = runs[1]["matrix"].copy()
    pair = {"source_a": matrix.source_a.values[0], "source_b": matrix.source_b.values[1]}
    matrix["flags"] = _with_flags(matrix.redundant_information, pair, "I∩ above min(I(X_a;Y), I(X_b;Y))")
    fig, texts = _render(matrix, "heatmap", tmp_path / "h.png")
    cells = [p for p in fig.axes[0].patches if p.get_hatch() and p.get_width() == 1]
    assert [(c.get_y() + 0.5, c.get_x() + 0.5) for c in cells] == [(0, 1)]
    assert _flag_entries(texts) == [plotkit.display("flagged: I∩ above min(I(X_a;Y), I(X_b;Y))")]


def test_without_flags_nothing_is_marked(runs):
    """(This 3-epoch run is flagged for real, agreement not reached: without its flags nothing is marked.)"""
    ds = runs[1]["rine"]
    assert any(ds.flags.values.ravel())
    texts = _legend_texts(make_figure(ds.drop_vars("flags"), "all"))
    assert not _flag_entries(texts)


def _with_interval(ds, var, low, high):
    """``<var>_ci`` as the bootstrap work writes it: the cells of the seed mean, a ``ci`` dim (low, high)."""
    mean = ds[var].mean("seed")
    ci = xr.concat([mean - low, mean + high], dim="ci").assign_coords(ci=["low", "high"])
    return ds.assign({f"{var}_ci": ci.transpose(..., "ci")})


def test_a_stored_interval_replaces_the_seed_sd(runs, tmp_path):
    ds = _with_interval(runs[1]["rine"], "redundant_information", 0.2, 0.1)
    fig, texts = _render(ds, "summary", tmp_path / "ci.png")
    bars = [c for c in fig.axes[0].collections if isinstance(c, LineCollection) and len(c.get_segments()) == 3]
    spans = [seg[:, 1].max() - seg[:, 1].min() for seg in bars[0].get_segments()]
    np.testing.assert_allclose(spans, 0.3, atol=1e-9)
    assert "error bars: 95% bootstrap CI" in _caption(fig) and "error bars: 95% bootstrap CI" in texts
    assert "sd over" not in _caption(fig)
    # the ends are found by their labels, whatever order they are stored in
    flipped = ds.assign(redundant_information_ci=ds.redundant_information_ci.isel(ci=[1, 0]))
    bars = [c for c in make_figure(flipped, "summary").axes[0].collections if isinstance(c, LineCollection)]
    np.testing.assert_allclose([np.ptp(seg[:, 1]) for seg in bars[0].get_segments()], 0.3, atol=1e-9)


def test_a_stored_interval_annotates_heatmap_cells(runs, tmp_path):
    ds = _with_interval(runs[1]["matrix"], "redundant_information", 0.05, 0.05)
    fig, _ = _render(ds, "heatmap", tmp_path / "hci.png")
    cell = f"{float(ds.redundant_information.mean('seed')[0, 0, 0]):.2f}"
    low = float(ds.redundant_information_ci[0, 0, 0, 0])
    assert any(t.get_text().startswith(cell + f"\n{low:.2f}–") for t in fig.axes[0].texts)
    assert "range under each value: 95% bootstrap CI" in _caption(fig)


def test_ground_truth_from_a_variable_or_the_attrs(runs, tmp_path):
    """``true_redundancy`` (a variable over the run's dims) or ``true_redundancy_bits`` (an attr)."""
    base = runs[1]["rine"].copy()
    base.attrs.pop("source_true_redundancy_bits", None)
    assert "ground truth" not in _legend_texts(make_figure(base, "summary"))
    by_var = base.assign(true_redundancy=xr.DataArray([0.5, 0.5, 0.5], dims="beta", coords={"beta": base.beta}))
    by_attr = base.assign_attrs(true_redundancy_bits=0.5)
    for name, ds in (("var", by_var), ("attr", by_attr)):
        fig, texts = _render(ds, "summary", tmp_path / f"truth-{name}.png")
        assert "ground truth" in texts
        assert any(list(ln.get_ydata()) == [0.5, 0.5] or list(ln.get_ydata()) == [0.5, 0.5, 0.5] for ln in fig.axes[0].lines)


def test_a_paper_mean_variable_is_drawn_as_markers(runs, tmp_path):
    ds = runs[1]["rine"].copy()
    ds["paper_mean"] = xr.DataArray([0.9, 0.95, 0.97], dims="beta", coords={"beta": ds.beta},
                                    attrs={"long_name": "Paper Table 1 mean over 5 seeds", "units": "bit"})
    fig, texts = _render(ds, "summary", tmp_path / "paper.png")
    assert "Paper Table 1, mean over 5 seeds" in texts
    marks = [ln for ln in fig.axes[0].lines if ln.get_marker() == "D"]
    np.testing.assert_allclose(marks[0].get_ydata(), [0.9, 0.95, 0.97])


def test_value_ranges_do_not_zoom_into_noise():
    assert -0.05 < plotkit.value_limits([np.array([0.9612, 0.9615])], units="bit")[0] <= 0
    lo, hi = plotkit.value_limits([np.array([-0.0014])], units="bit")
    assert 0 <= hi < 0.01 and lo <= -0.1


def test_cli_plot_options_and_errors(runs, tmp_path):
    store, _ = runs
    png = tmp_path / "c.png"
    out = _run(["results", "plot", str(store), "rine", "--kind", "training", "--var", "train_loss",
                "--col-wrap", "1", "--dpi", "80", "--no-caption", "-o", str(png)])
    assert str(png) in out and _check_png(png)
    # the metric's own heatmap stays the default of redundancy_matrix; the generic one is a kind
    assert "wrote" in _run(["results", "plot", str(store), "matrix", "--kind", "heatmap", "-o", str(png)])
    bad = CliRunner().invoke(make_cli(), ["results", "plot", str(store), "rine", "--kind", "nope", "-o", str(png)])
    assert bad.exit_code != 0 and "summary, all, heatmap, training" in bad.output
    bad = CliRunner().invoke(make_cli(), ["results", "plot", str(store), "table", "--kind", "training", "-o", str(png)])
    assert bad.exit_code != 0 and "no per-epoch variables" in bad.output
