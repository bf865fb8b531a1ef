"""``usable sweep``: a grid over run options and plugin parameters, run as tasks on
dask.distributed (or serially), streamed cell by cell into one group of the results store.

A plugin like any third-party one: it adds its command through ``register_commands`` and uses
only ``usable``'s public API (RunSpec, run_metric, Results). The command's body loads the sweep
machinery (xarray, zarr, dask) only when it runs. See docs/sweeps.md.
"""
import click

from usable import SpecError, StoreError, fit_options, hookimpl, load_config, run_spec, spec_options

SWEEP_OPTIONS = ("executor", "workers", "scheduler", "retries", "name")


@hookimpl
def register_commands(cli):
    @cli.command("sweep")
    @spec_options
    @click.option("--grid", "-g", multiple=True,
                  help="KEY=VALUES grid axis (repeatable): beta=0,5,15  seed=0-4  source.width=2,4  epochs=10,30")
    @click.option("--store", help="results store (zarr) the sweep streams into (required)")
    @click.option("--name", help="sweep id in the store [sweep-METRIC-<hash of the settings>]")
    @click.option("--executor", type=click.Choice(["dask", "serial"]), help="dask (default) or serial (debugging)")
    @click.option("--workers", type=click.IntRange(min=1), help="LocalCluster worker processes, 1 thread each [2]")
    @click.option("--scheduler", help="address of a running dask scheduler, e.g. tcp://SCHEDULER_HOST:8786")
    @click.option("--retries", type=click.IntRange(min=0), help="re-run a failing task up to K more times [0]")
    @click.option("--dry-run", is_flag=True, help="print the cells and tasks, run nothing")
    @fit_options
    @click.pass_context
    def sweep_cmd(cctx, config, grid, store, name, executor, workers, scheduler, retries, dry_run, **options):
        """Run METRIC over a grid of settings, resumably, into one group of a results store.

        \b
        Example:
          usable sweep rine --source pid:task=rdnxor --decoder linear --epochs 5 \\
              --grid source.task=rdnxor,and,unq --grid beta=0,5,15 --grid seed=0-4 \\
              --store results/sweep.zarr --workers 2
        Re-running the same command skips the cells already done.
        """
        from .grid import all_cells, build_axes, default_sweep_id, flatten_grid_table, parse_grid_items, plan_tasks
        cfg = load_config(config)
        opts = dict(cfg.get("sweep", {}) or {})
        unknown = set(opts) - set(SWEEP_OPTIONS)
        if unknown:
            raise SpecError(f"config [sweep]: unknown keys {sorted(unknown)}; known: {', '.join(SWEEP_OPTIONS)}")
        executor = executor or opts.get("executor", "dask")
        if executor == "serial" and (scheduler or opts.get("scheduler")):
            raise SpecError("--scheduler needs --executor dask (the default), not serial")
        store = store or cfg.get("store")
        if not store:
            raise SpecError("a sweep streams into a results store: give --store PATH (or store = ... in the config)")
        raw = flatten_grid_table(cfg.get("grid", {}) or {})
        raw.update(parse_grid_items(grid))  # a --grid flag replaces the config's values for that key
        if not raw:
            raise SpecError("give at least one --grid KEY=VALUES (or a [grid] table in the config)")
        for key in ("seed", "beta"):
            if key in raw and (options.get(key) or cfg.get(key)):
                raise SpecError(f"{key} is on the grid and also given as --{key}/{key} = ...; give it in one place")
        from .grid import FIT_FIELDS
        for key in raw:
            if key in FIT_FIELDS and (options.get(key) is not None or key in cfg):
                raise SpecError(f"{key} is on the grid and also set as an option; give it in one place")
        base = run_spec(cfg, **options)
        axes = build_axes(raw, base)
        name = name or cfg.get("name") or opts.get("name")
        if dry_run:
            tasks = plan_tasks(axes, set(all_cells(axes)))
            click.echo(f"sweep {name or default_sweep_id(base, axes)}: {len(all_cells(axes))} cells in {len(tasks)} tasks")
            for t in tasks:
                s = t.spec(base, axes)
                fit = "".join(f" {a.key}={getattr(s.fit, a.key)}" for a in axes if hasattr(s.fit, a.key))
                click.echo(f"  {len(t.cells):>4} cells  sources={' '.join(map(str, s.sources))} decoder={s.decoder} "
                           f"seeds={list(s.seeds)} betas={list(s.betas)}{fit}")
            return
        from .coordinator import run_sweep
        try:
            report = run_sweep(store, base, axes, name=name, executor=executor,
                               workers=workers or int(opts.get("workers", 2)),
                               scheduler=scheduler or opts.get("scheduler"),
                               retries=retries if retries is not None else int(opts.get("retries", 0)),
                               show_progress=base.fit.progress, echo=click.echo)
        except OSError as exc:
            raise StoreError(f"sweep into {store}: {exc}") from None
        click.echo(f"sweep {report.sweep_id!r} in {report.store} ({report.executor})")
        click.echo(report.table())
        if report.failed:
            click.echo(f"{len(report.failed)} failed cells:", err=True)
            for cell, msg in report.failed:
                click.echo(f"  {cell}: {msg}", err=True)
            cctx.exit(1)
        if report.pending:
            click.echo(f"{report.pending} cells still pending", err=True)
            cctx.exit(1)
