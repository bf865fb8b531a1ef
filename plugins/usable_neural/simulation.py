"""A simulated delayed centre-out reaching task (the RINE paper's section 4.3, in silico).

Each trial: 200 ms baseline, then the target (one of K equally spaced directions) turns on and a
``delay`` ms preparatory period follows. Every unit fires as an inhomogeneous Poisson process
with cosine tuning,

    rate_u(t) = max(0, b_u + d_u · g_u(t) · cos(θ_trial(t) − φ_u)),

where φ_u is the unit's preferred direction and b_u its baseline rate. Two things make adjacent
windows more alike than distant ones, as in premotor cortex:
  * a time-varying gain g_u(t) = ramp(t)·(1 + m·cos(2πt/P + ψ_u))/(1 + m): each unit's tuning
    waxes and wanes with its own phase ψ_u, so the population that carries the target drifts;
  * the planned direction θ_trial(t) = θ_target + ε(t) wanders within a trial, ε an AR(1)
    process with standard deviation ``drift`` degrees and time constant ``drift_tau`` ms, so
    two windows close in time share the same error and confuse the same trials.
A second area (M1) has the same structure with tuning depth scaled by ``m1_tuning`` (< 1).
Spikes are drawn on a 10 ms grid (Poisson counts per bin, uniform times inside each bin) and
stored as spike times, so this source counts them with exactly the code the ``nwb`` source
uses, and ``write_nwb`` saves the same recording as an NWB file.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from usable import DataError, require

from .assemble import build_source_data
from .recording import Recording, trial_features
from .windows import parse_windows

DT_MS = 10.0
BASELINE_MS = 200.0
AREAS = ("PMd", "M1")


def _draw_units(rng, n: int, depth: float) -> dict[str, np.ndarray]:
    base = rng.uniform(5.0, 30.0, n)
    return {"baseline": base, "depth": depth * base * rng.uniform(0.6, 1.0, n),
            "preferred": rng.uniform(0, 2 * np.pi, n), "gain_phase": rng.uniform(0, 2 * np.pi, n)}


def simulate_session(name: str = "centre_out", *, n_trials: int = 100, targets: int = 8, units: int = 60,
                     m1_tuning: float = 0.5, delay: float = 500.0, drift: float = 30.0,
                     drift_tau: float = 200.0, gain_period: float = 600.0, gain_mod: float = 0.9,
                     unit_params: dict | None = None, seed: int = 0) -> Recording:
    """One session: ``n_trials`` successful trials per target, ``units`` units in each area."""
    rng = np.random.default_rng(seed)
    if unit_params is None:
        unit_params = {a: _draw_units(rng, units, 1.0 if a == "PMd" else m1_tuning) for a in AREAS}
    p = {k: np.concatenate([unit_params[a][k] for a in AREAS]) for k in unit_params[AREAS[0]]}
    location = np.repeat(np.asarray(AREAS, dtype=object), [len(unit_params[a]["baseline"]) for a in AREAS])
    U = len(location)

    target_idx = rng.permutation(np.repeat(np.arange(targets), n_trials))
    N = len(target_idx)
    t = np.arange(-BASELINE_MS, delay, DT_MS)  # bin starts, ms relative to target onset
    T = len(t)
    # Planned direction error: stationary AR(1) on the grid, only meaningful after onset.
    rho = np.exp(-DT_MS / drift_tau) if drift_tau > 0 else 0.0
    sd = np.deg2rad(drift)
    eps = np.empty((N, T))
    eps[:, 0] = rng.normal(0, sd, N)
    for k in range(1, T):
        eps[:, k] = rho * eps[:, k - 1] + np.sqrt(1 - rho ** 2) * rng.normal(0, sd, N)
    theta = 2 * np.pi * target_idx[:, None] / targets + eps                     # (N, T)
    after = t >= 0
    ramp = np.where(after, 1 - np.exp(-np.clip(t, 0, None) / 60.0), 0.0)       # (T,)
    gain = ramp[:, None] * (1 + gain_mod * np.cos(2 * np.pi * t[:, None] / gain_period + p["gain_phase"][None, :]))
    gain /= 1 + gain_mod                                                         # (T, U)
    rate = p["baseline"][None, None, :] + p["depth"][None, None, :] * gain[None] * np.cos(
        theta[:, :, None] - p["preferred"][None, None, :])                       # (N, T, U) Hz
    counts = rng.poisson(np.clip(rate, 0, None) * DT_MS / 1000.0)

    trial_start = np.arange(N) * ((BASELINE_MS + delay) / 1000.0 + 0.5)          # 0.5 s between trials
    onset = trial_start + BASELINE_MS / 1000.0
    bin_abs = (onset[:, None] + t[None, :] / 1000.0).reshape(-1)                 # (N*T,)
    spikes = []
    for u in range(U):
        c = counts[:, :, u].reshape(-1)
        times = np.repeat(bin_abs, c) + rng.random(int(c.sum())) * DT_MS / 1000.0
        spikes.append(np.sort(times))
    angles = 2 * np.pi * target_idx / targets
    trials = {
        "start_time": trial_start, "stop_time": onset + delay / 1000.0,
        "target_on_time": onset, "go_cue_time": onset + delay / 1000.0,
        "success": np.ones(N, dtype=bool), "target_index": target_idx.astype(np.int64),
        "target_pos": 0.08 * np.stack([np.cos(angles), np.sin(angles)], axis=1),
    }
    return Recording(name, trials, spikes, {"location": location})


def simulate_sessions(sessions: int = 1, unit_overlap: float = 0.5, units: int = 60, m1_tuning: float = 0.5,
                      seed: int = 0, **kw) -> list[Recording]:
    """Several sessions of one subject: each keeps a unit of session 1 with probability
    ``unit_overlap`` (stable electrodes) and records a new one otherwise; trials are new."""
    rng = np.random.default_rng([seed, 7])
    first = {a: _draw_units(rng, units, 1.0 if a == "PMd" else m1_tuning) for a in AREAS}
    recs = []
    for s in range(sessions):
        params = first
        if s > 0:
            fresh = {a: _draw_units(rng, units, 1.0 if a == "PMd" else m1_tuning) for a in AREAS}
            params = {}
            for a in AREAS:
                keep = rng.random(units) < unit_overlap
                params[a] = {k: np.where(keep, first[a][k], fresh[a][k]) for k in first[a]}
        recs.append(simulate_session(f"session{s + 1}", units=units, m1_tuning=m1_tuning, unit_params=params,
                                     seed=int(rng.integers(2 ** 31)), **kw))
    return recs


def centre_out_source(*, n_trials, targets, units, areas, window, m1_tuning, delay, drift, drift_tau, gain_period,
                      gain_mod, sessions, unit_overlap, normalize, test_fraction, seed):
    """Simulated delayed centre-out task; one source per (session, area, window)."""
    windows = parse_windows(window)
    chosen = [a for a in str(areas).split("+") if a]
    bad = [a for a in chosen if a not in AREAS]
    if bad or not chosen:
        raise DataError(f"centre_out: areas={areas!r}; the simulated areas are {'+'.join(AREAS)}")
    recs = simulate_sessions(sessions, unit_overlap, units=units, m1_tuning=m1_tuning, seed=seed,
                             n_trials=n_trials, targets=targets, delay=delay, drift=drift,
                             drift_tau=drift_tau, gain_period=gain_period, gain_mod=gain_mod)
    feats = [trial_features(r, event="target_on_time", windows=windows, target="target_pos", group_by="location")
             for r in recs]
    return build_source_data(feats, windows, target="target_pos", bins=targets, centre=(0.0, 0.0), groups=chosen,
                             norm=normalize, test_fraction=test_fraction, seed=seed,
                             attrs={"simulation": "centre_out", "drift_deg": drift, "m1_tuning": m1_tuning})


def write_nwb(rec: Recording, path: str | Path, description: str = "simulated delayed centre-out task") -> Path:
    """Save a Recording as an NWB file (trials table + units table with a location column)."""
    pynwb = require("pynwb", extra="neural", what="writing NWB files")
    NWBFile, NWBHDF5IO = pynwb.NWBFile, pynwb.NWBHDF5IO

    nwb = NWBFile(session_description=description, identifier=f"usable-{rec.name}",
                  session_start_time=datetime(2000, 1, 1, tzinfo=timezone.utc))
    extra = [c for c in rec.trials if c not in ("start_time", "stop_time")]
    for c in extra:
        nwb.add_trial_column(c, f"{c} (simulated)")
    for i in range(len(rec.trials["start_time"])):
        nwb.add_trial(start_time=float(rec.trials["start_time"][i]), stop_time=float(rec.trials["stop_time"][i]),
                      **{c: rec.trials[c][i] for c in extra})
    for c in rec.units:
        nwb.add_unit_column(c, f"{c} of the unit")
    for u, st in enumerate(rec.spike_times):
        nwb.add_unit(spike_times=st, **{c: rec.units[c][u] for c in rec.units})
    path = Path(path)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path
