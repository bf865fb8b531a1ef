"""``usable results``: query stored results across stores, show, export and plot them.

A plugin like any third-party one (``register_commands``); it reads stores through
``usable.open_results``. Plots are drawn by the metric's own ``plot`` where it registered one,
else by the generic plot here (xarray's labelled plotting, categorical axes, a caption line).
"""
import json
from pathlib import Path

import click

from usable import UserError, hookimpl


def _parse_sel(sel):
    out = {}
    for item in sel:
        if "=" not in item:
            raise UserError(f"--sel {item!r}: write dim=value")
        k, v = item.split("=", 1)
        for conv in (int, float):
            try:
                v = conv(v)
                break
            except ValueError:
                continue
        out[k] = v
    return out


def _select(ds, sel):
    sel = _parse_sel(sel)
    missing = [k for k in sel if k not in ds.dims and k not in ds.coords]
    if missing:
        raise UserError(f"--sel: no dimension {missing}; this run has dims {list(ds.sizes)}")
    try:
        return ds.sel(sel)
    except KeyError as exc:
        raise UserError(f"--sel {sel}: value not found ({exc}); coordinates: "
                        + "; ".join(f"{k}={ds[k].values.tolist()}" for k in sel)) from None


def _open(path, run):
    from usable import open_results
    res = open_results(path)
    run = run or res.latest_run()
    return res, run, res[run]


def _status_line(ds) -> str:
    """How complete a run with a per-cell ``status`` flag variable (CF flag_values/flag_meanings,
    as sweeps write it) is, in the shown selection: ``over a, b: 6 cells: 6 done, 0 failed``."""
    import numpy as np
    st, attrs = np.asarray(ds["status"].values), ds["status"].attrs
    counts = ", ".join(f"{int((st == v).sum())} {m}" for v, m in zip(attrs["flag_values"], attrs["flag_meanings"].split()))
    return f"{ds.attrs.get('kind', 'run')} over {', '.join(ds['status'].dims) or '(selected cell)'}: {st.size} cells: {counts}"


@hookimpl
def register_commands(cli):
    @cli.group("results")
    def group():
        """Query stored results: ls, show, export, plot."""

    @group.command("ls")
    @click.argument("paths", nargs=-1, required=True)
    @click.option("--where", "-w", multiple=True, help="filter: metric=rine, 'beta>=5', lr<0.1, decoder!=mlp, "
                  "sources~pid:*xor* (operators = != < <= > >= ~; repeatable, all must hold)")
    @click.option("--values/--no-values", default=True, help="headline values (mean and sd over seeds) as columns")
    @click.option("--json", "as_json", is_flag=True, help="every column, one JSON object per run")
    def results_ls(paths, where, values, as_json):
        """List the runs of one or more stores: settings and headline values, one row per run.

        \b
        Example:
          usable results ls a.zarr b.zarr --where metric=rine --where 'beta>=5' --json
        """
        from usable import query_runs

        from .query import compact
        df = query_runs(paths, where, values)
        if as_json:
            click.echo(df.to_json(orient="records", indent=2))
        elif df.empty:
            click.echo("no runs" + (" match" if where else ""))
        else:
            shown, same, more = compact(df)
            click.echo(shown.to_string(index=False, na_rep="", float_format=lambda x: f"{x:.4f}"))
            if same:
                click.echo("same for every run: " + ", ".join(f"{k}={v}" for k, v in same.items()))
            if more:
                click.echo(f"({more} more value columns: --json, or `usable results show STORE RUN`)")

    @group.command("show")
    @click.argument("path")
    @click.argument("run", required=False)
    @click.option("--sel", multiple=True, help="dim=value selection (repeatable)")
    @click.option("--mean", "mean_dim", default="seed", show_default=True, help="dimension to average over")
    @click.option("--attrs/--no-attrs", default=False, help="also print the run's provenance attrs")
    def results_show(path, run, sel, mean_dim, attrs):
        """Show a run (default: the latest) as a table: mean (sd) over seeds."""
        _, run, ds = _open(path, run)
        ds = _select(ds, sel)
        click.echo(f"run {run}: {ds.attrs.get('metric', '?')}  sources: {' '.join(ds.attrs.get('sources', []) or [])}")
        if "status" in ds.data_vars and "flag_meanings" in ds["status"].attrs:
            click.echo(_status_line(ds))
        from usable import format_table, summarise
        click.echo(format_table(summarise(ds, over=mean_dim)))
        if attrs:
            for k, v in sorted(ds.attrs.items()):
                click.echo(f"  {k}: {v}")

    @group.command("export")
    @click.argument("path")
    @click.argument("run")
    @click.argument("out")
    @click.option("--sel", multiple=True, help="dim=value selection (repeatable)")
    def results_export(path, run, out, sel):
        """Export a run to OUT: .csv (long table of the headline variables) or .nc (netCDF, everything)."""
        if not out.endswith((".csv", ".nc")):
            raise UserError(f"OUT {out!r} must end in .csv or .nc")
        folder = Path(out).expanduser().absolute().parent
        if not folder.is_dir():
            raise UserError(f"cannot write {out}: the folder {folder} does not exist")
        import pandas as pd
        _, run, ds = _open(path, run)
        ds = _select(ds, sel).load()
        if out.endswith(".nc"):
            from usable import storable
            ds = storable(ds)
            ds.attrs = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in ds.attrs.items()}
            ds.to_netcdf(out)
        else:
            from usable import headline_vars
            frames = [ds[v].to_dataframe(name="value").reset_index().assign(variable=v) for v in headline_vars(ds)]
            pd.concat(frames, ignore_index=True).to_csv(out, index=False)
        click.echo(f"wrote {out}")

    @group.command("plot")
    @click.argument("path")
    @click.argument("run", required=False)
    @click.option("--out", "-o", help="PNG file [STORE-RUN.png beside the store]")
    @click.option("--kind", "plot_kind", help="summary (the result against β/sources, references, flags), all (every "
                  "headline variable, a wrapped grid), heatmap (two-dim results, a panel per β), training (per-epoch "
                  "curves); or a kind of the metric's own plot (track: nc1, gap, equisep, dib, plane, curves) "
                  "[the metric's own plot where it has one, else heatmap for pair matrices, else summary]")
    @click.option("--sel", multiple=True, help="dim=value selection (repeatable)")
    @click.option("--var", "variables", multiple=True, help="variable to draw instead of the kind's default (repeatable)")
    @click.option("--col-wrap", type=click.IntRange(1, 8), help="panels per row [balanced, at most 3]")
    @click.option("--dpi", type=click.IntRange(50, 600), default=120, show_default=True, help="resolution of the PNG")
    @click.option("--caption/--no-caption", default=True, show_default=True,
                  help="a line of run details (metric, sources, decoder, β, seeds, epochs) under the plot")
    def results_plot(path, run, out, plot_kind, sel, variables, col_wrap, dpi, caption):
        """Plot a run to a PNG: mean over seeds with error bars (seed sd, or the run's stored
        interval), ground truth and paper numbers where the run knows them, flagged values marked."""
        from .plots import GENERIC_KINDS, plot_generic, plot_run
        _, run, ds = _open(path, run)
        ds = _select(ds, sel)
        out = out or str(Path(path).with_suffix("")) + f"-{run}.png"
        options = dict(variables=list(variables), col_wrap=col_wrap, dpi=dpi, caption=caption)
        try:
            written = plot_run(ds, out, kind=plot_kind, **options)
        except UserError:
            raise
        except Exception as exc:
            if "status" not in ds:
                raise
            # a metric's own plot may not expect the grid dims of a sweep: fall back to the generic one
            click.echo(f"the metric's plot failed on this sweep ({exc}); using the generic plot", err=True)
            written = plot_generic(ds, out, plot_kind if plot_kind in GENERIC_KINDS else None, **options)
        for w in written if isinstance(written, list) else [written]:
            click.echo(f"wrote {w}")
