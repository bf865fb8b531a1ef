"""The ``usable`` command line: plugins, list, run, results (and whatever plugins add).

Only light modules are imported here, so ``usable --help`` and ``usable list`` start at once;
torch, xarray and the plugins' heavy parts load when a command needs them.
"""
from __future__ import annotations

import gc
import json
import sys
import warnings
from dataclasses import fields

import click

from . import __version__
from .errors import UserError
from .progressbar import VERBOSITY
from .registry import KINDS, get_manager
from .runspec import DEFAULT_DIVERGENCE, FitConfig, RunSpec, load_config


class UsableGroup(click.Group):
    """User errors become one line naming the fix (``-v``/``--traceback``: the full traceback);
    anything else keeps its traceback. ``-q`` also silences Python warnings for the command."""

    def invoke(self, ctx):
        level = ctx.params.get("verbosity")
        with warnings.catch_warnings():
            if level == 0:
                warnings.simplefilter("ignore")
            try:
                return super().invoke(ctx)
            except UserError as exc:
                if ctx.meta.get("usable.traceback") or level == 2:
                    raise
                raise click.ClickException(str(exc)) from None


def _set_traceback(ctx, _param, value):
    ctx.meta["usable.traceback"] = value


@click.group(cls=UsableGroup)
@click.version_option(__version__, prog_name="usable")
@click.option("--traceback", is_flag=True, expose_value=False, callback=_set_traceback, is_eager=True,
              help="show the full traceback of user errors too")
@click.option("-q", "--quiet", "verbosity", flag_value=0,
              help="only results and errors: no progress, notices or warnings")
@click.option("-v", "--verbose", "verbosity", flag_value=2, help="more detail, and the traceback of user errors")
def cli(verbosity):
    """Measure how much information about a target a family of decoders can use."""
    VERBOSITY["level"] = 1 if verbosity is None else verbosity


def notice(message: str) -> None:
    """A line for the user that is not a result (a fallback taken, a plugin that failed): on
    stderr, and not at all under ``usable -q``."""
    if VERBOSITY["level"] > 0:
        click.echo(message, err=True)


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
        click.option("--divergence", help=f"divergence spec, or none [{DEFAULT_DIVERGENCE}]"),
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
    for warning in ds.attrs.get("warnings") or []:
        notice(f"warning: {warning}")
    if store:
        run_id = Results(store, create=True).write_run(ds, run_id=name)
        click.echo(f"stored as run {run_id!r} in {store}")


def make_cli() -> click.Group:
    """The ``usable`` group with every plugin's commands added (a failing plugin is reported)."""
    pm = get_manager()
    for impl in pm.pm.hook.register_commands.get_hookimpls():
        try:
            impl.function(cli=cli)
        except Exception as exc:  # a plugin's command must not break the CLI
            notice(f"warning: plugin {impl.plugin_name!r} failed in register_commands: {exc}")
    return cli


def main(argv=None):
    # The console command is one short-lived process, so two garbage-collector settings pay
    # (measured on `usable run rine`, 2-core machine): collecting young objects every 50,000
    # allocations instead of 700 keeps the import of torch and xarray from triggering hundreds
    # of full scans (0.4-0.9 s), and freezing everything before exit lets the interpreter's
    # shutdown skip scanning torch's objects (1.2 s -> 0.3 s). Cycles are still collected;
    # library use (import usable) keeps Python's defaults.
    gc.set_threshold(50_000, 20, 20)
    try:
        return make_cli().main(args=argv, prog_name="usable")
    finally:
        gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
