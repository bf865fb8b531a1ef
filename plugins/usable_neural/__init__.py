"""Neural recordings: spike trains from NWB files, already-binned arrays, and a simulated delayed
centre-out task (the embedded default). Sources are time windows, unit groups (areas) and
sessions, so that ``redundancy_matrix`` reproduces the RINE paper's figures 3 and 4. This module
only declares the entries; numpy, torch and pynwb load when one is created."""
from typing import Annotated, Literal

import click

from usable import hookimpl

Window = Annotated[str, "windows in ms relative to the event, half-open [a, b): 50:150, several joined by '+' "
                        "(50:150+150:250), or start:stop:width (50:450:100 = four 100 ms windows)"]
Normalize = Annotated[Literal["counts", "rate", "sqrt"], "features: spike counts, rate (Hz) or sqrt(counts)"]
TestFraction = Annotated[float, "held-out fraction (stratified by class)"]
Seed = Annotated[int, "seed of the split, the session pairing (and the simulation)"]
Centre = Annotated[str, "centre x+y of the angular sectors, or 'mean'"]


def nwb(file: Annotated[str, "NWB file; several sessions joined by '+' (paired by target class)"],
        event: Annotated[str, "trials-table column with the event time (s) windows are relative to"] = "target_on_time",
        window: Window = "50:150",
        target: Annotated[str, "trials-table column holding the target"] = "target_pos",
        bins: Annotated[int, "angular sectors for a 2-D position target; 0 = categorical column"] = 8,
        centre: Centre = "0+0",
        condition: Annotated[str, "keep trials where a column is true (success) or equals a value (outcome:hit); "
                             "several joined by '+'"] = "",
        group_by: Annotated[str, "units-table column splitting units into sources (location, electrode_group)"] = "",
        groups: Annotated[str, "which groups (joined by '+'), in this order; default all"] = "",
        pairing: Annotated[Literal["shuffled", "ordered"], "pairing of sessions within a class: seeded shuffle or "
                           "file order"] = "shuffled",
        check_bounds: Annotated[bool, "require every window to lie inside [start_time, stop_time] of each trial"] = True,
        normalize: Normalize = "counts", test_fraction: TestFraction = 0.2, seed: Seed = 0):
    """Spike counts per unit in windows around a trial event, from NWB files (pynwb)."""
    kw = dict(locals())
    from .nwb_files import nwb_source
    return nwb_source(**kw)


def arrays(file: Annotated[str, ".npz file, zarr store or netCDF/HDF5 file"],
           sources: Annotated[str, "array/variable names used as sources, joined by '+'"],
           target: Annotated[str, "array/variable holding the target"],
           target_kind: Annotated[Literal["auto", "classes", "real"], "auto: float 1-D -> real, else classes"] = "auto",
           bins: Annotated[int, "angular sectors for an (N, 2) position target; 0 = categorical"] = 0,
           centre: Centre = "0+0",
           test: Annotated[str, "optional boolean array marking test samples (else a stratified split)"] = "",
           sample_dim: Annotated[str, "xarray: the dimension indexing samples (default: the first)"] = "",
           group: Annotated[str, "zarr/netCDF group holding the variables"] = "",
           test_fraction: Annotated[float, "held-out fraction when no test array is given"] = 0.2,
           seed: Annotated[int, "seed of the split"] = 0):
    """Already-binned sources and a target from .npz or an xarray dataset (zarr, netCDF)."""
    kw = dict(locals())
    from .array_files import arrays_source
    return arrays_source(**kw)


def centre_out(n_trials: Annotated[int, "trials per target (and per session)"] = 100,
               targets: Annotated[int, "number of reach targets, equally spaced"] = 8,
               units: Annotated[int, "units per area"] = 60,
               areas: Annotated[str, "areas used as sources: PMd, M1 or PMd+M1"] = "PMd",
               window: Window = "50:450:100",
               m1_tuning: Annotated[float, "M1 tuning depth relative to PMd"] = 0.5,
               delay: Annotated[float, "preparatory period after target onset (ms)"] = 500.0,
               drift: Annotated[float, "sd of the planned direction's wander within a trial (degrees)"] = 30.0,
               drift_tau: Annotated[float, "time constant of that wander (ms)"] = 200.0,
               gain_period: Annotated[float, "period of each unit's tuning-gain oscillation (ms)"] = 600.0,
               gain_mod: Annotated[float, "depth of that oscillation (0 = constant gain)"] = 0.9,
               sessions: Annotated[int, "sessions (paired by target class)"] = 1,
               unit_overlap: Annotated[float, "fraction of session 1's units recorded again in later sessions"] = 0.5,
               normalize: Normalize = "counts", test_fraction: TestFraction = 0.2, seed: Seed = 0):
    """Simulated delayed centre-out task: cosine-tuned Poisson units in PMd and M1 (the default)."""
    kw = dict(locals())
    from .simulation import centre_out_source
    return centre_out_source(**kw)


@hookimpl
def register_sources(register):
    for factory in (nwb, arrays, centre_out):
        register(factory.__name__, factory)


@hookimpl
def register_commands(cli):
    @cli.group("neural")
    def neural_grp():
        """Neural-recording helpers (plugin usable_neural)."""

    @neural_grp.command("simulate")
    @click.argument("out_dir", type=click.Path(file_okay=False))
    @click.option("--sessions", default=1, show_default=True, help="number of NWB files (sessions)")
    @click.option("--n-trials", default=100, show_default=True, help="trials per target")
    @click.option("--units", default=60, show_default=True, help="units per area")
    @click.option("--seed", default=0, show_default=True)
    def simulate_cmd(out_dir, sessions, n_trials, units, seed):
        """Write the simulated centre-out task as NWB files (session1.nwb, ...) in OUT_DIR."""
        from pathlib import Path

        from .simulation import simulate_sessions, write_nwb
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for rec in simulate_sessions(sessions, units=units, seed=seed, n_trials=n_trials):
            path = write_nwb(rec, out / f"{rec.name}.nwb")
            click.echo(f"wrote {path} ({len(rec.trials['start_time'])} trials, {len(rec.spike_times)} units)")
