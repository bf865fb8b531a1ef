"""The ``usable`` command line: plugins, list, run, results (and whatever plugins add)."""
from __future__ import annotations

import json
import sys
from dataclasses import fields
from pathlib import Path

import click

from . import __version__
from .fit import DIVERGENCE_FORMS, FitConfig
from .params import SpecError
from .registry import KINDS, PluginError, UnknownName, get_manager
from .spec import parse_spec

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore


class UsableGroup(click.Group):
    """Turns the engine's own errors into one clear line instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (SpecError, UnknownName, PluginError, FileNotFoundError, ValueError) as exc:
            msg = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
            raise click.ClickException(msg) from exc


@click.group(cls=UsableGroup)
@click.version_option(__version__, prog_name="usable")
def cli():
    """Measure how much information about a target a family of decoders can use."""


# ------------------------------------------------------------------------------------ plugins
@cli.command("plugins")
@click.option("--kind", type=click.Choice(KINDS), help="only plugins that provide this kind")
def plugins_cmd(kind):
    """List loaded plugins, their distribution and version, and what they provide."""
    pm = get_manager()
    provided = {}
    for k in KINDS:
        for name, e in pm.registry(k).entries.items():
            provided.setdefault(e.plugin, {}).setdefault(k, []).append(name)
    for p in pm.plugins:
        if kind and kind not in provided.get(p.name, {}):
            continue
        status = f"  FAILED TO LOAD: {p.error}" if p.error else ""
        click.echo(f"{p.name}  ({p.distribution} {p.version}, module {p.module}){status}")
        for k, names in sorted(provided.get(p.name, {}).items()):
            click.echo(f"    {k}: {', '.join(sorted(names))}")


@cli.command("list")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("pattern", required=False)
@click.option("-v", "--verbose", is_flag=True, help="show every parameter")
def list_cmd(kind, pattern, verbose):
    """List registered sources|decoders|divergences|schedules|metrics (PATTERN takes wildcards)."""
    reg = get_manager().registry(kind)
    names = reg.names(pattern)
    if not names:
        click.echo(f"no {kind} match {pattern!r}" if pattern else f"no {kind} registered")
    for name in names:
        e = reg.get(name)
        params = ", ".join(f"{p.name}={p.default}" for p in e.params)
        click.echo(f"{name:<20} {e.help}" + (f"  [{params}]" if params and not verbose else ""))
        if verbose:
            for p in e.params:
                click.echo(f"    {p.describe()}")
            click.echo(f"    (plugin {e.plugin}, {e.distribution} {e.version})")


# ------------------------------------------------------------------------------------ run
RUN_KEYS = ("metric", "source", "decoder", "divergence", "schedule", "beta", "seed", "store", "name")
FIT_KEYS = {f.name for f in fields(FitConfig)}


def load_config(path: str | None) -> dict:
    if not path:
        return {}
    with open(path, "rb") as fh:
        cfg = tomllib.load(fh)
    unknown = set(cfg) - set(RUN_KEYS) - FIT_KEYS - {"grid", "paper", "description", "sweep"}
    if unknown:
        raise SpecError(f"config {path}: unknown keys {sorted(unknown)}; known: {sorted(set(RUN_KEYS) | FIT_KEYS)}")
    return cfg


def fit_options(f):
    """Click options for every FitConfig field (shared by run and sweep)."""
    opts = [
        click.option("--epochs", type=int, help="training epochs [30]"),
        click.option("--batch-size", type=int, help="mini-batch size [128]"),
        click.option("--optimizer", type=click.Choice(["sgd", "adam", "adamw"]), help="optimiser [sgd]"),
        click.option("--lr", type=float, help="initial learning rate [0.01]"),
        click.option("--lr-decay", type=float, help="learning-rate factor per epoch [0.97]"),
        click.option("--momentum", type=float, help="SGD momentum [0.9]"),
        click.option("--weight-decay", type=float, help="weight decay [0.005]"),
        click.option("--schedule-per-step/--schedule-per-epoch", default=None, help="apply β-schedule per step"),
        click.option("--divergence-form", type=click.Choice(DIVERGENCE_FORMS), help="n-source divergence [pairwise]"),
        click.option("--device", help="auto | cpu | cuda[:k] [auto]"),
        click.option("--threads", type=int, help="torch threads (1 is fastest for tiny decoders)"),
        click.option("--stop-loss", type=float, help="stop when the training loss is <= this"),
        click.option("--progress/--no-progress", default=None, help="progress bar [on]"),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def build_fit_config(cfg: dict, cli_values: dict) -> FitConfig:
    values = {k: v for k, v in cfg.items() if k in FIT_KEYS}
    values.update({k: v for k, v in cli_values.items() if k in FIT_KEYS and v is not None})
    return FitConfig(**values)


def build_context(metric, sources, decoder, divergence, schedule, betas, seeds, fit_config):
    from .run import RunContext, parse_float_list, parse_int_list
    return RunContext(
        metric=parse_spec(metric), sources=[parse_spec(s) for s in sources],
        decoder=parse_spec(decoder),
        divergence=None if str(divergence).lower() == "none" else parse_spec(divergence),
        schedule=parse_spec(schedule), betas=parse_float_list(betas) or [0.0],
        seeds=parse_int_list(seeds) or [0], fit_config=fit_config)


def resolve_run_args(config, metric, source, decoder, divergence, schedule, beta, seed, store, fit_kw):
    """Merge a TOML config with command-line flags (flags win)."""
    cfg = load_config(config)
    as_list = lambda v: [v] if isinstance(v, (str, int, float)) else list(v or [])  # noqa: E731
    return dict(
        metric=metric or cfg.get("metric"),
        sources=list(source) or as_list(cfg.get("source")),
        decoder=decoder or cfg.get("decoder", "mlp"),
        divergence=divergence or cfg.get("divergence", "l1"),
        schedule=schedule or cfg.get("schedule", "exp"),
        betas=list(beta) or as_list(cfg.get("beta", [0.0])),
        seeds=list(seed) or as_list(cfg.get("seed", [0])),
        store=store or cfg.get("store"),
        fit_config=build_fit_config(cfg, fit_kw),
        cfg=cfg,
    )


def spec_options(f):
    """Click options naming the plugins, βs and seeds of a run (shared by run and sweep)."""
    opts = [
        click.argument("metric", required=False),
        click.option("--source", "-s", multiple=True, help="source spec, e.g. pid:task=and (repeatable)"),
        click.option("--decoder", "-d", help="decoder spec [mlp]"),
        click.option("--divergence", help="divergence spec [l1]"),
        click.option("--schedule", help="β-schedule spec [exp]"),
        click.option("--beta", "-b", multiple=True, help="β value(s): 15 or 0,5,15 (repeatable)"),
        click.option("--seed", multiple=True, help="seed(s): 0 or 0-4 or 0,3 (repeatable)"),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


@cli.command("run")
@spec_options
@click.option("--store", type=click.Path(), help="results store (zarr) to add the run to")
@click.option("--name", help="run id (default: metric-timestamp-random)")
@click.option("--config", "-c", type=click.Path(exists=True, dir_okay=False), help="TOML file of these options")
@fit_options
def run_cmd(metric, source, decoder, divergence, schedule, beta, seed, store, name, config, **fit_kw):
    """Run METRIC (e.g. usable, rine) and print a table; --store keeps it.

    \b
    Example:
      usable run rine --source pid:task=rdnxor --beta 15 --seed 0-4 --store results/r.zarr
    """
    from .run import run_metric
    from .store import write_run
    from .table import format_table, summarise

    a = resolve_run_args(config, metric, source, decoder, divergence, schedule, beta, seed, store, fit_kw)
    if not a["metric"]:
        raise click.UsageError("give a METRIC (see `usable list metrics`) or a --config with metric = ...")
    ctx = build_context(a["metric"], a["sources"], a["decoder"], a["divergence"], a["schedule"],
                        a["betas"], a["seeds"], a["fit_config"])
    ds = run_metric(ctx)
    if a["cfg"]:
        ds.attrs["config_file"] = str(config)
    click.echo(f"{ctx.metric}  sources: {' '.join(map(str, ctx.sources))}  decoder: {ctx.decoder}")
    click.echo(format_table(summarise(ds)))
    report = ds.attrs.get("report")
    if report:
        click.echo(report)
    if a["store"]:
        run_id = write_run(a["store"], ds, run_id=name or a["cfg"].get("name"))
        click.echo(f"stored as run {run_id!r} in {a['store']}")


# ------------------------------------------------------------------------------------ results
@cli.group("results")
def results_grp():
    """Query stored results: ls, show, export, plot."""


def _parse_sel(sel):
    out = {}
    for item in sel:
        if "=" not in item:
            raise click.BadParameter(f"--sel {item!r}: write dim=value")
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
        raise click.ClickException(f"--sel: no dimension {missing}; this run has dims {list(ds.sizes)}")
    try:
        return ds.sel(sel)
    except KeyError as exc:
        raise click.ClickException(f"--sel {sel}: value not found ({exc}); coordinates: "
                                   + "; ".join(f"{k}={ds[k].values.tolist()}" for k in sel)) from None


def _pick_run(res, run):
    if run:
        return run
    runs = res.runs
    if not runs:
        raise click.ClickException(f"{res.path} holds no runs")
    return res.table().sort_values("end_time").run.iloc[-1]


@results_grp.command("ls")
@click.argument("path", type=click.Path(exists=True))
def results_ls(path):
    """List the runs in a store with their metric and specs."""
    from .store import open_results
    t = open_results(path).table()
    click.echo(t.to_string(index=False) if not t.empty else f"{path}: no runs")


@results_grp.command("show")
@click.argument("path", type=click.Path(exists=True))
@click.argument("run", required=False)
@click.option("--sel", multiple=True, help="dim=value selection (repeatable)")
@click.option("--mean", "mean_dim", default="seed", show_default=True, help="dimension to average over")
@click.option("--attrs/--no-attrs", default=False, help="also print the run's provenance attrs")
def results_show(path, run, sel, mean_dim, attrs):
    """Show a run (default: the latest) as a table: mean (sd) over seeds."""
    from .store import open_results
    from .table import format_table, summarise
    res = open_results(path)
    run = _pick_run(res, run)
    ds = _select(res[run], sel)
    click.echo(f"run {run}: {ds.attrs.get('metric', '?')}  sources: {' '.join(ds.attrs.get('sources', []) or [])}")
    if ds.attrs.get("kind") == "sweep":  # sweeps: say how complete the shown part is
        from .sweep import sweep_status_line
        click.echo(sweep_status_line(ds))
    click.echo(format_table(summarise(ds, over=mean_dim)))
    if attrs:
        for k, v in sorted(ds.attrs.items()):
            click.echo(f"  {k}: {v}")


@results_grp.command("export")
@click.argument("path", type=click.Path(exists=True))
@click.argument("run")
@click.argument("out", type=click.Path())
@click.option("--sel", multiple=True, help="dim=value selection (repeatable)")
def results_export(path, run, out, sel):
    """Export a run to OUT: .csv (long table of the headline variables) or .nc (netCDF, everything)."""
    from .store import open_results
    from .table import headline_vars
    ds = _select(open_results(path)[run], sel).load()
    if out.endswith(".nc"):
        ds = ds.copy()
        ds.attrs = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in ds.attrs.items()}
        ds.to_netcdf(out)
    elif out.endswith(".csv"):
        names = headline_vars(ds)
        frames = [ds[v].to_dataframe(name="value").reset_index().assign(variable=v) for v in names]
        import pandas as pd
        pd.concat(frames, ignore_index=True).to_csv(out, index=False)
    else:
        raise click.BadParameter("OUT must end in .csv or .nc")
    click.echo(f"wrote {out}")


@results_grp.command("plot")
@click.argument("path", type=click.Path(exists=True))
@click.argument("run", required=False)
@click.option("--out", "-o", type=click.Path(), help="PNG file [RUN.png beside the store]")
@click.option("--kind", "plot_kind", help="which plot, where the metric offers several")
@click.option("--sel", multiple=True, help="dim=value selection (repeatable)")
def results_plot(path, run, out, plot_kind, sel):
    """Plot a run (the metric's own plot where it has one) to a PNG."""
    from .plotting import plot_run
    from .store import open_results
    res = open_results(path)
    run = _pick_run(res, run)
    ds = _select(res[run], sel)
    out = out or str(Path(path).with_suffix("")) + f"-{run}.png"
    try:
        written = plot_run(ds, out, kind=plot_kind)
    except Exception as exc:
        if ds.attrs.get("kind") != "sweep":
            raise
        # a metric's own plot may not expect the grid dims of a sweep: fall back to the generic one
        from .plotting import plot_generic
        click.echo(f"the metric's plot failed on this sweep ({exc}); using the generic plot", err=True)
        written = plot_generic(ds, out)
    for w in written if isinstance(written, list) else [written]:
        click.echo(f"wrote {w}")


def _add_plugin_commands():
    pm = get_manager()
    try:
        pm.pm.hook.register_commands(cli=cli)
    except Exception as exc:  # a plugin's command must not break the CLI
        click.echo(f"warning: a plugin failed in register_commands: {exc}", err=True)


def _add_core_commands():
    try:
        from .sweep import sweep_cmd
    except ImportError:
        return
    cli.add_command(sweep_cmd)


def make_cli() -> click.Group:
    """The ``usable`` group with the core's optional commands and every plugin's commands added."""
    _add_core_commands()
    _add_plugin_commands()
    return cli


def main(argv=None):
    return make_cli().main(args=argv, prog_name="usable")


if __name__ == "__main__":
    sys.exit(main())
