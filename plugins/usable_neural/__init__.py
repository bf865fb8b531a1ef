"""Neural recordings: spike trains from NWB files, already-binned arrays, and a simulated delayed
centre-out task (the embedded default). Sources are time windows, unit groups (areas) and
sessions, so that ``redundancy_matrix`` reproduces the RINE paper's figures 3 and 4."""
from __future__ import annotations

import click

from usable import Param, hookimpl

from .arrays import TARGET_KINDS, make_arrays
from .assemble import PAIRINGS
from .centre_out import make_centre_out, simulate_sessions, write_nwb
from .nwb import make_nwb
from .windows import NORMALISATIONS

_WINDOW_HELP = ("windows in ms relative to the event, half-open [a, b): 50:150, several with ';' "
                "(50:150;150:250), or start:stop:width (50:450:100 = four 100 ms windows)")
_COMMON = [
    Param("normalise", "counts", str, "features: spike counts, rate (Hz) or sqrt(counts)", choices=NORMALISATIONS),
    Param("test_fraction", 0.2, float, "held-out fraction (stratified by class)"),
    Param("seed", 0, int, "seed of the split, the session pairing (and the simulation)"),
]


@hookimpl
def register_sources(register):
    register("nwb", make_nwb, params=[
        Param("file", None, str, "NWB file; several sessions with ';' (paired by target class)", required=True),
        Param("event", "target_on_time", str, "trials-table column with the event time (s) windows are relative to"),
        Param("window", "50:150", str, _WINDOW_HELP),
        Param("target", "target_pos", str, "trials-table column holding the target"),
        Param("bins", 8, int, "angular sectors for a 2-D position target; 0 = categorical column"),
        Param("centre", "0;0", str, "centre x;y of the angular sectors, or 'mean'"),
        Param("condition", "", str, "keep trials where a column is true (success) or equals a value "
                                    "(outcome:hit); several with ';'"),
        Param("group_by", "", str, "units-table column splitting units into sources (location, electrode_group)"),
        Param("groups", "", str, "which groups (';'), in this order; default all"),
        Param("pairing", "shuffled", str, "pairing of sessions within a class: seeded shuffle or file order",
              choices=PAIRINGS),
        Param("check_bounds", True, bool, "require every window to lie inside [start_time, stop_time] of each trial"),
        *_COMMON,
    ], help="spike counts per unit in windows around a trial event, from NWB files (pynwb)")
    register("arrays", make_arrays, params=[
        Param("file", None, str, ".npz file, zarr store or netCDF/HDF5 file", required=True),
        Param("sources", None, str, "array/variable names used as sources, ';'-separated", required=True),
        Param("target", None, str, "array/variable holding the target", required=True),
        Param("target_kind", "auto", str, "auto: float 1-D -> real, else classes", choices=TARGET_KINDS),
        Param("bins", 0, int, "angular sectors for an (N, 2) position target; 0 = categorical"),
        Param("centre", "0;0", str, "centre x;y of the angular sectors, or 'mean'"),
        Param("test", "", str, "optional boolean array marking test samples (else a stratified split)"),
        Param("sample_dim", "", str, "xarray: the dimension indexing samples (default: the first)"),
        Param("group", "", str, "zarr/netCDF group holding the variables"),
        Param("test_fraction", 0.2, float, "held-out fraction when no test array is given"),
        Param("seed", 0, int, "seed of the split"),
    ], help="already-binned sources and a target from .npz or an xarray dataset (zarr, netCDF)")
    register("centre_out", make_centre_out, params=[
        Param("n_trials", 100, int, "trials per target (and per session)"),
        Param("targets", 8, int, "number of reach targets, equally spaced"),
        Param("units", 60, int, "units per area"),
        Param("areas", "PMd", str, "areas used as sources: PMd, M1 or PMd;M1"),
        Param("window", "50:450:100", str, _WINDOW_HELP),
        Param("m1_tuning", 0.5, float, "M1 tuning depth relative to PMd"),
        Param("delay", 500.0, float, "preparatory period after target onset (ms)"),
        Param("drift", 30.0, float, "sd of the planned direction's wander within a trial (degrees)"),
        Param("drift_tau", 200.0, float, "time constant of that wander (ms)"),
        Param("gain_period", 600.0, float, "period of each unit's tuning-gain oscillation (ms)"),
        Param("gain_mod", 0.9, float, "depth of that oscillation (0 = constant gain)"),
        Param("sessions", 1, int, "sessions (paired by target class)"),
        Param("unit_overlap", 0.5, float, "fraction of session 1's units recorded again in later sessions"),
        *_COMMON,
    ], help="simulated delayed centre-out task: cosine-tuned Poisson units in PMd and M1 (the default)")


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
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for rec in simulate_sessions(sessions, units=units, seed=seed, n_trials=n_trials):
            path = write_nwb(rec, out / f"{rec.name}.nwb")
            click.echo(f"wrote {path} ({len(rec.trials['start_time'])} trials, {len(rec.spike_times)} units)")
