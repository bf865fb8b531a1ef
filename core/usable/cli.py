"""The ``usable`` command line: plugins, list, run, results (and whatever plugins add).

Only light modules are imported here, so ``usable --help`` and ``usable list`` start at once;
torch, xarray and the plugins' heavy parts load when a command needs them.
"""
from __future__ import annotations

import json
import sys
from dataclasses import fields
from pathlib import Path

import click

from . import __version__
from .errors import UserError
from .progressbar import VERBOSITY
from .registry import KINDS, get_manager
from .runspec import FitConfig, RunSpec, load_config


class UsableGroup(click.Group):
    """User errors become one line naming the fix; anything else keeps its traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            if ctx.meta.get("usable.traceback"):
                raise
            raise click.ClickException(str(exc)) from None


def _set_traceback(ctx, _param, value):
    ctx.meta["usable.traceback"] = value


@click.group(cls=UsableGroup)
@click.version_option(__version__, prog_name="usable")
@click.option("--traceback", is_flag=True, expose_value=False, callback=_set_traceback, is_eager=True,
              help="show the full traceback of user errors too")
@click.option("-q", "--quiet", "verbosity", flag_value=0, help="no progress output")
@click.option("-v", "--verbose", "verbosity", flag_value=2, help="more detail")
def cli(verbosity):
    """Measure how much information about a target a family of decoders can use."""
    VERBOSITY["level"] = 1 if verbosity is None else verbosity


def _echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


# ------------------------------------------------------------------------------------ plugins
@cli.command("plugins")
@click.option("--kind", type=click.Choice(KINDS), help="only plugins that provide this kind")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def plugins_cmd(kind, as_json):
    """List loaded plugins, their distribution and version, and what they provide."""
    pm = get_manager()
    provided: dict[str, dict[str, list[str]]] = {}
    clashes = []
    for k in KINDS:
        reg = pm.registry(k)
        for name, e in reg.entries.items():
            provided.setdefault(e.plugin, {}).setdefault(k, []).append(name)
        clashes += [reg.clash_message(n) for n in reg.clashes]
    rows = [{"name": p.name, "distribution": p.distribution, "version": p.version, "module": p.module,
             "error": p.error, "requires": sorted(p.requires), "provides": provided.get(p.name, {})}
            for p in pm.plugins if not kind or kind in provided.get(p.name, {})]
    if as_json:
        return _echo_json({"plugins": rows, "clashes": clashes})
    for r in rows:
        status = f"  FAILED TO LOAD: {r['error']}" if r["error"] else ""
        click.echo(f"{r['name']}  ({r['distribution']} {r['version']}, module {r['module']}){status}")
        if r["requires"]:
            click.echo(f"    requires: {', '.join(r['requires'])}")
        for k, names in sorted(r["provides"].items()):
            click.echo(f"    {k}: {', '.join(sorted(names))}")
    for msg in clashes:
        click.echo(f"CLASH: {msg}")


@cli.command("list")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("pattern", required=False)
@click.option("-v", "--verbose", is_flag=True, help="show every parameter")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def list_cmd(kind, pattern, verbose, as_json):
    """List registered sources|decoders|divergences|schedules|metrics (PATTERN takes wildcards)."""
    reg = get_manager().registry(kind)
    entries = [reg.get(n) for n in reg.names(pattern)]
    if as_json:
        return _echo_json([{"name": e.name, "help": e.help, "plugin": e.plugin, "distribution": e.distribution,
                            "version": e.version, "requires": list(e.requires),
                            "params": [{"name": p.name, "type": p.type_name, "default": p.default_text(),
                                        "choices": list(p.choices) if p.choices else None, "help": p.help}
                                       for p in e.params]} for e in entries])
    if not entries:
        click.echo(f"no {kind} match {pattern!r}" if pattern else f"no {kind} registered")
    for e in entries:
        params = ", ".join(f"{p.name}={p.default_text()}" for p in e.params)
        click.echo(f"{e.name:<20} {e.help}" + (f"  [{params}]" if params and not verbose else ""))
        if verbose:
            for p in e.params:
                click.echo(f"    {p.describe()}")
            click.echo(f"    (plugin {e.plugin}, {e.distribution} {e.version})")


# ------------------------------------------------------------------------------------ run
def fit_options(f):
    """One click option per FitConfig field, generated from its declaration (shared by run and sweep)."""
    for fl in reversed(fields(FitConfig)):
        p, flag = FitConfig.param(fl.name), "--" + fl.name.replace("_", "-")
        text = f"{fl.metadata['help']} [{p.default_text()}]"
        if p.type is bool:
            f = click.option(f"{flag}/--no-{flag[2:]}", fl.name, default=None, help=text)(f)
        else:
            kind = click.Choice(p.choices) if p.choices else {int: click.INT, float: click.FLOAT}.get(p.type)
            f = click.option(flag, fl.name, type=kind, help=text)(f)
    return f


def spec_options(f):
    """Click options naming the plugins, βs and seeds of a run (shared by run and sweep)."""
    opts = [
        click.argument("metric", required=False),
        click.option("--source", "-s", multiple=True, help="source spec, e.g. pid:task=and (repeatable)"),
        click.option("--decoder", "-d", help="decoder spec [mlp]"),
        click.option("--divergence", help="divergence spec, or none [l1]"),
        click.option("--schedule", help="β-schedule spec [exp]"),
        click.option("--beta", "-b", multiple=True, help="β value(s): 15 or 0,5,15 (repeatable)"),
        click.option("--seed", multiple=True, help="seed(s): 0 or 0-4 or 0,3 (repeatable)"),
        click.option("--config", "-c", help="TOML file, or the name of a shipped config (rine-table-a5)"),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def run_spec(config: dict, metric, source, decoder, divergence, schedule, beta, seed, **fit_kw) -> RunSpec:
    """The run the options describe (config file values, overridden by flags), checked against
    every plugin's declared parameters before anything runs."""
    return RunSpec.from_options(config, metric=metric, source=list(source), decoder=decoder, divergence=divergence,
                                schedule=schedule, beta=list(beta), seed=list(seed), **fit_kw).validate()


@cli.command("run")
@spec_options
@click.option("--store", help="results store (zarr) to add the run to")
@click.option("--name", help="run id (default: metric-timestamp-random)")
@fit_options
def run_cmd(config, store, name, **options):
    """Run METRIC (e.g. usable, rine) and print a table; --store keeps it.

    \b
    Example:
      usable run rine --source pid:task=rdnxor --beta 15 --seed 0-4 --store results/r.zarr
    """
    from .store import Results, check_run_id, store_path
    cfg = load_config(config)
    spec = run_spec(cfg, **options)
    store, name = store or cfg.get("store"), name or cfg.get("name")
    if store:  # store and name problems are reported now, not after training
        path = store_path(store)
        if name and (path / check_run_id(name)).exists():
            raise UserError(f"run {name!r} already exists in {path}; choose another --name")
    from .context import run_metric
    from .table import format_table, summarise
    ds = run_metric(spec)
    if cfg:
        ds.attrs["config_file"] = cfg["_path"]
    click.echo(f"{spec.metric}  sources: {' '.join(map(str, spec.sources))}  decoder: {spec.decoder}")
    click.echo(format_table(summarise(ds)))
    if ds.attrs.get("report"):
        click.echo(ds.attrs["report"])
    if store:
        run_id = Results(store, create=True).write_run(ds, run_id=name)
        click.echo(f"stored as run {run_id!r} in {store}")


# ------------------------------------------------------------------------------------ results
@cli.group("results")
def results_grp():
    """Query stored results: ls, show, export, plot."""


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
    from .store import open_results
    res = open_results(path)
    run = run or res.latest_run()
    return res, run, res[run]


@results_grp.command("ls")
@click.argument("path")
def results_ls(path):
    """List the runs in a store with their metric and specs."""
    from .store import open_results
    t = open_results(path).table()
    click.echo(t.to_string(index=False) if not t.empty else f"{path}: no runs")


@results_grp.command("show")
@click.argument("path")
@click.argument("run", required=False)
@click.option("--sel", multiple=True, help="dim=value selection (repeatable)")
@click.option("--mean", "mean_dim", default="seed", show_default=True, help="dimension to average over")
@click.option("--attrs/--no-attrs", default=False, help="also print the run's provenance attrs")
def results_show(path, run, sel, mean_dim, attrs):
    """Show a run (default: the latest) as a table: mean (sd) over seeds."""
    from .table import format_table, summarise
    _, run, ds = _open(path, run)
    ds = _select(ds, sel)
    click.echo(f"run {run}: {ds.attrs.get('metric', '?')}  sources: {' '.join(ds.attrs.get('sources', []) or [])}")
    if "status" in ds.data_vars and "flag_meanings" in ds["status"].attrs:
        click.echo(_status_line(ds))
    click.echo(format_table(summarise(ds, over=mean_dim)))
    if attrs:
        for k, v in sorted(ds.attrs.items()):
            click.echo(f"  {k}: {v}")


def _status_line(ds) -> str:
    """How complete a run with a per-cell ``status`` flag variable (CF flag_values/flag_meanings,
    as sweeps write it) is, in the shown selection: ``over a, b: 6 cells: 6 done, 0 failed``."""
    import numpy as np
    st, attrs = np.asarray(ds["status"].values), ds["status"].attrs
    counts = ", ".join(f"{int((st == v).sum())} {m}" for v, m in zip(attrs["flag_values"], attrs["flag_meanings"].split()))
    return f"{ds.attrs.get('kind', 'run')} over {', '.join(ds['status'].dims) or '(selected cell)'}: {st.size} cells: {counts}"


@results_grp.command("export")
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

    from .store import storable
    from .table import headline_vars
    _, run, ds = _open(path, run)
    ds = _select(ds, sel).load()
    if out.endswith(".nc"):
        ds = storable(ds)
        ds.attrs = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in ds.attrs.items()}
        ds.to_netcdf(out)
    else:
        frames = [ds[v].to_dataframe(name="value").reset_index().assign(variable=v) for v in headline_vars(ds)]
        pd.concat(frames, ignore_index=True).to_csv(out, index=False)
    click.echo(f"wrote {out}")


@results_grp.command("plot")
@click.argument("path")
@click.argument("run", required=False)
@click.option("--out", "-o", help="PNG file [STORE-RUN.png beside the store]")
@click.option("--kind", "plot_kind", help="which plot, where the metric offers several")
@click.option("--sel", multiple=True, help="dim=value selection (repeatable)")
def results_plot(path, run, out, plot_kind, sel):
    """Plot a run (the metric's own plot where it has one) to a PNG."""
    from .plotting import plot_generic, plot_run
    _, run, ds = _open(path, run)
    ds = _select(ds, sel)
    out = out or str(Path(path).with_suffix("")) + f"-{run}.png"
    try:
        written = plot_run(ds, out, kind=plot_kind)
    except Exception as exc:
        if "status" not in ds:
            raise
        # a metric's own plot may not expect the grid dims of a sweep: fall back to the generic one
        click.echo(f"the metric's plot failed on this sweep ({exc}); using the generic plot", err=True)
        written = plot_generic(ds, out)
    for w in written if isinstance(written, list) else [written]:
        click.echo(f"wrote {w}")


def make_cli() -> click.Group:
    """The ``usable`` group with every plugin's commands added (a failing plugin is reported)."""
    pm = get_manager()
    for impl in pm.pm.hook.register_commands.get_hookimpls():
        try:
            impl.function(cli=cli)
        except Exception as exc:  # a plugin's command must not break the CLI
            click.echo(f"warning: plugin {impl.plugin_name!r} failed in register_commands: {exc}", err=True)
    return cli


def main(argv=None):
    return make_cli().main(args=argv, prog_name="usable")


if __name__ == "__main__":
    sys.exit(main())
